package openapiv2_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/seatledger/seatledger/gen/openapiv2"
	seatledgerv1 "github.com/seatledger/seatledger/gen/seatledger/v1"
)

// httpRulesFile is the grpc_api_configuration the gateway and the OpenAPI
// document are generated from.
const httpRulesFile = "../../proto/seatledger/v1/seatledger_http.yaml"

// contractRoutes is the REST contract HR and finance tools code against,
// written out literally: renaming, removing or adding a route must fail
// this test until the list (and the integrators) are updated on purpose.
var contractRoutes = []string{
	"GET /v1/subscriptions",
	"GET /v1/allotments",
	"GET /v1/allotments/{id}",
	"GET /v1/allotments/{id}/assignments",
	"GET /v1/allotments/{id}/waiting-members",
	"GET /v1/allotments/{id}/history",
	"PUT /v1/allotments/{id}/owner",
	"GET /v1/assignments",
	"GET /v1/assignments/{id}",
	"POST /v1/assignments",
	"PATCH /v1/assignments/{id}",
	"DELETE /v1/assignments/{id}",
	"GET /v1/waiting-members",
	"GET /v1/assignment-errors",
	"GET /v1/users/{user}/license-status",
	"POST /v1/users/{user}:reprocess",
	"GET /v1/chargeback",
	"GET /v1/prices",
	"PUT /v1/prices/{sku_id}",
	"POST /v1/sync:run",
	"GET /v1/sync/runs",
	"GET /v1/audit-events",
}

// apiMethods returns every RPC of package seatledger.v1 registered by the
// generated code, so that a new proto file or RPC is covered without
// editing this test.
func apiMethods(t *testing.T) []protoreflect.MethodDescriptor {
	t.Helper()
	var methods []protoreflect.MethodDescriptor
	protoregistry.GlobalFiles.RangeFilesByPackage("seatledger.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			ms := fd.Services().Get(i).Methods()
			for j := range ms.Len() {
				methods = append(methods, ms.Get(j))
			}
		}
		return true
	})
	// Referencing the package keeps the import (and its registrations)
	// even if nothing else in this file used it.
	if len(methods) == 0 || seatledgerv1.File_seatledger_v1_allotments_proto == nil {
		t.Fatal("no seatledger.v1 services are registered; is gen/seatledger/v1 generated?")
	}
	return methods
}

// ruleSelectors returns the selectors of the HTTP rules file, in order.
func ruleSelectors(t *testing.T) []string {
	t.Helper()
	rules, err := os.ReadFile(httpRulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var selectors []string
	sc := bufio.NewScanner(bytes.NewReader(rules))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		line = strings.TrimPrefix(line, "- ")
		if sel, ok := strings.CutPrefix(line, "selector:"); ok {
			selectors = append(selectors, strings.TrimSpace(sel))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return selectors
}

func TestEveryRPCHasAnHTTPRule(t *testing.T) {
	t.Parallel()
	selectors := ruleSelectors(t)

	known := map[string]bool{}
	for _, m := range apiMethods(t) {
		name := string(m.FullName())
		known[name] = true
		if n := countOf(selectors, name); n != 1 {
			t.Errorf("%s has %d HTTP rules in %s, want exactly 1", name, n, httpRulesFile)
		}
	}
	for _, sel := range selectors {
		if !known[sel] {
			t.Errorf("%s has a rule for %s, which is not an RPC of seatledger.v1", httpRulesFile, sel)
		}
	}
}

func countOf(list []string, s string) int {
	n := 0
	for _, v := range list {
		if v == s {
			n++
		}
	}
	return n
}

func TestSwaggerHasExactlyTheContractRoutes(t *testing.T) {
	t.Parallel()
	var doc struct {
		Swagger string                                `json:"swagger"`
		Info    struct{ Title, Version string }       `json:"info"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openapiv2.JSON, &doc); err != nil {
		t.Fatalf("embedded seatledger.swagger.json is not valid JSON: %v", err)
	}
	if doc.Swagger != "2.0" {
		t.Errorf("swagger = %q, want 2.0", doc.Swagger)
	}
	if doc.Info.Title != "seatledger API" || doc.Info.Version != "v1" {
		t.Errorf("info = %+v, want title %q and version %q (proto/seatledger/v1/seatledger_openapi.yaml)", doc.Info, "seatledger API", "v1")
	}
	var got []string
	for path, ops := range doc.Paths {
		for method := range ops {
			got = append(got, strings.ToUpper(method)+" "+path)
		}
	}
	want := slices.Clone(contractRoutes)
	sort.Strings(got)
	sort.Strings(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("REST routes in seatledger.swagger.json differ from the contract (-want +got):\n%s", diff)
	}
}

// TestOpenAPIDescribesEverything checks that every message, field, enum
// value and operation of seatledger.v1 carries a description: integrators
// read the API from the OpenAPI document, and the proto comments are its
// only source.
func TestOpenAPIDescribesEverything(t *testing.T) {
	t.Parallel()
	type schema struct {
		Title       string            `json:"title"`
		Description string            `json:"description"`
		Enum        []string          `json:"enum"`
		Properties  map[string]schema `json:"properties"`
	}
	var doc struct {
		Paths map[string]map[string]struct {
			Summary     string `json:"summary"`
			Description string `json:"description"`
			Parameters  []struct {
				Name        string `json:"name"`
				In          string `json:"in"`
				Description string `json:"description"`
			} `json:"parameters"`
		} `json:"paths"`
		Definitions map[string]schema `json:"definitions"`
	}
	if err := json.Unmarshal(openapiv2.JSON, &doc); err != nil {
		t.Fatal(err)
	}
	// google.protobuf.Any and google.rpc.Status come from the gateway, not
	// from our protos.
	foreign := map[string]bool{"Any": true, "Status": true}
	for name, def := range doc.Definitions {
		if foreign[name] {
			continue
		}
		if def.Title == "" && def.Description == "" {
			t.Errorf("definition %s has no description", name)
		}
		for prop, p := range def.Properties {
			if p.Title == "" && p.Description == "" {
				t.Errorf("field %s.%s has no description", name, prop)
			}
		}
		for _, v := range def.Enum {
			if !strings.Contains(def.Description, " - "+v+": ") {
				t.Errorf("enum value %s of %s has no description", v, name)
			}
		}
	}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			if op.Summary == "" && op.Description == "" {
				t.Errorf("%s %s has no description", strings.ToUpper(method), path)
			}
			for _, p := range op.Parameters {
				// A body bound with "*" is described by its schema.
				if p.In != "body" && p.Description == "" {
					t.Errorf("%s %s: parameter %s has no description", strings.ToUpper(method), path, p.Name)
				}
			}
		}
	}
}

// recorder is a gRPC server that implements no service: it answers every
// call UNIMPLEMENTED after recording which RPC the gateway called and the
// request it sent, keyed by the test case named in the call's metadata.
type recorder struct {
	mu    gosync.Mutex
	calls map[string]recordedCall
}

type recordedCall struct {
	method string
	req    proto.Message
}

func (r *recorder) handle(_ any, stream grpc.ServerStream) error {
	full, _ := grpc.MethodFromServerStream(stream) // "/pkg.Service/Method"
	name := strings.ReplaceAll(strings.TrimPrefix(full, "/"), "/", ".")
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name))
	if err != nil {
		return status.Errorf(codes.NotFound, "unknown method %s", name)
	}
	md, ok := d.(protoreflect.MethodDescriptor)
	if !ok {
		return status.Errorf(codes.NotFound, "%s is not a method", name)
	}
	req := dynamicpb.NewMessage(md.Input())
	if err := stream.RecvMsg(req); err != nil {
		return err
	}
	meta, _ := metadata.FromIncomingContext(stream.Context())
	for _, tc := range meta.Get("test-case") {
		r.mu.Lock()
		r.calls[tc] = recordedCall{method: name, req: req}
		r.mu.Unlock()
	}
	return status.Error(codes.Unimplemented, "recorded by the test server")
}

func (r *recorder) call(tc string) (recordedCall, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.calls[tc]
	return c, ok
}

// testCaseHeader carries a test case's name to the recorder, so that cases
// can run in parallel against one server.
const testCaseHeader = "X-Test-Case"

// startGateway serves the generated gateway on 127.0.0.1:0 in front of a
// recorder reached over a real gRPC connection, the way cmd/server wires it.
func startGateway(t *testing.T) (*httptest.Server, *recorder) {
	t.Helper()
	rec := &recorder{calls: map[string]recordedCall{}}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.UnknownServiceHandler(rec.handle))
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })

	// The gateway forwards no custom headers by default (grpc-gateway
	// v2.33); pass the test-case header through as metadata.
	mux := runtime.NewServeMux(runtime.WithIncomingHeaderMatcher(func(key string) (string, bool) {
		if http.CanonicalHeaderKey(key) == testCaseHeader {
			return "test-case", true
		}
		return runtime.DefaultHeaderMatcher(key)
	}))
	for _, register := range []func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error{
		seatledgerv1.RegisterSubscriptionServiceHandler,
		seatledgerv1.RegisterAllotmentServiceHandler,
		seatledgerv1.RegisterAssignmentServiceHandler,
		seatledgerv1.RegisterWaitingMemberServiceHandler,
		seatledgerv1.RegisterAssignmentErrorServiceHandler,
		seatledgerv1.RegisterUserServiceHandler,
		seatledgerv1.RegisterChargebackServiceHandler,
		seatledgerv1.RegisterSyncServiceHandler,
		seatledgerv1.RegisterAuditServiceHandler,
	} {
		if err := register(t.Context(), mux, conn); err != nil {
			t.Fatal(err)
		}
	}
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return hs, rec
}

// TestRoutesReachTheirRPC sends one HTTP request per route through the
// generated gateway and checks which RPC it reached and how the path, query
// string and body were bound to the request message.
func TestRoutesReachTheirRPC(t *testing.T) {
	t.Parallel()
	hs, rec := startGateway(t)
	asOf := time.Date(2026, 1, 31, 12, 0, 0, 0, time.UTC)

	tests := []struct {
		name       string
		httpMethod string
		target     string
		body       string
		wantRPC    string
		wantReq    proto.Message
	}{{
		name: "list subscriptions", httpMethod: "GET",
		target:  "/v1/subscriptions?page_size=5&state=SUBSCRIPTION_STATE_WARNING",
		wantRPC: "seatledger.v1.SubscriptionService.ListSubscriptions",
		wantReq: &seatledgerv1.ListSubscriptionsRequest{PageSize: 5, State: seatledgerv1.SubscriptionState_SUBSCRIPTION_STATE_WARNING},
	}, {
		name: "list allotments", httpMethod: "GET",
		target:  "/v1/allotments?pageSize=10&pageToken=tok&skuId=sku-1",
		wantRPC: "seatledger.v1.AllotmentService.ListAllotments",
		wantReq: &seatledgerv1.ListAllotmentsRequest{PageSize: 10, PageToken: "tok", SkuId: "sku-1"},
	}, {
		name: "get allotment", httpMethod: "GET",
		target:  "/v1/allotments/a-1",
		wantRPC: "seatledger.v1.AllotmentService.GetAllotment",
		wantReq: &seatledgerv1.GetAllotmentRequest{Id: "a-1"},
	}, {
		name: "list allotment assignments", httpMethod: "GET",
		target:  "/v1/allotments/a-1/assignments?as_of=2026-01-31T12:00:00Z",
		wantRPC: "seatledger.v1.AllotmentService.ListAllotmentAssignments",
		wantReq: &seatledgerv1.ListAllotmentAssignmentsRequest{Id: "a-1", AsOf: timestamppb.New(asOf)},
	}, {
		name: "list allotment waiting members", httpMethod: "GET",
		target:  "/v1/allotments/a-1/waiting-members?page_size=2",
		wantRPC: "seatledger.v1.AllotmentService.ListAllotmentWaitingMembers",
		wantReq: &seatledgerv1.ListAllotmentWaitingMembersRequest{Id: "a-1", PageSize: 2},
	}, {
		name: "allotment history", httpMethod: "GET",
		target:  "/v1/allotments/a-1/history?from=2026-01-01&to=2026-01-31&granularity=HISTORY_GRANULARITY_RUN",
		wantRPC: "seatledger.v1.AllotmentService.GetAllotmentHistory",
		wantReq: &seatledgerv1.GetAllotmentHistoryRequest{Id: "a-1", From: "2026-01-01", To: "2026-01-31", Granularity: seatledgerv1.HistoryGranularity_HISTORY_GRANULARITY_RUN},
	}, {
		name: "set allotment owner", httpMethod: "PUT",
		target: "/v1/allotments/a-1/owner", body: `{"ownerDepartment": "Finance"}`,
		wantRPC: "seatledger.v1.AllotmentService.SetAllotmentOwner",
		wantReq: &seatledgerv1.SetAllotmentOwnerRequest{Id: "a-1", OwnerDepartment: "Finance"},
	}, {
		name: "list assignments", httpMethod: "GET",
		target:  "/v1/assignments?department=Sales&assignee=ana@contoso.com&assignee_type=ASSIGNEE_TYPE_USER",
		wantRPC: "seatledger.v1.AssignmentService.ListAssignments",
		wantReq: &seatledgerv1.ListAssignmentsRequest{Department: "Sales", Assignee: "ana@contoso.com", AssigneeType: seatledgerv1.AssigneeType_ASSIGNEE_TYPE_USER},
	}, {
		name: "get assignment", httpMethod: "GET",
		target:  "/v1/assignments/x-1",
		wantRPC: "seatledger.v1.AssignmentService.GetAssignment",
		wantReq: &seatledgerv1.GetAssignmentRequest{Id: "x-1"},
	}, {
		name: "create assignment", httpMethod: "POST",
		target:  "/v1/assignments",
		body:    `{"idempotencyKey": "k-1", "user": "ana@contoso.com", "skuId": "sku-1", "disabledServicePlanIds": ["p-1"]}`,
		wantRPC: "seatledger.v1.AssignmentService.CreateAssignment",
		wantReq: &seatledgerv1.CreateAssignmentRequest{
			IdempotencyKey:         "k-1",
			Assignee:               &seatledgerv1.CreateAssignmentRequest_User{User: "ana@contoso.com"},
			Source:                 &seatledgerv1.CreateAssignmentRequest_SkuId{SkuId: "sku-1"},
			DisabledServicePlanIds: []string{"p-1"},
		},
	}, {
		// Without update_mask, the gateway derives it from the body's fields.
		name: "update assignment", httpMethod: "PATCH",
		target: "/v1/assignments/x-1", body: `{"disabledServicePlanIds": ["p-1", "p-2"]}`,
		wantRPC: "seatledger.v1.AssignmentService.UpdateAssignment",
		wantReq: &seatledgerv1.UpdateAssignmentRequest{
			Id:         "x-1",
			Assignment: &seatledgerv1.Assignment{DisabledServicePlanIds: []string{"p-1", "p-2"}},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"disabled_service_plan_ids"}},
		},
	}, {
		name: "delete assignment", httpMethod: "DELETE",
		target:  "/v1/assignments/x-1",
		wantRPC: "seatledger.v1.AssignmentService.DeleteAssignment",
		wantReq: &seatledgerv1.DeleteAssignmentRequest{Id: "x-1"},
	}, {
		name: "list waiting members", httpMethod: "GET",
		target:  "/v1/waiting-members?min_wait_age=86400s&sku_id=sku-1",
		wantRPC: "seatledger.v1.WaitingMemberService.ListWaitingMembers",
		wantReq: &seatledgerv1.ListWaitingMembersRequest{MinWaitAge: durationpb.New(24 * time.Hour), SkuId: "sku-1"},
	}, {
		name: "list assignment errors", httpMethod: "GET",
		target:  "/v1/assignment-errors?code=MissingDependency",
		wantRPC: "seatledger.v1.AssignmentErrorService.ListAssignmentErrors",
		wantReq: &seatledgerv1.ListAssignmentErrorsRequest{Code: "MissingDependency"},
	}, {
		name: "license status", httpMethod: "GET",
		target:  "/v1/users/ana@contoso.com/license-status",
		wantRPC: "seatledger.v1.UserService.GetLicenseStatus",
		wantReq: &seatledgerv1.GetLicenseStatusRequest{User: "ana@contoso.com"},
	}, {
		name: "reprocess user", httpMethod: "POST",
		target:  "/v1/users/ana@contoso.com:reprocess",
		wantRPC: "seatledger.v1.UserService.ReprocessUser",
		wantReq: &seatledgerv1.ReprocessUserRequest{User: "ana@contoso.com"},
	}, {
		name: "chargeback", httpMethod: "GET",
		target:  "/v1/chargeback?from=2026-01-01&to=2026-01-31&group_by=CHARGEBACK_GROUP_BY_SKU&format=CHARGEBACK_FORMAT_FOCUS",
		wantRPC: "seatledger.v1.ChargebackService.GetChargeback",
		wantReq: &seatledgerv1.GetChargebackRequest{
			From: "2026-01-01", To: "2026-01-31",
			GroupBy: seatledgerv1.ChargebackGroupBy_CHARGEBACK_GROUP_BY_SKU,
			Format:  seatledgerv1.ChargebackFormat_CHARGEBACK_FORMAT_FOCUS,
		},
	}, {
		name: "list prices", httpMethod: "GET",
		target:  "/v1/prices?include_history=true",
		wantRPC: "seatledger.v1.ChargebackService.ListPrices",
		wantReq: &seatledgerv1.ListPricesRequest{IncludeHistory: true},
	}, {
		name: "set price", httpMethod: "PUT",
		target:  "/v1/prices/sku-1",
		body:    `{"monthlyUnitPrice": {"currencyCode": "USD", "amount": "57.00"}, "validFrom": "2026-01-01"}`,
		wantRPC: "seatledger.v1.ChargebackService.SetPrice",
		wantReq: &seatledgerv1.SetPriceRequest{
			SkuId:            "sku-1",
			MonthlyUnitPrice: &seatledgerv1.Money{CurrencyCode: "USD", Amount: "57.00"},
			ValidFrom:        "2026-01-01",
		},
	}, {
		name: "run sync", httpMethod: "POST",
		target: "/v1/sync:run", body: `{"force": true}`,
		wantRPC: "seatledger.v1.SyncService.RunSync",
		wantReq: &seatledgerv1.RunSyncRequest{Force: true},
	}, {
		name: "list sync runs", httpMethod: "GET",
		target:  "/v1/sync/runs?page_size=3",
		wantRPC: "seatledger.v1.SyncService.ListSyncRuns",
		wantReq: &seatledgerv1.ListSyncRunsRequest{PageSize: 3},
	}, {
		name: "list audit events", httpMethod: "GET",
		target:  "/v1/audit-events?actor=admin&start_time=2026-01-31T12:00:00Z",
		wantRPC: "seatledger.v1.AuditService.ListAuditEvents",
		wantReq: &seatledgerv1.ListAuditEventsRequest{Actor: "admin", StartTime: timestamppb.New(asOf)},
	}}

	t.Run("cases", func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				req, err := http.NewRequestWithContext(t.Context(), tt.httpMethod, hs.URL+tt.target, strings.NewReader(tt.body))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set(testCaseHeader, tt.name)
				resp, err := hs.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusNotImplemented {
					t.Errorf("%s %s: HTTP status %d, want %d (UNIMPLEMENTED from the RPC)", tt.httpMethod, tt.target, resp.StatusCode, http.StatusNotImplemented)
				}
				// The recorder stored the call before answering, so it is
				// there once the response has arrived.
				call, ok := rec.call(tt.name)
				if !ok {
					t.Fatalf("%s %s reached no RPC", tt.httpMethod, tt.target)
				}
				if call.method != tt.wantRPC {
					t.Errorf("%s %s reached %s, want %s", tt.httpMethod, tt.target, call.method, tt.wantRPC)
					return
				}
				got := tt.wantReq.ProtoReflect().New().Interface()
				b, err := proto.Marshal(call.req)
				if err != nil {
					t.Fatal(err)
				}
				if err := proto.Unmarshal(b, got); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tt.wantReq, got, protocmp.Transform()); diff != "" {
					t.Errorf("%s %s: request mismatch (-want +got):\n%s", tt.httpMethod, tt.target, diff)
				}
			})
		}
	})

	// Every RPC must be exercised above, so a new RPC cannot go untested.
	tested := map[string]bool{}
	for _, tt := range tests {
		tested[tt.wantRPC] = true
	}
	for _, m := range apiMethods(t) {
		if !tested[string(m.FullName())] {
			t.Errorf("no case in TestRoutesReachTheirRPC for %s", m.FullName())
		}
	}
}
