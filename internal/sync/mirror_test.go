package sync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/seatledger/seatledger/internal/graphsim"
	"github.com/seatledger/seatledger/internal/store"
	"github.com/seatledger/seatledger/internal/store/storetest"
)

// tenantView is the part of a tenant the mirror must reproduce, as sorted
// lines that read well in a diff.
type tenantView struct {
	Allotments, Subscriptions, Assignments, WaitingMembers, AssignmentErrors, Users []string
}

func simView(sim *graphsim.Server) tenantView {
	var v tenantView
	for _, a := range sim.Allotments() {
		v.Allotments = append(v.Allotments, fmt.Sprintf("%s sku=%s allotted=%d consumed=%d", a.ID, a.SKUID, a.AllottedUnits, a.ConsumedUnits))
		for _, s := range a.Subscriptions {
			v.Subscriptions = append(v.Subscriptions, fmt.Sprintf("%s %s allotment=%s", s.SubscriptionID, s.State, a.ID))
		}
	}
	for _, a := range sim.Assignments() {
		d := slices.Sorted(slices.Values(a.DisabledServicePlanIDs))
		v.Assignments = append(v.Assignments, fmt.Sprintf("%s allotment=%s %s=%s disabled=%v", a.ID, a.AllotmentID, a.AssignedToType, a.AssignedToID, d))
	}
	for _, w := range sim.WaitingMembers() {
		v.WaitingMembers = append(v.WaitingMembers, fmt.Sprintf("%s allotment=%s %s=%s since=%s", w.ID, w.AllotmentID, w.MemberType, w.MemberID, w.Since.UTC().Format(time.RFC3339)))
	}
	for _, e := range sim.AssignmentErrors() {
		v.AssignmentErrors = append(v.AssignmentErrors, fmt.Sprintf("%s user=%s sku=%s %s", e.ID, e.UserID, e.SKUID, e.Code))
	}
	for _, u := range sim.Users() {
		v.Users = append(v.Users, fmt.Sprintf("%s %s dept=%q company=%q enabled=%t", u.ID, u.UserPrincipalName, u.Department, u.CompanyName, u.AccountEnabled))
	}
	return v.sorted()
}

func (v tenantView) sorted() tenantView {
	for _, l := range []*[]string{&v.Allotments, &v.Subscriptions, &v.Assignments, &v.WaitingMembers, &v.AssignmentErrors, &v.Users} {
		slices.Sort(*l)
	}
	return v
}

// storeView reads the same view from the mirror as of at (zero: now),
// paging through every list.
func storeView(t *testing.T, st *store.Store, at time.Time) tenantView {
	t.Helper()
	ctx := context.Background()
	var v tenantView
	for after := ""; ; {
		page, err := st.ListAllotments(ctx, store.ListAllotmentsParams{PageSize: 7, AfterID: after})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range page {
			if !at.IsZero() {
				if a, err = st.AllotmentAsOf(ctx, a.ID, at); errors.Is(err, store.ErrNotFound) {
					continue
				} else if err != nil {
					t.Fatal(err)
				}
			}
			v.Allotments = append(v.Allotments, fmt.Sprintf("%s sku=%s allotted=%d consumed=%d", a.ID, a.SKUID, a.AllottedUnits, a.ConsumedUnits))
			for _, s := range a.Subscriptions {
				v.Subscriptions = append(v.Subscriptions, fmt.Sprintf("%s %s allotment=%s", s.SubscriptionID, s.State, a.ID))
			}
		}
		if len(page) < 7 {
			break
		}
		after = page[len(page)-1].ID
	}
	for after := ""; ; {
		page, err := st.ListAssignments(ctx, store.ListAssignmentsParams{PageSize: 50, AfterID: after, AsOf: at})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range page {
			d := slices.Sorted(slices.Values(a.DisabledPlanIDs))
			v.Assignments = append(v.Assignments, fmt.Sprintf("%s allotment=%s %s=%s disabled=%v", a.ID, a.AllotmentID, a.AssigneeType, a.AssigneeID, d))
		}
		if len(page) < 50 {
			break
		}
		after = page[len(page)-1].ID
	}
	for after := ""; ; {
		page, err := st.ListWaitingMembers(ctx, store.ListWaitingMembersParams{PageSize: 50, AfterID: after, AsOf: at})
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range page {
			v.WaitingMembers = append(v.WaitingMembers, fmt.Sprintf("%s allotment=%s %s=%s since=%s", w.ID, w.AllotmentID, w.MemberType, w.MemberID, w.WaitingSince.UTC().Format(time.RFC3339)))
		}
		if len(page) < 50 {
			break
		}
		after = page[len(page)-1].ID
	}
	for after := ""; ; {
		page, err := st.ListAssignmentErrors(ctx, store.ListAssignmentErrorsParams{PageSize: 50, AfterID: after, AsOf: at})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			v.AssignmentErrors = append(v.AssignmentErrors, fmt.Sprintf("%s user=%s sku=%s %s", e.ID, e.UserID, e.SKUID, e.Code))
		}
		if len(page) < 50 {
			break
		}
		after = page[len(page)-1].ID
	}
	for after := ""; ; {
		page, err := st.ListUsers(ctx, 50, after, at)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range page {
			v.Users = append(v.Users, fmt.Sprintf("%s %s dept=%q company=%q enabled=%t", u.ID, u.UserPrincipalName, u.Department, u.CompanyName, u.AccountEnabled))
		}
		if len(page) < 50 {
			break
		}
		after = page[len(page)-1].ID
	}
	return v.sorted()
}

// newMirror returns a simulator of tenant (nil: the demo tenant), a fresh
// database and a Syncer between them that reads the simulator's clock.
func newMirror(t *testing.T, tenant *graphsim.Tenant) (*graphsim.Server, *store.Store, *Syncer) {
	t.Helper()
	sim, info := startSim(t, tenant)
	st := storetest.New(t)
	return sim, st, New(newClient(t, info, info.ClientSecret), st, Options{Now: sim.Now})
}

// TestMirror_EqualsSimulator: after a sync, everything the simulator holds
// is in Postgres with the same values, and nothing else is.
func TestMirror_EqualsSimulator(t *testing.T) {
	t.Parallel()
	sim, st, s := newMirror(t, nil)
	if _, err := s.RunOnce(context.Background()); err != nil {
		t.Fatalf("RunOnce() error = %v", err)
	}
	want := simView(sim)
	if len(want.Assignments) == 0 || len(want.WaitingMembers) == 0 || len(want.AssignmentErrors) == 0 || len(want.Users) == 0 {
		t.Fatalf("the demo tenant lacks an entity this test needs: %+v", want)
	}
	if diff := cmp.Diff(want, storeView(t, st, time.Time{})); diff != "" {
		t.Errorf("mirror differs from the simulator (-sim +mirror):\n%s", diff)
	}
}

// TestMirror_ThirtyDays evolves a tenant over 30 simulated days, syncing
// once a day, then checks that "as of" reads give each day's state and that
// an allotment's daily history gives each day's counts.
func TestMirror_ThirtyDays(t *testing.T) {
	t.Parallel()
	sim, st, s := newMirror(t, nil)
	ctx := context.Background()

	users := sim.Users()
	groups := sim.Groups()
	allotments := sim.Allotments()
	teams := allotments[slices.IndexFunc(allotments, func(a graphsim.AllotmentState) bool { return a.SKUPartNumber == "Teams_Ess" })]
	licensedGroup := ""
	for _, a := range sim.Assignments() {
		if a.AllotmentID == teams.ID && a.AssignedToType == "group" {
			licensedGroup = a.AssignedToID
		}
	}
	if licensedGroup == "" {
		t.Fatal("the demo tenant has no group assignment on Teams_Ess")
	}
	departments := []string{"Finance", "Engineering", "Sales", "Marketing", "Legal"}

	type day struct {
		at       time.Time
		view     tenantView
		consumed map[string]int32
		waiting  map[string]int
	}
	var days []day
	for d := range 30 {
		// Each day brings some change a real tenant sees.
		switch {
		case d%5 == 1: // a hire, who joins the licensed group: it grows past capacity
			id := fmt.Sprintf("0a1b2c3d-0000-4000-8000-%012d", d)
			must(t, sim.AddUser(graphsim.UserState{ID: id, UserPrincipalName: fmt.Sprintf("hire%d@contoso.example", d),
				DisplayName: fmt.Sprintf("Hire %d", d), Department: departments[d%len(departments)], AccountEnabled: true}))
			must(t, sim.AddGroupMember(licensedGroup, id))
		case d%5 == 2: // a department move
			u := users[d%20] // leavers come from the end of the list
			must(t, sim.SetDepartment(u.ID, departments[(d+1)%len(departments)]))
		case d%5 == 3 && d < 25: // a leaver
			must(t, sim.RemoveUser(users[len(users)-1-d/5].ID))
		case d == 9: // the full allotment's capacity is raised: waiting members get seats
			must(t, sim.SetAllottedUnits(teams.ID, teams.AllottedUnits+3))
		case d == 14: // a subscription expires
			a := allotments[len(allotments)-1]
			must(t, sim.SetSubscriptionState(a.ID, a.Subscriptions[0].SubscriptionID, "suspended"))
		case d == 20 && len(groups) > 1: // a member leaves a group
			g := groups[0]
			if len(g.Members) > 0 {
				must(t, sim.RemoveGroupMember(g.ID, g.Members[0]))
			}
		}
		if _, err := sim.AdvanceClock(24 * time.Hour); err != nil {
			t.Fatal(err)
		}
		run, err := s.RunOnce(ctx)
		if err != nil {
			t.Fatalf("day %d: RunOnce() error = %v", d, err)
		}
		dd := day{at: run.StartedAt, view: simView(sim), consumed: map[string]int32{}, waiting: map[string]int{}}
		for _, a := range sim.Allotments() {
			dd.consumed[a.ID] = a.ConsumedUnits
		}
		for _, w := range sim.WaitingMembers() {
			dd.waiting[w.AllotmentID]++
		}
		days = append(days, dd)
	}

	for i, d := range days {
		if diff := cmp.Diff(d.view, storeView(t, st, d.at)); diff != "" {
			t.Errorf("day %d: the mirror as of %s differs from the simulator that day (-sim +mirror):\n%s", i, d.at.Format(time.RFC3339), diff)
		}
	}

	points, err := st.AllotmentHistory(ctx, store.HistoryParams{AllotmentID: teams.ID,
		From: days[0].at.Truncate(24 * time.Hour), To: days[len(days)-1].at.Add(24 * time.Hour), Daily: true, PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(points) != len(days) {
		t.Fatalf("daily history has %d points, want %d (one per synced day)", len(points), len(days))
	}
	sawWaiting, sawChange := false, false
	for i, p := range points {
		want := days[i]
		if p.Day != want.at.UTC().Format(time.DateOnly) || p.Consumed != want.consumed[teams.ID] || int(p.Waiting) != want.waiting[teams.ID] {
			t.Errorf("history point %d = day %s consumed %d waiting %d; want day %s consumed %d waiting %d",
				i, p.Day, p.Consumed, p.Waiting, want.at.UTC().Format(time.DateOnly), want.consumed[teams.ID], want.waiting[teams.ID])
		}
		sawWaiting = sawWaiting || p.Waiting > 0
		sawChange = sawChange || i > 0 && p.Consumed != points[i-1].Consumed
	}
	if !sawWaiting || !sawChange {
		t.Errorf("the history never shows waiting members (%t) or a change in use (%t); the scenario no longer exercises them", sawWaiting, sawChange)
	}
}

// TestMirror_MassDeletionGuard: a tenant that suddenly lists no
// assignments is held, changing nothing, until forced.
func TestMirror_MassDeletionGuard(t *testing.T) {
	t.Parallel()
	sim, st, s := newMirror(t, nil)
	ctx := context.Background()
	if _, err := s.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	before := storeView(t, st, time.Time{})
	if len(before.Assignments) < 10 {
		t.Fatalf("the demo tenant has %d assignments; the guard needs at least 10", len(before.Assignments))
	}
	for _, a := range sim.Assignments() {
		must(t, sim.Unassign(a.ID))
	}
	run, err := s.RunOnce(ctx)
	if !errors.Is(err, store.ErrMassDeletion) || run.Outcome != store.OutcomeHeld {
		t.Fatalf("RunOnce() after every assignment vanished = %v, %v; want a held run", run.Outcome, err)
	}
	if diff := cmp.Diff(before, storeView(t, st, time.Time{})); diff != "" {
		t.Errorf("a held run changed the mirror (-before +after):\n%s", diff)
	}
	if s.HeldRuns() != 1 {
		t.Errorf("HeldRuns() = %d, want 1", s.HeldRuns())
	}
	forced, err := s.RunNow(ctx, true)
	if err != nil || forced.Outcome != store.OutcomeSucceeded {
		t.Fatalf("RunNow(force) = %v, %v; want it applied", forced.Outcome, err)
	}
	if got := storeView(t, st, time.Time{}); len(got.Assignments) != 0 {
		t.Errorf("after a forced run the mirror still lists %d assignments", len(got.Assignments))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestMirror_UsersDeltaExpired: when Graph has dropped the users delta
// state (410 syncStateNotFound), the run lists every user again and the
// mirror still equals the tenant, removals included.
func TestMirror_UsersDeltaExpired(t *testing.T) {
	t.Parallel()
	sim, st, s := newMirror(t, nil)
	ctx := context.Background()
	if _, err := s.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	users := sim.Users()
	must(t, sim.RemoveUser(users[len(users)-1].ID))
	must(t, sim.SetDepartment(users[0].ID, "Moved"))
	sim.ExpireDeltaLinks()
	if _, err := sim.AdvanceClock(time.Hour); err != nil {
		t.Fatal(err)
	}
	run, err := s.RunOnce(ctx)
	if err != nil {
		t.Fatalf("RunOnce() after the delta link expired: %v", err)
	}
	if c := run.Counts["users"]; c.Removed != 1 || c.Changed != 1 {
		t.Errorf("users counts = %+v, want 1 removed and 1 changed by the full listing", c)
	}
	if diff := cmp.Diff(simView(sim), storeView(t, st, time.Time{})); diff != "" {
		t.Errorf("mirror differs from the simulator after a full users round (-sim +mirror):\n%s", diff)
	}
	// The new link works: an unchanged tenant syncs without another expiry.
	if _, err := s.RunOnce(ctx); err != nil {
		t.Fatalf("RunOnce() with the new delta link: %v", err)
	}
}

// TestMirror_DeltaLinkOnAnotherGraphURL: a stored users delta link that
// points elsewhere than the Graph URL (the zero-config demo's simulator
// came back on another port) is discarded with a warning, not followed:
// the run lists every user, succeeds, records no failed run, and the next
// run uses the new link.
func TestMirror_DeltaLinkOnAnotherGraphURL(t *testing.T) {
	t.Parallel()
	simA, st, s := newMirror(t, nil)
	ctx := context.Background()
	if _, err := s.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	// The same tenant, one change later, served on another port.
	tenant := simA.Snapshot()
	tenant.Users[0].Department = "Moved"
	simB, infoB := startSim(t, &tenant)
	sB := New(newClient(t, infoB, infoB.ClientSecret), st, Options{Now: simB.Now})
	run, err := sB.RunOnce(ctx)
	if err != nil {
		t.Fatalf("RunOnce() with a delta link of another Graph URL: %v", err)
	}
	if c := run.Counts["users"]; c.Changed != 1 {
		t.Errorf("users counts = %+v, want the 1 change found by the full listing", c)
	}
	if diff := cmp.Diff(simView(simB), storeView(t, st, time.Time{})); diff != "" {
		t.Errorf("mirror differs from the simulator (-sim +mirror):\n%s", diff)
	}
	runs, err := st.ListSyncRuns(ctx, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		if r.Outcome != store.OutcomeSucceeded {
			t.Errorf("sync run %d: %s (%s), want only succeeded runs: a discarded link is no failure", r.ID, r.Outcome, r.Error)
		}
	}
	link, err := st.UsersDeltaLink(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(link, infoB.GraphURL+"/") {
		t.Errorf("stored delta link %q, want one on %s", link, infoB.GraphURL)
	}
	if _, err := sB.RunOnce(ctx); err != nil {
		t.Fatalf("RunOnce() with the new delta link: %v", err)
	}
}
