package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

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
	var nf *store.NotFoundError
	switch {
	case errors.As(err, &nf):
		return mirrorNotFound(nf)
	case errors.Is(err, store.ErrNotFound):
		log.WarnContext(ctx, "not found without a kind", "method", method, "err", err)
		return status.Error(codes.NotFound, "the object is not in the mirror")
	case errors.Is(err, store.ErrConflict):
		// The wrapped text may quote Postgres; keep it in the log only.
		log.WarnContext(ctx, "conflict", "method", method, "err", err)
		return status.Error(codes.Aborted, "the change conflicts with a concurrent one; read the current state and retry")
	case errors.Is(err, store.ErrLeaderUnavailable):
		return status.Error(codes.Unavailable, err.Error()) // names the leader; our own text
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	case errors.As(err, &gerr) && gerr.Status == http.StatusTooManyRequests:
		return status.Error(codes.Unavailable, "Microsoft Graph is throttling requests; retry later")
	case errors.As(err, &gerr):
		if gerr.Status >= 500 || gerr.Status == http.StatusUnauthorized {
			// Graph's own failures, or our credential: not the caller's to fix.
			log.WarnContext(ctx, "graph failure", "method", method, "err", err)
		}
		return graphStatus(gerr)
	}
	log.ErrorContext(ctx, "internal error", "method", method, "err", err)
	return status.Error(codes.Internal, "internal error")
}

// notFoundHints say, per kind of object, how a caller finds the right key.
var notFoundHints = map[string]string{
	"allotment":  "GET /v1/allotments lists the allotment ids, e.g. 3b0c7e52-11d4-8a6f-02e9-6c5d8f1a4b70",
	"assignment": "GET /v1/assignments lists the assignment ids",
	"user":       "give a user id (a GUID) or user principal name, e.g. ada.lindqvist@contoso.example",
}

// mirrorNotFound says in the caller's terms which object the mirror does
// not hold, and how to find one it does.
func mirrorNotFound(nf *store.NotFoundError) error {
	msg := fmt.Sprintf("no %s %q in the mirror", nf.Kind, nf.Key)
	if !nf.AsOf.IsZero() {
		msg += " as of " + nf.AsOf.UTC().Format(time.RFC3339)
	}
	msg += " (it follows Microsoft Graph at each sync, see GET /v1/sync/runs)"
	if h := notFoundHints[nf.Kind]; h != "" {
		msg += "; " + h
	}
	return notFoundStatus(nf.Kind, nf.Key, msg)
}

// notGUID refuses a field that must be a GUID.
func notGUID(field, v string) error {
	return invalidArgument(field, fmt.Sprintf("%q is not a GUID, e.g. 6fd2c87f-b296-42f0-b197-1e91e994b900", v))
}

// notDay refuses a field that must be a day.
func notDay(field, v string) error {
	return invalidArgument(field, fmt.Sprintf("%q is not a date (YYYY-MM-DD), e.g. 2026-12-01", v))
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

// graphStatus maps Graph's answer to a refused write to the status the
// caller gets (shared/graph/ERRORS.md §1B, §1D and §2): the code by
// innerError.code first, then by HTTP status; the message says what Graph
// said and how to fix it; an ErrorInfo detail carries Graph's codes and
// request-id (for a support ticket), plus the detail the table names.
func graphStatus(e *graph.Error) error {
	inner := strings.ToLower(e.InnerCode)
	code, hint := codes.FailedPrecondition, ""
	var extra []protoadapt.MessageV1
	switch {
	case inner == "noavailablelicenses":
		code, hint = codes.ResourceExhausted, "choose another allotment of the same SKU with free licences, add licences, or free one"
		extra = append(extra, &errdetails.QuotaFailure{Violations: []*errdetails.QuotaFailure_Violation{{
			Subject: "allotments", Description: e.Message}}})
	case inner == "mutuallyexclusiveserviceplans":
		hint = "switch off the conflicting service plan (disabled_service_plan_ids) or remove the other licence that grants it"
	case inner == "proxyaddressconflict":
		hint = "another object already uses one of this user's proxy addresses; fix the address, then retry"
	case inner == "invalidusagelocation":
		hint = "set the user's usage location in Entra ID, then retry"
	case inner == "notfound" && strings.Contains(strings.ToLower(e.Message), "disabledserviceplanids"):
		code, hint = codes.InvalidArgument, "use only plan ids from the allotment's services"
	case inner == "notfound" || inner == "resourcenotfound" || e.Status == http.StatusNotFound:
		code, hint = codes.NotFound, "check the id; the object may have been deleted since the last sync"
	case inner == "requiredfieldorparametermissing" || inner == "invalidassigneetype" || inner == "immutablepropertymodified":
		code = codes.InvalidArgument
	case inner == "assignmentalreadyexists" || (e.Status == http.StatusConflict && !strings.EqualFold(e.Code, "Directory_ConcurrencyViolation")):
		code, hint = codes.AlreadyExists, "the assignee already has an assignment from this allotment"
	case e.Status == http.StatusConflict:
		code, hint = codes.Aborted, "a concurrent change in the directory collided with this one; read the state again and retry"
	case e.Status == http.StatusForbidden:
		code, hint = codes.PermissionDenied, "seatledger's Graph identity lacks the permission or allotment rights for this write; ask an administrator"
	case e.Status == http.StatusUnauthorized || e.Status >= 500:
		code, hint = codes.Unavailable, "Microsoft Graph failed; retry later"
	case e.Status == http.StatusMethodNotAllowed:
		code = codes.Internal
	}
	msg := "Microsoft Graph refused the request: " + e.Message
	if e.Message == "" {
		msg = fmt.Sprintf("Microsoft Graph refused the request (HTTP %d)", e.Status)
	}
	if hint != "" {
		msg += " (" + hint + ")"
	}
	if e.RequestID != "" {
		msg += " [graph request-id " + e.RequestID + "]"
	}
	reason := e.InnerCode
	if reason == "" {
		reason = e.Code
	}
	if reason == "" {
		reason = "HTTP_" + strconv.Itoa(e.Status)
	}
	st := status.New(code, msg)
	details := append([]protoadapt.MessageV1{&errdetails.ErrorInfo{
		Reason: reason,
		Domain: "graph.microsoft.com",
		Metadata: map[string]string{
			"request_id":       e.RequestID,
			"graph_status":     strconv.Itoa(e.Status),
			"graph_code":       e.Code,
			"graph_inner_code": e.InnerCode,
		},
	}}, extra...)
	if d, err := st.WithDetails(details...); err == nil {
		st = d
	}
	return st.Err()
}
