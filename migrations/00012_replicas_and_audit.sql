-- Sync runs asked of any replica, who leads the sync, and the audit log's
-- actor names.
--
-- POST /v1/sync:run may reach a replica that does not hold the sync
-- leader lock. That replica writes a sync_requests row (and notifies
-- seatledger_sync_requests); the leader claims it, runs a sync, records
-- the run's id on the row and notifies seatledger_sync_request_done; the
-- asking replica answers with that run. sync_leaders records which
-- process took a leader lock (host, pid, instance and its backend pid),
-- so that a request nobody took can name the leader it waited for.
-- See internal/store/syncrequests.go.
--
-- audit_events.actor_name is the caller's name as its token gives it (the
-- tokens file's name, the JWT's display name or its azp/appid), beside
-- actor, the stable id ("sub").

-- +goose Up
CREATE TABLE sync_leaders (
    lock_name    text        PRIMARY KEY,
    instance     text        NOT NULL,
    host         text        NOT NULL,
    pid          integer     NOT NULL,
    backend_pid  integer     NOT NULL,
    since        timestamptz NOT NULL
);

CREATE TABLE sync_requests (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    requested_at  timestamptz NOT NULL DEFAULT now(),
    requested_by  text        NOT NULL,
    force         boolean     NOT NULL,
    -- A leader claims the request only before take_by; after it the asker
    -- has given up waiting (it closes the row itself).
    take_by       timestamptz NOT NULL,
    claimed_by    text,
    claimed_at    timestamptz,
    finished_at   timestamptz,
    sync_run_id   bigint      REFERENCES sync_runs (id) ON DELETE SET NULL,
    error         text
);

-- The leader's look for work: open, unclaimed requests.
CREATE INDEX sync_requests_open ON sync_requests (id) WHERE claimed_at IS NULL AND finished_at IS NULL;

ALTER TABLE audit_events ADD COLUMN actor_name text NOT NULL DEFAULT '';

-- Statuses recorded before by the interceptor's path in Go's spelling
-- (PermissionDenied) take the canonical name audit.proto promises
-- (PERMISSION_DENIED), so that a filter or a report sees one spelling.
UPDATE audit_events SET status = CASE status
    WHEN 'Canceled' THEN 'CANCELLED'
    WHEN 'Unknown' THEN 'UNKNOWN'
    WHEN 'InvalidArgument' THEN 'INVALID_ARGUMENT'
    WHEN 'DeadlineExceeded' THEN 'DEADLINE_EXCEEDED'
    WHEN 'NotFound' THEN 'NOT_FOUND'
    WHEN 'AlreadyExists' THEN 'ALREADY_EXISTS'
    WHEN 'PermissionDenied' THEN 'PERMISSION_DENIED'
    WHEN 'ResourceExhausted' THEN 'RESOURCE_EXHAUSTED'
    WHEN 'FailedPrecondition' THEN 'FAILED_PRECONDITION'
    WHEN 'Aborted' THEN 'ABORTED'
    WHEN 'OutOfRange' THEN 'OUT_OF_RANGE'
    WHEN 'Unimplemented' THEN 'UNIMPLEMENTED'
    WHEN 'Internal' THEN 'INTERNAL'
    WHEN 'Unavailable' THEN 'UNAVAILABLE'
    WHEN 'DataLoss' THEN 'DATA_LOSS'
    WHEN 'Unauthenticated' THEN 'UNAUTHENTICATED'
    ELSE status END
WHERE status ~ '[a-z]';

-- +goose Down
ALTER TABLE audit_events DROP COLUMN actor_name;
DROP TABLE sync_requests;
DROP TABLE sync_leaders;
