package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	seatledgerv1 "github.com/seatledger/seatledger/gen/seatledger/v1"
	"github.com/seatledger/seatledger/internal/graphsim"
)

// goInternals are fragments of Go and protobuf error texts that must never
// reach a caller: each bad input gets a sentence in the caller's terms.
var goInternals = []string{"strconv.", "parsing time", "2006-01-02", "proto:", "unexpected EOF", "time: ", "invalid syntax",
	": not found", "rpc error", "Method Not Allowed", "parsing field"}

// apiError is a google.rpc.Status body as the gateway writes it.
type apiError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// checkRefusal checks that a REST answer is the wanted status with a
// sentence holding every want fragment and no Go internals.
func checkRefusal(t *testing.T, what string, code int, body []byte, wantCode int, want ...string) {
	t.Helper()
	var e apiError
	if err := json.Unmarshal(body, &e); err != nil || code != wantCode {
		t.Errorf("%s = %d %s, want %d with a google.rpc.Status body", what, code, body, wantCode)
		return
	}
	for _, w := range want {
		if !strings.Contains(e.Message, w) {
			t.Errorf("%s: message %q does not say %q", what, e.Message, w)
		}
	}
	for _, g := range goInternals {
		if strings.Contains(e.Message, g) {
			t.Errorf("%s: message %q leaks %q", what, e.Message, g)
		}
	}
}

// openAPIOps are the operations of the served OpenAPI document: method,
// path template and query parameters with their types.
type openAPIOp struct {
	method, path string
	query        []openAPIParam
}

type openAPIParam struct {
	Name   string   `json:"name"`
	In     string   `json:"in"`
	Type   string   `json:"type"`
	Format string   `json:"format"`
	Enum   []string `json:"enum"`
}

func openAPIOps(t *testing.T, svc *service) []openAPIOp {
	t.Helper()
	code, body := svc.get(t, "/openapi.json")
	if code != http.StatusOK {
		t.Fatalf("GET /openapi.json = %d", code)
	}
	var doc struct {
		Paths map[string]map[string]struct {
			Parameters []openAPIParam `json:"parameters"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	var ops []openAPIOp
	for path, m := range doc.Paths {
		for method, op := range m {
			o := openAPIOp{method: strings.ToUpper(method), path: path}
			for _, p := range op.Parameters {
				if p.In == "query" {
					o.query = append(o.query, p)
				}
			}
			ops = append(ops, o)
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].path+ops[i].method < ops[j].path+ops[j].method })
	return ops
}

// concrete fills a path template's parameters.
func concrete(template string) string {
	r := strings.NewReplacer("{id}", "some-id", "{user}", "ada.lindqvist@contoso.example",
		"{sku_id}", "6fd2c87f-b296-42f0-b197-1e91e994b900")
	return r.Replace(template)
}

// TestRun_BadInput sends bad input of every kind to every REST route and
// checks each is refused with a sentence naming the parameter or field,
// the value, and an accepted example, never Go's parser errors and never
// silently ignored.
func TestRun_BadInput(t *testing.T) {
	t.Parallel()
	sim, environ := startTenant(t, graphsim.Options{})
	svc := startService(t, environ, mintToken(t, sim, "bad-input", "reader", "writer", "finance", "admin"))
	svc.runSync(t)
	allotment := sim.Allotments()[0].ID
	ops := openAPIOps(t, svc)
	first, err := seatledgerv1.NewAssignmentServiceClient(svc.conn).ListAssignments(context.Background(), &seatledgerv1.ListAssignmentsRequest{PageSize: 1})
	if err != nil || first.GetNextPageToken() == "" {
		t.Fatalf("ListAssignments(page size 1) = %v, %v; want a next page", first, err)
	}
	firstToken := url.QueryEscape(first.GetNextPageToken())

	t.Run("unknown query parameters on every route", func(t *testing.T) {
		for _, op := range ops {
			path := concrete(op.path) + "?page_sise=1"
			code, body := svc.restCall(t, svc.token, op.method, path, nil, nil)
			checkRefusal(t, op.method+" "+path, code, body, http.StatusBadRequest, `"page_sise"`, op.method+" "+op.path)
		}
	})

	t.Run("bad values of every typed query parameter", func(t *testing.T) {
		bad := map[string]string{"integer": "abc", "boolean": "yes", "date-time": "2026-12-04", "enum": "nonsense"}
		seen := map[string]bool{}
		for _, op := range ops {
			for _, p := range op.query {
				kind := p.Type
				switch {
				case p.Format == "date-time":
					kind = "date-time"
				case len(p.Enum) > 0:
					kind = "enum"
				}
				v, ok := bad[kind]
				if !ok {
					continue
				}
				seen[kind] = true
				path := concrete(op.path) + "?" + url.Values{p.Name: {v}}.Encode()
				code, body := svc.restCall(t, svc.token, op.method, path, nil, nil)
				checkRefusal(t, op.method+" "+path, code, body, http.StatusBadRequest, p.Name, `"`+v+`"`, "e.g. "+p.Name+"=")
			}
		}
		if len(seen) != len(bad) {
			t.Errorf("the document's query parameters cover only %v of %v", seen, bad)
		}
	})

	t.Run("enum short forms everywhere", func(t *testing.T) {
		for _, path := range []string{
			"/v1/allotments/" + allotment + "/history?granularity=day",
			"/v1/allotments/" + allotment + "/history?granularity=Run",
			"/v1/allotments/" + allotment + "/history?granularity=HISTORY_GRANULARITY_DAY",
			"/v1/subscriptions?state=active",
			"/v1/assignments?assignee_type=user",
			"/v1/chargeback?from=2026-06-01&to=2026-06-02&groupBy=sku&format=json",
		} {
			if code, body := svc.get(t, path); code != http.StatusOK {
				t.Errorf("GET %s = %d %s, want 200", path, code, body)
			}
		}
	})

	tests := []struct {
		name         string
		method, path string
		body         string
		wantCode     int
		want         []string
	}{
		{"misspelt parameter", "GET", "/v1/allotments?page_sise=1", "", 400,
			[]string{`"page_sise"`, "did you mean pageSize?", "pageSize, pageToken, skuId"}},
		{"parameter of another route", "GET", "/v1/allotments/" + allotment + "?asOf=2026-01-01T00:00:00Z", "", 400,
			[]string{`"asOf"`, "takes no query parameters"}},
		{"path parameter in the query", "GET", "/v1/allotments/" + allotment + "/assignments?id=x", "", 400, []string{`"id"`}},
		{"same parameter twice", "GET", "/v1/assignments?page_size=1&pageSize=2", "", 400, []string{"pageSize and page_size"}},
		{"repeated value", "GET", "/v1/assignments?pageSize=1&pageSize=2", "", 400, []string{"pageSize", "give it once"}},
		{"date for a time", "GET", "/v1/assignments?asOf=2026-12-04", "", 400,
			[]string{"asOf", `"2026-12-04"`, "RFC 3339", "e.g. asOf=2026-12-04T00:00:00Z"}},
		{"word for a number", "GET", "/v1/assignments?page_size=abc", "", 400, []string{"page_size", `"abc"`, "whole number", "e.g. page_size=50"}},
		{"days in a duration", "GET", "/v1/waiting-members?minWaitAge=1d", "", 400, []string{"minWaitAge", `"1d"`, "e.g. minWaitAge=86400s"}},
		{"unknown enum value", "GET", "/v1/allotments/" + allotment + "/history?granularity=hourly", "", 400,
			[]string{"granularity", `"hourly"`, "day, run", "e.g. granularity=day"}},
		{"bad escape", "GET", "/v1/assignments?department=%zz", "", 400, []string{"query string", "%zz"}},
		{"truncated JSON", "POST", "/v1/assignments", `{"user": `, 400, []string{"request body", "not complete JSON"}},
		{"not JSON", "POST", "/v1/sync:run", `force=true`, 400, []string{"request body is not JSON", "byte"}},
		{"JSON but no object", "POST", "/v1/sync:run", `[true]`, 400, []string{"an array", "not a JSON object", `"force"`}},
		{"two objects", "POST", "/v1/sync:run", `{} {}`, 400, []string{"one object"}},
		{"number for a string", "PUT", "/v1/prices/6fd2c87f-b296-42f0-b197-1e91e994b900",
			`{"monthlyUnitPrice": {"currencyCode": "USD", "amount": 32.4}, "validFrom": "2026-01-01"}`, 400,
			[]string{"monthlyUnitPrice.amount", "32.4 is a number", "must be a string", `e.g. "57.00"`}},
		{"string for a bool", "POST", "/v1/sync:run", `{"force": "yes"}`, 400, []string{"force", `"yes" is a string`, "true or false"}},
		{"string for a list", "PATCH", "/v1/assignments/x", `{"disabledServicePlanIds": "p1"}`, 400,
			[]string{"disabledServicePlanIds", "must be an array"}},
		{"unknown body field", "POST", "/v1/assignments", `{"allotmentID": "x"}`, 400,
			[]string{`"allotmentID"`, "did you mean allotmentId?"}},
		{"unknown nested field", "PUT", "/v1/prices/6fd2c87f-b296-42f0-b197-1e91e994b900",
			`{"monthlyUnitPrice": {"currency": "USD"}}`, 400, []string{`"monthlyUnitPrice.currency"`, "currencyCode"}},
		{"path field in the body", "PUT", "/v1/allotments/" + allotment + "/owner", `{"id": "other", "ownerDepartment": "Sales"}`, 400,
			[]string{"id comes from the request path"}},
		{"unknown user", "GET", "/v1/users/nobody@contoso.example/license-status", "", 404,
			[]string{`no user "nobody@contoso.example" in the mirror`, "e.g. ada.lindqvist@contoso.example"}},
		{"unknown allotment", "GET", "/v1/allotments/no-such-allotment", "", 404,
			[]string{`no allotment "no-such-allotment" in the mirror`, "GET /v1/allotments lists"}},
		{"unknown allotment's assignments", "GET", "/v1/allotments/no-such-allotment/assignments", "", 404,
			[]string{`no allotment "no-such-allotment" in the mirror`}},
		{"unknown assignment", "GET", "/v1/assignments/no-such-assignment", "", 404,
			[]string{`no assignment "no-such-assignment" in the mirror`, "GET /v1/assignments lists"}},
		{"unknown allotment's owner", "PUT", "/v1/allotments/no-such-allotment/owner", `{"ownerDepartment": "Sales"}`, 404,
			[]string{`allotment "no-such-allotment"`}},
		{"malformed id", "GET", "/v1/allotments/a%20b", "", 400, []string{`"a b" is not a Graph object id`, "e.g. "}},
		{"part number for a SKU id", "GET", "/v1/allotments?skuId=ENTERPRISEPACK", "", 400,
			[]string{"sku_id", `"ENTERPRISEPACK" is not a GUID`, "e.g. 6fd2c87f-"}},
		{"impossible day", "GET", "/v1/allotments/" + allotment + "/history?from=2026-13-01", "", 400,
			[]string{"from", `"2026-13-01" is not a date`, "e.g. 2026-12-01"}},
		{"word for a day", "GET", "/v1/chargeback?from=June&to=2026-06-30", "", 400, []string{"from", `"June"`, "e.g. 2026-12-01"}},
		{"range backwards", "GET", "/v1/chargeback?from=2026-06-30&to=2026-06-01", "", 400, []string{"2026-06-01 is before from (2026-06-30)"}},
		{"unknown time zone", "GET", "/v1/chargeback?from=2026-06-01&to=2026-06-30&timeZone=CEST", "", 400,
			[]string{`"CEST"`, "e.g. Europe/Berlin"}},
		{"exponent in an amount", "PUT", "/v1/prices/6fd2c87f-b296-42f0-b197-1e91e994b900",
			`{"monthlyUnitPrice": {"currencyCode": "USD", "amount": "1e3"}, "validFrom": "2026-01-01"}`, 400,
			[]string{"monthly_unit_price.amount", `"1e3"`, `"57.00"`}},
		{"garbage page token", "GET", "/v1/assignments?pageToken=abc", "", 400, []string{"page_token", `"abc" is not a page token`, "nextPageToken"}},
		{"page token of other filters", "GET", "/v1/assignments?pageSize=1&department=Sales&pageToken=" + firstToken, "", 400,
			[]string{"page_token", "other filters"}},
		{"negative page size", "GET", "/v1/assignments?pageSize=-1", "", 400, []string{"page_size", "-1 is negative", "e.g. 50"}},
		{"price of a SKU never carried", "PUT", "/v1/prices/0000aaaa-0000-4000-8000-000000000001",
			`{"monthlyUnitPrice": {"currencyCode": "USD", "amount": "10.00"}, "validFrom": "2026-01-01"}`, 400,
			[]string{"no allotment carries or ever carried SKU 0000aaaa-0000-4000-8000-000000000001", `"allowUnknownSku": true`}},
		{"allowUnknownSku in the query", "PUT", "/v1/prices/0000aaaa-0000-4000-8000-000000000001?allowUnknownSku=true",
			`{"monthlyUnitPrice": {"currencyCode": "USD", "amount": "10.00"}, "validFrom": "2026-01-01"}`, 400,
			[]string{`"allowUnknownSku"`, "takes no query parameters"}},
		{"wrong method", "POST", "/v1/allotments", "", 405, []string{"POST", "GET"}},
		{"wrong method on a health endpoint", "POST", "/healthz", "", 405, []string{"GET, HEAD"}},
		{"no such route", "GET", "/v1/allotment", "", 404, []string{"/v1/allotment", "/openapi.json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, got := svc.do(t, tt.method, tt.path, tt.body, "")
			checkRefusal(t, tt.method+" "+tt.path, resp.StatusCode, got, tt.wantCode, tt.want...)
		})
	}

	t.Run("gRPC says the same", func(t *testing.T) {
		ctx := context.Background()
		_, err := seatledgerv1.NewUserServiceClient(svc.conn).GetLicenseStatus(ctx, &seatledgerv1.GetLicenseStatusRequest{User: "nobody@contoso.example"})
		if st := status.Convert(err); st.Code() != codes.NotFound || !strings.Contains(st.Message(), `no user "nobody@contoso.example" in the mirror`) {
			t.Errorf("GetLicenseStatus(unknown) = %v, want NOT_FOUND naming the user", err)
		}
		_, err = seatledgerv1.NewAllotmentServiceClient(svc.conn).ListAllotmentAssignments(ctx, &seatledgerv1.ListAllotmentAssignmentsRequest{Id: allotment,
			AsOf: timestamppb.New(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))})
		if st := status.Convert(err); st.Code() != codes.NotFound || !strings.Contains(st.Message(), `no allotment "`+allotment+`" in the mirror as of 2020-01-01T00:00:00Z`) {
			t.Errorf("ListAllotmentAssignments(before the mirror, as of 2020) = %v, want NOT_FOUND naming the allotment and the time", err)
		}
		_, err = seatledgerv1.NewAllotmentServiceClient(svc.conn).ListAllotments(ctx, &seatledgerv1.ListAllotmentsRequest{SkuId: "E5"})
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), `"E5" is not a GUID, e.g.`) {
			t.Errorf("ListAllotments(sku E5) = %v, want INVALID_ARGUMENT with the value and an example", err)
		}
	})

	t.Run("prices for unknown SKUs only on purpose", func(t *testing.T) {
		price := `{"monthlyUnitPrice": {"currencyCode": "USD", "amount": "10.00"}, "validFrom": "2026-01-01"`
		for _, tt := range []struct{ sku, extra string }{
			{sim.Allotments()[0].SKUID, ""},
			{strings.ToUpper(sim.Allotments()[0].SKUID), ""},
			{"0000aaaa-0000-4000-8000-000000000002", `, "allowUnknownSku": true`},
		} {
			if resp, body := svc.do(t, http.MethodPut, "/v1/prices/"+tt.sku, price+tt.extra+"}", ""); resp.StatusCode != http.StatusOK {
				t.Errorf("PUT /v1/prices/%s %s = %d %s, want 200", tt.sku, tt.extra, resp.StatusCode, body)
			}
		}
		cb := seatledgerv1.NewChargebackServiceClient(svc.conn)
		req := &seatledgerv1.SetPriceRequest{SkuId: "0000aaaa-0000-4000-8000-000000000003", ValidFrom: "2026-01-01",
			MonthlyUnitPrice: &seatledgerv1.Money{CurrencyCode: "USD", Amount: "1.00"}}
		if _, err := cb.SetPrice(context.Background(), req); status.Code(err) != codes.FailedPrecondition {
			t.Errorf("SetPrice(never carried) = %v, want FAILED_PRECONDITION", err)
		}
		req.AllowUnknownSku = true
		if _, err := cb.SetPrice(context.Background(), req); err != nil {
			t.Errorf("SetPrice(never carried, allowed) = %v, want it set", err)
		}
	})

	t.Run("gRPC enum numbers the proto does not declare", func(t *testing.T) {
		ctx := context.Background()
		_, err := seatledgerv1.NewAllotmentServiceClient(svc.conn).GetAllotmentHistory(ctx,
			&seatledgerv1.GetAllotmentHistoryRequest{Id: allotment, Granularity: 7})
		if st := status.Convert(err); st.Code() != codes.InvalidArgument ||
			!strings.Contains(st.Message(), "granularity: 7 is not a value of HistoryGranularity; use one of HISTORY_GRANULARITY_DAY (1)") {
			t.Errorf("GetAllotmentHistory(granularity 7) = %v, want INVALID_ARGUMENT naming the field and the values", err)
		}
		_, err = seatledgerv1.NewSubscriptionServiceClient(svc.conn).ListSubscriptions(ctx, &seatledgerv1.ListSubscriptionsRequest{State: 42})
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "state: 42 is not a value") {
			t.Errorf("ListSubscriptions(state 42) = %v, want INVALID_ARGUMENT naming the field", err)
		}
	})

	t.Run("405 names the allowed methods", func(t *testing.T) {
		allowed := map[string][]string{}
		for _, op := range ops {
			allowed[op.path] = append(allowed[op.path], op.method)
		}
		for path, methods := range allowed {
			slices.Sort(methods)
			other := http.MethodDelete
			if slices.Contains(methods, other) {
				other = http.MethodPut
			}
			resp, body := svc.do(t, other, concrete(path), "", "")
			if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != strings.Join(methods, ", ") {
				t.Errorf("%s %s = %d, Allow %q, want 405 with Allow %q (%s)", other, path, resp.StatusCode,
					resp.Header.Get("Allow"), strings.Join(methods, ", "), body)
			}
		}
	})
}
