package graphsim_test

import (
	"net/http"
	"testing"

	"github.com/seatledger/seatledger/internal/graphsim"
)

// deltaRound follows nextLinks from url to the deltaLink and returns the
// items and the deltaLink.
func deltaRound(t *testing.T, s started, url, tok string) ([]map[string]any, string) {
	t.Helper()
	var all []map[string]any
	for i := 0; ; i++ {
		r := get(t, s.hc, url, tok)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", url, r.status, r.raw)
		}
		all = append(all, items(r)...)
		if d, ok := r.body["@odata.deltaLink"].(string); ok {
			return all, d
		}
		url, _ = r.body["@odata.nextLink"].(string)
		if url == "" || i > 100 {
			t.Fatalf("page without nextLink or deltaLink: %s", r.raw)
		}
	}
}

func TestServer_UsersDelta(t *testing.T) {
	t.Parallel()
	s := start(t, graphsim.Options{PageSize: 7})
	tok := s.token(t, "User.Read.All")
	first, link := deltaRound(t, s, s.info.GraphURL+"/users/delta?$select=id,userPrincipalName,displayName,department,companyName,employeeOrgData,accountEnabled", tok)
	if len(first) != 30 || first[0]["employeeOrgData"] == nil {
		t.Fatalf("first round: %d users, first %v", len(first), first[0])
	}
	again, link := deltaRound(t, s, link, tok)
	if len(again) != 0 {
		t.Errorf("no changes, yet %d items", len(again))
	}
	if err := s.sim.SetDepartment(demoUser(2), "Finance"); err != nil {
		t.Fatal(err)
	}
	if err := s.sim.RemoveUser(demoUser(3)); err != nil {
		t.Fatal(err)
	}
	changes, _ := deltaRound(t, s, link, tok)
	if len(changes) != 2 {
		t.Fatalf("changes = %v, want two", changes)
	}
	for _, c := range changes {
		switch c["id"] {
		case demoUser(2):
			if c["department"] != "Finance" {
				t.Errorf("moved user: %v", c)
			}
		case demoUser(3):
			if c["@removed"] == nil {
				t.Errorf("removed user: %v", c)
			}
		default:
			t.Errorf("unexpected change %v", c)
		}
	}
}

func TestServer_GroupsDelta(t *testing.T) {
	t.Parallel()
	s := start(t, graphsim.Options{})
	tok := s.token(t, "GroupMember.Read.All")
	first, link := deltaRound(t, s, s.info.GraphURL+"/groups/delta?$select=displayName,members", tok)
	if len(first) != 3 || len(first[0]["members@delta"].([]any)) != 8 {
		t.Fatalf("first round = %v", first)
	}
	if err := s.sim.RemoveGroupMember(demoEngGroup, demoUser(1)); err != nil {
		t.Fatal(err)
	}
	if err := s.sim.AddGroupMember(demoEngGroup, demoUser(9)); err != nil {
		t.Fatal(err)
	}
	changes, _ := deltaRound(t, s, link, tok)
	if len(changes) != 1 {
		t.Fatalf("changes = %v", changes)
	}
	md := changes[0]["members@delta"].([]any)
	if len(md) != 2 || md[0].(map[string]any)["@removed"] == nil || md[1].(map[string]any)["@removed"] != nil {
		t.Errorf("members@delta = %v", md)
	}
}

func TestServer_Batch(t *testing.T) {
	t.Parallel()
	s := start(t, graphsim.Options{})
	tok := s.token(t, "CloudLicensing.Read.All")
	reqs := []map[string]any{
		{"id": "1", "method": "GET", "url": "/admin/cloudLicensing/allotments/" + demoTeams},
		{"id": "2", "method": "GET", "url": "users/" + demoUser(1) + "/cloudLicensing/usageRights"},
		{"id": "3", "method": "GET", "url": "/admin/cloudLicensing/allotments/nope"},
		{"id": "4", "method": "GET", "url": "/users"}, // no User.Read.All
	}
	r := send(t, s.hc, "POST", s.info.GraphURL+"/$batch", tok, map[string]any{"requests": reqs})
	if r.status != http.StatusOK {
		t.Fatalf("batch: %d %s", r.status, r.raw)
	}
	want := map[string]float64{"1": 200, "2": 200, "3": 404, "4": 403}
	for _, x := range r.body["responses"].([]any) {
		resp := x.(map[string]any)
		if resp["status"] != want[resp["id"].(string)] {
			t.Errorf("response %v: status %v", resp["id"], resp["status"])
		}
	}
	var many []map[string]any
	for i := range 21 {
		many = append(many, map[string]any{"id": string(rune('a' + i)), "method": "GET", "url": "/admin/cloudLicensing/allotments"})
	}
	r = send(t, s.hc, "POST", s.info.GraphURL+"/$batch", tok, map[string]any{"requests": many})
	wantGraphError(t, r, http.StatusBadRequest, "BadRequest")
}
