package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/seatledger/seatledger/internal/graph"
	"github.com/seatledger/seatledger/internal/store"
)

// toStatus is the one place where errors become gRPC statuses. Anything it
// does not recognize is logged in full and reaches the caller only as
// "internal error": internal details stay in our logs.
func toStatus(ctx context.Context, log *slog.Logger, method string, err error) error {
	if _, ok := status.FromError(err); ok {
		return err // already a status (validation helpers build them)
	}
	var gerr *graph.Error
	switch {
	case errors.Is(err, store.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, store.ErrConflict):
		// The wrapped text may quote Postgres; keep it in the log only.
		log.WarnContext(ctx, "conflict", "method", method, "err", err)
		return status.Error(codes.Aborted, "the change conflicts with a concurrent one; read the current state and retry")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	case errors.As(err, &gerr) && gerr.Status == http.StatusTooManyRequests:
		return status.Error(codes.Unavailable, "Microsoft Graph is throttling requests; retry later")
	}
	log.ErrorContext(ctx, "internal error", "method", method, "err", err)
	return status.Error(codes.Internal, "internal error")
}

// invalidArgument reports a bad request field the way Google APIs do: the
// message names the field, and a BadRequest detail carries it for machines.
func invalidArgument(field, problem string) error {
	st := status.New(codes.InvalidArgument, field+": "+problem)
	if d, err := st.WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: problem}},
	}); err == nil {
		st = d
	}
	return st.Err()
}
