-- The walking skeleton's mirror: allotments and the subscriptions behind
-- them, with dated history, plus the record of every sync run and a fact
-- row per allotment per run for time series.
--
-- History model (every mirrored entity follows it): a *_versions table holds
-- one row per distinct state of an entity, valid over the half-open range
-- [first sync that saw this state, first sync that saw it change or vanish).
-- The current state has an unbounded upper end. An exclusion constraint
-- forbids two versions of one entity overlapping in time, so "as of" reads
-- (valid @> t) find at most one row, through the constraint's index. A sync
-- writes a version only when content changed.

-- +goose Up

-- btree_gist lets one GiST exclusion constraint combine equality on text
-- ids with overlap on ranges. It ships with the PostgreSQL server (contrib,
-- in Debian's postgresql-NN package) and is a trusted extension, so a
-- database owner without superuser rights can create it.
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE sync_runs (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at     timestamptz NOT NULL,  -- when the run began reading Graph: the time its snapshot is "as of"
    finished_at    timestamptz,
    outcome        text        NOT NULL CHECK (outcome IN ('running', 'succeeded', 'failed', 'held')),
    error          text,                  -- NULL unless failed or held
    counts         jsonb       NOT NULL DEFAULT '{}',  -- {"allotments": {"added": n, "changed": n, "removed": n, "unchanged": n}, ...}
    graph_requests bigint      NOT NULL DEFAULT 0,
    throttled      bigint      NOT NULL DEFAULT 0,
    bytes_received bigint      NOT NULL DEFAULT 0
);
-- The fencing check reads the newest successful run.
CREATE INDEX sync_runs_succeeded ON sync_runs (started_at) WHERE outcome = 'succeeded';

-- Ids are opaque Graph strings (not uuids); COLLATE "C" makes keyset
-- paging order bytewise and the same on every server, whatever the
-- database's default collation.
CREATE TABLE allotment_versions (
    id              text COLLATE "C" NOT NULL,
    sku_id          text        NOT NULL,  -- '' when Graph sent none
    sku_part_number text        NOT NULL,
    allotted_units  integer     NOT NULL,
    consumed_units  integer     NOT NULL,
    assignable_to   text[]      NOT NULL,  -- e.g. {user,group}
    services        jsonb       NOT NULL,  -- [{"plan_id", "plan_name", "assignable_to"}]
    subscriptions   jsonb       NOT NULL,  -- [{"subscription_id", "state", "start_date", ...}]
    raw             jsonb,                 -- the Graph object as received
    valid           tstzrange   NOT NULL,
    CONSTRAINT allotment_versions_valid_bounded_below CHECK (NOT isempty(valid) AND NOT lower_inf(valid)),
    CONSTRAINT allotment_versions_no_overlap EXCLUDE USING gist (id WITH =, valid WITH &&)
);
-- At most one current version per allotment; serves GetAllotment and
-- ListAllotments' keyset order.
CREATE UNIQUE INDEX allotment_versions_current ON allotment_versions (id) WHERE upper_inf(valid);
CREATE INDEX allotment_versions_current_sku ON allotment_versions (sku_id, id) WHERE upper_inf(valid);

-- The subscriptions backing each allotment, from the allotments' own
-- "subscriptions" arrays. Keyed by (subscription_id, allotment_id): one
-- commerce subscription may back allotments of several SKUs.
CREATE TABLE subscription_versions (
    subscription_id     text COLLATE "C" NOT NULL,
    allotment_id        text COLLATE "C" NOT NULL,
    state               text        NOT NULL,  -- active, warning, suspended, lockedOut, deleted, ...
    start_date          date,
    next_lifecycle_date date,
    tags                text[]      NOT NULL,  -- e.g. {trial}
    raw                 jsonb,                 -- the Graph object as received, when the allotment's raw had it
    valid               tstzrange   NOT NULL,
    CONSTRAINT subscription_versions_valid_bounded_below CHECK (NOT isempty(valid) AND NOT lower_inf(valid)),
    CONSTRAINT subscription_versions_no_overlap
        EXCLUDE USING gist (subscription_id WITH =, allotment_id WITH =, valid WITH &&)
);
CREATE UNIQUE INDEX subscription_versions_current
    ON subscription_versions (subscription_id, allotment_id) WHERE upper_inf(valid);
CREATE INDEX subscription_versions_current_allotment
    ON subscription_versions (allotment_id) WHERE upper_inf(valid);

-- One row per allotment per successful run, whether or not it changed:
-- the time series behind usage charts (a daily roll-up comes later).
-- waiting and errors stay 0 until waiting members and assignment errors
-- are mirrored.
CREATE TABLE allotment_facts (
    run_id       bigint      NOT NULL REFERENCES sync_runs (id) ON DELETE CASCADE,
    allotment_id text COLLATE "C" NOT NULL,
    observed_at  timestamptz NOT NULL,
    allotted     integer     NOT NULL,
    consumed     integer     NOT NULL,
    waiting      integer     NOT NULL DEFAULT 0,
    errors       integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, allotment_id)
);
CREATE INDEX allotment_facts_series ON allotment_facts (allotment_id, observed_at);

-- +goose Down

-- btree_gist stays: extensions are per database and may serve others.
DROP TABLE allotment_facts;
DROP TABLE subscription_versions;
DROP TABLE allotment_versions;
DROP TABLE sync_runs;
