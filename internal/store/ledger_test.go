package store_test

import (
	"fmt"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/seatledger/seatledger/internal/store"
)

// cmpLines compares chargeback results exactly (rationals by value).
var cmpLines = []cmp.Option{
	cmp.Comparer(func(a, b *big.Rat) bool { return a.Cmp(b) == 0 }),
	cmp.AllowUnexported(store.ChargebackLine{}),
}

// ledgerDays returns the days of tz the ledger marks as computed, with
// when each was computed.
func ledgerDays(t *testing.T, conn *pgx.Conn, tz string) map[string]time.Time {
	t.Helper()
	rows, _ := conn.Query(t.Context(), `SELECT day::text, computed_at FROM chargeback_days WHERE time_zone = $1`, tz)
	out := map[string]time.Time{}
	var (
		day string
		at  time.Time
	)
	if _, err := pgx.ForEachRow(rows, []any{&day, &at}, func() error {
		out[day] = at
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func chargeback(t *testing.T, st *store.Store, p store.ChargebackParams) store.Chargeback {
	t.Helper()
	cb, err := st.Chargeback(t.Context(), p)
	if err != nil {
		t.Fatalf("Chargeback(%+v): %v", p, err)
	}
	return cb
}

func liveChargeback(t *testing.T, st *store.Store, p store.ChargebackParams) store.Chargeback {
	t.Helper()
	cb, err := st.LiveChargeback(t.Context(), p)
	if err != nil {
		t.Fatalf("LiveChargeback(%+v): %v", p, err)
	}
	return cb
}

// TestStore_ChargebackLedgerEqualsLive checks that lines read from the
// ledger (closed days) and counted live (open days) are exactly those the
// history gives for every day, across zones (with a DST change), idle
// policies, filters and ranges that are closed, open or both; and that
// lines summed over days group to the same rows and totals.
func TestStore_ChargebackLedgerEqualsLive(t *testing.T) {
	t.Parallel()
	st, conn := newStore(t)
	// January and February's history first, so that whole months have
	// seats that change.
	applyAt(t, st, time.Date(2026, 1, 20, 9, 0, 0, 0, time.UTC), snapshot{
		allotments:  []store.Allotment{seatAllotment("A1", skuE5, 5), seatAllotment("A2", skuE5, 2)},
		assignments: []store.Assignment{asg("a1", "A1", "u1"), asg("a4", "A2", "u2")},
		users:       []store.User{user("u1", "Sales"), user("u2", "Ops")},
	})
	applyAt(t, st, time.Date(2026, 2, 10, 13, 30, 0, 0, time.UTC), snapshot{
		allotments:  []store.Allotment{seatAllotment("A1", skuE5, 4), seatAllotment("A2", skuE5, 2)},
		assignments: []store.Assignment{asg("a1", "A1", "u1"), asg("a3", "A1", "u2"), asg("a9", "A2", "u3"), groupAsg("a2", "A1", "g1")},
		users:       []store.User{user("u1", "Sales"), user("u2", "Eng"), user("u3", ""), user("u4", "Eng")},
		groups:      map[string][]store.GroupMember{"g1": {{MemberID: "u4", MemberType: store.KindUser}}},
		// u4 waits in A1's waiting room (no seat through g1) until 03-03
		// 06:00; u2 waits too but holds A1 directly as well.
		waiting: []store.WaitingMember{
			{ID: "w1", AllotmentID: "A1", MemberID: "u4", MemberType: store.KindUser, Raw: []byte(`{"id": "w1"}`)},
			{ID: "w2", AllotmentID: "A1", MemberID: "u2", MemberType: store.KindUser, Raw: []byte(`{"id": "w2"}`)},
		},
	})
	seedChargeback(t, st)
	applyAt(t, st, time.Date(2026, 3, 3, 6, 0, 0, 0, time.UTC), snapshot{waiting: []store.WaitingMember{}})
	// The last run started 03-03 06:00 UTC: UTC days up to 03-02 are
	// closed, Tokyo's up to 03-02 (its 03-03 ends 03-03 15:00 UTC), New
	// York's up to 03-02 (it ends 03-03 05:00 UTC).
	ranges := []struct{ from, to string }{
		{"2026-02-26", "2026-03-10"}, // closed and open, with New York's DST change on 03-08
		{"2026-03-01", "2026-03-02"}, // closed in UTC
		{"2026-03-04", "2026-03-05"}, // open everywhere
		{"2026-03-02", "2026-03-02"},
		{"2026-01-15", "2026-03-05"}, // February whole: its sums are read
		{"2026-02-01", "2026-02-28"},
	}
	var cases []store.ChargebackParams
	for _, r := range ranges {
		for _, tz := range []string{"", "Asia/Tokyo", "America/New_York"} {
			for _, policy := range []string{store.IdleUnallocated, store.IdleProportional, store.IdleOwner} {
				cases = append(cases, store.ChargebackParams{From: r.from, To: r.to, TimeZone: tz, IdlePolicy: policy})
			}
		}
	}
	for _, f := range []store.ChargebackParams{{Department: "Eng"}, {Department: "IT"}, {AllotmentID: "A2"}, {SKUID: skuE5},
		{AllotmentID: "A1", SKUID: skuE3}, {Department: ""}} {
		for _, policy := range []string{store.IdleUnallocated, store.IdleProportional, store.IdleOwner} {
			for _, r := range [][2]string{{"2026-02-28", "2026-03-04"}, {"2026-02-01", "2026-03-04"}} {
				f.From, f.To, f.IdlePolicy = r[0], r[1], policy
				cases = append(cases, f)
			}
		}
	}
	check := func(t *testing.T) {
		t.Helper()
		for _, p := range cases {
			checkLedgerEqualsLive(t, st, p)
		}
	}
	check(t)
	if _, ok := ledgerMonths(t, conn, "UTC")["2026-02-01"]; !ok {
		t.Error("February, closed, has no sums in the ledger")
	}
	// A price from mid-February: February's sums cannot be priced as one
	// any more, its days are read instead.
	if _, err := st.SetPrice(t.Context(), store.Price{SKUID: skuE5, Currency: "USD", MonthlyUnitPrice: "40.00",
		ValidFrom: "2026-02-10", UpdatedBy: "t"}); err != nil {
		t.Fatal(err)
	}
	check(t)

	utc := ledgerDays(t, conn, "UTC")
	for _, day := range []string{"2026-02-26", "2026-03-01", "2026-03-02"} {
		if _, ok := utc[day]; !ok {
			t.Errorf("closed UTC day %s is not in the ledger", day)
		}
	}
	for _, day := range []string{"2026-03-03", "2026-03-04"} {
		if _, ok := utc[day]; ok {
			t.Errorf("open UTC day %s is in the ledger", day)
		}
	}
	tokyo, newYork := ledgerDays(t, conn, "Asia/Tokyo"), ledgerDays(t, conn, "America/New_York")
	if _, ok := tokyo["2026-03-02"]; !ok {
		t.Errorf("Tokyo's 03-02, closed, is not in the ledger")
	}
	if _, ok := tokyo["2026-03-03"]; ok {
		t.Errorf("Tokyo's 03-03, open, is in the ledger")
	}
	if _, ok := newYork["2026-03-02"]; !ok {
		t.Errorf("New York's 03-02, closed, is not in the ledger")
	}
	if _, ok := newYork["2026-03-03"]; ok {
		t.Errorf("New York's 03-03, open, is in the ledger")
	}
}

// checkLedgerEqualsLive checks Chargeback(p), daily and summed, against the
// history's count of every day.
func checkLedgerEqualsLive(t *testing.T, st *store.Store, p store.ChargebackParams) {
	t.Helper()
	name := fmt.Sprintf("%s..%s %s %s d=%q a=%q s=%q", p.From, p.To, p.TimeZone, p.IdlePolicy, p.Department, p.AllotmentID, p.SKUID)
	// Twice: the first call fills the ledger's missing days, the
	// second only reads it.
	for i := range 2 {
		want := liveChargeback(t, st, p)
		got := chargeback(t, st, p)
		if diff := cmp.Diff(want, got, cmpLines...); diff != "" {
			t.Errorf("%s, call %d: ledger lines differ from the history's (-live +ledger):\n%s", name, i, diff)
		}
		for _, by := range []string{store.GroupByDepartment, store.GroupByAllotment, store.GroupBySKU} {
			wantRows, wantTotals := store.GroupChargeback(want.Lines, by)
			ps := p
			ps.SumDays = true
			summed := chargeback(t, st, ps)
			rows, totals := store.GroupChargeback(summed.Lines, by)
			if diff := cmp.Diff(wantRows, rows); diff != "" {
				t.Errorf("%s by %s: rows from summed lines differ (-daily +summed):\n%s", name, by, diff)
			}
			if diff := cmp.Diff(wantTotals, totals); diff != "" {
				t.Errorf("%s by %s: totals from summed lines differ (-daily +summed):\n%s", name, by, diff)
			}
			if diff := cmp.Diff(want.UnpricedSKUs, summed.UnpricedSKUs); diff != "" {
				t.Errorf("%s: unpriced SKUs differ when summed:\n%s", name, diff)
			}
			if len(summed.Lines) > len(want.Lines) {
				t.Errorf("%s: %d summed lines for %d daily ones", name, len(summed.Lines), len(want.Lines))
			}
		}
	}
}

// ledgerMonths returns the months of tz whose sums the ledger holds.
func ledgerMonths(t *testing.T, conn *pgx.Conn, tz string) map[string]bool {
	t.Helper()
	rows, _ := conn.Query(t.Context(), `SELECT month::text FROM chargeback_months WHERE time_zone = $1`, tz)
	months, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, m := range months {
		out[m] = true
	}
	return out
}

// TestStore_ChargebackLedgerComputedOnce checks that a closed day is
// computed once and then read from the ledger: history changed behind the
// mirror's back (which no sync or write can do to a closed day) does not
// show, while the open days are still counted from the history.
func TestStore_ChargebackLedgerComputedOnce(t *testing.T) {
	t.Parallel()
	st, conn := newStore(t)
	seedChargeback(t, st)
	p := store.ChargebackParams{From: "2026-03-01", To: "2026-03-03"}
	first := chargeback(t, st, p)
	days := ledgerDays(t, conn, "UTC")
	if len(days) != 2 {
		t.Fatalf("ledger days after the first call = %v, want 03-01 and 03-02", days)
	}
	// Remove u1's direct assignment to A1 from history altogether.
	if _, err := conn.Exec(t.Context(), `DELETE FROM assignment_versions WHERE id = 'a1'`); err != nil {
		t.Fatal(err)
	}
	second := chargeback(t, st, p)
	if diff := cmp.Diff(ledgerDays(t, conn, "UTC"), days); diff != "" {
		t.Errorf("ledger days recomputed by the second call:\n%s", diff)
	}
	live := liveChargeback(t, st, p)
	// Closed days: as computed the first time. Open day 03-03: as the
	// history is now, one seat fewer than before.
	seats := func(cb store.Chargeback, day string) *big.Rat {
		sum := new(big.Rat)
		for _, l := range cb.Lines {
			if l.Day == day && !l.Idle {
				sum.Add(sum, l.Seats)
			}
		}
		return sum
	}
	for _, c := range []struct {
		day                    string
		first, second, history int64
	}{
		{"2026-03-01", 3, 3, 2}, // A1: u1, u2; A2: u1
		{"2026-03-02", 5, 5, 4}, // A1: u1, u2, u3, u4; A2: u1
		{"2026-03-03", 4, 3, 3}, // A1: u1, u2, u3, u4
	} {
		got := [3]int64{seats(first, c.day).Num().Int64(), seats(second, c.day).Num().Int64(), seats(live, c.day).Num().Int64()}
		if want := [3]int64{c.first, c.second, c.history}; got != want {
			t.Errorf("%s held seats (first, second, history) = %v, want %v", c.day, got, want)
		}
	}
}

// TestStore_ChargebackOpenDaysFollowWrites checks that a day stays open,
// counted from the history, until a run starts after its end: a write
// after the last run shows at once; the run after the day's end closes it
// with the write in it.
func TestStore_ChargebackOpenDaysFollowWrites(t *testing.T) {
	t.Parallel()
	st, conn := newStore(t)
	seedChargeback(t, st)
	p := store.ChargebackParams{From: "2026-03-02", To: "2026-03-03", AllotmentID: "A2"}
	held := func(cb store.Chargeback, day string) map[string]int64 {
		out := map[string]int64{}
		for _, l := range cb.Lines {
			if l.Day == day {
				out[fmt.Sprint(l.Department, "/", l.Idle)] = l.Seats.Num().Int64()
			}
		}
		return out
	}
	before := chargeback(t, st, p)
	if diff := cmp.Diff(map[string]int64{"/true": 2}, held(before, "2026-03-03")); diff != "" {
		t.Errorf("A2 on 03-03 before the write:\n%s", diff)
	}
	// The write proxy gives u3 a seat of A2 on 03-03 at 08:00, after the
	// last run (06:00).
	at := time.Date(2026, 3, 3, 8, 0, 0, 0, time.UTC)
	if _, err := st.RecordAssignment(t.Context(), asg("a6", "A2", "u3"), at); err != nil {
		t.Fatal(err)
	}
	after := chargeback(t, st, p)
	if diff := cmp.Diff(map[string]int64{"/false": 1, "/true": 1}, held(after, "2026-03-03")); diff != "" {
		t.Errorf("A2 on 03-03 after the write (u3 has no department):\n%s", diff)
	}
	if diff := cmp.Diff(held(before, "2026-03-02"), held(after, "2026-03-02")); diff != "" {
		t.Errorf("closed day 03-02 changed:\n%s", diff)
	}
	if _, ok := ledgerDays(t, conn, "UTC")["2026-03-03"]; ok {
		t.Fatal("03-03 is in the ledger before a run started after it")
	}
	// The next run, on 03-04, sees Graph with the write in it and closes
	// 03-03.
	a2 := seatAllotment("A2", skuE5, 2)
	a2.AssignableTo = []string{"user"}
	a2.Raw = rawOf(a2)
	g1 := []store.GroupMember{{MemberID: "u2", MemberType: store.KindUser}, {MemberID: "d1", MemberType: store.KindDevice},
		{MemberID: "u4", MemberType: store.KindUser}}
	applyAt(t, st, time.Date(2026, 3, 4, 1, 0, 0, 0, time.UTC), snapshot{
		allotments:  []store.Allotment{seatAllotment("A1", skuE5, 5), a2},
		assignments: []store.Assignment{asg("a1", "A1", "u1"), groupAsg("a2", "A1", "g1"), asg("a3", "A1", "u2"), asg("a6", "A2", "u3")},
		users:       []store.User{user("u1", "Eng"), user("u2", "Eng"), user("u3", ""), user("u4", "Eng")},
		groups:      map[string][]store.GroupMember{"g1": g1},
	})
	closed := chargeback(t, st, p)
	if _, ok := ledgerDays(t, conn, "UTC")["2026-03-03"]; !ok {
		t.Error("03-03 is not in the ledger after a run started after it")
	}
	if diff := cmp.Diff(after, closed, cmpLines...); diff != "" {
		t.Errorf("03-03 read from the ledger differs from its open count:\n%s", diff)
	}
}

// TestStore_ChargebackLedgerConcurrentFill checks that first requests
// racing for the same closed days compute each day once, agree, and leave
// one row per line.
func TestStore_ChargebackLedgerConcurrentFill(t *testing.T) {
	t.Parallel()
	st, conn := newStore(t)
	seedChargeback(t, st)
	ranges := []store.ChargebackParams{
		{From: "2026-02-01", To: "2026-03-02"}, {From: "2026-02-15", To: "2026-03-03"},
		{From: "2026-02-20", To: "2026-03-02"}, {From: "2026-01-25", To: "2026-02-28"},
	}
	results := make([]store.Chargeback, len(ranges))
	errs := make([]error, len(ranges))
	var wg sync.WaitGroup
	for i, p := range ranges {
		wg.Go(func() { results[i], errs[i] = st.Chargeback(t.Context(), p) })
	}
	wg.Wait()
	for i, p := range ranges {
		if errs[i] != nil {
			t.Fatalf("Chargeback(%+v): %v", p, errs[i])
		}
		if diff := cmp.Diff(liveChargeback(t, st, p), results[i], cmpLines...); diff != "" {
			t.Errorf("Chargeback(%+v) differs from the history's (-live +ledger):\n%s", p, diff)
		}
	}
	// 01-25 .. 03-02: 37 closed days, each once; one seat row per daily
	// line (UTC, no filter, idle seats unallocated).
	if n := queryInt(t, conn, `SELECT count(*) FROM chargeback_days WHERE time_zone = 'UTC'`); n != 37 {
		t.Errorf("%d ledger days, want 37", n)
	}
	all := liveChargeback(t, st, store.ChargebackParams{From: "2026-01-25", To: "2026-03-02"})
	if n := queryInt(t, conn, `SELECT count(*) FROM chargeback_seat_days`); n != int64(len(all.Lines)) {
		t.Errorf("%d ledger seat rows, want one per line: %d", n, len(all.Lines))
	}
}

// TestStore_FillChargebackLedger checks the sync worker's fill: the closed
// days of the window, once; none before the first run; none after now,
// even when a run is dated later.
func TestStore_FillChargebackLedger(t *testing.T) {
	t.Parallel()
	st, conn := newStore(t)
	ctx := t.Context()
	if n, err := st.FillChargebackLedger(ctx, "UTC", 30); err != nil || n != 0 {
		t.Errorf("FillChargebackLedger before any run = %d, %v; want 0, nil", n, err)
	}
	seedChargeback(t, st)
	if n, err := st.FillChargebackLedger(ctx, "UTC", 10); err != nil || n != 10 {
		t.Errorf("FillChargebackLedger(UTC, 10) = %d, %v; want 10, nil", n, err)
	}
	days := ledgerDays(t, conn, "UTC")
	for _, d := range []string{"2026-02-21", "2026-03-02"} {
		if _, ok := days[d]; !ok {
			t.Errorf("day %s not filled; ledger has %v", d, days)
		}
	}
	if _, ok := days["2026-02-20"]; ok || len(days) != 10 {
		t.Errorf("ledger has %d days (%v), want the 10 up to 03-02", len(days), days)
	}
	if n, err := st.FillChargebackLedger(ctx, "UTC", 12); err != nil || n != 2 {
		t.Errorf("FillChargebackLedger(UTC, 12) again = %d, %v; want the 2 missing days", n, err)
	}
	if n, err := st.FillChargebackLedger(ctx, "Asia/Tokyo", 3); err != nil || n != 3 {
		t.Errorf("FillChargebackLedger(Asia/Tokyo, 3) = %d, %v; want 3, nil", n, err)
	}
	if _, ok := ledgerDays(t, conn, "Asia/Tokyo")["2026-03-02"]; !ok {
		t.Error("Tokyo's 03-02 (ended 03-02 15:00 UTC, before the last run) not filled")
	}
	zones, err := st.ChargebackLedgerZones(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"Asia/Tokyo", "UTC"}, zones); diff != "" {
		t.Errorf("ChargebackLedgerZones mismatch (-want +got):\n%s", diff)
	}

	// A run dated two days ahead (a clock running fast) closes nothing
	// after now: today and tomorrow stay open.
	future := time.Now().UTC().Add(48 * time.Hour)
	applyAt(t, st, future, snapshot{allotments: []store.Allotment{seatAllotment("A1", skuE5, 5)}})
	if _, err := st.FillChargebackLedger(ctx, "UTC", 3); err != nil {
		t.Fatal(err)
	}
	today := time.Now().UTC().Format(time.DateOnly)
	yesterday := time.Now().UTC().AddDate(0, 0, -1).Format(time.DateOnly)
	days = ledgerDays(t, conn, "UTC")
	if _, ok := days[today]; ok {
		t.Errorf("today (%s) is in the ledger", today)
	}
	if _, ok := days[yesterday]; !ok {
		t.Errorf("yesterday (%s) is not in the ledger", yesterday)
	}
}
