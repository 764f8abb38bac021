package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	seatledgerv1 "github.com/seatledger/seatledger/gen/seatledger/v1"
	"github.com/seatledger/seatledger/internal/graph"
	"github.com/seatledger/seatledger/internal/store"
)

// TestGraphStatus checks the mapping of Graph's write refusals
// (shared/graph/ERRORS.md §1B, §1D) and the ErrorInfo every one carries.
func TestGraphStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status      int
		code, inner string
		msg         string
		want        codes.Code
	}{
		{400, "badRequest", "noAvailableLicenses", "There are no available licenses", codes.ResourceExhausted},
		{400, "badRequest", "mutuallyExclusiveServicePlans", "plans A,B are mutually exclusive", codes.FailedPrecondition},
		{400, "badRequest", "proxyAddressConflict", "proxyAddresses", codes.FailedPrecondition},
		{400, "badRequest", "invalidUsageLocation", "usage location", codes.FailedPrecondition},
		{400, "badRequest", "notFound", "The user 'x' in assignedTo does not exist.", codes.NotFound},
		{400, "badRequest", "notFound", "disabledServicePlanIds[0]: service plan 'p' is not a service", codes.InvalidArgument},
		{400, "badRequest", "requiredFieldOrParameterMissing", "", codes.InvalidArgument},
		{400, "badRequest", "invalidAssigneeType", "", codes.InvalidArgument},
		{400, "badRequest", "immutablePropertyModified", "", codes.InvalidArgument},
		{403, "forbidden", "missingRequiredPermission", "", codes.PermissionDenied},
		{403, "forbidden", "allotmentPermissions", "", codes.PermissionDenied},
		{404, "notFound", "resourceNotFound", "", codes.NotFound},
		{405, "methodNotAllowed", "", "", codes.Internal},
		{409, "conflict", "assignmentAlreadyExists", "already has assignment", codes.AlreadyExists},
		{409, "Directory_ConcurrencyViolation", "", "", codes.Aborted},
		{500, "generalException", "", "", codes.Unavailable},
		{503, "serviceNotAvailable", "", "", codes.Unavailable},
		{401, "InvalidAuthenticationToken", "", "", codes.Unavailable},
		{400, "badRequest", "somethingNew", "new failure", codes.FailedPrecondition},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d %s %s", tt.status, tt.code, tt.inner), func(t *testing.T) {
			t.Parallel()
			st := status.Convert(graphStatus(&graph.Error{Status: tt.status, Code: tt.code, InnerCode: tt.inner, Message: tt.msg, RequestID: "req-1"}))
			if st.Code() != tt.want {
				t.Errorf("code = %v, want %v (%s)", st.Code(), tt.want, st.Message())
			}
			if !strings.Contains(st.Message(), "req-1") || !strings.Contains(st.Message(), tt.msg) {
				t.Errorf("message %q does not quote Graph's message and request-id", st.Message())
			}
			var info *errdetails.ErrorInfo
			for _, d := range st.Details() {
				if e, ok := d.(*errdetails.ErrorInfo); ok {
					info = e
				}
			}
			wantReason := tt.inner
			if wantReason == "" {
				wantReason = tt.code
			}
			if info == nil || info.GetDomain() != "graph.microsoft.com" || info.GetReason() != wantReason ||
				info.GetMetadata()["request_id"] != "req-1" || info.GetMetadata()["graph_status"] != fmt.Sprint(tt.status) {
				t.Errorf("ErrorInfo = %v; want reason %q, domain graph.microsoft.com, request_id req-1", info, wantReason)
			}
		})
	}
	// Through toStatus, as the interceptor maps handler errors.
	err := toStatus(context.Background(), slog.New(slog.DiscardHandler), "m", fmt.Errorf("create: %w", &graph.Error{Status: http.StatusForbidden, Code: "forbidden"}))
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("toStatus(wrapped 403) = %v, want PERMISSION_DENIED", err)
	}
}

func TestChoose(t *testing.T) {
	t.Parallel()
	al := func(id string, allotted, consumed int32) store.Allotment {
		return store.Allotment{ID: id, SKUPartNumber: "E3", AllottedUnits: allotted, ConsumedUnits: consumed}
	}
	sales := assignee{kind: store.KindUser, user: &store.User{Department: "Sales"}}
	nodept := assignee{kind: store.KindUser, user: &store.User{}}
	group := assignee{kind: store.KindGroup}
	tests := []struct {
		name   string
		who    assignee
		usable []store.Allotment
		owners map[string]string
		want   string
		reason seatledgerv1.AllotmentChoiceReason
		code   codes.Code
	}{
		{"owner department first", sales, []store.Allotment{al("big", 50, 0), al("s", 5, 4)}, map[string]string{"s": "Sales"},
			"s", seatledgerv1.AllotmentChoiceReason_ALLOTMENT_CHOICE_REASON_OWNER_DEPARTMENT, codes.OK},
		{"owned but full: most free", sales, []store.Allotment{al("big", 50, 0), al("s", 5, 5)}, map[string]string{"s": "Sales"},
			"big", seatledgerv1.AllotmentChoiceReason_ALLOTMENT_CHOICE_REASON_MOST_AVAILABLE_UNITS, codes.OK},
		{"no department: most free, ties by id", nodept, []store.Allotment{al("b", 10, 0), al("a", 10, 0), al("c", 5, 0)}, nil,
			"a", seatledgerv1.AllotmentChoiceReason_ALLOTMENT_CHOICE_REASON_MOST_AVAILABLE_UNITS, codes.OK},
		{"only candidate", nodept, []store.Allotment{al("a", 2, 1)}, nil,
			"a", seatledgerv1.AllotmentChoiceReason_ALLOTMENT_CHOICE_REASON_ONLY_CANDIDATE, codes.OK},
		{"all full", nodept, []store.Allotment{al("a", 2, 2), al("b", 1, 3)}, nil, "", 0, codes.ResourceExhausted},
		{"groups need no free seat", group, []store.Allotment{al("a", 2, 2)}, nil,
			"a", seatledgerv1.AllotmentChoiceReason_ALLOTMENT_CHOICE_REASON_ONLY_CANDIDATE, codes.OK},
	}
	for _, tt := range tests {
		p, err := choose(tt.who, tt.usable, tt.owners, tt.who.kind != store.KindGroup)
		if status.Code(err) != tt.code {
			t.Errorf("%s: error %v, want %v", tt.name, err, tt.code)
			continue
		}
		if err == nil && (p.allotment.ID != tt.want || p.reason != tt.reason || p.detail == "") {
			t.Errorf("%s: chose %s (%v, %q), want %s (%v)", tt.name, p.allotment.ID, p.reason, p.detail, tt.want, tt.reason)
		}
	}
}

func TestIdempotencyKeyOf(t *testing.T) {
	t.Parallel()
	withHeader := func(v ...string) context.Context {
		md := metadata.MD{}
		for _, x := range v {
			md.Append(idempotencyHeader, x)
		}
		return metadata.NewIncomingContext(context.Background(), md)
	}
	tests := []struct {
		ctx   context.Context
		field string
		want  string
		ok    bool
	}{
		{context.Background(), "k1", "k1", true},
		{withHeader("h1"), "", "h1", true},
		{withHeader("same"), "same", "same", true},
		{withHeader("h1"), "k1", "", false},
		{withHeader("a", "b"), "", "", false},
		{context.Background(), "has space", "", false},
		{context.Background(), strings.Repeat("k", maxIdempotencyKey+1), "", false},
	}
	for _, tt := range tests {
		got, err := idempotencyKeyOf(tt.ctx, tt.field)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("idempotencyKeyOf(%q) = %q, %v; want %q, ok %v", tt.field, got, err, tt.want, tt.ok)
		}
		if err != nil && status.Code(err) != codes.InvalidArgument {
			t.Errorf("idempotencyKeyOf(%q) error %v, want INVALID_ARGUMENT", tt.field, err)
		}
	}
}

func TestKeyedMutex(t *testing.T) {
	t.Parallel()
	k := keyedMutex{m: map[string]*keyLock{}}
	unlock, err := k.lock(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	// Another key is independent.
	unlockB, err := k.lock(context.Background(), "b")
	if err != nil {
		t.Fatal(err)
	}
	unlockB()
	// The same key waits; a cancelled wait gives up.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := k.lock(ctx, "a"); err == nil {
		t.Fatal("second lock of a held key succeeded")
	}
	got := make(chan struct{})
	go func() {
		u, err := k.lock(context.Background(), "a")
		if err == nil {
			u()
		}
		close(got)
	}()
	unlock()
	<-got
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.m) != 0 {
		t.Errorf("%d key locks left after every unlock, want 0", len(k.m))
	}
}
