package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"iter"
	"math/big"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	seatledgerv1 "github.com/seatledger/seatledger/gen/seatledger/v1"
	"github.com/seatledger/seatledger/internal/graphsim"
	"github.com/seatledger/seatledger/internal/store"
	"github.com/seatledger/seatledger/internal/store/storetest"
)

const cbSKU = "06ebc4ee-1bb5-47dd-8120-11324bc54e06" // SPE_E5

func seq[T any](items ...T) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for _, it := range items {
			if !yield(it, nil) {
				return
			}
		}
	}
}

// seedJune mirrors June 2026 into the database at dsn through the store's
// snapshot API, as three sync runs would have:
//
//	AL1 (SPE_E5, 10 units, users and groups): alice, bob, dave, erin direct;
//	    group G1 (carol; frank joins on 06-21 at 09:00).
//	AL2 (SPE_E5, 3 units, users only): erin direct (erin holds E5 twice).
//	alice Sales; bob Sales, Engineering from 06-11 at 10:00; carol and erin
//	Engineering; frank Marketing; dave has no department.
func seedJune(t *testing.T, dsn string) {
	t.Helper()
	ctx := t.Context()
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	allotments := []store.Allotment{
		{ID: "AL1", SKUID: cbSKU, SKUPartNumber: "SPE_E5", AllottedUnits: 10, ConsumedUnits: 5, AssignableTo: []string{"user", "group"}},
		{ID: "AL2", SKUID: cbSKU, SKUPartNumber: "SPE_E5", AllottedUnits: 3, ConsumedUnits: 1, AssignableTo: []string{"user"}},
	}
	direct := func(id, allotment, user string) store.Assignment {
		return store.Assignment{ID: id, AllotmentID: allotment, AssigneeID: user, AssigneeType: store.KindUser}
	}
	assignments := []store.Assignment{
		direct("as-alice", "AL1", "alice"), direct("as-bob", "AL1", "bob"), direct("as-dave", "AL1", "dave"),
		direct("as-erin", "AL1", "erin"), direct("as-erin2", "AL2", "erin"),
		{ID: "as-g1", AllotmentID: "AL1", AssigneeID: "G1", AssigneeType: store.KindGroup},
	}
	u := func(id, dept string) store.User {
		return store.User{ID: id, UserPrincipalName: id + "@contoso.example", DisplayName: id, Department: dept, AccountEnabled: true}
	}
	users := func(bobDept string) []store.User {
		return []store.User{u("alice", "Sales"), u("bob", bobDept), u("carol", "Engineering"), u("dave", ""),
			u("erin", "Engineering"), u("frank", "Marketing")}
	}
	carol := store.GroupMember{MemberID: "carol", MemberType: store.KindUser}
	frank := store.GroupMember{MemberID: "frank", MemberType: store.KindUser}
	for _, run := range []struct {
		at      string
		bobDept string
		g1      []store.GroupMember
	}{
		{"2026-05-31T23:00:00Z", "Sales", []store.GroupMember{carol}},
		{"2026-06-11T10:00:00Z", "Engineering", []store.GroupMember{carol}},
		{"2026-06-21T09:00:00Z", "Engineering", []store.GroupMember{carol, frank}},
	} {
		at, err := time.Parse(time.RFC3339, run.at)
		if err != nil {
			t.Fatal(err)
		}
		sn, err := st.BeginSnapshot(ctx, at)
		if err != nil {
			t.Fatal(err)
		}
		for _, stage := range []func() (int64, error){
			func() (int64, error) { return sn.StageAllotments(ctx, seq(allotments...)) },
			func() (int64, error) { return sn.StageAssignments(ctx, seq(assignments...)) },
			func() (int64, error) { return sn.StageUsers(ctx, true, seq(users(run.bobDept)...)) },
			func() (int64, error) { return sn.StageGroupMembers(ctx, "G1", seq(run.g1...)) },
		} {
			if _, err := stage(); err != nil {
				t.Fatalf("stage at %s: %v", run.at, err)
			}
		}
		if _, err := sn.Apply(ctx, store.SyncRun{}, store.ApplyOptions{}); err != nil {
			t.Fatalf("apply at %s: %v", run.at, err)
		}
	}
}

// By hand. June has 30 days. E5 costs 31.00 USD a month until 06-15 (A:
// 31.00/30 a seat-day) and 37.00 from 06-16 (B: 37.00/30). Below, "nA"
// means n seat-days at price A. Amounts are in cents times 30 (exact
// integers), then divided by 30.
//
//	Sales:       alice 15A+15B, bob (06-01..06-10) 10A      = 25A+15B = 40
//	Engineering: bob (06-11..06-30) 5A+15B, carol 15A+15B,
//	             erin in AL1 and AL2 30A+30B                = 50A+60B = 110
//	Marketing:   frank (06-21..06-30)                       = 10B     = 10
//	none:        dave                                       = 15A+15B = 30
//	idle:        AL1 5/day on 06-01..06-20 and 4/day after:
//	             75A+25B+40B; AL2 2/day: 30A+30B            = 105A+95B = 200
//	allotted:    13 units × 30 days = 390 seat-days = 195A+195B.
const (
	centsA int64 = 3100 // cents per licence-month, price A
	centsB int64 = 3700
)

var (
	salesX30 = 25*centsA + 15*centsB  // 133000 → 4433.33 cents
	engX30   = 50*centsA + 60*centsB  // 377000 → 12566.67
	mktX30   = 10 * centsB            // 37000  → 1233.33
	noneX30  = 15*centsA + 15*centsB  // 102000 → 3400.00
	idleX30  = 105*centsA + 95*centsB // 677000 → 22566.67
	totalX30 = 195*centsA + 195*centsB
)

func cents(n int64) string { return fmt.Sprintf("%d.%02d", n/100, n%100) }

func TestRun_Chargeback(t *testing.T) {
	t.Parallel()
	if salesX30+engX30+mktX30+noneX30+idleX30 != totalX30 || totalX30 != 1326000 {
		t.Fatalf("hand arithmetic is inconsistent")
	}
	sim, err := graphsim.New(graphsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	info, err := sim.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	mint := func(roles ...string) string {
		tok, err := sim.MintCallerToken(graphsim.CallerToken{Audience: "api://seatledger", Caller: "e2e-" + strings.Join(roles, "-"), Roles: roles})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	dsn := storetest.NewDSN(t)
	seedJune(t, dsn)
	svc := startService(t, map[string]string{
		"SEATLEDGER_OIDC_ISSUER":   info.IssuerURL,
		"SEATLEDGER_OIDC_AUDIENCE": "api://seatledger",
		"DATABASE_URL":             dsn,
		"SEATLEDGER_GRAPH_URL":     info.GraphURL,
		"AZURE_TENANT_ID":          info.TenantID,
		"AZURE_CLIENT_ID":          info.ClientID,
		"AZURE_CLIENT_SECRET":      info.ClientSecret,
		"AZURE_AUTHORITY_HOST":     info.AuthorityURL,
		"SSL_CERT_FILE":            info.CAFile,
	}, mint("finance"))
	ctx := context.Background()
	cb := seatledgerv1.NewChargebackServiceClient(svc.conn)

	// Prices: one over gRPC, the mid-month change over REST.
	if _, err := cb.SetPrice(ctx, &seatledgerv1.SetPriceRequest{SkuId: cbSKU, ValidFrom: "2026-01-01",
		MonthlyUnitPrice: &seatledgerv1.Money{CurrencyCode: "USD", Amount: "31.00"}}); err != nil {
		t.Fatalf("SetPrice: %v", err)
	}
	code, body := svc.send(t, http.MethodPut, "/v1/prices/"+cbSKU,
		`{"monthlyUnitPrice": {"currencyCode": "USD", "amount": "37.00"}, "validFrom": "2026-06-16"}`)
	if code != http.StatusOK {
		t.Fatalf("PUT /v1/prices = %d %s", code, body)
	}
	prices, err := cb.ListPrices(ctx, &seatledgerv1.ListPricesRequest{IncludeHistory: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(prices.GetPrices()); got != 2 || prices.GetPrices()[0].GetValidTo() != "2026-06-16" ||
		prices.GetPrices()[1].GetUpdatedBy() == "" {
		t.Errorf("ListPrices(history) = %v", prices)
	}

	page1, err := cb.ListPrices(ctx, &seatledgerv1.ListPricesRequest{IncludeHistory: true, PageSize: 1})
	if err != nil || len(page1.GetPrices()) != 1 || page1.GetNextPageToken() == "" {
		t.Fatalf("ListPrices(page 1) = %v, %v", page1, err)
	}
	page2, err := cb.ListPrices(ctx, &seatledgerv1.ListPricesRequest{IncludeHistory: true, PageSize: 1, PageToken: page1.GetNextPageToken()})
	if err != nil || len(page2.GetPrices()) != 1 || page2.GetPrices()[0].GetValidFrom() != "2026-06-16" || page2.GetNextPageToken() != "" {
		t.Errorf("ListPrices(page 2) = %v, %v", page2, err)
	}
	if _, err := cb.ListPrices(ctx, &seatledgerv1.ListPricesRequest{PageToken: page1.GetNextPageToken()}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("ListPrices with another request's token = %v, want InvalidArgument", err)
	}
	code, body = svc.get(t, "/v1/prices?asOf=2026-06-15")
	if code != http.StatusOK || !strings.Contains(string(body), `"amount":"31.00"`) {
		t.Errorf("GET /v1/prices?asOf=2026-06-15 = %d %s", code, body)
	}

	money := func(x30 int64) *seatledgerv1.Money {
		return &seatledgerv1.Money{CurrencyCode: "USD", Amount: cents(x30 / 30)}
	}
	row := func(dept string, days int64, amount string, flags ...seatledgerv1.ChargebackFlag) *seatledgerv1.ChargebackRow {
		return &seatledgerv1.ChargebackRow{Department: dept, SeatDays: days,
			Cost: &seatledgerv1.Money{CurrencyCode: "USD", Amount: amount}, Flags: flags}
	}
	const (
		idleFlag = seatledgerv1.ChargebackFlag_CHARGEBACK_FLAG_IDLE_SEATS
		noDept   = seatledgerv1.ChargebackFlag_CHARGEBACK_FLAG_NO_DEPARTMENT
		dup      = seatledgerv1.ChargebackFlag_CHARGEBACK_FLAG_DUPLICATE_SKU
	)
	// Unallocated idle seats. Exact cents: 4433.33, 12566.67, 1233.33,
	// 3400, 22566.67; the total is exactly 44200 (442.00). Rounded down they
	// make 44198; the two largest remainders (.67: Engineering and idle)
	// get the two missing cents.
	if got := money(totalX30).GetAmount(); got != "442.00" {
		t.Fatalf("total by hand = %s", got)
	}
	wantJSON := &seatledgerv1.ChargebackReport{
		From: "2026-06-01", To: "2026-06-30", TimeZone: "UTC",
		GroupBy:        seatledgerv1.ChargebackGroupBy_CHARGEBACK_GROUP_BY_DEPARTMENT,
		Format:         seatledgerv1.ChargebackFormat_CHARGEBACK_FORMAT_JSON,
		IdleSeatPolicy: seatledgerv1.IdleSeatPolicy_IDLE_SEAT_POLICY_UNALLOCATED,
		Rows: []*seatledgerv1.ChargebackRow{
			row("", 30, cents(noneX30/30), noDept),
			row("", 200, cents(idleX30/30+1), idleFlag),
			row("Engineering", 110, cents(engX30/30+1), dup),
			row("Marketing", 10, cents(mktX30/30)),
			row("Sales", 40, cents(salesX30/30)),
		},
		Totals: []*seatledgerv1.Money{money(totalX30)},
		// The first run (seedJune) started on 05-31 at 23:00: June is
		// wholly mirrored, no INCOMPLETE_HISTORY.
		HistoryStartTime: timestamppb.New(time.Date(2026, 5, 31, 23, 0, 0, 0, time.UTC)),
	}
	ignoreTime := protocmp.IgnoreFields(&seatledgerv1.ChargebackReport{}, "generate_time")

	t.Run("gRPC JSON rows", func(t *testing.T) {
		got, err := cb.GetChargeback(ctx, &seatledgerv1.GetChargebackRequest{From: "2026-06-01", To: "2026-06-30"})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(wantJSON, got, protocmp.Transform(), ignoreTime); diff != "" {
			t.Errorf("GetChargeback mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("REST JSON rows", func(t *testing.T) {
		code, body := svc.get(t, "/v1/chargeback?from=2026-06-01&to=2026-06-30&group_by=department&format=json")
		if code != http.StatusOK {
			t.Fatalf("GET /v1/chargeback = %d %s", code, body)
		}
		got := &seatledgerv1.ChargebackReport{}
		if err := protojson.Unmarshal(body, got); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(wantJSON, got, protocmp.Transform(), ignoreTime); diff != "" {
			t.Errorf("GET /v1/chargeback mismatch (-want +got):\n%s", diff)
		}
	})

	wantCSV := [][]string{
		{"period_start", "period_end", "time_zone", "department", "allotment_id", "sku_id", "sku_part_number",
			"seat_state", "seat_days", "currency", "amount", "flags"},
		{"2026-06-01", "2026-06-30", "UTC", "", "", "", "", "assigned", "30", "USD", "34.00", "no_department"},
		{"2026-06-01", "2026-06-30", "UTC", "", "", "", "", "idle", "200", "USD", "225.67", "idle_seats"},
		{"2026-06-01", "2026-06-30", "UTC", "Engineering", "", "", "", "assigned", "110", "USD", "125.67", "duplicate_sku"},
		{"2026-06-01", "2026-06-30", "UTC", "Marketing", "", "", "", "assigned", "10", "USD", "12.33", ""},
		{"2026-06-01", "2026-06-30", "UTC", "Sales", "", "", "", "assigned", "40", "USD", "44.33", ""},
	}
	checkCSV := func(t *testing.T, contentType string, body []byte) {
		t.Helper()
		if contentType != "text/csv; charset=utf-8" {
			t.Errorf("Content-Type = %q, want text/csv; charset=utf-8", contentType)
		}
		got, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
		if err != nil {
			t.Fatalf("CSV does not parse: %v\n%s", err, body)
		}
		if diff := cmp.Diff(wantCSV, got); diff != "" {
			t.Errorf("CSV mismatch (-want +got):\n%s", diff)
		}
		// The amounts add up to the total to the cent.
		var sum int64
		for _, r := range got[1:] {
			var whole, frac int64
			fmt.Sscanf(r[10], "%d.%d", &whole, &frac)
			sum += whole*100 + frac
		}
		if sum != totalX30/30 {
			t.Errorf("CSV amounts sum to %d cents, want %d", sum, totalX30/30)
		}
	}
	t.Run("REST CSV by Accept", func(t *testing.T) {
		resp, body := svc.do(t, http.MethodGet, "/v1/chargeback?from=2026-06-01&to=2026-06-30", "", "text/csv")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET = %d %s", resp.StatusCode, body)
		}
		checkCSV(t, resp.Header.Get("Content-Type"), body)
	})
	t.Run("REST CSV by format", func(t *testing.T) {
		resp, body := svc.do(t, http.MethodGet, "/v1/chargeback?from=2026-06-01&to=2026-06-30&format=csv", "", "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET = %d %s", resp.StatusCode, body)
		}
		checkCSV(t, resp.Header.Get("Content-Type"), body)
	})
	t.Run("gRPC CSV", func(t *testing.T) {
		got, err := cb.GetChargeback(ctx, &seatledgerv1.GetChargebackRequest{From: "2026-06-01", To: "2026-06-30",
			Format: seatledgerv1.ChargebackFormat_CHARGEBACK_FORMAT_CSV})
		if err != nil {
			t.Fatal(err)
		}
		checkCSV(t, got.GetContentType(), got.GetContent())
	})

	t.Run("proportional idle seats", func(t *testing.T) {
		// AL1's idle seats follow its holders each day: 06-01..06-10 Sales 2,
		// none 1, Engineering 2 of 5 (5 idle); 06-11..06-20 Sales 1, none 1,
		// Engineering 3 (5 idle); 06-21..06-30 Sales 1, none 1, Engineering
		// 3, Marketing 1 of 6 (4 idle). AL2's 2 idle a day go to
		// Engineering (erin). Idle shares, in seat-days:
		//   Sales 20A + 5A + 5B + 10×4/6 B = 25A + 35/3 B
		//   none  10A + 5A + 5B + 20/3 B   = 15A + 35/3 B
		//   Eng   20A + 15A + 15B + 20B + AL2 30A + 30B = 65A + 65B
		//   Mkt   20/3 B
		// In cents × 90 (3 × 30):
		salesIdle := 3*25*centsA + 35*centsB // 362000 → 4022.22
		noneIdle := 3*15*centsA + 35*centsB  // 269000 → 2988.89
		engIdle := 3 * (65*centsA + 65*centsB)
		mktIdle := 20 * centsB // 74000 → 822.22
		if salesIdle+noneIdle+engIdle+mktIdle != 3*idleX30 {
			t.Fatal("idle shares do not add up")
		}
		// Rounded down: 3400 + 2988 + 12566 + 14733 + 1233 + 822 + 4433 +
		// 4022 = 44197 cents; 3 more go to the largest remainders: none's
		// idle share (.89), Engineering (.67), then of the .33 ties the
		// first row in order, Engineering's idle share.
		// Seat-days: idle shares 36⅔ (Sales), 26⅔ (none), 130, 6⅔ (Mkt):
		// 198 rounded down; the two missing go to the first .67 rows: none
		// and Marketing.
		want := []*seatledgerv1.ChargebackRow{
			row("", 30, cents(noneX30/30), noDept),
			row("", 27, cents(int64(noneIdle)/90+1), idleFlag, noDept),
			row("Engineering", 110, cents(engX30/30+1), dup),
			row("Engineering", 130, cents(int64(engIdle)/90+1), idleFlag),
			row("Marketing", 10, cents(mktX30/30)),
			row("Marketing", 7, cents(int64(mktIdle)/90), idleFlag),
			row("Sales", 40, cents(salesX30/30)),
			row("Sales", 36, cents(int64(salesIdle)/90), idleFlag),
		}
		code, body := svc.get(t, "/v1/chargeback?from=2026-06-01&to=2026-06-30&idle_seat_policy=proportional")
		if code != http.StatusOK {
			t.Fatalf("GET = %d %s", code, body)
		}
		got := &seatledgerv1.ChargebackReport{}
		if err := protojson.Unmarshal(body, got); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got.GetRows(), protocmp.Transform()); diff != "" {
			t.Errorf("rows mismatch (-want +got):\n%s", diff)
		}
		// Spreading everything, departments pay exactly allotted × price.
		if diff := cmp.Diff([]*seatledgerv1.Money{money(totalX30)}, got.GetTotals(), protocmp.Transform()); diff != "" {
			t.Errorf("totals mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("by SKU and allotment", func(t *testing.T) {
		got, err := cb.GetChargeback(ctx, &seatledgerv1.GetChargebackRequest{From: "2026-06-01", To: "2026-06-30",
			GroupBy: seatledgerv1.ChargebackGroupBy_CHARGEBACK_GROUP_BY_SKU})
		if err != nil {
			t.Fatal(err)
		}
		assigned := salesX30 + engX30 + mktX30 + noneX30 // 649000 → 21633.33
		want := []*seatledgerv1.ChargebackRow{
			{SkuId: cbSKU, SkuPartNumber: "SPE_E5", SeatDays: 190, Cost: money(int64(assigned)), Flags: []seatledgerv1.ChargebackFlag{dup}},
			{SkuId: cbSKU, SkuPartNumber: "SPE_E5", SeatDays: 200, Cost: &seatledgerv1.Money{CurrencyCode: "USD", Amount: cents(idleX30/30 + 1)},
				Flags: []seatledgerv1.ChargebackFlag{idleFlag}},
		}
		if diff := cmp.Diff(want, got.GetRows(), protocmp.Transform()); diff != "" {
			t.Errorf("by SKU mismatch (-want +got):\n%s", diff)
		}
		code, body := svc.get(t, "/v1/chargeback?from=2026-06-01&to=2026-06-30&group_by=allotment&allotment_id=AL2")
		if code != http.StatusOK {
			t.Fatalf("GET = %d %s", code, body)
		}
		rep := &seatledgerv1.ChargebackReport{}
		if err := protojson.Unmarshal(body, rep); err != nil {
			t.Fatal(err)
		}
		// AL2: erin 15A+15B; idle 30A+30B.
		wantAL2 := []*seatledgerv1.ChargebackRow{
			{AllotmentId: "AL2", SkuId: cbSKU, SkuPartNumber: "SPE_E5", SeatDays: 30, Cost: money(15*centsA + 15*centsB), Flags: []seatledgerv1.ChargebackFlag{dup}},
			{AllotmentId: "AL2", SkuId: cbSKU, SkuPartNumber: "SPE_E5", SeatDays: 60, Cost: money(30*centsA + 30*centsB), Flags: []seatledgerv1.ChargebackFlag{idleFlag}},
		}
		if diff := cmp.Diff(wantAL2, rep.GetRows(), protocmp.Transform()); diff != "" {
			t.Errorf("AL2 mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("FOCUS", func(t *testing.T) {
		resp, body := svc.do(t, http.MethodGet, "/v1/chargeback?from=2026-06-01&to=2026-06-30&format=focus", "", "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET = %d %s", resp.StatusCode, body)
		}
		checkFOCUS(t, body, focusWant{
			days: 30, seatDaysAssigned: 190, idleLicenceDays: 200, totalCents: totalX30 / 30,
			allotted: map[string]int64{"AL1": 10, "AL2": 3},
		})
		again, err := cb.GetChargeback(ctx, &seatledgerv1.GetChargebackRequest{From: "2026-06-01", To: "2026-06-30",
			Format: seatledgerv1.ChargebackFormat_CHARGEBACK_FORMAT_FOCUS})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again.GetContent(), body) {
			t.Error("two FOCUS exports of the same range differ")
		}
		resp, body = svc.do(t, http.MethodGet, "/v1/chargeback?from=2026-06-01&to=2026-06-30&format=focus&idle_seat_policy=proportional", "", "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET = %d %s", resp.StatusCode, body)
		}
		checkFOCUS(t, body, focusWant{
			days: 30, seatDaysAssigned: 190, idleLicenceDays: 200, totalCents: totalX30 / 30,
			allotted: map[string]int64{"AL1": 10, "AL2": 3}, allAllocated: true,
		})
	})

	t.Run("errors", func(t *testing.T) {
		_, err := cb.GetChargeback(ctx, &seatledgerv1.GetChargebackRequest{From: "2025-12-01", To: "2025-12-02",
			Format: seatledgerv1.ChargebackFormat_CHARGEBACK_FORMAT_FOCUS})
		if status.Code(err) != codes.OK {
			t.Errorf("FOCUS of an empty range: %v, want OK", err)
		}
		for _, req := range []*seatledgerv1.GetChargebackRequest{
			{From: "2026-06-01"},
			{From: "2026-06-30", To: "2026-06-01"},
			{From: "2026-06-01", To: "2026-06-30", TimeZone: "Mars/Olympus"},
			{From: "2026-06-01", To: "2026-06-30", SkuId: "not-a-guid"},
		} {
			if _, err := cb.GetChargeback(ctx, req); status.Code(err) != codes.InvalidArgument {
				t.Errorf("GetChargeback(%v) = %v, want InvalidArgument", req, err)
			}
		}
		if _, err := cb.SetPrice(ctx, &seatledgerv1.SetPriceRequest{SkuId: cbSKU, ValidFrom: "2026-01-01",
			MonthlyUnitPrice: &seatledgerv1.Money{CurrencyCode: "USD", Amount: "1e3"}}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("SetPrice(1e3) = %v, want InvalidArgument", err)
		}
		reader := seatledgerv1.NewChargebackServiceClient(svc.dial(t, mint("reader")))
		if _, err := reader.GetChargeback(ctx, &seatledgerv1.GetChargebackRequest{From: "2026-06-01", To: "2026-06-30"}); status.Code(err) != codes.PermissionDenied {
			t.Errorf("GetChargeback as reader = %v, want PermissionDenied", err)
		}
	})
}

// send makes a request with a JSON body and the service's token.
func (s *service) send(t *testing.T, method, path, body string) (int, []byte) {
	t.Helper()
	resp, b := s.do(t, method, path, body, "")
	return resp.StatusCode, b
}

// do makes a request with the service's token, an optional JSON body and
// an optional Accept header.
func (s *service) do(t *testing.T, method, path, body, accept string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.httpURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	return resp, buf.Bytes()
}

// focusWant is what a FOCUS export of the June scenario must add up to.
type focusWant struct {
	days                              int
	seatDaysAssigned, idleLicenceDays int64
	totalCents                        int64
	allotted                          map[string]int64 // licences per allotment, every day
	allAllocated                      bool             // every idle row is shared in proportion to use
}

var (
	focusDateTime = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$`)
	focusDecimal  = regexp.MustCompile(`^\d+\.\d+$`)
)

// checkFOCUS applies the checks of shared/finance/FOCUS.md §3.1 that fit
// this export: structure, formats, enumerations, nulls, row semantics and
// reconciliation, in exact decimal arithmetic.
func checkFOCUS(t *testing.T, body []byte, want focusWant) {
	t.Helper()
	recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("FOCUS CSV does not parse: %v", err)
	}
	header := recs[0]
	mandatory := []string{"BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodEnd",
		"BillingPeriodStart", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargePeriodEnd", "ChargePeriodStart",
		"ContractedCost", "EffectiveCost", "InvoiceIssuerName", "ListCost", "PricingQuantity", "PricingUnit",
		"ProviderName", "PublisherName", "ServiceCategory", "ServiceName"}
	col := map[string]int{}
	sawCustom := false
	for i, h := range header {
		if _, dup := col[h]; dup {
			t.Errorf("column %s twice", h)
		}
		col[h] = i
		if strings.HasPrefix(h, "x_") {
			sawCustom = true
			if !regexp.MustCompile(`^x_[A-Z][A-Za-z0-9]*$`).MatchString(h) {
				t.Errorf("custom column %s is not x_PascalCase", h)
			}
		} else if sawCustom {
			t.Errorf("FOCUS column %s after a custom column", h)
		}
	}
	for _, m := range mandatory {
		if _, ok := col[m]; !ok {
			t.Errorf("mandatory column %s missing", m)
		}
	}
	get := func(r []string, c string) string { return r[col[c]] }
	dec := func(s string) *big.Rat {
		t.Helper()
		if !focusDecimal.MatchString(s) {
			t.Fatalf("%q is not a FOCUS decimal with a fractional digit", s)
		}
		v, _ := new(big.Rat).SetString(s)
		return v
	}
	total := new(big.Rat)
	var assigned int64
	type dayAllot struct{ day, allot string }
	quantity := map[dayAllot]*big.Rat{}
	idle := new(big.Rat)
	seen := map[string]bool{}
	for _, r := range recs[1:] {
		if len(r) != len(header) {
			t.Fatalf("row has %d fields, header %d", len(r), len(header))
		}
		for _, c := range []string{"BillingPeriodEnd", "BillingPeriodStart", "ChargePeriodEnd", "ChargePeriodStart"} {
			if !focusDateTime.MatchString(get(r, c)) {
				t.Errorf("%s = %q is not FOCUS Date/Time", c, get(r, c))
			}
		}
		for c, v := range map[string]string{"ChargeCategory": "Usage", "ChargeFrequency": "Recurring", "PricingCategory": "Standard",
			"ChargeClass": "", "PricingUnit": "License-Months", "ConsumedUnit": "License-Days", "BillingCurrency": "USD",
			"BillingPeriodStart": "2026-06-01T00:00:00Z", "BillingPeriodEnd": "2026-07-01T00:00:00Z",
			"ServiceName": "Microsoft 365 E5", "ServiceCategory": "Business Applications",
			"ServiceSubcategory": "Productivity and Collaboration", "SkuId": cbSKU, "SkuPriceId": cbSKU,
			"ResourceType": "License Allotment", "ProviderName": get(r, "InvoiceIssuerName")} {
			if get(r, c) != v {
				t.Errorf("%s = %q, want %q", c, get(r, c), v)
			}
		}
		for _, c := range []string{"BillingAccountId", "BillingAccountName", "ChargeDescription", "ResourceId", "SkuMeter", "PublisherName"} {
			if get(r, c) == "" {
				t.Errorf("%s is empty", c)
			}
		}
		start, _ := time.Parse(time.RFC3339, get(r, "ChargePeriodStart"))
		end, _ := time.Parse(time.RFC3339, get(r, "ChargePeriodEnd"))
		if end.Sub(start) != 24*time.Hour {
			t.Errorf("charge period %v..%v is not one day", start, end)
		}
		price, list, qty := dec(get(r, "ContractedUnitPrice")), dec(get(r, "ListUnitPrice")), dec(get(r, "PricingQuantity"))
		cost := dec(get(r, "EffectiveCost"))
		for _, c := range []string{"BilledCost", "ContractedCost"} {
			if dec(get(r, c)).Cmp(cost) != 0 {
				t.Errorf("%s %s != EffectiveCost %s", c, get(r, c), get(r, "EffectiveCost"))
			}
		}
		if new(big.Rat).Mul(price, qty).Cmp(cost) != 0 || new(big.Rat).Mul(list, qty).Cmp(dec(get(r, "ListCost"))) != 0 {
			t.Errorf("cost is not unit price × quantity in row %v", r)
		}
		if qty.Sign() <= 0 {
			t.Errorf("PricingQuantity %s is not positive", get(r, "PricingQuantity"))
		}
		wantPrice := "31.00"
		if start.Day() >= 16 {
			wantPrice = "37.00"
		}
		if get(r, "ContractedUnitPrice") != wantPrice {
			t.Errorf("price on %v = %s, want %s", start, get(r, "ContractedUnitPrice"), wantPrice)
		}
		consumed := dec(get(r, "ConsumedQuantity"))
		// licences = PricingQuantity × days of the month, within 1e-9.
		licences := new(big.Rat).Mul(qty, big.NewRat(30, 1))
		switch get(r, "x_SeatState") {
		case "Assigned":
			n, _ := licences.Float64()
			c, _ := consumed.Float64()
			if d := n - c; d > 1e-9 || d < -1e-9 || !consumed.IsInt() {
				t.Errorf("assigned row: ConsumedQuantity %s vs licences %v", get(r, "ConsumedQuantity"), n)
			}
			assigned += consumed.Num().Int64()
			if get(r, "x_AllocationMethod") != "SeatHolderDepartment" {
				t.Errorf("assigned row method %q", get(r, "x_AllocationMethod"))
			}
		case "Idle":
			if consumed.Sign() != 0 {
				t.Errorf("idle row ConsumedQuantity %s, want 0.0", get(r, "ConsumedQuantity"))
			}
			idle.Add(idle, licences)
			if want.allAllocated && get(r, "x_AllocationMethod") != "IdleProportionalToUse" {
				t.Errorf("idle row not allocated under the proportional policy: %v", r)
			}
		default:
			t.Errorf("x_SeatState %q", get(r, "x_SeatState"))
		}
		if tags := get(r, "Tags"); tags != "" {
			var m map[string]string
			if err := json.Unmarshal([]byte(tags), &m); err != nil || m["department"] == "" || len(m) != 1 {
				t.Errorf("Tags %q", tags)
			}
		}
		k := dayAllot{get(r, "ChargePeriodStart"), get(r, "ResourceId")}
		if quantity[k] == nil {
			quantity[k] = new(big.Rat)
		}
		quantity[k].Add(quantity[k], qty)
		key := strings.Join([]string{get(r, "ChargePeriodStart"), get(r, "ResourceId"), get(r, "Tags"), get(r, "x_SeatState"), get(r, "x_AllocationMethod")}, "|")
		if seen[key] {
			t.Errorf("duplicate row key %s", key)
		}
		seen[key] = true
		total.Add(total, cost)
	}
	// Per day and allotment, Σ PricingQuantity × 30 = allotted licences
	// (within the 12-place rounding of each row).
	if len(quantity) != want.days*len(want.allotted) {
		t.Errorf("%d (day, allotment) pairs, want %d", len(quantity), want.days*len(want.allotted))
	}
	for k, q := range quantity {
		id := k.allot[strings.LastIndex(k.allot, "/")+1:]
		got, _ := new(big.Rat).Mul(q, big.NewRat(30, 1)).Float64()
		if d := got - float64(want.allotted[id]); d > 1e-9 || d < -1e-9 {
			t.Errorf("%v: licences %v, want %d", k, got, want.allotted[id])
		}
	}
	if assigned != want.seatDaysAssigned {
		t.Errorf("Σ ConsumedQuantity(Assigned) = %d, want %d", assigned, want.seatDaysAssigned)
	}
	if f, _ := idle.Float64(); f-float64(want.idleLicenceDays) > 1e-6 || float64(want.idleLicenceDays)-f > 1e-6 {
		t.Errorf("idle licence-days = %v, want %d", f, want.idleLicenceDays)
	}
	// Σ EffectiveCost rounds to the JSON and CSV total.
	cents := new(big.Rat).Mul(total, big.NewRat(100, 1))
	rounded := new(big.Int).Quo(new(big.Int).Add(new(big.Int).Mul(cents.Num(), big.NewInt(2)), cents.Denom()),
		new(big.Int).Mul(cents.Denom(), big.NewInt(2)))
	if rounded.Int64() != want.totalCents {
		t.Errorf("Σ EffectiveCost = %s, rounds to %d cents, want %d", total.FloatString(12), rounded.Int64(), want.totalCents)
	}
}
