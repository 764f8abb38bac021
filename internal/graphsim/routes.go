package graphsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"
)

// Routing of the Graph paths: a path resolves, segment by segment, to a
// collection or an entity; the method then picks the operation.

// target is what a path names.
type target struct {
	k      *kind
	ctx    string // @odata.context path of the collection, e.g. admin/cloudLicensing/assignments
	isColl bool
	ids    []string          // collection: sorted internal ids
	byURL  map[string]string // collection: URL id → internal id, when they differ
	id     string            // entity: internal id

	impliedAllotment string // POST on an assignment collection
	impliedAssignee  string
	assigneeType     string

	reprocessUser string // the reprocessAssignments action
	read, write   []string
}

// Permissions (application roles and delegated scopes alike; a token
// needs one of the list). REFERENCE.md §2 names them per endpoint.
var (
	clReadAdmin    = []string{"CloudLicensing.Read.All", "CloudLicensing.Read", "Directory.Read.All", "Directory.ReadWrite.All"}
	clReadUser     = append(slices.Clone(clReadAdmin), "User-CloudLicensing.Read.All", "User-CloudLicensing.Read", "User.Read.All", "User.ReadWrite.All", "User-UsageRight.Read", "User-UsageRight.Read.All")
	clReadGroup    = append(slices.Clone(clReadAdmin), "Group-CloudLicensing.Read.All", "Group.Read.All", "Group.ReadWrite.All")
	clReadDevice   = append(slices.Clone(clReadAdmin), "Device-CloudLicensing.Read.All", "Device-CloudLicensing.Read", "Device.Read.All", "Device.ReadWrite.All", "CloudLicensing-UsageRights.Read.All", "CloudLicensing-UsageRights.Read")
	clWriteAdmin   = []string{"CloudLicensing.AssignLicenses.Organization", "CloudLicensing.AssignLicenses", "Directory.ReadWrite.All"}
	clWriteCentral = append(slices.Clone(clWriteAdmin), "User-CloudLicensing.AssignLicenses.Organization", "User-CloudLicensing.AssignLicenses",
		"User.ReadWrite.All", "Group-CloudLicensing.AssignLicenses.Organization", "Group-CloudLicensing.AssignLicenses", "Group.ReadWrite.All")
	clWriteUser   = append(slices.Clone(clWriteAdmin), "User-CloudLicensing.AssignLicenses.Organization", "User-CloudLicensing.AssignLicenses", "User.ReadWrite.All")
	clWriteGroup  = append(slices.Clone(clWriteAdmin), "Group-CloudLicensing.AssignLicenses.Organization", "Group-CloudLicensing.AssignLicenses", "Group.ReadWrite.All")
	clWriteDevice = append(slices.Clone(clWriteAdmin), "CloudLicensing-Assignment.ReadWrite.All", "CloudLicensing-Assignment.ReadWrite")
	usersRead     = []string{"User.Read.All", "User.ReadWrite.All", "User.ReadBasic.All", "Directory.Read.All", "Directory.ReadWrite.All"}
	groupsRead    = []string{"GroupMember.Read.All", "Group.Read.All", "Group.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
	devicesRead   = []string{"Device.Read.All", "Device.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
)

// routeErr is a Graph error to answer with.
type routeErr struct {
	status           int
	code, inner, msg string
}

func segErr(seg string) *routeErr {
	return &routeErr{http.StatusBadRequest, "BadRequest", "", fmt.Sprintf("Resource not found for the segment '%s'.", seg)}
}

func missing(what, id string) *routeErr {
	return &routeErr{http.StatusNotFound, "notFound", "resourceNotFound", fmt.Sprintf("The %s '%s' was not found.", what, id)}
}

func dirMissing(id string) *routeErr {
	return &routeErr{http.StatusNotFound, "Request_ResourceNotFound", "",
		fmt.Sprintf("Resource '%s' does not exist or one of its queried reference-property objects are not present.", id)}
}

func eq(a, b string) bool { return strings.EqualFold(a, b) }

// sortedSubset returns the sorted keys of a set.
func sortedSubset(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// resolve maps path segments to a target. The caller holds s.mu.
func (s *Server) resolve(segs []string, c claims) (*target, *routeErr) {
	st := s.st
	if len(segs) == 0 || segs[0] == "" {
		return nil, segErr("")
	}
	var t *target
	var rest []string
	switch {
	case eq(segs[0], "admin"):
		if len(segs) < 3 || !eq(segs[1], "cloudLicensing") {
			return nil, segErr(at(segs, 1))
		}
		t = &target{isColl: true, read: clReadAdmin, write: clWriteAdmin}
		switch {
		case eq(segs[2], "allotments"):
			t.k, t.ctx, t.ids = allotmentK, "admin/cloudLicensing/allotments", sortedIDs(st, "allotments", st.allotments)
		case eq(segs[2], "assignments"):
			t.k, t.ctx, t.ids = assignmentK, "admin/cloudLicensing/assignments", sortedIDs(st, "assignments", st.assignments)
			t.write = clWriteCentral
		case eq(segs[2], "assignmentErrors"):
			t.k, t.ctx, t.ids = errorK, "admin/cloudLicensing/assignmentErrors", sortedIDs(st, "errors", st.errs)
		default:
			return nil, segErr(segs[2])
		}
		rest = segs[3:]
	case eq(segs[0], "users") || eq(segs[0], "me") || eq(segs[0], "groups") || eq(segs[0], "devices"):
		root := strings.ToLower(segs[0])
		var principal string
		if root == "me" {
			if c.IDType != "user" {
				return nil, &routeErr{http.StatusBadRequest, "BadRequest", "", "/me request is only valid with delegated authentication flow."}
			}
			principal, segs = c.OID, append([]string{"users", c.OID}, segs[1:]...)
			root = "users"
		}
		if len(segs) == 1 || eq(segs[1], "delta") || len(segs) >= 3 && !eq(segs[2], "cloudLicensing") {
			return s.resolveDirectory(root, segs)
		}
		if principal == "" {
			principal = segs[1]
			if root == "users" {
				principal = s.userID(principal)
			}
		}
		want := map[string]string{"users": typeUser, "groups": typeGroup, "devices": typeDevice}[root]
		if st.principalType(principal) != want {
			return nil, dirMissing(segs[1])
		}
		if len(segs) == 2 {
			return s.resolveDirectory(root, segs)
		}
		if len(segs) < 4 {
			return nil, segErr("cloudLicensing")
		}
		t = &target{isColl: true}
		base := root + "('" + principal + "')/cloudLicensing/"
		switch root {
		case "users":
			t.read, t.write = clReadUser, clWriteUser
		case "groups":
			t.read, t.write = clReadGroup, clWriteGroup
		default:
			t.read, t.write = clReadDevice, clWriteDevice
		}
		switch x := strings.ToLower(segs[3]); {
		case x == "assignments":
			t.k, t.ids = assignmentK, sortedSubset(st.byAssignee[principal])
			t.impliedAssignee, t.assigneeType = principal, want
			if root == "users" && len(segs) == 5 && eq(segs[4], "reprocessAssignments") {
				return &target{reprocessUser: principal, read: clWriteAdmin, write: clWriteAdmin}, nil
			}
		case x == "usagerights":
			t.k = usageRightK
			t.ids, t.byURL = s.usageRightKeys(principal)
		case x == "assignmenterrors" && root == "users":
			t.k = errorK
			t.ids = sortedSubset(st.userErrs[principal])
		case x == "waitingmembers" && root != "groups":
			t.k = waitingK
			for _, w := range st.waiting {
				if w.MemberID == principal {
					t.ids = append(t.ids, w.ID)
				}
			}
			slices.Sort(t.ids)
		default:
			return nil, segErr(segs[3])
		}
		t.ctx = base + segs[3]
		rest = segs[4:]
	default:
		return nil, segErr(segs[0])
	}
	return s.walk(t, rest)
}

func at(segs []string, i int) string {
	if i < len(segs) {
		return segs[i]
	}
	return ""
}

// userID resolves a user id or userPrincipalName to the id ("" if none).
func (s *Server) userID(idOrUPN string) string {
	if s.st.users[idOrUPN] != nil {
		return idOrUPN
	}
	return s.st.upn[strings.ToLower(idOrUPN)]
}

// walk applies the remaining segments: an id in a collection, a
// navigation property of an entity.
func (s *Server) walk(t *target, rest []string) (*target, *routeErr) {
	for _, seg := range rest {
		if t.isColl {
			id := seg
			if t.byURL != nil {
				id = t.byURL[seg]
			}
			i := sort.SearchStrings(t.ids, id)
			if id == "" || i == len(t.ids) || t.ids[i] != id {
				return nil, missing(strings.TrimPrefix(t.k.name, "microsoft.graph.cloudLicensing."), seg)
			}
			t = &target{k: t.k, ctx: t.ctx, id: id, read: t.read, write: t.write}
			continue
		}
		name, ok := navNamed(t.k, seg)
		if !ok {
			return nil, segErr(seg)
		}
		n := t.k.navs[name]
		refs := n.refs(s, t.id)
		if n.many {
			ids := make([]string, 0, len(refs))
			for _, r := range refs {
				ids = append(ids, r.id)
			}
			slices.Sort(ids)
			next := &target{k: n.target(), ctx: t.ctx + "('" + t.id + "')/" + name, isColl: true, ids: ids, read: t.read, write: t.write}
			if t.k == allotmentK && name == "assignments" {
				next.impliedAllotment = t.id
			}
			t = next
			continue
		}
		if len(refs) == 0 {
			return nil, &routeErr{http.StatusNotFound, "notFound", "resourceNotFound", fmt.Sprintf("The %s of '%s' does not exist.", name, t.id)}
		}
		ctx := strings.TrimPrefix(refs[0].k.name, "microsoft.graph.")
		ctx = strings.ReplaceAll(ctx, "cloudLicensing.", "") + "s"
		t = &target{k: refs[0].k, ctx: ctx, id: refs[0].id, read: t.read, write: t.write}
	}
	return t, nil
}

// resolveDirectory handles /users, /groups, /devices themselves.
func (s *Server) resolveDirectory(root string, segs []string) (*target, *routeErr) {
	st := s.st
	t := &target{isColl: true, ctx: root}
	switch root {
	case "users":
		t.k, t.ids, t.read = userK, sortedIDs(st, "users", st.users), usersRead
	case "groups":
		t.k, t.ids, t.read = groupK, sortedIDs(st, "groups", st.groups), groupsRead
	default:
		t.k, t.ids, t.read = deviceK, sortedIDs(st, "devices", st.devices), devicesRead
	}
	if len(segs) == 1 {
		return t, nil
	}
	if eq(segs[1], "delta") && len(segs) == 2 && root != "devices" {
		return &target{k: t.k, ctx: root + "/delta", read: t.read, isColl: true}, nil
	}
	id := segs[1]
	if root == "users" {
		id = s.userID(id)
	}
	if id == "" || st.principalType(id) != map[string]string{"users": typeUser, "groups": typeGroup, "devices": typeDevice}[root] {
		return nil, dirMissing(segs[1])
	}
	t = &target{k: t.k, ctx: root, id: id, read: t.read}
	if len(segs) == 2 {
		return t, nil
	}
	if root == "groups" && eq(segs[2], "members") && len(segs) == 3 {
		return &target{k: directoryK, ctx: "directoryObjects", isColl: true, ids: sortedSubset(st.groups[id].members), read: groupsRead}, nil
	}
	return nil, segErr(segs[2])
}

// serveGraphPath serves one authenticated Graph request.
func (s *Server) serveGraphPath(w http.ResponseWriter, r *http.Request, path string, c claims, now time.Time) {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	if len(segs) == 1 && segs[0] == "$batch" {
		s.serveBatch(w, r, c, now)
		return
	}
	s.mu.Lock()
	t, rerr := s.resolve(segs, c)
	s.mu.Unlock()
	if rerr != nil {
		writeGraphError(w, r, now, rerr.status, rerr.code, rerr.inner, rerr.msg)
		return
	}
	methodNotAllowed := func(allow ...string) {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeGraphError(w, r, now, http.StatusMethodNotAllowed, "methodNotAllowed", "",
			"Specified HTTP method is not allowed for the request target.")
	}
	need := t.read
	writes := r.Method != http.MethodGet
	if writes {
		need = t.write
	}
	deny := func() bool {
		if c.allows(need) {
			return false
		}
		writeGraphError(w, r, now, http.StatusForbidden, "Authorization_RequestDenied", "",
			"Insufficient privileges to complete the operation.")
		return true
	}
	switch {
	case t.reprocessUser != "":
		if r.Method != http.MethodPost {
			methodNotAllowed(http.MethodPost)
			return
		}
		if deny() {
			return
		}
		if _, err := parseQuery(r.URL.RawQuery); err != nil {
			writeQueryError(w, r, now, err)
			return
		}
		if err := s.Reprocess(t.reprocessUser); err != nil {
			writeGraphError(w, r, now, http.StatusNotFound, "Request_ResourceNotFound", "", err.Error())
			return
		}
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
	case t.ctx == "users/delta" || t.ctx == "groups/delta":
		if r.Method != http.MethodGet {
			methodNotAllowed(http.MethodGet)
			return
		}
		if !deny() {
			s.serveDelta(w, r, t, now)
		}
	case t.isColl && r.Method == http.MethodGet:
		if !deny() {
			s.serveList(w, r, t, now)
		}
	case t.isColl && r.Method == http.MethodPost && t.k == assignmentK:
		if !deny() {
			s.serveCreate(w, r, t, now)
		}
	case t.isColl:
		if t.k == assignmentK {
			methodNotAllowed(http.MethodGet, http.MethodPost)
		} else {
			methodNotAllowed(http.MethodGet)
		}
	case r.Method == http.MethodGet:
		if !deny() {
			s.serveEntity(w, r, t, now)
		}
	case t.k == assignmentK && (r.Method == http.MethodPatch || r.Method == http.MethodDelete):
		if !deny() {
			s.serveWrite(w, r, t, now)
		}
	case t.k == assignmentK:
		methodNotAllowed(http.MethodGet, http.MethodPatch, http.MethodDelete)
	default:
		methodNotAllowed(http.MethodGet)
	}
}

// listOptions are the query options collections accept.
var listOptions = []string{"$top", "$skiptoken", "$select", "$expand", "$filter"}

func (s *Server) serveList(w http.ResponseWriter, r *http.Request, t *target, now time.Time) {
	allowed := listOptions
	directory := t.k == userK || t.k == groupK || t.k == deviceK || t.k == directoryK
	switch {
	case t.k == allotmentK && t.ctx == "admin/cloudLicensing/allotments":
		allowed = append(slices.Clone(listOptions), "$apply")
	case directory:
		allowed = append(slices.Clone(listOptions), "$count")
	}
	o, err := s.parseOptions(r.URL.RawQuery, t.k, allowed...)
	if err != nil {
		writeQueryError(w, r, now, err)
		return
	}
	count := false
	if v, ok := o.raw["$count"]; ok {
		// An advanced query on directory objects: Graph wants
		// ConsistencyLevel: eventual with it.
		switch {
		case !strings.EqualFold(r.Header.Get("ConsistencyLevel"), "eventual"):
			writeGraphError(w, r, now, http.StatusBadRequest, "Request_UnsupportedQuery", "",
				"$count is only supported with the ConsistencyLevel header set to eventual.")
			return
		case v != "true" && v != "false":
			writeQueryError(w, r, now, badQuery("invalidQuery", "$count must be true or false, not '%s'.", v))
			return
		}
		count = v == "true"
	}
	if v, ok := o.raw["$apply"]; ok {
		s.serveApply(w, r, v, o, now)
		return
	}
	s.mu.Lock()
	items, last, more := s.page(t.k, t.ids, o)
	total := 0
	if count {
		for _, id := range t.ids {
			if o.filter == nil || o.filter(t.k.render(s, id)) {
				total++
			}
		}
	}
	s.mu.Unlock()
	out := jobj{{"@odata.context", graphRoot(r) + "/$metadata#" + t.ctx + selectSuffix(o.sel)}}
	if count {
		out = append(out, field{"@odata.count", total})
	}
	if more {
		next := map[string]string{}
		for k, v := range o.raw {
			next[k] = v
		}
		next["$skiptoken"] = encodeSkiptoken(last)
		out = append(out, field{"@odata.nextLink", graphRoot(r) + strings.TrimPrefix(r.URL.Path, graphBase) + "?" + queryString(next)})
	}
	out = append(out, field{"value", items})
	writeJSON(w, http.StatusOK, odataJSON, out)
}

func (s *Server) serveEntity(w http.ResponseWriter, r *http.Request, t *target, now time.Time) {
	allowed := []string{"$select", "$expand"}
	if t.k == userK || t.k == groupK || t.k == deviceK {
		allowed = []string{"$select"}
	}
	o, err := s.parseOptions(r.URL.RawQuery, t.k, allowed...)
	if err != nil {
		writeQueryError(w, r, now, err)
		return
	}
	s.mu.Lock()
	body := s.present(ref{t.k, t.id}, o.sel, o.exp)
	s.mu.Unlock()
	if body == nil {
		writeGraphError(w, r, now, http.StatusNotFound, "notFound", "resourceNotFound", "The resource '"+t.id+"' was not found.")
		return
	}
	writeJSON(w, http.StatusOK, odataJSON, append(jobj{{"@odata.context", graphRoot(r) + "/$metadata#" + t.ctx + selectSuffix(o.sel) + "/$entity"}}, body...))
}

// writeSimError answers with the Graph error a refused change maps to.
func writeSimError(w http.ResponseWriter, r *http.Request, now time.Time, err error) {
	var se *SimError
	if errors.As(err, &se) {
		writeGraphError(w, r, now, se.Status, se.Code, se.InnerCode, se.Message)
		return
	}
	writeGraphError(w, r, now, http.StatusInternalServerError, "generalException", "", err.Error())
}

// readBody decodes a JSON object body into raw members.
func readBody(r *http.Request) (map[string]json.RawMessage, error) {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return nil, simErr(http.StatusUnsupportedMediaType, "UnsupportedMediaType", "", "Content-Type must be application/json, not %q.", ct)
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return nil, simErr(http.StatusBadRequest, "badRequest", "invalidRequest", "Read the request body: %v.", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return nil, simErr(http.StatusBadRequest, "badRequest", "invalidRequest", "The request body is not a JSON object.")
	}
	return m, nil
}

// parseBind resolves an @odata.bind URL (absolute, as in the examples,
// or relative to the version root) to its path segments under /beta.
func parseBind(raw json.RawMessage, prop string) ([]string, error) {
	var v string
	if err := json.Unmarshal(raw, &v); err != nil || v == "" {
		return nil, simErr(http.StatusBadRequest, "badRequest", "invalidRequest", "%s@odata.bind must be a URL string.", prop)
	}
	p := v
	if u, err := url.Parse(v); err == nil && u.IsAbs() {
		p = u.Path
	}
	p = strings.Trim(p, "/")
	for _, version := range []string{"beta/", "v1.0/"} {
		if len(p) >= len(version) && eq(p[:len(version)], version) {
			p = p[len(version):]
		}
	}
	return strings.Split(p, "/"), nil
}

func requiredMissing(prop string) error {
	return simErr(http.StatusBadRequest, "badRequest", "requiredFieldOrParameterMissing", "The required property '%s' is missing.", prop)
}

// serveCreate creates an assignment: whatever the collection does not
// imply must be bound in the body.
func (s *Server) serveCreate(w http.ResponseWriter, r *http.Request, t *target, now time.Time) {
	if _, err := parseQuery(r.URL.RawQuery); err != nil {
		writeQueryError(w, r, now, err)
		return
	}
	a, err := s.assignmentFromBody(r, t)
	if err != nil {
		writeSimError(w, r, now, err)
		return
	}
	unlock := s.write()
	created, err := s.assignLocked(a)
	var body jobj
	if err == nil {
		body = s.present(ref{assignmentK, created.ID}, nil, nil)
	}
	unlock()
	if err != nil {
		writeSimError(w, r, now, err)
		return
	}
	w.Header().Set("Location", graphRoot(r)+"/admin/cloudLicensing/assignments/"+created.ID)
	writeJSON(w, http.StatusCreated, odataJSON, append(jobj{{"@odata.context", graphRoot(r) + "/$metadata#admin/cloudLicensing/assignments/$entity"}}, body...))
}

func (s *Server) assignmentFromBody(r *http.Request, t *target) (AssignmentState, error) {
	body, err := readBody(r)
	if err != nil {
		return AssignmentState{}, err
	}
	a := AssignmentState{AllotmentID: t.impliedAllotment, AssignedToID: t.impliedAssignee, AssignedToType: t.assigneeType}
	for k, v := range body {
		switch k {
		case "@odata.type":
		case "disabledServicePlanIds":
			if err := json.Unmarshal(v, &a.DisabledServicePlanIDs); err != nil || a.DisabledServicePlanIDs == nil {
				return a, simErr(http.StatusBadRequest, "badRequest", "invalidRequest", "disabledServicePlanIds must be an array of plan ids.")
			}
		case "allotment@odata.bind":
			segs, err := parseBind(v, "allotment")
			if err != nil {
				return a, err
			}
			if len(segs) != 4 || !eq(segs[0], "admin") || !eq(segs[1], "cloudLicensing") || !eq(segs[2], "allotments") {
				return a, simErr(http.StatusBadRequest, "badRequest", "invalidRequest", "allotment@odata.bind must name /admin/cloudLicensing/allotments/{id}.")
			}
			if a.AllotmentID != "" && a.AllotmentID != segs[3] {
				return a, simErr(http.StatusBadRequest, "badRequest", "invalidRequest", "allotment@odata.bind names another allotment than the request URL.")
			}
			s.mu.Lock()
			known := s.st.allotments[segs[3]] != nil
			s.mu.Unlock()
			if !known {
				return a, simErr(http.StatusBadRequest, "badRequest", "notFound", "The allotment '%s' in allotment@odata.bind does not exist.", segs[3])
			}
			a.AllotmentID = segs[3]
		case "assignedTo@odata.bind":
			segs, err := parseBind(v, "assignedTo")
			if err != nil {
				return a, err
			}
			typ := map[string]string{"users": typeUser, "groups": typeGroup, "devices": typeDevice, "directoryobjects": ""}[strings.ToLower(segs[0])]
			if len(segs) != 2 || (typ == "" && !eq(segs[0], "directoryObjects")) {
				return a, simErr(http.StatusBadRequest, "badRequest", "invalidRequest", "assignedTo@odata.bind must name /users/{id}, /groups/{id} or /devices/{id}.")
			}
			id := segs[1]
			if typ == typeUser {
				s.mu.Lock()
				if uid := s.userID(id); uid != "" {
					id = uid
				}
				s.mu.Unlock()
			}
			if a.AssignedToID != "" && a.AssignedToID != id {
				return a, simErr(http.StatusBadRequest, "badRequest", "invalidRequest", "assignedTo@odata.bind names another object than the request URL.")
			}
			a.AssignedToID, a.AssignedToType = id, typ
		default:
			return a, simErr(http.StatusBadRequest, "badRequest", "invalidRequest", "Property '%s' does not exist on type 'microsoft.graph.cloudLicensing.assignment' or cannot be set on create.", k)
		}
	}
	switch {
	case a.AllotmentID == "":
		return a, requiredMissing("allotment")
	case a.AssignedToID == "":
		return a, requiredMissing("assignedTo")
	case body["disabledServicePlanIds"] == nil:
		return a, requiredMissing("disabledServicePlanIds")
	}
	return a, nil
}

// serveWrite serves PATCH (200 with the assignment) and DELETE (204).
func (s *Server) serveWrite(w http.ResponseWriter, r *http.Request, t *target, now time.Time) {
	if _, err := parseQuery(r.URL.RawQuery); err != nil {
		writeQueryError(w, r, now, err)
		return
	}
	if r.Method == http.MethodDelete {
		if err := s.Unassign(t.id); err != nil {
			writeGraphError(w, r, now, http.StatusNotFound, "notFound", "resourceNotFound", err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	body, err := readBody(r)
	if err != nil {
		writeSimError(w, r, now, err)
		return
	}
	s.mu.Lock()
	var cur AssignmentState
	if a := s.st.assignments[t.id]; a != nil {
		cur = *a
	}
	s.mu.Unlock()
	var disabled []string
	for k, v := range body {
		switch k {
		case "@odata.type":
		case "disabledServicePlanIds":
			if err := json.Unmarshal(v, &disabled); err != nil || disabled == nil {
				writeSimError(w, r, now, simErr(http.StatusBadRequest, "badRequest", "invalidRequest", "disabledServicePlanIds must be an array of plan ids."))
				return
			}
		case "allotment@odata.bind", "assignedTo@odata.bind":
			// The documented example sends both; accepted when they name
			// what the assignment already has.
			segs, err := parseBind(v, strings.TrimSuffix(k, "@odata.bind"))
			if err == nil && len(segs) > 0 && (segs[len(segs)-1] == cur.AllotmentID || segs[len(segs)-1] == cur.AssignedToID) {
				continue
			}
			writeSimError(w, r, now, simErr(http.StatusBadRequest, "badRequest", "immutablePropertyModified",
				"Property '%s' cannot be changed; delete the assignment and create another.", strings.TrimSuffix(k, "@odata.bind")))
			return
		default:
			writeSimError(w, r, now, simErr(http.StatusBadRequest, "badRequest", "invalidRequest", "Property '%s' cannot be updated.", k))
			return
		}
	}
	if body["disabledServicePlanIds"] == nil {
		writeSimError(w, r, now, requiredMissing("disabledServicePlanIds"))
		return
	}
	unlock := s.write()
	_, err = s.updateLocked(t.id, disabled)
	var out jobj
	if err == nil {
		out = s.present(ref{assignmentK, t.id}, nil, nil)
	}
	unlock()
	if err != nil {
		writeSimError(w, r, now, err)
		return
	}
	writeJSON(w, http.StatusOK, odataJSON, append(jobj{{"@odata.context", graphRoot(r) + "/$metadata#admin/cloudLicensing/assignments/$entity"}}, out...))
}
