package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	seatledgerv1 "github.com/seatledger/seatledger/gen/seatledger/v1"
	"github.com/seatledger/seatledger/internal/api"
	"github.com/seatledger/seatledger/internal/auth"
	"github.com/seatledger/seatledger/internal/graphsim"
)

// TestRun_RoleMatrix walks every RPC of the v1 API with no token and with a
// token of each role, over gRPC and over REST, and checks that exactly the
// roles api.Policy names get past access control (whatever the handler
// then answers to an empty request).
func TestRun_RoleMatrix(t *testing.T) {
	t.Parallel()
	sim, environ := startTenant(t, graphsim.Options{})
	tokens := map[auth.Role]string{}
	for _, r := range auth.Roles {
		tokens[r] = mintToken(t, sim, "matrix-"+string(r), string(r))
	}
	svc := startService(t, environ, "")

	// Every RPC of every seatledger.v1 service, from the descriptors.
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
	if len(methods) < 20 {
		t.Fatalf("found %d RPCs; the descriptors did not load", len(methods))
	}

	t.Run("gRPC", func(t *testing.T) {
		conns := map[string]*grpc.ClientConn{"": svc.dial(t, "")}
		for _, tok := range tokens {
			conns[tok] = svc.dial(t, tok)
		}
		for _, m := range methods {
			full := "/" + string(m.Parent().FullName()) + "/" + string(m.Name())
			call := func(token string) error {
				conn := conns[token]
				req := dynamicpb.NewMessage(m.Input())
				resp := dynamicpb.NewMessage(m.Output())
				return conn.Invoke(context.Background(), full, req, resp)
			}
			if code := status.Code(call("")); code != codes.Unauthenticated {
				t.Errorf("%s without a token: %v, want UNAUTHENTICATED", full, code)
			}
			for _, r := range auth.Roles {
				allowed := slices.Contains(api.Policy[full], r)
				code := status.Code(call(tokens[r]))
				switch {
				case allowed && (code == codes.PermissionDenied || code == codes.Unauthenticated):
					t.Errorf("%s as %s: %v, want it let through", full, r, code)
				case !allowed && code != codes.PermissionDenied:
					t.Errorf("%s as %s: %v, want PERMISSION_DENIED", full, r, code)
				}
			}
		}
	})

	t.Run("REST", func(t *testing.T) {
		doc, err := os.ReadFile("../../gen/openapiv2/seatledger.swagger.json")
		if err != nil {
			t.Fatal(err)
		}
		var spec struct {
			Paths map[string]map[string]struct {
				OperationID string `json:"operationId"`
			} `json:"paths"`
		}
		if err := json.Unmarshal(doc, &spec); err != nil {
			t.Fatal(err)
		}
		fill := strings.NewReplacer("{id}", "00000000-0000-0000-0000-000000000000",
			"{user}", "nobody@contoso.example", "{sku_id}", "00000000-0000-0000-0000-000000000000")
		routes := 0
		for path, ops := range spec.Paths {
			for verb, op := range ops {
				routes++
				full := "/seatledger.v1." + strings.Replace(op.OperationID, "_", "/", 1)
				if _, ok := api.Policy[full]; !ok {
					t.Errorf("%s %s (%s) has no policy entry", verb, path, full)
					continue
				}
				call := func(token string) int {
					body := strings.NewReader("")
					if verb != "get" && verb != "delete" {
						body = strings.NewReader("{}")
					}
					req, err := http.NewRequest(strings.ToUpper(verb), svc.httpURL+fill.Replace(path), body)
					if err != nil {
						t.Fatal(err)
					}
					if token != "" {
						req.Header.Set("Authorization", "Bearer "+token)
					}
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					return resp.StatusCode
				}
				if code := call(""); code != http.StatusUnauthorized {
					t.Errorf("%s %s without a token: %d, want 401", verb, path, code)
				}
				for _, r := range auth.Roles {
					allowed := slices.Contains(api.Policy[full], r)
					code := call(tokens[r])
					switch {
					case allowed && (code == http.StatusForbidden || code == http.StatusUnauthorized):
						t.Errorf("%s %s as %s: %d, want it let through", verb, path, r, code)
					case !allowed && code != http.StatusForbidden:
						t.Errorf("%s %s as %s: %d, want 403", verb, path, r, code)
					}
				}
			}
		}
		if routes != len(methods) {
			t.Errorf("the OpenAPI document has %d routes for %d RPCs", routes, len(methods))
		}
	})

	// Every refused write attempt is in the audit log, with the caller
	// named when the token was valid.
	t.Run("refused writes are audited", func(t *testing.T) {
		resp, err := seatledgerv1.NewAuditServiceClient(svc.dial(t, tokens[auth.RoleAdmin])).ListAuditEvents(context.Background(),
			&seatledgerv1.ListAuditEventsRequest{PageSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		const create = "seatledger.v1.AssignmentService.CreateAssignment"
		denied, unauthenticated := 0, 0
		for _, e := range resp.GetAuditEvents() {
			// One spelling everywhere: the canonical code names, as the
			// handlers' own events and audit.proto spell them.
			if s := e.GetStatus(); s != strings.ToUpper(s) {
				t.Errorf("audit event %d has status %q, want a canonical code name (e.g. PERMISSION_DENIED)", e.GetId(), s)
			}
			if e.GetResource() == "" {
				t.Errorf("audit event %d (%s, %s) names no resource", e.GetId(), e.GetMethod(), e.GetStatus())
			}
			if e.GetActor() != "anonymous" && !strings.HasPrefix(e.GetActorName(), "matrix-") {
				t.Errorf("audit event %d: actor %q has actor_name %q, want the token's name", e.GetId(), e.GetActor(), e.GetActorName())
			}
			if e.GetMethod() != create {
				continue
			}
			switch e.GetStatus() {
			case "PERMISSION_DENIED":
				denied++
				if e.GetActor() == "" || e.GetActor() == "anonymous" {
					t.Errorf("a refused call with a valid token is audited without its caller: %v", e)
				}
			case "UNAUTHENTICATED":
				unauthenticated++
			}
		}
		// Reader, finance and admin are refused CreateAssignment, and so is
		// a call without a token, once over gRPC and once over REST.
		if denied != 6 || unauthenticated != 2 {
			t.Errorf("audit log has %d PERMISSION_DENIED and %d UNAUTHENTICATED CreateAssignment events, want 6 and 2", denied, unauthenticated)
		}
	})
}
