package graphsim

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// Accessors and mutators of the tenant, for tests and the /_sim/ admin
// API alike. Accessors return deep copies ordered by id; mutators apply
// the same licensing rules as the Graph endpoints.

// Allotments returns a deep copy of the simulator's current allotments,
// ordered by id (the order the list endpoint pages in), with
// ConsumedUnits derived from the assignments.
func (s *Server) Allotments() []AllotmentState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.allotmentsLocked()
}

func (s *Server) allotmentsLocked() []AllotmentState {
	out := make([]AllotmentState, 0, len(s.st.allotments))
	for _, id := range sortedIDs(s.st, "allotments", s.st.allotments) {
		out = append(out, s.st.allotments[id].clone())
	}
	return out
}

// Assignments returns every assignment, ordered by id.
func (s *Server) Assignments() []AssignmentState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.assignmentsLocked()
}

func (s *Server) assignmentsLocked() []AssignmentState {
	out := make([]AssignmentState, 0, len(s.st.assignments))
	for _, id := range sortedIDs(s.st, "assignments", s.st.assignments) {
		a := *s.st.assignments[id]
		a.DisabledServicePlanIDs = slices.Clone(a.DisabledServicePlanIDs)
		out = append(out, a)
	}
	return out
}

// WaitingMembers returns every waiting member of every allotment,
// ordered by id.
func (s *Server) WaitingMembers() []WaitingMemberState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waitingMembersLocked()
}

func (s *Server) waitingMembersLocked() []WaitingMemberState {
	out := make([]WaitingMemberState, 0, len(s.st.waiting))
	for _, id := range sortedIDs(s.st, "waiting", s.st.waiting) {
		out = append(out, *s.st.waiting[id])
	}
	return out
}

// AssignmentErrors returns every assignment error, ordered by id.
func (s *Server) AssignmentErrors() []AssignmentErrorState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.assignmentErrorsLocked()
}

func (s *Server) assignmentErrorsLocked() []AssignmentErrorState {
	out := make([]AssignmentErrorState, 0, len(s.st.errs))
	for _, id := range sortedIDs(s.st, "errors", s.st.errs) {
		out = append(out, *s.st.errs[id])
	}
	return out
}

// Users returns every user, ordered by id.
func (s *Server) Users() []UserState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.usersLocked()
}

func (s *Server) usersLocked() []UserState {
	out := make([]UserState, 0, len(s.st.users))
	for _, id := range sortedIDs(s.st, "users", s.st.users) {
		out = append(out, s.st.users[id].UserState)
	}
	return out
}

// Groups returns every group with its direct members (sorted), ordered
// by id.
func (s *Server) Groups() []GroupState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.groupsLocked()
}

func (s *Server) groupsLocked() []GroupState {
	out := make([]GroupState, 0, len(s.st.groups))
	for _, id := range sortedIDs(s.st, "groups", s.st.groups) {
		g := s.st.groups[id]
		out = append(out, GroupState{ID: g.ID, DisplayName: g.DisplayName, Members: slices.Sorted(maps.Keys(g.members))})
	}
	return out
}

// Devices returns every device, ordered by id.
func (s *Server) Devices() []DeviceState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.devicesLocked()
}

func (s *Server) devicesLocked() []DeviceState {
	out := make([]DeviceState, 0, len(s.st.devices))
	for _, id := range sortedIDs(s.st, "devices", s.st.devices) {
		out = append(out, *s.st.devices[id])
	}
	return out
}

// Snapshot returns the whole tenant as it is now, in the form New and
// LoadScenario accept (ConsumedUnits filled in as an output). It is taken
// at one instant: no change lands half in it.
func (s *Server) Snapshot() Tenant {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapshotLocked()
}

func (s *Server) snapshotLocked() Tenant {
	t := Tenant{
		ID:               s.tenantID,
		Apps:             slices.Clone(s.apps),
		Allotments:       s.allotmentsLocked(),
		Users:            s.usersLocked(),
		Groups:           s.groupsLocked(),
		Devices:          s.devicesLocked(),
		Assignments:      s.assignmentsLocked(),
		WaitingMembers:   s.waitingMembersLocked(),
		AssignmentErrors: s.assignmentErrorsLocked(),
	}
	for _, id := range sortedIDs(s.st, "skus", s.st.skus) {
		sku := *s.st.skus[id]
		sku.Plans = clonePlans(sku.Plans)
		t.SKUs = append(t.SKUs, sku)
	}
	t.PlanRules = slices.Clone(s.st.rules)
	return t
}

// AddUser adds a user to the directory.
func (s *Server) AddUser(u UserState) error {
	defer s.write()()
	st := s.st
	if u.ID == "" {
		u.ID = s.newID()
	}
	if st.principalType(u.ID) != "" {
		return fmt.Errorf("add user %q: id already exists", u.ID)
	}
	if u.UserPrincipalName != "" && st.upn[strings.ToLower(u.UserPrincipalName)] != "" {
		return fmt.Errorf("add user %q: userPrincipalName %q already exists", u.ID, u.UserPrincipalName)
	}
	st.version++
	st.users[u.ID] = &userRec{UserState: u, version: st.version, groups: map[string]bool{}}
	delete(st.userTombs, u.ID)
	if u.UserPrincipalName != "" {
		st.upn[strings.ToLower(u.UserPrincipalName)] = u.ID
	}
	st.dirty("users")
	return nil
}

// UpdateUser replaces a user's properties (the id stays).
func (s *Server) UpdateUser(u UserState) error {
	defer s.write()()
	st := s.st
	rec := st.users[u.ID]
	if rec == nil {
		return notFound("user", u.ID)
	}
	if other := st.upn[strings.ToLower(u.UserPrincipalName)]; u.UserPrincipalName != "" && other != "" && other != u.ID {
		return fmt.Errorf("update user %q: userPrincipalName %q already exists", u.ID, u.UserPrincipalName)
	}
	delete(st.upn, strings.ToLower(rec.UserPrincipalName))
	if u.UserPrincipalName != "" {
		st.upn[strings.ToLower(u.UserPrincipalName)] = u.ID
	}
	st.version++
	rec.UserState = u
	rec.version = st.version
	return nil
}

// SetDepartment moves a user to another department ("" clears it).
func (s *Server) SetDepartment(userID, department string) error {
	defer s.write()()
	rec := s.st.users[userID]
	if rec == nil {
		return notFound("user", userID)
	}
	s.st.version++
	rec.Department = department
	rec.version = s.st.version
	return nil
}

// RemoveUser deletes a user: their direct assignments, group
// memberships, seats, waiting entries and errors go with them, and seats
// freed go to the waiting room.
func (s *Server) RemoveUser(id string) error {
	defer s.write()()
	st := s.st
	rec := st.users[id]
	if rec == nil {
		return notFound("user", id)
	}
	var allots []string
	for asg := range st.byAssignee[id] {
		allots = append(allots, s.deleteAssignment(asg).AllotmentID)
	}
	for g := range rec.groups {
		s.removeMemberLocked(st.groups[g], id)
		for asg := range st.byAssignee[g] {
			allots = append(allots, st.assignments[asg].AllotmentID)
		}
	}
	for eid := range st.userErrs[id] {
		delete(st.errs, eid)
		st.dirty("errors")
	}
	delete(st.userErrs, id)
	delete(st.users, id)
	delete(st.upn, strings.ToLower(rec.UserPrincipalName))
	st.version++
	st.userTombs[id] = st.version
	st.dirty("users")
	s.settle(dedupe(allots), nil)
	return nil
}

// AddGroup adds a group with its members.
func (s *Server) AddGroup(g GroupState) error {
	defer s.write()()
	st := s.st
	if g.ID == "" {
		g.ID = s.newID()
	}
	if st.principalType(g.ID) != "" {
		return fmt.Errorf("add group %q: id already exists", g.ID)
	}
	for _, m := range g.Members {
		if t := st.principalType(m); t != typeUser && t != typeDevice {
			return fmt.Errorf("add group %q: member %q: %w", g.ID, m, ErrNotFound)
		}
	}
	st.version++
	rec := &groupRec{ID: g.ID, DisplayName: g.DisplayName, members: map[string]bool{}, version: st.version}
	st.groups[g.ID] = rec
	st.dirty("groups")
	for _, m := range g.Members {
		s.addMemberLocked(rec, m)
	}
	return nil
}

// RenameGroup changes a group's display name; its members and
// assignments stay as they are.
func (s *Server) RenameGroup(groupID, displayName string) error {
	defer s.write()()
	rec := s.st.groups[groupID]
	if rec == nil {
		return notFound("group", groupID)
	}
	s.st.version++
	rec.DisplayName = displayName
	rec.version = s.st.version
	return nil
}

func (s *Server) addMemberLocked(g *groupRec, m string) {
	st := s.st
	st.version++
	g.members[m] = true
	g.version = st.version
	g.log = append(g.log, memberChange{member: m, version: st.version})
	if u := st.users[m]; u != nil {
		u.groups[g.ID] = true
	}
}

func (s *Server) removeMemberLocked(g *groupRec, m string) {
	st := s.st
	st.version++
	delete(g.members, m)
	g.version = st.version
	g.log = append(g.log, memberChange{member: m, removed: true, version: st.version})
	if u := st.users[m]; u != nil {
		delete(u.groups, g.ID)
	}
}

// groupAllotments lists the allotments a group is assigned.
func (s *Server) groupAllotments(groupID string) []string {
	var out []string
	for asg := range s.st.byAssignee[groupID] {
		out = append(out, s.st.assignments[asg].AllotmentID)
	}
	return dedupe(out)
}

// AddGroupMember makes a user or device a direct member of a group. The
// group's licences reach it: a seat if one is free, else the waiting room.
func (s *Server) AddGroupMember(groupID, memberID string) error {
	defer s.write()()
	st := s.st
	g := st.groups[groupID]
	if g == nil {
		return notFound("group", groupID)
	}
	if t := st.principalType(memberID); t != typeUser && t != typeDevice {
		return notFound("user or device", memberID)
	}
	if g.members[memberID] {
		return nil
	}
	s.addMemberLocked(g, memberID)
	s.settle(s.groupAllotments(groupID), []string{memberID})
	return nil
}

// RemoveGroupMember removes a direct member from a group; seats it held
// only through the group are freed.
func (s *Server) RemoveGroupMember(groupID, memberID string) error {
	defer s.write()()
	g := s.st.groups[groupID]
	if g == nil {
		return notFound("group", groupID)
	}
	if !g.members[memberID] {
		return notFound("member", memberID)
	}
	s.removeMemberLocked(g, memberID)
	s.settle(s.groupAllotments(groupID), []string{memberID})
	return nil
}

// SetAllottedUnits changes an allotment's capacity. More units serve the
// waiting room first in first out; fewer units free no seat (the
// allotment is then over-consumed until assignments go).
func (s *Server) SetAllottedUnits(allotmentID string, units int32) error {
	if units < 0 {
		return fmt.Errorf("set allotted units of %q: %d is negative", allotmentID, units)
	}
	defer s.write()()
	a := s.st.allotments[allotmentID]
	if a == nil {
		return notFound("allotment", allotmentID)
	}
	a.AllottedUnits = units
	s.settle([]string{allotmentID}, nil)
	return nil
}

// subscriptionStates are the values subscription.state takes.
var subscriptionStates = []string{"active", "warning", "suspended", "lockedOut", "deleted"}

// SetSubscriptionState changes the state of one subscription of an
// allotment, e.g. to "warning" when it expires or "suspended" after the
// grace period. Capacity does not change.
func (s *Server) SetSubscriptionState(allotmentID, subscriptionID, state string) error {
	if !slices.Contains(subscriptionStates, state) {
		return fmt.Errorf("set subscription state: %q is not one of %v", state, subscriptionStates)
	}
	defer s.write()()
	a := s.st.allotments[allotmentID]
	if a == nil {
		return notFound("allotment", allotmentID)
	}
	for i := range a.Subscriptions {
		if a.Subscriptions[i].SubscriptionID == subscriptionID {
			a.Subscriptions[i].State = state
			return nil
		}
	}
	return notFound("subscription", subscriptionID)
}

// Assign creates an assignment as Graph's POST does (an empty ID gets a
// fresh one). A refusal is a *SimError carrying the Graph error: unknown
// allotment or assignee, invalidAssigneeType, an unknown plan id, a
// direct assignment to a full allotment (noAvailableLicenses), plans
// that are mutually exclusive with the user's (mutuallyExclusiveServicePlans),
// or the same assignee twice in one allotment (409).
func (s *Server) Assign(a AssignmentState) (AssignmentState, error) {
	defer s.write()()
	return s.assignLocked(a)
}

func (s *Server) assignLocked(a AssignmentState) (AssignmentState, error) {
	st := s.st
	a.DisabledServicePlanIDs = slices.Clone(a.DisabledServicePlanIDs)
	if a.DisabledServicePlanIDs == nil {
		a.DisabledServicePlanIDs = []string{}
	}
	if err := s.checkAssignment(&a); err != nil {
		return AssignmentState{}, err
	}
	for asg := range st.byAllotment[a.AllotmentID] {
		if st.assignments[asg].AssignedToID == a.AssignedToID {
			return AssignmentState{}, simErr(http.StatusConflict, "conflict", "assignmentAlreadyExists",
				"The %s '%s' already has assignment '%s' from allotment '%s'.", a.AssignedToType, a.AssignedToID, asg, a.AllotmentID)
		}
	}
	al := st.allotments[a.AllotmentID]
	if a.AssignedToType != typeGroup && !st.seats[a.AllotmentID][a.AssignedToID] && al.ConsumedUnits >= al.AllottedUnits {
		return AssignmentState{}, simErr(http.StatusBadRequest, "badRequest", "noAvailableLicenses",
			"There are no available licenses for the specified allotment '%s'.", al.ID)
	}
	if a.AssignedToType == typeUser {
		if err := s.checkExclusive(a.AssignedToID, "", al, a.DisabledServicePlanIDs); err != nil {
			return AssignmentState{}, err
		}
	}
	if a.ID == "" {
		a.ID = s.newID()
	}
	if st.assignments[a.ID] != nil {
		return AssignmentState{}, fmt.Errorf("assign: id %q already exists", a.ID)
	}
	stored := a
	s.insertAssignment(&stored)
	s.settle([]string{a.AllotmentID}, s.affectedUsers(a.AssignedToID))
	a.DisabledServicePlanIDs = slices.Clone(a.DisabledServicePlanIDs)
	return a, nil
}

// checkExclusive refuses plans of al (minus disabled) that a mutual
// exclusion rule forbids next to the user's other rights (skipping
// assignment skip).
func (s *Server) checkExclusive(userID, skip string, al *AllotmentState, disabled []string) error {
	if len(s.st.rules) == 0 {
		return nil
	}
	mine := map[string]bool{}
	for _, p := range al.Services {
		if !slices.ContainsFunc(disabled, func(d string) bool { return strings.EqualFold(d, p.ID) }) {
			mine[strings.ToLower(p.ID)] = true
		}
	}
	all := maps.Clone(mine)
	for _, r := range s.rightsSkipping(userID, skip) {
		maps.Copy(all, r.enabled)
	}
	for _, rule := range s.st.rules {
		if rule.Kind != RuleMutualExclusion {
			continue
		}
		x, y := strings.ToLower(rule.PlanID), strings.ToLower(rule.OtherPlanID)
		if mine[x] && all[y] || mine[y] && all[x] {
			e := simErr(http.StatusBadRequest, "badRequest", "mutuallyExclusiveServicePlans",
				"License assignment failed because service plans %s,%s are mutually exclusive.", rule.PlanID, rule.OtherPlanID)
			return e
		}
	}
	return nil
}

// Unassign deletes an assignment; the seats it gave are freed and go to
// the waiting room.
func (s *Server) Unassign(id string) error {
	defer s.write()()
	a := s.deleteAssignment(id)
	if a == nil {
		return notFound("assignment", id)
	}
	s.settle([]string{a.AllotmentID}, s.affectedUsers(a.AssignedToID))
	return nil
}

// UpdateAssignment replaces an assignment's disabled plans, as PATCH does.
func (s *Server) UpdateAssignment(id string, disabled []string) (AssignmentState, error) {
	defer s.write()()
	return s.updateLocked(id, disabled)
}

func (s *Server) updateLocked(id string, disabled []string) (AssignmentState, error) {
	st := s.st
	a := st.assignments[id]
	if a == nil {
		return AssignmentState{}, simErr(http.StatusNotFound, "notFound", "resourceNotFound", "The assignment '%s' was not found.", id)
	}
	al := st.allotments[a.AllotmentID]
	probe := AssignmentState{AllotmentID: a.AllotmentID, AssignedToID: a.AssignedToID, AssignedToType: a.AssignedToType, DisabledServicePlanIDs: disabled}
	if err := s.checkAssignment(&probe); err != nil {
		return AssignmentState{}, err
	}
	if a.AssignedToType == typeUser {
		if err := s.checkExclusive(a.AssignedToID, a.ID, al, disabled); err != nil {
			return AssignmentState{}, err
		}
	}
	a.DisabledServicePlanIDs = slices.Clone(disabled)
	if a.DisabledServicePlanIDs == nil {
		a.DisabledServicePlanIDs = []string{}
	}
	s.settle(nil, s.affectedUsers(a.AssignedToID))
	out := *a
	out.DisabledServicePlanIDs = slices.Clone(a.DisabledServicePlanIDs)
	return out, nil
}

// Reprocess re-runs licence processing for a user, as
// reprocessAssignments does: errors whose cause is fixed are cleared.
func (s *Server) Reprocess(userID string) error {
	defer s.write()()
	if s.st.users[userID] == nil {
		return notFound("user", userID)
	}
	s.process(userID, true)
	return nil
}

// SetPlanRules replaces the service-plan rules. Existing errors stay
// until the users are processed again.
func (s *Server) SetPlanRules(rules []PlanRule) error {
	for _, r := range rules {
		if r.Kind != RuleDependency && r.Kind != RuleMutualExclusion || r.PlanID == "" || r.OtherPlanID == "" {
			return fmt.Errorf("set plan rules: invalid rule %+v", r)
		}
	}
	defer s.write()()
	s.st.rules = slices.Clone(rules)
	return nil
}
