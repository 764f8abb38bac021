package graph_test

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/seatledger/seatledger/internal/graph"
)

// ignoreAllRaw leaves the Raw fields out of comparisons; the fixture test
// checks them separately against the entities of each file.
var ignoreAllRaw = cmp.Options{
	cmpopts.IgnoreFields(graph.Allotment{}, "Raw"), cmpopts.IgnoreFields(graph.Assignment{}, "Raw"),
	cmpopts.IgnoreFields(graph.WaitingMember{}, "Raw"), cmpopts.IgnoreFields(graph.AssignmentError{}, "Raw"),
	cmpopts.IgnoreFields(graph.UsageRight{}, "Raw"), cmpopts.IgnoreFields(graph.SKUTotal{}, "Raw"),
	cmpopts.IgnoreFields(graph.User{}, "Raw"),
}

// Values the documentation's examples share.
var (
	steveFred = graph.DirectoryObject{
		ID: "a6c034b8-621b-dee3-6abb-52cbce801fe9", Type: "user", DisplayName: "Steve Fred", UserPrincipalName: "stevefred@contoso.com",
	}
	copilotStudio = []graph.Service{{
		PlanID: "fe6c28b3-d468-44ea-bbd0-a10a5167435c", PlanName: "COPILOT_STUDIO_IN_COPILOT_FOR_M365", AssignableTo: []string{"user", "group"},
	}}
	missingDependency = graph.AssignmentError{
		ID:   "33ca790e-ed9f-b975-9ada-503e02e2b933",
		Code: "MissingDependency",
		Message: "Service plan 0337d124-4da1-45e4-9b28-936079cc72bb cannot be assigned without service plan " +
			"f1df97e2-b3d9-4c17-b931-30fdbfeb5c18, which this user does not currently have.",
		SKUID:      "f48db87f-583c-486e-a6de-096155d8fb8f",
		OccurredAt: time.Date(2024, 9, 22, 17, 11, 10, 663593900, time.UTC),
	}
	fabrikamDevice = graph.UsageRight{
		ID: "a8d33537-2833-4f1c-8797-7aa891e15723", SKUID: "a0cfb9b5-427c-4d42-9e6d-6727c6bbd8b5", SKUPartNumber: "FABRIKAM_DEVICE",
		Services: []graph.Service{
			{PlanID: "b7786c33-f595-4df5-bed7-9a2c8622df78", PlanName: "FABRIKAM_DESKTOP", AssignableTo: []string{"user", "device", "group"}},
			{PlanID: "f446866a-4b4c-492e-907a-998b3fde5a81", PlanName: "FABRIKAM_REMOTE", AssignableTo: []string{"user", "device", "group"}},
			{PlanID: "f08373fb-2530-4f97-8aa4-f424f071780d", PlanName: "FABRIKAM_TASKS", AssignableTo: []string{"user", "device", "group"}},
		},
	}
	copilotPro = func(assignableTo string) graph.UsageRight {
		return graph.UsageRight{
			ID: "5bbc716a-f73f-4cc1-bf16-53d38b407b8f", SKUID: "75398b2a-b060-4057-9ae2-9eb00ef68579", SKUPartNumber: "Copilot_Pro",
			Services: []graph.Service{{PlanID: "113feb6c-3fe4-4440-bddc-54d774bf0318", PlanName: "EXCHANGE_S_FOUNDATION", AssignableTo: []string{assignableTo}}},
		}
	}
	copilot = func(id string) graph.UsageRight {
		return graph.UsageRight{ID: id, SKUID: "639dec6b-bb19-468b-871c-c5c441c4b0cb", SKUPartNumber: "Microsoft_365_Copilot", Services: copilotStudio}
	}
	listedAssignment  = graph.Assignment{ID: "405ee855-dd74-f695-8d7e-be35a6788fe8", DisabledServicePlanIDs: []string{"5e62787c-c316-451f-b873-1d05acd4d12c"}}
	createdAssignment = func(id string) graph.Assignment {
		return graph.Assignment{ID: id, DisabledServicePlanIDs: []string{"bed136c6-b799-4462-824d-fc045d3a9d25"}}
	}
	waiting = func(allotmentID string, since time.Time, member graph.DirectoryObject) graph.WaitingMember {
		return graph.WaitingMember{ID: "49caea1b-ad15-64f1-70c5-5c5e3563d19c", AllotmentID: allotmentID, WaitingSince: since, Member: member}
	}
	nov22 = time.Date(2024, 11, 22, 17, 11, 10, 663593900, time.UTC)
	sep22 = time.Date(2024, 9, 22, 17, 11, 10, 663593900, time.UTC)
)

// decoded is what a fixture case produces: the typed value and the Raw of
// each entity, in document order.
type decoded struct {
	value any
	raws  []json.RawMessage
}

func one[T any](decode func([]byte) (T, error), raw func(T) json.RawMessage) func([]byte) (decoded, error) {
	return func(b []byte) (decoded, error) {
		v, err := decode(b)
		return decoded{v, []json.RawMessage{raw(v)}}, err
	}
}

func many[P, T any](decode func([]byte) (P, error), items func(P) []T, raw func(T) json.RawMessage) func([]byte) (decoded, error) {
	return func(b []byte) (decoded, error) {
		p, err := decode(b)
		var raws []json.RawMessage
		for _, it := range items(p) {
			raws = append(raws, raw(it))
		}
		return decoded{p, raws}, err
	}
}

var (
	allotmentRaw  = func(a graph.Allotment) json.RawMessage { return a.Raw }
	assignmentRaw = func(a graph.Assignment) json.RawMessage { return a.Raw }
	waitingRaw    = func(w graph.WaitingMember) json.RawMessage { return w.Raw }
	errorRaw      = func(e graph.AssignmentError) json.RawMessage { return e.Raw }
	rightRaw      = func(u graph.UsageRight) json.RawMessage { return u.Raw }
	noRaw         = func(graph.DirectoryObject) json.RawMessage { return nil }

	decAllotment       = one(graph.DecodeAllotment, allotmentRaw)
	decAllotmentPage   = many(graph.DecodeAllotmentPage, func(p graph.AllotmentPage) []graph.Allotment { return p.Allotments }, allotmentRaw)
	decAssignment      = one(graph.DecodeAssignment, assignmentRaw)
	decAssignmentPage  = many(graph.DecodeAssignmentPage, func(p graph.AssignmentPage) []graph.Assignment { return p.Assignments }, assignmentRaw)
	decWaiting         = one(graph.DecodeWaitingMember, waitingRaw)
	decWaitingPage     = many(graph.DecodeWaitingMemberPage, func(p graph.WaitingMemberPage) []graph.WaitingMember { return p.WaitingMembers }, waitingRaw)
	decError           = one(graph.DecodeAssignmentError, errorRaw)
	decErrorPage       = many(graph.DecodeAssignmentErrorPage, func(p graph.AssignmentErrorPage) []graph.AssignmentError { return p.AssignmentErrors }, errorRaw)
	decRight           = one(graph.DecodeUsageRight, rightRaw)
	decRightPage       = many(graph.DecodeUsageRightPage, func(p graph.UsageRightPage) []graph.UsageRight { return p.UsageRights }, rightRaw)
	decDirectoryObject = one(graph.DecodeDirectoryObject, noRaw)
	decSKUTotals       = many(graph.DecodeSKUTotalPage, func(p graph.SKUTotalPage) []graph.SKUTotal { return p.Totals },
		func(s graph.SKUTotal) json.RawMessage { return s.Raw })
)

// responseFixtures says, for every response example in testdata, how it
// decodes and to what.
var responseFixtures = map[string]struct {
	decode func([]byte) (decoded, error)
	want   any
}{
	"create-assignment-allotment.response.json": {decAssignment, createdAssignment("405ee855-dd74-f695-8d7e-be35a6788fe8")},
	"create-assignment-central.response.json":   {decAssignment, createdAssignment("405ee855-dd74-f695-8d7e-be35a6788fe8")},
	// The user, group and device examples omit the id (REFERENCE.md §6.8).
	"create-assignment-device.response.json":       {decAssignment, createdAssignment("")},
	"create-assignment-group.response.json":        {decAssignment, createdAssignment("")},
	"create-assignment-user.response.json":         {decAssignment, createdAssignment("")},
	"update-assignment.response.json":              {decAssignment, createdAssignment("405ee855-dd74-f695-8d7e-be35a6788fe8")},
	"get-allotment-for-assignment.response.json":   {decAllotment, exchangeStandard},
	"get-allotment.response.json":                  {decAllotment, teamsEssentials},
	"get-assignment-assignedto.response.json":      {decDirectoryObject, steveFred},
	"get-assignmenterror-assignedto.response.json": {decDirectoryObject, steveFred},
	"get-assignment-expand-assignedto.response.json": {decAssignment, graph.Assignment{
		ID: "405ee855-dd74-f695-8d7e-be35a6788fe8", AssignedTo: steveFred, DisabledServicePlanIDs: []string{"5e62787c-c316-451f-b873-1d05acd4d12c"},
	}},
	"get-assignment.response.json": {decAssignment, graph.Assignment{
		ID: "405ee855-dd74-f695-8d7e-be35a6788fe8", DisabledServicePlanIDs: []string{"9aaf7827-d63c-4b61-89c3-182f06f82e5c"},
	}},
	// Not wrapped in "value", unlike the other single GETs.
	"get-assignmenterror-usageright.response.json": {decRight, graph.UsageRight{
		ID: "j6sq63x2vd3esbkifv7m42xdaugc6lfpqf3ozgvdlvk3ttnamby4", SKUID: "f48db87f-583c-486e-a6de-096155d8fb8f", SKUPartNumber: "TIME_TRAVEL_BACKUP_RESTORE",
		Services: []graph.Service{{PlanID: "fe6c28b3-d468-44ea-bbd0-a10a5167435c", PlanName: "TIME_TRAVEL_BACKUP_RESTORE_PREMIUM", AssignableTo: []string{"user", "group"}}},
	}},
	"get-assignmenterror.response.json":               {decError, missingDependency},
	"get-usageright-expand-allotments.response.json":  {decRight, copilot("i6sq63x2vd3esbkifv7m42xdaugc6lfpqf3ozgvdlvk3ttnamby3")},
	"get-usageright-expand-assignments.response.json": {decRight, copilot("i6sq63x2vd3esbkifv7m42xdaugc6lfpqf3ozgvdlvk3ttnamby3")},
	"get-usageright-group.response.json":              {decRight, copilot("j6sq63x2vd3esbkifv7m42xdaugc6lfpqf3ozgvdlvk3ttnamby4")},
	"get-usageright-user.response.json":               {decRight, copilot("i6sq63x2vd3esbkifv7m42xdaugc6lfpqf3ozgvdlvk3ttnamby3")},
	"get-waitingmember.response.json":                 {decWaiting, waiting("", nov22, steveFred)},
	"list-allotment-assignments.response.json":        {decAssignmentPage, graph.AssignmentPage{Assignments: []graph.Assignment{listedAssignment}}},
	"list-allotment-waitingmembers.response.json": {decWaitingPage, graph.WaitingMemberPage{
		WaitingMembers: []graph.WaitingMember{waiting("", sep22, graph.DirectoryObject{})},
	}},
	"list-allotments-apply-aggregate.response.json": {decSKUTotals, graph.SKUTotalPage{Totals: []graph.SKUTotal{
		{SKUID: "6fd2c87f-b296-42f0-b197-1e91e994b900", SKUPartNumber: "ENTERPRISEPACK", TotalAllottedUnits: 500, TotalConsumedUnits: 425},
		{SKUID: "c7df2760-2c81-4ef7-b578-5b5392b571df", SKUPartNumber: "ENTERPRISEPREMIUM", TotalAllottedUnits: 200, TotalConsumedUnits: 150},
		{SKUID: "a4585165-0533-458a-97e3-c400570268c4", SKUPartNumber: "SHAREPOINTSTANDARD", TotalAllottedUnits: 300, TotalConsumedUnits: 275},
	}}},
	"list-allotments-expand-waitingmembers.response.json": {decAllotmentPage, graph.AllotmentPage{Allotments: []graph.Allotment{{
		ID: exchangeStandard.ID, AllottedUnits: 250, ConsumedUnits: 224, AssignableTo: []string{"user", "group"},
	}}}},
	"list-allotments.response.json":       {decAllotmentPage, graph.AllotmentPage{Allotments: []graph.Allotment{exchangeStandard}}},
	"list-assignmenterrors.response.json": {decErrorPage, graph.AssignmentErrorPage{AssignmentErrors: []graph.AssignmentError{missingDependency}}},
	"list-assignments-expand-allotment-filter-skuid.response.json": {decAssignmentPage, graph.AssignmentPage{Assignments: []graph.Assignment{{
		ID: listedAssignment.ID, AllotmentID: "551f1755-0184-9e51-0bc7-f32bae5a1afb", DisabledServicePlanIDs: listedAssignment.DisabledServicePlanIDs,
	}}}},
	"list-assignments-expand-assignedto-allotment.response.json": {decAssignmentPage, graph.AssignmentPage{Assignments: []graph.Assignment{{
		ID: listedAssignment.ID, AllotmentID: "fde42873-30b6-436b-b361-21af5a6b84ae", AssignedTo: steveFred,
		DisabledServicePlanIDs: listedAssignment.DisabledServicePlanIDs,
	}}}},
	"list-assignments.response.json":                     {decAssignmentPage, graph.AssignmentPage{Assignments: []graph.Assignment{listedAssignment}}},
	"list-usageright-assignments.response.json":          {decAssignmentPage, graph.AssignmentPage{Assignments: []graph.Assignment{listedAssignment}}},
	"list-usagerights-device-filter-skuid.response.json": {decRightPage, graph.UsageRightPage{UsageRights: []graph.UsageRight{fabrikamDevice}}},
	"list-usagerights-device.response.json":              {decRightPage, graph.UsageRightPage{UsageRights: []graph.UsageRight{fabrikamDevice}}},
	"list-usagerights-group-filter-planid.response.json": {decRightPage, graph.UsageRightPage{UsageRights: []graph.UsageRight{copilotPro("group")}}},
	"list-usagerights-me-filter-planid.response.json":    {decRightPage, graph.UsageRightPage{UsageRights: []graph.UsageRight{copilotPro("group")}}},
	"list-usagerights-user-filter-planid.response.json":  {decRightPage, graph.UsageRightPage{UsageRights: []graph.UsageRight{copilotPro("user")}}},
	"list-usagerights-group.response.json": {decRightPage, graph.UsageRightPage{
		UsageRights: []graph.UsageRight{copilot("1e373a1d-1f05-28cf-bfc0-ee0ecfd3db15")},
	}},
	"list-usagerights-user.response.json": {decRightPage, graph.UsageRightPage{
		UsageRights: []graph.UsageRight{copilot("1e373a1d-1f05-28cf-bfc0-ee0ecfd3db15")},
	}},
	"list-waitingmembers-device.response.json": {decWaitingPage, graph.WaitingMemberPage{
		WaitingMembers: []graph.WaitingMember{waiting("551f1755-0184-9e51-0bc7-f32bae5a1afb", nov22, graph.DirectoryObject{})},
	}},
	"list-waitingmembers-user.response.json": {decWaitingPage, graph.WaitingMemberPage{
		WaitingMembers: []graph.WaitingMember{waiting("551f1755-0184-9e51-0bc7-f32bae5a1afb", nov22, graph.DirectoryObject{})},
	}},
}

// requestFixtures are the documented request bodies and the create
// request the client sends for the same assignment. The client always
// uses the central collection, so it binds both the allotment and the
// assignee; each documented form must be contained in that body.
var requestFixtures = map[string]graph.CreateAssignment{
	"create-assignment-allotment.request.json": {AssigneeType: "user"},
	"create-assignment-central.request.json":   {AssigneeType: "user"},
	"create-assignment-user.request.json":      {AssigneeType: "user"},
	"create-assignment-group.request.json":     {AssigneeType: "group"},
	"create-assignment-device.request.json":    {AssigneeType: "device"},
}

func TestFixtures_EveryFileDecodes(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	var covered []string
	for _, f := range files {
		name := filepath.Base(f)
		covered = append(covered, name)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			data := fixture(t, name)
			if req, ok := requestFixtures[name]; ok {
				checkRequestFixture(t, name, data, req)
				return
			}
			if name == "update-assignment.request.json" {
				checkUpdateFixture(t, data)
				return
			}
			tt, ok := responseFixtures[name]
			if !ok {
				t.Fatalf("no decoding case for %s: add one", name)
			}
			got, err := tt.decode(data)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if diff := cmp.Diff(tt.want, got.value, ignoreAllRaw); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			entities := fixtureEntities(t, data)
			if len(entities) != len(got.raws) {
				t.Fatalf("%d entities in the file, %d Raw values", len(entities), len(got.raws))
			}
			for i, raw := range got.raws {
				if raw != nil && !sameJSON(t, entities[i], raw) {
					t.Errorf("entity %d: Raw is not the entity as received:\n%s", i, raw)
				}
			}
		})
	}
	for name := range responseFixtures {
		if !slices.Contains(covered, name) {
			t.Errorf("case %s has no file in testdata", name)
		}
	}
}

// fixtureEntities returns the entities of a response body: the items of
// "value" for a page, else the (unwrapped) entity.
func fixtureEntities(t *testing.T, data []byte) []json.RawMessage {
	t.Helper()
	var page struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(data, &page); err != nil {
		t.Fatal(err)
	}
	var items []json.RawMessage
	if len(page.Value) > 0 && page.Value[0] == '[' {
		if err := json.Unmarshal(page.Value, &items); err != nil {
			t.Fatal(err)
		}
		return items
	}
	e, err := graph.UnwrapEntity(data)
	if err != nil {
		t.Fatal(err)
	}
	return []json.RawMessage{e}
}

func checkRequestFixture(t *testing.T, name string, data []byte, req graph.CreateAssignment) {
	t.Helper()
	// A client on the documentation's base URL; building a body makes no
	// request, so the credential is never asked for a token.
	cred, err := graph.NewCredential(graph.CredentialConfig{TenantID: "t", ClientID: "c", ClientSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := graph.New(cred, graph.Options{})
	if err != nil {
		t.Fatal(err)
	}
	req.AllotmentID = "rkocgef3dgjhnu3gmu2mqhbdbmwcymnf6fk3k6a7zbui5e7gfpmi"
	req.AssigneeID = "6d645c5f-089f-40d8-b0e7-136fb5c56d5b"
	req.DisabledServicePlanIDs = []string{"bed136c6-b799-4462-824d-fc045d3a9d25"}
	body, err := graph.CreateBody(c, req)
	if err != nil {
		t.Fatal(err)
	}
	var doc, ours map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(body, &ours); err != nil {
		t.Fatal(err)
	}
	if name == "create-assignment-central.request.json" {
		if diff := cmp.Diff(doc, ours); diff != "" {
			t.Errorf("central create body (-documented +ours):\n%s", diff)
		}
		return
	}
	for k, v := range doc {
		if !cmp.Equal(v, ours[k]) {
			t.Errorf("property %s: documented %v, ours %v", k, v, ours[k])
		}
	}
	if n := len(ours) - len(doc); n != 1 {
		t.Errorf("our body has %d properties beyond the documented form, want 1 (the implied bind): %s", n, body)
	}
}

// checkUpdateFixture: the documented PATCH also sends the two binds, which
// are immutable (ERRORS.md B9); ours is the same body without them.
func checkUpdateFixture(t *testing.T, data []byte) {
	t.Helper()
	var doc, ours map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	body, err := graph.UpdateBody([]string{"bed136c6-b799-4462-824d-fc045d3a9d25"})
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(body, &ours); err != nil {
		t.Fatal(err)
	}
	for k := range doc {
		if strings.HasSuffix(k, "@odata.bind") {
			delete(doc, k)
		}
	}
	if diff := cmp.Diff(doc, ours); diff != "" {
		t.Errorf("PATCH body (-documented without binds +ours):\n%s", diff)
	}
}
