package graphsim

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// UserState is a user of the directory, with the properties seatledger
// mirrors.
type UserState struct {
	ID                string `json:"id"`
	UserPrincipalName string `json:"userPrincipalName"`
	DisplayName       string `json:"displayName"`
	Department        string `json:"department,omitempty"`
	CompanyName       string `json:"companyName,omitempty"`
	CostCenter        string `json:"costCenter,omitempty"` // employeeOrgData.costCenter
	AccountEnabled    bool   `json:"accountEnabled"`
}

// GroupState is a group with its direct members (ids of users and
// devices). Cloud Licensing counts direct members only.
type GroupState struct {
	ID          string   `json:"id"`
	DisplayName string   `json:"displayName"`
	Members     []string `json:"members,omitempty"`
}

// DeviceState is a device of the directory.
type DeviceState struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
}

// AssignmentState links one allotment to one user, group or device.
type AssignmentState struct {
	ID          string `json:"id"`
	AllotmentID string `json:"allotmentId"`
	// AssignedToID is the id of the user, group or device.
	AssignedToID string `json:"assignedToId"`
	// AssignedToType is "user", "group" or "device"; empty in a Tenant
	// given to New means: whatever object has that id.
	AssignedToType         string   `json:"assignedToType,omitempty"`
	DisabledServicePlanIDs []string `json:"disabledServicePlanIds"`
}

// WaitingMemberState is a user or device waiting for a seat in a full
// allotment.
type WaitingMemberState struct {
	ID          string    `json:"id"`
	AllotmentID string    `json:"allotmentId"`
	MemberID    string    `json:"memberId"`
	MemberType  string    `json:"memberType,omitempty"` // "user" or "device"
	Since       time.Time `json:"waitingSinceDateTime"`
}

// AssignmentErrorState is a licence-processing error for one user and
// one SKU.
type AssignmentErrorState struct {
	ID         string    `json:"id"`
	UserID     string    `json:"userId"`
	SKUID      string    `json:"skuId"`
	Code       string    `json:"code"`
	Message    string    `json:"message"`
	OccurredAt time.Time `json:"occurrenceDateTime"`
}

// PlanRule is a service-plan rule licence processing enforces for each
// user, across all the user's rights.
type PlanRule struct {
	// Kind is RuleDependency (PlanID needs OtherPlanID enabled) or
	// RuleMutualExclusion (PlanID and OtherPlanID cannot both be enabled).
	Kind        string `json:"kind"`
	PlanID      string `json:"planId"`
	OtherPlanID string `json:"otherPlanId"`
}

// Plan rule kinds and the assignment error codes they produce.
const (
	RuleDependency      = "dependency"
	RuleMutualExclusion = "mutualExclusion"

	CodeMissingDependency          = "MissingDependency"
	CodeMutuallyExclusiveViolation = "MutuallyExclusiveViolation"
)

// Assignee types.
const (
	typeUser   = "user"
	typeGroup  = "group"
	typeDevice = "device"
)

// ErrNotFound is wrapped by mutators when an id names nothing.
var ErrNotFound = errors.New("not found")

// SimError is a refused change, with the Graph error it maps to.
type SimError struct {
	Status    int    // HTTP status
	Code      string // error.code
	InnerCode string // error.innerError.code
	Message   string
}

func (e *SimError) Error() string { return e.InnerCode + ": " + e.Message }

func simErr(status int, code, inner, format string, args ...any) *SimError {
	return &SimError{Status: status, Code: code, InnerCode: inner, Message: fmt.Sprintf(format, args...)}
}

func notFound(what, id string) error {
	return fmt.Errorf("%s %q: %w", what, id, ErrNotFound)
}

// The in-memory tenant. All of it is guarded by Server.mu.

type userRec struct {
	UserState
	version int64
	groups  map[string]bool
}

type groupRec struct {
	ID, DisplayName string
	members         map[string]bool
	version         int64
	log             []memberChange // membership changes, oldest first
}

type memberChange struct {
	member  string
	removed bool
	version int64
}

type store struct {
	skus        map[string]*SKU
	allotments  map[string]*AllotmentState
	users       map[string]*userRec
	upn         map[string]string // lower-case UPN → id
	groups      map[string]*groupRec
	devices     map[string]*DeviceState
	assignments map[string]*AssignmentState
	byAllotment map[string]map[string]bool // allotment → assignment ids
	byAssignee  map[string]map[string]bool // principal → assignment ids
	seats       map[string]map[string]bool // allotment → seat holders
	waiting     map[string]*WaitingMemberState
	queue       map[string][]*WaitingMemberState // allotment → waiting, FIFO
	errs        map[string]*AssignmentErrorState
	userErrs    map[string]map[string]bool // user → assignment error ids
	rules       []PlanRule
	version     int64            // directory change counter (delta)
	deltaFloor  int64            // delta links from before this version are expired (410)
	userTombs   map[string]int64 // removed users → version
	sorted      map[string][]string
}

func newStore() *store {
	return &store{
		skus: map[string]*SKU{}, allotments: map[string]*AllotmentState{},
		users: map[string]*userRec{}, upn: map[string]string{}, groups: map[string]*groupRec{},
		devices: map[string]*DeviceState{}, assignments: map[string]*AssignmentState{},
		byAllotment: map[string]map[string]bool{}, byAssignee: map[string]map[string]bool{},
		seats: map[string]map[string]bool{}, waiting: map[string]*WaitingMemberState{},
		queue: map[string][]*WaitingMemberState{}, errs: map[string]*AssignmentErrorState{}, userErrs: map[string]map[string]bool{},
		userTombs: map[string]int64{}, sorted: map[string][]string{},
	}
}

// sortedIDs returns the ids of a collection in order, cached until the
// collection changes (dirty).
func sortedIDs[V any](st *store, name string, m map[string]V) []string {
	if ids, ok := st.sorted[name]; ok {
		return ids
	}
	ids := slices.Sorted(maps.Keys(m))
	st.sorted[name] = ids
	return ids
}

func (st *store) dirty(names ...string) {
	for _, n := range names {
		delete(st.sorted, n)
	}
}

func addTo(m map[string]map[string]bool, k, v string) {
	if m[k] == nil {
		m[k] = map[string]bool{}
	}
	m[k][v] = true
}

func removeFrom(m map[string]map[string]bool, k, v string) {
	delete(m[k], v)
	if len(m[k]) == 0 {
		delete(m, k)
	}
}

// principalType reports what kind of object id is, or "".
func (st *store) principalType(id string) string {
	switch {
	case st.users[id] != nil:
		return typeUser
	case st.groups[id] != nil:
		return typeGroup
	case st.devices[id] != nil:
		return typeDevice
	}
	return ""
}

// load fills an empty store from a normalized tenant. With restore (a
// saved state), seats and the waiting order are taken as they were saved
// instead of derived, and licence processing does not run again: the
// tenant comes back exactly as it was, and no id is generated.
func (s *Server) load(t Tenant, restore *restoreState) error {
	st := s.st
	var errs []error
	for i := range t.SKUs {
		st.skus[t.SKUs[i].ID] = &t.SKUs[i]
	}
	for _, a := range t.Allotments {
		st.allotments[a.ID] = &a
	}
	for _, u := range t.Users {
		switch {
		case u.ID == "":
			errs = append(errs, errors.New("user: id is required"))
			continue
		case st.users[u.ID] != nil:
			errs = append(errs, fmt.Errorf("user %q: duplicate id", u.ID))
			continue
		case u.UserPrincipalName != "" && st.upn[strings.ToLower(u.UserPrincipalName)] != "":
			errs = append(errs, fmt.Errorf("user %q: duplicate userPrincipalName %q", u.ID, u.UserPrincipalName))
			continue
		}
		st.version++
		st.users[u.ID] = &userRec{UserState: u, version: st.version, groups: map[string]bool{}}
		if u.UserPrincipalName != "" {
			st.upn[strings.ToLower(u.UserPrincipalName)] = u.ID
		}
	}
	for _, d := range t.Devices {
		if d.ID == "" || st.devices[d.ID] != nil || st.users[d.ID] != nil {
			errs = append(errs, fmt.Errorf("device %q: missing or duplicate id", d.ID))
			continue
		}
		st.devices[d.ID] = &d
	}
	for _, g := range t.Groups {
		if g.ID == "" || st.principalType(g.ID) != "" {
			errs = append(errs, fmt.Errorf("group %q: missing or duplicate id", g.ID))
			continue
		}
		st.version++
		rec := &groupRec{ID: g.ID, DisplayName: g.DisplayName, members: map[string]bool{}, version: st.version}
		st.groups[g.ID] = rec
		for _, m := range g.Members {
			switch st.principalType(m) {
			case typeUser:
				st.users[m].groups[g.ID] = true
			case typeDevice:
			default:
				errs = append(errs, fmt.Errorf("group %q: member %q is no user or device", g.ID, m))
				continue
			}
			rec.members[m] = true
			rec.log = append(rec.log, memberChange{member: m, version: st.version})
		}
	}
	for _, r := range t.PlanRules {
		if r.Kind != RuleDependency && r.Kind != RuleMutualExclusion {
			errs = append(errs, fmt.Errorf("plan rule %+v: kind must be %q or %q", r, RuleDependency, RuleMutualExclusion))
		}
		if r.PlanID == "" || r.OtherPlanID == "" {
			errs = append(errs, fmt.Errorf("plan rule %+v: both plan ids are required", r))
		}
		st.rules = append(st.rules, r)
	}
	for _, a := range t.Assignments {
		a.DisabledServicePlanIDs = slices.Clone(a.DisabledServicePlanIDs)
		if a.DisabledServicePlanIDs == nil {
			a.DisabledServicePlanIDs = []string{}
		}
		if a.ID == "" || st.assignments[a.ID] != nil {
			errs = append(errs, fmt.Errorf("assignment %q: missing or duplicate id", a.ID))
			continue
		}
		if a.AssignedToType == "" {
			a.AssignedToType = st.principalType(a.AssignedToID)
		}
		if err := s.checkAssignment(&a); err != nil {
			errs = append(errs, fmt.Errorf("assignment %q: %w", a.ID, err))
			continue
		}
		s.insertAssignment(&a)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	now := s.Now()
	for _, w := range t.WaitingMembers {
		if w.ID == "" || st.waiting[w.ID] != nil {
			errs = append(errs, fmt.Errorf("waiting member %q: missing or duplicate id", w.ID))
			continue
		}
		if st.allotments[w.AllotmentID] == nil || st.principalType(w.MemberID) == "" {
			errs = append(errs, fmt.Errorf("waiting member %q: unknown allotment or member", w.ID))
			continue
		}
		w.MemberType = st.principalType(w.MemberID)
		if w.Since.IsZero() {
			w.Since = now
		}
		w.Since = w.Since.UTC().Truncate(100 * time.Nanosecond)
		st.waiting[w.ID] = &w
		st.queue[w.AllotmentID] = append(st.queue[w.AllotmentID], &w)
	}
	for aid, q := range st.queue {
		sortQueue(q)
		if restore != nil {
			orderQueue(q, restore.waitingOrder[aid])
		}
		st.queue[aid] = q
	}
	for _, e := range t.AssignmentErrors {
		if e.ID == "" || st.errs[e.ID] != nil || st.users[e.UserID] == nil {
			errs = append(errs, fmt.Errorf("assignment error %q: missing or duplicate id, or unknown user", e.ID))
			continue
		}
		if e.OccurredAt.IsZero() {
			e.OccurredAt = now
		}
		e.OccurredAt = e.OccurredAt.UTC().Truncate(100 * time.Nanosecond)
		st.errs[e.ID] = &e
		addTo(st.userErrs, e.UserID, e.ID)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, aid := range sortedIDs(st, "allotments", st.allotments) {
		direct := 0
		for asg := range st.byAllotment[aid] {
			if a := st.assignments[asg]; a.AssignedToType != typeGroup {
				direct++
			}
		}
		if al := st.allotments[aid]; int32(direct) > al.AllottedUnits {
			errs = append(errs, fmt.Errorf("allotment %q: %d direct assignments exceed its %d allotted units", aid, direct, al.AllottedUnits))
		}
		cand := s.candidates(aid)
		queued := map[string]bool{}
		for _, w := range st.queue[aid] {
			if !cand[w.MemberID] {
				errs = append(errs, fmt.Errorf("waiting member %q: %q has no assignment to allotment %q", w.ID, w.MemberID, aid))
			}
			queued[w.MemberID] = true
		}
		// Members listed as waiting keep waiting while the others fill
		// the seats, direct assignees first.
		holders := map[string]bool{}
		for asg := range st.byAllotment[aid] {
			if a := st.assignments[asg]; a.AssignedToType != typeGroup {
				holders[a.AssignedToID] = true
			}
		}
		for _, m := range slices.Sorted(maps.Keys(cand)) {
			if !holders[m] && !queued[m] && len(holders) < int(st.allotments[aid].AllottedUnits) {
				holders[m] = true
			}
		}
		if restore != nil {
			// As saved (an allotment whose units were lowered may hold
			// more seats than units); reconcile drops any that no
			// assignment covers.
			holders = map[string]bool{}
			for _, m := range restore.seats[aid] {
				holders[m] = true
			}
		}
		st.seats[aid] = holders
		s.reconcile(aid)
	}
	if len(st.rules) > 0 && restore == nil {
		// Only users with a right to a SKU holding a plan some rule names
		// can break a rule.
		rulePlans := map[string]bool{}
		for _, r := range st.rules {
			rulePlans[strings.ToLower(r.PlanID)] = true
			rulePlans[strings.ToLower(r.OtherPlanID)] = true
		}
		var users []string
		for aid, asgs := range st.byAllotment {
			if !slices.ContainsFunc(st.allotments[aid].Services, func(p Plan) bool { return rulePlans[strings.ToLower(p.ID)] }) {
				continue
			}
			for asg := range asgs {
				users = append(users, s.affectedUsers(st.assignments[asg].AssignedToID)...)
			}
		}
		for _, uid := range dedupe(users) {
			s.process(uid, false)
		}
	}
	return errors.Join(errs...)
}

// orderQueue puts q in the order of the ids in order; members it does not
// name keep their order, after those it names.
func orderQueue(q []*WaitingMemberState, order []string) {
	pos := make(map[string]int, len(order))
	for i, id := range order {
		pos[id] = i
	}
	rank := func(w *WaitingMemberState) int {
		if i, ok := pos[w.ID]; ok {
			return i
		}
		return len(order)
	}
	slices.SortStableFunc(q, func(a, b *WaitingMemberState) int { return rank(a) - rank(b) })
}

func sortQueue(q []*WaitingMemberState) {
	slices.SortStableFunc(q, func(a, b *WaitingMemberState) int {
		if c := a.Since.Compare(b.Since); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// checkAssignment validates a new assignment against the tenant:
// allotment, assignee and its type, assignableTo, plan ids.
func (s *Server) checkAssignment(a *AssignmentState) error {
	st := s.st
	al := st.allotments[a.AllotmentID]
	if al == nil {
		return simErr(404, "notFound", "resourceNotFound", "The allotment '%s' was not found.", a.AllotmentID)
	}
	typ := st.principalType(a.AssignedToID)
	if typ == "" || (a.AssignedToType != "" && a.AssignedToType != typ) {
		return simErr(400, "badRequest", "notFound", "The %s '%s' in assignedTo does not exist.", orDefault(a.AssignedToType, "object"), a.AssignedToID)
	}
	a.AssignedToType = typ
	if !slices.Contains(al.AssignableTo, typ) {
		return simErr(400, "badRequest", "invalidAssigneeType", "Allotment '%s' cannot be assigned to a %s (assignableTo: %s).", al.ID, typ, flags(al.AssignableTo))
	}
	for i, p := range a.DisabledServicePlanIDs {
		if !slices.ContainsFunc(al.Services, func(sv Plan) bool { return strings.EqualFold(sv.ID, p) }) {
			return simErr(400, "badRequest", "notFound", "disabledServicePlanIds[%d]: service plan '%s' is not a service of allotment '%s'.", i, p, al.ID)
		}
	}
	return nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func (s *Server) insertAssignment(a *AssignmentState) {
	st := s.st
	st.assignments[a.ID] = a
	addTo(st.byAllotment, a.AllotmentID, a.ID)
	addTo(st.byAssignee, a.AssignedToID, a.ID)
	st.dirty("assignments")
}

func (s *Server) deleteAssignment(id string) *AssignmentState {
	st := s.st
	a := st.assignments[id]
	if a == nil {
		return nil
	}
	delete(st.assignments, id)
	removeFrom(st.byAllotment, a.AllotmentID, id)
	removeFrom(st.byAssignee, a.AssignedToID, id)
	st.dirty("assignments")
	return a
}

// candidates are the users and devices an allotment's assignments cover:
// direct assignees and the direct members of assigned groups whose type
// the allotment is assignable to (a device in a group gets nothing from
// a user-only allotment).
func (s *Server) candidates(aid string) map[string]bool {
	st := s.st
	out := map[string]bool{}
	al := st.allotments[aid]
	users, devices := slices.Contains(al.AssignableTo, typeUser), slices.Contains(al.AssignableTo, typeDevice)
	for asg := range st.byAllotment[aid] {
		a := st.assignments[asg]
		if a.AssignedToType == typeGroup {
			for m := range st.groups[a.AssignedToID].members {
				if st.users[m] != nil && users || st.devices[m] != nil && devices {
					out[m] = true
				}
			}
			continue
		}
		out[a.AssignedToID] = true
	}
	return out
}

// reconcile brings an allotment's seats and waiting room in line with its
// assignments: seats of members no longer covered are freed, direct
// assignees always hold a seat, the waiting room is served first in first
// out, and members beyond capacity wait. It returns the members whose
// seat changed.
func (s *Server) reconcile(aid string) []string {
	st := s.st
	al := st.allotments[aid]
	cand := s.candidates(aid)
	holders := st.seats[aid]
	if holders == nil {
		holders = map[string]bool{}
		st.seats[aid] = holders
	}
	var changed []string
	for h := range holders {
		if !cand[h] {
			delete(holders, h)
			changed = append(changed, h)
		}
	}
	queued := map[string]bool{}
	q := st.queue[aid][:0:0]
	for _, w := range st.queue[aid] {
		if !cand[w.MemberID] || holders[w.MemberID] {
			delete(st.waiting, w.ID)
			st.dirty("waiting")
			continue
		}
		queued[w.MemberID] = true
		q = append(q, w)
	}
	for asg := range st.byAllotment[aid] {
		a := st.assignments[asg]
		if a.AssignedToType != typeGroup && !holders[a.AssignedToID] {
			holders[a.AssignedToID] = true
			changed = append(changed, a.AssignedToID)
			if queued[a.AssignedToID] {
				delete(queued, a.AssignedToID)
				q = slices.DeleteFunc(q, func(w *WaitingMemberState) bool {
					if w.MemberID == a.AssignedToID {
						delete(st.waiting, w.ID)
						st.dirty("waiting")
						return true
					}
					return false
				})
			}
		}
	}
	free := int(al.AllottedUnits) - len(holders)
	for len(q) > 0 && free > 0 {
		w := q[0]
		q = q[1:]
		delete(st.waiting, w.ID)
		st.dirty("waiting")
		holders[w.MemberID] = true
		changed = append(changed, w.MemberID)
		free--
	}
	var fresh []string
	for m := range cand {
		if !holders[m] && !queued[m] {
			fresh = append(fresh, m)
		}
	}
	slices.Sort(fresh)
	now := s.Now()
	for _, m := range fresh {
		if free > 0 && len(q) == 0 {
			holders[m] = true
			changed = append(changed, m)
			free--
			continue
		}
		w := &WaitingMemberState{ID: s.newID(), AllotmentID: aid, MemberID: m, MemberType: st.principalType(m), Since: now}
		st.waiting[w.ID] = w
		st.dirty("waiting")
		q = append(q, w)
	}
	st.queue[aid] = q
	if len(q) == 0 {
		delete(st.queue, aid)
	}
	al.ConsumedUnits = int32(len(holders))
	return changed
}

// rights returns, for a principal, the enabled plans per SKU and the
// assignments that grant them. Users and devices get rights only from
// allotments where they hold a seat; groups from their own assignments.
func (s *Server) rights(principal string) map[string]*right {
	return s.rightsSkipping(principal, "")
}

// rightsSkipping is rights without the assignment skip.
func (s *Server) rightsSkipping(principal, skip string) map[string]*right {
	st := s.st
	out := map[string]*right{}
	typ := st.principalType(principal)
	var asgs []string
	for id := range st.byAssignee[principal] {
		asgs = append(asgs, id)
	}
	if u := st.users[principal]; u != nil {
		for g := range u.groups {
			for id := range st.byAssignee[g] {
				asgs = append(asgs, id)
			}
		}
	}
	if typ == typeDevice {
		for _, g := range st.groups {
			if g.members[principal] {
				for id := range st.byAssignee[g.ID] {
					asgs = append(asgs, id)
				}
			}
		}
	}
	slices.Sort(asgs)
	for _, id := range asgs {
		a := st.assignments[id]
		if id == skip {
			continue
		}
		if typ != typeGroup && !st.seats[a.AllotmentID][principal] {
			continue
		}
		al := st.allotments[a.AllotmentID]
		r := out[al.SKUID]
		if r == nil {
			r = &right{sku: al.SKUID, enabled: map[string]bool{}}
			out[al.SKUID] = r
		}
		r.assignments = append(r.assignments, id)
		if !slices.Contains(r.allotments, al.ID) {
			r.allotments = append(r.allotments, al.ID)
		}
		for _, p := range al.Services {
			if !slices.ContainsFunc(a.DisabledServicePlanIDs, func(d string) bool { return strings.EqualFold(d, p.ID) }) {
				r.enabled[strings.ToLower(p.ID)] = true
			}
		}
	}
	return out
}

type right struct {
	sku         string
	enabled     map[string]bool // lower-case plan ids
	assignments []string
	allotments  []string
}

// usageRightID is the stable id of a principal's right to a SKU.
func usageRightID(principal, sku string) string {
	sum := sha256.Sum256([]byte("usageRight:" + principal + ":" + strings.ToLower(sku)))
	return formatGUID(sum[:16])
}

type violation struct {
	sku, code, msg string
}

// violations evaluates the plan rules over a user's rights.
func (s *Server) violations(rs map[string]*right) []violation {
	var out []violation
	enabledAnywhere := func(p string) bool {
		for _, r := range rs {
			if r.enabled[strings.ToLower(p)] {
				return true
			}
		}
		return false
	}
	for _, rule := range s.st.rules {
		for _, sku := range slices.Sorted(maps.Keys(rs)) {
			r := rs[sku]
			switch rule.Kind {
			case RuleDependency:
				if r.enabled[strings.ToLower(rule.PlanID)] && !enabledAnywhere(rule.OtherPlanID) {
					out = append(out, violation{sku, CodeMissingDependency, fmt.Sprintf(
						"Service plan %s cannot be assigned without service plan %s, which this user does not currently have.", rule.PlanID, rule.OtherPlanID)})
				}
			case RuleMutualExclusion:
				if r.enabled[strings.ToLower(rule.OtherPlanID)] && enabledAnywhere(rule.PlanID) {
					out = append(out, violation{sku, CodeMutuallyExclusiveViolation, fmt.Sprintf(
						"Service plans %s, %s are mutually exclusive and cannot both be assigned to this user.", rule.PlanID, rule.OtherPlanID)})
				}
			}
		}
	}
	return out
}

// process runs licence processing for a user: the plan rules record new
// assignment errors; errors of SKUs the user no longer has go away; with
// reprocess, errors whose cause is fixed are cleared and the rest get a
// fresh occurrence time.
func (s *Server) process(uid string, reprocess bool) {
	st := s.st
	if st.users[uid] == nil {
		return
	}
	rs := s.rights(uid)
	// SKUs the user has any assignment for, seat or not.
	has := map[string]bool{}
	for sku := range rs {
		has[strings.ToLower(sku)] = true
	}
	vs := s.violations(rs)
	now := s.Now()
	existing := map[string]*AssignmentErrorState{}
	for id := range st.userErrs[uid] {
		e := st.errs[id]
		existing[strings.ToLower(e.SKUID)+"|"+e.Code] = e
	}
	keep := map[string]bool{}
	for _, v := range vs {
		k := strings.ToLower(v.sku) + "|" + v.code
		keep[k] = true
		if e := existing[k]; e != nil {
			if reprocess {
				e.OccurredAt = now
				e.Message = v.msg
			}
			continue
		}
		e := &AssignmentErrorState{ID: s.newID(), UserID: uid, SKUID: v.sku, Code: v.code, Message: v.msg, OccurredAt: now}
		st.errs[e.ID] = e
		addTo(st.userErrs, uid, e.ID)
		existing[k] = e
		st.dirty("errors")
	}
	for k, e := range existing {
		if (reprocess && !keep[k]) || !has[strings.ToLower(e.SKUID)] {
			delete(st.errs, e.ID)
			removeFrom(st.userErrs, uid, e.ID)
			st.dirty("errors")
		}
	}
}

// affectedUsers lists the users an assignment to principal concerns.
func (s *Server) affectedUsers(principal string) []string {
	st := s.st
	switch st.principalType(principal) {
	case typeUser:
		return []string{principal}
	case typeGroup:
		var out []string
		for m := range st.groups[principal].members {
			if st.users[m] != nil {
				out = append(out, m)
			}
		}
		slices.Sort(out)
		return out
	}
	return nil
}

// settle reconciles the given allotments and processes the given users
// plus everyone whose seat changed.
func (s *Server) settle(allotments []string, users []string) {
	for _, aid := range allotments {
		for _, m := range s.reconcile(aid) {
			if s.st.users[m] != nil {
				users = append(users, m)
			}
		}
	}
	if len(s.st.rules) == 0 {
		// Only errors of SKUs a user lost can change.
		users = s.usersWithErrors(users)
	}
	for _, u := range dedupe(users) {
		s.process(u, false)
	}
}

// usersWithErrors returns those of users that have assignment errors.
func (s *Server) usersWithErrors(users []string) []string {
	if len(s.st.errs) == 0 {
		return nil
	}
	want := map[string]bool{}
	for _, u := range users {
		want[u] = true
	}
	var out []string
	for u := range want {
		if len(s.st.userErrs[u]) > 0 {
			out = append(out, u)
		}
	}
	return out
}

func dedupe(ss []string) []string {
	slices.Sort(ss)
	return slices.Compact(ss)
}
