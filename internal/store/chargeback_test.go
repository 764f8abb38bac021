package store_test

import (
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/seatledger/seatledger/internal/store"
	"github.com/seatledger/seatledger/internal/store/storetest"
)

// seatAllotment is an allotment of sku with allotted units, assignable to
// users and groups.
func seatAllotment(id, sku string, allotted int32) store.Allotment {
	a := allotment(id, sku, 0)
	a.AllottedUnits = allotted
	a.SKUPartNumber = "SPE_E5"
	a.Raw = rawOf(a)
	return a
}

func groupAsg(id, allotment, group string) store.Assignment {
	a := asg(id, allotment, group)
	a.AssigneeType = store.KindGroup
	return a
}

// seedChargeback mirrors three days of history (see the expectations in
// TestStore_Chargeback):
//
//	A1 (E5, 5 units): u1 direct; group g1 (u2, device d1, later u4); u2
//	  also direct; u3 direct from 03-02 10:00 to 03-03 06:00.
//	A2 (E5, 2 units, users only): u1 direct until 03-02 15:00.
//	u1 moves from Sales to Eng on 03-02 at 10:00; u3 has no department.
//	E5 costs 31.00 USD a month, 62.00 from 03-03 (March has 31 days).
//	IT owns A1 from 03-02 12:00.
func seedChargeback(t *testing.T, st *store.Store) {
	t.Helper()
	a2 := seatAllotment("A2", skuE5, 2)
	a2.AssignableTo = []string{"user"}
	a2.Raw = rawOf(a2)
	allotments := []store.Allotment{seatAllotment("A1", skuE5, 5), a2}
	g1 := []store.GroupMember{{MemberID: "u2", MemberType: store.KindUser}, {MemberID: "d1", MemberType: store.KindDevice}}
	base := []store.Assignment{asg("a1", "A1", "u1"), groupAsg("a2", "A1", "g1"), asg("a3", "A1", "u2"), asg("a4", "A2", "u1")}
	users := []store.User{user("u1", "Sales"), user("u2", "Eng"), user("u3", ""), user("u4", "Eng")}
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	applyAt(t, st, at("2026-02-28T12:00:00Z"), snapshot{allotments: allotments, assignments: base, users: users,
		groups: map[string][]store.GroupMember{"g1": g1}})
	moved := []store.User{user("u1", "Eng"), users[1], users[2], users[3]}
	withU3 := append(base[:4:4], asg("a5", "A1", "u3"))
	applyAt(t, st, at("2026-03-02T10:00:00Z"), snapshot{allotments: allotments, assignments: withU3, users: moved,
		groups: map[string][]store.GroupMember{"g1": g1}})
	g1u4 := append(g1[:2:2], store.GroupMember{MemberID: "u4", MemberType: store.KindUser})
	applyAt(t, st, at("2026-03-02T15:00:00Z"), snapshot{allotments: allotments,
		assignments: []store.Assignment{base[0], base[1], base[2], withU3[4]}, users: moved,
		groups: map[string][]store.GroupMember{"g1": g1u4}})
	applyAt(t, st, at("2026-03-03T06:00:00Z"), snapshot{allotments: allotments,
		assignments: []store.Assignment{base[0], base[1], base[2]}, users: moved,
		groups: map[string][]store.GroupMember{"g1": g1u4}})
	if err := st.SetAllotmentOwner(t.Context(), "A1", "IT", "t", at("2026-03-02T12:00:00Z")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []store.Price{
		{SKUID: skuE5, Currency: "USD", MonthlyUnitPrice: "31.00", ValidFrom: "2026-01-01", UpdatedBy: "t"},
		{SKUID: skuE5, Currency: "USD", MonthlyUnitPrice: "62.00", ValidFrom: "2026-03-03", UpdatedBy: "t"},
	} {
		if _, err := st.SetPrice(t.Context(), p); err != nil {
			t.Fatal(err)
		}
	}
}

func TestStore_Chargeback(t *testing.T) {
	t.Parallel()
	st := storetest.New(t)
	seedChargeback(t, st)

	// By hand, per UTC day (price per seat-day: 1.00, 1.00, 2.00):
	//   03-01  A1: u1 Sales, u2 Eng (direct and via g1: once; d1 is a
	//              device and A1 is not assignable to devices), idle 3.
	//          A2: u1 Sales (u1 holds E5 twice: duplicate), idle 1.
	//   03-02  u1 is in Eng at the end of the day.
	//          A1: u1, u2, u4 (joined g1 at 15:00) Eng; u3 none; idle 1.
	//          A2: u1 Eng until 15:00, idle 1.
	//   03-03  A1: u1, u2, u4 Eng; u3 none (held until 06:00); idle 1.
	//          A2: idle 2.
	// Allotted: 7 seats a day = 21 seat-days, 7 + 7 + 14 = 28.00 USD.
	row := func(dept string, idle, noDept, dup bool, days int64, cost string) store.ChargebackRow {
		return store.ChargebackRow{Department: dept, Idle: idle, NoDepartment: noDept, DuplicateSKU: dup,
			SeatDays: days, Currency: "USD", Cost: cost}
	}
	tests := []struct {
		name       string
		p          store.ChargebackParams
		by         string
		wantRows   []store.ChargebackRow
		wantTotals []store.Money
	}{
		{
			name: "unallocated idle seats",
			p:    store.ChargebackParams{From: "2026-03-01", To: "2026-03-03"},
			wantRows: []store.ChargebackRow{
				row("", false, true, false, 2, "3.00"), // u3: 1×1.00 + 1×2.00
				row("", true, false, false, 9, "12.00"),
				row("Eng", false, false, true, 8, "11.00"), // 1 + 4 + 3×2
				row("Sales", false, false, true, 2, "2.00"),
			},
			wantTotals: []store.Money{{Currency: "USD", Amount: "28.00"}},
		},
		{
			// IT owns A1 from 03-02 12:00: A1's idle seats of 03-02 (1 at
			// 1.00) and 03-03 (1 at 2.00) go to IT; 03-01 had no owner, and
			// A2 has none: 4×1.00 + 1×1.00 + 2×2.00 stay unallocated.
			name: "owner policy",
			p:    store.ChargebackParams{From: "2026-03-01", To: "2026-03-03", IdlePolicy: store.IdleOwner},
			wantRows: []store.ChargebackRow{
				row("", false, true, false, 2, "3.00"),
				row("", true, false, false, 7, "9.00"),
				row("Eng", false, false, true, 8, "11.00"),
				row("IT", true, false, false, 2, "3.00"),
				row("Sales", false, false, true, 2, "2.00"),
			},
			wantTotals: []store.Money{{Currency: "USD", Amount: "28.00"}},
		},
		{
			// Idle shares: 03-01 A1 3 → Sales 1.5, Eng 1.5; A2 1 → Sales.
			// 03-02 A1 1 → Eng 3/4, none 1/4; A2 1 → Eng. 03-03 A1 1 →
			// Eng 3/4, none 1/4 (at 2.00); A2 2 → nobody held: stays.
			name: "proportional idle seats",
			p:    store.ChargebackParams{From: "2026-03-01", To: "2026-03-03", IdlePolicy: store.IdleProportional},
			wantRows: []store.ChargebackRow{
				row("", false, true, false, 2, "3.00"),
				// 0.5 seat-days; ties with Sales' 2.5 on remainder, and
				// comes first, so it rounds up.
				row("", true, true, false, 1, "0.75"),
				row("", true, false, false, 2, "4.00"),
				row("Eng", false, false, true, 8, "11.00"),
				row("Eng", true, false, false, 4, "4.75"),
				row("Sales", false, false, true, 2, "2.00"),
				row("Sales", true, false, false, 2, "2.50"),
			},
			wantTotals: []store.Money{{Currency: "USD", Amount: "28.00"}},
		},
		{
			name: "one department",
			p:    store.ChargebackParams{From: "2026-03-01", To: "2026-03-03", IdlePolicy: store.IdleProportional, Department: "Sales"},
			wantRows: []store.ChargebackRow{
				row("Sales", false, false, true, 2, "2.00"),
				row("Sales", true, false, false, 3, "2.50"), // 2.5 rounds half up alone
			},
			wantTotals: []store.Money{{Currency: "USD", Amount: "4.50"}},
		},
		{
			// Tokyo's 03-02 is [03-01 15:00Z, 03-02 15:00Z): u1 is in Eng at
			// its end, a4 ends exactly at its end (held), u4 joins after.
			name: "time zone",
			p:    store.ChargebackParams{From: "2026-03-02", To: "2026-03-02", TimeZone: "Asia/Tokyo"},
			wantRows: []store.ChargebackRow{
				row("", false, true, false, 1, "1.00"),
				row("", true, false, false, 3, "3.00"),
				row("Eng", false, false, true, 3, "3.00"),
			},
			wantTotals: []store.Money{{Currency: "USD", Amount: "7.00"}},
		},
		{
			name: "by allotment",
			p:    store.ChargebackParams{From: "2026-03-01", To: "2026-03-03"},
			by:   store.GroupByAllotment,
			wantRows: []store.ChargebackRow{
				{AllotmentID: "A1", SKUID: skuE5, SKUPartNumber: "SPE_E5", DuplicateSKU: true, SeatDays: 10, Currency: "USD", Cost: "14.00"},
				{AllotmentID: "A1", SKUID: skuE5, SKUPartNumber: "SPE_E5", Idle: true, SeatDays: 5, Currency: "USD", Cost: "6.00"},
				{AllotmentID: "A2", SKUID: skuE5, SKUPartNumber: "SPE_E5", DuplicateSKU: true, SeatDays: 2, Currency: "USD", Cost: "2.00"},
				{AllotmentID: "A2", SKUID: skuE5, SKUPartNumber: "SPE_E5", Idle: true, SeatDays: 4, Currency: "USD", Cost: "6.00"},
			},
			wantTotals: []store.Money{{Currency: "USD", Amount: "28.00"}},
		},
		{
			name: "by sku, one allotment",
			p:    store.ChargebackParams{From: "2026-03-01", To: "2026-03-03", AllotmentID: "A2"},
			by:   store.GroupBySKU,
			wantRows: []store.ChargebackRow{
				{SKUID: skuE5, SKUPartNumber: "SPE_E5", DuplicateSKU: true, SeatDays: 2, Currency: "USD", Cost: "2.00"},
				{SKUID: skuE5, SKUPartNumber: "SPE_E5", Idle: true, SeatDays: 4, Currency: "USD", Cost: "6.00"},
			},
			wantTotals: []store.Money{{Currency: "USD", Amount: "8.00"}},
		},
		{
			name:     "before the first sync",
			p:        store.ChargebackParams{From: "2025-12-31", To: "2025-12-31"},
			wantRows: []store.ChargebackRow{
				// Nothing was mirrored yet on that day.
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cb, err := st.Chargeback(t.Context(), tt.p)
			if err != nil {
				t.Fatal(err)
			}
			by := tt.by
			if by == "" {
				by = store.GroupByDepartment
			}
			rows, totals := store.GroupChargeback(cb.Lines, by)
			if diff := cmp.Diff(tt.wantRows, rows); len(tt.wantRows)+len(rows) > 0 && diff != "" {
				t.Errorf("rows mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantTotals, totals); diff != "" {
				t.Errorf("totals mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestStore_ChargebackIncompleteHistory: days that began before the first
// successful sync run are known to be incomplete, not read as no usage.
func TestStore_ChargebackIncompleteHistory(t *testing.T) {
	t.Parallel()
	st := storetest.New(t)
	if cb := chargeback(t, st, store.ChargebackParams{From: "2026-02-28", To: "2026-03-01"}); !cb.IncompleteHistory || !cb.HistoryStart.IsZero() {
		t.Errorf("before any run: IncompleteHistory %t, HistoryStart %v; want true, none", cb.IncompleteHistory, cb.HistoryStart)
	}
	seedChargeback(t, st) // first run 02-28 12:00 UTC
	for _, tt := range []struct {
		from, to, tz string
		want         bool
	}{
		{"2025-12-31", "2025-12-31", "", true},
		{"2026-02-28", "2026-03-03", "", true}, // 02-28 began before the run
		{"2026-03-01", "2026-03-03", "", false},
		{"2026-02-28", "2026-03-01", "Pacific/Kiritimati", true},
		{"2026-03-01", "2026-03-01", "Pacific/Kiritimati", true}, // began 02-28 10:00 UTC
		{"2026-03-02", "2026-03-02", "Pacific/Kiritimati", false},
	} {
		cb := chargeback(t, st, store.ChargebackParams{From: tt.from, To: tt.to, TimeZone: tt.tz})
		if cb.IncompleteHistory != tt.want || !cb.HistoryStart.Equal(time.Date(2026, 2, 28, 12, 0, 0, 0, time.UTC)) {
			t.Errorf("%s to %s in %q: IncompleteHistory %t, HistoryStart %v; want %t, 2026-02-28 12:00 UTC",
				tt.from, tt.to, tt.tz, cb.IncompleteHistory, cb.HistoryStart, tt.want)
		}
	}
}

func TestStore_ChargebackMissingPrice(t *testing.T) {
	t.Parallel()
	st := storetest.New(t)
	at := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	applyAt(t, st, at, snapshot{allotments: []store.Allotment{seatAllotment("A3", skuE3, 1)}})
	cb, err := st.Chargeback(t.Context(), store.ChargebackParams{From: "2026-04-01", To: "2026-04-02"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{skuE3}, cb.UnpricedSKUs); diff != "" {
		t.Errorf("UnpricedSKUs mismatch (-want +got):\n%s", diff)
	}
	rows, totals := store.GroupChargeback(cb.Lines, store.GroupByDepartment)
	want := []store.ChargebackRow{{Idle: true, MissingPrice: true, SeatDays: 2, Cost: "0.00"}}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("rows mismatch (-want +got):\n%s", diff)
	}
	if len(totals) != 0 {
		t.Errorf("totals = %v, want none", totals)
	}
}

func TestGroupChargeback_largestRemainder(t *testing.T) {
	t.Parallel()
	line := func(dept, currency string, cost *big.Rat) store.ChargebackLine {
		return store.ChargebackLine{Department: dept, AllocationMethod: store.AllocSeatHolder, Seats: big.NewRat(1, 1),
			Currency: currency, UnitPrice: "1", ListUnitPrice: "1", Cost: cost}
	}
	third := big.NewRat(1, 3)
	rows, totals := store.GroupChargeback([]store.ChargebackLine{
		line("a", "USD", third), line("b", "USD", third), line("c", "USD", third),
		line("a", "JPY", big.NewRat(5, 2)), line("b", "JPY", big.NewRat(5, 2)),
		line("d", "EUR", big.NewRat(1001, 200)), // 5.005 rounds half up
	}, store.GroupByDepartment)
	got := map[string]string{}
	for _, r := range rows {
		got[r.Department+" "+r.Currency] = r.Cost
	}
	want := map[string]string{"a USD": "0.34", "b USD": "0.33", "c USD": "0.33", "a JPY": "3", "b JPY": "2", "d EUR": "5.01"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("costs mismatch (-want +got):\n%s", diff)
	}
	wantTotals := []store.Money{{Currency: "EUR", Amount: "5.01"}, {Currency: "JPY", Amount: "5"}, {Currency: "USD", Amount: "1.00"}}
	if diff := cmp.Diff(wantTotals, totals); diff != "" {
		t.Errorf("totals mismatch (-want +got):\n%s", diff)
	}
}

// TestStore_ChargebackGaps covers versions that end without a successor:
// a user deleted and recreated within a day, a user deleted for good, and
// an allotment removed mid-day.
func TestStore_ChargebackGaps(t *testing.T) {
	t.Parallel()
	st := storetest.New(t)
	a9 := seatAllotment("A9", skuE3, 2)
	held := []store.Assignment{asg("as9", "A9", "v1")}
	for _, s := range []struct {
		at   time.Time
		snap snapshot
	}{
		{time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), snapshot{allotments: []store.Allotment{a9}, assignments: held, users: []store.User{user("v1", "Red")}}},
		{time.Date(2026, 4, 2, 8, 0, 0, 0, time.UTC), snapshot{users: []store.User{}}},
		{time.Date(2026, 4, 2, 20, 0, 0, 0, time.UTC), snapshot{users: []store.User{user("v1", "Blue")}}},
		{time.Date(2026, 4, 3, 10, 0, 0, 0, time.UTC), snapshot{users: []store.User{}}},
		{time.Date(2026, 4, 4, 12, 0, 0, 0, time.UTC), snapshot{allotments: []store.Allotment{}, assignments: []store.Assignment{}}},
	} {
		applyAt(t, st, s.at, s.snap)
	}
	cb, err := st.Chargeback(t.Context(), store.ChargebackParams{From: "2026-04-01", To: "2026-04-05"})
	if err != nil {
		t.Fatal(err)
	}
	// 04-01 Red; 04-02 Blue (the version recreated at 20:00 is the latest
	// that day); 04-03 Blue (deleted at 10:00, the last one seen); 04-04 no
	// user version: no department; A9 exists until 04-04 12:00, so it has
	// one idle seat on each of 4 days; 04-05 nothing.
	type dayDept struct {
		day, dept string
		idle      bool
	}
	got := map[dayDept]int64{}
	for _, l := range cb.Lines {
		got[dayDept{l.Day, l.Department, l.Idle}] += l.Seats.Num().Int64()
	}
	want := map[dayDept]int64{
		{"2026-04-01", "Red", false}: 1, {"2026-04-01", "", true}: 1,
		{"2026-04-02", "Blue", false}: 1, {"2026-04-02", "", true}: 1,
		{"2026-04-03", "Blue", false}: 1, {"2026-04-03", "", true}: 1,
		{"2026-04-04", "", false}: 1, {"2026-04-04", "", true}: 1,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("seats per day mismatch (-want +got):\n%s", diff)
	}
}

// TestStore_ChargebackWaitingMembers: a member of an assigned group who
// waits in the allotment's waiting room holds no licence (Graph's
// consumedUnits leaves it out), so it counts no seat-day while it waits,
// neither counted from the history nor read from the ledger.
func TestStore_ChargebackWaitingMembers(t *testing.T) {
	t.Parallel()
	st := storetest.New(t)
	w1 := seatAllotment("W1", skuE5, 3)
	members := func(ids ...string) map[string][]store.GroupMember {
		var g []store.GroupMember
		for _, id := range ids {
			g = append(g, store.GroupMember{MemberID: id, MemberType: store.KindUser})
		}
		return map[string][]store.GroupMember{"gw": g}
	}
	wait := func(id, member string) store.WaitingMember {
		return store.WaitingMember{ID: id, AllotmentID: "W1", MemberID: member, MemberType: store.KindUser,
			Raw: fmt.Appendf(nil, `{"id": %q}`, id)}
	}
	users := []store.User{user("m1", "Sales"), user("m2", "Sales"), user("m3", "Eng"), user("m4", "Eng"), user("m5", "Ops")}
	asgs := []store.Assignment{groupAsg("gwa", "W1", "gw")}
	// 04-10: five members, three seats: m4 and m5 wait. 04-11 12:00: m1
	// leaves, m5 gets its seat; m4 waits on. 04-12 in that state; a run
	// on 04-14 closes the days.
	applyAt(t, st, time.Date(2026, 4, 10, 0, 0, 0, 0, time.UTC), snapshot{allotments: []store.Allotment{w1}, assignments: asgs,
		users: users, groups: members("m1", "m2", "m3", "m4", "m5"), waiting: []store.WaitingMember{wait("wm4", "m4"), wait("wm5", "m5")}})
	applyAt(t, st, time.Date(2026, 4, 11, 12, 0, 0, 0, time.UTC), snapshot{allotments: []store.Allotment{w1}, assignments: asgs,
		users: users, groups: members("m2", "m3", "m4", "m5"), waiting: []store.WaitingMember{wait("wm4", "m4")}})
	applyAt(t, st, time.Date(2026, 4, 14, 0, 0, 0, 0, time.UTC), snapshot{allotments: []store.Allotment{w1}, assignments: asgs,
		users: users, groups: members("m2", "m3", "m4", "m5"), waiting: []store.WaitingMember{wait("wm4", "m4")}})

	type dayDept struct {
		day, dept string
		idle      bool
	}
	// 04-10: m1, m2 Sales, m3 Eng: full, no idle seat.
	// 04-11: m1 (until 12:00), m2 Sales, m3 Eng, m5 Ops (from 12:00):
	//        four holders of three units that day, no idle seat.
	// 04-12: m2 Sales, m3 Eng, m5 Ops. m4 waits throughout: never.
	want := map[dayDept]int64{
		{"2026-04-10", "Sales", false}: 2, {"2026-04-10", "Eng", false}: 1,
		{"2026-04-11", "Sales", false}: 2, {"2026-04-11", "Eng", false}: 1, {"2026-04-11", "Ops", false}: 1,
		{"2026-04-12", "Sales", false}: 1, {"2026-04-12", "Eng", false}: 1, {"2026-04-12", "Ops", false}: 1,
	}
	p := store.ChargebackParams{From: "2026-04-10", To: "2026-04-12"}
	for name, cb := range map[string]store.Chargeback{"ledger": chargeback(t, st, p), "live": liveChargeback(t, st, p)} {
		got := map[dayDept]int64{}
		for _, l := range cb.Lines {
			got[dayDept{l.Day, l.Department, l.Idle}] += l.Seats.Num().Int64()
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: seats per day mismatch (-want +got):\n%s", name, diff)
		}
	}
}
