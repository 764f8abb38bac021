-- Change notifications for seatledger's read cache.
--
-- Every statement that writes a table the API's cached reads come from
-- (the mirror's versions, owners, sync runs, and prices)
-- notifies the channel seatledger_mirror (once per transaction: PostgreSQL
-- folds identical notifications, and delivers them at commit). Each
-- seatledger process listens on it and forgets its cached reads when one
-- arrives, so that a change made by any process (a sync's apply, a write
-- proxied to Graph, an owner set, or an operator's own SQL) is seen by
-- every process's cache. See internal/store/changes.go.

-- +goose Up

-- +goose StatementBegin
CREATE FUNCTION seatledger_mirror_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('seatledger_mirror', '');
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER allotment_versions_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON allotment_versions
    FOR EACH STATEMENT EXECUTE FUNCTION seatledger_mirror_changed();
CREATE TRIGGER assignment_versions_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON assignment_versions
    FOR EACH STATEMENT EXECUTE FUNCTION seatledger_mirror_changed();
CREATE TRIGGER waiting_member_versions_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON waiting_member_versions
    FOR EACH STATEMENT EXECUTE FUNCTION seatledger_mirror_changed();
CREATE TRIGGER assignment_error_versions_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON assignment_error_versions
    FOR EACH STATEMENT EXECUTE FUNCTION seatledger_mirror_changed();
CREATE TRIGGER user_versions_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON user_versions
    FOR EACH STATEMENT EXECUTE FUNCTION seatledger_mirror_changed();
CREATE TRIGGER group_member_versions_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON group_member_versions
    FOR EACH STATEMENT EXECUTE FUNCTION seatledger_mirror_changed();
CREATE TRIGGER allotment_owner_versions_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON allotment_owner_versions
    FOR EACH STATEMENT EXECUTE FUNCTION seatledger_mirror_changed();
CREATE TRIGGER sync_runs_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON sync_runs
    FOR EACH STATEMENT EXECUTE FUNCTION seatledger_mirror_changed();
-- Prices are not mirrored, but chargebacks are cached too.
CREATE TRIGGER prices_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON prices
    FOR EACH STATEMENT EXECUTE FUNCTION seatledger_mirror_changed();

-- +goose Down

DROP TRIGGER prices_changed ON prices;
DROP TRIGGER sync_runs_changed ON sync_runs;
DROP TRIGGER allotment_owner_versions_changed ON allotment_owner_versions;
DROP TRIGGER group_member_versions_changed ON group_member_versions;
DROP TRIGGER user_versions_changed ON user_versions;
DROP TRIGGER assignment_error_versions_changed ON assignment_error_versions;
DROP TRIGGER waiting_member_versions_changed ON waiting_member_versions;
DROP TRIGGER assignment_versions_changed ON assignment_versions;
DROP TRIGGER allotment_versions_changed ON allotment_versions;
DROP FUNCTION seatledger_mirror_changed();
