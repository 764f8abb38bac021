package graphsim

import (
	"maps"
	"slices"
	"strings"
	"time"
)

// The entity kinds and how they render. Renderers run with s.mu held and
// return nil for an id that names nothing.

const (
	assignmentType      = "#microsoft.graph.cloudLicensing.assignment"
	waitingMemberType   = "#microsoft.graph.cloudLicensing.waitingMember"
	assignmentErrorType = "#microsoft.graph.cloudLicensing.assignmentError"
	usageRightType      = "#microsoft.graph.cloudLicensing.usageRight"
	userType            = "#microsoft.graph.user"
	groupType           = "#microsoft.graph.group"
	deviceType          = "#microsoft.graph.device"
)

// graphTime renders a time the way the examples do: UTC, seven
// fractional digits, +00:00.
func graphTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.0000000") + "+00:00"
}

var (
	allotmentK, assignmentK, waitingK, errorK, usageRightK *kind
	userK, groupK, deviceK, directoryK                     *kind
)

func init() {
	allotmentK = &kind{
		name:    "microsoft.graph.cloudLicensing.allotment",
		props:   allotmentProperties,
		filters: map[string]string{"skuId": "guid"},
		render:  renderAllotment,
	}
	assignmentK = &kind{
		name:   "microsoft.graph.cloudLicensing.assignment",
		props:  []string{"id", "disabledServicePlanIds"},
		render: renderAssignment,
	}
	waitingK = &kind{
		name:   "microsoft.graph.cloudLicensing.waitingMember",
		props:  []string{"id", "waitingSinceDateTime"},
		render: renderWaiting,
	}
	errorK = &kind{
		name:    "microsoft.graph.cloudLicensing.assignmentError",
		props:   []string{"code", "id", "message", "occurrenceDateTime", "skuId"},
		filters: map[string]string{"skuId": "guid", "code": "string"},
		render:  renderError,
	}
	usageRightK = &kind{
		name:    "microsoft.graph.cloudLicensing.usageRight",
		props:   []string{"id", "skuId", "skuPartNumber", "services"},
		filters: map[string]string{"skuId": "guid", "services": "services"},
		render:  renderUsageRight,
	}
	userK = &kind{
		name:     "microsoft.graph.user",
		props:    []string{"id", "displayName", "userPrincipalName", "department", "companyName", "employeeOrgData", "accountEnabled"},
		defaults: []string{"id", "displayName", "userPrincipalName"},
		filters:  map[string]string{"department": "string", "accountEnabled": "bool", "userPrincipalName": "string", "companyName": "string", "id": "string"},
		render:   renderUser,
	}
	groupK = &kind{
		name:    "microsoft.graph.group",
		props:   []string{"id", "displayName"},
		filters: map[string]string{"displayName": "string"},
		render:  renderGroup,
	}
	deviceK = &kind{
		name:   "microsoft.graph.device",
		props:  []string{"id", "displayName"},
		render: renderDevice,
	}
	// directoryObject: what assignedTo and members hold. Its properties
	// are the union of the three kinds; each renders its own.
	directoryK = &kind{
		name:     "microsoft.graph.directoryObject",
		props:    []string{"id", "displayName", "userPrincipalName", "department", "companyName", "employeeOrgData", "accountEnabled"},
		defaults: []string{"id", "displayName", "userPrincipalName"},
		render:   func(s *Server, id string) jobj { return s.dirRef(id).k.render(s, id) },
	}

	one := func(k **kind) func() *kind { return func() *kind { return *k } }
	allotmentK.navs = map[string]*nav{
		"assignments": {many: true, target: one(&assignmentK), refs: func(s *Server, id string) []ref {
			return refsOf(assignmentK, slices.Sorted(maps.Keys(s.st.byAllotment[id])))
		}},
		"waitingMembers": {many: true, target: one(&waitingK), refs: func(s *Server, id string) []ref {
			var ids []string
			for _, w := range s.st.queue[id] {
				ids = append(ids, w.ID)
			}
			slices.Sort(ids)
			return refsOf(waitingK, ids)
		}},
	}
	assignmentK.navs = map[string]*nav{
		"allotment": {target: one(&allotmentK), refs: func(s *Server, id string) []ref {
			return []ref{{allotmentK, s.st.assignments[id].AllotmentID}}
		}},
		"assignedTo": {target: one(&directoryK), refs: func(s *Server, id string) []ref {
			return []ref{s.dirRef(s.st.assignments[id].AssignedToID)}
		}},
	}
	waitingK.navs = map[string]*nav{
		"allotment": {target: one(&allotmentK), refs: func(s *Server, id string) []ref {
			return []ref{{allotmentK, s.st.waiting[id].AllotmentID}}
		}},
		"assignedTo": {target: one(&directoryK), refs: func(s *Server, id string) []ref {
			return []ref{s.dirRef(s.st.waiting[id].MemberID)}
		}},
	}
	errorK.navs = map[string]*nav{
		"assignedTo": {target: one(&directoryK), refs: func(s *Server, id string) []ref {
			return []ref{s.dirRef(s.st.errs[id].UserID)}
		}},
		"usageRight": {target: one(&usageRightK), refs: func(s *Server, id string) []ref {
			e := s.st.errs[id]
			if s.rights(e.UserID)[e.SKUID] == nil {
				return nil
			}
			return []ref{{usageRightK, e.UserID + "|" + e.SKUID}}
		}},
	}
	usageRightK.navs = map[string]*nav{
		"assignments": {many: true, target: one(&assignmentK), refs: func(s *Server, id string) []ref {
			if r := s.rightOf(id); r != nil {
				return refsOf(assignmentK, r.assignments)
			}
			return nil
		}},
		"allotments": {many: true, target: one(&allotmentK), refs: func(s *Server, id string) []ref {
			if r := s.rightOf(id); r != nil {
				return refsOf(allotmentK, slices.Sorted(slices.Values(r.allotments)))
			}
			return nil
		}},
	}
	userK.navs = map[string]*nav{}
	groupK.navs = map[string]*nav{}
	deviceK.navs = map[string]*nav{}
	directoryK.navs = map[string]*nav{}
}

func refsOf(k *kind, ids []string) []ref {
	out := make([]ref, 0, len(ids))
	for _, id := range ids {
		out = append(out, ref{k, id})
	}
	return out
}

// dirRef is a directory object by id, of whatever kind it is.
func (s *Server) dirRef(id string) ref {
	switch s.st.principalType(id) {
	case typeGroup:
		return ref{groupK, id}
	case typeDevice:
		return ref{deviceK, id}
	}
	return ref{userK, id}
}

// rightOf finds a usage right by its internal key "principal|sku".
func (s *Server) rightOf(key string) *right {
	principal, sku, _ := strings.Cut(key, "|")
	return s.rights(principal)[sku]
}

func renderAllotment(s *Server, id string) jobj {
	a := s.st.allotments[id]
	if a == nil {
		return nil
	}
	svcs := renderServices(a.Services, nil)
	subs := make([]any, 0, len(a.Subscriptions))
	for _, sub := range a.Subscriptions {
		subs = append(subs, jobj{
			{"@odata.type", subscriptionType},
			{"subscriptionId", sub.SubscriptionID},
			{"nextLifecycleDate", wireDate(sub.NextLifecycleDate)},
			{"startDate", wireDate(sub.StartDate)},
			{"state", sub.State},
			{"tags", flags(sub.Tags)},
		})
	}
	return jobj{
		{"@odata.type", allotmentType},
		{"id", a.ID},
		{"allottedUnits", a.AllottedUnits},
		{"assignableTo", flags(a.AssignableTo)},
		{"consumedUnits", a.ConsumedUnits},
		{"services", svcs},
		{"skuId", a.SKUID},
		{"skuPartNumber", a.SKUPartNumber},
		{"subscriptions", subs},
	}
}

// renderServices renders plans as services; with enabled set, only those.
func renderServices(plans []Plan, enabled map[string]bool) []any {
	out := make([]any, 0, len(plans))
	for _, p := range plans {
		if enabled != nil && !enabled[strings.ToLower(p.ID)] {
			continue
		}
		out = append(out, jobj{
			{"@odata.type", serviceType},
			{"assignableTo", flags(p.AssignableTo)},
			{"planId", p.ID},
			{"planName", p.Name},
		})
	}
	return out
}

func renderAssignment(s *Server, id string) jobj {
	a := s.st.assignments[id]
	if a == nil {
		return nil
	}
	return jobj{
		{"@odata.type", assignmentType},
		{"id", a.ID},
		{"disabledServicePlanIds", slices.Clone(a.DisabledServicePlanIDs)},
	}
}

func renderWaiting(s *Server, id string) jobj {
	w := s.st.waiting[id]
	if w == nil {
		return nil
	}
	return jobj{
		{"@odata.type", waitingMemberType},
		{"id", w.ID},
		{"waitingSinceDateTime", graphTime(w.Since)},
	}
}

func renderError(s *Server, id string) jobj {
	e := s.st.errs[id]
	if e == nil {
		return nil
	}
	return jobj{
		{"@odata.type", assignmentErrorType},
		{"code", e.Code},
		{"id", e.ID},
		{"message", e.Message},
		{"occurrenceDateTime", graphTime(e.OccurredAt)},
		{"skuId", e.SKUID},
	}
}

// renderUsageRight renders the right keyed "principal|sku".
func renderUsageRight(s *Server, key string) jobj {
	r := s.rightOf(key)
	if r == nil {
		return nil
	}
	principal, _, _ := strings.Cut(key, "|")
	sku := s.st.skus[r.sku]
	// Services in the SKU's order, as the allotments list them.
	var plans []Plan
	for _, aid := range r.allotments {
		for _, p := range s.st.allotments[aid].Services {
			if !slices.ContainsFunc(plans, func(q Plan) bool { return strings.EqualFold(q.ID, p.ID) }) {
				plans = append(plans, p)
			}
		}
	}
	return jobj{
		{"@odata.type", usageRightType},
		{"id", usageRightID(principal, r.sku)},
		{"skuId", r.sku},
		{"skuPartNumber", sku.PartNumber},
		{"services", renderServices(plans, r.enabled)},
	}
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func renderUser(s *Server, id string) jobj {
	u := s.st.users[id]
	if u == nil {
		return nil
	}
	return jobj{
		{"@odata.type", userType},
		{"id", u.ID},
		{"displayName", nullable(u.DisplayName)},
		{"userPrincipalName", u.UserPrincipalName},
		{"department", nullable(u.Department)},
		{"companyName", nullable(u.CompanyName)},
		{"employeeOrgData", jobj{{"costCenter", nullable(u.CostCenter)}, {"division", nil}}},
		{"accountEnabled", u.AccountEnabled},
	}
}

func renderGroup(s *Server, id string) jobj {
	g := s.st.groups[id]
	if g == nil {
		return nil
	}
	return jobj{{"@odata.type", groupType}, {"id", g.ID}, {"displayName", nullable(g.DisplayName)}}
}

func renderDevice(s *Server, id string) jobj {
	d := s.st.devices[id]
	if d == nil {
		return nil
	}
	return jobj{{"@odata.type", deviceType}, {"id", d.ID}, {"displayName", nullable(d.DisplayName)}}
}

// usageRightKeys lists a principal's rights as "principal|sku" keys in
// order (the order lists page in), and maps usage right ids to keys.
func (s *Server) usageRightKeys(principal string) (keys []string, byID map[string]string) {
	byID = map[string]string{}
	for sku := range s.rights(principal) {
		k := principal + "|" + sku
		byID[usageRightID(principal, sku)] = k
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys, byID
}
