-- Sync runs that recorded demo data.
--
-- The zero-configuration demo seeds a past on its first start: the
-- built-in simulator evolves the demo tenant over the previous days and
-- the mirror records each day through its normal sync, with the sync's
-- clock pinned to that day (cmd/server/demo.go). Those runs, and the
-- history they wrote, are demo data: demo marks them, so that a reader of
-- GET /v1/sync/runs (SyncRun.demo) knows where the past came from.

-- +goose Up

ALTER TABLE sync_runs ADD COLUMN demo boolean NOT NULL DEFAULT false;

-- +goose Down

ALTER TABLE sync_runs DROP COLUMN demo;
