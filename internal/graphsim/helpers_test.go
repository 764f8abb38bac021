package graphsim_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/seatledger/seatledger/internal/graphsim"
)

// started is a simulator serving HTTPS on a loopback port, with a client
// that trusts its CA.
type started struct {
	sim  *graphsim.Server
	info graphsim.Info
	hc   *http.Client
}

func start(t *testing.T, opts graphsim.Options) started {
	t.Helper()
	sim, err := graphsim.New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	info, err := sim.Start("127.0.0.1:0")
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := sim.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(info.CAPEM) {
		t.Fatal("CAPEM holds no certificate")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	t.Cleanup(tr.CloseIdleConnections)
	return started{sim: sim, info: info, hc: &http.Client{Transport: tr}}
}

// token mints a token with the given roles or fails the test.
func (s started) token(t *testing.T, roles ...string) string {
	t.Helper()
	tok, err := s.sim.MintToken(roles)
	if err != nil {
		t.Fatalf("MintToken: %v", err)
	}
	return tok
}

// response is a decoded answer.
type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

// get sends GET url with the bearer token (none when empty) and decodes
// the JSON body.
func get(t *testing.T, hc *http.Client, url, token string, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatalf("NewRequest: %v", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return do(t, hc, req)
}

func do(t *testing.T, hc *http.Client, req *http.Request) response {
	t.Helper()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	r := response{status: resp.StatusCode, header: resp.Header, raw: raw}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			t.Fatalf("%s %s: body is not a JSON object: %v\n%s", req.Method, req.URL, err, raw)
		}
	}
	return r
}

// wantGraphError checks that r is a Graph error with the given status and
// code, in the documented shape, consistent with the response headers.
func wantGraphError(t *testing.T, r response, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.raw)
	}
	e, ok := r.body["error"].(map[string]any)
	if !ok {
		t.Fatalf("body has no error object: %s", r.raw)
	}
	if e["code"] != code {
		t.Errorf("error.code = %v, want %q", e["code"], code)
	}
	if msg, _ := e["message"].(string); msg == "" {
		t.Errorf("error.message is empty")
	}
	inner, ok := e["innerError"].(map[string]any)
	if !ok {
		t.Fatalf("error has no innerError: %s", r.raw)
	}
	if got, want := inner["request-id"], r.header.Get("request-id"); got != want || want == "" {
		t.Errorf("innerError.request-id = %v, header request-id = %q", got, want)
	}
	if got, want := inner["client-request-id"], r.header.Get("client-request-id"); got != want || want == "" {
		t.Errorf("innerError.client-request-id = %v, header client-request-id = %q", got, want)
	}
	if d, _ := inner["date"].(string); len(d) != len("2006-01-02T15:04:05") {
		t.Errorf("innerError.date = %v, want Graph's form 2006-01-02T15:04:05", inner["date"])
	}
}

// bigTenant has n allotments spread over two SKUs.
func bigTenant(n int) graphsim.Tenant {
	t := graphsim.Tenant{
		SKUs: []graphsim.SKU{
			{ID: skuA, PartNumber: "SKU_A", Plans: []graphsim.Plan{{ID: "00000000-0000-0000-0000-0000000000a1", Name: "PLAN_A", AssignableTo: []string{"user"}}}},
			{ID: skuB, PartNumber: "SKU_B", Plans: []graphsim.Plan{{ID: "00000000-0000-0000-0000-0000000000b1", Name: "PLAN_B"}}},
		},
	}
	for i := range n {
		sku := skuA
		if i%3 == 0 {
			sku = skuB
		}
		t.Allotments = append(t.Allotments, graphsim.AllotmentState{
			ID:            fmt.Sprintf("%08x-0000-4000-8000-%012x", i*7919%100003, i),
			SKUID:         sku,
			AllottedUnits: int32(10 + i),
			ConsumedUnits: int32(i % 10),
			AssignableTo:  []string{"user", "group"},
			Subscriptions: []graphsim.Subscription{{
				SubscriptionID: fmt.Sprintf("5ab5c41b-0000-4000-8000-%012x", i), State: "active",
				StartDate: "2026-01-01", NextLifecycleDate: "2027-01-01",
			}},
		})
	}
	return t
}

const (
	skuA = "aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa"
	skuB = "bbbbbbbb-2222-4222-8222-bbbbbbbbbbbb"
)

func allotmentsURL(info graphsim.Info, query string) string {
	u := info.GraphURL + "/admin/cloudLicensing/allotments"
	if query != "" {
		u += "?" + strings.ReplaceAll(query, " ", "%20")
	}
	return u
}
