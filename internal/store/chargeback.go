package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// Idle-seat policies: who pays for licences allotted but held by nobody.
const (
	// IdleUnallocated leaves idle seats in their own rows, with no
	// department.
	IdleUnallocated = "unallocated"
	// IdleProportional shares an allotment's idle seats of a day among the
	// departments holding its seats that day, in proportion to their
	// seats. Days with no holder stay unallocated.
	IdleProportional = "proportional"
	// IdleOwner charges an allotment's idle seats of a day to its owner
	// department that day (SetAllotmentOwner's history); days without an
	// owner stay unallocated.
	IdleOwner = "owner"
)

// Allocation methods of chargeback lines (FOCUS x_AllocationMethod).
const (
	// AllocSeatHolder: seats charged to their holder's department.
	AllocSeatHolder = "SeatHolderDepartment"
	// AllocIdleProportional: idle seats shared in proportion to use.
	AllocIdleProportional = "IdleProportionalToUse"
	// AllocIdleOwner: idle seats charged to the allotment's owner.
	AllocIdleOwner = "IdleToAllotmentOwner"
)

// Chargeback groupings.
const (
	GroupByDepartment = "department"
	GroupByAllotment  = "allotment"
	GroupBySKU        = "sku"
)

// maxChargebackDays bounds the range of one chargeback computation.
const maxChargebackDays = 732

// ChargebackParams selects the days and seats of a chargeback.
type ChargebackParams struct {
	// From and To are the first and last day, inclusive ("YYYY-MM-DD"),
	// calendar days in TimeZone.
	From, To string
	// TimeZone is an IANA zone name; "" means UTC.
	TimeZone string
	// IdlePolicy is IdleUnallocated (the default for ""),
	// IdleProportional or IdleOwner.
	IdlePolicy string
	// Department, AllotmentID and SKUID keep only matching lines when set.
	// The department filter applies after idle seats are allocated.
	Department, AllotmentID, SKUID string
	// SumDays merges the lines of one calendar month that differ only by
	// their day: same allotment, SKU, department, seat state, allocation
	// method and price. A merged line's Seats, DuplicateSeats, Cost and
	// ListCost are the exact sums of its days'; Day and DayStart are those
	// of its first day, DayEnd the end of its last. GroupChargeback gives
	// the same rows and totals from merged lines as from daily ones, from
	// far fewer lines; exports that need the day (FOCUS) leave it unset.
	SumDays bool
}

// ChargebackLine is the seats of one day, allotment, department and seat
// state, with their exact cost: the grain of the FOCUS export, from which
// every grouping is summed.
type ChargebackLine struct {
	// Day is the calendar day in the request's time zone, "YYYY-MM-DD";
	// DayStart and DayEnd are its bounds as instants, MonthStart and
	// MonthEnd those of its calendar month (the end is exclusive).
	Day                  string
	DayStart, DayEnd     time.Time
	MonthStart, MonthEnd time.Time
	AllotmentID          string
	SKUID                string
	SKUPartNumber        string
	// Department is the seat holders' department that day, or for idle
	// lines the department the policy charged ("" when unallocated, and
	// for holders without a department).
	Department string
	// Idle marks idle seats (allotted, held by nobody).
	Idle bool
	// AllocationMethod is AllocSeatHolder for held seats, and for idle
	// seats AllocIdleProportional, AllocIdleOwner or "" (unallocated).
	AllocationMethod string
	// Seats is the number of licences: an integer, except for idle seats
	// shared in proportion to use.
	Seats *big.Rat
	// DuplicateSeats counts seats whose holder also held the SKU from
	// another allotment that day.
	DuplicateSeats int64
	// DaysInMonth is the number of days of Day's month.
	DaysInMonth int64
	// Currency, UnitPrice and ListUnitPrice are the SKU's monthly price
	// valid on Day (decimal text); all "" when the SKU has no price that
	// day.
	Currency, UnitPrice, ListUnitPrice string
	// Cost = Seats × UnitPrice ÷ DaysInMonth and ListCost likewise, exact;
	// zero without a price.
	Cost, ListCost *big.Rat

	owner string // the allotment's owner department that day (idle lines, owner policy)
}

// Priced reports whether the line's SKU had a price on its day.
func (l ChargebackLine) Priced() bool { return l.UnitPrice != "" }

// Chargeback is the result of Store.Chargeback.
type Chargeback struct {
	// Lines are ordered by day, allotment, seat state (held first),
	// department.
	Lines []ChargebackLine
	// UnpricedSKUs are the SKUs with seat-days on days without a price.
	UnpricedSKUs []string
	// HistoryStart is when the mirror's history begins: the start of the
	// first successful sync run (zero before any). Seats held before it
	// are unknown, not zero.
	HistoryStart time.Time
	// IncompleteHistory reports that some day of the range began before
	// HistoryStart (or that there is no history yet): its seats are not
	// all known.
	IncompleteHistory bool
}

// dayRange is a range of calendar days, both included ("YYYY-MM-DD").
type dayRange struct{ from, to string }

// Chargeback computes seat-days and their exact cost for a range of days
// from the mirror's history (see docs/chargeback.md for the method):
//
//   - a holder (user or device) counts one seat of an allotment on a day
//     when it held the seat at any moment of that day, directly or as a
//     direct member of an assigned group (group members only when the
//     allotment is assignable to their kind), once however many paths;
//   - its department is the one of the user's latest version overlapping
//     that day (the department at the end of the day, or when the user
//     left during the day, the last one seen);
//   - an allotment's allotted units on a day are those of its latest
//     version overlapping the day, and its idle seats the allotted units
//     minus the holders counted (never negative);
//   - the price is the SKU's price valid that day, divided by the days of
//     the month.
//
// Closed days (see FillChargebackLedger) are read from the seat ledger,
// computed first when the ledger lacks them; the open days at the end of
// the range (today, and yesterday until the next sync run) are counted
// from the history by the same set-based query. Prices and owners are
// joined as the lines are read; Go then allocates idle seats by
// p.IdlePolicy with exact rational arithmetic.
func (s *Store) Chargeback(ctx context.Context, p ChargebackParams) (Chargeback, error) {
	return s.chargeback(ctx, p, false)
}

// chargeback is Chargeback; live counts every day from the history,
// without the ledger (tests compare the two).
func (s *Store) chargeback(ctx context.Context, p ChargebackParams, live bool) (Chargeback, error) {
	from, err := time.Parse(time.DateOnly, p.From)
	if err != nil {
		return Chargeback{}, fmt.Errorf("chargeback: from: %w", err)
	}
	to, err := time.Parse(time.DateOnly, p.To)
	if err != nil {
		return Chargeback{}, fmt.Errorf("chargeback: to: %w", err)
	}
	if to.Before(from) {
		return Chargeback{}, errors.New("chargeback: to is before from")
	}
	if days := int(to.Sub(from).Hours()/24) + 1; days > maxChargebackDays {
		return Chargeback{}, fmt.Errorf("chargeback: range of %d days is longer than %d", days, maxChargebackDays)
	}
	tz := p.TimeZone
	if tz == "" {
		tz = "UTC"
	}
	policy := p.IdlePolicy
	switch policy {
	case "":
		policy = IdleUnallocated
	case IdleUnallocated, IdleProportional, IdleOwner:
	default:
		return Chargeback{}, fmt.Errorf("chargeback: unknown idle policy %q", p.IdlePolicy)
	}

	loc, err := time.LoadLocation(tz)
	if err != nil {
		return Chargeback{}, fmt.Errorf("chargeback: time zone %q: %w", tz, err)
	}
	var out Chargeback
	var first pgtype.Timestamptz
	if err := s.pool.QueryRow(ctx, `SELECT min(started_at) FROM sync_runs WHERE outcome = 'succeeded'`).Scan(&first); err != nil {
		return Chargeback{}, fmt.Errorf("chargeback: find the first sync run: %w", translate(err))
	}
	if first.Valid {
		out.HistoryStart = first.Time.UTC()
	}
	fromStart := time.Date(from.Year(), from.Month(), from.Day(), 0, 0, 0, 0, loc)
	out.IncompleteHistory = !first.Valid || fromStart.Before(first.Time)

	var (
		closed *closedPart
		open   *dayRange
	)
	if live {
		open = &dayRange{p.From, p.To}
	} else if closed, open, err = s.splitClosed(ctx, tz, from, to); err != nil {
		return Chargeback{}, err
	}
	sumInSQL := p.SumDays && policy != IdleProportional
	q, args := chargebackSQL(p, tz, policy, closed, open, sumInSQL)
	var lines []ChargebackLine
	collect := func(rows pgx.Rows) error {
		var err error
		lines, err = pgx.CollectRows(rows, scanChargebackLine)
		return err
	}
	if open == nil {
		// Only ledger rows: one statement, no transaction to set up.
		rows, _ := s.pool.Query(ctx, q, args...)
		err = collect(rows)
	} else {
		err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
			if err := tuneSeatDayQuery(ctx, tx); err != nil {
				return err
			}
			rows, _ := tx.Query(ctx, q, args...)
			return collect(rows)
		})
	}
	if err != nil {
		return Chargeback{}, fmt.Errorf("compute seat-days: %w", translate(err))
	}
	lines = allocateIdle(lines, policy)
	if p.SumDays && !sumInSQL {
		lines = sumDays(lines)
	}
	unpriced := map[string]bool{}
	prices := map[string]*big.Rat{}
	for _, l := range lines {
		if p.Department != "" && l.Department != p.Department {
			continue
		}
		if err := l.price(prices); err != nil {
			return Chargeback{}, err
		}
		if !l.Priced() && !unpriced[l.SKUID] {
			unpriced[l.SKUID] = true
			out.UnpricedSKUs = append(out.UnpricedSKUs, l.SKUID)
		}
		out.Lines = append(out.Lines, l)
	}
	slices.Sort(out.UnpricedSKUs)
	return out, nil
}

// tuneSeatDayQuery sets the planner up, in tx, for the seat-day query.
//
// The planner cannot estimate the CTEs' row counts (it assumes one) and
// would join holders to users and to themselves with nested loops,
// quadratic in holders; every join there is on equality, so hash and merge
// joins are always right. The lateral owner lookup stays a nested loop (it
// must). The penalty that steers the planner inflates the plan's cost past
// the JIT threshold, and compiling it takes seconds, ten times the query
// itself (measured: 2.7 s vs 0.28 s for a month of 20,000 users), so JIT
// is off too.
func tuneSeatDayQuery(ctx context.Context, tx pgx.Tx) error {
	for _, set := range []string{"SET LOCAL enable_nestloop = off", "SET LOCAL jit = off"} {
		if _, err := tx.Exec(ctx, set); err != nil {
			return fmt.Errorf("tune seat-day query: %w", err)
		}
	}
	return nil
}

// scanChargebackLine reads one line of chargebackSQL.
func scanChargebackLine(row pgx.CollectableRow) (ChargebackLine, error) {
	var (
		l     ChargebackLine
		day   pgtype.Date
		seats int64
	)
	if err := row.Scan(&day, &l.DayStart, &l.DayEnd, &l.MonthStart, &l.MonthEnd, &l.AllotmentID, &l.SKUID, &l.SKUPartNumber, &l.Department,
		&l.Idle, &seats, &l.DuplicateSeats, &l.DaysInMonth, &l.Currency, &l.UnitPrice, &l.ListUnitPrice,
		&l.owner); err != nil {
		return l, err
	}
	l.Day = day.Time.Format(time.DateOnly)
	l.DayStart, l.DayEnd = l.DayStart.UTC(), l.DayEnd.UTC()
	l.MonthStart, l.MonthEnd = l.MonthStart.UTC(), l.MonthEnd.UTC()
	l.Seats = new(big.Rat).SetInt64(seats)
	if !l.Idle {
		l.AllocationMethod = AllocSeatHolder
	}
	return l, nil
}

// seatDaySQL returns the CTEs (without WITH) that count the seats of the
// days of r in the zone tzArg names from the mirror's history, ending in
// two: allot (allotment_id, day, sku_id, sku_part_number, allotted_units),
// each allotment's state per day, and lines (allotment_id, day,
// department, idle, seats, dup_seats), one row per day, allotment,
// department and seat state. allotmentID and skuID, when set, narrow the
// allotments counted; lines then still hold every allotment of the
// allotment's SKU (duplicates need them): filter them by allotment_id.
//
// It never makes a row per holder and day. Each version is turned into
// the days it covers (a daterange in the zone), clipped to the range; a
// holder's paths to a seat are merged with range_agg, split by the
// department the user had on those days, and counted per day with +1/-1
// events and a running sum. The work is proportional to the versions
// overlapping the range plus (groups × days), not to holders × days, and
// every scan is bounded by the range. A day's rows depend only on the
// versions overlapping that day, whatever the range around it.
func seatDaySQL(b *sqlBuilder, r dayRange, tzArg, allotmentID, skuID string) string {
	fromArg, toArg := b.arg(r.from), b.arg(r.to)
	// dayFloor is the calendar day of an instant; dayCeil the first day
	// starting at or after it (NULL for NULL: an unbounded end).
	dayFloor := func(t string) string { return "((" + t + ") AT TIME ZONE " + tzArg + ")::date" }
	dayCeil := func(t string) string {
		return "(" + dayFloor(t) + " + (((" + t + ") AT TIME ZONE " + tzArg + ")::time <> '00:00')::int)"
	}
	// daysOf is the days a version's validity overlaps (held at any
	// moment of the day), clipped to the range.
	daysOf := func(v string) string {
		return "(daterange(" + dayFloor("lower("+v+")") + ", " + dayCeil("upper("+v+")") + ") * (SELECT dr FROM span))"
	}
	// ownedDays is the days on which a version is the latest one of its
	// entity overlapping the day: from its first day up to the next
	// version's first day, or when none follows, through its last day.
	ownedDays := func(v, next string) string {
		return "(daterange(" + dayFloor("lower("+v+")") + ", LEAST(" + dayCeil("upper("+v+")") + ", " + dayFloor(next) +
			")) * (SELECT dr FROM span))"
	}
	allotCond := "TRUE"
	switch {
	case allotmentID != "":
		// Duplicate detection needs the other allotments of the same SKU,
		// so the allotment filter narrows to its SKU here, to itself last.
		allotCond = "av.sku_id IN (SELECT x.sku_id FROM allotment_versions x WHERE x.id = " + b.arg(allotmentID) + ")"
		if skuID != "" {
			allotCond += " AND av.sku_id = " + b.arg(skuID)
		}
	case skuID != "":
		allotCond = "av.sku_id = " + b.arg(skuID)
	}
	return `
		days AS MATERIALIZED (
			SELECT g::date AS day,
			       tstzrange(g AT TIME ZONE ` + tzArg + `, (g + interval '1 day') AT TIME ZONE ` + tzArg + `) AS r
			FROM generate_series(` + fromArg + `::date::timestamp, ` + toArg + `::date::timestamp, interval '1 day') AS g
		), span AS MATERIALIZED (
			SELECT tstzrange(min(lower(r)), max(upper(r))) AS r, daterange(min(day), max(day) + 1) AS dr FROM days
		), allot_seg AS MATERIALIZED (
			-- Each allotment version and the days it is the allotment's state.
			SELECT v.id AS allotment_id, v.sku_id, v.sku_part_number, v.allotted_units, v.assignable_to,
			       ` + ownedDays("v.valid", "v.next") + ` AS dr
			FROM (
				SELECT av.*, lead(lower(av.valid)) OVER (PARTITION BY av.id ORDER BY lower(av.valid)) AS next
				FROM allotment_versions av
				WHERE av.valid && (SELECT r FROM span) AND ` + allotCond + `
			) v
		), allot AS MATERIALIZED (
			SELECT s.allotment_id, d.day, s.sku_id, s.sku_part_number, s.allotted_units
			FROM allot_seg s
			JOIN days d ON s.dr @> d.day
		), waits AS MATERIALIZED (
			-- When each member waited in each allotment's waiting room.
			SELECT w.allotment_id, w.member_id, range_agg(w.valid) AS valid
			FROM waiting_member_versions w
			WHERE w.valid && (SELECT r FROM span) AND w.allotment_id IN (SELECT allotment_id FROM allot_seg)
			GROUP BY w.allotment_id, w.member_id
		), paths AS MATERIALIZED (
			-- Every path to a seat, with the days it was held.
			SELECT a.allotment_id, a.assignee_id AS holder_id, a.assignee_type AS holder_type, false AS via_group,
			       ` + daysOf("a.valid") + ` AS dr
			FROM assignment_versions a
			WHERE a.assignee_type IN ('user', 'device') AND a.valid && (SELECT r FROM span)
			  AND a.allotment_id IN (SELECT allotment_id FROM allot_seg)
			UNION ALL
			-- A group's member holds a seat while it is a member and is not
			-- waiting in the allotment's waiting room (Graph's consumedUnits
			-- leaves waiting members out): the membership less the waits.
			SELECT a.allotment_id, g.member_id, g.member_type, true, ` + daysOf("m.held") + `
			FROM assignment_versions a
			JOIN group_member_versions g ON g.group_id = a.assignee_id AND g.valid && a.valid
			LEFT JOIN waits w ON w.allotment_id = a.allotment_id AND w.member_id = g.member_id,
			unnest(tstzmultirange(a.valid * g.valid) - COALESCE(w.valid, '{}'::tstzmultirange)) AS m(held)
			WHERE a.assignee_type = 'group' AND g.member_type IN ('user', 'device')
			  AND a.valid && (SELECT r FROM span) AND g.valid && (SELECT r FROM span)
			  AND a.allotment_id IN (SELECT allotment_id FROM allot_seg)
		), held AS MATERIALIZED (
			-- One seat per holder and allotment on the days any path held it
			-- while the allotment existed (group members only of the kinds
			-- the allotment is assignable to).
			SELECT p.allotment_id, p.holder_id, min(s.sku_id) AS sku_id, range_agg(p.dr * s.dr) AS days
			FROM paths p
			JOIN allot_seg s ON s.allotment_id = p.allotment_id AND p.dr && s.dr
			WHERE NOT p.via_group OR p.holder_type = ANY (s.assignable_to)
			GROUP BY p.allotment_id, p.holder_id
		), dup AS (
			-- Days a holder also held the SKU from another allotment.
			SELECT x.allotment_id, x.holder_id, range_agg(x.days * y.days) AS days
			FROM held x
			JOIN held y ON y.holder_id = x.holder_id AND y.sku_id = x.sku_id AND y.allotment_id <> x.allotment_id
			GROUP BY x.allotment_id, x.holder_id
		), user_seg AS (
			-- Each user version and the days its department is the user's.
			SELECT v.id AS user_id, v.department, ` + ownedDays("v.valid", "v.next") + ` AS dr
			FROM (
				SELECT u.id, u.department, u.valid,
				       lead(lower(u.valid)) OVER (PARTITION BY u.id ORDER BY lower(u.valid)) AS next
				FROM user_versions u
				WHERE u.valid && (SELECT r FROM span) AND u.id IN (SELECT holder_id FROM held)
			) v
		), seg AS (
			SELECT h.allotment_id, h.holder_id, u.department, h.days * datemultirange(u.dr) AS days
			FROM held h
			JOIN user_seg u ON u.user_id = h.holder_id AND h.days && u.dr
			UNION ALL
			-- Days with no user version: devices, users not mirrored.
			SELECT h.allotment_id, h.holder_id, '', h.days - COALESCE(k.days, '{}'::datemultirange)
			FROM held h
			LEFT JOIN (SELECT user_id, range_agg(dr) AS days FROM user_seg GROUP BY user_id) k ON k.user_id = h.holder_id
		), pieces AS (
			SELECT s.allotment_id, s.department, r, 1 AS seats, 0 AS dups
			FROM seg s, unnest(s.days) AS r
			UNION ALL
			SELECT s.allotment_id, s.department, r, 0, 1
			FROM seg s
			JOIN dup d ON d.allotment_id = s.allotment_id AND d.holder_id = s.holder_id,
			unnest(s.days * d.days) AS r
		), events AS (
			-- A piece adds its seats on its first day and removes them on the
			-- day after its last.
			SELECT allotment_id, department, day, sum(seats) AS seats, sum(dups) AS dups
			FROM (
				SELECT allotment_id, department, lower(r) AS day, seats, dups FROM pieces
				UNION ALL
				SELECT allotment_id, department, upper(r), -seats, -dups FROM pieces
			) e
			GROUP BY allotment_id, department, day
		), assigned AS (
			SELECT * FROM (
				SELECT g.allotment_id, d.day, g.department,
				       sum(COALESCE(e.seats, 0)) OVER w AS seats, sum(COALESCE(e.dups, 0)) OVER w AS dup_seats
				FROM (SELECT DISTINCT allotment_id, department FROM events) g
				CROSS JOIN days d
				LEFT JOIN events e ON e.allotment_id = g.allotment_id AND e.department = g.department AND e.day = d.day
				WINDOW w AS (PARTITION BY g.allotment_id, g.department ORDER BY d.day)
			) x
			WHERE seats > 0
		), lines AS (
			SELECT allotment_id, day, department, false AS idle, seats, dup_seats
			FROM assigned
			UNION ALL
			SELECT al.allotment_id, al.day, '', true, al.allotted_units - COALESCE(t.held, 0), 0
			FROM allot al
			LEFT JOIN (SELECT allotment_id, day, sum(seats) AS held FROM assigned GROUP BY 1, 2) t
			  USING (allotment_id, day)
			WHERE al.allotted_units > COALESCE(t.held, 0)
		)`
}

// chargebackSQL returns the query of Chargeback's lines and its
// arguments: the days of closed read from the seat ledger, those of open
// counted from the history (seatDaySQL), with each day's bounds, the
// price valid that day and, under the owner policy, the allotment's owner
// that day; ordered by day, allotment, seat state and department. With
// sum, the lines of a month that differ only by their day are summed in
// the query (ChargebackParams.SumDays), and closed whole months at one
// price are read from the ledger's month sums instead of their days.
func chargebackSQL(p ChargebackParams, tz, policy string, closed *closedPart, open *dayRange, sum bool) (string, []any) {
	var b sqlBuilder
	tzArg := b.arg(tz)
	// Filters on the rows of both sources. The department filter applies
	// after idle seats are allocated; only without allocation may it go
	// into the query.
	var conds []string
	if p.AllotmentID != "" {
		conds = append(conds, "allotment_id = "+b.arg(p.AllotmentID))
	}
	if p.SKUID != "" {
		conds = append(conds, "sku_id = "+b.arg(p.SKUID))
	}
	if p.Department != "" && policy == IdleUnallocated {
		conds = append(conds, "department = "+b.arg(p.Department))
	}
	cond := "TRUE"
	if len(conds) > 0 {
		cond = strings.Join(conds, " AND ")
	}
	// Each source gives rows (first_day, last_day, allotment_id, sku_id,
	// sku_part_number, department, idle, seats, dup_seats): seats summed
	// over the days first_day..last_day of one month, all at one price.
	var ctes, sources []string
	const seatCols = `allotment_id, sku_id, sku_part_number, department, idle`
	if closed != nil && !sum {
		sources = append(sources, `
			SELECT day AS first_day, day AS last_day, `+seatCols+`, seats, dup_seats
			FROM chargeback_seat_days
			WHERE time_zone = `+tzArg+` AND day BETWEEN `+b.arg(closed.r.from)+`::date AND `+b.arg(closed.r.to)+`::date
			  AND `+cond)
	}
	if closed != nil && sum {
		// Whole months at one price read their sums; idle seats under the
		// owner policy need each day's owner, so they read their days.
		idle := ""
		if policy == IdleOwner {
			idle = " AND NOT idle"
		}
		if len(closed.months) > 0 {
			sources = append(sources, `
			SELECT first_day, last_day, `+seatCols+`, seat_days AS seats, dup_seat_days AS dup_seats
			FROM chargeback_seat_months
			WHERE time_zone = `+tzArg+` AND month = ANY (`+b.arg(closed.months)+`::date[]) AND `+cond+idle)
		}
		days := closed.days
		if policy == IdleOwner && len(closed.months) > 0 {
			var monthDays []time.Time
			for _, m := range closed.months {
				for d := m; d.Month() == m.Month(); d = d.AddDate(0, 0, 1) {
					monthDays = append(monthDays, d)
				}
			}
			sources = append(sources, `
			SELECT day AS first_day, day AS last_day, `+seatCols+`, seats, dup_seats
			FROM chargeback_seat_days
			WHERE time_zone = `+tzArg+` AND day = ANY (`+b.arg(monthDays)+`::date[]) AND idle AND `+cond)
		}
		if len(days) > 0 {
			sources = append(sources, `
			SELECT day AS first_day, day AS last_day, `+seatCols+`, seats, dup_seats
			FROM chargeback_seat_days
			WHERE time_zone = `+tzArg+` AND day = ANY (`+b.arg(days)+`::date[]) AND `+cond)
		}
	}
	if open != nil {
		ctes = append(ctes, seatDaySQL(&b, *open, tzArg, p.AllotmentID, p.SKUID))
		sources = append(sources, `
			SELECT * FROM (
				SELECT l.day AS first_day, l.day AS last_day, l.allotment_id, al.sku_id, al.sku_part_number, l.department,
				       l.idle, l.seats, l.dup_seats
				FROM lines l
				JOIN allot al USING (allotment_id, day)
			) o
			WHERE `+cond)
	}
	if len(sources) == 0 {
		// Only whole months, none with a sum: nothing was held.
		sources = append(sources, `
			SELECT NULL::date AS first_day, NULL::date AS last_day, `+seatCols+`, seats, dup_seats FROM chargeback_seat_days WHERE false`)
	}
	ctes = append(ctes, `
		src AS (`+strings.Join(sources, "\n\t\t\tUNION ALL")+`
		), price_spans AS (
			-- Each price and the days it is valid: until the SKU's next one.
			SELECT p.sku_id, p.valid_from, lead(p.valid_from) OVER (PARTITION BY p.sku_id ORDER BY p.valid_from) AS valid_to,
			       p.currency, p.monthly_unit_price::text AS unit,
			       COALESCE(p.monthly_list_unit_price::text, p.monthly_unit_price::text) AS list
			FROM prices p
		)`)
	// The day's bounds, and its month's, from a date column.
	dayStart := func(d string) string { return "(" + d + ")::timestamp AT TIME ZONE " + tzArg }
	month := func(d string) string { return "date_trunc('month', (" + d + ")::timestamp)" }
	owner := "''"
	ownerJoin := ""
	if policy == IdleOwner {
		owner = "COALESCE(ow.owner_department, '')"
		ownerJoin = `
			LEFT JOIN LATERAL (
				-- The allotment's owner that day (its latest owner version), for
				-- idle seats.
				SELECT o.owner_department
				FROM allotment_owner_versions o
				WHERE l.idle AND o.allotment_id = l.allotment_id
				  AND o.valid && tstzrange(` + dayStart("l.first_day") + `, ` + dayStart("l.first_day + 1") + `)
				ORDER BY lower(o.valid) DESC
				LIMIT 1
			) ow ON true`
	}
	priceJoin := `
			LEFT JOIN price_spans pr
			  ON pr.sku_id = l.sku_id AND pr.valid_from <= l.first_day AND (pr.valid_to IS NULL OR l.first_day < pr.valid_to)`
	q := "WITH" + strings.Join(ctes, ",")
	if sum {
		// Sum first, on narrow keys (a month and a price are the same for
		// all the days summed), then add each sum's bounds and price.
		q += `, summed AS (
			SELECT l.allotment_id, l.sku_id, l.sku_part_number, l.department, l.idle,
			       ` + month("l.first_day") + `::date AS month, pr.valid_from, ` + owner + ` AS owner,
			       min(l.first_day) AS first_day, max(l.last_day) AS last_day,
			       sum(l.seats)::bigint AS seats, sum(l.dup_seats)::bigint AS dup_seats
			FROM src l` + priceJoin + ownerJoin + `
			GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
		)
		SELECT s.first_day, ` + dayStart("s.first_day") + `, ` + dayStart("s.last_day + 1") + `,
		       ` + dayStart("s.month") + `, ` + dayStart("s.month + interval '1 month'") + `,
		       s.allotment_id, s.sku_id, s.sku_part_number, s.department, s.idle, s.seats, s.dup_seats,
		       extract(day FROM s.month::timestamp + interval '1 month' - interval '1 day')::bigint,
		       COALESCE(pr.currency, ''), COALESCE(pr.unit, ''), COALESCE(pr.list, ''), s.owner
		FROM summed s
		LEFT JOIN price_spans pr ON pr.sku_id = s.sku_id AND pr.valid_from = s.valid_from
		ORDER BY s.first_day, s.allotment_id, s.idle, s.department, s.valid_from, s.owner`
	} else {
		q += `
		SELECT l.first_day, ` + dayStart("l.first_day") + `, ` + dayStart("l.first_day + 1") + `,
		       ` + dayStart(month("l.first_day")) + `, ` + dayStart(month("l.first_day")+" + interval '1 month'") + `,
		       l.allotment_id, l.sku_id, l.sku_part_number, l.department, l.idle, l.seats, l.dup_seats,
		       extract(day FROM ` + month("l.first_day") + ` + interval '1 month' - interval '1 day')::bigint,
		       COALESCE(pr.currency, ''), COALESCE(pr.unit, ''), COALESCE(pr.list, ''), ` + owner + `
		FROM src l` + priceJoin + ownerJoin + `
		ORDER BY l.first_day, l.allotment_id, l.idle, l.department`
	}
	return q, b.args
}

// sumDays merges lines (priced or not yet) that differ only by their day
// within one month, as ChargebackParams.SumDays says, keeping the order of
// each merged line's first day.
func sumDays(lines []ChargebackLine) []ChargebackLine {
	type key struct {
		month                          time.Time
		allot, sku, part, dept, method string
		idle                           bool
		currency, unit, list, owner    string
	}
	at := map[key]int{}
	out := lines[:0:0]
	for _, l := range lines {
		k := key{l.MonthStart, l.AllotmentID, l.SKUID, l.SKUPartNumber, l.Department, l.AllocationMethod, l.Idle,
			l.Currency, l.UnitPrice, l.ListUnitPrice, l.owner}
		i, ok := at[k]
		if !ok {
			at[k] = len(out)
			l.Seats = new(big.Rat).Set(l.Seats)
			out = append(out, l)
			continue
		}
		m := &out[i]
		m.Seats.Add(m.Seats, l.Seats)
		m.DuplicateSeats += l.DuplicateSeats
		if l.DayEnd.After(m.DayEnd) {
			m.DayEnd = l.DayEnd
		}
	}
	return out
}

// price sets the line's exact Cost and ListCost; parsed caches the
// prices already parsed, by their text.
func (l *ChargebackLine) price(parsed map[string]*big.Rat) error {
	l.Cost, l.ListCost = new(big.Rat), new(big.Rat)
	if !l.Priced() {
		return nil
	}
	parse := func(what, v string) (*big.Rat, error) {
		if r, ok := parsed[v]; ok {
			return r, nil
		}
		r, ok := new(big.Rat).SetString(v)
		if !ok {
			return nil, fmt.Errorf("chargeback: %s %q of sku %q is not a decimal", what, v, l.SKUID)
		}
		parsed[v] = r
		return r, nil
	}
	unit, err := parse("price", l.UnitPrice)
	if err != nil {
		return err
	}
	list, err := parse("list price", l.ListUnitPrice)
	if err != nil {
		return err
	}
	perDay := new(big.Rat).Quo(l.Seats, new(big.Rat).SetInt64(l.DaysInMonth))
	l.Cost.Mul(perDay, unit)
	l.ListCost.Mul(perDay, list)
	return nil
}

// allocateIdle applies the idle-seat policy to lines (ordered by day,
// allotment, idle last): under IdleProportional an idle line becomes one
// line per department holding seats of the allotment that day, sharing the
// idle seats in proportion to their seats; under IdleOwner it goes to the
// allotment's owner that day. Idle lines the policy cannot place stay
// unallocated.
func allocateIdle(lines []ChargebackLine, policy string) []ChargebackLine {
	if policy == IdleUnallocated {
		return lines
	}
	out := make([]ChargebackLine, 0, len(lines))
	start := 0 // first line of the current (day, allotment) in out
	for _, l := range lines {
		if len(out) > 0 && (out[len(out)-1].Day != l.Day || out[len(out)-1].AllotmentID != l.AllotmentID) {
			start = len(out)
		}
		if !l.Idle {
			out = append(out, l)
			continue
		}
		switch policy {
		case IdleOwner:
			if l.owner != "" {
				l.Department, l.AllocationMethod = l.owner, AllocIdleOwner
			}
			out = append(out, l)
		case IdleProportional:
			held := out[start:]
			total := new(big.Rat)
			for _, h := range held {
				total.Add(total, h.Seats)
			}
			if total.Sign() == 0 {
				out = append(out, l)
				continue
			}
			for _, h := range held {
				share := l
				share.Department, share.AllocationMethod = h.Department, AllocIdleProportional
				share.Seats = new(big.Rat).Quo(new(big.Rat).Mul(l.Seats, h.Seats), total)
				out = append(out, share)
			}
		}
	}
	return out
}

// ChargebackRow is the seat-days and rounded cost of one group, seat state
// and currency.
type ChargebackRow struct {
	// Department, AllotmentID and SKUID (with SKUPartNumber) identify the
	// group; only the grouping's fields are set.
	Department, AllotmentID, SKUID, SKUPartNumber string
	// Idle marks idle-seat rows.
	Idle bool
	// NoDepartment marks, when grouping by department, the seats of
	// holders without a department and the idle seats shared to them.
	NoDepartment bool
	// DuplicateSKU: some holders held the SKU from another allotment too.
	DuplicateSKU bool
	// MissingPrice: some seat-days had no price and cost nothing here.
	MissingPrice bool
	// SeatDays is the seat-days of the row, apportioned to integers by
	// largest remainder when idle seats were shared.
	SeatDays int64
	// Currency and Cost (a decimal with the currency's minor unit) are the
	// row's cost; Currency is "" for a row with no priced day.
	Currency, Cost string
}

// Money is an amount (decimal text) in a currency.
type Money struct {
	Currency, Amount string
}

// GroupChargeback sums lines into rows grouped by `by` (GroupByDepartment,
// GroupByAllotment or GroupBySKU), one row per group, seat state and
// currency, ordered by department, allotment, SKU, seat state (held first,
// then idle seats shared to holders without a department, then idle seats
// charged to nobody) and currency, with the total per currency.
//
// Rounding: each currency's total is the exact sum of its lines rounded
// half up to the currency's minor unit; each row gets its exact cost
// rounded down plus, by largest remainder (earlier rows first on ties), the
// units needed for rows to add up exactly to the total. Seat-days are
// apportioned the same way.
func GroupChargeback(lines []ChargebackLine, by string) ([]ChargebackRow, []Money) {
	type key struct {
		dept, allot, sku string
		idle, noDept     bool
		currency         string
	}
	type acc struct {
		row         ChargebackRow
		seats, cost *big.Rat
	}
	groups := map[key]*acc{}
	for _, l := range lines {
		k := key{idle: l.Idle, currency: l.Currency}
		switch by {
		case GroupByAllotment:
			k.allot, k.sku = l.AllotmentID, l.SKUID
		case GroupBySKU:
			k.sku = l.SKUID
		default:
			// Seats of holders without a department, and idle seats shared
			// to them, are kept apart from idle seats nobody was charged.
			k.dept = l.Department
			k.noDept = l.Department == "" && l.AllocationMethod != ""
		}
		a := groups[k]
		if a == nil {
			a = &acc{seats: new(big.Rat), cost: new(big.Rat)}
			a.row = ChargebackRow{Department: k.dept, AllotmentID: k.allot, SKUID: k.sku, Idle: l.Idle, Currency: l.Currency}
			if k.sku != "" {
				a.row.SKUPartNumber = l.SKUPartNumber
			}
			a.row.NoDepartment = k.noDept
			groups[k] = a
		}
		a.seats.Add(a.seats, l.Seats)
		a.cost.Add(a.cost, l.Cost)
		a.row.DuplicateSKU = a.row.DuplicateSKU || l.DuplicateSeats > 0
		a.row.MissingPrice = a.row.MissingPrice || !l.Priced()
	}
	accs := make([]*acc, 0, len(groups))
	for _, a := range groups {
		accs = append(accs, a)
	}
	slices.SortFunc(accs, func(x, y *acc) int {
		a, b := x.row, y.row
		if c := cmp.Or(strings.Compare(a.Department, b.Department), strings.Compare(a.AllotmentID, b.AllotmentID),
			strings.Compare(a.SKUID, b.SKUID)); c != 0 {
			return c
		}
		if a.Idle != b.Idle {
			if a.Idle {
				return 1
			}
			return -1
		}
		if a.NoDepartment != b.NoDepartment {
			if a.NoDepartment {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Currency, b.Currency)
	})

	seats := make([]*big.Rat, len(accs))
	for i, a := range accs {
		seats[i] = a.seats
	}
	for i, n := range apportion(seats, 0) {
		accs[i].row.SeatDays = n.Int64()
	}
	var currencies []string
	byCurrency := map[string][]int{}
	for i, a := range accs {
		if _, ok := byCurrency[a.row.Currency]; !ok {
			currencies = append(currencies, a.row.Currency)
		}
		byCurrency[a.row.Currency] = append(byCurrency[a.row.Currency], i)
	}
	slices.Sort(currencies)
	var totals []Money
	for _, c := range currencies {
		idx := byCurrency[c]
		digits := MinorUnitDigits(c)
		costs := make([]*big.Rat, len(idx))
		for j, i := range idx {
			costs[j] = accs[i].cost
		}
		units := apportion(costs, digits)
		sum := new(big.Int)
		for j, i := range idx {
			accs[i].row.Cost = FormatUnits(units[j], digits)
			sum.Add(sum, units[j])
		}
		if c != "" {
			totals = append(totals, Money{Currency: c, Amount: FormatUnits(sum, digits)})
		}
	}
	rows := make([]ChargebackRow, len(accs))
	for i, a := range accs {
		rows[i] = a.row
	}
	return rows, totals
}

// MinorUnitDigits returns the number of decimal places of currency's minor
// unit (ISO 4217): 2 unless listed otherwise.
func MinorUnitDigits(currency string) int {
	switch currency {
	case "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV",
		"XAF", "XOF", "XPF":
		return 0
	case "BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND":
		return 3
	}
	return 2
}

// apportion turns non-negative exact amounts into integers of units of
// 10^-digits: their total is the exact total rounded half up, and each
// amount gets its value rounded down plus one unit for the largest
// remainders (earlier amounts first on ties) until the total is reached.
func apportion(xs []*big.Rat, digits int) []*big.Int {
	scale := new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(digits)), nil))
	total := new(big.Rat)
	out := make([]*big.Int, len(xs))
	rems := make([]*big.Rat, len(xs))
	sum := new(big.Int)
	for i, x := range xs {
		v := new(big.Rat).Mul(x, scale)
		total.Add(total, v)
		out[i] = floorRat(v)
		rems[i] = v.Sub(v, new(big.Rat).SetInt(out[i]))
		sum.Add(sum, out[i])
	}
	half := big.NewRat(1, 2)
	target := floorRat(total.Add(total, half))
	order := make([]int, len(xs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return rems[b].Cmp(rems[a]) })
	extra := new(big.Int).Sub(target, sum)
	for _, i := range order {
		if extra.Sign() <= 0 {
			break
		}
		out[i].Add(out[i], big.NewInt(1))
		extra.Sub(extra, big.NewInt(1))
	}
	return out
}

// floorRat returns ⌊x⌋.
func floorRat(x *big.Rat) *big.Int {
	// Euclidean division: the modulus is never negative and the
	// denominator is positive, so the quotient is the floor.
	q, _ := new(big.Int).DivMod(x.Num(), x.Denom(), new(big.Int))
	return q
}

// FormatUnits writes n units of 10^-digits as a decimal, e.g. (5701, 2)
// as "57.01".
func FormatUnits(n *big.Int, digits int) string {
	s := new(big.Int).Abs(n).String()
	if digits > 0 {
		if len(s) <= digits {
			s = strings.Repeat("0", digits-len(s)+1) + s
		}
		s = s[:len(s)-digits] + "." + s[len(s)-digits:]
	}
	if n.Sign() < 0 {
		s = "-" + s
	}
	return s
}
