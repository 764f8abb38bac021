-- Chargeback: the monthly unit prices finance sets per SKU, with history.
-- Microsoft's licensing data carries no prices. One row per SKU and first
-- day of validity; a price applies from valid_from until the next row's
-- valid_from. Setting a price again for the same day replaces the row, so
-- history is the set of rows, and corrections of a day are in place (the
-- audit log keeps who changed what).
--
-- Amounts are numeric (exact decimals), never floating point. The seat-day
-- computation itself reads the mirror's version tables (see
-- internal/store/chargeback.go and docs/chargeback.md).

-- +goose Up

CREATE TABLE prices (
    sku_id                  text COLLATE "C" NOT NULL,
    valid_from              date        NOT NULL,
    currency                text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    monthly_unit_price      numeric     NOT NULL CHECK (monthly_unit_price >= 0),
    -- NULL when the list price equals monthly_unit_price.
    monthly_list_unit_price numeric     CHECK (monthly_list_unit_price >= 0),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    updated_by              text        NOT NULL,
    PRIMARY KEY (sku_id, valid_from)
);

-- Chargeback finds the allotments of a range by their versions' validity.
CREATE INDEX allotment_versions_valid ON allotment_versions USING gist (valid);
-- and the assignments (direct and to groups) held in the range.
CREATE INDEX assignment_versions_valid ON assignment_versions USING gist (valid);

-- +goose Down

DROP INDEX assignment_versions_valid;
DROP INDEX allotment_versions_valid;
DROP TABLE prices;
