// Package api is seatledger's transport layer: the gRPC services of
// proto/seatledger/v1, their error mapping and interceptors, and the
// HTTP/JSON gateway in front of them (grpc-gateway), with /healthz, /readyz
// and /openapi.json.
//
// Reads are served from the store only; handlers never call Graph to
// answer a read. api does not import the sync package: what it needs from
// the sync worker is declared here as SyncRunner.
package api

import (
	"context"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	seatledgerv1 "github.com/seatledger/seatledger/gen/seatledger/v1"
	"github.com/seatledger/seatledger/internal/auth"
	"github.com/seatledger/seatledger/internal/graph"
	"github.com/seatledger/seatledger/internal/store"
)

// SyncRunner runs a sync now and waits for its result, on any replica: one
// that does not lead has the leader run it. An error wrapping
// store.ErrLeaderUnavailable (answered UNAVAILABLE) says the leader could
// not be reached in time. *sync.Syncer implements it; it is declared here so
// that api does not import sync.
type SyncRunner interface {
	RunNow(ctx context.Context, force bool) (store.SyncRun, error)
}

// Deps is what the API needs from the rest of the service.
type Deps struct {
	Store *store.Store
	// Graph receives the assignment writes the API proxies.
	Graph *graph.Client
	Sync  SyncRunner
	// Auth authenticates callers; every RPC but health and reflection then
	// needs a bearer token whose roles Policy allows. Nil turns access
	// control off (the server says so in its log).
	Auth   auth.Authenticator
	Logger *slog.Logger // nil discards
	// Completions runs what writes complete after answering; Close it
	// after the server stopped, so that shutdown waits for them. Nil: the
	// server makes its own, which nothing waits for.
	Completions *Completions
	// ReadCacheBytes, when positive, lets the API keep the answers of its
	// reads, up to that many bytes, while the mirror does not change (see
	// cache.go). The store's generation must be live (Store.WatchChanges
	// running) for the cache to serve anything.
	ReadCacheBytes int
}

// NewGRPCServer returns a gRPC server with every seatledger service, the
// standard health service and reflection (so grpcurl works) registered.
// Services whose handlers have not landed yet answer UNIMPLEMENTED.
func NewGRPCServer(d Deps) *grpc.Server {
	s, _ := New(d)
	return s
}

// New returns the gRPC server of NewGRPCServer and a Local that calls the
// same services in process through the same interceptors, for the
// gateway (NewGateway).
func New(d Deps) (*grpc.Server, *Local) {
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	unary := []grpc.UnaryServerInterceptor{
		recoverPanics(log),               // outermost: a panic anywhere becomes INTERNAL
		logCalls(log),                    // one line per call, with the final status code
		auditCalls(d.Store, d.Auth, log), // outside auth: refused writes are audited too
	}
	var stream []grpc.StreamServerInterceptor
	if d.Auth != nil {
		unary = append(unary, auth.UnaryServerInterceptor(d.Auth, Policy, publicMethod, log), noteCaller())
		stream = append(stream, auth.StreamServerInterceptor(d.Auth, Policy, publicMethod, log))
	}
	unary = append(unary, checkEnums()) // an enum number the proto does not declare is refused
	var cache *readCache
	if d.ReadCacheBytes > 0 && d.Store != nil {
		// After access control: only allowed calls read from it.
		cache = newReadCache(d.Store, d.ReadCacheBytes)
		unary = append(unary, cache.interceptor())
	}
	unary = append(unary, mapErrors(log)) // store and graph errors become statuses
	gs := grpc.NewServer(grpc.ChainUnaryInterceptor(unary...), grpc.ChainStreamInterceptor(stream...))
	local := &Local{methods: map[string]localMethod{}, unary: chainUnary(unary), cache: cache}
	s := localRegistrar{next: gs, local: local}
	seatledgerv1.RegisterAllotmentServiceServer(s, &allotmentService{store: d.Store, graph: d.Graph, log: log})
	seatledgerv1.RegisterSyncServiceServer(s, &syncService{store: d.Store, runner: d.Sync})
	seatledgerv1.RegisterSubscriptionServiceServer(s, &subscriptionService{store: d.Store})
	after := d.Completions
	if after == nil {
		after = NewCompletions()
	}
	seatledgerv1.RegisterAssignmentServiceServer(s, &assignmentService{store: d.Store, graph: d.Graph, log: log, after: after})
	seatledgerv1.RegisterWaitingMemberServiceServer(s, &waitingMemberService{store: d.Store})
	seatledgerv1.RegisterAssignmentErrorServiceServer(s, &assignmentErrorService{store: d.Store})
	seatledgerv1.RegisterUserServiceServer(s, &userService{store: d.Store, graph: d.Graph, log: log})
	seatledgerv1.RegisterChargebackServiceServer(s, &chargebackService{store: d.Store, log: log})
	seatledgerv1.RegisterAuditServiceServer(s, &auditService{store: d.Store})

	hs := health.NewServer() // reports SERVING for "" and every service
	healthpb.RegisterHealthServer(gs, hs)
	reflection.Register(gs)
	return gs, local
}

// The services whose handlers are still being written embed their
// Unimplemented server, so unwritten RPCs answer UNIMPLEMENTED.

type userService struct {
	seatledgerv1.UnimplementedUserServiceServer
	store *store.Store
	graph *graph.Client
	log   *slog.Logger
}

type chargebackService struct {
	seatledgerv1.UnimplementedChargebackServiceServer
	store *store.Store
	log   *slog.Logger
}

type auditService struct {
	seatledgerv1.UnimplementedAuditServiceServer
	store *store.Store
}
