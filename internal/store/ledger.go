package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// The chargeback seat ledger (migration 00006, docs/chargeback.md): the
// seats of closed days, per time zone, computed once by the seat-day query
// and read back by Chargeback.

// ledgerChunkDays bounds the days one fill transaction computes: the
// seat-day query's size, and how long its day markers make concurrent
// fills of the same days wait.
const ledgerChunkDays = 31

// closedDaysSQL returns, for time zone $1, the last closed day (NULL before
// the first successful run), and within the days [$2, $3] clipped to it:
// the days the ledger lacks, the whole months it lacks the sums of, and
// the months in which some price starts after the first day (their sums
// cannot be priced as one), each ascending. A NULL $2 means $4 days back
// from the last closed day, a NULL $3 the last closed day.
//
// A day is closed when its end is at or before both now and the start of
// the latest successful sync run: every later change to the version tables
// is stamped at or after that instant (see the ledger's migration).
const closedDaysSQL = `
	WITH cutoff AS (
		-- NULL before the first successful run (least would ignore it).
		SELECT CASE WHEN max(started_at) IS NOT NULL THEN least(max(started_at), now()) END AS t
		FROM sync_runs
		WHERE outcome = 'succeeded'
	), last_closed AS (
		SELECT max(g)::date AS day
		FROM cutoff c,
		     generate_series(((c.t AT TIME ZONE $1)::date - 2)::timestamp, (c.t AT TIME ZONE $1)::date::timestamp,
		                     interval '1 day') AS g
		WHERE (g + interval '1 day') AT TIME ZONE $1 <= c.t
	), bounds AS (
		SELECT l.day AS last_closed, COALESCE($2::date, l.day - $4::int + 1) AS f,
		       CASE WHEN l.day IS NOT NULL THEN LEAST(COALESCE($3::date, l.day), l.day) END AS t
		FROM last_closed l
	)
	SELECT b.last_closed,
	       ARRAY(
	           SELECT g::date
	           FROM generate_series(b.f::timestamp, b.t::timestamp, interval '1 day') AS g
	           WHERE NOT EXISTS (SELECT 1 FROM chargeback_days k WHERE k.time_zone = $1 AND k.day = g::date)
	           ORDER BY 1),
	       ARRAY(
	           SELECT m::date
	           FROM generate_series(date_trunc('month', (b.f - 1)::timestamp) + interval '1 month', b.t::timestamp,
	                                interval '1 month') AS m
	           WHERE (m + interval '1 month')::date - 1 <= b.t
	             AND NOT EXISTS (SELECT 1 FROM chargeback_months k WHERE k.time_zone = $1 AND k.month = m::date)
	           ORDER BY 1),
	       ARRAY(
	           SELECT DISTINCT date_trunc('month', p.valid_from::timestamp)::date
	           FROM prices p
	           WHERE p.valid_from BETWEEN b.f AND b.t AND extract(day FROM p.valid_from) <> 1
	           ORDER BY 1)
	FROM bounds b`

// closedSpan is what closedDaysSQL found.
type closedSpan struct {
	lastClosed    pgtype.Date
	missingDays   []time.Time
	missingMonths []time.Time
	mixedMonths   []time.Time
}

// closedDays runs closedDaysSQL.
func (s *Store) closedDays(ctx context.Context, tz string, from, to *string, back int) (closedSpan, error) {
	var c closedSpan
	if err := s.pool.QueryRow(ctx, closedDaysSQL, tz, from, to, back).Scan(&c.lastClosed, &c.missingDays,
		&c.missingMonths, &c.mixedMonths); err != nil {
		return closedSpan{}, fmt.Errorf("find closed days: %w", translate(err))
	}
	return c, nil
}

// fill computes what c found missing into the ledger: days, then the
// sums of whole months (from those days). It returns the days computed.
func (s *Store) fill(ctx context.Context, tz string, c closedSpan) (int, error) {
	n, err := s.fillLedger(ctx, tz, c.missingDays)
	if err != nil {
		return n, err
	}
	if len(c.missingMonths) > 0 {
		if err := s.fillLedgerMonths(ctx, tz, c.missingMonths); err != nil {
			return n, err
		}
	}
	return n, nil
}

// closedPart is the closed days of a chargeback: the range, and the whole
// months in it whose sums may be read instead of their days.
type closedPart struct {
	r      dayRange
	months []time.Time // ascending, first days
	days   []time.Time // the days of r outside months, ascending
}

// splitClosed splits the days [from, to] of tz into the closed days at the
// start of the range, whose seats come from the ledger, and the open days
// after them; either is nil when it has no day. Before returning it fills
// the ledger with the closed days (and months) it lacks.
func (s *Store) splitClosed(ctx context.Context, tz string, from, to time.Time) (*closedPart, *dayRange, error) {
	f, t := from.Format(time.DateOnly), to.Format(time.DateOnly)
	c, err := s.closedDays(ctx, tz, &f, &t, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("chargeback: %w", err)
	}
	if _, err := s.fill(ctx, tz, c); err != nil {
		return nil, nil, fmt.Errorf("chargeback: %w", err)
	}
	last := c.lastClosed
	if !last.Valid || last.Time.Before(from) {
		return nil, &dayRange{f, t}, nil
	}
	closedTo := to
	var open *dayRange
	if last.Time.Before(to) {
		closedTo = last.Time
		open = &dayRange{last.Time.AddDate(0, 0, 1).Format(time.DateOnly), t}
	}
	closed := &closedPart{r: dayRange{f, closedTo.Format(time.DateOnly)}}
	for d := from; !d.After(closedTo); {
		next := d.AddDate(0, 0, 1)
		if d.Day() == 1 && !d.AddDate(0, 1, -1).After(closedTo) && !slices.ContainsFunc(c.mixedMonths, d.Equal) {
			closed.months = append(closed.months, d)
			next = d.AddDate(0, 1, 0)
		} else {
			closed.days = append(closed.days, d)
		}
		d = next
	}
	return closed, open, nil
}

// FillChargebackLedger computes into the chargeback ledger the seats of
// the closed days of timeZone (an IANA name) among the last days days
// that it lacks, and returns how many days it computed. The sync worker
// calls it after each successful run; Chargeback fills the days it is
// asked for itself, so this only moves the work out of the first request.
//
// A closed day is one whose end is at or before now and the start of the
// latest successful sync run: nothing can change its versions any more,
// so its seats are computed once and kept. Concurrent fills of the same
// days compute each day once.
func (s *Store) FillChargebackLedger(ctx context.Context, timeZone string, days int) (int, error) {
	if timeZone == "" {
		timeZone = "UTC"
	}
	if days <= 0 {
		return 0, nil
	}
	c, err := s.closedDays(ctx, timeZone, nil, nil, days)
	if err != nil {
		return 0, fmt.Errorf("fill chargeback ledger: %w", err)
	}
	n, err := s.fill(ctx, timeZone, c)
	if err != nil {
		return n, fmt.Errorf("fill chargeback ledger: %w", err)
	}
	if n > 0 {
		// Fresh statistics, so that reads of the new rows get the right
		// plan before autovacuum's next pass (a sample: milliseconds).
		if _, err := s.pool.Exec(ctx, `ANALYZE chargeback_days, chargeback_seat_days, chargeback_months, chargeback_seat_months`); err != nil {
			return n, fmt.Errorf("fill chargeback ledger: analyze: %w", err)
		}
	}
	return n, nil
}

// ChargebackLedgerZones returns the time zones the chargeback ledger holds
// days of, with UTC always among them, sorted.
func (s *Store) ChargebackLedgerZones(ctx context.Context) ([]string, error) {
	const q = `
		SELECT 'UTC'
		UNION
		SELECT DISTINCT time_zone FROM chargeback_days
		ORDER BY 1`
	rows, _ := s.pool.Query(ctx, q)
	zones, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list chargeback ledger zones: %w", translate(err))
	}
	return zones, nil
}

// fillLedger computes the seats of days (closed, ascending) of tz into the
// ledger, in runs of consecutive days of at most ledgerChunkDays, one
// transaction each, and returns the number of days it computed.
func (s *Store) fillLedger(ctx context.Context, tz string, days []time.Time) (int, error) {
	total := 0
	for len(days) > 0 {
		n := 1
		for n < len(days) && n < ledgerChunkDays && days[n].Equal(days[n-1].AddDate(0, 0, 1)) {
			n++
		}
		done, err := s.fillLedgerDays(ctx, tz, days[:n])
		total += done
		if err != nil {
			return total, err
		}
		days = days[n:]
	}
	return total, nil
}

// fillLedgerDays computes the seats of consecutive closed days of tz into
// the ledger in one transaction, and returns how many days it computed.
//
// It first marks the days computed (ascending, so two fills never wait on
// each other in a cycle); a day another transaction has marked, committed
// or not, is left to it: INSERT … ON CONFLICT waits for that transaction
// and skips the day if it committed. Seats are then inserted for the days
// this transaction marked, and only those.
func (s *Store) fillLedgerDays(ctx context.Context, tz string, days []time.Time) (int, error) {
	var computed int
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		const mark = `
			INSERT INTO chargeback_days (time_zone, day)
			SELECT $1, d FROM unnest($2::date[]) AS d ORDER BY d
			ON CONFLICT DO NOTHING
			RETURNING day`
		rows, _ := tx.Query(ctx, mark, tz, days)
		marked, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
		if err != nil {
			return fmt.Errorf("mark days: %w", err)
		}
		if len(marked) == 0 {
			return nil
		}
		slices.SortFunc(marked, time.Time.Compare)
		if err := tuneSeatDayQuery(ctx, tx); err != nil {
			return err
		}
		var b sqlBuilder
		tzArg := b.arg(tz)
		r := dayRange{marked[0].Format(time.DateOnly), marked[len(marked)-1].Format(time.DateOnly)}
		q := "WITH" + seatDaySQL(&b, r, tzArg, "", "") + `
			INSERT INTO chargeback_seat_days
				(time_zone, day, allotment_id, sku_id, sku_part_number, department, idle, seats, dup_seats)
			SELECT ` + tzArg + `, l.day, l.allotment_id, al.sku_id, al.sku_part_number, l.department, l.idle, l.seats, l.dup_seats
			FROM lines l
			JOIN allot al USING (allotment_id, day)
			WHERE l.day = ANY (` + b.arg(marked) + `::date[])`
		if _, err := tx.Exec(ctx, q, b.args...); err != nil {
			return fmt.Errorf("count seats: %w", err)
		}
		computed = len(marked)
		return nil
	})
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return 0, err
		}
		return 0, fmt.Errorf("compute days %s to %s of %s: %w", days[0].Format(time.DateOnly),
			days[len(days)-1].Format(time.DateOnly), tz, translate(err))
	}
	return computed, nil
}

// fillLedgerMonths sums into the ledger the days of months (first days,
// ascending) of tz, in one transaction: each month whose days are all in
// the ledger and that no other transaction has marked (the days' pattern,
// see fillLedgerDays).
func (s *Store) fillLedgerMonths(ctx context.Context, tz string, months []time.Time) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		const mark = `
			INSERT INTO chargeback_months (time_zone, month)
			SELECT $1, m FROM unnest($2::date[]) AS m
			WHERE (SELECT count(*) FROM chargeback_days k
			       WHERE k.time_zone = $1 AND k.day >= m AND k.day < (m + interval '1 month')::date)
			      = (m + interval '1 month')::date - m
			ORDER BY m
			ON CONFLICT DO NOTHING
			RETURNING month`
		rows, _ := tx.Query(ctx, mark, tz, months)
		marked, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
		if err != nil {
			return fmt.Errorf("mark months: %w", err)
		}
		if len(marked) == 0 {
			return nil
		}
		slices.SortFunc(marked, time.Time.Compare)
		const sum = `
			INSERT INTO chargeback_seat_months (time_zone, month, allotment_id, sku_id, sku_part_number, department, idle,
			                                    seat_days, dup_seat_days, first_day, last_day)
			SELECT time_zone, date_trunc('month', day::timestamp)::date, allotment_id, sku_id, sku_part_number, department, idle,
			       sum(seats), sum(dup_seats), min(day), max(day)
			FROM chargeback_seat_days
			WHERE time_zone = $1 AND day >= $3::date AND day < ($4::date + interval '1 month')::date
			  AND date_trunc('month', day::timestamp)::date = ANY ($2::date[])
			GROUP BY 1, 2, 3, 4, 5, 6, 7`
		if _, err := tx.Exec(ctx, sum, tz, marked, marked[0], marked[len(marked)-1]); err != nil {
			return fmt.Errorf("sum months: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sum months of %s: %w", tz, translate(err))
	}
	return nil
}
