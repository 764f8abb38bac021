package api

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	seatledgerv1 "github.com/seatledger/seatledger/gen/seatledger/v1"
	"github.com/seatledger/seatledger/internal/auth"
	"github.com/seatledger/seatledger/internal/store"
)

// recoverPanics turns a handler panic into INTERNAL, logged with its stack,
// so one bad request cannot take the process down.
func recoverPanics(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				log.ErrorContext(ctx, "panic in handler", "method", info.FullMethod,
					"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				err = status.Error(codes.Internal, "internal error")
			}
		}()
		return handler(ctx, req)
	}
}

// callRecord collects, on the way in, what logCalls prints on the way
// out; noteCaller fills it once the caller is authenticated.
type callRecord struct{ caller, callerName string }

type callRecordKey struct{}

// logCalls writes one line per RPC: method, caller, status code and
// duration. Request and response bodies are not logged: they may carry
// personal data.
func logCalls(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		rec := &callRecord{}
		resp, err := handler(context.WithValue(ctx, callRecordKey{}, rec), req)
		code := status.Code(err)
		level := slog.LevelInfo
		if code == codes.Internal || code == codes.Unknown || code == codes.DataLoss {
			level = slog.LevelError
		}
		log.Log(ctx, level, "rpc", "method", info.FullMethod, "caller", rec.caller, "code", code.String(),
			"took", time.Since(start).Round(time.Microsecond))
		return resp, err
	}
}

// noteCaller records the authenticated caller for logCalls; it runs after
// the auth interceptor.
func noteCaller() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if id, ok := auth.FromContext(ctx); ok {
			if rec, ok := ctx.Value(callRecordKey{}).(*callRecord); ok {
				rec.caller, rec.callerName = id.Subject, id.Name
			}
		}
		return handler(ctx, req)
	}
}

// mapErrors converts every handler error to a gRPC status with toStatus.
func mapErrors(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		resp, err := handler(ctx, req)
		if err != nil {
			return nil, toStatus(ctx, log, info.FullMethod, err)
		}
		return resp, nil
	}
}

// mutating lists the RPCs that change something, for the audit log. The
// value says whether the handler records the call itself once it is past
// access control (the assignment writes and ownership, whose records carry
// Graph's request-id and the idempotency key); auditCalls records the
// others, and every call access control refuses.
var mutating = map[string]bool{
	"/seatledger.v1.AssignmentService/CreateAssignment": true,
	"/seatledger.v1.AssignmentService/UpdateAssignment": true,
	"/seatledger.v1.AssignmentService/DeleteAssignment": true,
	"/seatledger.v1.UserService/ReprocessUser":          true,
	"/seatledger.v1.AllotmentService/SetAllotmentOwner": true,
	"/seatledger.v1.ChargebackService/SetPrice":         false,
	"/seatledger.v1.SyncService/RunSync":                false,
}

// auditCalls records, in the audit log, every call of a mutating RPC that
// its handler does not record: those access control refuses (before any
// handler runs) and those of RPCs without handler-level auditing. It runs
// outside the auth interceptor, so it sees refusals; the caller comes from
// the call record noteCaller fills once a caller is authenticated. A
// failure to write the record is logged, not returned: the call's outcome
// stands.
func auditCalls(st *store.Store, authn auth.Authenticator, log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		handlerAudits, ok := mutating[info.FullMethod]
		if !ok || st == nil {
			return handler(ctx, req)
		}
		start := time.Now()
		resp, err := handler(ctx, req)
		rec, _ := ctx.Value(callRecordKey{}).(*callRecord)
		caller, callerName := "", ""
		if rec != nil {
			caller, callerName = rec.caller, rec.callerName
		}
		code := status.Code(err)
		refused := caller == "" && (code == codes.Unauthenticated || code == codes.PermissionDenied)
		if handlerAudits && !refused {
			return resp, err
		}
		if caller == "" && code == codes.PermissionDenied && authn != nil {
			// Refused for its roles: the caller is known, name them.
			caller, callerName = refusedCaller(ctx, authn)
		}
		if caller == "" {
			caller = "anonymous"
		}
		e := store.AuditEvent{
			Time:      start,
			Actor:     caller,
			ActorName: callerName,
			Method:    rpcName(info.FullMethod),
			Resource:  auditResource(req, resp),
			Status:    codeName(code), // spelled as the handlers' events spell it
			Message:   status.Convert(err).Message(),
			Latency:   time.Since(start),
		}
		if err == nil {
			e.Message = ""
		}
		if m, ok := req.(proto.Message); ok {
			e.Request, _ = protojson.Marshal(m)
		}
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, aerr := st.RecordAuditEvent(actx, e); aerr != nil {
			log.ErrorContext(ctx, "record audit event", "method", info.FullMethod, "err", aerr)
		}
		return resp, err
	}
}

// refusedCaller names the caller of a call access control refused for its
// roles (its id and name), authenticating its token again (refusals are
// rare; the token is never kept or logged).
func refusedCaller(ctx context.Context, authn auth.Authenticator) (subject, name string) {
	md, _ := metadata.FromIncomingContext(ctx)
	values := md.Get("authorization")
	if len(values) != 1 {
		return "", ""
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return "", ""
	}
	id, err := authn.Authenticate(ctx, strings.TrimSpace(token))
	if err != nil {
		return "", ""
	}
	return id.Subject, id.Name
}

// auditResource names what an audited call acted on: the resource it
// answered with (a price, a sync run), else the one its request names
// (also for a refused or invalid call), else the collection. Handlers that
// audit their own calls start from it and name the resource they resolve.
func auditResource(req, resp any) string {
	if r, ok := resp.(interface{ GetName() string }); ok && r.GetName() != "" {
		return r.GetName()
	}
	in := func(collection, id string) string {
		if id == "" {
			return collection
		}
		return collection + "/" + id
	}
	switch r := req.(type) {
	case *seatledgerv1.SetPriceRequest:
		return in("prices", r.GetSkuId())
	case *seatledgerv1.UpdateAssignmentRequest:
		return in("assignments", r.GetId())
	case *seatledgerv1.DeleteAssignmentRequest:
		return in("assignments", r.GetId())
	case *seatledgerv1.SetAllotmentOwnerRequest:
		return in("allotments", r.GetId())
	case *seatledgerv1.ReprocessUserRequest:
		return in("users", r.GetUser())
	case *seatledgerv1.CreateAssignmentRequest:
		return "assignments"
	case *seatledgerv1.RunSyncRequest:
		return "sync/runs"
	}
	return ""
}

// rpcName turns a gRPC method path ("/seatledger.v1.X/Method") into the
// RPC's full name ("seatledger.v1.X.Method"), the form the audit log uses.
func rpcName(fullMethod string) string {
	return strings.Replace(strings.TrimPrefix(fullMethod, "/"), "/", ".", 1)
}
