package graphsim_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/seatledger/seatledger/internal/graphsim"
)

// TestServer_MirrorCalls runs the calls the mirror makes, paged, and
// checks they list what the simulator holds.
func TestServer_MirrorCalls(t *testing.T) {
	t.Parallel()
	s := start(t, graphsim.Options{PageSize: 4})
	tok := s.token(t, "CloudLicensing.Read.All", "User.Read.All", "GroupMember.Read.All")
	g := s.info.GraphURL

	groupName := map[string]string{}
	for _, gr := range s.sim.Groups() {
		groupName[gr.ID] = gr.DisplayName
	}
	var got []string
	groups := 0
	for _, p := range listAll(t, s.hc, g+"/admin/cloudLicensing/assignments?$expand=allotment($select=id),assignedTo($select=id,displayName)", tok) {
		for _, it := range items(p) {
			al := it["allotment"].(map[string]any)
			to := it["assignedTo"].(map[string]any)
			if len(al) != 2 || al["id"] == nil || len(to) != 3 || to["id"] == nil || to["displayName"] == nil {
				t.Errorf("assignment %v: want allotment with @odata.type and id only, assignedTo with @odata.type, id and displayName only", it)
			}
			// A group assignee is a microsoft.graph.group with its name.
			if to["@odata.type"] == "#microsoft.graph.group" {
				groups++
				if id, _ := to["id"].(string); to["displayName"] != groupName[id] || groupName[id] == "" {
					t.Errorf("assignment %v: group assignee named %v, want %q", it["id"], to["displayName"], groupName[id])
				}
			}
			got = append(got, it["id"].(string))
		}
	}
	var want []string
	for _, a := range s.sim.Assignments() {
		want = append(want, a.ID)
	}
	if !slices.Equal(got, want) || groups == 0 {
		t.Errorf("listed assignments %v (%d to groups), want %v and some to groups", got, groups, want)
	}

	pages := listAll(t, s.hc, g+"/admin/cloudLicensing/allotments/"+demoTeams+"/waitingMembers?$expand=assignedTo($select=id)", tok)
	if its := items(pages[0]); len(its) != 2 || its[0]["assignedTo"].(map[string]any)["id"] != demoUser(6) {
		t.Errorf("waiting members = %v", its)
	}
	pages = listAll(t, s.hc, g+"/admin/cloudLicensing/assignmentErrors?$expand=assignedTo($select=id)", tok)
	if its := items(pages[0]); len(its) != 1 || its[0]["assignedTo"].(map[string]any)["id"] != demoUser(23) || its[0]["code"] != "MissingDependency" {
		t.Errorf("assignment errors = %v", its)
	}
	n := 0
	for _, p := range listAll(t, s.hc, g+"/users?$select=id,department,accountEnabled&$filter=department%20eq%20'engineering'", tok) {
		for _, it := range items(p) {
			n++
			if it["department"] != "Engineering" || it["accountEnabled"] != true || len(it) != 4 {
				t.Errorf("user %v", it)
			}
		}
	}
	if n != 8 {
		t.Errorf("%d engineers, want 8", n)
	}
	var members []string
	for _, p := range listAll(t, s.hc, g+"/groups/"+demoEngGroup+"/members?$select=id", tok) {
		for _, it := range items(p) {
			members = append(members, it["id"].(string))
		}
	}
	if len(members) != 8 {
		t.Errorf("engineering members = %v", members)
	}
	r := get(t, s.hc, g+"/users/ada.lindqvist@contoso.example?$select=id,employeeOrgData", tok)
	if r.status != 200 || r.body["id"] != demoUser(1) || r.body["employeeOrgData"].(map[string]any)["costCenter"] != "CC-100" {
		t.Errorf("GET user by UPN: %d %s", r.status, r.raw)
	}
}

func TestServer_AssignmentWrites(t *testing.T) {
	t.Parallel()
	s := start(t, graphsim.Options{})
	g := s.info.GraphURL
	read := s.token(t, "CloudLicensing.Read.All")
	write := s.token(t, "CloudLicensing.AssignLicenses.Organization", "CloudLicensing.Read.All")
	body := func(allotment, to string, disabled ...string) map[string]any {
		b := map[string]any{"disabledServicePlanIds": append([]string{}, disabled...)}
		if allotment != "" {
			b["allotment@odata.bind"] = g + "/admin/cloudLicensing/allotments/" + allotment
		}
		if to != "" {
			b["assignedTo@odata.bind"] = g + "/" + to
		}
		return b
	}
	// A read-only token cannot write.
	r := send(t, s.hc, "POST", g+"/admin/cloudLicensing/assignments", read, body(demoExchange, "users/"+demoUser(29)))
	wantGraphError(t, r, http.StatusForbidden, "Authorization_RequestDenied")

	inner := func(r response) any { return r.body["error"].(map[string]any)["innerError"].(map[string]any)["code"] }
	// Full allotment, direct user.
	r = send(t, s.hc, "POST", g+"/admin/cloudLicensing/assignments", write, body(demoTeams, "users/"+demoUser(8)))
	wantGraphError(t, r, http.StatusBadRequest, "badRequest")
	if inner(r) != "noAvailableLicenses" {
		t.Errorf("full allotment: innerError.code = %v", inner(r))
	}
	// A device on a user/group allotment.
	r = send(t, s.hc, "POST", g+"/admin/cloudLicensing/assignments", write, body(demoExchange, "devices/"+kiosk1))
	if wantGraphError(t, r, http.StatusBadRequest, "badRequest"); inner(r) != "invalidAssigneeType" {
		t.Errorf("device: innerError.code = %v", inner(r))
	}
	// Unknown plan, missing bind, missing disabledServicePlanIds.
	r = send(t, s.hc, "POST", g+"/admin/cloudLicensing/assignments", write, body(demoExchange, "users/"+demoUser(29), "00000000-0000-4000-8000-000000000000"))
	wantGraphError(t, r, http.StatusBadRequest, "badRequest")
	r = send(t, s.hc, "POST", g+"/admin/cloudLicensing/assignments", write, body("", "users/"+demoUser(29)))
	if wantGraphError(t, r, http.StatusBadRequest, "badRequest"); inner(r) != "requiredFieldOrParameterMissing" {
		t.Errorf("missing allotment: innerError.code = %v", inner(r))
	}
	// Cem (29) gets Exchange Standard... no: he has E3, which excludes it.
	r = send(t, s.hc, "POST", g+"/users/"+demoUser(29)+"/cloudLicensing/assignments", write, body(demoExchange, ""))
	if wantGraphError(t, r, http.StatusBadRequest, "badRequest"); inner(r) != "mutuallyExclusiveServicePlans" {
		t.Errorf("exclusive: innerError.code = %v", inner(r))
	}
	// A valid one, then PATCH, then DELETE.
	before := s.sim.Allotments()
	r = send(t, s.hc, "POST", g+"/users/"+demoUser(29)+"/cloudLicensing/assignments", write, body(demoExchange, "", "9aaf7827-d63c-4b61-89c3-182f06f82e5c"))
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	id := r.body["id"].(string)
	if after := s.sim.Allotments(); after[3].ConsumedUnits != before[3].ConsumedUnits+1 {
		t.Errorf("consumedUnits %d → %d, want +1", before[3].ConsumedUnits, after[3].ConsumedUnits)
	}
	r = send(t, s.hc, "POST", g+"/users/"+demoUser(29)+"/cloudLicensing/assignments", write, body(demoExchange, "", "9aaf7827-d63c-4b61-89c3-182f06f82e5c"))
	wantGraphError(t, r, http.StatusConflict, "conflict")
	r = send(t, s.hc, "PATCH", g+"/users/"+demoUser(29)+"/cloudLicensing/assignments/"+id, write, map[string]any{"disabledServicePlanIds": []string{"9aaf7827-d63c-4b61-89c3-182f06f82e5c", "5e62787c-c316-451f-b873-1d05acd4d12c"}})
	if r.status != http.StatusOK || len(r.body["disabledServicePlanIds"].([]any)) != 2 {
		t.Errorf("PATCH: %d %s", r.status, r.raw)
	}
	r = send(t, s.hc, "PATCH", g+"/admin/cloudLicensing/assignments/"+id, write, map[string]any{"disabledServicePlanIds": []string{}, "allotment@odata.bind": g + "/admin/cloudLicensing/allotments/" + demoTeams})
	if wantGraphError(t, r, http.StatusBadRequest, "badRequest"); inner(r) != "immutablePropertyModified" {
		t.Errorf("PATCH allotment: innerError.code = %v", inner(r))
	}
	r = send(t, s.hc, "DELETE", g+"/admin/cloudLicensing/assignments/"+id, write, nil)
	if r.status != http.StatusNoContent {
		t.Errorf("DELETE: %d %s", r.status, r.raw)
	}
	r = send(t, s.hc, "DELETE", g+"/admin/cloudLicensing/assignments/"+id, write, nil)
	wantGraphError(t, r, http.StatusNotFound, "notFound")

	// Freeing a Teams seat over HTTP serves the waiting room.
	var engAssignment string
	for _, a := range s.sim.Assignments() {
		if a.AssignedToID == demoEngGroup {
			engAssignment = a.ID
		}
	}
	if err := s.sim.RemoveGroupMember(demoEngGroup, demoUser(1)); err != nil {
		t.Fatal(err)
	}
	if ws := s.sim.WaitingMembers(); len(ws) != 1 || ws[0].MemberID != demoUser(7) {
		t.Errorf("waiting after a seat freed: %+v", ws)
	}
	r = send(t, s.hc, "DELETE", g+"/groups/"+demoEngGroup+"/cloudLicensing/assignments/"+engAssignment, write, nil)
	if r.status != http.StatusNoContent || len(s.sim.WaitingMembers()) != 0 {
		t.Errorf("DELETE group assignment: %d, waiting %v", r.status, s.sim.WaitingMembers())
	}
	// Reprocess: 200, no body; the error's SKU is gone, so is the error.
	r = send(t, s.hc, "POST", g+"/users/"+demoUser(23)+"/cloudLicensing/assignments/reprocessAssignments", write, nil)
	if r.status != http.StatusOK || len(r.raw) != 0 {
		t.Errorf("reprocess: %d %s", r.status, r.raw)
	}
	if es := s.sim.AssignmentErrors(); len(es) != 0 {
		t.Errorf("errors = %+v", es)
	}
}

func TestServer_Me(t *testing.T) {
	t.Parallel()
	s := start(t, graphsim.Options{})
	app := s.token(t, "CloudLicensing.Read.All")
	r := get(t, s.hc, s.info.GraphURL+"/me/cloudLicensing/assignments", app)
	wantGraphError(t, r, http.StatusBadRequest, "BadRequest")
	me, err := s.sim.MintDelegatedToken(demoUser(1), []string{"CloudLicensing.Read"})
	if err != nil {
		t.Fatal(err)
	}
	r = get(t, s.hc, s.info.GraphURL+"/me/cloudLicensing/assignments", me)
	if r.status != 200 || len(items(r)) != 2 {
		t.Errorf("/me assignments: %d %s", r.status, r.raw)
	}
}

func TestServer_UsersCount(t *testing.T) {
	t.Parallel()
	s := start(t, graphsim.Options{PageSize: 5})
	tok := s.token(t, "User.Read.All")
	url := s.info.GraphURL + "/users?$count=true&$filter=department%20eq%20'Sales'"
	wantGraphError(t, get(t, s.hc, url, tok), http.StatusBadRequest, "Request_UnsupportedQuery")
	r := get(t, s.hc, url, tok, "ConsistencyLevel", "eventual")
	if r.status != 200 || r.body["@odata.count"] != float64(7) || len(items(r)) != 5 {
		t.Errorf("count: %d %s", r.status, r.raw)
	}
	if next, _ := r.body["@odata.nextLink"].(string); !strings.Contains(next, "$count=true") {
		t.Errorf("nextLink %q does not repeat $count", next)
	}
}
