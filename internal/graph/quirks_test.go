package graph_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/seatledger/seatledger/internal/graph"
)

func TestDecodeDirectoryObject_Types(t *testing.T) {
	t.Parallel()
	tests := []struct {
		body string
		want graph.DirectoryObject
	}{
		{`{"@odata.type":"#microsoft.graph.user","id":"u"}`, graph.DirectoryObject{ID: "u", Type: "user"}},
		{`{"@odata.type":"microsoft.graph.group","id":"g","displayName":"Sales"}`, graph.DirectoryObject{ID: "g", Type: "group", DisplayName: "Sales"}},
		{`{"value":{"@odata.type":"#Microsoft.Graph.Device","id":"d"}}`, graph.DirectoryObject{ID: "d", Type: "device"}},
		{`{"@odata.type":"#microsoft.graph.servicePrincipal","id":"sp"}`, graph.DirectoryObject{ID: "sp"}},
		{`{"id":"x"}`, graph.DirectoryObject{ID: "x"}},
	}
	for _, tt := range tests {
		got, err := graph.DecodeDirectoryObject([]byte(tt.body))
		if err != nil {
			t.Errorf("%s: %v", tt.body, err)
			continue
		}
		if got != tt.want {
			t.Errorf("%s: got %+v, want %+v", tt.body, got, tt.want)
		}
	}
	if _, err := graph.DecodeDirectoryObject([]byte(`{"@odata.type":"#microsoft.graph.user"}`)); err == nil {
		t.Error("an object without id decoded")
	}
}

func TestDecode_Tolerance(t *testing.T) {
	t.Parallel()
	// Timestamps: 7 digits and +00:00, Z, other offsets, no offset at all.
	for in, want := range map[string]time.Time{
		"2024-11-22T17:11:10.6635939+00:00": time.Date(2024, 11, 22, 17, 11, 10, 663593900, time.UTC),
		"2024-11-22T17:11:10Z":              time.Date(2024, 11, 22, 17, 11, 10, 0, time.UTC),
		"2024-11-22T19:11:10+02:00":         time.Date(2024, 11, 22, 17, 11, 10, 0, time.UTC),
		"2024-11-22T17:11:10.5":             time.Date(2024, 11, 22, 17, 11, 10, 500000000, time.UTC),
	} {
		w, err := graph.DecodeWaitingMember([]byte(`{"id":"w","waitingSinceDateTime":"` + in + `"}`))
		if err != nil || !w.WaitingSince.Equal(want) || w.WaitingSince.Location() != time.UTC {
			t.Errorf("waitingSinceDateTime %s: got %v, %v; want %v UTC", in, w.WaitingSince, err, want)
		}
	}
	if _, err := graph.DecodeAssignmentError([]byte(`{"id":"e","occurrenceDateTime":"yesterday"}`)); err == nil || !strings.Contains(err.Error(), "occurrenceDateTime") {
		t.Errorf("bad timestamp: err = %v", err)
	}

	// Unknown properties stay in Raw; unknown codes and flags are kept.
	e, err := graph.DecodeAssignmentError([]byte(`{"id":"e","code":"SomethingNew","usageRight":{"id":"r"},"futureProp":[1,2]}`))
	if err != nil || e.Code != "SomethingNew" || !strings.Contains(string(e.Raw), "futureProp") {
		t.Errorf("unknown code/property: %+v, %v", e, err)
	}
	u, err := graph.DecodeUsageRight([]byte(`{"id":"r","services":[{"@odata.type":"#microsoft.graph.cloudLicensing.service","planId":"p","assignableTo":"user,hologram"}],"externalServiceIdentifier":"x"}`))
	if err != nil || !cmp.Equal(u.Services, []graph.Service{{PlanID: "p", AssignableTo: []string{"user", "hologram"}}}) ||
		!strings.Contains(string(u.Raw), "externalServiceIdentifier") {
		t.Errorf("usage right: %+v, %v", u, err)
	}

	// A page item must have an id; a single create answer need not.
	if _, err := graph.DecodeAssignmentPage([]byte(`{"value":[{"disabledServicePlanIds":[]}]}`)); err == nil {
		t.Error("assignment page item without id decoded")
	}
	a, err := graph.DecodeAssignment([]byte(`{"@odata.type":"#microsoft.graph.cloudLicensing.assignment","disabledServicePlanIds":[]}`))
	if err != nil || a.ID != "" {
		t.Errorf("create answer without id: %+v, %v", a, err)
	}
	for _, body := range []string{`{}`, `{"value":{}}`, `[1]`, `{"value":[{"id":1}]}`} {
		if _, err := graph.DecodeAssignmentPage([]byte(body)); err == nil {
			t.Errorf("DecodeAssignmentPage(%s) succeeded", body)
		}
	}
}

func TestDecodeUserPage(t *testing.T) {
	t.Parallel()
	body := `{"@odata.context":"https://graph.microsoft.com/beta/$metadata#users(id,department)",
	  "@odata.deltaLink":"https://graph.microsoft.com/beta/users/delta?$deltatoken=abc",
	  "value":[
	    {"id":"u1","userPrincipalName":"ada@contoso.com","displayName":"Ada","department":"R&D","companyName":"Contoso",
	     "employeeOrgData":{"costCenter":"CC-42","division":"Labs"},"accountEnabled":true,"mobilePhone":null},
	    {"id":"u2","accountEnabled":false,"department":null,"employeeOrgData":null},
	    {"id":"u3","@removed":{"reason":"deleted"}}
	  ]}`
	page, err := graph.DecodeUserPage([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	want := graph.UserPage{
		DeltaLink: "https://graph.microsoft.com/beta/users/delta?$deltatoken=abc",
		Users: []graph.User{
			{ID: "u1", UserPrincipalName: "ada@contoso.com", DisplayName: "Ada", Department: "R&D", CompanyName: "Contoso", CostCenter: "CC-42", AccountEnabled: true},
			{ID: "u2"},
			{ID: "u3", Removed: true},
		},
	}
	if diff := cmp.Diff(want, page, ignoreAllRaw); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if !strings.Contains(string(page.Users[0].Raw), `"division":"Labs"`) {
		t.Errorf("Raw lost employeeOrgData: %s", page.Users[0].Raw)
	}
	u, err := graph.DecodeUser([]byte(`{"value":{"id":"u9","accountEnabled":true}}`))
	if err != nil || u.ID != "u9" || !u.AccountEnabled {
		t.Errorf("wrapped user: %+v, %v", u, err)
	}
}

func TestQuery_Encode(t *testing.T) {
	t.Parallel()
	dept := graph.StringLiteral("R&D; O'Brien's + co #1")
	skus, err := graph.GUIDIn("skuId", []string{"639DEC6B-bb19-468b-871c-c5c441c4b0cb", "a403ebcc-fae0-4ca2-8c8c-7a907fd6c235"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		q    graph.Query
		want string
	}{
		{graph.Query{}, ""},
		{graph.Query{Top: 100}, "$top=100"},
		{
			graph.Query{Select: []string{"id", "department"}, Filter: "department eq " + dept, Top: 999},
			"$select=id,department&$filter=department%20eq%20'R%26D%3B%20O''Brien''s%20%2B%20co%20%231'&$top=999",
		},
		{
			graph.Query{Expand: []graph.Expand{
				{Property: "allotment", Select: []string{"id"}, Filter: skus},
				{Property: "assignedTo", Select: []string{"id"}},
				{Property: "waitingMembers"},
			}},
			"$expand=allotment($select=id%3B$filter=skuId%20in%20(639dec6b-bb19-468b-871c-c5c441c4b0cb,%20a403ebcc-fae0-4ca2-8c8c-7a907fd6c235)),assignedTo($select=id),waitingMembers",
		},
	}
	for _, tt := range tests {
		if got := tt.q.Encode(); got != tt.want {
			t.Errorf("Encode(%+v)\n got %s\nwant %s", tt.q, got, tt.want)
		}
	}
	if dept != `'R&D; O''Brien''s + co #1'` {
		t.Errorf("StringLiteral = %s", dept)
	}
	for _, bad := range []string{"", "639dec6b-bb19-468b-871c-c5c441c4b0c", "639dec6b bb19-468b-871c-c5c441c4b0cb", "x39dec6b-bb19-468b-871c-c5c441c4b0cb", "' or 1 eq 1 or '"} {
		if _, err := graph.GUIDLiteral(bad); err == nil {
			t.Errorf("GUIDLiteral(%q) accepted", bad)
		}
	}
	if _, err := graph.GUIDIn("skuId", nil); err == nil {
		t.Error("GUIDIn with no values accepted")
	}
	if _, err := graph.GUIDIn("skuId", []string{"a403ebcc-fae0-4ca2-8c8c-7a907fd6c235", "x) or (true"}); err == nil {
		t.Error("GUIDIn accepted a non-GUID")
	}
}

func TestCreateAssignment_Validation(t *testing.T) {
	t.Parallel()
	cred, err := graph.NewCredential(graph.CredentialConfig{TenantID: "t", ClientID: "c", ClientSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := graph.New(cred, graph.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ok := graph.CreateAssignment{AllotmentID: "a", AssigneeID: "6d645c5f-089f-40d8-b0e7-136fb5c56d5b", AssigneeType: "group"}
	for name, mut := range map[string]func(*graph.CreateAssignment){
		"no allotment":  func(r *graph.CreateAssignment) { r.AllotmentID = "" },
		"bad type":      func(r *graph.CreateAssignment) { r.AssigneeType = "servicePrincipal" },
		"bad assignee":  func(r *graph.CreateAssignment) { r.AssigneeID = "../admin" },
		"bad plan":      func(r *graph.CreateAssignment) { r.DisabledServicePlanIDs = []string{"EXCHANGE"} },
		"empty type":    func(r *graph.CreateAssignment) { r.AssigneeType = "" },
		"uppercase typ": func(r *graph.CreateAssignment) { r.AssigneeType = "User" },
	} {
		r := ok
		mut(&r)
		if _, err := graph.CreateBody(c, r); err == nil {
			t.Errorf("%s: accepted %+v", name, r)
		}
	}
	body, err := graph.CreateBody(c, ok)
	if err != nil || !strings.Contains(string(body), `"assignedTo@odata.bind":"https://graph.microsoft.com/beta/groups/6d645c5f-089f-40d8-b0e7-136fb5c56d5b"`) ||
		!strings.Contains(string(body), `"disabledServicePlanIds":[]`) {
		t.Errorf("body = %s, %v", body, err)
	}
}

func TestKeyURL(t *testing.T) {
	t.Parallel()
	cred, err := graph.NewCredential(graph.CredentialConfig{TenantID: "t", ClientID: "c", ClientSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := graph.New(cred, graph.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Graph reads a segment starting with $ as a system segment, so such a
	// UPN is addressed as users('…'), its quotes doubled, / and # escaped.
	got := graph.KeyURL(c, "users", "$o'neil/x#1@contoso.com")
	want := "https://graph.microsoft.com/beta/users('$o''neil%2Fx%231@contoso.com')"
	if got != want {
		t.Errorf("KeyURL =\n %s\nwant\n %s", got, want)
	}
}
