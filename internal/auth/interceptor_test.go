package auth_test

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/seatledger/seatledger/internal/auth"
	"github.com/seatledger/seatledger/internal/graphsim"
)

// testServer is a real gRPC server on 127.0.0.1:0 serving the standard
// health service behind the auth interceptors.
type testServer struct {
	srv    *grpc.Server
	client healthpb.HealthClient
	logs   *syncBuffer
}

// echoIdentity runs after the auth interceptor and sends the Identity it
// finds back in a response header, so that a test sees what a handler
// would.
func echoIdentity(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if id, ok := auth.FromContext(ctx); ok {
		md := metadata.Pairs("x-subject", id.Subject, "x-name", id.Name, "x-source", id.Source)
		for _, r := range id.Roles {
			md.Append("x-role", string(r))
		}
		if err := grpc.SetHeader(ctx, md); err != nil {
			return nil, err
		}
	}
	return handler(ctx, req)
}

func startServer(t *testing.T, a auth.Authenticator, p auth.Policy, public func(string) bool) testServer {
	t.Helper()
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(auth.UnaryServerInterceptor(a, p, public, log), echoIdentity),
		grpc.ChainStreamInterceptor(auth.StreamServerInterceptor(a, p, public, log)),
	)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return testServer{srv: srv, client: healthpb.NewHealthClient(cc), logs: logs}
}

func withAuth(ctx context.Context, values ...string) context.Context {
	for _, v := range values {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", v)
	}
	return ctx
}

func TestInterceptor(t *testing.T) {
	t.Parallel()
	f := newOIDC(t)
	path := filepath.Join(t.TempDir(), "tokens.json")
	writeFile(t, path, tokensJSON(entry("ops", "static-admin", "admin"), entry("dash", "static-reader", "reader")))
	tf, err := auth.NewTokensFile(path, nil)
	if err != nil {
		t.Fatalf("NewTokensFile: %v", err)
	}
	a := auth.Chain(tf, f.oidc)
	policy := auth.Policy{
		healthpb.Health_Check_FullMethodName: {auth.RoleWriter, auth.RoleAdmin},
		healthpb.Health_Watch_FullMethodName: {auth.RoleReader},
		// List is missing: refused to everyone.
	}
	s := startServer(t, a, policy, nil)

	writer := mint(t, f.sim, graphsim.CallerToken{Audience: testAudience, Caller: "hr-onboarding", Roles: []string{"writer", "User.Read.All"}})
	expired := mint(t, f.sim, graphsim.CallerToken{Audience: testAudience, Caller: "hr-onboarding", Roles: []string{"writer"}, Lifetime: -time.Hour})
	foreignSim, _ := startSim(t)
	foreign := mint(t, foreignSim, graphsim.CallerToken{Audience: testAudience, Caller: "intruder", Roles: []string{"admin"}})
	tokens := []string{"static-admin", "static-reader", writer, expired, foreign, "unknown-token"}

	t.Run("Check", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name       string
			auth       []string
			code       codes.Code
			msg        string
			wantHeader metadata.MD
		}{
			{"no token", nil, codes.Unauthenticated, "unauthenticated: missing bearer token", nil},
			{"empty bearer", []string{"Bearer "}, codes.Unauthenticated, "unauthenticated: missing bearer token", nil},
			{"basic scheme", []string{"Basic c3RhdGljLWFkbWlu"}, codes.Unauthenticated, "unauthenticated: authorization is not a bearer token", nil},
			{"two values", []string{"Bearer static-admin", "Bearer static-reader"}, codes.Unauthenticated, "unauthenticated: more than one authorization value", nil},
			{"unknown token", []string{"Bearer unknown-token"}, codes.Unauthenticated, "unauthenticated: token not recognized", nil},
			{"expired jwt", []string{"Bearer " + expired}, codes.Unauthenticated, "unauthenticated: token has expired", nil},
			{"foreign jwt", []string{"Bearer " + foreign}, codes.Unauthenticated, "unauthenticated: token signing key is unknown", nil},
			{"reader", []string{"Bearer static-reader"}, codes.PermissionDenied, "requires role writer or admin", nil},
			{"admin, static", []string{"bearer static-admin"}, codes.OK, "", metadata.MD{
				"x-subject": {"ops"}, "x-name": {"ops"}, "x-source": {"tokens-file"}, "x-role": {"admin"},
			}},
			{"writer, oidc", []string{"Bearer " + writer}, codes.OK, "", metadata.MD{
				"x-name": {"hr-onboarding"}, "x-source": {"oidc"}, "x-role": {"writer"},
			}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				var header metadata.MD
				_, err := s.client.Check(withAuth(t.Context(), tt.auth...), &healthpb.HealthCheckRequest{}, grpc.Header(&header))
				st := status.Convert(err)
				if st.Code() != tt.code || st.Message() != tt.msg {
					t.Errorf("Check: %v %q; want %v %q", st.Code(), st.Message(), tt.code, tt.msg)
				}
				if tt.wantHeader == nil {
					return
				}
				// The OIDC subject is an opaque id: checked for presence below.
				got := metadata.MD{}
				for _, k := range []string{"x-name", "x-source", "x-role"} {
					got[k] = header[k]
				}
				if want := tt.wantHeader["x-subject"]; want != nil {
					got["x-subject"] = header["x-subject"]
				}
				if diff := cmp.Diff(tt.wantHeader, got); diff != "" {
					t.Errorf("identity seen by the handler (-want +got):\n%s", diff)
				}
				if len(header["x-subject"]) != 1 || header["x-subject"][0] == "" {
					t.Errorf("x-subject %q; want one non-empty subject", header["x-subject"])
				}
			})
		}
	})

	t.Run("missing from policy", func(t *testing.T) {
		t.Parallel()
		for range 3 {
			_, err := s.client.List(withAuth(t.Context(), "Bearer static-admin"), &healthpb.HealthListRequest{})
			if st := status.Convert(err); st.Code() != codes.PermissionDenied || st.Message() != "method is not open to any role" {
				t.Errorf("List as admin: %v %q; want PermissionDenied", st.Code(), st.Message())
			}
		}
		_, err := s.client.List(t.Context(), &healthpb.HealthListRequest{})
		if code := status.Code(err); code != codes.Unauthenticated {
			t.Errorf("List without token: %v; want Unauthenticated", code)
		}
		if n := strings.Count(s.logs.String(), "method missing from the auth policy"); n != 1 {
			t.Errorf("logged the missing method %d times; want once", n)
		}
	})

	t.Run("Watch stream", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name string
			auth []string
			code codes.Code
			msg  string
		}{
			{"no token", nil, codes.Unauthenticated, "unauthenticated: missing bearer token"},
			{"writer lacks reader", []string{"Bearer " + writer}, codes.PermissionDenied, "requires role reader"},
			{"reader", []string{"Bearer static-reader"}, codes.OK, ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				ctx, cancel := context.WithCancel(withAuth(t.Context(), tt.auth...))
				defer cancel()
				stream, err := s.client.Watch(ctx, &healthpb.HealthCheckRequest{})
				if err != nil {
					t.Fatalf("Watch: %v", err)
				}
				resp, err := stream.Recv()
				st := status.Convert(err)
				if st.Code() != tt.code || st.Message() != tt.msg {
					t.Errorf("Watch: %v %q; want %v %q", st.Code(), st.Message(), tt.code, tt.msg)
				}
				if tt.code == codes.OK && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
					t.Errorf("Watch: status %v; want SERVING", resp.GetStatus())
				}
			})
		}
	})

	t.Cleanup(func() {
		// After every subtest: no token ever reached the logs.
		out := s.logs.String()
		for _, tok := range tokens {
			if strings.Contains(out, tok) {
				t.Errorf("logs contain a token:\n%s", out)
			}
		}
		if !strings.Contains(out, "permission denied") || !strings.Contains(out, "unauthenticated") {
			t.Errorf("logs lack the denials:\n%s", out)
		}
	})

	if got, want := policy.Missing(s.srv.GetServiceInfo(), nil), []string{healthpb.Health_List_FullMethodName}; !cmp.Equal(got, want) {
		t.Errorf("Missing = %q; want %q", got, want)
	}
}

// TestInterceptorPublic checks that a public method needs no token and
// that the authenticator is not consulted for it.
func TestInterceptorPublic(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "tokens.json")
	writeFile(t, path, tokensJSON(entry("ops", "static-admin", "admin")))
	tf, err := auth.NewTokensFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	public := func(m string) bool { return strings.HasPrefix(m, "/grpc.health.v1.Health/") }
	s := startServer(t, tf, auth.Policy{}, public)
	var header metadata.MD
	if _, err := s.client.Check(t.Context(), &healthpb.HealthCheckRequest{}, grpc.Header(&header)); err != nil {
		t.Errorf("public Check without token: %v", err)
	}
	if _, err := s.client.Check(withAuth(t.Context(), "Bearer not-a-token"), &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("public Check with a bad token: %v", err)
	}
	if len(header["x-source"]) != 0 {
		t.Errorf("public call carried an identity: %v", header)
	}
	if missing := (auth.Policy{}).Missing(s.srv.GetServiceInfo(), public); len(missing) != 0 {
		t.Errorf("Missing = %q; want none (all public)", missing)
	}
}
