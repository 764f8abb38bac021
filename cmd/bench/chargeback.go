package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	seatledgerv1 "github.com/seatledger/seatledger/gen/seatledger/v1"
	"github.com/seatledger/seatledger/internal/pglocal"
)

// historyStart is how long before now the primary tenant's first sync is
// dated, so that its mirror holds a year of history for the chargeback.
const historyStart = 365 * 24 * time.Hour

// chargebackFigures compares one month's chargeback with the least a
// correct answer must read, with one and three years of history.
type chargebackFigures struct {
	from, to   string
	oneYear    time.Duration // GetChargeback, fastest of the calls, the read cache emptied before each
	threeYears time.Duration
	cached     time.Duration // GetChargeback asked again: answered by the read cache
	rollup     time.Duration // aggregate over the month's allotment_daily rows
	// ledgerFill is the chargeback ledger fill the sync worker runs after
	// each run (closed days of the last ledgerDays days, UTC), before the
	// 1-year measurement; ledgerFill3y the same fill into an emptied
	// ledger after the history of years 2 and 3 is added.
	ledgerFill, ledgerFill3y time.Duration
	ledgerDays               int // days the first fill computed
	lines                    int
	historyRows              int64 // closed assignment versions added for years 2 and 3
	skipped                  string
	calls                    int
	deadline                 time.Duration
	timedOut                 string // which measurement hit the deadline
}

// lastMonth returns the first and last day of the calendar month before now.
func lastMonth(now time.Time) (string, string) {
	first := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -1, 0)
	return first.Format(time.DateOnly), first.AddDate(0, 1, -1).Format(time.DateOnly)
}

// fastest runs f n times and returns its fastest time.
func fastest(n int, f func() error) (time.Duration, error) {
	return fastestAfter(n, func() error { return nil }, f)
}

// fastestAfter runs prepare then f, n times, and returns f's fastest time.
func fastestAfter(n int, prepare, f func() error) (time.Duration, error) {
	var best time.Duration
	for i := range n {
		if err := prepare(); err != nil {
			return 0, err
		}
		t0 := time.Now()
		if err := f(); err != nil {
			return 0, err
		}
		if d := time.Since(t0); i == 0 || d < best {
			best = d
		}
	}
	return best, nil
}

// ledgerWindow is the window of the sync worker's ledger fill after each
// run (internal/sync's ledgerWindow).
const ledgerWindow = 62

// benchChargeback measures GetChargeback (by department) of last month on
// inst, whose history starts a year ago, against an aggregate over that
// month's daily roll-up; then adds two more years of closed assignment
// history before it (a tenth of the assignments replaced every month) and
// measures the same month again.
//
// The harness syncs with RunOnce, not the Run loop, so it fills the
// chargeback ledger itself as the loop does after a run (timed), before
// the calls. After adding years 2 and 3 it empties the ledger and fills it
// again (timed): the added versions lie before last month, so the month's
// seats are unchanged, but the fill then counts them again from the longer
// history, and the calls read what that fill wrote.
func benchChargeback(ctx context.Context, pg *pglocal.Server, db string, inst *instance, calls int, deadline time.Duration) (chargebackFigures, error) {
	f := chargebackFigures{calls: calls, deadline: deadline}
	f.from, f.to = lastMonth(time.Now().UTC())
	client := seatledgerv1.NewChargebackServiceClient(inst.conn)
	req := &seatledgerv1.GetChargebackRequest{From: f.from, To: f.to, GroupBy: seatledgerv1.ChargebackGroupBy_CHARGEBACK_GROUP_BY_DEPARTMENT}
	get := func() error {
		cctx, cancel := context.WithTimeout(ctx, deadline)
		defer cancel()
		resp, err := client.GetChargeback(cctx, req)
		if err == nil {
			f.lines = len(resp.GetRows())
		}
		return err
	}
	conn, err := pgx.Connect(ctx, pg.DSN(db))
	if err != nil {
		return f, fmt.Errorf("chargeback baseline: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rollup := func() error {
		rows, err := conn.Query(ctx, `SELECT allotment_id, sum(consumed), sum(allotted) FROM allotment_daily
			WHERE day BETWEEN $1::date AND $2::date GROUP BY 1`, f.from, f.to)
		if err != nil {
			return err
		}
		rows.Close()
		return rows.Err()
	}
	if f.rollup, err = fastest(calls, rollup); err != nil {
		return f, fmt.Errorf("chargeback baseline: %w", err)
	}
	fill := func() (time.Duration, int, error) {
		start := time.Now()
		n, err := inst.st.FillChargebackLedger(ctx, "UTC", ledgerWindow)
		return time.Since(start), n, err
	}
	if f.ledgerFill, f.ledgerDays, err = fill(); err != nil {
		return f, fmt.Errorf("chargeback ledger fill: %w", err)
	}
	logf("chargeback ledger fill: %d days in %v", f.ledgerDays, f.ledgerFill.Round(time.Millisecond))
	// The connection and the caller's token are checked once before the
	// calls (a price listing: it reads no seat), as the read benchmarks
	// before this one would have.
	if _, err := client.ListPrices(ctx, &seatledgerv1.ListPricesRequest{}); err != nil && status.Code(err) != codes.Unimplemented {
		return f, fmt.Errorf("ListPrices: %w", err)
	}
	// Each measured call computes its answer: before it, a statement that
	// changes nothing but notifies (as any write does) empties the read
	// cache, and the harness waits until seatledger has heard of it.
	uncached := func() error {
		g, _ := inst.st.Generation()
		if _, err := conn.Exec(ctx, `DELETE FROM prices WHERE false`); err != nil {
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return inst.st.WaitGeneration(wctx, g)
	}
	// A warm-up round, untimed: the first calls on each of the pool's
	// connections prepare the chargeback's statements there, a cost the
	// 3-year round would not pay again.
	_, err = fastestAfter(calls, uncached, get)
	if err == nil {
		f.oneYear, err = fastestAfter(calls, uncached, get)
	}
	switch status.Code(err) {
	case codes.OK:
	case codes.Unimplemented:
		f.skipped = "GetChargeback answers UNIMPLEMENTED in this tree"
		return f, nil
	case codes.DeadlineExceeded:
		f.timedOut = "1 year"
		logf("chargeback %s..%s: over %v (1 year of history)", f.from, f.to, deadline)
		return f, nil
	default:
		return f, fmt.Errorf("GetChargeback: %w", err)
	}
	if f.cached, err = fastest(calls, get); err != nil {
		return f, fmt.Errorf("GetChargeback: %w", err)
	}
	logf("chargeback %s..%s: %v (1 year of history), %v asked again (read cache), roll-up %v", f.from, f.to, f.oneYear, f.cached, f.rollup)

	// Years 2 and 3: in each of the 24 months before the first sync, a
	// tenth of today's assignments stand for assignments held that month
	// only (new ids, closed versions), as churn would leave them.
	tag, err := conn.Exec(ctx, `
		INSERT INTO assignment_versions (id, allotment_id, assignee_id, assignee_type, disabled_plan_ids, raw, first_observed_at, valid)
		SELECT a.id || '~' || m, a.allotment_id, a.assignee_id, a.assignee_type, a.disabled_plan_ids, a.raw,
		       lower(a.valid) - make_interval(days => 30 * (m + 1)),
		       tstzrange(lower(a.valid) - make_interval(days => 30 * (m + 1)), lower(a.valid) - make_interval(days => 30 * m))
		FROM assignment_versions a CROSS JOIN generate_series(0, 23) AS m
		WHERE upper_inf(a.valid) AND (hashtext(a.id) + m) % 10 = 0`)
	if err != nil {
		return f, fmt.Errorf("add history: %w", err)
	}
	f.historyRows = tag.RowsAffected()
	if _, err := conn.Exec(ctx, `ANALYZE assignment_versions`); err != nil {
		return f, fmt.Errorf("add history: %w", err)
	}
	// Days already in the ledger are closed and never recounted; history
	// written straight into their past, as here, bypasses that rule, so
	// the ledger is emptied and filled again from the longer history.
	if _, err := conn.Exec(ctx, `DELETE FROM chargeback_months; DELETE FROM chargeback_days`); err != nil {
		return f, fmt.Errorf("empty chargeback ledger: %w", err)
	}
	if f.ledgerFill3y, _, err = fill(); err != nil {
		return f, fmt.Errorf("chargeback ledger fill: %w", err)
	}
	logf("chargeback ledger fill, 3 years of history: %v", f.ledgerFill3y.Round(time.Millisecond))
	// The same warm-up as before the 1-year round: the fill emptied and
	// rewrote the ledger (and analyzed it), so each connection plans the
	// chargeback's statements again on its first call.
	_, err = fastestAfter(calls, uncached, get)
	if err == nil {
		f.threeYears, err = fastestAfter(calls, uncached, get)
	}
	switch status.Code(err) {
	case codes.OK:
	case codes.DeadlineExceeded:
		f.timedOut = "3 years"
		return f, nil
	default:
		return f, fmt.Errorf("GetChargeback: %w", err)
	}
	logf("chargeback %s..%s: %v (3 years of history, %d closed versions added)", f.from, f.to, f.threeYears, f.historyRows)
	return f, nil
}
