package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/seatledger/seatledger/internal/store"
	"github.com/seatledger/seatledger/internal/store/storetest"
)

// seedChargebackBench writes a tenant straight into the version tables: 20
// allotments of 4 SKUs (priced, the price changing on last month's first
// day), 20,000
// users in 12 departments, 50,000 direct assignments held since
// 2025-10-01 of which a tenth churn every month, a twentieth of the users
// changing department each month; one successful run an hour ago. Returns last month's first and last day.
func seedChargebackBench(b *testing.B, dsn string) (string, string) {
	b.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	now := time.Now().UTC()
	first := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -1, 0)
	for _, q := range []string{
		`INSERT INTO sync_runs (started_at, finished_at, outcome) VALUES (now() - interval '1 hour', now(), 'succeeded')`,
		`INSERT INTO allotment_versions (id, sku_id, sku_part_number, allotted_units, consumed_units, assignable_to,
		     services, subscriptions, valid)
		 SELECT 'A' || i, 'sku-' || (i % 4), 'PART_' || (i % 4), 3000, 2500, '{user,group}', '[]', '[]',
		        tstzrange('2025-10-01', NULL)
		 FROM generate_series(1, 20) AS i`,
		`INSERT INTO user_versions (id, user_principal_name, display_name, department, company_name, cost_center,
		     account_enabled, valid)
		 SELECT 'u' || i, 'u' || i || '@x', 'u' || i, 'Dept' || ((i + v) % 12), '', '', true,
		        CASE WHEN i % 20 NOT BETWEEN 1 AND 12 THEN tstzrange('2025-10-01', NULL)
		             WHEN v = 0 THEN tstzrange('2025-10-01', '2025-10-01'::timestamptz + make_interval(days => 30 * (i % 20)))
		             ELSE tstzrange('2025-10-01'::timestamptz + make_interval(days => 30 * (i % 20)), NULL) END
		 FROM generate_series(1, 20000) AS i, generate_series(0, 1) AS v
		 WHERE v = 0 OR i % 20 BETWEEN 1 AND 12`,
		`INSERT INTO assignment_versions (id, allotment_id, assignee_id, assignee_type, disabled_plan_ids, first_observed_at, valid)
		 SELECT 'as' || i || '-' || m, 'A' || (1 + i % 20), 'u' || (1 + (i * 7 + m) % 20000), 'user', '{}',
		        '2025-10-01'::timestamptz + make_interval(days => 30 * m),
		        tstzrange('2025-10-01'::timestamptz + make_interval(days => 30 * m),
		                  CASE WHEN i % 10 = m % 10 THEN '2025-10-01'::timestamptz + make_interval(days => 30 * m + 29) END)
		 FROM generate_series(1, 50000) AS i, generate_series(0, 13) AS m
		 WHERE (m = 0 OR i % 10 = (m - 1) % 10) AND '2025-10-01'::timestamptz + make_interval(days => 30 * m) < now()`,
		`INSERT INTO prices (sku_id, valid_from, currency, monthly_unit_price, updated_by)
		 SELECT 'sku-' || k, d, 'USD', 10 + k + (d > '2025-12-31')::int * 3.5, 'bench'
		 FROM generate_series(0, 3) AS k, unnest(ARRAY['2025-01-01'::date, $1::date]) AS d`,
		`INSERT INTO allotment_daily (allotment_id, day, run_id, observed_at, allotted, consumed, waiting, errors)
		 SELECT 'A' || i, d, (SELECT max(id) FROM sync_runs), now(), 3000, 2500, 0, 0
		 FROM generate_series(1, 20) AS i, generate_series($1::date, $1::date + 40, interval '1 day') AS d`,
		`ANALYZE`,
	} {
		args := []any{}
		if strings.Contains(q, "$1") {
			args = append(args, first)
		}
		if _, err := conn.Exec(ctx, q, args...); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	return first.Format(time.DateOnly), first.AddDate(0, 1, -1).Format(time.DateOnly)
}

// BenchmarkChargebackMonth measures last month's chargeback by department
// from the ledger (as the API's JSON asks it: lines summed over days, then
// grouped), at the day grain (FOCUS), counted live from the history, this
// month so far (its open days are counted live), and the aggregate over the month's allotment_daily rows that issue 6
// compares it with.
func BenchmarkChargebackMonth(b *testing.B) {
	dsn := storetest.NewDSN(b)
	from, to := seedChargebackBench(b, dsn)
	ctx := context.Background()
	st, err := store.Open(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	fill := time.Now()
	days, err := st.FillChargebackLedger(ctx, "UTC", 62)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("ledger fill: %d days in %v", days, time.Since(fill))
	p := store.ChargebackParams{From: from, To: to}
	run := func(b *testing.B, f func() error) {
		for b.Loop() {
			if err := f(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("ledger-summed", func(b *testing.B) {
		ps := p
		ps.SumDays = true
		run(b, func() error {
			cb, err := st.Chargeback(ctx, ps)
			store.GroupChargeback(cb.Lines, store.GroupByDepartment)
			return err
		})
	})
	b.Run("ledger-daily", func(b *testing.B) {
		run(b, func() error {
			cb, err := st.Chargeback(ctx, p)
			store.GroupChargeback(cb.Lines, store.GroupByDepartment)
			return err
		})
	})
	b.Run("ledger-summed-proportional", func(b *testing.B) {
		ps := p
		ps.SumDays, ps.IdlePolicy = true, store.IdleProportional
		run(b, func() error {
			cb, err := st.Chargeback(ctx, ps)
			store.GroupChargeback(cb.Lines, store.GroupByDepartment)
			return err
		})
	})
	b.Run("month-to-date", func(b *testing.B) {
		// This month so far: closed days from the ledger, today and
		// maybe yesterday counted from the history.
		now := time.Now().UTC()
		ps := store.ChargebackParams{From: now.AddDate(0, 0, 1-now.Day()).Format(time.DateOnly), To: now.Format(time.DateOnly), SumDays: true}
		run(b, func() error {
			cb, err := st.Chargeback(ctx, ps)
			store.GroupChargeback(cb.Lines, store.GroupByDepartment)
			return err
		})
	})
	b.Run("live", func(b *testing.B) {
		run(b, func() error {
			cb, err := st.LiveChargeback(ctx, p)
			store.GroupChargeback(cb.Lines, store.GroupByDepartment)
			return err
		})
	})
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	b.Run("rollup", func(b *testing.B) {
		run(b, func() error {
			rows, err := conn.Query(ctx, `SELECT allotment_id, sum(consumed), sum(allotted) FROM allotment_daily
				WHERE day BETWEEN $1::date AND $2::date GROUP BY 1`, from, to)
			if err != nil {
				return err
			}
			rows.Close()
			return rows.Err()
		})
	})
}
