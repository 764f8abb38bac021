package sync

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/seatledger/seatledger/internal/store"
	"github.com/seatledger/seatledger/internal/store/storetest"
)

// TestSyncer_GroupNames: the mirror names the groups that hold
// assignments, in assignments and in the seats their members inherit;
// a rename shows at once, in current and dated reads, and versions no
// assignment (the name is not part of the assignment's history).
func TestSyncer_GroupNames(t *testing.T) {
	t.Parallel()
	sim, info := startSim(t, nil)
	st := storetest.New(t)
	s := New(newClient(t, info, info.ClientSecret), st, Options{})
	ctx := context.Background()

	first, err := s.RunOnce(ctx)
	if err != nil {
		t.Fatalf("RunOnce() error = %v", err)
	}
	names := map[string]string{}
	members := map[string][]string{}
	for _, g := range sim.Groups() {
		names[g.ID] = g.DisplayName
		members[g.ID] = g.Members
	}
	// check reads every group assignment as of asOf (zero: now) and wants
	// the names in want, in the assignment and in its members' seats.
	check := func(label string, run store.SyncRun, want map[string]string) {
		t.Helper()
		checked := 0
		for _, a := range sim.Assignments() {
			if a.AssignedToType != "group" {
				continue
			}
			for _, asOf := range []struct {
				name string
				run  store.SyncRun
			}{{"now", store.SyncRun{}}, {"as of the run", run}} {
				got, err := st.GetAssignment(ctx, a.ID, asOf.run.StartedAt)
				if err != nil {
					t.Fatalf("%s: GetAssignment(%s, %s): %v", label, a.ID, asOf.name, err)
				}
				if got.AssigneeDisplayName != want[a.AssignedToID] || want[a.AssignedToID] == "" {
					t.Errorf("%s: assignment %s (%s) names group %s %q, want %q",
						label, a.ID, asOf.name, a.AssignedToID, got.AssigneeDisplayName, want[a.AssignedToID])
				}
				for _, m := range members[a.AssignedToID] {
					seats, err := st.UserSeats(ctx, m, asOf.run.StartedAt)
					if err != nil {
						t.Fatal(err)
					}
					for _, seat := range seats {
						if seat.GroupID == a.AssignedToID && seat.GroupDisplayName != want[a.AssignedToID] {
							t.Errorf("%s: seat of %s through group %s (%s) named %q, want %q",
								label, m, seat.GroupID, asOf.name, seat.GroupDisplayName, want[a.AssignedToID])
						}
					}
				}
				// The versioned content holds no name: the raw JSON keeps
				// the assignee's type and id, as before names were asked.
				var raw struct{ AssignedTo map[string]any }
				if err := json.Unmarshal(got.Raw, &raw); err != nil || raw.AssignedTo["id"] != a.AssignedToID {
					t.Errorf("%s: raw of assignment %s = %s (%v), want assignedTo with the group id", label, a.ID, got.Raw, err)
				}
				if _, ok := raw.AssignedTo["displayName"]; ok {
					t.Errorf("%s: raw of assignment %s keeps the group name: a rename would version it: %s", label, a.ID, got.Raw)
				}
			}
			checked++
		}
		if checked == 0 {
			t.Fatalf("%s: the demo tenant has no group assignment", label)
		}
	}
	check("first run", first, names)

	var renamed string
	for _, a := range sim.Assignments() {
		if a.AssignedToType == "group" {
			renamed = a.AssignedToID
			break
		}
	}
	names[renamed] += " (renamed)"
	if err := sim.RenameGroup(renamed, names[renamed]); err != nil {
		t.Fatal(err)
	}
	second, err := s.RunOnce(ctx)
	if err != nil {
		t.Fatalf("RunOnce() after the rename: %v", err)
	}
	if c := second.Counts["assignments"]; c.Added+c.Changed+c.Removed != 0 {
		t.Errorf("a group rename changed assignments: counts %+v, want all unchanged", c)
	}
	// Names are not history: the run before the rename reads the new name.
	check("after the rename", first, names)
}
