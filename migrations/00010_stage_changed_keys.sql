-- The keys a sync run changes, found while the run still pages.
--
-- Apply compares every staged row with its current version. For the
-- assignments (the largest collection) the sync makes that comparison as
-- soon as they are staged, while the other collections page, and keeps
-- here the keys that differ (changed, new or gone); Apply then merges only
-- those. A key that no writer touched since stays equal, and one a proxied
-- write touched after the run began is left alone by Apply whether listed
-- here or not (see internal/store/diff.go, merge). Cleared with the other
-- staging tables.

-- +goose Up

CREATE UNLOGGED TABLE stage_changed_keys (
    snapshot_id bigint NOT NULL,
    kind        text   NOT NULL,
    id          text COLLATE "C" NOT NULL
);

-- +goose Down

DROP TABLE stage_changed_keys;
