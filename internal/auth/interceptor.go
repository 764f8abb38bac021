package auth

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Policy maps each RPC, by full gRPC method name (e.g.
// "/seatledger.v1.AllotmentService/ListAllotments"), to the roles that may
// call it: an identity holding any one of them is allowed. A method absent
// from the policy is refused to everyone (deny by default); so is one that
// lists no role. Roles do not imply each other: list admin wherever admin
// may call.
type Policy map[string][]Role

// Missing returns, sorted, the full names of the methods of services (as
// (*grpc.Server).GetServiceInfo reports them) that are neither in p nor
// public: the RPCs the interceptors would refuse to everyone. Call it at
// start-up, or in a test, to catch an RPC added without a policy entry.
// public may be nil.
func (p Policy) Missing(services map[string]grpc.ServiceInfo, public func(method string) bool) []string {
	var missing []string
	for svc, info := range services {
		for _, m := range info.Methods {
			name := "/" + svc + "/" + m.Name
			if _, ok := p[name]; !ok && (public == nil || !public(name)) {
				missing = append(missing, name)
			}
		}
	}
	slices.Sort(missing)
	return missing
}

// requirement describes roles for a PermissionDenied message:
// "requires role writer or admin".
func requirement(roles []Role) string {
	if len(roles) == 0 {
		return "method is not open to any role"
	}
	names := make([]string, len(roles))
	for i, r := range roles {
		names[i] = string(r)
	}
	if len(names) == 1 {
		return "requires role " + names[0]
	}
	return "requires role " + strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// guard is the state shared by the unary and stream interceptors.
type guard struct {
	auth   Authenticator
	policy Policy
	public func(string) bool
	log    *slog.Logger
	warned sync.Map // full method name → struct{}: methods missing from the policy, logged once
}

func newGuard(a Authenticator, p Policy, public func(string) bool, log *slog.Logger) *guard {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if public == nil {
		public = func(string) bool { return false }
	}
	p = maps.Clone(p) // later edits of the caller's map change nothing
	for _, m := range slices.Sorted(maps.Keys(p)) {
		for _, r := range p[m] {
			if !r.Known() {
				log.Error("auth policy names an unknown role", "method", m, "role", string(r))
			}
		}
		if len(p[m]) == 0 {
			log.Error("auth policy opens a method to no role", "method", m)
		}
	}
	return &guard{auth: a, policy: p, public: public, log: log}
}

// authorize lets public methods through, authenticates the caller and checks
// the policy. It returns ctx carrying the Identity, or a status error:
// Unauthenticated (no or bad token), PermissionDenied (a role is missing, or
// the method is not in the policy) or Internal (the authenticator failed).
func (g *guard) authorize(ctx context.Context, method string) (context.Context, error) {
	if g.public(method) {
		return ctx, nil
	}
	roles, listed := g.policy[method]
	if !listed {
		if _, seen := g.warned.LoadOrStore(method, struct{}{}); !seen {
			g.log.ErrorContext(ctx, "method missing from the auth policy; refusing it", "method", method)
		}
	}
	bearer, err := bearerFrom(ctx)
	if err == nil {
		var id Identity
		id, err = g.auth.Authenticate(ctx, bearer)
		if err == nil {
			if !listed || !slices.ContainsFunc(roles, id.Has) {
				g.log.InfoContext(ctx, "permission denied", "method", method, "subject", id.Subject, "source", id.Source)
				return ctx, status.Error(codes.PermissionDenied, requirement(roles))
			}
			return NewContext(ctx, id), nil
		}
	}
	if !errors.Is(err, ErrUnauthenticated) {
		g.log.ErrorContext(ctx, "authenticate caller", "method", method, "err", err)
		return ctx, status.Error(codes.Internal, "internal error")
	}
	g.log.InfoContext(ctx, "unauthenticated", "method", method, "reason", err.Error())
	return ctx, status.Error(codes.Unauthenticated, err.Error())
}

// bearerFrom returns the token of the one "authorization: Bearer <token>"
// metadata value. More than one value is refused: the gateway forwards both
// Authorization and Grpc-Metadata-Authorization headers under that key, and
// which one counts must not be ambiguous.
func bearerFrom(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	switch len(vals) {
	case 0:
		return "", unauthenticated("missing bearer token")
	case 1:
	default:
		return "", unauthenticated("more than one authorization value")
	}
	scheme, token, _ := strings.Cut(strings.TrimSpace(vals[0]), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", unauthenticated("authorization is not a bearer token")
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return "", unauthenticated("missing bearer token")
	}
	return token, nil
}

// UnaryServerInterceptor authenticates the "authorization: Bearer <token>"
// metadata of each unary call and enforces p. Methods for which public
// returns true (health, reflection) pass without a token and without an
// Identity; public may be nil. Any other call gets codes.Unauthenticated
// when the token is missing or refused (the message gives the reason, never
// the token), codes.PermissionDenied when the caller lacks every role p
// lists for the method ("requires role writer or admin") or the method is
// missing from p (logged as an error once per method), and otherwise reaches
// the handler with the Identity in its context (FromContext). log may be
// nil.
func UnaryServerInterceptor(a Authenticator, p Policy, public func(method string) bool, log *slog.Logger) grpc.UnaryServerInterceptor {
	g := newGuard(a, p, public, log)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := g.authorize(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor is UnaryServerInterceptor for streaming calls
// (health's Watch, reflection, any streaming RPC): install both, or a
// streaming method escapes the policy.
func StreamServerInterceptor(a Authenticator, p Policy, public func(method string) bool, log *slog.Logger) grpc.StreamServerInterceptor {
	g := newGuard(a, p, public, log)
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := g.authorize(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, &identityStream{ServerStream: ss, ctx: ctx})
	}
}

// identityStream is a ServerStream whose context carries the Identity.
type identityStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *identityStream) Context() context.Context { return s.ctx }
