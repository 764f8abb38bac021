package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	seatledgerv1 "github.com/seatledger/seatledger/gen/seatledger/v1"
	"github.com/seatledger/seatledger/internal/graphsim"
	"github.com/seatledger/seatledger/internal/store/storetest"
)

func TestMain(m *testing.M) {
	if os.Getenv(asServerEnv) == "1" {
		main() // a child process of a multi-process test: be the server
		return
	}
	storetest.Main(m)
}

// syncBuffer is an io.Writer safe for the concurrent writes of a running
// server's logger.
type syncBuffer struct {
	mu  gosync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// service is a seatledger started in-process by startService.
type service struct {
	grpcAddr string
	httpURL  string
	logs     *syncBuffer
	conn     *grpc.ClientConn // presents token, if any
	token    string
}

// bearer is a gRPC credential that sends a fixed bearer token, over a
// plaintext loopback connection.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }

// dial opens a gRPC connection to svc that presents token ("" for none).
func (s *service) dial(t *testing.T, token string) *grpc.ClientConn {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(token)))
	}
	conn, err := grpc.NewClient(s.grpcAddr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// startService runs the whole server in-process with the given
// environment on loopback ports chosen by the kernel, and stops it when the
// test ends, failing the test if the shutdown is not clean.
func startService(t *testing.T, environ map[string]string, token string) *service {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	addrs := make(chan [2]net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-sync-interval", "1h"},
			env(environ), logs, func(g, h net.Addr) { addrs <- [2]net.Addr{g, h} })
	}()
	var svc *service
	select {
	case a := <-addrs:
		svc = &service{grpcAddr: a[0].String(), httpURL: "http://" + a[1].String(), logs: logs, token: token}
	case err := <-done:
		cancel()
		t.Fatalf("run() returned before serving: %v\nlogs:\n%s", err, logs)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run() after shutdown = %v, want nil\nlogs:\n%s", err, logs)
			}
		case <-time.After(60 * time.Second):
			t.Errorf("run() did not return within 60s of cancellation\nlogs:\n%s", logs)
		}
	})
	svc.conn = svc.dial(t, token) // registered after, so closed before the server stops
	return svc
}

// startTenant starts a Graph simulator with opts on loopback for the
// test, and returns it with the environment that points a server at it:
// Graph through azidentity and the simulator's authority, and access
// control by OIDC tokens of that same authority (see mintToken).
func startTenant(t *testing.T, opts graphsim.Options) (*graphsim.Server, map[string]string) {
	t.Helper()
	sim, err := graphsim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	info, err := sim.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim, map[string]string{
		"SEATLEDGER_OIDC_ISSUER":   info.IssuerURL,
		"SEATLEDGER_OIDC_AUDIENCE": "api://seatledger",
		"DATABASE_URL":             storetest.NewDSN(t),
		"SEATLEDGER_GRAPH_URL":     info.GraphURL,
		"AZURE_TENANT_ID":          info.TenantID,
		"AZURE_CLIENT_ID":          info.ClientID,
		"AZURE_CLIENT_SECRET":      info.ClientSecret,
		"AZURE_AUTHORITY_HOST":     info.AuthorityURL,
		"SSL_CERT_FILE":            info.CAFile,
	}
}

// mintToken returns a bearer token for seatledger from sim's authority,
// naming caller and holding roles.
func mintToken(t *testing.T, sim *graphsim.Server, caller string, roles ...string) string {
	t.Helper()
	tok, err := sim.MintCallerToken(graphsim.CallerToken{Audience: "api://seatledger", Caller: caller, Roles: roles})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// runSync triggers a sync through the API and waits for it, as an admin
// would with POST /v1/sync:run.
func (s *service) runSync(t *testing.T) *seatledgerv1.SyncRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	run, err := seatledgerv1.NewSyncServiceClient(s.conn).RunSync(ctx, &seatledgerv1.RunSyncRequest{})
	if err != nil {
		t.Fatalf("RunSync() error = %v\nlogs:\n%s", err, s.logs)
	}
	if run.GetOutcome() != seatledgerv1.SyncOutcome_SYNC_OUTCOME_SUCCEEDED {
		t.Fatalf("RunSync() outcome = %v (%s), want SUCCEEDED", run.GetOutcome(), run.GetError())
	}
	return run
}

// get fetches path from the gateway with the service's token and returns
// the status and body.
func (s *service) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	return s.getAs(t, s.token, path)
}

// getAs is get with the given token ("" for none).
func (s *service) getAs(t *testing.T, token, path string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.httpURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, body
}

// wantAllotments is what the API must show for the simulator's allotments,
// derived here independently of the server's converters: with their
// waiting members counted, and each subscription with every allotment it
// backs.
func wantAllotments(tenant *graphsim.Server) []*seatledgerv1.Allotment {
	sim := tenant.Allotments()
	waiting := map[string]int32{}
	for _, w := range tenant.WaitingMembers() {
		waiting[w.AllotmentID]++
	}
	backs := map[string][]graphsim.AllotmentState{}
	for _, a := range sim {
		for _, s := range a.Subscriptions {
			backs[s.SubscriptionID] = append(backs[s.SubscriptionID], a)
		}
	}
	types := func(flags []string) []seatledgerv1.AssigneeType {
		var out []seatledgerv1.AssigneeType
		for _, f := range flags {
			switch f {
			case "user":
				out = append(out, seatledgerv1.AssigneeType_ASSIGNEE_TYPE_USER)
			case "group":
				out = append(out, seatledgerv1.AssigneeType_ASSIGNEE_TYPE_GROUP)
			case "device":
				out = append(out, seatledgerv1.AssigneeType_ASSIGNEE_TYPE_DEVICE)
			}
		}
		return out
	}
	states := map[string]seatledgerv1.SubscriptionState{
		"active": seatledgerv1.SubscriptionState_SUBSCRIPTION_STATE_ACTIVE, "warning": seatledgerv1.SubscriptionState_SUBSCRIPTION_STATE_WARNING,
		"suspended": seatledgerv1.SubscriptionState_SUBSCRIPTION_STATE_SUSPENDED, "lockedOut": seatledgerv1.SubscriptionState_SUBSCRIPTION_STATE_LOCKED_OUT,
		"deleted": seatledgerv1.SubscriptionState_SUBSCRIPTION_STATE_DELETED,
	}
	var out []*seatledgerv1.Allotment
	for _, a := range sim {
		w := &seatledgerv1.Allotment{
			Name: "allotments/" + a.ID, Id: a.ID, SkuId: a.SKUID, SkuPartNumber: a.SKUPartNumber,
			AllottedUnits: a.AllottedUnits, ConsumedUnits: a.ConsumedUnits,
			AvailableUnits: max(a.AllottedUnits-a.ConsumedUnits, 0),
			AssignableTo:   types(a.AssignableTo),
			WaitingMembers: waiting[a.ID],
		}
		for _, p := range a.Services {
			w.Services = append(w.Services, &seatledgerv1.Service{PlanId: p.ID, PlanName: p.Name, AssignableTo: types(p.AssignableTo)})
		}
		for _, s := range a.Subscriptions {
			sub := &seatledgerv1.Subscription{SubscriptionId: s.SubscriptionID, State: states[s.State],
				StartDate: s.StartDate, NextLifecycleDate: s.NextLifecycleDate, Name: "subscriptions/" + s.SubscriptionID}
			others := slices.SortedFunc(slices.Values(backs[s.SubscriptionID]), func(x, y graphsim.AllotmentState) int {
				return strings.Compare(x.ID, y.ID)
			})
			for _, o := range others {
				sub.AllotmentIds = append(sub.AllotmentIds, o.ID)
				sub.SkuIds = append(sub.SkuIds, o.SKUID)
				sub.SkuPartNumbers = append(sub.SkuPartNumbers, o.SKUPartNumber)
			}
			if slices.Contains(s.Tags, "trial") {
				sub.Tags = []seatledgerv1.SubscriptionTag{seatledgerv1.SubscriptionTag_SUBSCRIPTION_TAG_TRIAL}
			}
			w.Subscriptions = append(w.Subscriptions, sub)
		}
		out = append(out, w)
	}
	slices.SortFunc(out, func(a, b *seatledgerv1.Allotment) int { return strings.Compare(a.GetId(), b.GetId()) })
	return out
}

// allotmentDiff compares allotments, ignoring when the mirror first saw
// them (a server-side observation time).
func allotmentDiff(want, got any) string {
	return cmp.Diff(want, got, protocmp.Transform(),
		protocmp.IgnoreFields(&seatledgerv1.Allotment{}, "observe_time"),
		protocmp.IgnoreFields(&seatledgerv1.Subscription{}, "observe_time"))
}

// listAllAllotments pages through ListAllotments over gRPC.
func listAllAllotments(t *testing.T, conn *grpc.ClientConn, pageSize int32) []*seatledgerv1.Allotment {
	t.Helper()
	client := seatledgerv1.NewAllotmentServiceClient(conn)
	var all []*seatledgerv1.Allotment
	token := ""
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("ListAllotments: more than 100 pages; the page token does not advance")
		}
		resp, err := client.ListAllotments(context.Background(), &seatledgerv1.ListAllotmentsRequest{PageSize: pageSize, PageToken: token})
		if err != nil {
			t.Fatalf("ListAllotments() error = %v", err)
		}
		if len(resp.GetAllotments()) > int(pageSize) {
			t.Fatalf("ListAllotments(page_size=%d) returned %d allotments", pageSize, len(resp.GetAllotments()))
		}
		all = append(all, resp.GetAllotments()...)
		if token = resp.GetNextPageToken(); token == "" {
			return all
		}
	}
}

// TestRun_MirrorsConfiguredTenant runs the server the way an operator
// points it at a tenant, with the variables graphsim prints, and checks
// that the tenant's allotments come out of gRPC and REST as the simulator
// holds them.
func TestRun_MirrorsConfiguredTenant(t *testing.T) {
	t.Parallel()
	sim, environ := startTenant(t, graphsim.Options{PageSize: 2})
	mint := func(roles ...string) string { return mintToken(t, sim, "e2e-"+strings.Join(roles, "-"), roles...) }
	svc := startService(t, environ, mint("admin"))
	run := svc.runSync(t)
	want := wantAllotments(sim)
	if len(want) < 3 {
		t.Fatalf("the demo tenant has %d allotments; this test needs several pages", len(want))
	}
	// The server's own first sync may have run before this one, so the
	// allotments are either added or unchanged, but all of them are seen.
	var seen int64
	for _, c := range run.GetEntityCounts() {
		if c.GetEntity() == "allotments" {
			seen = c.GetAdded() + c.GetChanged() + c.GetUnchanged()
			if c.GetRemoved() != 0 {
				t.Errorf("sync run removed %d allotments, want 0", c.GetRemoved())
			}
		}
	}
	if seen != int64(len(want)) {
		t.Errorf("sync run saw %d allotments, want %d (%v)", seen, len(want), run)
	}
	if run.GetGraphRequests() < int64((len(want)+1)/2) {
		t.Errorf("sync run made %d Graph requests; paging by 2 over %d allotments needs at least %d", run.GetGraphRequests(), len(want), (len(want)+1)/2)
	}

	t.Run("gRPC lists every allotment across pages", func(t *testing.T) {
		got := listAllAllotments(t, svc.conn, 2)
		if diff := allotmentDiff(want, got); diff != "" {
			t.Errorf("ListAllotments mismatch (-want +got):\n%s", diff)
		}
		var waiting int32
		for _, a := range got {
			waiting += a.GetWaitingMembers()
			for _, s := range a.GetSubscriptions() {
				if s.GetObserveTime() == nil {
					t.Errorf("allotment %s: subscription %s has no observe_time", a.GetId(), s.GetSubscriptionId())
				}
			}
		}
		if waiting == 0 {
			t.Error("no allotment of the demo tenant has waiting members; this test needs some")
		}
	})
	t.Run("gRPC gets one allotment", func(t *testing.T) {
		got, err := seatledgerv1.NewAllotmentServiceClient(svc.conn).GetAllotment(context.Background(), &seatledgerv1.GetAllotmentRequest{Id: want[0].GetId()})
		if err != nil {
			t.Fatal(err)
		}
		if diff := allotmentDiff(want[0], got); diff != "" {
			t.Errorf("GetAllotment mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("REST lists and gets allotments", func(t *testing.T) {
		code, body := svc.get(t, "/v1/allotments?pageSize=1000")
		if code != http.StatusOK {
			t.Fatalf("GET /v1/allotments = %d %s", code, body)
		}
		var list seatledgerv1.ListAllotmentsResponse
		if err := protojson.Unmarshal(body, &list); err != nil {
			t.Fatalf("decode %s: %v", body, err)
		}
		if diff := allotmentDiff(want, list.GetAllotments()); diff != "" {
			t.Errorf("GET /v1/allotments mismatch (-want +got):\n%s", diff)
		}
		code, body = svc.get(t, "/v1/allotments/"+want[1].GetId())
		var one seatledgerv1.Allotment
		if err := protojson.Unmarshal(body, &one); code != http.StatusOK || err != nil {
			t.Fatalf("GET /v1/allotments/{id} = %d %s (%v)", code, body, err)
		}
		if diff := allotmentDiff(want[1], &one); diff != "" {
			t.Errorf("GET /v1/allotments/{id} mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("bad input gets clear errors", func(t *testing.T) {
		tests := []struct {
			path     string
			wantHTTP int
			wantCode codes.Code
			wantMsg  string
		}{
			{"/v1/allotments/00000000-0000-0000-0000-000000000000", http.StatusNotFound, codes.NotFound, "in the mirror"},
			{"/v1/allotments?pageToken=not-a-token", http.StatusBadRequest, codes.InvalidArgument, "page_token"},
			{"/v1/allotments?pageSize=-1", http.StatusBadRequest, codes.InvalidArgument, "page_size"},
			{"/v1/allotments?skuId=ENTERPRISEPACK", http.StatusBadRequest, codes.InvalidArgument, "sku_id"},
			{"/v1/users/someone@contoso.example/license-status", http.StatusNotFound, codes.NotFound, "in the mirror"},
			{"/v1/assignments?asOf=yesterday", http.StatusBadRequest, codes.InvalidArgument, ""},
			{"/v1/assignments?skuId=not-a-guid", http.StatusBadRequest, codes.InvalidArgument, "sku_id"},
			{"/v1/allotments/" + want[0].GetId() + "/history?from=2026-13-01", http.StatusBadRequest, codes.InvalidArgument, "from"},
			{"/v1/allotments/no-such-allotment/assignments", http.StatusNotFound, codes.NotFound, "in the mirror"},
		}
		for _, tt := range tests {
			code, body := svc.get(t, tt.path)
			var st struct {
				Code    codes.Code `json:"code"`
				Message string     `json:"message"`
			}
			if err := json.Unmarshal(body, &st); err != nil {
				t.Errorf("GET %s: body %s is not a status: %v", tt.path, body, err)
				continue
			}
			if code != tt.wantHTTP || st.Code != tt.wantCode || !strings.Contains(st.Message, tt.wantMsg) {
				t.Errorf("GET %s = %d {code %v, %q}; want %d, %v, a message naming %q", tt.path, code, st.Code, st.Message, tt.wantHTTP, tt.wantCode, tt.wantMsg)
			}
		}
		_, err := seatledgerv1.NewAllotmentServiceClient(svc.conn).GetAllotment(context.Background(), &seatledgerv1.GetAllotmentRequest{Id: "no-such-allotment"})
		if status.Code(err) != codes.NotFound {
			t.Errorf("GetAllotment(unknown) error = %v, want NOT_FOUND", err)
		}
		_, err = seatledgerv1.NewAllotmentServiceClient(svc.conn).ListAllotments(context.Background(), &seatledgerv1.ListAllotmentsRequest{PageToken: "%%%"})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("ListAllotments(bad token) error = %v, want INVALID_ARGUMENT", err)
		}
	})
	t.Run("REST serves every mirrored collection", func(t *testing.T) {
		for _, c := range []struct {
			path, field string
			want        int
		}{
			{"/v1/assignments?pageSize=1000", "assignments", len(sim.Assignments())},
			{"/v1/waiting-members?pageSize=1000", "waitingMembers", len(sim.WaitingMembers())},
			{"/v1/assignment-errors?pageSize=1000", "assignmentErrors", len(sim.AssignmentErrors())},
			{"/v1/allotments/" + want[0].GetId() + "/history?granularity=HISTORY_GRANULARITY_RUN", "points", 1},
		} {
			code, body := svc.get(t, c.path)
			var got map[string]json.RawMessage
			if err := json.Unmarshal(body, &got); code != http.StatusOK || err != nil {
				t.Errorf("GET %s = %d %s", c.path, code, body)
				continue
			}
			var items []json.RawMessage
			if err := json.Unmarshal(got[c.field], &items); err != nil {
				t.Errorf("GET %s: %q is not a list: %s", c.path, c.field, body)
			}
			// History has one point per run (at least this test's); the
			// collections must match the simulator exactly.
			if c.want == 0 || len(items) < c.want || c.field != "points" && len(items) != c.want {
				t.Errorf("GET %s lists %d %s, want %d (the simulator's)", c.path, len(items), c.field, c.want)
			}
		}
		// What is joined from the allotment and the user is filled, not
		// sent as empty strings.
		_, body := svc.get(t, "/v1/waiting-members?pageSize=1000")
		var waiting seatledgerv1.ListWaitingMembersResponse
		if err := protojson.Unmarshal(body, &waiting); err != nil {
			t.Fatalf("decode %s: %v", body, err)
		}
		for _, w := range waiting.GetWaitingMembers() {
			if w.GetSkuPartNumber() == "" || w.GetMember().GetDisplayName() == "" {
				t.Errorf("waiting member %s: skuPartNumber %q, member displayName %q; want both", w.GetId(), w.GetSkuPartNumber(), w.GetMember().GetDisplayName())
			}
			// The resource name is the documented one (resources.proto).
			if want := "waiting-members/" + w.GetId(); w.GetName() != want {
				t.Errorf("waiting member %s: name %q, want %q", w.GetId(), w.GetName(), want)
			}
		}
		_, body = svc.get(t, "/v1/assignment-errors?pageSize=1000")
		var errs seatledgerv1.ListAssignmentErrorsResponse
		if err := protojson.Unmarshal(body, &errs); err != nil {
			t.Fatalf("decode %s: %v", body, err)
		}
		for _, e := range errs.GetAssignmentErrors() {
			if e.GetSkuPartNumber() == "" || e.GetUser().GetDisplayName() == "" {
				t.Errorf("assignment error %s: skuPartNumber %q, user displayName %q; want both", e.GetId(), e.GetSkuPartNumber(), e.GetUser().GetDisplayName())
			}
			if want := "assignment-errors/" + e.GetId(); e.GetName() != want {
				t.Errorf("assignment error %s: name %q, want %q", e.GetId(), e.GetName(), want)
			}
		}
		code, body := svc.get(t, "/v1/subscriptions")
		if code != http.StatusOK || !strings.Contains(string(body), want[0].GetSubscriptions()[0].GetSubscriptionId()) {
			t.Errorf("GET /v1/subscriptions = %d %s; want the allotments' subscriptions", code, body)
		}
	})
	t.Run("health, readiness and OpenAPI", func(t *testing.T) {
		for _, path := range []string{"/healthz", "/readyz"} {
			if code, body := svc.get(t, path); code != http.StatusOK {
				t.Errorf("GET %s = %d %s, want 200", path, code, body)
			}
		}
		code, body := svc.get(t, "/openapi.json")
		var doc struct {
			Paths map[string]any `json:"paths"`
		}
		if err := json.Unmarshal(body, &doc); code != http.StatusOK || err != nil || doc.Paths["/v1/allotments/{id}"] == nil {
			t.Errorf("GET /openapi.json = %d, %d paths, err %v; want the v1 document", code, len(doc.Paths), err)
		}
		code, body = svc.getAs(t, "", "/metrics")
		if code != http.StatusOK || !regexp.MustCompile(`(?m)^seatledger_sync_runs_total\{outcome="succeeded"\} [1-9]`).Match(body) ||
			!regexp.MustCompile(`(?m)^seatledger_graph_requests_total [1-9]`).Match(body) ||
			!regexp.MustCompile(`(?m)^seatledger_read_cache_live 1$`).Match(body) ||
			!regexp.MustCompile(`(?m)^seatledger_read_cache_misses_total [1-9]`).Match(body) {
			t.Errorf("GET /metrics = %d:\n%s\nwant the succeeded runs and Graph requests counted, the read cache live and consulted", code, body)
		}
		resp, err := healthpb.NewHealthClient(svc.conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("grpc health = %v, %v; want SERVING", resp, err)
		}
	})
	t.Run("reflection lists the seatledger services", func(t *testing.T) {
		stream, err := reflectionpb.NewServerReflectionClient(svc.conn).ServerReflectionInfo(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range resp.GetListServicesResponse().GetService() {
			names = append(names, s.GetName())
		}
		for _, want := range []string{"seatledger.v1.AllotmentService", "seatledger.v1.SyncService", "seatledger.v1.ChargebackService", "grpc.health.v1.Health"} {
			if !slices.Contains(names, want) {
				t.Errorf("reflection lists %v; missing %s", names, want)
			}
		}
		_ = stream.CloseSend()
	})
	t.Run("sync runs are listed", func(t *testing.T) {
		resp, err := seatledgerv1.NewSyncServiceClient(svc.conn).ListSyncRuns(context.Background(), &seatledgerv1.ListSyncRunsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(resp.GetSyncRuns(), func(r *seatledgerv1.SyncRun) bool { return proto.Equal(r, run) }) {
			t.Errorf("ListSyncRuns() = %v; want it to contain the run RunSync returned (%v)", resp.GetSyncRuns(), run)
		}
	})
	t.Run("callers need a token with the right role", func(t *testing.T) {
		if code, body := svc.getAs(t, "", "/v1/allotments"); code != http.StatusUnauthorized {
			t.Errorf("GET /v1/allotments without a token = %d %s, want 401", code, body)
		}
		if code, body := svc.getAs(t, mint("finance"), "/v1/allotments"); code != http.StatusForbidden {
			t.Errorf("GET /v1/allotments as finance = %d %s, want 403", code, body)
		}
		if code, body := svc.getAs(t, mint("reader"), "/v1/allotments"); code != http.StatusOK {
			t.Errorf("GET /v1/allotments as reader = %d %s, want 200", code, body)
		}
		if code, body := svc.getAs(t, "", "/healthz"); code != http.StatusOK {
			t.Errorf("GET /healthz without a token = %d %s, want 200", code, body)
		}
		_, err := seatledgerv1.NewSyncServiceClient(svc.dial(t, mint("reader"))).RunSync(context.Background(), &seatledgerv1.RunSyncRequest{})
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("RunSync as reader: %v, want PERMISSION_DENIED", err)
		}
		_, err = seatledgerv1.NewAllotmentServiceClient(svc.dial(t, "")).ListAllotments(context.Background(), &seatledgerv1.ListAllotmentsRequest{})
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("ListAllotments without a token: %v, want UNAUTHENTICATED", err)
		}
		resp, err := healthpb.NewHealthClient(svc.dial(t, "")).Check(context.Background(), &healthpb.HealthCheckRequest{})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("grpc health without a token = %v, %v; want SERVING", resp, err)
		}
	})
	t.Run("logs hold no secrets", func(t *testing.T) {
		logs := svc.logs.String()
		for _, secret := range []string{environ["AZURE_CLIENT_SECRET"], "Bearer ", "eyJ", svc.token} {
			if strings.Contains(logs, secret) {
				t.Errorf("logs contain %q", secret)
			}
		}
	})
}

// TestRun_ZeroConfiguration is the README's first command: no settings at
// all gives an embedded PostgreSQL and the built-in simulator's demo tenant.
func TestRun_ZeroConfiguration(t *testing.T) {
	t.Parallel()
	// The data directory's parent must be searchable by the postgres user
	// when tests run as root, so not t.TempDir (whose parent is 0700).
	dir, err := os.MkdirTemp("", "seatledger-zero-config-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })

	svc := startService(t, map[string]string{"SEATLEDGER_DATA_DIR": dir}, "")
	if !strings.Contains(svc.logs.String(), "built-in Graph simulator") {
		t.Errorf("the log does not say that the built-in simulator is used:\n%s", svc.logs)
	}
	// The demo enforces access control with a token it logs and writes
	// to its data directory.
	if code, _ := svc.get(t, "/v1/allotments"); code != http.StatusUnauthorized {
		t.Errorf("GET /v1/allotments without the demo token = %d, want 401", code)
	}
	tok, err := os.ReadFile(filepath.Join(dir, "demo-token"))
	if err != nil {
		t.Fatalf("the demo token file: %v", err)
	}
	svc.token = strings.TrimSpace(string(tok))
	if !strings.Contains(svc.logs.String(), svc.token) {
		t.Error("the start-up log does not print the demo token")
	}
	svc.conn = svc.dial(t, svc.token)
	svc.runSync(t)
	demo, err := graphsim.New(graphsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := allotmentDiff(wantAllotments(demo), listAllAllotments(t, svc.conn, 100)); diff != "" {
		t.Errorf("zero-config allotments differ from the demo tenant (-want +got):\n%s", diff)
	}
	if code, body := svc.get(t, "/readyz"); code != http.StatusOK {
		t.Errorf("GET /readyz = %d %s, want 200 after the first sync", code, body)
	}
}

// TestRun_RefusesUnreachableDatabase checks that a wrong DATABASE_URL stops
// the start-up with a clear message that does not leak the password.
func TestRun_RefusesUnreachableDatabase(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	var logs syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = run(ctx, nil, env(map[string]string{
		"DATABASE_URL": fmt.Sprintf("postgres://seatledger:hunter2secret@%s/seatledger?sslmode=disable&connect_timeout=5", addr),
	}), &logs, func(net.Addr, net.Addr) { t.Error("the server started serving without a database") })
	if err == nil {
		t.Fatal("run() with an unreachable database = nil, want an error")
	}
	if msg := err.Error(); !strings.Contains(msg, "connect to postgres") || strings.Contains(msg, "hunter2secret") {
		t.Errorf("run() error = %q; want a message saying Postgres is unreachable, without the password", msg)
	}
	if strings.Contains(logs.String(), "hunter2secret") {
		t.Errorf("logs contain the database password:\n%s", logs.String())
	}
}

// TestRun_MigrateSubcommand runs `server migrate status`, `down` and `up`
// against a fresh database.
func TestRun_MigrateSubcommand(t *testing.T) {
	t.Parallel()
	environ := env(map[string]string{"DATABASE_URL": storetest.NewDSN(t)})
	ctx := context.Background()
	var out syncBuffer
	if err := run(ctx, []string{"migrate", "status"}, environ, &out, nil); err != nil {
		t.Fatalf("migrate status: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "00001") {
		t.Errorf("migrate status printed no migration:\n%s", out.String())
	}
	for _, verb := range []string{"down", "up"} {
		if err := run(ctx, []string{"migrate", verb}, environ, io.Discard, nil); err != nil {
			t.Errorf("migrate %s: %v", verb, err)
		}
	}
	err := run(ctx, []string{"migrate", "sideways"}, environ, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "sideways") {
		t.Errorf("migrate sideways = %v, want an error naming the unknown command", err)
	}
	if !errors.Is(run(ctx, []string{"-help"}, environ, io.Discard, nil), flag.ErrHelp) {
		t.Error("-help should return flag.ErrHelp so that main exits 0")
	}
}
