-- The chargeback ledger's days were counted with the members waiting in an
-- allotment's waiting room as seat holders; they hold no licence (Graph's
-- consumedUnits leaves them out), and the seat-day query now leaves them
-- out too. The ledger keeps closed days forever, so its rows are dropped
-- here and counted again, by the corrected query, on the next request or
-- the sync leader's next fill (docs/chargeback.md, "The ledger").

-- +goose Up
DELETE FROM chargeback_months;  -- chargeback_seat_months follows by cascade
DELETE FROM chargeback_days;    -- chargeback_seat_days likewise

-- +goose Down
-- Nothing to undo: the ledger is a cache of the history, and the days
-- dropped are counted again when asked for.
SELECT 1;
