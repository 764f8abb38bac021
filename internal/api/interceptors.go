package api

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/seatledger/seatledger/internal/auth"
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
type callRecord struct{ caller string }

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
				rec.caller = id.Subject
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
