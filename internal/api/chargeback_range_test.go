package api

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	seatledgerv1 "github.com/seatledger/seatledger/gen/seatledger/v1"
)

// TestGetChargeback_daysAfterToday: a range starting after today is
// refused, naming the last day allowed; one reaching past today (this
// month so far, asked as the whole month) is cut at today and says so on
// the report and every row; days before the mirror's first sync are
// flagged as incomplete, never shown as zero usage without a word.
func TestGetChargeback_daysAfterToday(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	e := startCacheEnv(t, 0) // one sync has run: the history starts now
	now := time.Now().UTC()
	today := now.Format(time.DateOnly)
	tomorrow := now.AddDate(0, 0, 1).Format(time.DateOnly)
	nextYear := now.AddDate(1, 0, 0).Format(time.DateOnly)

	_, err := e.chargeback.GetChargeback(ctx, &seatledgerv1.GetChargebackRequest{From: tomorrow, To: nextYear})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "from") ||
		!strings.Contains(status.Convert(err).Message(), "the last day allowed is "+today) {
		t.Errorf("GetChargeback(from tomorrow) = %v; want INVALID_ARGUMENT on from, naming %s as the last day allowed", err, today)
	}

	cut := []seatledgerv1.ChargebackFlag{seatledgerv1.ChargebackFlag_CHARGEBACK_FLAG_INCOMPLETE_HISTORY,
		seatledgerv1.ChargebackFlag_CHARGEBACK_FLAG_RANGE_CUT_AT_TODAY}
	for _, format := range []seatledgerv1.ChargebackFormat{seatledgerv1.ChargebackFormat_CHARGEBACK_FORMAT_JSON,
		seatledgerv1.ChargebackFormat_CHARGEBACK_FORMAT_CSV} {
		r, err := e.chargeback.GetChargeback(ctx, &seatledgerv1.GetChargebackRequest{From: today, To: nextYear, Format: format})
		if err != nil {
			t.Fatalf("GetChargeback(today to next year, %v): %v", format, err)
		}
		if r.GetTo() != today || r.GetRequestedTo() != nextYear || !slices.Equal(r.GetFlags(), cut) {
			t.Errorf("%v: report to %q requested_to %q flags %v; want to %s, requested_to %s, flags %v",
				format, r.GetTo(), r.GetRequestedTo(), r.GetFlags(), today, nextYear, cut)
		}
		if r.GetHistoryStartTime() == nil {
			t.Errorf("%v: report without history_start_time after a sync", format)
		}
		if format == seatledgerv1.ChargebackFormat_CHARGEBACK_FORMAT_JSON {
			if len(r.GetRows()) == 0 {
				t.Fatal("no rows: the tenant's seats of today are missing")
			}
			var days int64
			for _, row := range r.GetRows() {
				days += row.GetSeatDays()
				if !slices.Equal(row.GetFlags()[len(row.GetFlags())-2:], cut) {
					t.Errorf("row %v does not carry the range's flags %v", row, cut)
				}
			}
			// One day is counted (today), not a year: the tenant's two
			// allotments have 10 and 3 units.
			if days != 13 {
				t.Errorf("%d seat-days counted, want 13 (one day of 10 + 3 units)", days)
			}
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(r.GetContent())), "\n")
		for _, l := range lines[1:] {
			if !strings.Contains(l, today+","+today+",") || !strings.Contains(l, "incomplete_history;range_cut_at_today") {
				t.Errorf("CSV line %q: want the period %s to %s and the flags incomplete_history;range_cut_at_today", l, today, today)
			}
		}
	}

	// Before the first sync: flagged even with no row at all.
	yesterday := now.AddDate(0, 0, -1).Format(time.DateOnly)
	r, err := e.chargeback.GetChargeback(ctx, &seatledgerv1.GetChargebackRequest{From: "2020-01-01", To: "2020-01-31"})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.GetRows()) != 0 || !slices.Equal(r.GetFlags(), cut[:1]) || r.GetRequestedTo() != "" {
		t.Errorf("January 2020: %d rows, flags %v, requested_to %q; want no row, flags %v", len(r.GetRows()), r.GetFlags(), r.GetRequestedTo(), cut[:1])
	}
	r, err = e.chargeback.GetChargeback(ctx, &seatledgerv1.GetChargebackRequest{From: yesterday, To: yesterday})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.GetFlags(), cut[:1]) {
		t.Errorf("yesterday, before the first sync: flags %v, want %v", r.GetFlags(), cut[:1])
	}
}

// TestReadCache_notAcrossMidnight: a cached answer that depends on which
// day today is (a chargeback reaching today, today's prices) is not served
// once the day has changed, though the mirror has not.
func TestReadCache_notAcrossMidnight(t *testing.T) {
	t.Parallel()
	e := startCacheEnv(t, 0)
	c := newReadCache(e.st, 1<<20)
	clock := time.Now()
	c.now = func() time.Time { return clock }
	svc := &chargebackService{store: e.st}
	intercept := c.interceptor()
	call := func(method string, req proto.Message) {
		t.Helper()
		_, err := intercept(t.Context(), req, &grpc.UnaryServerInfo{FullMethod: method}, func(ctx context.Context, req any) (any, error) {
			switch r := req.(type) {
			case *seatledgerv1.GetChargebackRequest:
				return svc.GetChargeback(ctx, r)
			default:
				return svc.ListPrices(ctx, r.(*seatledgerv1.ListPricesRequest))
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	today := clock.UTC().Format(time.DateOnly)
	for _, tt := range []struct {
		method string
		req    proto.Message
	}{
		{"/seatledger.v1.ChargebackService/GetChargeback", &seatledgerv1.GetChargebackRequest{From: today, To: today}},
		{"/seatledger.v1.ChargebackService/ListPrices", &seatledgerv1.ListPricesRequest{}},
	} {
		clock = time.Now()
		misses := c.misses.Load()
		call(tt.method, tt.req)
		call(tt.method, tt.req)
		if got := c.misses.Load() - misses; got != 1 {
			t.Errorf("%s asked twice the same day: %d answered from the database, want 1", tt.method, got)
		}
		clock = clock.Add(24 * time.Hour)
		call(tt.method, tt.req)
		if got := c.misses.Load() - misses; got != 2 {
			t.Errorf("%s asked again the next day: answered from the cache of the day before", tt.method)
		}
	}
}
