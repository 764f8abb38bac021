package store_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/seatledger/seatledger/internal/store"
	"github.com/seatledger/seatledger/internal/store/storetest"
)

// skuE3 is a second SKU for the chargeback tests (skuE5 is in
// allotments_test.go).
const skuE3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"

func TestStore_Prices(t *testing.T) {
	t.Parallel()
	st := storetest.New(t)
	ctx := t.Context()
	set := func(p store.Price) store.Price {
		t.Helper()
		p.UpdatedBy = "finance-bot"
		got, err := st.SetPrice(ctx, p)
		if err != nil {
			t.Fatalf("SetPrice(%+v) error = %v", p, err)
		}
		return got
	}
	set(store.Price{SKUID: skuE5, Currency: "USD", MonthlyUnitPrice: "57.00", ValidFrom: "2026-01-01"})
	set(store.Price{SKUID: skuE5, Currency: "USD", MonthlyUnitPrice: "60.00", MonthlyListUnitPrice: "62.5", ValidFrom: "2026-03-15"})
	// Setting the same day again replaces the price (idempotent).
	got := set(store.Price{SKUID: skuE5, Currency: "USD", MonthlyUnitPrice: "58.10", ValidFrom: "2026-01-01"})
	if got.MonthlyUnitPrice != "58.10" || got.ValidTo != "2026-03-15" || got.UpdatedBy != "finance-bot" || got.UpdatedAt.IsZero() {
		t.Errorf("SetPrice() replacing = %+v, want 58.10 valid to 2026-03-15", got)
	}
	set(store.Price{SKUID: skuE3, Currency: "EUR", MonthlyUnitPrice: "20", ValidFrom: "2026-02-01"})

	ignore := cmpopts.IgnoreFields(store.Price{}, "UpdatedAt", "UpdatedBy")
	e5a := store.Price{SKUID: skuE5, Currency: "USD", MonthlyUnitPrice: "58.10", ValidFrom: "2026-01-01", ValidTo: "2026-03-15"}
	e5b := store.Price{SKUID: skuE5, Currency: "USD", MonthlyUnitPrice: "60.00", MonthlyListUnitPrice: "62.5", ValidFrom: "2026-03-15"}
	e3 := store.Price{SKUID: skuE3, Currency: "EUR", MonthlyUnitPrice: "20", ValidFrom: "2026-02-01"}
	tests := []struct {
		name string
		p    store.ListPricesParams
		want []store.Price
	}{
		{"as of a day before any", store.ListPricesParams{AsOf: "2025-12-31"}, nil},
		{"as of January", store.ListPricesParams{AsOf: "2026-01-31"}, []store.Price{e5a}},
		{"as of the change day", store.ListPricesParams{AsOf: "2026-03-15"}, []store.Price{e5b, e3}},
		{"as of the day before the change", store.ListPricesParams{AsOf: "2026-03-14"}, []store.Price{e5a, e3}},
		{"today", store.ListPricesParams{}, []store.Price{e5b, e3}},
		{"history", store.ListPricesParams{IncludeHistory: true}, []store.Price{e5a, e5b, e3}},
		{"history of one sku", store.ListPricesParams{IncludeHistory: true, SKUID: skuE5}, []store.Price{e5a, e5b}},
		{"history page 2", store.ListPricesParams{IncludeHistory: true, PageSize: 2, AfterSKU: skuE5, AfterValidFrom: "2026-03-15"}, []store.Price{e3}},
		{"history page 1", store.ListPricesParams{IncludeHistory: true, PageSize: 2}, []store.Price{e5a, e5b}},
		{"as of, page 2", store.ListPricesParams{AsOf: "2026-03-20", AfterSKU: skuE5}, []store.Price{e3}},
	}
	for _, tt := range tests {
		got, err := st.ListPrices(ctx, tt.p)
		if err != nil {
			t.Fatalf("%s: ListPrices() error = %v", tt.name, err)
		}
		if diff := cmp.Diff(tt.want, got, ignore, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: ListPrices() mismatch (-want +got):\n%s", tt.name, diff)
		}
	}
}

func TestStore_SetPriceRejects(t *testing.T) {
	t.Parallel()
	st := storetest.New(t)
	for _, p := range []store.Price{
		{SKUID: skuE5, Currency: "usd", MonthlyUnitPrice: "1", ValidFrom: "2026-01-01", UpdatedBy: "x"},
		{SKUID: skuE5, Currency: "USD", MonthlyUnitPrice: "-1", ValidFrom: "2026-01-01", UpdatedBy: "x"},
		{SKUID: skuE5, Currency: "USD", ValidFrom: "2026-01-01", UpdatedBy: "x"},
	} {
		if _, err := st.SetPrice(t.Context(), p); err == nil {
			t.Errorf("SetPrice(%+v) = nil error, want one", p)
		}
	}
}

// TestStore_SKUEverCarried: a SKU counts as known while an allotment
// carries it and after that allotment is gone; one never seen does not.
func TestStore_SKUEverCarried(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t)
	ctx := t.Context()
	apply(t, st, t0, allotment("a1", skuTeams, 84), allotment("b2", skuE5, 10))
	apply(t, st, t1, allotment("a1", skuTeams, 84)) // b2, the only E5 allotment, is gone
	for _, tt := range []struct {
		sku  string
		want bool
	}{{skuTeams, true}, {strings.ToUpper(skuTeams), true}, {skuE5, true}, {skuE3, false}} {
		got, err := st.SKUEverCarried(ctx, tt.sku)
		if err != nil || got != tt.want {
			t.Errorf("SKUEverCarried(%s) = %v, %v; want %v", tt.sku, got, err, tt.want)
		}
	}
}
