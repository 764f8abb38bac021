-- The display names of licensed groups.
--
-- A group assignee's name comes with the assignments' listing
-- ($expand=assignedTo($select=id,displayName)). It is not part of an
-- assignment's versioned content: a group renamed is the same licence
-- held by the same people, so a rename must not close and reopen every
-- assignment of the group (nor version them all once when this migration
-- lands). The sync stages the name beside each staged assignment, and
-- Apply keeps one current name per group here, in the same transaction.
-- Names are not history: as-of reads show the current name. A group no
-- longer licensed keeps its last known name, so that past seats still
-- read with a name.

-- +goose Up

CREATE TABLE group_names (
    id           text COLLATE "C" PRIMARY KEY,
    display_name text        NOT NULL,
    -- When Apply last wrote this name (the run's start time).
    updated_at   timestamptz NOT NULL
);

ALTER TABLE stage_assignments ADD COLUMN assignee_display_name text NOT NULL DEFAULT '';
ALTER TABLE stage_assignments ALTER COLUMN assignee_display_name SET STATISTICS 0;

-- +goose Down

ALTER TABLE stage_assignments DROP COLUMN assignee_display_name;
DROP TABLE group_names;
