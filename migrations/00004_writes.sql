-- The write side: idempotency keys of the writes seatledger proxies to
-- Graph, the audit log of every write attempt, and allotment ownership
-- (seatledger's own data, with history like the mirror's).

-- +goose Up

-- One row per (caller, method, key). A write inserts its row as
-- 'pending' before it calls Graph, so a concurrent duplicate finds it and
-- waits instead of calling Graph too; 'done' rows hold the first result
-- (a serialized response or google.rpc.Status), which repeats return;
-- 'unknown' marks an attempt whose Graph outcome could not be known, so
-- the next attempt reads Graph back before writing. Rows live until
-- expires_at (at least 24 hours); writes purge expired rows.
CREATE TABLE idempotency_keys (
    key_hash     text        PRIMARY KEY,  -- sha256 of caller, method and key (hex)
    method       text        NOT NULL,
    request_hash text        NOT NULL,     -- sha256 of the canonical request (hex)
    state        text        NOT NULL CHECK (state IN ('pending', 'unknown', 'done')),
    code         integer     NOT NULL DEFAULT 0,  -- gRPC code of the stored result
    result       bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    claimed_at   timestamptz NOT NULL DEFAULT now(),  -- when the current attempt took the key
    expires_at   timestamptz NOT NULL
);
CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires_at);

-- Every write attempt, successful or not. Append-only; id increases with
-- time, so keyset pages go by id.
CREATE TABLE audit_events (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_time       timestamptz NOT NULL,
    actor            text        NOT NULL,
    method           text        NOT NULL,
    resource         text        NOT NULL,  -- e.g. assignments/{id}; '' when none
    status           text        NOT NULL,  -- gRPC code name
    message          text        NOT NULL,  -- '' on success
    idempotency_key  text        NOT NULL,
    request_id       text        NOT NULL,  -- seatledger's id of the call, in its logs
    graph_request_id text        NOT NULL,  -- Graph's request-id, '' when Graph was not called
    latency_us       bigint      NOT NULL,
    request          jsonb,                 -- the request as the caller sent it (no secrets)
    details          jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_actor ON audit_events (actor, id);
CREATE INDEX audit_events_method ON audit_events (method, id);
CREATE INDEX audit_events_resource ON audit_events (resource text_pattern_ops, id);
CREATE INDEX audit_events_time ON audit_events (event_time);

-- Which department owns an allotment (pays for its idle seats under the
-- owner policy, and is preferred when assigning by SKU), with history.
CREATE TABLE allotment_owner_versions (
    allotment_id     text COLLATE "C" NOT NULL,
    owner_department text        NOT NULL,
    set_by           text        NOT NULL,
    valid            tstzrange   NOT NULL,
    CONSTRAINT allotment_owner_versions_valid_bounded_below CHECK (NOT isempty(valid) AND NOT lower_inf(valid)),
    CONSTRAINT allotment_owner_versions_no_overlap EXCLUDE USING gist (allotment_id WITH =, valid WITH &&)
);
CREATE UNIQUE INDEX allotment_owner_versions_current
    ON allotment_owner_versions (allotment_id) WHERE upper_inf(valid);
-- The current owners, for readers that need no history (chargeback's
-- owner policy reads allotment_owners(allotment_id, owner_department)).
CREATE VIEW allotment_owners AS
    SELECT allotment_id, owner_department, set_by, lower(valid) AS since
    FROM allotment_owner_versions
    WHERE upper_inf(valid);

-- +goose Down

DROP VIEW allotment_owners;
DROP TABLE allotment_owner_versions;
DROP TABLE audit_events;
DROP TABLE idempotency_keys;
