package graphsim_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/seatledger/seatledger/internal/graphsim"
)

// raw sends a GET and returns status, headers and the body as read, or
// the transport/read error.
func raw(hc *http.Client, url, tok string) (int, http.Header, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b, err
}

func TestFaults_Kinds(t *testing.T) {
	t.Parallel()
	s := start(t, graphsim.Options{})
	tok := s.token(t, "CloudLicensing.Read.All")
	url := s.info.GraphURL + "/admin/cloudLicensing/allotments"
	set := func(rules ...graphsim.FaultRule) {
		t.Helper()
		if err := s.sim.SetFaults(rules); err != nil {
			t.Fatal(err)
		}
	}
	set(graphsim.FaultRule{Path: "/beta/admin/", Nth: 2, Kind: graphsim.FaultThrottle, RetryAfterSeconds: 3})
	if st, _, _, _ := raw(s.hc, url, tok); st != 200 {
		t.Errorf("first request = %d, want 200 (nth is 2)", st)
	}
	r := get(t, s.hc, url, tok)
	wantGraphError(t, r, http.StatusTooManyRequests, "TooManyRequests")
	if r.header.Get("Retry-After") != "3" {
		t.Errorf("Retry-After = %q", r.header.Get("Retry-After"))
	}
	if st, _, _, _ := raw(s.hc, url, tok); st != 200 {
		t.Errorf("third request = %d, want 200", st)
	}
	for kind, status := range map[string]int{graphsim.FaultUnavailable: 503, graphsim.FaultGatewayTimeout: 504} {
		set(graphsim.FaultRule{Path: "/beta/", Method: "GET", Rate: 1, Kind: kind, Count: 1})
		if st, _, _, _ := raw(s.hc, url, tok); st != status {
			t.Errorf("%s: status %d, want %d", kind, st, status)
		}
		if st, _, _, _ := raw(s.hc, url, tok); st != 200 {
			t.Errorf("%s: after count 1, status %d", kind, st)
		}
	}
	set(graphsim.FaultRule{Path: "/beta/", Rate: 1, Kind: graphsim.FaultNearLimit, LimitPercentage: 1.2})
	if st, h, _, _ := raw(s.hc, url, tok); st != 200 || h.Get("x-ms-throttle-limit-percentage") != "1.2" {
		t.Errorf("near_limit: status %d, header %q", st, h.Get("x-ms-throttle-limit-percentage"))
	}
	set(graphsim.FaultRule{PathRegexp: `allotments$`, Rate: 1, Kind: graphsim.FaultDelay, Delay: "150ms"})
	began := time.Now()
	if st, _, _, _ := raw(s.hc, url, tok); st != 200 || time.Since(began) < 150*time.Millisecond {
		t.Errorf("delay: status %d after %v", st, time.Since(began))
	}
	// No count: net/http retries an idempotent request once when a reused
	// connection breaks, so a single reset would go unnoticed.
	set(graphsim.FaultRule{Path: "/beta/", Rate: 1, Kind: graphsim.FaultReset})
	if _, _, _, err := raw(s.hc, url, tok); err == nil {
		t.Error("reset: the request succeeded")
	}
	set(graphsim.FaultRule{Path: "/beta/", Rate: 1, Kind: graphsim.FaultTruncate, Count: 1})
	if _, _, b, err := raw(s.hc, url, tok); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncate: read %d bytes, err %v; want unexpected EOF", len(b), err)
	}
	set(graphsim.FaultRule{Path: "/beta/", Rate: 1, Kind: graphsim.FaultMalformed, Count: 1})
	st, _, b, err := raw(s.hc, url, tok)
	if err != nil || st != 200 || json.Valid(b) {
		t.Errorf("malformed: status %d, err %v, valid JSON %v", st, err, json.Valid(b))
	}
	if f := s.sim.Faults(); len(f) != 1 || f[0].Fired != 1 {
		t.Errorf("Faults() = %+v", f)
	}
	if err := s.sim.SetFaults([]graphsim.FaultRule{{Kind: "explode", Rate: 1}}); err == nil {
		t.Error("unknown kind accepted")
	}
}

// TestAdminAPI drives the tenant through /_sim/ over HTTP.
func TestAdminAPI(t *testing.T) {
	t.Parallel()
	s := start(t, graphsim.Options{})
	base := s.info.AdminURL
	call := func(method, path string, body any) (int, []byte) {
		t.Helper()
		var rd io.Reader = http.NoBody
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, base+path, rd)
		resp, err := s.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if st, _ := call("POST", "/users", map[string]any{"id": "77777777-0000-4000-8000-000000000001", "userPrincipalName": "zed@contoso.example", "displayName": "Zed", "department": "Sales"}); st != 201 {
		t.Fatalf("add user: %d", st)
	}
	if st, b := call("PATCH", "/users/77777777-0000-4000-8000-000000000001", map[string]any{"department": "Legal"}); st != 200 {
		t.Errorf("patch user: %d %s", st, b)
	}
	if st, _ := call("POST", "/groups/"+demoEngGroup+"/members", map[string]any{"id": "77777777-0000-4000-8000-000000000001"}); st != 204 {
		t.Errorf("add member: %d", st)
	}
	if n := len(s.sim.WaitingMembers()); n != 3 {
		t.Errorf("%d waiting after a new engineer, want 3", n)
	}
	if st, _ := call("PATCH", "/allotments/"+demoTeams, map[string]any{"allottedUnits": 10}); st != 204 {
		t.Errorf("set units: %d", st)
	}
	if n := len(s.sim.WaitingMembers()); n != 0 {
		t.Errorf("%d waiting after 3 more seats", n)
	}
	if st, _ := call("PATCH", "/allotments/"+demoExchange+"/subscriptions/c1e3a5b7-9d2f-4b68-8c0a-7d8e9f0a1b23", map[string]any{"state": "suspended"}); st != 204 {
		t.Errorf("set state: %d", st)
	}
	st, b := call("POST", "/assignments", map[string]any{"allotmentId": demoTeams, "assignedToId": demoUser(29), "disabledServicePlanIds": []string{}})
	if st != 201 {
		t.Fatalf("assign: %d %s", st, b)
	}
	var a graphsim.AssignmentState
	_ = json.Unmarshal(b, &a)
	if st, _ := call("DELETE", "/assignments/"+a.ID, nil); st != 204 {
		t.Errorf("unassign: %d", st)
	}
	if st, _ := call("DELETE", "/users/77777777-0000-4000-8000-000000000001", nil); st != 204 {
		t.Errorf("remove user: %d", st)
	}
	if st, _ := call("DELETE", "/users/77777777-0000-4000-8000-000000000001", nil); st != 404 {
		t.Errorf("remove again: %d, want 404", st)
	}
	before := s.sim.Now()
	st, b = call("POST", "/clock", map[string]any{"advance": "48h"})
	if st != 200 || s.sim.Now().Sub(before) < 48*time.Hour {
		t.Errorf("advance clock: %d %s", st, b)
	}
	if st, _ := call("POST", "/faults", []graphsim.FaultRule{{Path: "/beta/", Nth: 1, Kind: "throttle"}}); st != 200 {
		t.Errorf("set faults: %d", st)
	}
	tok := s.token(t, "CloudLicensing.Read.All")
	if st, _, _, _ := raw(s.hc, s.info.GraphURL+"/admin/cloudLicensing/allotments", tok); st != 429 {
		t.Errorf("faulted request = %d", st)
	}
	if st, _ := call("DELETE", "/faults", nil); st != 204 {
		t.Errorf("clear faults: %d", st)
	}
	st, b = call("GET", "/state", nil)
	var state graphsim.Tenant
	if err := json.Unmarshal(b, &state); st != 200 || err != nil || len(state.Users) != 30 {
		t.Errorf("state: %d %v, %d users", st, err, len(state.Users))
	}
	if st, _ := call("GET", "/nothing", nil); st != 404 {
		t.Errorf("unknown admin route = %d", st)
	}
}

// TestFaults_HTTP2 checks reset and truncate over HTTP/2, which Graph
// clients negotiate, where there is no Hijacker.
func TestFaults_HTTP2(t *testing.T) {
	t.Parallel()
	s := start(t, graphsim.Options{})
	tr := s.hc.Transport.(*http.Transport).Clone()
	tr.ForceAttemptHTTP2 = true
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}
	tok := s.token(t, "CloudLicensing.Read.All")
	url := s.info.GraphURL + "/admin/cloudLicensing/allotments"
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("negotiated %s, want HTTP/2", resp.Proto)
	}
	for _, kind := range []string{graphsim.FaultReset, graphsim.FaultTruncate} {
		if err := s.sim.SetFaults([]graphsim.FaultRule{{Path: "/beta/", Rate: 1, Kind: kind}}); err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := raw(hc, url, tok); err == nil {
			t.Errorf("%s over HTTP/2: no error", kind)
		}
	}
}
