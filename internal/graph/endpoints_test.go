package graph_test

import (
	"context"
	"errors"
	"iter"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/seatledger/seatledger/internal/graph"
	"github.com/seatledger/seatledger/internal/graphsim"
)

// all drains a sequence, failing the test on an error.
func all[T any](t *testing.T, seq iter.Seq2[T, error]) []T {
	t.Helper()
	var out []T
	for v, err := range seq {
		if err != nil {
			t.Fatalf("after %d items: %v", len(out), err)
		}
		out = append(out, v)
	}
	return out
}

var sortAssignments = cmpopts.SortSlices(func(a, b graph.Assignment) bool { return a.ID < b.ID })

// assignmentFromSim is what the client should decode for an assignment
// the simulator holds.
func assignmentFromSim(a graphsim.AssignmentState) graph.Assignment {
	return graph.Assignment{
		ID: a.ID, AllotmentID: a.AllotmentID, DisabledServicePlanIDs: a.DisabledServicePlanIDs,
		AssignedTo: graph.DirectoryObject{ID: a.AssignedToID, Type: a.AssignedToType},
	}
}

// assignedToIDs keeps only the id and type of assignees: the listing asks
// for assignedTo($select=id).
var assignedToIDs = cmp.Transformer("ids", func(d graph.DirectoryObject) graph.DirectoryObject {
	return graph.DirectoryObject{ID: d.ID, Type: d.Type}
})

// assignedToNames keeps the id, type and display name of assignees: the
// assignments' listings ask for assignedTo($select=id,displayName).
var assignedToNames = cmp.Transformer("names", func(d graph.DirectoryObject) graph.DirectoryObject {
	return graph.DirectoryObject{ID: d.ID, Type: d.Type, DisplayName: d.DisplayName}
})

// directoryNames maps the simulator's users, groups and devices to their
// display names.
func directoryNames(s *graphsim.Server) map[string]string {
	names := map[string]string{}
	for _, u := range s.Users() {
		names[u.ID] = u.DisplayName
	}
	for _, g := range s.Groups() {
		names[g.ID] = g.DisplayName
	}
	for _, d := range s.Devices() {
		names[d.ID] = d.DisplayName
	}
	return names
}

func TestClient_Assignments(t *testing.T) {
	t.Parallel()
	s := startSim(t, graphsim.Options{PageSize: 4})
	c := s.client(t, s.info.ClientSecret, graph.Options{})
	got := all(t, c.Assignments(context.Background()))
	names := directoryNames(s.Server)
	var want []graph.Assignment
	groups := 0
	for _, a := range s.Assignments() {
		w := assignmentFromSim(a)
		w.AssignedTo.DisplayName = names[a.AssignedToID]
		want = append(want, w)
		if a.AssignedToType == "group" && w.AssignedTo.DisplayName != "" {
			groups++
		}
	}
	if len(want) < 5 || groups == 0 {
		t.Fatalf("the demo tenant has %d assignments, %d to named groups; the test needs several pages and a group", len(want), groups)
	}
	// Each assignee comes with its display name: a group's is known
	// nowhere else without a request per group.
	if diff := cmp.Diff(want, got, ignoreAllRaw, sortAssignments, cmpopts.EquateEmpty(), assignedToNames); diff != "" {
		t.Errorf("Assignments (-sim +client):\n%s", diff)
	}
	if n := c.Stats().Requests; n != int64((len(want)+3)/4) {
		t.Errorf("%d requests for %d assignments in pages of 4", n, len(want))
	}
}

func TestClient_UserAssignmentsAndUsageRights(t *testing.T) {
	t.Parallel()
	s := startSim(t, graphsim.Options{})
	c := s.client(t, s.info.ClientSecret, graph.Options{})
	ctx := context.Background()
	checked := 0
	for _, u := range s.Users() {
		var want []graph.Assignment
		for _, a := range s.Assignments() {
			if a.AssignedToID == u.ID {
				want = append(want, assignmentFromSim(a))
			}
		}
		got := all(t, c.UserAssignments(ctx, u.ID))
		if diff := cmp.Diff(want, got, ignoreAllRaw, sortAssignments, cmpopts.EquateEmpty(), assignedToIDs); diff != "" {
			t.Errorf("UserAssignments(%s) (-sim +client):\n%s", u.ID, diff)
		}
		rights := all(t, c.UserUsageRights(ctx, u.ID))
		for _, r := range rights {
			if r.ID == "" || !graph.IsGUID(r.SKUID) || r.SKUPartNumber == "" || len(r.Services) == 0 {
				t.Errorf("UserUsageRights(%s): incomplete right %+v", u.ID, r)
			}
		}
		if len(want) > 0 && len(rights) == 0 {
			t.Errorf("user %s has %d direct assignments and no usage right", u.ID, len(want))
		}
		checked += len(want)
	}
	if checked == 0 {
		t.Fatal("no user of the demo tenant has a direct assignment")
	}
	_, err := collectAny(c.UserAssignments(ctx, "00000000-0000-4000-8000-000000000000"))
	var gerr *graph.Error
	if !errors.As(err, &gerr) || gerr.Status != http.StatusNotFound {
		t.Errorf("UserAssignments(unknown user): err = %v, want 404", err)
	}
}

func collectAny[T any](seq iter.Seq2[T, error]) ([]T, error) {
	var out []T
	for v, err := range seq {
		if err != nil {
			return out, err
		}
		out = append(out, v)
	}
	return out, nil
}

func TestClient_AllotmentWaitingMembers(t *testing.T) {
	t.Parallel()
	s := startSim(t, graphsim.Options{PageSize: 1})
	c := s.client(t, s.info.ClientSecret, graph.Options{})
	total := 0
	for _, a := range s.Allotments() {
		var want []graph.WaitingMember
		for _, w := range s.WaitingMembers() {
			if w.AllotmentID == a.ID {
				typ := w.MemberType
				if typ == "" {
					typ = "user"
				}
				want = append(want, graph.WaitingMember{
					ID: w.ID, AllotmentID: a.ID, WaitingSince: w.Since.UTC(),
					Member: graph.DirectoryObject{ID: w.MemberID, Type: typ},
				})
			}
		}
		total += len(want)
		got := all(t, c.AllotmentWaitingMembers(context.Background(), a.ID))
		if diff := cmp.Diff(want, got, ignoreAllRaw, cmpopts.EquateEmpty(), assignedToIDs,
			cmpopts.SortSlices(func(a, b graph.WaitingMember) bool { return a.ID < b.ID })); diff != "" {
			t.Errorf("AllotmentWaitingMembers(%s) (-sim +client):\n%s", a.ID, diff)
		}
		if !slices.IsSortedFunc(got, func(a, b graph.WaitingMember) int { return a.WaitingSince.Compare(b.WaitingSince) }) {
			t.Errorf("waiting members of %s are not first in first out: %+v", a.ID, got)
		}
	}
	if total == 0 {
		t.Fatal("nobody waits in the demo tenant")
	}
}

func TestClient_AssignmentErrors(t *testing.T) {
	t.Parallel()
	s := startSim(t, graphsim.Options{})
	c := s.client(t, s.info.ClientSecret, graph.Options{})
	var want []graph.AssignmentError
	for _, e := range s.AssignmentErrors() {
		want = append(want, graph.AssignmentError{
			ID: e.ID, Code: e.Code, Message: e.Message, SKUID: e.SKUID, OccurredAt: e.OccurredAt.UTC().Truncate(100 * time.Nanosecond), // Graph writes 7 digits
			User: graph.DirectoryObject{ID: e.UserID, Type: "user"},
		})
	}
	if len(want) == 0 {
		t.Fatal("the demo tenant has no assignment error")
	}
	got := all(t, c.AssignmentErrors(context.Background()))
	if diff := cmp.Diff(want, got, ignoreAllRaw, assignedToIDs,
		cmpopts.SortSlices(func(a, b graph.AssignmentError) bool { return a.ID < b.ID })); diff != "" {
		t.Errorf("AssignmentErrors (-sim +client):\n%s", diff)
	}
}

func TestClient_GroupMembers(t *testing.T) {
	t.Parallel()
	s := startSim(t, graphsim.Options{PageSize: 3})
	c := s.client(t, s.info.ClientSecret, graph.Options{})
	devices := map[string]bool{}
	for _, d := range s.Devices() {
		devices[d.ID] = true
	}
	for _, g := range s.Groups() {
		var want []graph.DirectoryObject
		for _, m := range g.Members {
			typ := "user"
			if devices[m] {
				typ = "device"
			}
			want = append(want, graph.DirectoryObject{ID: m, Type: typ})
		}
		got := all(t, c.GroupMembers(context.Background(), g.ID))
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty(), assignedToIDs,
			cmpopts.SortSlices(func(a, b graph.DirectoryObject) bool { return a.ID < b.ID })); diff != "" {
			t.Errorf("GroupMembers(%s) (-sim +client):\n%s", g.DisplayName, diff)
		}
	}
}

// userFromSim is what the client should decode for a user.
func userFromSim(u graphsim.UserState) graph.User {
	return graph.User{
		ID: u.ID, UserPrincipalName: u.UserPrincipalName, DisplayName: u.DisplayName, Department: u.Department,
		CompanyName: u.CompanyName, CostCenter: u.CostCenter, AccountEnabled: u.AccountEnabled,
	}
}

func TestClient_GetUser(t *testing.T) {
	t.Parallel()
	s := startSim(t, graphsim.Options{})
	c := s.client(t, s.info.ClientSecret, graph.Options{})
	ctx := context.Background()
	for _, u := range s.Users()[:3] {
		for _, key := range []string{u.ID, u.UserPrincipalName} {
			got, err := c.GetUser(ctx, key)
			if err != nil {
				t.Fatalf("GetUser(%s): %v", key, err)
			}
			if diff := cmp.Diff(userFromSim(u), got, ignoreAllRaw); diff != "" {
				t.Errorf("GetUser(%s) (-sim +client):\n%s", key, diff)
			}
		}
	}
	_, err := c.GetUser(ctx, "nobody@contoso.example")
	var gerr *graph.Error
	if !errors.As(err, &gerr) || gerr.Status != http.StatusNotFound || !strings.Contains(err.Error(), "nobody@contoso.example") {
		t.Errorf("GetUser(unknown): err = %v, want a 404 naming the user", err)
	}
}

func TestClient_AssignmentLifecycle(t *testing.T) {
	t.Parallel()
	s := startSim(t, graphsim.Options{})
	c := s.client(t, s.info.ClientSecret, graph.Options{})
	ctx := context.Background()
	const teams1 = "57ff2da0-773e-42df-b2af-ffb7a2317929" // a plan of ENTERPRISEPACK
	allot := s.Allotments()[1]                            // ENTERPRISEPACK, batch 2: has free seats
	if allot.ConsumedUnits >= allot.AllottedUnits {
		t.Fatalf("allotment %s is full", allot.ID)
	}
	// A newcomer holds no licence that could conflict with this one.
	const user = "6d645c5f-089f-40d8-b0e7-136fb5c56d5b"
	if err := s.AddUser(graphsim.UserState{ID: user, UserPrincipalName: "new.hire@contoso.example", DisplayName: "New Hire", AccountEnabled: true}); err != nil {
		t.Fatal(err)
	}
	simAssignment := func(id string) (graphsim.AssignmentState, bool) {
		for _, a := range s.Assignments() {
			if a.ID == id {
				return a, true
			}
		}
		return graphsim.AssignmentState{}, false
	}

	created, err := c.CreateAssignment(ctx, graph.CreateAssignment{AllotmentID: allot.ID, AssigneeID: user, AssigneeType: "user"})
	if err != nil {
		t.Fatalf("CreateAssignment: %v", err)
	}
	want := graph.Assignment{ID: created.ID, AllotmentID: allot.ID, AssignedTo: graph.DirectoryObject{ID: user, Type: "user"}, DisabledServicePlanIDs: []string{}}
	if diff := cmp.Diff(want, created, ignoreAllRaw, cmpopts.EquateEmpty()); diff != "" || created.ID == "" {
		t.Errorf("created (-want +got):\n%s", diff)
	}
	if got, ok := simAssignment(created.ID); !ok || got.AllotmentID != allot.ID || got.AssignedToID != user {
		t.Errorf("simulator holds %+v, %v", got, ok)
	}

	updated, err := c.UpdateAssignment(ctx, created.ID, []string{teams1})
	if err != nil {
		t.Fatalf("UpdateAssignment: %v", err)
	}
	if updated.ID != created.ID || !cmp.Equal(updated.DisabledServicePlanIDs, []string{teams1}) {
		t.Errorf("updated = %+v", updated)
	}
	if got, _ := simAssignment(created.ID); !cmp.Equal(got.DisabledServicePlanIDs, []string{teams1}) {
		t.Errorf("simulator has disabled plans %v", got.DisabledServicePlanIDs)
	}
	_, err = c.UpdateAssignment(ctx, created.ID, []string{"00000000-0000-4000-8000-00000000beef"})
	var gerr *graph.Error
	if !errors.As(err, &gerr) || gerr.Status != http.StatusBadRequest {
		t.Errorf("UpdateAssignment(unknown plan): err = %v, want 400", err)
	}

	if err := c.DeleteAssignment(ctx, created.ID); err != nil {
		t.Fatalf("DeleteAssignment: %v", err)
	}
	if _, ok := simAssignment(created.ID); ok {
		t.Error("the assignment survived its deletion")
	}
	err = c.DeleteAssignment(ctx, created.ID)
	if !errors.As(err, &gerr) || gerr.Status != http.StatusNotFound || graph.OutcomeUnknown(err) {
		t.Errorf("second DeleteAssignment: err = %v, want 404", err)
	}
	if st := c.Stats(); st.Retries != 0 || st.BytesSent == 0 {
		t.Errorf("Stats = %+v, want no retries and some bytes sent", st)
	}
}

func TestClient_CreateRefusals(t *testing.T) {
	t.Parallel()
	s := startSim(t, graphsim.Options{})
	c := s.client(t, s.info.ClientSecret, graph.Options{})
	ctx := context.Background()
	full := s.Allotments()[2]
	if err := s.SetAllottedUnits(full.ID, full.ConsumedUnits); err != nil {
		t.Fatal(err)
	}
	var holders = map[string]bool{}
	for _, a := range s.Assignments() {
		if a.AllotmentID == full.ID {
			holders[a.AssignedToID] = true
		}
	}
	var outsider string
	for _, u := range s.Users() {
		if !holders[u.ID] {
			outsider = u.ID
		}
	}
	tests := []struct {
		name      string
		req       graph.CreateAssignment
		status    int
		innerCode string
	}{
		{"full allotment", graph.CreateAssignment{AllotmentID: full.ID, AssigneeID: outsider, AssigneeType: "user"}, 400, "noAvailableLicenses"},
		{"unknown allotment", graph.CreateAssignment{AllotmentID: "no-such-allotment", AssigneeID: outsider, AssigneeType: "user"}, 0, ""},
		{"unknown user", graph.CreateAssignment{AllotmentID: s.Allotments()[1].ID, AssigneeID: "00000000-0000-4000-8000-000000000000", AssigneeType: "user"}, 0, ""},
		{"unknown plan", graph.CreateAssignment{AllotmentID: s.Allotments()[1].ID, AssigneeID: outsider, AssigneeType: "user",
			DisabledServicePlanIDs: []string{"00000000-0000-4000-8000-00000000beef"}}, 400, ""},
	}
	for _, tt := range tests {
		_, err := c.CreateAssignment(ctx, tt.req)
		var gerr *graph.Error
		if !errors.As(err, &gerr) || gerr.Status < 400 || gerr.Status >= 500 || graph.OutcomeUnknown(err) {
			t.Errorf("%s: err = %v, want a 4xx *graph.Error with a known outcome", tt.name, err)
			continue
		}
		if tt.status != 0 && gerr.Status != tt.status || tt.innerCode != "" && gerr.InnerCode != tt.innerCode {
			t.Errorf("%s: error %+v, want status %d inner code %q", tt.name, gerr, tt.status, tt.innerCode)
		}
		if !graph.IsGUID(gerr.RequestID) {
			t.Errorf("%s: RequestID = %q", tt.name, gerr.RequestID)
		}
	}
	if st := c.Stats(); st.Requests != int64(len(tests)) {
		t.Errorf("%d requests for %d refused creates: none may be repeated", st.Requests, len(tests))
	}
}

func TestClient_ReprocessAssignments(t *testing.T) {
	t.Parallel()
	s := startSim(t, graphsim.Options{})
	c := s.client(t, s.info.ClientSecret, graph.Options{})
	errs := s.AssignmentErrors()
	if len(errs) == 0 {
		t.Fatal("the demo tenant has no assignment error")
	}
	if err := c.ReprocessAssignments(context.Background(), errs[0].UserID); err != nil {
		t.Errorf("ReprocessAssignments: %v", err)
	}
	err := c.ReprocessAssignments(context.Background(), "00000000-0000-4000-8000-000000000000")
	var gerr *graph.Error
	if !errors.As(err, &gerr) || gerr.Status != http.StatusNotFound {
		t.Errorf("ReprocessAssignments(unknown user): err = %v, want 404", err)
	}
}

func TestClient_CreateForGroupsAndDevices(t *testing.T) {
	t.Parallel()
	s := startSim(t, graphsim.Options{})
	c := s.client(t, s.info.ClientSecret, graph.Options{})
	ctx := context.Background()
	// The Teams trial allotment is user,group only; a kiosk is a device.
	teams := s.Allotments()[2]
	if slices.Contains(teams.AssignableTo, "device") {
		t.Fatalf("allotment %s is assignable to devices", teams.ID)
	}
	group := s.Groups()[len(s.Groups())-1]
	for _, a := range s.Assignments() {
		if a.AssignedToID == group.ID && a.AllotmentID == teams.ID {
			t.Fatalf("group %s already holds %s", group.DisplayName, teams.ID)
		}
	}
	created, err := c.CreateAssignment(ctx, graph.CreateAssignment{AllotmentID: teams.ID, AssigneeID: group.ID, AssigneeType: "group"})
	if err != nil {
		t.Fatalf("CreateAssignment(group): %v", err)
	}
	listed := all(t, c.Assignments(ctx))
	i := slices.IndexFunc(listed, func(a graph.Assignment) bool { return a.ID == created.ID })
	if i < 0 || listed[i].AssignedTo != (graph.DirectoryObject{ID: group.ID, Type: "group", DisplayName: group.DisplayName}) || listed[i].AllotmentID != teams.ID {
		t.Errorf("listing after the group create: %+v", listed[max(i, 0)].AssignedTo)
	}

	_, err = c.CreateAssignment(ctx, graph.CreateAssignment{AllotmentID: teams.ID, AssigneeID: s.Devices()[0].ID, AssigneeType: "device"})
	var gerr *graph.Error
	if !errors.As(err, &gerr) || gerr.Status != http.StatusBadRequest || gerr.InnerCode != "invalidAssigneeType" {
		t.Errorf("CreateAssignment(device on a user,group allotment): err = %v, want 400 invalidAssigneeType", err)
	}
}

func TestClient_SKUTotals(t *testing.T) {
	t.Parallel()
	s := startSim(t, graphsim.Options{})
	c := s.client(t, s.info.ClientSecret, graph.Options{})
	sums := map[string]graph.SKUTotal{}
	for _, a := range s.Allotments() {
		tot := sums[a.SKUID]
		tot.SKUID, tot.SKUPartNumber = a.SKUID, a.SKUPartNumber
		tot.TotalAllottedUnits += int64(a.AllottedUnits)
		tot.TotalConsumedUnits += int64(a.ConsumedUnits)
		sums[a.SKUID] = tot
	}
	var want []graph.SKUTotal
	for _, v := range sums {
		want = append(want, v)
	}
	got := all(t, c.SKUTotals(context.Background()))
	if diff := cmp.Diff(want, got, ignoreAllRaw, cmpopts.SortSlices(func(a, b graph.SKUTotal) bool { return a.SKUID < b.SKUID })); diff != "" {
		t.Errorf("SKUTotals (-sums of the simulator's allotments +client):\n%s", diff)
	}
}
