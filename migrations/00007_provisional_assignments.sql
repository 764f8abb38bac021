-- Provisional assignment versions. When seatledger creates an assignment
-- through Graph it records Graph's answer to the POST at once (so the
-- caller reads its write), but that answer is not the shape the sync
-- stores: the sync's listing expands the allotment and the assignee. Such
-- a version is marked provisional until a read-back or a sync observes
-- the same assignment; then its raw is replaced in place and the mark
-- cleared, so history gets no version that differs only in raw.

-- +goose Up

ALTER TABLE assignment_versions ADD COLUMN provisional boolean NOT NULL DEFAULT false;

-- +goose Down

ALTER TABLE assignment_versions DROP COLUMN provisional;
