package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// Price is the monthly price of one licence of a SKU from a day on.
// Amounts are exact decimal strings ("57.00"), never floats.
type Price struct {
	SKUID string
	// SKUPartNumber is the part number the mirror knows for SKUID ("" if
	// none). Set by reads.
	SKUPartNumber string
	// Currency is an ISO 4217 code in upper case.
	Currency string
	// MonthlyUnitPrice is what finance pays for one licence for one
	// calendar month.
	MonthlyUnitPrice string
	// MonthlyListUnitPrice is the public list price, "" when it equals
	// MonthlyUnitPrice.
	MonthlyListUnitPrice string
	// ValidFrom is the first day the price applies, "YYYY-MM-DD"; ValidTo
	// the first day a later price applies, "" for the newest (set by
	// reads).
	ValidFrom, ValidTo string
	// UpdatedAt and UpdatedBy say when and by whom the price was set; the
	// store sets UpdatedAt.
	UpdatedAt time.Time
	UpdatedBy string
}

// priceColumns are the columns scanPrice reads from the CTE "p" of
// ListPrices and SetPrice.
const priceColumns = `p.sku_id, COALESCE(sk.sku_part_number, ''), p.currency, p.monthly_unit_price::text,
	COALESCE(p.monthly_list_unit_price::text, ''), p.valid_from, p.valid_to, p.updated_at, p.updated_by`

// skuPartNumberJoin finds a part number for p.sku_id: the current
// allotment of that SKU, else the latest version of any.
const skuPartNumberJoin = `
	LEFT JOIN LATERAL (
		SELECT av.sku_part_number
		FROM allotment_versions av
		WHERE av.sku_id = p.sku_id
		ORDER BY upper_inf(av.valid) DESC, lower(av.valid) DESC
		LIMIT 1
	) sk ON true`

func scanPrice(row pgx.CollectableRow) (Price, error) {
	var (
		p        Price
		from, to pgtype.Date
	)
	if err := row.Scan(&p.SKUID, &p.SKUPartNumber, &p.Currency, &p.MonthlyUnitPrice, &p.MonthlyListUnitPrice,
		&from, &to, &p.UpdatedAt, &p.UpdatedBy); err != nil {
		return Price{}, err
	}
	p.ValidFrom = from.Time.Format(time.DateOnly)
	if to.Valid {
		p.ValidTo = to.Time.Format(time.DateOnly)
	}
	p.UpdatedAt = p.UpdatedAt.UTC()
	return p, nil
}

// SetPrice stores p (SKUID, Currency, MonthlyUnitPrice, optional
// MonthlyListUnitPrice, ValidFrom, UpdatedBy), replacing the price of the
// same SKU and ValidFrom if there is one, and returns it as stored. Amounts
// must be non-negative decimal strings; callers validate formats, the
// database enforces the rest.
func (s *Store) SetPrice(ctx context.Context, p Price) (Price, error) {
	defer s.changed() // readers see this write at once (changes.go)
	if p.SKUID == "" || p.ValidFrom == "" || p.Currency == "" || p.MonthlyUnitPrice == "" {
		return Price{}, errors.New("set price: sku id, valid_from, currency and monthly unit price are required")
	}
	var list pgtype.Text
	if p.MonthlyListUnitPrice != "" {
		list = pgtype.Text{String: p.MonthlyListUnitPrice, Valid: true}
	}
	const q = `
		WITH up AS (
			INSERT INTO prices (sku_id, valid_from, currency, monthly_unit_price, monthly_list_unit_price, updated_by)
			VALUES ($1, $2::date, $3, $4::numeric, $5::numeric, $6)
			ON CONFLICT (sku_id, valid_from) DO UPDATE
			SET currency = EXCLUDED.currency,
			    monthly_unit_price = EXCLUDED.monthly_unit_price,
			    monthly_list_unit_price = EXCLUDED.monthly_list_unit_price,
			    updated_at = now(),
			    updated_by = EXCLUDED.updated_by
			RETURNING *
		), p AS (
			SELECT up.*, (SELECT min(n.valid_from) FROM prices n
			              WHERE n.sku_id = up.sku_id AND n.valid_from > up.valid_from) AS valid_to
			FROM up
		)
		SELECT ` + priceColumns + `
		FROM p` + skuPartNumberJoin
	rows, _ := s.pool.Query(ctx, q, p.SKUID, p.ValidFrom, p.Currency, p.MonthlyUnitPrice, list, p.UpdatedBy)
	got, err := pgx.CollectExactlyOneRow(rows, scanPrice)
	if err != nil {
		return Price{}, fmt.Errorf("set price of sku %q: %w", p.SKUID, translate(err))
	}
	return got, nil
}

// SKUEverCarried reports whether any allotment the mirror holds, now or
// in its history, carries the SKU skuID (compared case-insensitively).
func (s *Store) SKUEverCarried(ctx context.Context, skuID string) (bool, error) {
	const q = `SELECT EXISTS (SELECT 1 FROM allotment_versions WHERE lower(sku_id) = lower($1))`
	var ok bool
	if err := s.pool.QueryRow(ctx, q, skuID).Scan(&ok); err != nil {
		return false, fmt.Errorf("look up sku %q: %w", skuID, translate(err))
	}
	return ok, nil
}

// ListPricesParams selects a page of prices.
type ListPricesParams struct {
	// SKUID keeps only this SKU's prices when set.
	SKUID string
	// AsOf ("YYYY-MM-DD") selects the one price per SKU valid that day;
	// "" means today (UTC). Ignored with IncludeHistory.
	AsOf string
	// IncludeHistory returns every price, by SKU id then ValidFrom.
	IncludeHistory bool
	// PageSize is the most prices to return; 0 or less means 100.
	PageSize int
	// AfterSKU and AfterValidFrom continue after that price (the last of
	// the previous page); "" starts at the beginning.
	AfterSKU, AfterValidFrom string
}

// ListPrices returns a page of prices ordered by SKU id (then ValidFrom):
// by default, for each SKU, the price valid on p.AsOf (SKUs with no price
// yet that day are left out).
func (s *Store) ListPrices(ctx context.Context, p ListPricesParams) ([]Price, error) {
	var b sqlBuilder
	skuCond := "TRUE"
	if p.SKUID != "" {
		skuCond = "pr.sku_id = " + b.arg(p.SKUID)
	}
	if !p.IncludeHistory {
		asOf := p.AsOf
		if asOf == "" {
			asOf = time.Now().UTC().Format(time.DateOnly)
		}
		d := b.arg(asOf) + "::date"
		b.and("p.valid_from <= " + d)
		b.and("(p.valid_to IS NULL OR p.valid_to > " + d + ")")
	}
	if p.AfterSKU != "" {
		if p.IncludeHistory {
			b.and("(p.sku_id, p.valid_from) > (" + b.arg(p.AfterSKU) + ", " + b.arg(p.AfterValidFrom) + "::date)")
		} else {
			b.and("p.sku_id > " + b.arg(p.AfterSKU))
		}
	}
	q := `
		WITH p AS (
			SELECT pr.*, lead(pr.valid_from) OVER (PARTITION BY pr.sku_id ORDER BY pr.valid_from) AS valid_to
			FROM prices pr
			WHERE ` + skuCond + `
		)
		SELECT ` + priceColumns + `
		FROM p` + skuPartNumberJoin + `
		WHERE ` + b.where() + `
		ORDER BY p.sku_id, p.valid_from
		LIMIT ` + b.arg(pageLimit(p.PageSize))
	rows, _ := s.pool.Query(ctx, q, b.args...)
	prices, err := pgx.CollectRows(rows, scanPrice)
	if err != nil {
		return nil, fmt.Errorf("list prices: %w", translate(err))
	}
	return prices, nil
}
