package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"

	seatledgerv1 "github.com/seatledger/seatledger/gen/seatledger/v1"
	"github.com/seatledger/seatledger/internal/graph"
	"github.com/seatledger/seatledger/internal/graphsim"
	"github.com/seatledger/seatledger/internal/store"
	"github.com/seatledger/seatledger/internal/store/storetest"
	mirrorsync "github.com/seatledger/seatledger/internal/sync"
)

// TestGraphStatus checks the mapping of Graph's write refusals
// (shared/graph/ERRORS.md §1B, §1D) and the ErrorInfo every one carries.
func TestGraphStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status      int
		code, inner string
		msg         string
		want        codes.Code
	}{
		{400, "badRequest", "noAvailableLicenses", "There are no available licenses", codes.ResourceExhausted},
		{400, "badRequest", "mutuallyExclusiveServicePlans", "plans A,B are mutually exclusive", codes.FailedPrecondition},
		{400, "badRequest", "proxyAddressConflict", "proxyAddresses", codes.FailedPrecondition},
		{400, "badRequest", "invalidUsageLocation", "usage location", codes.FailedPrecondition},
		{400, "badRequest", "notFound", "The user 'x' in assignedTo does not exist.", codes.NotFound},
		{400, "badRequest", "notFound", "disabledServicePlanIds[0]: service plan 'p' is not a service", codes.InvalidArgument},
		{400, "badRequest", "requiredFieldOrParameterMissing", "", codes.InvalidArgument},
		{400, "badRequest", "invalidAssigneeType", "", codes.InvalidArgument},
		{400, "badRequest", "immutablePropertyModified", "", codes.InvalidArgument},
		{403, "forbidden", "missingRequiredPermission", "", codes.PermissionDenied},
		{403, "forbidden", "allotmentPermissions", "", codes.PermissionDenied},
		{404, "notFound", "resourceNotFound", "", codes.NotFound},
		{405, "methodNotAllowed", "", "", codes.Internal},
		{409, "conflict", "assignmentAlreadyExists", "already has assignment", codes.AlreadyExists},
		{409, "Directory_ConcurrencyViolation", "", "", codes.Aborted},
		{500, "generalException", "", "", codes.Unavailable},
		{503, "serviceNotAvailable", "", "", codes.Unavailable},
		{401, "InvalidAuthenticationToken", "", "", codes.Unavailable},
		{400, "badRequest", "somethingNew", "new failure", codes.FailedPrecondition},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d %s %s", tt.status, tt.code, tt.inner), func(t *testing.T) {
			t.Parallel()
			st := status.Convert(graphStatus(&graph.Error{Status: tt.status, Code: tt.code, InnerCode: tt.inner, Message: tt.msg, RequestID: "req-1"}))
			if st.Code() != tt.want {
				t.Errorf("code = %v, want %v (%s)", st.Code(), tt.want, st.Message())
			}
			if !strings.Contains(st.Message(), "req-1") || !strings.Contains(st.Message(), tt.msg) {
				t.Errorf("message %q does not quote Graph's message and request-id", st.Message())
			}
			var info *errdetails.ErrorInfo
			for _, d := range st.Details() {
				if e, ok := d.(*errdetails.ErrorInfo); ok {
					info = e
				}
			}
			wantReason := tt.inner
			if wantReason == "" {
				wantReason = tt.code
			}
			if info == nil || info.GetDomain() != "graph.microsoft.com" || info.GetReason() != wantReason ||
				info.GetMetadata()["request_id"] != "req-1" || info.GetMetadata()["graph_status"] != fmt.Sprint(tt.status) {
				t.Errorf("ErrorInfo = %v; want reason %q, domain graph.microsoft.com, request_id req-1", info, wantReason)
			}
		})
	}
	// Through toStatus, as the interceptor maps handler errors.
	err := toStatus(context.Background(), slog.New(slog.DiscardHandler), "m", fmt.Errorf("create: %w", &graph.Error{Status: http.StatusForbidden, Code: "forbidden"}))
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("toStatus(wrapped 403) = %v, want PERMISSION_DENIED", err)
	}
}

func TestIdempotencyKeyOf(t *testing.T) {
	t.Parallel()
	withHeader := func(v ...string) context.Context {
		md := metadata.MD{}
		for _, x := range v {
			md.Append(idempotencyHeader, x)
		}
		return metadata.NewIncomingContext(context.Background(), md)
	}
	tests := []struct {
		ctx   context.Context
		field string
		want  string
		ok    bool
	}{
		{context.Background(), "k1", "k1", true},
		{withHeader("h1"), "", "h1", true},
		{withHeader("same"), "same", "same", true},
		{withHeader("h1"), "k1", "", false},
		{withHeader("a", "b"), "", "", false},
		{context.Background(), "has space", "", false},
		{context.Background(), strings.Repeat("k", maxIdempotencyKey+1), "", false},
	}
	for _, tt := range tests {
		got, err := idempotencyKeyOf(tt.ctx, tt.field)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("idempotencyKeyOf(%q) = %q, %v; want %q, ok %v", tt.field, got, err, tt.want, tt.ok)
		}
		if err != nil && status.Code(err) != codes.InvalidArgument {
			t.Errorf("idempotencyKeyOf(%q) error %v, want INVALID_ARGUMENT", tt.field, err)
		}
	}
}

func TestKeyedMutex(t *testing.T) {
	t.Parallel()
	k := keyedMutex{m: map[string]*keyLock{}}
	unlock, err := k.lock(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	// Another key is independent.
	unlockB, err := k.lock(context.Background(), "b")
	if err != nil {
		t.Fatal(err)
	}
	unlockB()
	// The same key waits; a cancelled wait gives up.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := k.lock(ctx, "a"); err == nil {
		t.Fatal("second lock of a held key succeeded")
	}
	got := make(chan struct{})
	go func() {
		u, err := k.lock(context.Background(), "a")
		if err == nil {
			u()
		}
		close(got)
	}()
	unlock()
	<-got
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.m) != 0 {
		t.Errorf("%d key locks left after every unlock, want 0", len(k.m))
	}
}

func TestMain(m *testing.M) { storetest.Main(m) }

// The completion tenant: one SKU, one allotment for users and groups, one
// for devices, three users, a group and a device.
const (
	cSKU      = "11111111-0000-4000-8000-0000000000c1"
	cKioskSKU = "11111111-0000-4000-8000-0000000000c2"
	cPlan     = "22222222-0000-4000-8000-0000000000c1"
	cKioskPl  = "22222222-0000-4000-8000-0000000000c2"
	cAllot    = "33333333-0000-4000-8000-0000000000c1"
	cKioskAl  = "33333333-0000-4000-8000-0000000000c2"
	cGroup    = "44444444-0000-4000-8000-0000000000c1"
	cDevice   = "55555555-0000-4000-8000-0000000000c1"
)

func cUser(n int) string { return fmt.Sprintf("66666666-0000-4000-8000-%012d", n) }

// completionEnv is a write API over real gRPC, a real store and the
// simulator over HTTPS, whose completions wait for release.
type completionEnv struct {
	sim         *graphsim.Server
	graphPath   string // path prefix of the simulator's Graph API
	st          *store.Store
	syncer      *mirrorsync.Syncer
	completions *Completions
	release     func()
	assignments seatledgerv1.AssignmentServiceClient
	allotments  seatledgerv1.AllotmentServiceClient
}

// completionTenant is the tenant of the write tests: one SKU, one
// allotment for users and groups, one for devices, three users, a group
// and a device.
func completionTenant() *graphsim.Tenant {
	tenant := &graphsim.Tenant{
		SKUs: []graphsim.SKU{
			{ID: cSKU, PartNumber: "ENTERPRISEPACK", Plans: []graphsim.Plan{{ID: cPlan, Name: "TEAMS1", AssignableTo: []string{"user", "group"}}}},
			{ID: cKioskSKU, PartNumber: "KIOSK", Plans: []graphsim.Plan{{ID: cKioskPl, Name: "KIOSK_PLAN", AssignableTo: []string{"device"}}}},
		},
		Allotments: []graphsim.AllotmentState{
			{ID: cAllot, SKUID: cSKU, AllottedUnits: 10, AssignableTo: []string{"user", "group"}},
			{ID: cKioskAl, SKUID: cKioskSKU, AllottedUnits: 3, AssignableTo: []string{"device"}},
		},
		Groups:      []graphsim.GroupState{{ID: cGroup, DisplayName: "Interns", Members: []string{cUser(3)}}},
		Devices:     []graphsim.DeviceState{{ID: cDevice, DisplayName: "KIOSK-1"}},
		Assignments: []graphsim.AssignmentState{{ID: "88888888-0000-4000-8000-0000000000c1", AllotmentID: cAllot, AssignedToID: cUser(1)}},
	}
	for n := 1; n <= 3; n++ {
		tenant.Users = append(tenant.Users, graphsim.UserState{ID: cUser(n), UserPrincipalName: fmt.Sprintf("user%d@contoso.example", n),
			DisplayName: fmt.Sprintf("User %d", n), AccountEnabled: true})
	}
	return tenant
}

// startGraph serves tenant from a simulator over HTTPS until the test
// ends, and returns it with a Graph client that trusts it and the path
// prefix of its Graph API.
func startGraph(t *testing.T, tenant *graphsim.Tenant) (*graphsim.Server, *graph.Client, string) {
	t.Helper()
	sim, err := graphsim.New(graphsim.Options{Tenant: tenant})
	if err != nil {
		t.Fatal(err)
	}
	info, err := sim.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(info.CAPEM)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	cred, err := graph.NewCredential(graph.CredentialConfig{TenantID: info.TenantID, ClientID: info.ClientID,
		ClientSecret: info.ClientSecret, AuthorityHost: info.AuthorityURL, Transport: hc})
	if err != nil {
		t.Fatal(err)
	}
	gc, err := graph.New(cred, graph.Options{BaseURL: info.GraphURL, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(info.GraphURL)
	if err != nil {
		t.Fatal(err)
	}
	return sim, gc, u.Path
}

// serve serves srv on a loopback port until the test ends and returns a
// client connection to it.
func serve(t *testing.T, srv *grpc.Server) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func startCompletionEnv(t *testing.T) *completionEnv {
	t.Helper()
	sim, gc, graphPath := startGraph(t, completionTenant())
	st := storetest.New(t)
	syncer := mirrorsync.New(gc, st, mirrorsync.Options{})
	if _, err := syncer.RunOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	completions := NewCompletions()
	completions.hold = make(chan struct{})
	srv := NewGRPCServer(Deps{Store: st, Graph: gc, Sync: syncer, Completions: completions})
	conn := serve(t, srv)
	var once gosync.Once
	env := &completionEnv{sim: sim, graphPath: graphPath + "/", st: st, syncer: syncer, completions: completions,
		release:     func() { once.Do(func() { close(completions.hold) }) },
		assignments: seatledgerv1.NewAssignmentServiceClient(conn),
		allotments:  seatledgerv1.NewAllotmentServiceClient(conn),
	}
	t.Cleanup(func() {
		env.release()
		if err := completions.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return env
}

// countGraphRequests makes the simulator count every Graph request from
// now on (a fault rule that always fires and delays nothing); the
// returned function reports how many it saw.
func (e *completionEnv) countGraphRequests(t *testing.T) func() int {
	t.Helper()
	if err := e.sim.SetFaults([]graphsim.FaultRule{{Path: e.graphPath, Rate: 1, Kind: graphsim.FaultDelay, Delay: "0s"}}); err != nil {
		t.Fatal(err)
	}
	return func() int { return e.sim.Faults()[0].Fired }
}

// sameJSON reports how two JSON documents differ in meaning ("" if not).
func sameJSON(a, b []byte) string {
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		return "first: " + err.Error()
	}
	if err := json.Unmarshal(b, &y); err != nil {
		return "second: " + err.Error()
	}
	return cmp.Diff(x, y)
}

// TestCreateAssignment_oneRoundTrip: a create answers after the Graph
// POST alone, with its effect already readable (the assignment listed,
// the seat counted); a sync before the work left for after the answer
// records no new version; that work, released, leaves the mirror as the
// sync stores it; and closing waits for it.
func TestCreateAssignment_oneRoundTrip(t *testing.T) {
	t.Parallel()
	e := startCompletionEnv(t)
	ctx := t.Context()
	before, err := e.allotments.GetAllotment(ctx, &seatledgerv1.GetAllotmentRequest{Id: cAllot})
	if err != nil {
		t.Fatal(err)
	}

	requests := e.countGraphRequests(t)
	resp, err := e.assignments.CreateAssignment(ctx, &seatledgerv1.CreateAssignmentRequest{
		Assignee: &seatledgerv1.CreateAssignmentRequest_User{User: "user2@contoso.example"},
		Source:   &seatledgerv1.CreateAssignmentRequest_AllotmentId{AllotmentId: cAllot}})
	if err != nil {
		t.Fatal(err)
	}
	// The completions are held, so every request so far was the answer's.
	if n := requests(); n != 1 {
		t.Errorf("the create sent %d Graph requests before answering, want 1 (the POST)", n)
	}
	id := resp.GetAssignment().GetId()
	// Read-your-writes: listed, and its seat counted.
	list, err := e.assignments.ListAssignments(ctx, &seatledgerv1.ListAssignmentsRequest{Assignee: cUser(2)})
	if err != nil || len(list.GetAssignments()) != 1 || list.GetAssignments()[0].GetId() != id {
		t.Fatalf("ListAssignments(user2) right after the create = %v, %v; want %s", list, err, id)
	}
	created := list.GetAssignments()[0]
	al, err := e.allotments.GetAllotment(ctx, &seatledgerv1.GetAllotmentRequest{Id: cAllot})
	if err != nil {
		t.Fatal(err)
	}
	if al.GetConsumedUnits() != before.GetConsumedUnits()+1 || al.GetAvailableUnits() != before.GetAvailableUnits()-1 {
		t.Errorf("allotment right after the create: %d consumed, %d available; want %d and %d",
			al.GetConsumedUnits(), al.GetAvailableUnits(), before.GetConsumedUnits()+1, before.GetAvailableUnits()-1)
	}
	// The answer shows the allotment with the seat it reports taken, as
	// the GET right after it does.
	if diff := cmp.Diff(al, resp.GetAllotment(), protocmp.Transform()); diff != "" {
		t.Errorf("the create's answer shows the allotment otherwise than a GET right after it (-get +answer):\n%s", diff)
	}

	// A sync before the completion: the assignment is unchanged, its
	// version the one the create opened.
	run, err := e.syncer.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := run.Counts["assignments"]; c.Added != 0 || c.Changed != 0 || c.Removed != 0 {
		t.Errorf("sync before the completion counted %+v assignments; want all unchanged", c)
	}
	if c := run.Counts["allotments"]; c.Changed != 0 {
		t.Errorf("sync before the completion counted %+v allotments; want the estimated counts confirmed", c)
	}
	got, err := e.assignments.GetAssignment(ctx, &seatledgerv1.GetAssignmentRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(created, got, protocmp.Transform()); diff != "" {
		t.Errorf("assignment after the sync differs from the one the create recorded (-create +sync):\n%s", diff)
	}
	synced, err := e.st.GetAssignment(ctx, id, time.Time{})
	if err != nil {
		t.Fatal(err)
	}

	// A second create, completed this time: its read-back settles it in
	// the shape the sync stores, and Close waits for that.
	requests = e.countGraphRequests(t)
	resp, err = e.assignments.CreateAssignment(ctx, &seatledgerv1.CreateAssignmentRequest{
		Assignee: &seatledgerv1.CreateAssignmentRequest_User{User: cUser(3)},
		Source:   &seatledgerv1.CreateAssignmentRequest_AllotmentId{AllotmentId: cAllot}})
	if err != nil {
		t.Fatal(err)
	}
	id3 := resp.GetAssignment().GetId()
	if n := requests(); n != 1 {
		t.Errorf("the second create sent %d Graph requests before answering, want 1", n)
	}
	closed := make(chan error, 1)
	go func() { closed <- e.completions.Close(context.Background()) }()
	e.release()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	// Both completions ran (they were held, so the first one's also ran
	// now, and found its version settled by the sync already): the
	// allotment and the user's assignments, twice.
	if n := requests(); n != 5 {
		t.Errorf("%d Graph requests by the second create and both completions, want 5", n)
	}
	settled, err := e.st.GetAssignment(ctx, id3, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if !settled.ObservedAt.Equal(resp.GetAssignment().GetObserveTime().AsTime()) {
		t.Errorf("assignment observed from %v after its completion, want %v (the create's version)", settled.ObservedAt,
			resp.GetAssignment().GetObserveTime().AsTime())
	}
	// Its raw has the sync's shape: the first assignment's, synced.
	want := bytes.ReplaceAll(synced.Raw, []byte(id), []byte(id3))
	want = bytes.ReplaceAll(want, []byte(cUser(2)), []byte(cUser(3)))
	if diff := sameJSON(want, settled.Raw); diff != "" {
		t.Errorf("raw after the completion differs from the sync's shape (-want +got):\n%s", diff)
	}
	// The next sync finds everything as the writes left it.
	run, err = e.syncer.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"assignments", "allotments"} {
		if c := run.Counts[kind]; c.Added != 0 || c.Changed != 0 || c.Removed != 0 {
			t.Errorf("sync after the completions counted %+v %s; want all unchanged", c, kind)
		}
	}
}

// TestCreateAssignment_groupAndDevice: a device's seat is counted at once
// like a user's; a group's seats are Graph's to count, so its create reads
// the allotment before answering. Neither leaves a version that the next
// sync replaces.
func TestCreateAssignment_groupAndDevice(t *testing.T) {
	t.Parallel()
	e := startCompletionEnv(t)
	ctx := t.Context()
	kiosk, err := e.allotments.GetAllotment(ctx, &seatledgerv1.GetAllotmentRequest{Id: cKioskAl})
	if err != nil {
		t.Fatal(err)
	}
	requests := e.countGraphRequests(t)
	if _, err := e.assignments.CreateAssignment(ctx, &seatledgerv1.CreateAssignmentRequest{
		Assignee: &seatledgerv1.CreateAssignmentRequest_DeviceId{DeviceId: cDevice},
		Source:   &seatledgerv1.CreateAssignmentRequest_AllotmentId{AllotmentId: cKioskAl}}); err != nil {
		t.Fatal(err)
	}
	if n := requests(); n != 1 {
		t.Errorf("the device's create sent %d Graph requests before answering, want 1", n)
	}
	if got, err := e.allotments.GetAllotment(ctx, &seatledgerv1.GetAllotmentRequest{Id: cKioskAl}); err != nil ||
		got.GetConsumedUnits() != kiosk.GetConsumedUnits()+1 {
		t.Errorf("kiosk allotment after the device's create = %v, %v; want %d consumed", got, err, kiosk.GetConsumedUnits()+1)
	}

	requests = e.countGraphRequests(t)
	groupResp, err := e.assignments.CreateAssignment(ctx, &seatledgerv1.CreateAssignmentRequest{
		Assignee: &seatledgerv1.CreateAssignmentRequest_GroupId{GroupId: cGroup},
		Source:   &seatledgerv1.CreateAssignmentRequest_AllotmentId{AllotmentId: cAllot}})
	if err != nil {
		t.Fatal(err)
	}
	if n := requests(); n != 2 {
		t.Errorf("the group's create sent %d Graph requests before answering, want 2 (the POST, then the allotment)", n)
	}
	// user3, the group's member, now holds a seat: Graph's count, read
	// before the answer.
	sim := e.sim.Allotments()
	for _, a := range sim {
		if a.ID != cAllot {
			continue
		}
		got, err := e.allotments.GetAllotment(ctx, &seatledgerv1.GetAllotmentRequest{Id: cAllot})
		if err != nil || got.GetConsumedUnits() != a.ConsumedUnits {
			t.Errorf("allotment after the group's create = %v, %v; want Graph's %d consumed", got, err, a.ConsumedUnits)
		}
		if diff := cmp.Diff(got, groupResp.GetAllotment(), protocmp.Transform()); diff != "" {
			t.Errorf("the group's create answers with the allotment otherwise than a GET right after it (-get +answer):\n%s", diff)
		}
	}
	run, err := e.syncer.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"assignments", "allotments"} {
		if c := run.Counts[kind]; c.Added != 0 || c.Changed != 0 || c.Removed != 0 {
			t.Errorf("sync after the creates counted %+v %s; want all unchanged", c, kind)
		}
	}
}

// TestCompletions_Close: Close waits for pending work, cuts it short when
// its context ends first, and runs work that comes after it at once.
func TestCompletions_Close(t *testing.T) {
	t.Parallel()
	c := NewCompletions()
	c.hold = make(chan struct{})
	ended := make(chan error, 1)
	c.Go(context.Background(), func(ctx context.Context) {
		<-ctx.Done()
		ended <- ctx.Err()
	})
	expired, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Close(expired); !errors.Is(err, context.Canceled) {
		t.Errorf("Close with an ended context = %v, want it to say so", err)
	}
	// Close returned only after the work did, cancelled.
	select {
	case err := <-ended:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("pending work ended with %v, want cancelled", err)
		}
	default:
		t.Error("Close returned before the pending work ended")
	}
	var ran error = errors.New("not run")
	c.Go(context.Background(), func(ctx context.Context) { ran = ctx.Err() })
	if ran != nil {
		t.Errorf("work after Close: %v; want it run, with a live context, before Go returned", ran)
	}
}
