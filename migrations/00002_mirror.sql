-- The rest of the mirror: assignments, waiting members, assignment errors,
-- users and the members of assigned groups, each with dated history as in
-- 00001 (one row per distinct state, valid over a half-open tstzrange,
-- the current state unbounded above); the staging tables a sync streams
-- into before it applies a snapshot; sync_state (the users delta link);
-- and the daily roll-up of allotment_facts.
--
-- Overlap. Per key, versions must not overlap in time: "as of" reads rely
-- on finding at most one. 00001 enforces it with GiST exclusion
-- constraints, and so do the small tables here (waiting members,
-- assignment errors). The tenant-sized tables (assignments, users, group
-- members) do not: measured on 250k assignments, the btree_gist index
-- made a first apply take 22-27 s instead of 4-7 s (every inserted row
-- pays a GiST insertion over text keys). There the invariant rests on
-- the partial unique index (at most one current version per key) and on
-- the one writer, Snapshot.Apply, serialized by an advisory lock and
-- fenced so that its time is never earlier than any version's start: it
-- only ever closes the current version at that time and opens the next
-- one from it, so ranges of a key tile time without overlap. The store's
-- tests check the invariant after each scenario.

-- Ids are opaque Graph strings compared bytewise (COLLATE "C"), as in 00001.

-- +goose Up

CREATE TABLE assignment_versions (
    id                text COLLATE "C" NOT NULL,
    allotment_id      text COLLATE "C" NOT NULL,
    assignee_id       text COLLATE "C" NOT NULL,
    assignee_type     text        NOT NULL,  -- user, group or device (not checked: Graph may add kinds)
    disabled_plan_ids text[]      NOT NULL,
    raw               jsonb,
    -- When the mirror first saw this assignment at all (the lower bound of
    -- its earliest version); not part of the compared content.
    first_observed_at timestamptz NOT NULL,
    valid             tstzrange   NOT NULL,
    CONSTRAINT assignment_versions_valid_bounded_below CHECK (NOT isempty(valid) AND NOT lower_inf(valid))
    -- no exclusion constraint: see "Overlap" above
);
CREATE UNIQUE INDEX assignment_versions_current ON assignment_versions (id) WHERE upper_inf(valid);
-- Keyset pages in id order, current or as of a time (the range is
-- filtered; an id has few versions).
CREATE INDEX assignment_versions_id ON assignment_versions (id, lower(valid));
CREATE INDEX assignment_versions_allotment ON assignment_versions (allotment_id, id);
CREATE INDEX assignment_versions_assignee ON assignment_versions (assignee_id);

CREATE TABLE waiting_member_versions (
    id            text COLLATE "C" NOT NULL,
    allotment_id  text COLLATE "C" NOT NULL,
    member_id     text COLLATE "C" NOT NULL,
    member_type   text        NOT NULL,  -- user or device
    waiting_since timestamptz,
    raw           jsonb,
    valid         tstzrange   NOT NULL,
    CONSTRAINT waiting_member_versions_valid_bounded_below CHECK (NOT isempty(valid) AND NOT lower_inf(valid)),
    CONSTRAINT waiting_member_versions_no_overlap EXCLUDE USING gist (id WITH =, valid WITH &&)
);
CREATE UNIQUE INDEX waiting_member_versions_current ON waiting_member_versions (id) WHERE upper_inf(valid);
CREATE INDEX waiting_member_versions_id ON waiting_member_versions (id, lower(valid));
CREATE INDEX waiting_member_versions_allotment ON waiting_member_versions (allotment_id, id);
CREATE INDEX waiting_member_versions_member ON waiting_member_versions (member_id);

CREATE TABLE assignment_error_versions (
    id          text COLLATE "C" NOT NULL,
    user_id     text COLLATE "C" NOT NULL,
    sku_id      text        NOT NULL,
    code        text        NOT NULL,
    message     text        NOT NULL,
    occurred_at timestamptz,
    raw         jsonb,
    valid       tstzrange   NOT NULL,
    CONSTRAINT assignment_error_versions_valid_bounded_below CHECK (NOT isempty(valid) AND NOT lower_inf(valid)),
    CONSTRAINT assignment_error_versions_no_overlap EXCLUDE USING gist (id WITH =, valid WITH &&)
);
CREATE UNIQUE INDEX assignment_error_versions_current ON assignment_error_versions (id) WHERE upper_inf(valid);
CREATE INDEX assignment_error_versions_id ON assignment_error_versions (id, lower(valid));
CREATE INDEX assignment_error_versions_sku ON assignment_error_versions (sku_id, id);
CREATE INDEX assignment_error_versions_user ON assignment_error_versions (user_id);

-- Directory users, for chargeback: who held a seat, in which department.
CREATE TABLE user_versions (
    id                  text COLLATE "C" NOT NULL,
    user_principal_name text        NOT NULL,
    display_name        text        NOT NULL,
    department          text        NOT NULL,  -- '' when Entra has none
    company_name        text        NOT NULL,
    cost_center         text        NOT NULL,  -- employeeOrgData.costCenter, '' when absent
    account_enabled     boolean     NOT NULL,
    raw                 jsonb,
    valid               tstzrange   NOT NULL,
    CONSTRAINT user_versions_valid_bounded_below CHECK (NOT isempty(valid) AND NOT lower_inf(valid))
    -- no exclusion constraint: see "Overlap" above
);
CREATE UNIQUE INDEX user_versions_current ON user_versions (id) WHERE upper_inf(valid);
CREATE INDEX user_versions_id ON user_versions (id, lower(valid));
-- UPNs are case-insensitive in Entra.
CREATE INDEX user_versions_upn ON user_versions (lower(user_principal_name));
CREATE INDEX user_versions_department ON user_versions (department);

-- Direct members of the groups that hold assignments.
CREATE TABLE group_member_versions (
    group_id    text COLLATE "C" NOT NULL,
    member_id   text COLLATE "C" NOT NULL,
    member_type text        NOT NULL,  -- user, group, device, ...
    valid       tstzrange   NOT NULL,
    CONSTRAINT group_member_versions_valid_bounded_below CHECK (NOT isempty(valid) AND NOT lower_inf(valid))
    -- no exclusion constraint: see "Overlap" above
);
CREATE UNIQUE INDEX group_member_versions_current
    ON group_member_versions (group_id, member_id) WHERE upper_inf(valid);
CREATE INDEX group_member_versions_group ON group_member_versions (group_id, member_id, lower(valid));

-- One row per sync state; the users delta link is written in the same
-- transaction as the snapshot it belongs to.
CREATE TABLE sync_state (
    id               smallint PRIMARY KEY CHECK (id = 1),
    users_delta_link text        NOT NULL DEFAULT '',
    updated_at       timestamptz NOT NULL DEFAULT now()
);
INSERT INTO sync_state (id) VALUES (1);

-- The last run of each UTC day per allotment: day-level history without
-- scanning every run. Upserted by each apply from its allotment_facts.
CREATE TABLE allotment_daily (
    allotment_id text COLLATE "C" NOT NULL,
    day          date        NOT NULL,
    run_id       bigint      NOT NULL REFERENCES sync_runs (id) ON DELETE CASCADE,
    observed_at  timestamptz NOT NULL,
    allotted     integer     NOT NULL,
    consumed     integer     NOT NULL,
    waiting      integer     NOT NULL,
    errors       integer     NOT NULL,
    PRIMARY KEY (allotment_id, day)
);

-- Staging. A snapshot streams rows here (COPY) while the sync pages Graph,
-- outside any long transaction; Apply diffs and merges them in one short
-- transaction. UNLOGGED: staging is disposable (a crash empties these
-- tables, which is what we want), and skipping WAL makes COPY cheaper.
-- No indexes: Apply reads each staged set once, by hash joins. seq orders
-- rows of one snapshot (a later duplicate wins).
CREATE UNLOGGED TABLE sync_snapshots (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNLOGGED TABLE stage_allotments (
    snapshot_id     bigint  NOT NULL,
    seq             bigint  NOT NULL,
    id              text COLLATE "C" NOT NULL,
    sku_id          text    NOT NULL,
    sku_part_number text    NOT NULL,
    allotted_units  integer NOT NULL,
    consumed_units  integer NOT NULL,
    assignable_to   text[]  NOT NULL,
    services        jsonb   NOT NULL,
    subscriptions   jsonb   NOT NULL,
    raw             jsonb
);
CREATE UNLOGGED TABLE stage_assignments (
    snapshot_id       bigint NOT NULL,
    seq               bigint NOT NULL,
    id                text COLLATE "C" NOT NULL,
    allotment_id      text COLLATE "C" NOT NULL,
    assignee_id       text COLLATE "C" NOT NULL,
    assignee_type     text   NOT NULL,
    disabled_plan_ids text[] NOT NULL,
    raw               jsonb
);
CREATE UNLOGGED TABLE stage_waiting_members (
    snapshot_id   bigint NOT NULL,
    seq           bigint NOT NULL,
    id            text COLLATE "C" NOT NULL,
    allotment_id  text COLLATE "C" NOT NULL,
    member_id     text COLLATE "C" NOT NULL,
    member_type   text   NOT NULL,
    waiting_since timestamptz,
    raw           jsonb
);
CREATE UNLOGGED TABLE stage_assignment_errors (
    snapshot_id bigint NOT NULL,
    seq         bigint NOT NULL,
    id          text COLLATE "C" NOT NULL,
    user_id     text COLLATE "C" NOT NULL,
    sku_id      text   NOT NULL,
    code        text   NOT NULL,
    message     text   NOT NULL,
    occurred_at timestamptz,
    raw         jsonb
);
CREATE UNLOGGED TABLE stage_users (
    snapshot_id         bigint  NOT NULL,
    seq                 bigint  NOT NULL,
    id                  text COLLATE "C" NOT NULL,
    user_principal_name text    NOT NULL,
    display_name        text    NOT NULL,
    department          text    NOT NULL,
    company_name        text    NOT NULL,
    cost_center         text    NOT NULL,
    account_enabled     boolean NOT NULL,
    raw                 jsonb
);
CREATE UNLOGGED TABLE stage_user_removals (
    snapshot_id bigint NOT NULL,
    seq         bigint NOT NULL,
    id          text COLLATE "C" NOT NULL
);
CREATE UNLOGGED TABLE stage_group_members (
    snapshot_id bigint NOT NULL,
    seq         bigint NOT NULL,
    group_id    text COLLATE "C" NOT NULL,
    member_id   text COLLATE "C" NOT NULL,
    member_type text   NOT NULL
);

-- +goose Down

DROP TABLE stage_group_members;
DROP TABLE stage_user_removals;
DROP TABLE stage_users;
DROP TABLE stage_assignment_errors;
DROP TABLE stage_waiting_members;
DROP TABLE stage_assignments;
DROP TABLE stage_allotments;
DROP TABLE sync_snapshots;
DROP TABLE allotment_daily;
DROP TABLE sync_state;
DROP TABLE group_member_versions;
DROP TABLE user_versions;
DROP TABLE assignment_error_versions;
DROP TABLE waiting_member_versions;
DROP TABLE assignment_versions;
