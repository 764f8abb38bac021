package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	seatledgerv1 "github.com/seatledger/seatledger/gen/seatledger/v1"
	"github.com/seatledger/seatledger/internal/graphsim"
)

// The write tenant: one SKU with three allotments of different sizes (one
// full), a device-only SKU, a few users in two departments, a group and a
// device.
const (
	wE3       = "11111111-0000-4000-8000-000000000001"
	wKioskSKU = "11111111-0000-4000-8000-000000000002"
	wPlanA    = "22222222-0000-4000-8000-00000000000a"
	wPlanB    = "22222222-0000-4000-8000-00000000000b"
	wPlanK    = "22222222-0000-4000-8000-00000000000c"
	wSalesAl  = "33333333-0000-4000-8000-000000000001" // 5 seats, owned by Sales in the test
	wBigAl    = "33333333-0000-4000-8000-000000000002" // 50 seats: the most free
	wFullAl   = "33333333-0000-4000-8000-000000000003" // 1 seat, taken
	wKioskAl  = "33333333-0000-4000-8000-000000000004" // devices only
	wGroup    = "44444444-0000-4000-8000-000000000001"
	wDevice   = "55555555-0000-4000-8000-000000000001"
	wDevice2  = "55555555-0000-4000-8000-000000000002"
)

func wUser(n int) string { return fmt.Sprintf("66666666-0000-4000-8000-%012d", n) }

func wUPN(n int) string { return fmt.Sprintf("user%d@contoso.example", n) }

func writeTenant() *graphsim.Tenant {
	userGroup := []string{"user", "group"}
	sub := func(n int) []graphsim.Subscription {
		return []graphsim.Subscription{{SubscriptionID: fmt.Sprintf("77777777-0000-4000-8000-%012d", n), State: "active",
			StartDate: "2026-01-01", NextLifecycleDate: "2027-01-01"}}
	}
	t := &graphsim.Tenant{
		SKUs: []graphsim.SKU{
			{ID: wE3, PartNumber: "ENTERPRISEPACK", Plans: []graphsim.Plan{
				{ID: wPlanA, Name: "EXCHANGE_S_ENTERPRISE", AssignableTo: userGroup},
				{ID: wPlanB, Name: "TEAMS1", AssignableTo: userGroup},
			}},
			{ID: wKioskSKU, PartNumber: "KIOSK", Plans: []graphsim.Plan{{ID: wPlanK, Name: "KIOSK_PLAN", AssignableTo: []string{"device"}}}},
		},
		Allotments: []graphsim.AllotmentState{
			{ID: wSalesAl, SKUID: wE3, AllottedUnits: 5, AssignableTo: userGroup, Subscriptions: sub(1)},
			{ID: wBigAl, SKUID: wE3, AllottedUnits: 50, AssignableTo: userGroup, Subscriptions: sub(2)},
			{ID: wFullAl, SKUID: wE3, AllottedUnits: 1, AssignableTo: userGroup, Subscriptions: sub(3)},
			{ID: wKioskAl, SKUID: wKioskSKU, AllottedUnits: 3, AssignableTo: []string{"device"}, Subscriptions: sub(4)},
		},
		Groups:  []graphsim.GroupState{{ID: wGroup, DisplayName: "Interns", Members: []string{wUser(20)}}},
		Devices: []graphsim.DeviceState{{ID: wDevice, DisplayName: "KIOSK-1"}, {ID: wDevice2, DisplayName: "KIOSK-2"}},
		Assignments: []graphsim.AssignmentState{
			{ID: "88888888-0000-4000-8000-000000000001", AllotmentID: wFullAl, AssignedToID: wUser(1)},
			{ID: "88888888-0000-4000-8000-000000000002", AllotmentID: wBigAl, AssignedToID: wUser(2)},
		},
	}
	for n := 1; n <= 20; n++ {
		dept := "Engineering"
		if n%2 == 1 {
			dept = "Sales"
		}
		t.Users = append(t.Users, graphsim.UserState{ID: wUser(n), UserPrincipalName: wUPN(n), DisplayName: fmt.Sprintf("User %d", n),
			Department: dept, CompanyName: "Contoso", AccountEnabled: true})
	}
	return t
}

// restCall sends method path with a JSON body and headers, as token.
func (s *service) restCall(t *testing.T, token, method, path string, body any, headers map[string]string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.httpURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

// simAssignmentsOf returns the simulator's assignments to one object.
func simAssignmentsOf(sim *graphsim.Server, id string) []graphsim.AssignmentState {
	var out []graphsim.AssignmentState
	for _, a := range sim.Assignments() {
		if a.AssignedToID == id {
			out = append(out, a)
		}
	}
	return out
}

// startWriteService starts a simulator with writeTenant and a server
// synced with it, and returns admin and writer tokens.
func startWriteService(t *testing.T) (sim *graphsim.Server, svc *service, admin, writer string) {
	t.Helper()
	sim, environ := startTenant(t, graphsim.Options{Tenant: writeTenant()})
	admin, writer = mintToken(t, sim, "e2e-admin", "admin"), mintToken(t, sim, "hr-onboarding", "writer")
	svc = startService(t, environ, admin)
	svc.runSync(t)
	return sim, svc, admin, writer
}

// TestWrites_AssignmentsEndToEnd drives the write API over real gRPC and
// HTTP against the simulator: onboarding by UPN and SKU, idempotent
// retries under concurrency, every pre-check, Graph's refusals, a lost
// answer, PATCH, DELETE, reprocess, and the audit log of it all.
func TestWrites_AssignmentsEndToEnd(t *testing.T) {
	t.Parallel()
	sim, svc, admin, writer := startWriteService(t)
	wconn := svc.dial(t, writer)
	assignments := seatledgerv1.NewAssignmentServiceClient(wconn)
	ctx := context.Background()

	t.Run("onboarding by UPN with a SKU assigns from the department's allotment", func(t *testing.T) {
		code, body := svc.restCall(t, admin, http.MethodPut, "/v1/allotments/"+wSalesAl+"/owner", map[string]string{"ownerDepartment": "Sales"}, nil)
		if code != http.StatusOK || !strings.Contains(string(body), `"ownerDepartment":"Sales"`) {
			t.Fatalf("PUT owner = %d %s", code, body)
		}
		if code, body := svc.restCall(t, writer, http.MethodPut, "/v1/allotments/"+wSalesAl+"/owner", map[string]string{"ownerDepartment": "HR"}, nil); code != http.StatusForbidden {
			t.Errorf("PUT owner as writer = %d %s, want 403", code, body)
		}
		// user3 is in Sales; the big allotment has more free seats, so only
		// ownership explains choosing the Sales one.
		code, body = svc.restCall(t, writer, http.MethodPost, "/v1/assignments",
			map[string]any{"user": strings.ToUpper(wUPN(3)), "skuId": wE3}, map[string]string{"Idempotency-Key": "onboard-user3"})
		if code != http.StatusOK {
			t.Fatalf("POST /v1/assignments = %d %s", code, body)
		}
		var resp seatledgerv1.CreateAssignmentResponse
		if err := protojson.Unmarshal(body, &resp); err != nil {
			t.Fatal(err)
		}
		if resp.GetAllotment().GetId() != wSalesAl || resp.GetAllotmentChoiceReason() != seatledgerv1.AllotmentChoiceReason_ALLOTMENT_CHOICE_REASON_OWNER_DEPARTMENT ||
			resp.GetIdempotentReplay() || !strings.Contains(resp.GetAllotmentChoiceDetail(), "Sales") {
			t.Errorf("created %v; want allotment %s for the owner department, not a replay", &resp, wSalesAl)
		}
		got := simAssignmentsOf(sim, wUser(3))
		if len(got) != 1 || got[0].ID != resp.GetAssignment().GetId() || got[0].AllotmentID != wSalesAl {
			t.Fatalf("simulator holds %v for user3; want the one assignment returned (%s)", got, resp.GetAssignment().GetId())
		}
		// Read-your-writes: the mirror shows it before any sync.
		code, body = svc.get(t, "/v1/assignments?assignee="+wUPN(3))
		if code != http.StatusOK || !strings.Contains(string(body), resp.GetAssignment().GetId()) {
			t.Errorf("GET /v1/assignments?assignee= after the write = %d %s; want the new assignment", code, body)
		}
		// Without a sku the other user gets the most free seats.
		r2, err := assignments.CreateAssignment(ctx, &seatledgerv1.CreateAssignmentRequest{
			Assignee: &seatledgerv1.CreateAssignmentRequest_User{User: wUser(4)}, Source: &seatledgerv1.CreateAssignmentRequest_SkuId{SkuId: wE3}})
		if err != nil {
			t.Fatal(err)
		}
		if r2.GetAllotment().GetId() != wBigAl || r2.GetAllotmentChoiceReason() != seatledgerv1.AllotmentChoiceReason_ALLOTMENT_CHOICE_REASON_MOST_AVAILABLE_UNITS {
			t.Errorf("user4 (Engineering, no owned allotment) got %v; want the allotment with the most free seats", r2)
		}
		// A new hire created after the last sync is found in the directory.
		if err := sim.AddUser(graphsim.UserState{ID: wUser(21), UserPrincipalName: wUPN(21), DisplayName: "New Hire",
			Department: "Sales", AccountEnabled: true}); err != nil {
			t.Fatal(err)
		}
		r3, err := assignments.CreateAssignment(ctx, &seatledgerv1.CreateAssignmentRequest{
			Assignee: &seatledgerv1.CreateAssignmentRequest_User{User: wUPN(21)}, Source: &seatledgerv1.CreateAssignmentRequest_SkuId{SkuId: wE3}})
		if err != nil || r3.GetAllotment().GetId() != wSalesAl {
			t.Fatalf("onboarding a user not yet synced = %v, %v; want the Sales allotment", r3, err)
		}
		if got := simAssignmentsOf(sim, wUser(21)); len(got) != 1 {
			t.Errorf("simulator holds %v for the new hire, want 1", got)
		}
		// The allotment's units are refreshed at once too.
		code, body = svc.get(t, "/v1/allotments/"+wSalesAl)
		if code != http.StatusOK || !strings.Contains(string(body), `"consumedUnits":2`) {
			t.Errorf("GET the allotment after the writes = %d %s; want 2 consumed", code, body)
		}
		// The next sync finds the written-through state unchanged.
		run := svc.runSync(t)
		for _, c := range run.GetEntityCounts() {
			if (c.GetEntity() == "assignments" || c.GetEntity() == "allotments") && (c.GetAdded() != 0 || c.GetChanged() != 0 || c.GetRemoved() != 0) {
				t.Errorf("sync after the writes counted %v; want all unchanged", c)
			}
		}
	})

	t.Run("20 concurrent duplicates make one Graph assignment", func(t *testing.T) {
		req := &seatledgerv1.CreateAssignmentRequest{IdempotencyKey: "dup-user5",
			Assignee: &seatledgerv1.CreateAssignmentRequest_User{User: wUPN(5)}, Source: &seatledgerv1.CreateAssignmentRequest_AllotmentId{AllotmentId: wBigAl}}
		var (
			wg      gosync.WaitGroup
			mu      gosync.Mutex
			ids     []string
			replays int
			errs    []error
		)
		for range 20 {
			wg.Go(func() {
				r, err := assignments.CreateAssignment(ctx, req)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				ids = append(ids, r.GetAssignment().GetId())
				if r.GetIdempotentReplay() {
					replays++
				}
			})
		}
		wg.Wait()
		if len(errs) > 0 {
			t.Fatalf("concurrent creates failed: %v", errs)
		}
		slices.Sort(ids)
		if ids = slices.Compact(ids); len(ids) != 1 || replays != 19 {
			t.Errorf("20 duplicates returned assignments %v with %d replays; want one assignment, 19 replays", ids, replays)
		}
		if got := simAssignmentsOf(sim, wUser(5)); len(got) != 1 {
			t.Errorf("simulator holds %d assignments for user5, want exactly 1: %v", len(got), got)
		}
		// The same key over REST (header), same body: the stored result.
		code, body := svc.restCall(t, writer, http.MethodPost, "/v1/assignments",
			map[string]any{"user": wUPN(5), "allotmentId": wBigAl}, map[string]string{"Idempotency-Key": "dup-user5"})
		if code != http.StatusOK || !strings.Contains(string(body), `"idempotentReplay":true`) || !strings.Contains(string(body), ids[0]) {
			t.Errorf("REST repeat with the same key = %d %s; want the first result as a replay", code, body)
		}
		// The same key with another body is refused.
		code, body = svc.restCall(t, writer, http.MethodPost, "/v1/assignments",
			map[string]any{"user": wUPN(6), "allotmentId": wBigAl}, map[string]string{"Idempotency-Key": "dup-user5"})
		if code != http.StatusConflict || !strings.Contains(string(body), "different request") {
			t.Errorf("same key, different body = %d %s; want 409 saying the key was used for a different request", code, body)
		}
		if got := simAssignmentsOf(sim, wUser(6)); len(got) != 0 {
			t.Errorf("a refused key assigned user6 anyway: %v", got)
		}
	})

	t.Run("pre-checks refuse before Graph with their own errors", func(t *testing.T) {
		before := len(sim.Assignments())
		user := func(u string) *seatledgerv1.CreateAssignmentRequest_User {
			return &seatledgerv1.CreateAssignmentRequest_User{User: u}
		}
		from := func(id string) *seatledgerv1.CreateAssignmentRequest_AllotmentId {
			return &seatledgerv1.CreateAssignmentRequest_AllotmentId{AllotmentId: id}
		}
		tests := []struct {
			name     string
			req      *seatledgerv1.CreateAssignmentRequest
			code     codes.Code
			httpCode int
			msg      string
			check    func(t *testing.T, st *status.Status)
		}{
			{name: "unknown user", req: &seatledgerv1.CreateAssignmentRequest{Assignee: user("nobody@contoso.example"), Source: from(wBigAl)},
				code: codes.NotFound, httpCode: http.StatusNotFound, msg: "nobody@contoso.example"},
			{name: "unknown allotment", req: &seatledgerv1.CreateAssignmentRequest{Assignee: user(wUPN(7)), Source: from("99999999-0000-4000-8000-000000000000")},
				code: codes.NotFound, httpCode: http.StatusNotFound, msg: "allotment"},
			{name: "assignee type not assignable", req: &seatledgerv1.CreateAssignmentRequest{Assignee: user(wUPN(7)), Source: from(wKioskAl)},
				code: codes.InvalidArgument, httpCode: http.StatusBadRequest, msg: "cannot be assigned to a user"},
			{name: "plan not among the services", req: &seatledgerv1.CreateAssignmentRequest{Assignee: user(wUPN(7)), Source: from(wBigAl),
				DisabledServicePlanIds: []string{wPlanA, wPlanK}}, code: codes.InvalidArgument, httpCode: http.StatusBadRequest, msg: wPlanK,
				check: func(t *testing.T, st *status.Status) {
					for _, d := range st.Details() {
						if br, ok := d.(*errdetails.BadRequest); ok && br.GetFieldViolations()[0].GetField() == "disabled_service_plan_ids[1]" {
							return
						}
					}
					t.Errorf("details %v lack a field violation of disabled_service_plan_ids[1]", st.Details())
				}},
			{name: "already holds a seat", req: &seatledgerv1.CreateAssignmentRequest{Assignee: user(wUPN(2)), Source: from(wBigAl)},
				code: codes.AlreadyExists, httpCode: http.StatusConflict, msg: "88888888-0000-4000-8000-000000000002",
				check: func(t *testing.T, st *status.Status) {
					for _, d := range st.Details() {
						if a, ok := d.(*seatledgerv1.Assignment); ok && a.GetId() == "88888888-0000-4000-8000-000000000002" {
							return
						}
					}
					t.Errorf("details %v lack the existing assignment", st.Details())
				}},
			{name: "no free seat", req: &seatledgerv1.CreateAssignmentRequest{Assignee: user(wUPN(7)), Source: from(wFullAl)},
				code: codes.ResourceExhausted, httpCode: http.StatusTooManyRequests, msg: "allotments/" + wBigAl + " has 4"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := assignments.CreateAssignment(ctx, tt.req)
				st := status.Convert(err)
				if st.Code() != tt.code || !strings.Contains(st.Message(), tt.msg) {
					t.Fatalf("CreateAssignment() = %v; want %v naming %q", err, tt.code, tt.msg)
				}
				if tt.check != nil {
					tt.check(t, st)
				}
				b, err := protojson.Marshal(tt.req)
				if err != nil {
					t.Fatal(err)
				}
				var body map[string]any
				_ = json.Unmarshal(b, &body)
				code, rb := svc.restCall(t, writer, http.MethodPost, "/v1/assignments", body, nil)
				if code != tt.httpCode || !strings.Contains(string(rb), tt.msg) {
					t.Errorf("POST /v1/assignments = %d %s; want %d naming %q", code, rb, tt.httpCode, tt.msg)
				}
			})
		}
		if after := len(sim.Assignments()); after != before {
			t.Errorf("pre-checks changed the simulator's assignments from %d to %d", before, after)
		}
	})

	t.Run("Graph's refusals carry its codes and request-id", func(t *testing.T) {
		// The group is not mirrored as such, so Graph is asked and refuses.
		_, err := assignments.CreateAssignment(ctx, &seatledgerv1.CreateAssignmentRequest{
			Assignee: &seatledgerv1.CreateAssignmentRequest_GroupId{GroupId: "44444444-0000-4000-8000-0000000000ff"},
			Source:   &seatledgerv1.CreateAssignmentRequest_AllotmentId{AllotmentId: wBigAl}})
		st := status.Convert(err)
		if st.Code() != codes.NotFound {
			t.Fatalf("assigning an unknown group = %v, want NOT_FOUND", err)
		}
		var info *errdetails.ErrorInfo
		for _, d := range st.Details() {
			if e, ok := d.(*errdetails.ErrorInfo); ok {
				info = e
			}
		}
		if info == nil || info.GetDomain() != "graph.microsoft.com" || info.GetReason() != "notFound" || info.GetMetadata()["request_id"] == "" {
			t.Errorf("details = %v; want ErrorInfo{reason notFound, domain graph.microsoft.com, request_id}", st.Details())
		}
	})

	t.Run("a lost answer is resolved by reading back, never by posting twice", func(t *testing.T) {
		post := graphsim.FaultRule{Path: "/beta/admin/cloudLicensing/assignments", Method: http.MethodPost, Nth: 1}
		// A gateway timeout: Graph did nothing; the caller retries.
		post.Kind = graphsim.FaultGatewayTimeout
		if err := sim.SetFaults([]graphsim.FaultRule{post}); err != nil {
			t.Fatal(err)
		}
		req := &seatledgerv1.CreateAssignmentRequest{IdempotencyKey: "timeout-user8",
			Assignee: &seatledgerv1.CreateAssignmentRequest_User{User: wUPN(8)}, Source: &seatledgerv1.CreateAssignmentRequest_SkuId{SkuId: wE3}}
		_, err := assignments.CreateAssignment(ctx, req)
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("create during a Graph timeout = %v, want UNAVAILABLE", err)
		}
		r, err := assignments.CreateAssignment(ctx, req)
		if err != nil || r.GetIdempotentReplay() {
			t.Fatalf("retry after the timeout = %v, %v; want a fresh success", r, err)
		}
		if got := simAssignmentsOf(sim, wUser(8)); len(got) != 1 {
			t.Errorf("simulator holds %d assignments for user8, want 1", len(got))
		}
		// A truncated answer: Graph assigned, the answer was lost.
		post.Kind = graphsim.FaultTruncate
		if err := sim.SetFaults([]graphsim.FaultRule{post}); err != nil {
			t.Fatal(err)
		}
		req = &seatledgerv1.CreateAssignmentRequest{IdempotencyKey: "lost-user9",
			Assignee: &seatledgerv1.CreateAssignmentRequest_User{User: wUPN(9)}, Source: &seatledgerv1.CreateAssignmentRequest_AllotmentId{AllotmentId: wBigAl}}
		r, err = assignments.CreateAssignment(ctx, req)
		if err != nil {
			t.Fatalf("create with a lost answer = %v; want the assignment found by reading back", err)
		}
		r2, err := assignments.CreateAssignment(ctx, req)
		if err != nil || !r2.GetIdempotentReplay() || r2.GetAssignment().GetId() != r.GetAssignment().GetId() {
			t.Errorf("retry = %v, %v; want a replay of %s", r2, err, r.GetAssignment().GetId())
		}
		if got := simAssignmentsOf(sim, wUser(9)); len(got) != 1 || got[0].ID != r.GetAssignment().GetId() {
			t.Errorf("simulator holds %v for user9, want exactly the one returned", got)
		}
		if err := sim.SetFaults(nil); err != nil {
			t.Fatal(err)
		}
	})

	var patched string
	t.Run("PATCH, DELETE and reprocess go to Graph and show at once", func(t *testing.T) {
		r, err := assignments.CreateAssignment(ctx, &seatledgerv1.CreateAssignmentRequest{
			Assignee: &seatledgerv1.CreateAssignmentRequest_User{User: wUPN(10)}, Source: &seatledgerv1.CreateAssignmentRequest_AllotmentId{AllotmentId: wBigAl}})
		if err != nil {
			t.Fatal(err)
		}
		patched = r.GetAssignment().GetId()
		code, body := svc.restCall(t, writer, http.MethodPatch, "/v1/assignments/"+patched, map[string]any{"disabledServicePlanIds": []string{wPlanB}}, nil)
		if code != http.StatusOK || !strings.Contains(string(body), wPlanB) {
			t.Fatalf("PATCH = %d %s", code, body)
		}
		if got := simAssignmentsOf(sim, wUser(10)); len(got) != 1 || !slices.Equal(got[0].DisabledServicePlanIDs, []string{wPlanB}) {
			t.Errorf("simulator after PATCH: %v", got)
		}
		code, body = svc.get(t, "/v1/assignments/"+patched)
		if code != http.StatusOK || !strings.Contains(string(body), wPlanB) {
			t.Errorf("GET after PATCH = %d %s", code, body)
		}
		code, body = svc.restCall(t, writer, http.MethodPatch, "/v1/assignments/"+patched+"?updateMask=allotmentId", map[string]any{"allotmentId": wSalesAl}, nil)
		if code != http.StatusBadRequest {
			t.Errorf("PATCH of the allotment = %d %s, want 400", code, body)
		}
		code, body = svc.restCall(t, writer, http.MethodDelete, "/v1/assignments/"+patched, nil, nil)
		if code != http.StatusOK {
			t.Fatalf("DELETE = %d %s", code, body)
		}
		if got := simAssignmentsOf(sim, wUser(10)); len(got) != 0 {
			t.Errorf("simulator still holds %v after DELETE", got)
		}
		if code, body := svc.get(t, "/v1/assignments/"+patched); code != http.StatusNotFound {
			t.Errorf("GET after DELETE = %d %s, want 404", code, body)
		}
		if code, body := svc.restCall(t, writer, http.MethodDelete, "/v1/assignments/"+patched, nil, nil); code != http.StatusNotFound {
			t.Errorf("second DELETE = %d %s, want 404", code, body)
		}
		code, body = svc.restCall(t, writer, http.MethodPost, "/v1/users/"+wUPN(10)+":reprocess", map[string]any{}, nil)
		if code != http.StatusOK || !strings.Contains(string(body), wUser(10)) {
			t.Errorf("POST :reprocess = %d %s", code, body)
		}
	})

	t.Run("every attempt is audited", func(t *testing.T) {
		if code, body := svc.restCall(t, writer, http.MethodGet, "/v1/audit-events", nil, nil); code != http.StatusForbidden {
			t.Errorf("GET /v1/audit-events as writer = %d %s, want 403", code, body)
		}
		audit := seatledgerv1.NewAuditServiceClient(svc.conn)
		var events []*seatledgerv1.AuditEvent
		token := ""
		for {
			resp, err := audit.ListAuditEvents(ctx, &seatledgerv1.ListAuditEventsRequest{PageSize: 7, PageToken: token,
				Method: "seatledger.v1.AssignmentService.CreateAssignment"})
			if err != nil {
				t.Fatal(err)
			}
			events = append(events, resp.GetAuditEvents()...)
			if token = resp.GetNextPageToken(); token == "" {
				break
			}
		}
		count := map[string]int{}
		replays := 0
		for i, e := range events {
			if i > 0 && e.GetId() >= events[i-1].GetId() {
				t.Errorf("events are not newest first: %d after %d", e.GetId(), events[i-1].GetId())
			}
			count[e.GetStatus()]++
			if e.GetDetails()["idempotent_replay"] == "true" {
				replays++
			}
			if e.GetActor() == "" || e.GetActor() == "anonymous" || e.GetRequestId() == "" || e.GetDetails()["request"] == "" {
				t.Errorf("event %v lacks actor, request id or request", e)
			}
			if e.GetActorName() != "hr-onboarding" {
				t.Errorf("event %d: actor_name = %q, want the token's name hr-onboarding", e.GetId(), e.GetActorName())
			}
			// A create Graph answered carries Graph's request-id, whether
			// Graph accepted it or not (a replay and a read-back do not
			// reach Graph's create).
			if e.GetStatus() == "OK" && e.GetDetails()["idempotent_replay"] != "true" && e.GetDetails()["outcome"] == "" &&
				e.GetDetails()["graph_request_id"] == "" {
				t.Errorf("successful create %d (%s) has no Graph request-id", e.GetId(), e.GetResource())
			}
		}
		// Successes: user3, user4, user21, 20×user5 + REST replay, user8, user9 ×2, user10.
		want := map[string]int{"OK": 28, "ABORTED": 1, "NOT_FOUND": 5, "INVALID_ARGUMENT": 4, "ALREADY_EXISTS": 2,
			"RESOURCE_EXHAUSTED": 2, "UNAVAILABLE": 1}
		for k, v := range want {
			if count[k] != v {
				t.Errorf("audit has %d %s CreateAssignment events, want %d (all: %v)", count[k], k, v, count)
			}
		}
		if replays != 21 {
			t.Errorf("audit has %d replays, want 21 (19 concurrent, 1 REST, 1 after the lost answer)", replays)
		}
		var graphRefusal bool
		for _, e := range events {
			if e.GetStatus() == "NOT_FOUND" && e.GetDetails()["graph_request_id"] != "" {
				graphRefusal = true
			}
		}
		if !graphRefusal {
			t.Error("no audit event carries the Graph request-id of Graph's refusal")
		}
		code, body := svc.get(t, "/v1/audit-events?resource=assignments/"+patched)
		if code != http.StatusOK || strings.Count(string(body), `"method"`) < 2 {
			t.Errorf("GET /v1/audit-events?resource= = %d %s; want the PATCH and DELETE events", code, body)
		}
		code, body = svc.get(t, "/v1/audit-events?method=seatledger.v1.AllotmentService.SetAllotmentOwner&startTime="+
			time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))
		if code != http.StatusOK || !strings.Contains(string(body), `"status":"OK"`) {
			t.Errorf("GET /v1/audit-events for owners = %d %s", code, body)
		}
	})
}

// TestWrites_TimeoutThenRetry lets a Graph POST outlast the caller's
// deadline (the simulator holds it; the cancelled request never acts),
// then retries with the same key: exactly one assignment results. It also
// assigns a device and a group.
func TestWrites_TimeoutThenRetry(t *testing.T) {
	t.Parallel()
	sim, svc, _, writer := startWriteService(t)
	assignments := seatledgerv1.NewAssignmentServiceClient(svc.dial(t, writer))
	err := sim.SetFaults([]graphsim.FaultRule{{Path: "/beta/admin/cloudLicensing/assignments", Method: http.MethodPost, Nth: 1,
		Kind: graphsim.FaultDelay, Delay: "30s"}})
	if err != nil {
		t.Fatal(err)
	}
	req := &seatledgerv1.CreateAssignmentRequest{IdempotencyKey: "slow-user11",
		Assignee: &seatledgerv1.CreateAssignmentRequest_User{User: wUPN(11)}, Source: &seatledgerv1.CreateAssignmentRequest_SkuId{SkuId: wE3}}
	short, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := assignments.CreateAssignment(short, req); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("create with a hung Graph = %v, want DEADLINE_EXCEEDED", err)
	}
	r, err := assignments.CreateAssignment(context.Background(), req)
	if err != nil {
		t.Fatalf("retry with the same key: %v", err)
	}
	if got := simAssignmentsOf(sim, wUser(11)); len(got) != 1 || got[0].ID != r.GetAssignment().GetId() {
		t.Errorf("simulator holds %v for user11, want exactly the one returned (%s)", got, r.GetAssignment().GetId())
	}
	if f := sim.Faults(); len(f) != 1 || f[0].Fired != 1 {
		t.Errorf("faults %+v; want the delay to have fired once", f)
	}

	// Graph has fewer seats than the mirror believes: Graph's refusal is
	// passed on with its code and where else seats are free. (Before any
	// write to this allotment: a write refreshes its counts from Graph
	// after answering, and the mirror would then know it is full.)
	if err := sim.SetAllottedUnits(wKioskAl, 0); err != nil {
		t.Fatal(err)
	}
	_, err = assignments.CreateAssignment(context.Background(), &seatledgerv1.CreateAssignmentRequest{
		Assignee: &seatledgerv1.CreateAssignmentRequest_DeviceId{DeviceId: wDevice2}, Source: &seatledgerv1.CreateAssignmentRequest_AllotmentId{AllotmentId: wKioskAl}})
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "no other allotment of this SKU") ||
		!strings.Contains(st.Message(), "graph request-id") {
		t.Errorf("assigning from an allotment Graph says is full = %v; want RESOURCE_EXHAUSTED with Graph's request-id and the alternatives", err)
	}
	if err := sim.SetAllottedUnits(wKioskAl, 3); err != nil {
		t.Fatal(err)
	}
	d, err := assignments.CreateAssignment(context.Background(), &seatledgerv1.CreateAssignmentRequest{
		Assignee: &seatledgerv1.CreateAssignmentRequest_DeviceId{DeviceId: wDevice}, Source: &seatledgerv1.CreateAssignmentRequest_SkuId{SkuId: wKioskSKU}})
	if err != nil || d.GetAllotment().GetId() != wKioskAl || d.GetAllotmentChoiceReason() != seatledgerv1.AllotmentChoiceReason_ALLOTMENT_CHOICE_REASON_ONLY_CANDIDATE ||
		d.GetAssignment().GetAssignee().GetType() != seatledgerv1.AssigneeType_ASSIGNEE_TYPE_DEVICE {
		t.Errorf("device assignment = %v, %v; want the only kiosk allotment", d, err)
	}
	g, err := assignments.CreateAssignment(context.Background(), &seatledgerv1.CreateAssignmentRequest{
		Assignee: &seatledgerv1.CreateAssignmentRequest_GroupId{GroupId: wGroup}, Source: &seatledgerv1.CreateAssignmentRequest_AllotmentId{AllotmentId: wFullAl}})
	if err != nil || g.GetAssignment().GetAssignee().GetType() != seatledgerv1.AssigneeType_ASSIGNEE_TYPE_GROUP {
		t.Errorf("group assignment from a full allotment = %v, %v; want it made (members wait for seats)", g, err)
	}
	if got := simAssignmentsOf(sim, wGroup); len(got) != 1 {
		t.Errorf("simulator holds %v for the group, want 1", got)
	}
	// Graph's answers to the device's and the group's creates are not the
	// shape the sync lists: the next sync still finds both unchanged.
	run := svc.runSync(t)
	for _, c := range run.GetEntityCounts() {
		if c.GetEntity() == "assignments" && (c.GetAdded() != 0 || c.GetChanged() != 0 || c.GetRemoved() != 0) {
			t.Errorf("sync after the device and group writes counted %v; want all unchanged", c)
		}
	}
}
