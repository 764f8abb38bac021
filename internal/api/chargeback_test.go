package api

import (
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRoundHalfEven(t *testing.T) {
	t.Parallel()
	tests := []struct {
		x     *big.Rat
		scale int
		want  string
	}{
		{big.NewRat(1, 31), 12, "0.032258064516"},
		{big.NewRat(5, 31), 12, "0.161290322581"},
		{big.NewRat(1, 8), 2, "0.12"}, // half to even
		{big.NewRat(3, 8), 2, "0.38"},
		{big.NewRat(10, 1), 0, "10.0"},
		{big.NewRat(0, 1), 12, "0.000000000000"},
	}
	for _, tt := range tests {
		if got := roundHalfEven(tt.x, tt.scale).String(); got != tt.want {
			t.Errorf("roundHalfEven(%v, %d) = %s, want %s", tt.x, tt.scale, got, tt.want)
		}
	}
	// FOCUS.md's worked example: 57.00 × 5/31 at 12 places.
	p, err := parseDecimal("57.00")
	if err != nil {
		t.Fatal(err)
	}
	if got := p.mul(roundHalfEven(big.NewRat(5, 31), 12)).String(); got != "9.19354838711700" {
		t.Errorf("57.00 × 0.161290322581 = %s", got)
	}
}

func TestCSVText(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"Sales": "Sales", "=SUM(A1)": "'=SUM(A1)", "-1": "'-1", "@x": "'@x", "": ""} {
		if got := csvText(in); got != want {
			t.Errorf("csvText(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestChargebackQuery(t *testing.T) {
	t.Parallel()
	tests := []struct {
		query, accept string
		wantQuery     url.Values
		wantAccept    string
	}{
		{"from=2026-01-01&format=csv&group_by=sku", "", url.Values{"from": {"2026-01-01"}, "format": {"CHARGEBACK_FORMAT_CSV"},
			"group_by": {"CHARGEBACK_GROUP_BY_SKU"}}, "text/csv"},
		{"format=FOCUS&idleSeatPolicy=proportional", "", url.Values{"format": {"CHARGEBACK_FORMAT_FOCUS"},
			"idleSeatPolicy": {"IDLE_SEAT_POLICY_PROPORTIONAL"}}, "text/csv"},
		{"groupBy=allotment", "text/csv; charset=utf-8, */*", url.Values{"groupBy": {"CHARGEBACK_GROUP_BY_ALLOTMENT"},
			"format": {"CHARGEBACK_FORMAT_CSV"}}, "text/csv"},
		{"format=json", "text/csv", url.Values{"format": {"CHARGEBACK_FORMAT_JSON"}}, ""},
		{"", "application/json", url.Values{}, ""},
		{"group_by=CHARGEBACK_GROUP_BY_SKU", "", url.Values{"group_by": {"CHARGEBACK_GROUP_BY_SKU"}}, ""},
	}
	for _, tt := range tests {
		var gotQuery url.Values
		var gotAccept string
		h := chargebackQuery(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			gotQuery, gotAccept = r.URL.Query(), r.Header.Get("Accept")
		}))
		req := httptest.NewRequest(http.MethodGet, "/v1/chargeback?"+tt.query, nil)
		if tt.accept != "" {
			req.Header.Set("Accept", tt.accept)
		}
		h.ServeHTTP(httptest.NewRecorder(), req)
		if diff := cmp.Diff(tt.wantQuery, gotQuery); diff != "" {
			t.Errorf("%q: query mismatch (-want +got):\n%s", tt.query, diff)
		}
		if gotAccept != tt.wantAccept {
			t.Errorf("%q: Accept = %q, want %q", tt.query, gotAccept, tt.wantAccept)
		}
	}
}
