package api

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	seatledgerv1 "github.com/seatledger/seatledger/gen/seatledger/v1"
	"github.com/seatledger/seatledger/internal/graph"
	"github.com/seatledger/seatledger/internal/store"
)

// The read side of the mirror: every handler here answers from the store
// only, current state or "as of" a past time.

// maxFilterLen bounds free-text filters (departments, UPNs, codes).
const maxFilterLen = 256

func validateText(field, v string) error {
	if len(v) > maxFilterLen {
		return invalidArgument(field, fmt.Sprintf("longer than %d characters", maxFilterLen))
	}
	if strings.ContainsAny(v, "\x00\r\n") {
		return invalidArgument(field, "contains control characters")
	}
	return nil
}

func validateOptionalID(field, id string) error {
	if id == "" {
		return nil
	}
	return validateID(field, id)
}

func validateOptionalGUID(field, id string) error {
	if id != "" && !guidPattern.MatchString(id) {
		return notGUID(field, id)
	}
	return nil
}

// asOf converts an optional as_of timestamp; zero means "now" to the store.
func asOf(ts *timestamppb.Timestamp) (time.Time, error) {
	if ts == nil {
		return time.Time{}, nil
	}
	if err := ts.CheckValid(); err != nil {
		return time.Time{}, invalidArgument("as_of", "is not a valid time (between 0001-01-01 and 9999-12-31), e.g. 2026-12-04T00:00:00Z")
	}
	return ts.AsTime(), nil
}

// resolveUser turns a user id or user principal name into a user id, from
// the mirror. An unknown UPN is NOT_FOUND; an unknown id is passed on, so a
// filter on a user the mirror has not seen yet answers an empty list.
func resolveUser(ctx context.Context, st *store.Store, field, user string, at time.Time) (string, error) {
	if user == "" {
		return "", nil
	}
	if !strings.Contains(user, "@") {
		return user, validateID(field, user)
	}
	if err := validateText(field, user); err != nil {
		return "", err
	}
	u, err := st.GetUser(ctx, user, at)
	if err != nil {
		return "", err
	}
	return u.ID, nil
}

// page runs one keyset-paged read: list is called with the cursor and one
// more row than asked; key names a row's cursor position.
func page[T any](req interface {
	GetPageSize() int32
	GetPageToken() string
}, filter string, list func(size int, after string) ([]T, error), key func(T) string) ([]T, string, error) {
	size, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, "", err
	}
	after, err := decodePageToken(req.GetPageToken(), filter)
	if err != nil {
		return nil, "", err
	}
	rows, err := list(size+1, after)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(rows) > size {
		rows = rows[:size]
		next = encodePageToken(key(rows[size-1]), filter)
	}
	return rows, next, nil
}

type subscriptionService struct {
	seatledgerv1.UnimplementedSubscriptionServiceServer
	store *store.Store
}

// ListSubscriptions implements seatledger.v1.SubscriptionService.ListSubscriptions.
func (s *subscriptionService) ListSubscriptions(ctx context.Context, req *seatledgerv1.ListSubscriptionsRequest) (*seatledgerv1.ListSubscriptionsResponse, error) {
	if err := validateOptionalGUID("sku_id", req.GetSkuId()); err != nil {
		return nil, err
	}
	state := subscriptionStateFromProto(req.GetState())
	filter := fmt.Sprintf("state=%s;sku=%s", state, req.GetSkuId())
	rows, next, err := page(req, filter, func(size int, after string) ([]store.SubscriptionRow, error) {
		return s.store.ListSubscriptions(ctx, store.ListSubscriptionsParams{PageSize: size, AfterID: after, State: state, SKUID: req.GetSkuId()})
	}, func(r store.SubscriptionRow) string { return r.SubscriptionID })
	if err != nil {
		return nil, err
	}
	resp := &seatledgerv1.ListSubscriptionsResponse{NextPageToken: next}
	for _, r := range rows {
		resp.Subscriptions = append(resp.Subscriptions, subscriptionRowToProto(r))
	}
	return resp, nil
}

// ListAllotmentAssignments implements
// seatledger.v1.AllotmentService.ListAllotmentAssignments.
func (s *allotmentService) ListAllotmentAssignments(ctx context.Context, req *seatledgerv1.ListAllotmentAssignmentsRequest) (*seatledgerv1.ListAllotmentAssignmentsResponse, error) {
	if err := validateID("id", req.GetId()); err != nil {
		return nil, err
	}
	at, err := asOf(req.GetAsOf())
	if err != nil {
		return nil, err
	}
	if _, err := s.allotmentAt(ctx, req.GetId(), at); err != nil {
		return nil, err
	}
	rows, next, err := page(req, "allotment="+req.GetId()+";at="+at.Format(time.RFC3339Nano), func(size int, after string) ([]store.Assignment, error) {
		return s.store.ListAssignments(ctx, store.ListAssignmentsParams{PageSize: size, AfterID: after, AllotmentID: req.GetId(), AsOf: at})
	}, func(a store.Assignment) string { return a.ID })
	if err != nil {
		return nil, err
	}
	resp := &seatledgerv1.ListAllotmentAssignmentsResponse{NextPageToken: next}
	for _, a := range rows {
		resp.Assignments = append(resp.Assignments, assignmentToProto(a))
	}
	return resp, nil
}

// allotmentAt returns the allotment as of at (now when zero), so that the
// nested lists answer NOT_FOUND for an allotment that did not exist.
func (s *allotmentService) allotmentAt(ctx context.Context, id string, at time.Time) (store.Allotment, error) {
	if at.IsZero() {
		return s.store.GetAllotment(ctx, id)
	}
	return s.store.AllotmentAsOf(ctx, id, at)
}

// ListAllotmentWaitingMembers implements
// seatledger.v1.AllotmentService.ListAllotmentWaitingMembers.
func (s *allotmentService) ListAllotmentWaitingMembers(ctx context.Context, req *seatledgerv1.ListAllotmentWaitingMembersRequest) (*seatledgerv1.ListAllotmentWaitingMembersResponse, error) {
	if err := validateID("id", req.GetId()); err != nil {
		return nil, err
	}
	if _, err := s.store.GetAllotment(ctx, req.GetId()); err != nil {
		return nil, err
	}
	now := time.Now()
	rows, next, err := page(req, "allotment="+req.GetId(), func(size int, after string) ([]store.WaitingMember, error) {
		return s.store.ListWaitingMembers(ctx, store.ListWaitingMembersParams{PageSize: size, AfterID: after, AllotmentID: req.GetId()})
	}, func(w store.WaitingMember) string { return w.ID })
	if err != nil {
		return nil, err
	}
	resp := &seatledgerv1.ListAllotmentWaitingMembersResponse{NextPageToken: next}
	for _, w := range rows {
		resp.WaitingMembers = append(resp.WaitingMembers, waitingMemberToProto(w, now))
	}
	return resp, nil
}

// GetAllotmentHistory implements seatledger.v1.AllotmentService.GetAllotmentHistory.
func (s *allotmentService) GetAllotmentHistory(ctx context.Context, req *seatledgerv1.GetAllotmentHistoryRequest) (*seatledgerv1.GetAllotmentHistoryResponse, error) {
	if err := validateID("id", req.GetId()); err != nil {
		return nil, err
	}
	to := time.Now().UTC().Truncate(24 * time.Hour)
	if req.GetTo() != "" {
		d, err := time.Parse(time.DateOnly, req.GetTo())
		if err != nil {
			return nil, notDay("to", req.GetTo())
		}
		to = d
	}
	from := to.AddDate(0, 0, -30)
	if req.GetFrom() != "" {
		d, err := time.Parse(time.DateOnly, req.GetFrom())
		if err != nil {
			return nil, notDay("from", req.GetFrom())
		}
		from = d
	}
	if from.After(to) {
		return nil, invalidArgument("from", fmt.Sprintf("%s is after to (%s); give from on or before to", from.Format(time.DateOnly), to.Format(time.DateOnly)))
	}
	if to.Sub(from) > 3*366*24*time.Hour {
		return nil, invalidArgument("from", "the range is longer than three years; ask for it in parts")
	}
	granularity := req.GetGranularity()
	if granularity == seatledgerv1.HistoryGranularity_HISTORY_GRANULARITY_UNSPECIFIED {
		granularity = seatledgerv1.HistoryGranularity_HISTORY_GRANULARITY_DAY
	}
	daily := granularity == seatledgerv1.HistoryGranularity_HISTORY_GRANULARITY_DAY
	filter := fmt.Sprintf("id=%s;from=%s;to=%s;daily=%t", req.GetId(), from.Format(time.DateOnly), to.Format(time.DateOnly), daily)
	points, next, err := page(req, filter, func(size int, after string) ([]store.AllotmentPoint, error) {
		var afterT time.Time
		if after != "" {
			t, err := time.Parse(time.RFC3339Nano, after)
			if err != nil {
				return nil, badPageToken(req.GetPageToken())
			}
			afterT = t
		}
		// to is inclusive: the range ends at the start of the next day.
		return s.store.AllotmentHistory(ctx, store.HistoryParams{AllotmentID: req.GetId(), From: from, To: to.AddDate(0, 0, 1), Daily: daily, PageSize: size, After: afterT})
	}, func(p store.AllotmentPoint) string { return p.At.UTC().Format(time.RFC3339Nano) })
	if err != nil {
		return nil, err
	}
	resp := &seatledgerv1.GetAllotmentHistoryResponse{Allotment: "allotments/" + req.GetId(), Granularity: granularity, NextPageToken: next}
	for _, p := range points {
		resp.Points = append(resp.Points, &seatledgerv1.AllotmentHistoryPoint{
			Time: timeToProto(p.At), Date: p.Day, SyncRunId: p.RunID,
			AllottedUnits: p.Allotted, ConsumedUnits: p.Consumed, WaitingMembers: p.Waiting, AssignmentErrors: p.Errors,
		})
	}
	return resp, nil
}

type assignmentService struct {
	seatledgerv1.UnimplementedAssignmentServiceServer
	store *store.Store
	graph *graph.Client
	log   *slog.Logger
	after *Completions // what writes complete after answering (writes.go)
}

// ListAssignments implements seatledger.v1.AssignmentService.ListAssignments.
func (s *assignmentService) ListAssignments(ctx context.Context, req *seatledgerv1.ListAssignmentsRequest) (*seatledgerv1.ListAssignmentsResponse, error) {
	at, err := asOf(req.GetAsOf())
	if err != nil {
		return nil, err
	}
	if err := firstErr(validateOptionalID("allotment_id", req.GetAllotmentId()),
		validateOptionalGUID("sku_id", req.GetSkuId()), validateText("department", req.GetDepartment()),
		validateText("assignee", req.GetAssignee())); err != nil {
		return nil, err
	}
	assignee, err := resolveUser(ctx, s.store, "assignee", req.GetAssignee(), at)
	if err != nil {
		return nil, err
	}
	p := store.ListAssignmentsParams{AllotmentID: req.GetAllotmentId(), AssigneeID: assignee,
		AssigneeType: assigneeTypeFromProto(req.GetAssigneeType()), Department: req.GetDepartment(), SKUID: req.GetSkuId(), AsOf: at}
	filter := fmt.Sprintf("%s;%s;%s;%s;%s;%s", p.AllotmentID, p.AssigneeID, p.AssigneeType, p.Department, p.SKUID, at.Format(time.RFC3339Nano))
	rows, next, err := page(req, filter, func(size int, after string) ([]store.Assignment, error) {
		p.PageSize, p.AfterID = size, after
		return s.store.ListAssignments(ctx, p)
	}, func(a store.Assignment) string { return a.ID })
	if err != nil {
		return nil, err
	}
	resp := &seatledgerv1.ListAssignmentsResponse{NextPageToken: next}
	for _, a := range rows {
		resp.Assignments = append(resp.Assignments, assignmentToProto(a))
	}
	return resp, nil
}

// GetAssignment implements seatledger.v1.AssignmentService.GetAssignment.
func (s *assignmentService) GetAssignment(ctx context.Context, req *seatledgerv1.GetAssignmentRequest) (*seatledgerv1.Assignment, error) {
	if err := validateID("id", req.GetId()); err != nil {
		return nil, err
	}
	a, err := s.store.GetAssignment(ctx, req.GetId(), time.Time{})
	if err != nil {
		return nil, err
	}
	return assignmentToProto(a), nil
}

type waitingMemberService struct {
	seatledgerv1.UnimplementedWaitingMemberServiceServer
	store *store.Store
}

// ListWaitingMembers implements seatledger.v1.WaitingMemberService.ListWaitingMembers.
func (s *waitingMemberService) ListWaitingMembers(ctx context.Context, req *seatledgerv1.ListWaitingMembersRequest) (*seatledgerv1.ListWaitingMembersResponse, error) {
	if err := firstErr(validateOptionalID("allotment_id", req.GetAllotmentId()),
		validateOptionalGUID("sku_id", req.GetSkuId()), validateText("department", req.GetDepartment()),
		validateText("member", req.GetMember())); err != nil {
		return nil, err
	}
	var minAge time.Duration
	if d := req.GetMinWaitAge(); d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() < 0 {
			return nil, invalidArgument("min_wait_age", fmt.Sprintf("%s is not a non-negative duration, e.g. 86400s for one day", d.AsDuration()))
		}
		minAge = d.AsDuration()
	}
	member, err := resolveUser(ctx, s.store, "member", req.GetMember(), time.Time{})
	if err != nil {
		return nil, err
	}
	now := time.Now()
	p := store.ListWaitingMembersParams{AllotmentID: req.GetAllotmentId(), SKUID: req.GetSkuId(), MemberID: member, Department: req.GetDepartment()}
	if minAge > 0 {
		p.WaitingBefore = now.Add(-minAge)
	}
	filter := fmt.Sprintf("%s;%s;%s;%s;%v", p.AllotmentID, p.SKUID, p.MemberID, p.Department, minAge)
	rows, next, err := page(req, filter, func(size int, after string) ([]store.WaitingMember, error) {
		p.PageSize, p.AfterID = size, after
		return s.store.ListWaitingMembers(ctx, p)
	}, func(w store.WaitingMember) string { return w.ID })
	if err != nil {
		return nil, err
	}
	resp := &seatledgerv1.ListWaitingMembersResponse{NextPageToken: next}
	for _, w := range rows {
		resp.WaitingMembers = append(resp.WaitingMembers, waitingMemberToProto(w, now))
	}
	return resp, nil
}

type assignmentErrorService struct {
	seatledgerv1.UnimplementedAssignmentErrorServiceServer
	store *store.Store
}

// ListAssignmentErrors implements seatledger.v1.AssignmentErrorService.ListAssignmentErrors.
func (s *assignmentErrorService) ListAssignmentErrors(ctx context.Context, req *seatledgerv1.ListAssignmentErrorsRequest) (*seatledgerv1.ListAssignmentErrorsResponse, error) {
	if err := firstErr(validateOptionalGUID("sku_id", req.GetSkuId()), validateText("department", req.GetDepartment()),
		validateText("code", req.GetCode()), validateText("user", req.GetUser())); err != nil {
		return nil, err
	}
	user, err := resolveUser(ctx, s.store, "user", req.GetUser(), time.Time{})
	if err != nil {
		return nil, err
	}
	p := store.ListAssignmentErrorsParams{SKUID: req.GetSkuId(), UserID: user, Department: req.GetDepartment(), Code: req.GetCode()}
	filter := fmt.Sprintf("%s;%s;%s;%s", p.SKUID, p.UserID, p.Department, p.Code)
	rows, next, err := page(req, filter, func(size int, after string) ([]store.AssignmentError, error) {
		p.PageSize, p.AfterID = size, after
		return s.store.ListAssignmentErrors(ctx, p)
	}, func(e store.AssignmentError) string { return e.ID })
	if err != nil {
		return nil, err
	}
	resp := &seatledgerv1.ListAssignmentErrorsResponse{NextPageToken: next}
	for _, e := range rows {
		resp.AssignmentErrors = append(resp.AssignmentErrors, assignmentErrorToProto(e))
	}
	return resp, nil
}

func waitAge(since, now time.Time) *durationpb.Duration {
	if since.IsZero() || since.After(now) {
		return durationpb.New(0)
	}
	return durationpb.New(now.Sub(since).Truncate(time.Second))
}
