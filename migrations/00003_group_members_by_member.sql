-- A user's license status asks which groups the user belongs to: the
-- reverse of group_member_versions' (group_id, member_id) keys.

-- +goose Up
CREATE INDEX group_member_versions_member ON group_member_versions (member_id);

-- +goose Down
DROP INDEX group_member_versions_member;
