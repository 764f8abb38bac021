package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	seatledgerv1 "github.com/seatledger/seatledger/gen/seatledger/v1"
	"github.com/seatledger/seatledger/internal/auth"
	"github.com/seatledger/seatledger/internal/graph"
	"github.com/seatledger/seatledger/internal/licensing"
	"github.com/seatledger/seatledger/internal/store"
)

// The write side: assignment writes proxied to Graph, reprocessing, and
// allotment ownership. Every attempt, whatever its outcome, leaves one
// audit event. CreateAssignment is made safe to retry with idempotency
// keys; PATCH and DELETE are idempotent by nature (the PATCH replaces the
// whole list).

// Full method names as audit events record them.
const (
	methodCreateAssignment  = "seatledger.v1.AssignmentService.CreateAssignment"
	methodUpdateAssignment  = "seatledger.v1.AssignmentService.UpdateAssignment"
	methodDeleteAssignment  = "seatledger.v1.AssignmentService.DeleteAssignment"
	methodReprocessUser     = "seatledger.v1.UserService.ReprocessUser"
	methodSetAllotmentOwner = "seatledger.v1.AllotmentService.SetAllotmentOwner"
)

// Idempotency settings: keys are kept for idempotencyTTL (the contract
// promises 24 hours); an attempt that holds a key for longer than
// idempotencyLease without finishing is presumed dead (its process
// crashed) and the key is taken over, reading Graph back first.
const (
	idempotencyTTL     = 25 * time.Hour
	idempotencyLease   = 5 * time.Minute
	idempotencyPoll    = 100 * time.Millisecond
	maxIdempotencyKey  = 255
	idempotencyHeader  = "idempotency-key"
	anonymousActor     = "anonymous"
	readBackTimeout    = 30 * time.Second
	recordWriteTimeout = 10 * time.Second
)

// actorOf names the caller for audit and idempotency scoping.
func actorOf(ctx context.Context) string {
	if id, ok := auth.FromContext(ctx); ok && id.Subject != "" {
		return id.Subject
	}
	return anonymousActor
}

// actorNameOf is the caller's name as its token gives it, for the audit
// log ("" when there is none).
func actorNameOf(ctx context.Context) string {
	if id, ok := auth.FromContext(ctx); ok {
		return id.Name
	}
	return ""
}

// newRequestID returns an id for one write, logged and audited, so an
// audit event leads to its log lines.
func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// writeCall collects what the audit event of one write attempt records.
type writeCall struct {
	st     *store.Store
	log    *slog.Logger
	method string
	start  time.Time
	event  store.AuditEvent
	graph  *graph.ResponseInfo // Graph's answers to this call's writes
}

func beginWrite(ctx context.Context, st *store.Store, log *slog.Logger, method string, req proto.Message) *writeCall {
	w := &writeCall{st: st, log: log, method: method, start: time.Now()}
	w.event = store.AuditEvent{
		Time:      w.start.UTC(),
		Actor:     actorOf(ctx),
		ActorName: actorNameOf(ctx),
		Method:    method,
		Resource:  auditResource(req, nil),
		RequestID: newRequestID(),
		Details:   map[string]string{},
	}
	if req != nil {
		if b, err := protojson.Marshal(req); err == nil {
			w.event.Request = b
		}
	}
	return w
}

// graphCtx is ctx for the call's write to Graph: Graph's answer is noted
// for the audit (noteGraph).
func (w *writeCall) graphCtx(ctx context.Context) context.Context {
	ctx, w.graph = graph.WithResponseInfo(ctx)
	return ctx
}

// noteGraph keeps, for the audit, Graph's request-id of the call's write:
// the failed call's, else that of Graph's last answer, successful or not.
func (w *writeCall) noteGraph(err error) {
	var gerr *graph.Error
	if errors.As(err, &gerr) && gerr.RequestID != "" {
		w.event.GraphRequestID = gerr.RequestID
		return
	}
	if w.graph != nil {
		if id := w.graph.RequestID(); id != "" {
			w.event.GraphRequestID = id
		}
	}
}

// finish records the audit event with err's status (err must already be a
// status or nil) and logs one line. Recording survives the caller going
// away: an attempt whose caller hung up is still audited.
func (w *writeCall) finish(ctx context.Context, err error) {
	st := status.Convert(err)
	w.event.Status = codeName(st.Code())
	if err != nil {
		w.event.Message = st.Message()
	}
	w.event.Latency = time.Since(w.start)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordWriteTimeout)
	defer cancel()
	if _, aerr := w.st.RecordAuditEvent(rctx, w.event); aerr != nil {
		w.log.ErrorContext(ctx, "audit event not recorded", "method", w.method, "request_id", w.event.RequestID, "err", aerr)
	}
	w.log.InfoContext(ctx, "write", "method", w.method, "request_id", w.event.RequestID, "actor", w.event.Actor,
		"resource", w.event.Resource, "code", w.event.Status, "graph_request_id", w.event.GraphRequestID,
		"took", w.event.Latency.Round(time.Microsecond))
}

// codeName is the canonical name of a gRPC code, as google.rpc.Code
// spells it ("NOT_FOUND").
func codeName(c codes.Code) string {
	if name, ok := codeNames[c]; ok {
		return name
	}
	return "UNKNOWN"
}

var codeNames = map[codes.Code]string{
	codes.OK: "OK", codes.Canceled: "CANCELLED", codes.Unknown: "UNKNOWN", codes.InvalidArgument: "INVALID_ARGUMENT",
	codes.DeadlineExceeded: "DEADLINE_EXCEEDED", codes.NotFound: "NOT_FOUND", codes.AlreadyExists: "ALREADY_EXISTS",
	codes.PermissionDenied: "PERMISSION_DENIED", codes.ResourceExhausted: "RESOURCE_EXHAUSTED",
	codes.FailedPrecondition: "FAILED_PRECONDITION", codes.Aborted: "ABORTED", codes.OutOfRange: "OUT_OF_RANGE",
	codes.Unimplemented: "UNIMPLEMENTED", codes.Internal: "INTERNAL", codes.Unavailable: "UNAVAILABLE",
	codes.DataLoss: "DATA_LOSS", codes.Unauthenticated: "UNAUTHENTICATED",
}

// idempotencyKeyOf returns the caller's idempotency key: the request
// field, or the Idempotency-Key HTTP header (forwarded as metadata). Both
// may be given only if equal.
func idempotencyKeyOf(ctx context.Context, field string) (string, error) {
	key := field
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if vals := md.Get(idempotencyHeader); len(vals) > 0 {
			switch {
			case len(vals) > 1:
				return "", invalidArgument("idempotency_key", "send one Idempotency-Key header, not several")
			case key != "" && key != vals[0]:
				return "", invalidArgument("idempotency_key", "the Idempotency-Key header and the idempotency_key field differ")
			}
			key = vals[0]
		}
	}
	switch {
	case len(key) > maxIdempotencyKey:
		return "", invalidArgument("idempotency_key", fmt.Sprintf("longer than %d characters", maxIdempotencyKey))
	case strings.ContainsFunc(key, func(r rune) bool { return r < 0x21 || r == 0x7f }):
		return "", invalidArgument("idempotency_key", "must be printable, without spaces")
	}
	return key, nil
}

// keyLocks serializes the attempts of one process that share an
// idempotency key, so that concurrent duplicates wait in memory (holding
// no database connection) while the first one calls Graph. Attempts in
// other processes are kept apart by the key's pending row.
var keyLocks = keyedMutex{m: map[string]*keyLock{}}

type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	sem  chan struct{}
	refs int
}

// lock waits for key's lock (or ctx) and returns its unlock function.
func (k *keyedMutex) lock(ctx context.Context, key string) (func(), error) {
	k.mu.Lock()
	l := k.m[key]
	if l == nil {
		l = &keyLock{sem: make(chan struct{}, 1)}
		k.m[key] = l
	}
	l.refs++
	k.mu.Unlock()
	release := func() {
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
	select {
	case l.sem <- struct{}{}:
		return func() { <-l.sem; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}

// outcomeUnknown is the error of a write whose effect in Graph could not
// be established (Graph's answer was lost and reading back failed): the
// key is marked so the next attempt reads back before writing.
type outcomeUnknown struct{ st *status.Status }

func (o *outcomeUnknown) Error() string              { return o.st.Message() }
func (o *outcomeUnknown) GRPCStatus() *status.Status { return o.st }

// remembered reports whether a failure is final for its request and is
// stored under the idempotency key (a refusal: pre-check or Graph's), as
// opposed to a transient one that a retry under the same key may redo.
func remembered(code codes.Code) bool {
	switch code {
	case codes.InvalidArgument, codes.NotFound, codes.AlreadyExists, codes.PermissionDenied,
		codes.FailedPrecondition, codes.ResourceExhausted, codes.OutOfRange:
		return true
	}
	return false
}

// requestHash fingerprints a request: its deterministic encoding with the
// idempotency key cleared, plus the method.
func requestHash(method string, req proto.Message) (string, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(req)
	if err != nil {
		return "", fmt.Errorf("encode request: %w", err)
	}
	sum := sha256.Sum256(append([]byte(method+"\x00"), b...))
	return hex.EncodeToString(sum[:]), nil
}

// runIdempotent runs do at most once per key: the first attempt claims the
// key, calls do and stores its outcome; repeats get that outcome with
// replay set, concurrent ones after waiting for it. With no key it just
// calls do. do's errors must be statuses. readBack tells do that an earlier
// attempt's outcome in Graph is unknown.
func runIdempotent[T proto.Message](ctx context.Context, st *store.Store, log *slog.Logger, key store.IdempotencyKey, reqHash string,
	newResp func() T, do func(ctx context.Context, readBack bool) (T, error)) (resp T, replay bool, err error) {
	var zero T
	if key.Key == "" {
		resp, err = do(ctx, false)
		return resp, false, err
	}
	unlock, err := keyLocks.lock(ctx, key.Caller+"\x00"+key.Method+"\x00"+key.Key)
	if err != nil {
		return zero, false, status.FromContextError(err).Err()
	}
	defer unlock()
	var claim store.Claim
	for {
		claim, err = st.ClaimIdempotencyKey(ctx, key, reqHash, idempotencyTTL, idempotencyLease)
		if errors.Is(err, store.ErrIdempotencyMismatch) {
			return zero, false, status.Error(codes.Aborted, "this idempotency key was already used with a different request; "+
				"use a new key for a new request, or repeat the first request unchanged")
		}
		if err != nil {
			return zero, false, err
		}
		if !claim.Busy {
			break
		}
		// Another process holds the key: wait for its outcome.
		t := time.NewTimer(idempotencyPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return zero, false, status.Error(codes.Aborted, "a request with this idempotency key is still in progress; retry later with the same key")
		case <-t.C:
		}
	}
	if r := claim.Result; r != nil {
		if codes.Code(r.Code) != codes.OK {
			var sp spb.Status
			if err := proto.Unmarshal(r.Body, &sp); err != nil {
				return zero, true, fmt.Errorf("decode stored result: %w", err)
			}
			return zero, true, status.FromProto(&sp).Err()
		}
		resp = newResp()
		if err := proto.Unmarshal(r.Body, resp); err != nil {
			return zero, true, fmt.Errorf("decode stored response: %w", err)
		}
		return resp, true, nil
	}

	resp, err = do(ctx, claim.ReadBack)

	// Store the outcome even if the caller went away meanwhile.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordWriteTimeout)
	defer cancel()
	var serr error
	var unknown *outcomeUnknown
	switch code := status.Code(err); {
	case err == nil:
		var body []byte
		if body, serr = proto.Marshal(resp); serr == nil {
			serr = st.FinishIdempotencyKey(sctx, key, int32(codes.OK), body)
		}
	case errors.As(err, &unknown):
		serr = st.MarkIdempotencyUnknown(sctx, key)
	case remembered(code):
		var body []byte
		if body, serr = proto.Marshal(status.Convert(err).Proto()); serr == nil {
			serr = st.FinishIdempotencyKey(sctx, key, int32(code), body)
		}
	default:
		serr = st.ReleaseIdempotencyKey(sctx, key)
	}
	if serr != nil {
		// The key stays pending; after the lease a retry takes it over and
		// reads Graph back. Graph's outcome is reported either way.
		log.ErrorContext(ctx, "idempotency key outcome not stored", "method", key.Method, "err", serr)
	}
	return resp, false, err
}

// CreateAssignment implements seatledger.v1.AssignmentService.CreateAssignment.
func (s *assignmentService) CreateAssignment(ctx context.Context, req *seatledgerv1.CreateAssignmentRequest) (*seatledgerv1.CreateAssignmentResponse, error) {
	call := beginWrite(ctx, s.store, s.log, methodCreateAssignment, req)
	resp, err := s.createAssignment(ctx, req, call)
	if err != nil {
		err = toStatus(ctx, s.log, methodCreateAssignment, err)
	}
	if resp != nil && resp.GetAssignment() != nil {
		call.event.Resource = resp.GetAssignment().GetName()
	}
	call.finish(ctx, err)
	if err != nil {
		return nil, err
	}
	return resp, nil
}

func (s *assignmentService) createAssignment(ctx context.Context, req *seatledgerv1.CreateAssignmentRequest, call *writeCall) (*seatledgerv1.CreateAssignmentResponse, error) {
	key, err := idempotencyKeyOf(ctx, req.GetIdempotencyKey())
	if err != nil {
		return nil, err
	}
	call.event.IdempotencyKey = key
	canonical := proto.CloneOf(req)
	canonical.IdempotencyKey = ""
	if u := canonical.GetUser(); u != "" {
		canonical.Assignee = &seatledgerv1.CreateAssignmentRequest_User{User: strings.ToLower(u)}
	}
	hash, err := requestHash(methodCreateAssignment, canonical)
	if err != nil {
		return nil, err
	}
	resp, replay, err := runIdempotent(ctx, s.store, s.log,
		store.IdempotencyKey{Caller: call.event.Actor, Method: methodCreateAssignment, Key: key}, hash,
		func() *seatledgerv1.CreateAssignmentResponse { return &seatledgerv1.CreateAssignmentResponse{} },
		func(ctx context.Context, readBack bool) (*seatledgerv1.CreateAssignmentResponse, error) {
			resp, err := s.create(ctx, req, call, readBack)
			if err != nil {
				return nil, toStatus(ctx, s.log, methodCreateAssignment, err)
			}
			return resp, nil
		})
	if replay {
		call.event.Details["idempotent_replay"] = "true"
	}
	if err != nil {
		return nil, err
	}
	resp.IdempotentReplay = replay
	return resp, nil
}

// assignee is who a create assigns to, resolved from the request.
type assignee struct {
	field string // the request field that named it
	id    string // directory object id
	kind  string // store.KindUser, KindGroup or KindDevice
	user  *store.User
}

// rules is the assignee as licensing's rules see it.
func (a assignee) rules() licensing.Assignee {
	out := licensing.Assignee{Field: a.field, ID: a.id, Kind: a.kind}
	if a.user != nil {
		out.UserPrincipalName, out.Department = a.user.UserPrincipalName, a.user.Department
	}
	return out
}

// resolveAssignee checks the assignee fields and finds a user in the
// mirror. Groups and devices are not mirrored as such: Graph checks them.
func (s *assignmentService) resolveAssignee(ctx context.Context, req *seatledgerv1.CreateAssignmentRequest) (assignee, error) {
	switch v := req.GetAssignee().(type) {
	case *seatledgerv1.CreateAssignmentRequest_User:
		if v.User == "" {
			return assignee{}, invalidArgument("user", "must not be empty")
		}
		if err := validateText("user", v.User); err != nil {
			return assignee{}, err
		}
		u, err := s.store.GetUser(ctx, v.User, time.Time{})
		if errors.Is(err, store.ErrNotFound) {
			// Not mirrored yet (a new hire created since the last sync):
			// ask the directory itself.
			u, err = s.directoryUser(ctx, v.User)
		}
		if err != nil {
			return assignee{}, err
		}
		return assignee{field: "user", id: u.ID, kind: store.KindUser, user: &u}, nil
	case *seatledgerv1.CreateAssignmentRequest_GroupId:
		if !guidPattern.MatchString(v.GroupId) {
			return assignee{}, notGUID("group_id", v.GroupId)
		}
		return assignee{field: "group_id", id: strings.ToLower(v.GroupId), kind: store.KindGroup}, nil
	case *seatledgerv1.CreateAssignmentRequest_DeviceId:
		if !guidPattern.MatchString(v.DeviceId) {
			return assignee{}, notGUID("device_id", v.DeviceId)
		}
		return assignee{field: "device_id", id: strings.ToLower(v.DeviceId), kind: store.KindDevice}, nil
	}
	return assignee{}, invalidArgument("assignee", "set one of user, group_id or device_id")
}

// directoryUser reads a user the mirror does not hold yet from Graph. A
// user Graph does not know either is NOT_FOUND.
func (s *assignmentService) directoryUser(ctx context.Context, idOrUPN string) (store.User, error) {
	g, err := s.graph.GetUser(ctx, idOrUPN)
	var gerr *graph.Error
	switch {
	case errors.As(err, &gerr) && gerr.Status == http.StatusNotFound:
		return store.User{}, notFoundStatus("user", idOrUPN, fmt.Sprintf("user %q does not exist in the directory; "+
			"check the id or user principal name", idOrUPN))
	case err != nil:
		return store.User{}, err
	case !graph.IsGUID(g.ID):
		return store.User{}, fmt.Errorf("directory user %q has id %q, not a GUID", idOrUPN, g.ID)
	}
	return store.User{ID: g.ID, UserPrincipalName: g.UserPrincipalName, DisplayName: g.DisplayName,
		Department: g.Department, CompanyName: g.CompanyName, CostCenter: g.CostCenter, AccountEnabled: g.AccountEnabled}, nil
}

// notFoundStatus is NOT_FOUND with a ResourceInfo naming what is missing.
func notFoundStatus(kind, name, msg string) error {
	st := status.New(codes.NotFound, msg)
	if d, err := st.WithDetails(&errdetails.ResourceInfo{ResourceType: kind, ResourceName: name, Description: msg}); err == nil {
		st = d
	}
	return st.Err()
}

// exhausted is RESOURCE_EXHAUSTED with a QuotaFailure naming the full
// allotments.
func exhausted(msg string, full []licensing.Allotment) error {
	st := status.New(codes.ResourceExhausted, msg)
	var v []*errdetails.QuotaFailure_Violation
	for _, a := range full {
		v = append(v, &errdetails.QuotaFailure_Violation{Subject: "allotments/" + a.ID,
			Description: fmt.Sprintf("%d of %d licences in use", a.ConsumedUnits, a.AllottedUnits)})
	}
	if d, err := st.WithDetails(&errdetails.QuotaFailure{Violations: v},
		&errdetails.ErrorInfo{Reason: "NO_AVAILABLE_LICENSES", Domain: "seatledger"}); err == nil {
		st = d
	}
	return st.Err()
}

// plannedCreate is the outcome of the pre-checks: where the seat comes
// from and why.
type plannedCreate struct {
	who       assignee
	allotment store.Allotment
	reason    seatledgerv1.AllotmentChoiceReason
	detail    string
	owner     string
}

// candidates returns the allotments the request may draw from: the named
// one, or every current allotment of the SKU.
func (s *assignmentService) candidates(ctx context.Context, req *seatledgerv1.CreateAssignmentRequest) ([]store.Allotment, error) {
	switch src := req.GetSource().(type) {
	case *seatledgerv1.CreateAssignmentRequest_AllotmentId:
		if err := validateID("allotment_id", src.AllotmentId); err != nil {
			return nil, err
		}
		a, err := s.store.GetAllotment(ctx, src.AllotmentId)
		if errors.Is(err, store.ErrNotFound) {
			return nil, notFoundStatus("allotment", src.AllotmentId, fmt.Sprintf("allotment %q does not exist (as of the last sync)", src.AllotmentId))
		}
		if err != nil {
			return nil, err
		}
		return []store.Allotment{a}, nil
	case *seatledgerv1.CreateAssignmentRequest_SkuId:
		if !guidPattern.MatchString(src.SkuId) {
			return nil, notGUID("sku_id", src.SkuId)
		}
		list, err := s.store.ListAllotments(ctx, store.ListAllotmentsParams{PageSize: maxPageSize, SKUID: strings.ToLower(src.SkuId)})
		if err != nil {
			return nil, err
		}
		if len(list) == 0 {
			return nil, notFoundStatus("sku", src.SkuId, fmt.Sprintf("no allotment of SKU %s exists (as of the last sync)", src.SkuId))
		}
		return list, nil
	}
	return nil, invalidArgument("source", "set allotment_id or sku_id")
}

// plan runs the pre-checks, in the documented order (assignee type, plan
// ids, existing seat, free seat), and chooses the allotment: the rules are
// licensing's, the reads and the statuses its refusals become are here.
func (s *assignmentService) plan(ctx context.Context, req *seatledgerv1.CreateAssignmentRequest, who assignee, all []store.Allotment) (plannedCreate, error) {
	_, named := req.GetSource().(*seatledgerv1.CreateAssignmentRequest_AllotmentId)
	rules := who.rules()
	usable, err := licensing.Usable(rules, allotmentsToRules(all, nil), named)
	if err != nil {
		return plannedCreate{}, refusal(err, nil)
	}
	for i, p := range req.GetDisabledServicePlanIds() {
		field := fmt.Sprintf("disabled_service_plan_ids[%d]", i)
		if !guidPattern.MatchString(p) {
			return plannedCreate{}, notGUID(field, p)
		}
		if err := licensing.CheckPlan(usable[0], p); err != nil {
			return plannedCreate{}, invalidArgument(field, err.Error())
		}
	}
	held, err := s.store.ListAssignments(ctx, store.ListAssignmentsParams{PageSize: maxPageSize, AssigneeID: who.id})
	if err != nil {
		return plannedCreate{}, err
	}
	if err := licensing.CheckNotHeld(rules, usable, heldToRules(held)); err != nil {
		return plannedCreate{}, refusal(err, held)
	}
	owners, err := s.store.AllotmentOwners(ctx, time.Time{})
	if err != nil {
		return plannedCreate{}, err
	}
	for i := range usable {
		usable[i].Owner = owners[usable[i].ID]
	}
	var c licensing.Choice
	if named {
		c, err = licensing.Requested(rules, usable[0])
		var full *licensing.NoFreeSeatError
		if errors.As(err, &full) {
			others, lerr := s.store.ListAllotments(ctx, store.ListAllotmentsParams{PageSize: maxPageSize, SKUID: usable[0].SKUID})
			if lerr != nil {
				return plannedCreate{}, lerr
			}
			full.Elsewhere = allotmentsToRules(others, nil)
		}
	} else {
		c, err = licensing.Choose(rules, usable)
	}
	if err != nil {
		return plannedCreate{}, refusal(err, nil)
	}
	i := slices.IndexFunc(all, func(a store.Allotment) bool { return a.ID == c.Allotment.ID })
	return plannedCreate{who: who, allotment: all[i], owner: c.Allotment.Owner, reason: choiceReasonToProto(c.Reason), detail: c.Detail}, nil
}

// refusal turns licensing's refusals into statuses; held are the
// assignee's assignments (for an AlreadyAssignedError's detail).
func refusal(err error, held []store.Assignment) error {
	var (
		notAssignable *licensing.NotAssignableError
		already       *licensing.AlreadyAssignedError
		full          *licensing.NoFreeSeatError
	)
	switch {
	case errors.As(err, &notAssignable):
		return invalidArgument(notAssignable.Assignee.Field, err.Error())
	case errors.As(err, &already):
		i := slices.IndexFunc(held, func(h store.Assignment) bool { return h.ID == already.Held.AssignmentID })
		return alreadyAssigned(err.Error(), held[i])
	case errors.As(err, &full):
		return exhausted(err.Error(), full.Full)
	}
	return err
}

// alreadyAssigned is ALREADY_EXISTS carrying the existing assignment.
func alreadyAssigned(msg string, h store.Assignment) error {
	st := status.New(codes.AlreadyExists, msg)
	if d, err := st.WithDetails(&errdetails.ResourceInfo{ResourceType: "assignment", ResourceName: "assignments/" + h.ID, Description: msg},
		assignmentToProto(h)); err == nil {
		st = d
	}
	return st.Err()
}

// create is one attempt of CreateAssignment: pre-checks, the Graph POST,
// resolution of an unknown outcome by reading back, and the write-through
// into the mirror.
func (s *assignmentService) create(ctx context.Context, req *seatledgerv1.CreateAssignmentRequest, call *writeCall, readBack bool) (*seatledgerv1.CreateAssignmentResponse, error) {
	who, err := s.resolveAssignee(ctx, req)
	if err != nil {
		return nil, err
	}
	all, err := s.candidates(ctx, req)
	if err != nil {
		return nil, err
	}
	if readBack {
		// An earlier attempt under this key may have assigned already.
		ids := make([]string, 0, len(all))
		for _, a := range all {
			ids = append(ids, a.ID)
		}
		found, ok, err := s.readBack(context.WithoutCancel(ctx), who, ids)
		if err != nil {
			return nil, unknownOutcome(err)
		}
		if ok {
			call.event.Details["outcome"] = "found by reading Graph back after an earlier attempt's outcome was unknown"
			al := all[slices.IndexFunc(all, func(a store.Allotment) bool { return a.ID == found.AllotmentID })]
			p := plannedCreate{who: who, allotment: al, reason: seatledgerv1.AllotmentChoiceReason_ALLOTMENT_CHOICE_REASON_UNSPECIFIED,
				detail: "an earlier attempt with this idempotency key assigned from this allotment; its answer was lost and reading Graph back found it"}
			return s.created(ctx, p, found, false)
		}
	}
	p, err := s.plan(ctx, req, who, all)
	if err != nil {
		return nil, err
	}
	call.event.Details["allotment_id"] = p.allotment.ID
	call.event.Details["sku_id"] = p.allotment.SKUID
	call.event.Details["assignee"] = who.kind + "s/" + who.id
	a, err := s.graph.CreateAssignment(call.graphCtx(ctx), graph.CreateAssignment{
		AllotmentID: p.allotment.ID, AssigneeID: who.id, AssigneeType: who.kind,
		DisabledServicePlanIDs: lowerAll(req.GetDisabledServicePlanIds()),
	})
	call.noteGraph(err)
	switch {
	case err != nil && graph.OutcomeUnknown(err):
		s.log.WarnContext(ctx, "graph create outcome unknown; reading back", "request_id", call.event.RequestID, "err", err)
		found, ok, rerr := s.readBack(context.WithoutCancel(ctx), who, []string{p.allotment.ID})
		if rerr != nil {
			return nil, unknownOutcome(rerr)
		}
		if !ok {
			call.event.Details["outcome"] = "Graph's answer was lost; reading back found no assignment"
			return nil, status.Error(codes.Unavailable, "Microsoft Graph did not answer the assignment request, and reading Graph back shows "+
				"that nothing was assigned; retry (with the same idempotency key)")
		}
		call.event.Details["outcome"] = "Graph's answer was lost; reading back found the assignment"
		return s.created(ctx, p, found, false)
	case err != nil:
		return nil, s.withAlternatives(ctx, err, p.allotment)
	}
	return s.created(ctx, p, a, true)
}

// withAlternatives adds, to Graph's refusal for lack of seats (the mirror
// still counted one free), where else the SKU has free seats.
func (s *assignmentService) withAlternatives(ctx context.Context, err error, al store.Allotment) error {
	var gerr *graph.Error
	if !errors.As(err, &gerr) || !strings.EqualFold(gerr.InnerCode, "noAvailableLicenses") {
		return err
	}
	others, lerr := s.store.ListAllotments(ctx, store.ListAllotmentsParams{PageSize: maxPageSize, SKUID: al.SKUID})
	if lerr != nil {
		return err
	}
	st := status.Convert(graphStatus(gerr)).Proto()
	st.Message += "; " + licensing.FreeSeatsElsewhere(allotmentsToRules(others, nil), al.ID)
	return status.FromProto(st).Err()
}

func lowerAll(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = strings.ToLower(id)
	}
	return out
}

// unknownOutcome is the error when neither Graph's answer nor a read-back
// tells whether the assignment was made.
func unknownOutcome(err error) error {
	return &outcomeUnknown{status.New(codes.Unavailable, "Microsoft Graph did not answer, and reading it back failed too ("+
		errorSummary(err)+"); the assignment may or may not exist: retry with the same idempotency key, "+
		"seatledger reads Graph back before assigning again")}
}

// errorSummary is a short description of a Graph error without internal
// detail.
func errorSummary(err error) string {
	var gerr *graph.Error
	if errors.As(err, &gerr) {
		return fmt.Sprintf("HTTP %d %s", gerr.Status, gerr.Code)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	return "network failure"
}

// readBack looks in Graph for the assignee's assignment from one of the
// allotments, giving up after readBackTimeout or when ctx ends (callers
// answering a request pass it without its end: the caller's deadline may
// be spent).
func (s *assignmentService) readBack(ctx context.Context, who assignee, allotmentIDs []string) (graph.Assignment, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, readBackTimeout)
	defer cancel()
	seq := s.graph.Assignments(ctx)
	if who.kind == store.KindUser {
		seq = s.graph.UserAssignments(ctx, who.id)
	}
	for a, err := range seq {
		if err != nil {
			return graph.Assignment{}, false, fmt.Errorf("read back assignments of %s %s: %w", who.kind, who.id, err)
		}
		if strings.EqualFold(a.AssignedTo.ID, who.id) && slices.Contains(allotmentIDs, a.AllotmentID) {
			return a, true, nil
		}
	}
	return graph.Assignment{}, false, nil
}

// created writes a new assignment through to the mirror and builds the
// response. answered means a is Graph's answer to this attempt's POST;
// otherwise a was found by reading Graph back.
//
// The caller hears back after one Graph round trip (the POST): Graph's
// answer is recorded at once, marked provisional (it is not the shape the
// sync stores), and the seat it takes is counted in the allotment's
// consumed units, in one transaction. What needs Graph again completes
// after the answer (see complete). A group's seats are Graph's to count
// as it processes the members, so for a group the allotment is read
// before answering, as it is after a read-back (rare paths, where the
// mirror may have counted the assignment already).
func (s *assignmentService) created(ctx context.Context, p plannedCreate, a graph.Assignment, answered bool) (*seatledgerv1.CreateAssignmentResponse, error) {
	if a.ID == "" {
		// Graph's answer omitted the id: only reading back tells it.
		found, ok, err := s.readBack(context.WithoutCancel(ctx), p.who, []string{p.allotment.ID})
		if err != nil || !ok {
			return nil, unknownOutcome(fmt.Errorf("graph created an assignment without telling its id: %w", err))
		}
		a, answered = found, false
	}
	rec := store.Assignment{ID: a.ID, AllotmentID: p.allotment.ID, AssigneeID: p.who.id, AssigneeType: p.who.kind,
		DisabledPlanIDs: a.DisabledServicePlanIDs, Raw: a.Raw}
	out := assignmentToProto(rec)
	// The answer shows the allotment after the write it reports: as the
	// mirror has it once the write is recorded (what a GET right after
	// shows), else the state chosen from with the seat taken.
	after := p.allotment
	after.OwnerDepartment = p.owner
	recorded := false
	if answered && p.who.kind != store.KindGroup {
		after.ConsumedUnits++
		if stored, err := s.recordCreated(ctx, rec, 1); err == nil {
			out, recorded = assignmentToProto(stored), true
		}
		s.after.Go(ctx, func(ctx context.Context) { s.complete(ctx, p, rec) })
	} else {
		// Read the allotment while recording: the units are in the mirror
		// when the caller hears back.
		refreshed := make(chan struct{})
		go func() {
			defer close(refreshed)
			s.refreshAllotment(context.WithoutCancel(ctx), p.allotment.ID)
		}()
		var stored store.Assignment
		var err error
		if answered {
			stored, err = s.recordCreated(ctx, rec, 0)
		} else {
			stored, err = s.recordAssignment(ctx, rec)
		}
		if err == nil {
			out, recorded = assignmentToProto(stored), true
		}
		<-refreshed
	}
	if recorded {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordWriteTimeout)
		if fresh, err := s.store.GetAllotment(rctx, p.allotment.ID); err == nil {
			after = fresh
		}
		cancel()
	}
	return &seatledgerv1.CreateAssignmentResponse{
		Assignment: out, Allotment: allotmentToProto(after), AllotmentChoiceReason: p.reason, AllotmentChoiceDetail: p.detail,
	}, nil
}

// complete finishes a create after its answer, both reads at once: the
// allotment's true units replace the estimate, and a user's assignment,
// read back in the shape the sync stores, settles the provisional version
// in place (a group's or a device's would need the tenant's whole listing;
// the next sync settles those). Failures are logged: the next sync does
// the same.
func (s *assignmentService) complete(ctx context.Context, p plannedCreate, rec store.Assignment) {
	var wg sync.WaitGroup
	wg.Go(func() { s.refreshAllotment(ctx, p.allotment.ID) })
	if p.who.kind == store.KindUser {
		wg.Go(func() { s.settle(ctx, p.who, rec) })
	}
	wg.Wait()
}

// settle reads a created assignment back and settles its provisional
// version with it.
func (s *assignmentService) settle(ctx context.Context, who assignee, rec store.Assignment) {
	found, ok, err := s.readBack(ctx, who, []string{rec.AllotmentID})
	if err == nil && ok && found.ID == rec.ID {
		rec.DisabledPlanIDs, rec.Raw = found.DisabledServicePlanIDs, found.Raw
		_, err = s.store.SettleAssignment(ctx, rec)
	}
	if err != nil {
		s.log.WarnContext(ctx, "created assignment not read back; the next sync will settle it", "assignment_id", rec.ID, "err", err)
	}
}

// recordCreated writes a created assignment through to the mirror from
// Graph's answer, counting seats in its allotment; a failure is logged,
// not returned: Graph made the change, and the next sync records it.
func (s *assignmentService) recordCreated(ctx context.Context, a store.Assignment, seats int32) (store.Assignment, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordWriteTimeout)
	defer cancel()
	stored, err := s.store.RecordCreatedAssignment(ctx, a, seats, time.Now())
	if err != nil {
		s.log.ErrorContext(ctx, "assignment not written through to the mirror; the next sync will record it", "assignment_id", a.ID, "err", err)
	}
	return stored, err
}

// recordAssignment writes through to the mirror; a failure is logged,
// not returned: Graph made the change, and the next sync records it.
func (s *assignmentService) recordAssignment(ctx context.Context, a store.Assignment) (store.Assignment, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordWriteTimeout)
	defer cancel()
	stored, err := s.store.RecordAssignment(ctx, a, time.Now())
	if err != nil {
		s.log.ErrorContext(ctx, "assignment not written through to the mirror; the next sync will record it", "assignment_id", a.ID, "err", err)
	}
	return stored, err
}

// refreshAllotment re-reads an allotment's units from Graph after a write
// and records them, so that free seats are right before the next sync.
// Best effort: a failure is logged; the next sync corrects the counts. It
// gives up when ctx ends or after recordWriteTimeout.
func (s *assignmentService) refreshAllotment(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(ctx, recordWriteTimeout)
	defer cancel()
	a, err := s.graph.GetAllotment(ctx, id)
	if err == nil {
		err = s.store.RecordAllotmentCounts(ctx, id, a.AllottedUnits, a.ConsumedUnits, a.Raw, time.Now())
	}
	if err != nil {
		s.log.WarnContext(ctx, "allotment units not refreshed after a write; the next sync will", "allotment_id", id, "err", err)
	}
}

// Completions runs the parts of writes that complete after the caller
// has its answer (reading Graph back to replace estimates), each bounded
// by completionTimeout, and lets shutdown wait for them. The zero value
// is not usable: use NewCompletions.
type Completions struct {
	ctx    context.Context // ends when Close gives up waiting
	cancel context.CancelFunc
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
	// hold, when set (by tests), makes every completion wait for it to be
	// closed before it starts.
	hold chan struct{}
}

// completionTimeout bounds one write's completion.
const completionTimeout = 30 * time.Second

// NewCompletions returns a Completions ready to run work.
func NewCompletions() *Completions {
	ctx, cancel := context.WithCancel(context.Background())
	return &Completions{ctx: ctx, cancel: cancel}
}

// Go runs f in its own goroutine with a context that keeps reqCtx's
// values but not its end: it ends after completionTimeout, or when Close
// gives up waiting. After Close, f runs before Go returns.
func (c *Completions) Go(reqCtx context.Context, f func(ctx context.Context)) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(reqCtx), completionTimeout)
	c.mu.Lock()
	closed := c.closed
	if !closed {
		c.wg.Add(1)
	}
	c.mu.Unlock()
	if closed {
		defer cancel()
		f(ctx)
		return
	}
	stop := context.AfterFunc(c.ctx, cancel)
	go func() {
		defer c.wg.Done()
		defer cancel()
		defer stop()
		if c.hold != nil {
			select {
			case <-c.hold:
			case <-ctx.Done():
			}
		}
		f(ctx)
	}()
}

// Close waits for the pending completions. If ctx ends first it cancels
// them, waits for them to return, and returns ctx's error. Completions
// started after Close run in their caller's goroutine.
func (c *Completions) Close(ctx context.Context) error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
		c.cancel()
		return nil
	case <-ctx.Done():
		c.cancel()
		<-done
		return fmt.Errorf("wait for write completions: %w", ctx.Err())
	}
}

// UpdateAssignment implements seatledger.v1.AssignmentService.UpdateAssignment.
func (s *assignmentService) UpdateAssignment(ctx context.Context, req *seatledgerv1.UpdateAssignmentRequest) (*seatledgerv1.Assignment, error) {
	call := beginWrite(ctx, s.store, s.log, methodUpdateAssignment, req)
	call.event.Resource = "assignments/" + req.GetId()
	resp, err := s.updateAssignment(ctx, req, call)
	if err != nil {
		err = toStatus(ctx, s.log, methodUpdateAssignment, err)
	}
	call.finish(ctx, err)
	if err != nil {
		return nil, err
	}
	return resp, nil
}

func (s *assignmentService) updateAssignment(ctx context.Context, req *seatledgerv1.UpdateAssignmentRequest, call *writeCall) (*seatledgerv1.Assignment, error) {
	if err := validateID("id", req.GetId()); err != nil {
		return nil, err
	}
	for _, p := range req.GetUpdateMask().GetPaths() {
		if p != "disabled_service_plan_ids" {
			return nil, invalidArgument("update_mask", fmt.Sprintf("%q cannot be changed; only disabled_service_plan_ids can "+
				"(to move a licence, delete the assignment and create another)", p))
		}
	}
	plans := req.GetAssignment().GetDisabledServicePlanIds()
	cur, err := s.store.GetAssignment(ctx, req.GetId(), time.Time{})
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFoundStatus("assignment", req.GetId(), fmt.Sprintf("assignment %q does not exist (as of the last sync)", req.GetId()))
	}
	if err != nil {
		return nil, err
	}
	al, err := s.store.GetAllotment(ctx, cur.AllotmentID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	for i, p := range plans {
		field := fmt.Sprintf("assignment.disabled_service_plan_ids[%d]", i)
		if !guidPattern.MatchString(p) {
			return nil, notGUID(field, p)
		}
		if al.ID != "" && !allotmentToRules(al, "").HasPlan(p) {
			return nil, invalidArgument(field, fmt.Sprintf("service plan %s is not a service of allotment %s (%s)", p, al.ID, al.SKUPartNumber))
		}
	}
	call.event.Details["disabled_service_plan_ids"] = strings.Join(plans, ",")
	a, err := s.graph.UpdateAssignment(call.graphCtx(ctx), req.GetId(), lowerAll(plans))
	call.noteGraph(err)
	if err != nil {
		return nil, err
	}
	rec := cur
	rec.DisabledPlanIDs = lowerAll(plans)
	rec.Raw = nil
	if cur.AssigneeType == store.KindUser {
		who := assignee{id: cur.AssigneeID, kind: store.KindUser}
		if found, ok, err := s.readBack(context.WithoutCancel(ctx), who, []string{cur.AllotmentID}); err == nil && ok && found.ID == cur.ID {
			rec.DisabledPlanIDs, rec.Raw = found.DisabledServicePlanIDs, found.Raw
		}
	}
	if rec.Raw == nil && len(a.Raw) > 0 {
		rec.Raw = a.Raw
	}
	stored, err := s.recordAssignment(ctx, rec)
	if err != nil {
		return assignmentToProto(rec), nil
	}
	return assignmentToProto(stored), nil
}

// DeleteAssignment implements seatledger.v1.AssignmentService.DeleteAssignment.
func (s *assignmentService) DeleteAssignment(ctx context.Context, req *seatledgerv1.DeleteAssignmentRequest) (*emptypb.Empty, error) {
	call := beginWrite(ctx, s.store, s.log, methodDeleteAssignment, req)
	call.event.Resource = "assignments/" + req.GetId()
	err := s.deleteAssignment(ctx, req, call)
	if err != nil {
		err = toStatus(ctx, s.log, methodDeleteAssignment, err)
	}
	call.finish(ctx, err)
	if err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

func (s *assignmentService) deleteAssignment(ctx context.Context, req *seatledgerv1.DeleteAssignmentRequest, call *writeCall) error {
	if err := validateID("id", req.GetId()); err != nil {
		return err
	}
	cur, err := s.store.GetAssignment(ctx, req.GetId(), time.Time{})
	if errors.Is(err, store.ErrNotFound) {
		return notFoundStatus("assignment", req.GetId(), fmt.Sprintf("assignment %q does not exist (as of the last sync)", req.GetId()))
	}
	if err != nil {
		return err
	}
	call.event.Details["allotment_id"] = cur.AllotmentID
	call.event.Details["assignee"] = cur.AssigneeType + "s/" + cur.AssigneeID
	err = s.graph.DeleteAssignment(call.graphCtx(ctx), req.GetId())
	call.noteGraph(err)
	var gerr *graph.Error
	if errors.As(err, &gerr) && gerr.Status == 404 {
		// Already gone in Graph: the mirror is behind. Record it.
		err = nil
		call.event.Details["outcome"] = "Graph no longer had the assignment"
	}
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordWriteTimeout)
	defer cancel()
	if err := s.store.RecordAssignmentRemoved(rctx, req.GetId(), time.Now()); err != nil {
		s.log.ErrorContext(ctx, "assignment removal not written through to the mirror; the next sync will record it",
			"assignment_id", req.GetId(), "err", err)
	}
	s.refreshAllotment(context.WithoutCancel(ctx), cur.AllotmentID)
	return nil
}

// ReprocessUser implements seatledger.v1.UserService.ReprocessUser.
func (s *userService) ReprocessUser(ctx context.Context, req *seatledgerv1.ReprocessUserRequest) (*seatledgerv1.ReprocessUserResponse, error) {
	call := beginWrite(ctx, s.store, s.log, methodReprocessUser, req)
	resp, err := s.reprocess(ctx, req, call)
	if err != nil {
		err = toStatus(ctx, s.log, methodReprocessUser, err)
	}
	call.finish(ctx, err)
	if err != nil {
		return nil, err
	}
	return resp, nil
}

func (s *userService) reprocess(ctx context.Context, req *seatledgerv1.ReprocessUserRequest, call *writeCall) (*seatledgerv1.ReprocessUserResponse, error) {
	if req.GetUser() == "" {
		return nil, invalidArgument("user", "must not be empty")
	}
	if err := validateText("user", req.GetUser()); err != nil {
		return nil, err
	}
	u, err := s.store.GetUser(ctx, req.GetUser(), time.Time{})
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFoundStatus("user", req.GetUser(), fmt.Sprintf("user %q is not in the directory as seatledger last synced it", req.GetUser()))
	}
	if err != nil {
		return nil, err
	}
	call.event.Resource = "users/" + u.ID
	err = s.graph.ReprocessAssignments(call.graphCtx(ctx), u.ID)
	call.noteGraph(err)
	if err != nil {
		return nil, err
	}
	return &seatledgerv1.ReprocessUserResponse{UserId: u.ID, RequestTime: timestamppb.Now()}, nil
}

// SetAllotmentOwner implements seatledger.v1.AllotmentService.SetAllotmentOwner.
func (s *allotmentService) SetAllotmentOwner(ctx context.Context, req *seatledgerv1.SetAllotmentOwnerRequest) (*seatledgerv1.Allotment, error) {
	call := beginWrite(ctx, s.store, s.log, methodSetAllotmentOwner, req)
	call.event.Resource = "allotments/" + req.GetId()
	resp, err := s.setOwner(ctx, req)
	if err != nil {
		err = toStatus(ctx, s.log, methodSetAllotmentOwner, err)
	}
	call.finish(ctx, err)
	if err != nil {
		return nil, err
	}
	return resp, nil
}

func (s *allotmentService) setOwner(ctx context.Context, req *seatledgerv1.SetAllotmentOwnerRequest) (*seatledgerv1.Allotment, error) {
	if err := validateID("id", req.GetId()); err != nil {
		return nil, err
	}
	if err := validateText("owner_department", req.GetOwnerDepartment()); err != nil {
		return nil, err
	}
	a, err := s.store.GetAllotment(ctx, req.GetId())
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFoundStatus("allotment", req.GetId(), fmt.Sprintf("allotment %q does not exist (as of the last sync)", req.GetId()))
	}
	if err != nil {
		return nil, err
	}
	if err := s.store.SetAllotmentOwner(ctx, a.ID, req.GetOwnerDepartment(), actorOf(ctx), time.Now()); err != nil {
		return nil, err
	}
	out := allotmentToProto(a)
	out.OwnerDepartment = req.GetOwnerDepartment()
	return out, nil
}
