package graphsim_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/seatledger/seatledger/internal/graphsim"
)

// demoDay is what a test notes of the tenant when DemoPast syncs.
type demoDay struct {
	at                time.Time
	users             int
	waiting, errors   []string // display names
	teamsAllotted     int32
	departments       map[string]string // display name → department, for the movers
	subscriptionState map[string]string // subscription id → state
}

func noteDay(sim *graphsim.Server, at time.Time) demoDay {
	d := demoDay{at: at, departments: map[string]string{}, subscriptionState: map[string]string{}}
	names := map[string]string{}
	for _, u := range sim.Users() {
		names[u.ID] = u.DisplayName
		switch u.DisplayName {
		case "Chiara Rossi", "Priya Raman", "Cem Yilmaz":
			d.departments[u.DisplayName] = u.Department
		}
	}
	d.users = len(names)
	for _, w := range sim.WaitingMembers() {
		d.waiting = append(d.waiting, names[w.MemberID])
	}
	for _, e := range sim.AssignmentErrors() {
		d.errors = append(d.errors, names[e.UserID]+" "+e.Code)
	}
	slices.Sort(d.waiting)
	slices.Sort(d.errors)
	for _, a := range sim.Allotments() {
		if a.SKUPartNumber == "Teams_Ess" {
			d.teamsAllotted = a.AllottedUnits
		}
		for _, s := range a.Subscriptions {
			d.subscriptionState[s.SubscriptionID] = s.State
		}
	}
	return d
}

func replayDemoPast(t *testing.T, end time.Time) (*graphsim.Server, []demoDay) {
	t.Helper()
	sim, err := graphsim.New(graphsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var days []demoDay
	err = sim.DemoPast(end, func(at time.Time) error {
		if now := sim.Now(); now.Before(at) || now.Sub(at) > time.Minute {
			return fmt.Errorf("at the sync of %s the simulator's clock says %s", at, now)
		}
		days = append(days, noteDay(sim, at))
		return nil
	})
	if err != nil {
		t.Fatalf("DemoPast: %v", err)
	}
	return sim, days
}

// TestDemoPast_Story: the replay syncs once a day over the 90 days before
// the end day, with the simulator's clock on that day, tells the story its
// documentation tells, and ends on the demo tenant plus the new hire, with
// the clock back on the real time.
func TestDemoPast_Story(t *testing.T) {
	t.Parallel()
	end := time.Date(2027, 3, 2, 9, 30, 0, 0, time.UTC)
	sim, days := replayDemoPast(t, end)

	if len(days) != graphsim.DemoPastDays {
		t.Fatalf("DemoPast synced %d times, want %d", len(days), graphsim.DemoPastDays)
	}
	for i, d := range days {
		want := time.Date(2026, 12, 2, 18, 0, 0, 0, time.UTC).AddDate(0, 0, i)
		if !d.at.Equal(want) {
			t.Fatalf("sync %d at %s, want %s (one a day, 18:00 UTC, ending the day before the end day)", i+1, d.at, want)
		}
	}
	if now := sim.Now(); time.Since(now).Abs() > time.Minute {
		t.Errorf("after DemoPast the simulator's clock says %s, want the real time", now)
	}

	day := func(n int) demoDay { return days[n-1] }
	checks := []struct {
		what      string
		got, want any
	}{
		{"users on day 1 (two leavers in, three hires and the new hire out)", day(1).users, 29},
		{"users on day 13 (Liam left)", day(13).users, 28},
		{"users on day 90", day(90).users, 31},
		{"waiting on day 24", day(24).waiting, []string(nil)},
		{"waiting on day 25 (Chiara joins a full trial)", day(25).waiting, []string{"Chiara Rossi"}},
		{"waiting on day 30 (the trial grows)", day(30).waiting, []string(nil)},
		{"Teams seats on day 29, 30", []int32{day(29).teamsAllotted, day(30).teamsAllotted}, []int32{4, 6}},
		{"errors on day 38", day(38).errors, []string(nil)},
		{"errors on day 39 (Yara's pilot)", day(39).errors, []string{"Yara Costa MissingDependency"}},
		{"errors on day 48 (the pilot ends)", day(48).errors, []string(nil)},
		{"errors on day 53 (Wen joins)", day(53).errors, []string{"Wen Li MissingDependency"}},
		{"waiting on day 90", day(90).waiting, []string{"Fatima Haddad", "Gustav Berg"}},
		{"errors on day 90", day(90).errors, []string{"Wen Li MissingDependency"}},
		{"departments on day 1", day(1).departments, map[string]string{"Chiara Rossi": "Sales", "Priya Raman": "Marketing", "Cem Yilmaz": "Marketing"}},
		{"departments on day 90", day(90).departments, map[string]string{"Chiara Rossi": "Engineering", "Priya Raman": "Finance", "Cem Yilmaz": ""}},
		{"E3 batch 1's second subscription on days 57, 58, 64", []string{day(57).subscriptionState["e9b1c4d7-2a5f-4c8e-b6d3-0f1e2d3c4b5a"],
			day(58).subscriptionState["e9b1c4d7-2a5f-4c8e-b6d3-0f1e2d3c4b5a"], day(64).subscriptionState["e9b1c4d7-2a5f-4c8e-b6d3-0f1e2d3c4b5a"]},
			[]string{"active", "suspended", "active"}},
	}
	for _, c := range checks {
		if diff := cmp.Diff(c.want, c.got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.what, diff)
		}
	}

	// The end is the demo tenant, plus the new hire; waits are dated by
	// the day the engineers joined.
	demo, err := graphsim.New(graphsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want, got := demo.Snapshot(), sim.Snapshot()
	want.Users = append(want.Users, graphsim.DemoPastHire)
	slices.SortFunc(want.Users, func(a, b graphsim.UserState) int { return strings.Compare(a.ID, b.ID) })
	for _, ws := range [][]graphsim.WaitingMemberState{want.WaitingMembers, got.WaitingMembers} {
		for i := range ws {
			ws[i].ID, ws[i].Since = "", time.Time{}
		}
	}
	for _, es := range [][]graphsim.AssignmentErrorState{want.AssignmentErrors, got.AssignmentErrors} {
		for i := range es {
			es[i].ID, es[i].OccurredAt = "", time.Time{}
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the tenant after DemoPast differs from the demo tenant plus %s (-want +got):\n%s", graphsim.DemoPastHire.DisplayName, diff)
	}
	for _, w := range sim.WaitingMembers() {
		if wantSince := day(75).at.Add(-10 * time.Hour); w.Since.Before(wantSince) || w.Since.After(day(78).at) {
			t.Errorf("waiting member %s waits since %s, want day 75 or 78 of the past", w.MemberID, w.Since)
		}
	}
}

// TestDemoPast_Deterministic: the same end day replays the same past.
func TestDemoPast_Deterministic(t *testing.T) {
	t.Parallel()
	end := time.Date(2027, 3, 2, 0, 0, 0, 0, time.UTC)
	a, daysA := replayDemoPast(t, end)
	b, daysB := replayDemoPast(t, end.Add(23*time.Hour))
	if diff := cmp.Diff(daysA, daysB, cmp.AllowUnexported(demoDay{})); diff != "" {
		t.Errorf("two replays for the same end day differ (-first +second):\n%s", diff)
	}
	if diff := cmp.Diff(a.Snapshot(), b.Snapshot()); diff != "" {
		t.Errorf("two replays for the same end day end differently (-first +second):\n%s", diff)
	}
}

// TestDemoPast_RefusesAnotherTenant: a simulator that does not hold the
// demo tenant as it starts (another tenant, or a past already replayed)
// is refused, unchanged.
func TestDemoPast_RefusesAnotherTenant(t *testing.T) {
	t.Parallel()
	gen := graphsim.Generate(graphsim.GenerateOptions{Seed: 1, Users: 5, Allotments: 2})
	other, err := graphsim.New(graphsim.Options{Tenant: &gen})
	if err != nil {
		t.Fatal(err)
	}
	replayed, _ := replayDemoPast(t, time.Now())
	for name, sim := range map[string]*graphsim.Server{"generated tenant": other, "replayed demo": replayed} {
		before := sim.Snapshot()
		err := sim.DemoPast(time.Now(), func(time.Time) error { t.Errorf("%s: DemoPast synced", name); return nil })
		if !errors.Is(err, graphsim.ErrNotDemoTenant) {
			t.Errorf("%s: DemoPast() = %v, want ErrNotDemoTenant", name, err)
		}
		if diff := cmp.Diff(before, sim.Snapshot()); diff != "" {
			t.Errorf("%s: a refused DemoPast changed the tenant:\n%s", name, diff)
		}
	}
}
