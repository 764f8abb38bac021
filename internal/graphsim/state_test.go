package graphsim_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/seatledger/seatledger/internal/graphsim"
)

func newSim(t *testing.T, tn *graphsim.Tenant) *graphsim.Server {
	t.Helper()
	sim, err := graphsim.New(graphsim.Options{Tenant: tn, Clock: func() time.Time { return time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return sim
}

func consumed(sim *graphsim.Server) map[string]int32 {
	out := map[string]int32{}
	for _, a := range sim.Allotments() {
		out[a.ID] = a.ConsumedUnits
	}
	return out
}

func TestDemoTenant_Licensing(t *testing.T) {
	t.Parallel()
	sim := newSim(t, nil)
	users := sim.Users()
	if len(users) != 30 {
		t.Fatalf("demo has %d users, want 30", len(users))
	}
	depts := map[string]int{}
	disabled := 0
	for _, u := range users {
		depts[u.Department]++
		if !u.AccountEnabled {
			disabled++
		}
	}
	if len(depts) != 6 || depts[""] != 1 || disabled != 1 {
		t.Errorf("departments %v, %d disabled; want 5 departments, one user without, one disabled", depts, disabled)
	}
	want := map[string]int32{
		"3b0c7e52-11d4-8a6f-02e9-6c5d8f1a4b70": 18, "8e4d2a19-7c33-5b0e-91fa-0d6b3e27c845": 7,
		"c52f9b07-4e81-2d6a-b3c0-71e8a5d9f326": 6, "f0a61d3c-29b7-6e45-8d12-b9c4e07a5e81": 6,
	}
	for id, n := range consumed(sim) {
		if want[id] != n {
			t.Errorf("allotment %s consumed %d, want %d", id, n, want[id])
		}
	}
	ws := sim.WaitingMembers()
	if len(ws) != 2 || ws[0].Since.After(ws[1].Since) {
		t.Errorf("waiting members = %+v, want the two engineers", ws)
	}
	es := sim.AssignmentErrors()
	if len(es) != 1 || es[0].Code != graphsim.CodeMissingDependency {
		t.Fatalf("assignment errors = %+v, want one MissingDependency", es)
	}
}

func TestSeats_WaitingRoomFIFO(t *testing.T) {
	t.Parallel()
	sim := newSim(t, nil)
	const teams = "c52f9b07-4e81-2d6a-b3c0-71e8a5d9f326"
	const eng = "9d1e4b7a-3c2f-4e8d-a6b5-0c1d2e3f4a01"
	first := sim.WaitingMembers()[0]
	// A new engineer joins: the allotment is full, so they wait last.
	newcomer := "5a0e0099-7c21-4d3b-9f10-2b6c8d4e0099"
	if err := sim.AddUser(graphsim.UserState{ID: newcomer, UserPrincipalName: "new@contoso.example", DisplayName: "New", AccountEnabled: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.AdvanceClock(time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := sim.AddGroupMember(eng, newcomer); err != nil {
		t.Fatal(err)
	}
	if n := len(sim.WaitingMembers()); n != 3 {
		t.Fatalf("%d waiting, want 3", n)
	}
	// One more seat: the longest waiting gets it.
	if err := sim.SetAllottedUnits(teams, 7); err != nil {
		t.Fatal(err)
	}
	ws := sim.WaitingMembers()
	for _, w := range ws {
		if w.MemberID == first.MemberID {
			t.Errorf("%s still waits after a seat freed", first.MemberID)
		}
	}
	if consumed(sim)[teams] != 7 || len(ws) != 2 {
		t.Errorf("consumed %d with %d waiting, want 7 and 2", consumed(sim)[teams], len(ws))
	}
	// A seat holder leaves the group: the next in line takes the seat.
	if err := sim.RemoveGroupMember(eng, "5a0e0001-7c21-4d3b-9f10-2b6c8d4e0001"); err != nil {
		t.Fatal(err)
	}
	if ws := sim.WaitingMembers(); len(ws) != 1 || ws[0].MemberID != newcomer {
		t.Errorf("waiting = %+v, want only the newcomer", ws)
	}
}

func TestAssign_Rules(t *testing.T) {
	t.Parallel()
	sim := newSim(t, nil)
	const teams = "c52f9b07-4e81-2d6a-b3c0-71e8a5d9f326"
	const exch = "f0a61d3c-29b7-6e45-8d12-b9c4e07a5e81"
	const e3b2 = "8e4d2a19-7c33-5b0e-91fa-0d6b3e27c845"
	user := func(n int) string { return fmt.Sprintf("5a0e%04x-7c21-4d3b-9f10-2b6c8d4e%04x", n, n) }
	var se *graphsim.SimError
	// Full allotment, direct user: refused.
	_, err := sim.Assign(graphsim.AssignmentState{AllotmentID: teams, AssignedToID: user(8)})
	if !errors.As(err, &se) || se.InnerCode != "noAvailableLicenses" || se.Status != 400 {
		t.Errorf("assign to full allotment: %v, want 400 noAvailableLicenses", err)
	}
	// Exchange Standard next to E3's Exchange: mutually exclusive.
	_, err = sim.Assign(graphsim.AssignmentState{AllotmentID: exch, AssignedToID: user(8)})
	if !errors.As(err, &se) || se.InnerCode != "mutuallyExclusiveServicePlans" {
		t.Errorf("assign exclusive plans: %v, want mutuallyExclusiveServicePlans", err)
	}
	// Unknown plan id.
	_, err = sim.Assign(graphsim.AssignmentState{AllotmentID: exch, AssignedToID: user(8), DisabledServicePlanIDs: []string{"00000000-0000-0000-0000-000000000000"}})
	if !errors.As(err, &se) || se.Status != 400 {
		t.Errorf("assign unknown plan: %v, want 400", err)
	}
	// Fix the demo's dependency error: give Wen (23) an E3 seat, reprocess.
	wen := user(23)
	if _, err := sim.UpdateAssignment(sim.Assignments()[len(sim.Assignments())-1].ID, nil); err != nil {
		t.Fatal(err)
	}
	if n := len(sim.AssignmentErrors()); n != 1 {
		t.Fatalf("%d errors, want the demo's one", n)
	}
	// Wen holds Exchange Standard, which excludes E3's Exchange: disable it.
	if _, err := sim.Assign(graphsim.AssignmentState{AllotmentID: e3b2, AssignedToID: wen}); !errors.As(err, &se) {
		t.Fatalf("E3 next to Exchange Standard: %v, want a refusal", err)
	}
	if _, err := sim.Assign(graphsim.AssignmentState{AllotmentID: e3b2, AssignedToID: wen, DisabledServicePlanIDs: []string{"efb87545-963c-4e0d-99df-69c6916d9eb0"}}); err != nil {
		t.Fatal(err)
	}
	if n := len(sim.AssignmentErrors()); n != 1 {
		t.Fatalf("error cleared without reprocessing: %d errors", n)
	}
	if err := sim.Reprocess(wen); err != nil {
		t.Fatal(err)
	}
	if n := len(sim.AssignmentErrors()); n != 1 {
		t.Fatalf("error cleared although EXCHANGE_S_ENTERPRISE is still disabled: %d", n)
	}
	// Drop Exchange Standard, enable E3's Exchange, reprocess: cleared.
	for _, a := range sim.Assignments() {
		if a.AssignedToID == wen && a.AllotmentID == exch {
			if err := sim.Unassign(a.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, a := range sim.Assignments() {
		if a.AssignedToID == wen && a.AllotmentID == e3b2 {
			if _, err := sim.UpdateAssignment(a.ID, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := sim.Reprocess(wen); err != nil {
		t.Fatal(err)
	}
	if es := sim.AssignmentErrors(); len(es) != 0 {
		t.Errorf("errors after the fix and reprocessing: %+v", es)
	}
}

func TestRemoveUser_FreesSeats(t *testing.T) {
	t.Parallel()
	sim := newSim(t, nil)
	const teams = "c52f9b07-4e81-2d6a-b3c0-71e8a5d9f326"
	user := func(n int) string { return fmt.Sprintf("5a0e%04x-7c21-4d3b-9f10-2b6c8d4e%04x", n, n) }
	// Ada (1) holds a Teams seat through Engineering: a direct Teams
	// assignment needs no new seat, so it succeeds although the
	// allotment is full.
	if _, err := sim.Assign(graphsim.AssignmentState{AllotmentID: teams, AssignedToID: user(1)}); err != nil {
		t.Fatalf("direct assignment over a group seat: %v", err)
	}
	if c := consumed(sim)[teams]; c != 6 {
		t.Errorf("consumed %d, want 6: one seat per user", c)
	}
	before := len(sim.Assignments())
	if err := sim.RemoveUser(user(1)); err != nil {
		t.Fatal(err)
	}
	if len(sim.Assignments()) != before-3 { // E3 batch 1, E3 batch 2, Teams
		t.Errorf("assignments %d → %d, want Ada's three gone", before, len(sim.Assignments()))
	}
	if ws := sim.WaitingMembers(); len(ws) != 1 || ws[0].MemberID != user(7) {
		t.Errorf("waiting = %+v, want user 6 served, 7 still waiting", ws)
	}
	for _, g := range sim.Groups() {
		for _, m := range g.Members {
			if m == user(1) {
				t.Errorf("group %s still lists the removed user", g.DisplayName)
			}
		}
	}
	if err := sim.RemoveUser(user(1)); !errors.Is(err, graphsim.ErrNotFound) {
		t.Errorf("second removal: %v, want ErrNotFound", err)
	}
	if err := sim.SetSubscriptionState(teams, "b4d6f8a0-1c3e-4f57-9a2b-6c7d8e9f0a12", "suspended"); err != nil {
		t.Fatal(err)
	}
	if err := sim.SetSubscriptionState(teams, "b4d6f8a0-1c3e-4f57-9a2b-6c7d8e9f0a12", "gone"); err == nil {
		t.Error("an unknown state was accepted")
	}
}

func TestSeats_GroupMembersOfOtherTypes(t *testing.T) {
	t.Parallel()
	sim := newSim(t, nil)
	const exch = "f0a61d3c-29b7-6e45-8d12-b9c4e07a5e81" // user,group only
	const kiosks = "9d1e4b7a-3c2f-4e8d-a6b5-0c1d2e3f4a03"
	before := consumed(sim)[exch]
	if _, err := sim.Assign(graphsim.AssignmentState{AllotmentID: exch, AssignedToID: kiosks}); err != nil {
		t.Fatal(err)
	}
	if got := consumed(sim)[exch]; got != before {
		t.Errorf("devices took seats of a user-only allotment: %d → %d", before, got)
	}
}
