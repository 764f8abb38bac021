package store_test

import (
	"errors"
	"fmt"
	"iter"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5"

	"github.com/seatledger/seatledger/internal/store"
	"github.com/seatledger/seatledger/internal/store/storetest"
)

// rows yields items, for the Stage methods.
func rows[T any](items ...T) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for _, it := range items {
			if !yield(it, nil) {
				return
			}
		}
	}
}

func asg(id, allotment, assignee string, disabled ...string) store.Assignment {
	return store.Assignment{
		ID: id, AllotmentID: allotment, AssigneeID: assignee, AssigneeType: store.KindUser,
		DisabledPlanIDs: disabled,
		Raw:             fmt.Appendf(nil, `{"id": %q, "disabledServicePlanIds": %d}`, id, len(disabled)),
	}
}

func user(id, dept string) store.User {
	return store.User{
		ID: id, UserPrincipalName: id + "@contoso.example", DisplayName: "User " + id, Department: dept,
		CompanyName: "Contoso", CostCenter: "CC-" + dept, AccountEnabled: true,
		Raw: fmt.Appendf(nil, `{"id": %q, "department": %q}`, id, dept),
	}
}

// mirrorTables are the version tables of the entities a Snapshot mirrors.
var mirrorTables = []string{"allotment_versions", "subscription_versions", "assignment_versions",
	"waiting_member_versions", "assignment_error_versions", "user_versions", "group_member_versions"}

// physical returns each version row's physical identity in the tables:
// an UPDATE or re-INSERT changes it, so equal results mean nothing was
// written.
func physical(t *testing.T, conn *pgx.Conn, tables ...string) []string {
	t.Helper()
	var out []string
	for _, table := range tables {
		rows, _ := conn.Query(t.Context(), `SELECT '`+table+` ' || ctid::text || ' ' || xmin::text FROM `+table+` ORDER BY 1`)
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, got...)
	}
	return out
}

// checkNoOverlaps fails the test if two versions of one key overlap in
// time in any mirror table: the invariant the tables without exclusion
// constraints leave to Snapshot.Apply.
func checkNoOverlaps(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	keys := map[string]string{"allotment_versions": "id", "subscription_versions": "subscription_id, allotment_id",
		"assignment_versions": "id", "waiting_member_versions": "id", "assignment_error_versions": "id",
		"user_versions": "id", "group_member_versions": "group_id, member_id"}
	for table, key := range keys {
		// Sorted by start, any overlap shows between neighbours.
		n := queryInt(t, conn, `
			SELECT count(*)
			FROM (
				SELECT valid, lag(valid) OVER (PARTITION BY `+key+` ORDER BY lower(valid)) AS prev
				FROM `+table+`
			) x
			WHERE prev && valid`)
		if n != 0 {
			t.Errorf("%s: %d versions overlap their predecessor", table, n)
		}
	}
}

// snapshot describes what one test run stages; nil fields are not staged.
type snapshot struct {
	allotments   []store.Allotment
	assignments  []store.Assignment
	waiting      []store.WaitingMember
	errors       []store.AssignmentError
	users        []store.User
	usersDelta   bool
	removals     []string
	groups       map[string][]store.GroupMember
	deltaLink    string
	opts         store.ApplyOptions
	stageAllNils bool // stage the nil lists above as empty ones
}

// stage begins a snapshot at at and stages s.
func stage(t *testing.T, st *store.Store, at time.Time, s snapshot) *store.Snapshot {
	t.Helper()
	ctx := t.Context()
	sn, err := st.BeginSnapshot(ctx, at)
	if err != nil {
		t.Fatalf("BeginSnapshot: %v", err)
	}
	check := func(_ int64, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("stage at %v: %v", at, err)
		}
	}
	if s.allotments != nil || s.stageAllNils {
		check(sn.StageAllotments(ctx, rows(s.allotments...)))
	}
	if s.assignments != nil || s.stageAllNils {
		check(sn.StageAssignments(ctx, rows(s.assignments...)))
	}
	if s.waiting != nil || s.stageAllNils {
		check(sn.StageWaitingMembers(ctx, rows(s.waiting...)))
	}
	if s.errors != nil || s.stageAllNils {
		check(sn.StageAssignmentErrors(ctx, rows(s.errors...)))
	}
	if s.users != nil || s.stageAllNils {
		check(sn.StageUsers(ctx, !s.usersDelta, rows(s.users...)))
	}
	if s.removals != nil {
		check(0, sn.StageUserRemovals(ctx, s.removals))
	}
	for _, g := range slices.Sorted(func(yield func(string) bool) {
		for g := range s.groups {
			if !yield(g) {
				return
			}
		}
	}) {
		check(sn.StageGroupMembers(ctx, g, rows(s.groups[g]...)))
	}
	if s.deltaLink != "" {
		sn.SetUsersDeltaLink(s.deltaLink)
	}
	return sn
}

// applyAt stages s at at and applies it, failing the test on error.
func applyAt(t *testing.T, st *store.Store, at time.Time, s snapshot) store.SyncRun {
	t.Helper()
	run, err := stage(t, st, at, s).Apply(t.Context(), store.SyncRun{GraphRequests: 5}, s.opts)
	if err != nil {
		t.Fatalf("Apply at %v: %v", at, err)
	}
	return run
}

func wantRunCounts(t *testing.T, run store.SyncRun, want map[string]store.Changes) {
	t.Helper()
	if diff := cmp.Diff(want, run.Counts); diff != "" {
		t.Errorf("run %d counts (-want +got):\n%s", run.ID, diff)
	}
}

// ids returns the IDs of list, for compact comparisons.
func ids[T any](list []T, id func(T) string) []string {
	out := []string{}
	for _, x := range list {
		out = append(out, id(x))
	}
	return out
}

func assignmentIDs(t *testing.T, st *store.Store, p store.ListAssignmentsParams) []string {
	t.Helper()
	list, err := st.ListAssignments(t.Context(), p)
	if err != nil {
		t.Fatalf("ListAssignments(%+v): %v", p, err)
	}
	return ids(list, func(a store.Assignment) string { return a.ID })
}

var ignoreRaw = cmpopts.IgnoreFields(store.Assignment{}, "Raw")

func TestSnapshot_history(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, conn := newStore(t)
	a1 := allotment("a1", skuTeams, 3)
	day0 := snapshot{
		allotments:  []store.Allotment{a1},
		assignments: []store.Assignment{asg("x1", "a1", "u1"), asg("x2", "a1", "u2"), asg("x3", "a1", "g1")},
		waiting: []store.WaitingMember{{ID: "w1", AllotmentID: "a1", MemberID: "u3", MemberType: store.KindUser,
			WaitingSince: t0.Add(-time.Hour), Raw: []byte(`{"id":"w1"}`)}},
		errors: []store.AssignmentError{{ID: "e1", UserID: "u2", SKUID: skuTeams, Code: "MutuallyExclusiveViolation",
			Message: "conflicting plans", OccurredAt: t0.Add(-2 * time.Hour)}},
		users:  []store.User{user("u1", "Sales"), user("u2", "IT"), user("u3", "IT")},
		groups: map[string][]store.GroupMember{"g1": {{MemberID: "u1", MemberType: store.KindUser}}},
	}
	day0.assignments[2].AssigneeType = store.KindGroup
	run := applyAt(t, st, t0, day0)
	wantRunCounts(t, run, map[string]store.Changes{
		"allotments":        {Added: 1},
		"subscriptions":     {Added: 1},
		"assignments":       {Added: 3},
		"waiting_members":   {Added: 1},
		"assignment_errors": {Added: 1},
		"users":             {Added: 3},
		"group_members":     {Added: 1},
	})

	// The same tenant again: nothing is written.
	before := physical(t, conn, mirrorTables...)
	run = applyAt(t, st, t1, day0)
	wantRunCounts(t, run, map[string]store.Changes{
		"allotments":        {Unchanged: 1},
		"subscriptions":     {Unchanged: 1},
		"assignments":       {Unchanged: 3},
		"waiting_members":   {Unchanged: 1},
		"assignment_errors": {Unchanged: 1},
		"users":             {Unchanged: 3},
		"group_members":     {Unchanged: 1},
	})
	if diff := cmp.Diff(before, physical(t, conn, mirrorTables...)); diff != "" {
		t.Errorf("re-applying an unchanged snapshot wrote version rows (-before +after):\n%s", diff)
	}

	// t2: x1 loses a plan, x2 goes, x4 arrives; u1 moves to IT; the
	// waiting member is served, the error resolved, g1 grows.
	day2 := day0
	day2.assignments = []store.Assignment{asg("x1", "a1", "u1", "plan-1"), day0.assignments[2], asg("x4", "a1", "u3")}
	day2.waiting = []store.WaitingMember{}
	day2.errors = []store.AssignmentError{}
	day2.users = []store.User{user("u1", "IT"), user("u2", "IT"), user("u3", "IT")}
	day2.groups = map[string][]store.GroupMember{"g1": {{MemberID: "u1", MemberType: store.KindUser}, {MemberID: "u2", MemberType: store.KindUser}}}
	run = applyAt(t, st, t2, day2)
	wantRunCounts(t, run, map[string]store.Changes{
		"allotments":        {Unchanged: 1},
		"subscriptions":     {Unchanged: 1},
		"assignments":       {Added: 1, Changed: 1, Removed: 1, Unchanged: 1},
		"waiting_members":   {Removed: 1},
		"assignment_errors": {Removed: 1},
		"users":             {Changed: 1, Unchanged: 2},
		"group_members":     {Added: 1, Unchanged: 1},
	})

	// Current state.
	if got, want := assignmentIDs(t, st, store.ListAssignmentsParams{}), []string{"x1", "x3", "x4"}; !slices.Equal(got, want) {
		t.Errorf("current assignments = %v, want %v", got, want)
	}
	x1, err := st.GetAssignment(ctx, "x1", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	want := store.Assignment{ID: "x1", AllotmentID: "a1", AssigneeID: "u1", AssigneeType: store.KindUser,
		DisabledPlanIDs: []string{"plan-1"}, ObservedAt: t2, FirstObservedAt: t0,
		AssigneeUPN: "u1@contoso.example", AssigneeDisplayName: "User u1", AssigneeDepartment: "IT",
		SKUID: skuTeams, SKUPartNumber: a1.SKUPartNumber}
	if diff := cmp.Diff(want, x1, ignoreRaw); diff != "" {
		t.Errorf("GetAssignment(x1) (-want +got):\n%s", diff)
	}
	if _, err := st.GetAssignment(ctx, "x2", time.Time{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetAssignment(x2) after its removal: %v, want ErrNotFound", err)
	}

	// As of t1 (between the runs) the old state, joined as it was.
	x1old, err := st.GetAssignment(ctx, "x1", t1)
	if err != nil {
		t.Fatal(err)
	}
	want.DisabledPlanIDs, want.ObservedAt, want.AssigneeDepartment = nil, t0, "Sales"
	if diff := cmp.Diff(want, x1old, ignoreRaw); diff != "" {
		t.Errorf("GetAssignment(x1, t1) (-want +got):\n%s", diff)
	}
	if got, want := assignmentIDs(t, st, store.ListAssignmentsParams{AsOf: t1}), []string{"x1", "x2", "x3"}; !slices.Equal(got, want) {
		t.Errorf("assignments as of t1 = %v, want %v", got, want)
	}
	if got := assignmentIDs(t, st, store.ListAssignmentsParams{AsOf: t0.Add(-time.Second)}); len(got) != 0 {
		t.Errorf("assignments before the first run = %v, want none", got)
	}
	// Filters, current and as of.
	for _, tt := range []struct {
		p    store.ListAssignmentsParams
		want []string
	}{
		{store.ListAssignmentsParams{Department: "Sales", AsOf: t1}, []string{"x1"}},
		{store.ListAssignmentsParams{Department: "Sales"}, []string{}},
		{store.ListAssignmentsParams{Department: "IT"}, []string{"x1", "x4"}},
		{store.ListAssignmentsParams{AssigneeType: store.KindGroup}, []string{"x3"}},
		{store.ListAssignmentsParams{AssigneeID: "u2", AsOf: t1}, []string{"x2"}},
		{store.ListAssignmentsParams{AllotmentID: "a1", SKUID: skuTeams, PageSize: 2}, []string{"x1", "x3"}},
		{store.ListAssignmentsParams{AllotmentID: "a1", AfterID: "x3"}, []string{"x4"}},
		{store.ListAssignmentsParams{SKUID: skuE5}, []string{}},
	} {
		if got := assignmentIDs(t, st, tt.p); !slices.Equal(got, tt.want) {
			t.Errorf("ListAssignments(%+v) = %v, want %v", tt.p, got, tt.want)
		}
	}

	// Waiting members and errors: gone now, there as of t1.
	wm, err := st.ListWaitingMembers(ctx, store.ListWaitingMembersParams{AsOf: t1})
	if err != nil {
		t.Fatal(err)
	}
	wantWM := []store.WaitingMember{{ID: "w1", AllotmentID: "a1", MemberID: "u3", MemberType: store.KindUser,
		WaitingSince: t0.Add(-time.Hour), Raw: []byte(`{"id": "w1"}`), ObservedAt: t0,
		MemberUPN: "u3@contoso.example", MemberDisplayName: "User u3", MemberDepartment: "IT", SKUID: skuTeams,
		SKUPartNumber: "PART_f245", QueuePosition: 1}}
	if diff := cmp.Diff(wantWM, wm); diff != "" {
		t.Errorf("waiting members as of t1 (-want +got):\n%s", diff)
	}
	if wm, err := st.ListWaitingMembers(ctx, store.ListWaitingMembersParams{}); err != nil || len(wm) != 0 {
		t.Errorf("current waiting members = %v, %v; want none", wm, err)
	}
	errs, err := st.ListAssignmentErrors(ctx, store.ListAssignmentErrorsParams{AsOf: t1, Department: "IT"})
	if err != nil {
		t.Fatal(err)
	}
	wantErrs := []store.AssignmentError{{ID: "e1", UserID: "u2", SKUID: skuTeams, Code: "MutuallyExclusiveViolation",
		Message: "conflicting plans", OccurredAt: t0.Add(-2 * time.Hour), ObservedAt: t0,
		UserUPN: "u2@contoso.example", UserDisplayName: "User u2", UserDepartment: "IT", SKUPartNumber: "PART_f245"}}
	if diff := cmp.Diff(wantErrs, errs); diff != "" {
		t.Errorf("assignment errors as of t1 (-want +got):\n%s", diff)
	}

	// Users and group members.
	u1, err := st.GetUser(ctx, "U1@Contoso.Example", t1)
	if err != nil || u1.ID != "u1" || u1.Department != "Sales" || u1.ObservedAt != t0 {
		t.Errorf("GetUser(UPN, t1) = %+v, %v; want u1 in Sales since t0", u1, err)
	}
	if u1, err := st.GetUser(ctx, "u1", time.Time{}); err != nil || u1.Department != "IT" || u1.ObservedAt != t2 {
		t.Errorf("GetUser(u1) = %+v, %v; want u1 in IT since t2", u1, err)
	}
	if _, err := st.GetUser(ctx, "nobody", time.Time{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetUser(nobody) error = %v, want ErrNotFound", err)
	}
	users, err := st.ListUsers(ctx, 2, "u1", time.Time{})
	if got := ids(users, func(u store.User) string { return u.ID }); err != nil || !slices.Equal(got, []string{"u2", "u3"}) {
		t.Errorf("ListUsers(2, after u1) = %v, %v; want [u2 u3]", got, err)
	}
	for at, want := range map[time.Time][]string{t1: {"u1"}, {}: {"u1", "u2"}} {
		members, err := st.GroupMembersAsOf(ctx, "g1", at)
		if got := ids(members, func(m store.GroupMember) string { return m.MemberID }); err != nil || !slices.Equal(got, want) {
			t.Errorf("GroupMembersAsOf(g1, %v) = %v, %v; want %v", at, got, err, want)
		}
	}
	checkNoOverlaps(t, conn)
}

func TestSnapshot_partialLeavesOthersUntouched(t *testing.T) {
	t.Parallel()
	st, conn := newStore(t)
	applyAt(t, st, t0, snapshot{
		allotments:  []store.Allotment{allotment("a1", skuTeams, 1)},
		assignments: []store.Assignment{asg("x1", "a1", "u1")},
		users:       []store.User{user("u1", "IT")},
		groups:      map[string][]store.GroupMember{"g1": {{MemberID: "u1", MemberType: store.KindUser}}},
	})
	others := []string{"allotment_versions", "subscription_versions", "assignment_versions", "user_versions", "group_member_versions"}
	before := physical(t, conn, others...)
	run := applyAt(t, st, t1, snapshot{waiting: []store.WaitingMember{{ID: "w1", AllotmentID: "a1", MemberID: "u2", MemberType: store.KindUser}}})
	wantRunCounts(t, run, map[string]store.Changes{"waiting_members": {Added: 1}})
	if diff := cmp.Diff(before, physical(t, conn, others...)); diff != "" {
		t.Errorf("a snapshot of waiting members only touched other entities (-before +after):\n%s", diff)
	}
	if got := assignmentIDs(t, st, store.ListAssignmentsParams{}); !slices.Equal(got, []string{"x1"}) {
		t.Errorf("assignments after a partial snapshot = %v, want [x1]", got)
	}
	// Facts are still written for every current allotment.
	if n := queryInt(t, conn, `SELECT waiting FROM allotment_facts WHERE run_id = $1 AND allotment_id = 'a1'`, run.ID); n != 1 {
		t.Errorf("facts of the partial run: waiting = %d, want 1", n)
	}
}

func TestSnapshot_dedupeAndErrors(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, _ := newStore(t)

	// Graph listing one object twice (pages shifting): the later wins.
	run := applyAt(t, st, t0, snapshot{assignments: []store.Assignment{asg("x1", "a1", "u1"), asg("x2", "a1", "u2"), asg("x1", "a1", "u1", "p")}})
	wantRunCounts(t, run, map[string]store.Changes{"assignments": {Added: 2}})
	if x1, err := st.GetAssignment(ctx, "x1", time.Time{}); err != nil || !slices.Equal(x1.DisabledPlanIDs, []string{"p"}) {
		t.Errorf("duplicated x1 = %+v, %v; want the later entry", x1, err)
	}

	// A page that fails mid-stream leaves a snapshot that refuses to apply.
	sn, err := st.BeginSnapshot(ctx, t1)
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("graph: page 3: 503")
	failing := func(yield func(store.Assignment, error) bool) {
		if yield(asg("x9", "a1", "u9"), nil) {
			yield(store.Assignment{}, boom)
		}
	}
	if _, err := sn.StageAssignments(ctx, failing); !errors.Is(err, boom) {
		t.Errorf("StageAssignments with a failing page: error = %v, want %v", err, boom)
	}
	if _, err := sn.Apply(ctx, store.SyncRun{}, store.ApplyOptions{}); err == nil {
		t.Error("Apply after a failed stage succeeded")
	}
	if err := sn.Discard(ctx); err != nil {
		t.Errorf("Discard: %v", err)
	}
	// Invalid rows are refused before Postgres sees them.
	sn, err = st.BeginSnapshot(ctx, t1)
	if err != nil {
		t.Fatal(err)
	}
	bad := asg("x5", "a1", "u5")
	bad.Raw = []byte(`{not json`)
	if _, err := sn.StageAssignments(ctx, rows(bad)); err == nil {
		t.Error("StageAssignments with invalid raw JSON succeeded")
	}
	if got := assignmentIDs(t, st, store.ListAssignmentsParams{}); !slices.Equal(got, []string{"x1", "x2"}) {
		t.Errorf("assignments after failed stages = %v, want [x1 x2]", got)
	}
	// Fencing: a snapshot older than the newest applied run is refused.
	sn = stage(t, st, t0.Add(-time.Minute), snapshot{assignments: []store.Assignment{}})
	if _, err := sn.Apply(ctx, store.SyncRun{}, store.ApplyOptions{Force: true}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("Apply of an older snapshot: error = %v, want ErrConflict", err)
	}
	if got := assignmentIDs(t, st, store.ListAssignmentsParams{}); !slices.Equal(got, []string{"x1", "x2"}) {
		t.Errorf("assignments after a fenced apply = %v, want [x1 x2]", got)
	}
}

func TestSnapshot_discardAndIsolation(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, conn := newStore(t)
	applyAt(t, st, t0, snapshot{assignments: []store.Assignment{asg("x1", "a1", "u1")}, deltaLink: "link-0"})
	before := physical(t, conn, mirrorTables...)

	// While a snapshot is staged, readers (other connections) see the old
	// state; discarding it leaves no trace.
	sn := stage(t, st, t1, snapshot{assignments: []store.Assignment{asg("x2", "a1", "u2")}, deltaLink: "link-1"})
	if got := assignmentIDs(t, st, store.ListAssignmentsParams{}); !slices.Equal(got, []string{"x1"}) {
		t.Errorf("assignments while a snapshot is staged = %v, want [x1]", got)
	}
	if n := queryInt(t, conn, `SELECT count(*) FROM stage_assignments`); n != 1 {
		t.Errorf("stage_assignments holds %d rows while staging, want 1", n)
	}
	if err := sn.Discard(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sn.Discard(ctx); err != nil {
		t.Errorf("second Discard: %v", err)
	}
	if _, err := sn.Apply(ctx, store.SyncRun{}, store.ApplyOptions{}); err == nil {
		t.Error("Apply after Discard succeeded")
	}
	if n := queryInt(t, conn, `SELECT count(*) FROM stage_assignments`) + queryInt(t, conn, `SELECT count(*) FROM sync_snapshots`); n != 0 {
		t.Errorf("Discard left %d staging rows", n)
	}

	// A snapshot never applied nor discarded (a crashed sync) is cleared
	// by the next BeginSnapshot, and can no longer apply.
	abandoned := stage(t, st, t1, snapshot{assignments: []store.Assignment{asg("x3", "a1", "u3")}})
	next := stage(t, st, t2, snapshot{})
	if n := queryInt(t, conn, `SELECT count(*) FROM stage_assignments`); n != 0 {
		t.Errorf("BeginSnapshot left %d staged rows of an abandoned snapshot", n)
	}
	if _, err := abandoned.Apply(ctx, store.SyncRun{}, store.ApplyOptions{}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("Apply of a superseded snapshot: error = %v, want ErrConflict", err)
	}
	if err := next.Discard(ctx); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, physical(t, conn, mirrorTables...)); diff != "" {
		t.Errorf("discarded and abandoned snapshots changed versions (-before +after):\n%s", diff)
	}
	if link, err := st.UsersDeltaLink(ctx); err != nil || link != "link-0" {
		t.Errorf("UsersDeltaLink = %q, %v; want link-0 (the discarded snapshot's link must not persist)", link, err)
	}
	runs, err := st.ListSyncRuns(ctx, 0, 0)
	if err != nil || len(runs) != 1 {
		t.Errorf("ListSyncRuns = %d runs, %v; want only the first", len(runs), err)
	}
}

func TestSnapshot_massDeletionGuard(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, conn := newStore(t)
	var assignments []store.Assignment
	var users []store.User
	for i := range 20 {
		assignments = append(assignments, asg(fmt.Sprintf("x%02d", i), "a1", fmt.Sprintf("u%02d", i)))
		users = append(users, user(fmt.Sprintf("u%02d", i), "IT"))
	}
	applyAt(t, st, t0, snapshot{assignments: assignments, users: users, deltaLink: "link-0"})
	before := physical(t, conn, mirrorTables...)

	for _, tt := range []struct {
		name string
		s    snapshot
	}{
		{"no assignments listed", snapshot{assignments: []store.Assignment{}, users: users, deltaLink: "link-1"}},
		{"5 of 20 assignments gone", snapshot{assignments: assignments[5:], deltaLink: "link-1"}},
		{"half the users gone", snapshot{users: users[:10]}},
		{"a delta removing 5 users", snapshot{usersDelta: true, removals: []string{"u00", "u01", "u02", "u03", "u04"}}},
		{"20% and a bit, custom threshold", snapshot{assignments: assignments[2:], opts: store.ApplyOptions{MaxRemoveFraction: 0.05}}},
	} {
		held, err := stage(t, st, t1, tt.s).Apply(ctx, store.SyncRun{GraphRequests: 9}, tt.s.opts)
		if !errors.Is(err, store.ErrMassDeletion) {
			t.Errorf("%s: Apply error = %v, want ErrMassDeletion", tt.name, err)
			continue
		}
		if held.Outcome != store.OutcomeHeld || held.ID == 0 || held.Error == "" || held.GraphRequests != 9 {
			t.Errorf("%s: held run = %+v, want a recorded held run with its error", tt.name, held)
		}
	}
	if diff := cmp.Diff(before, physical(t, conn, mirrorTables...)); diff != "" {
		t.Errorf("held runs changed versions (-before +after):\n%s", diff)
	}
	if link, err := st.UsersDeltaLink(ctx); err != nil || link != "link-0" {
		t.Errorf("UsersDeltaLink after held runs = %q, %v; want link-0", link, err)
	}
	if n := queryInt(t, conn, `SELECT count(*) FROM sync_runs WHERE outcome = 'held'`); n != 5 {
		t.Errorf("%d held runs recorded, want 5", n)
	}
	if n := queryInt(t, conn, `SELECT count(*) FROM stage_assignments`); n != 0 {
		t.Errorf("held runs left %d staged rows", n)
	}

	// 4 of 20 (20%) is allowed; forcing lets everything through.
	run := applyAt(t, st, t1, snapshot{assignments: assignments[4:]})
	wantRunCounts(t, run, map[string]store.Changes{"assignments": {Removed: 4, Unchanged: 16}})
	run = applyAt(t, st, t2, snapshot{assignments: []store.Assignment{}, opts: store.ApplyOptions{Force: true}, deltaLink: "link-2"})
	wantRunCounts(t, run, map[string]store.Changes{"assignments": {Removed: 16}})
	if got := assignmentIDs(t, st, store.ListAssignmentsParams{}); len(got) != 0 {
		t.Errorf("assignments after a forced empty run = %v, want none", got)
	}
	if link, err := st.UsersDeltaLink(ctx); err != nil || link != "link-2" {
		t.Errorf("UsersDeltaLink after a forced run = %q, %v; want link-2", link, err)
	}
	// Fewer than 10 current rows: removing all is not held.
	applyAt(t, st, t3, snapshot{assignments: assignments[:3]})
	applyAt(t, st, t4, snapshot{assignments: []store.Assignment{}})
	checkNoOverlaps(t, conn)
}

func TestSnapshot_usersFullAndDelta(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, conn := newStore(t)
	if link, err := st.UsersDeltaLink(ctx); err != nil || link != "" {
		t.Errorf("UsersDeltaLink before any run = %q, %v; want empty", link, err)
	}
	run := applyAt(t, st, t0, snapshot{users: []store.User{user("u1", "IT"), user("u2", "IT"), user("u3", "Sales")}, deltaLink: "d1"})
	wantRunCounts(t, run, map[string]store.Changes{"users": {Added: 3}})

	// A delta: u1 changes, u4 arrives, u2 leaves, u3 is not mentioned.
	run = applyAt(t, st, t1, snapshot{users: []store.User{user("u1", "Sales"), user("u4", "IT")}, usersDelta: true,
		removals: []string{"u2", "u-never-seen"}, deltaLink: "d2"})
	wantRunCounts(t, run, map[string]store.Changes{"users": {Added: 1, Changed: 1, Removed: 1}})
	users, err := st.ListUsers(ctx, 0, "", time.Time{})
	if got := ids(users, func(u store.User) string { return u.ID + "/" + u.Department }); err != nil ||
		!slices.Equal(got, []string{"u1/Sales", "u3/Sales", "u4/IT"}) {
		t.Errorf("users after the delta = %v, %v", got, err)
	}
	if u3, err := st.GetUser(ctx, "u3", time.Time{}); err != nil || u3.ObservedAt != t0 {
		t.Errorf("u3 = %+v, %v; want untouched since t0", u3, err)
	}
	if n := queryInt(t, conn, `SELECT count(*) FROM user_versions`); n != 5 {
		t.Errorf("user_versions has %d rows after the delta, want 5 (3 + a new version of u1 + u4)", n)
	}
	if link, err := st.UsersDeltaLink(ctx); err != nil || link != "d2" {
		t.Errorf("UsersDeltaLink = %q, %v; want d2", link, err)
	}
	users, err = st.ListUsers(ctx, 0, "", t0)
	if got := ids(users, func(u store.User) string { return u.ID + "/" + u.Department }); err != nil ||
		!slices.Equal(got, []string{"u1/IT", "u2/IT", "u3/Sales"}) {
		t.Errorf("users as of t0 = %v, %v", got, err)
	}
	// A full listing removes the users it does not list.
	run = applyAt(t, st, t2, snapshot{users: []store.User{user("u1", "Sales"), user("u4", "IT")}})
	wantRunCounts(t, run, map[string]store.Changes{"users": {Removed: 1, Unchanged: 2}})
	// Mixing full and delta in one snapshot is refused.
	sn, err := st.BeginSnapshot(ctx, t3)
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Discard(ctx)
	if _, err := sn.StageUsers(ctx, true, rows[store.User]()); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.StageUsers(ctx, false, rows[store.User]()); err == nil {
		t.Error("StageUsers(delta) after StageUsers(full) succeeded")
	}
	checkNoOverlaps(t, conn)
}

func TestSnapshot_groupMembers(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, conn := newStore(t)
	m := func(id string) store.GroupMember { return store.GroupMember{MemberID: id, MemberType: store.KindUser} }
	run := applyAt(t, st, t0, snapshot{groups: map[string][]store.GroupMember{"g1": {m("u1"), m("u2")}, "g2": {m("u3")}}})
	wantRunCounts(t, run, map[string]store.Changes{"group_members": {Added: 3}})
	// g2 no longer holds an assignment, so it is not staged: closed.
	run = applyAt(t, st, t1, snapshot{groups: map[string][]store.GroupMember{"g1": {m("u1"), m("u4")}, "g3": {}}})
	wantRunCounts(t, run, map[string]store.Changes{"group_members": {Added: 1, Removed: 2, Unchanged: 1}})
	// A run that stages no groups leaves memberships alone.
	applyAt(t, st, t2, snapshot{assignments: []store.Assignment{}})
	for _, tt := range []struct {
		group string
		at    time.Time
		want  []string
	}{
		{"g1", t0, []string{"u1", "u2"}},
		{"g1", time.Time{}, []string{"u1", "u4"}},
		{"g2", t0, []string{"u3"}},
		{"g2", time.Time{}, []string{}},
	} {
		members, err := st.GroupMembersAsOf(ctx, tt.group, tt.at)
		got := ids(members, func(m store.GroupMember) string { return m.MemberID })
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("GroupMembersAsOf(%s, %v) = %v, %v; want %v", tt.group, tt.at, got, err, tt.want)
		}
		for _, x := range members {
			if x.GroupID != tt.group || x.MemberType != store.KindUser {
				t.Errorf("member %+v: want group %s, type user", x, tt.group)
			}
		}
	}
	checkNoOverlaps(t, conn)
}

func TestSnapshot_waitingQueueAndSubscriptions(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, _ := newStore(t)
	a1, a2 := allotment("a1", skuTeams, 100), allotment("a2", skuE5, 100)
	a2.Subscriptions = append(a2.Subscriptions, a1.Subscriptions[0]) // one subscription backing both
	a2.Raw = rawOf(a2)
	wm := func(id, allot, member string, since time.Time) store.WaitingMember {
		return store.WaitingMember{ID: id, AllotmentID: allot, MemberID: member, MemberType: store.KindUser, WaitingSince: since}
	}
	applyAt(t, st, t0, snapshot{
		allotments: []store.Allotment{a1, a2},
		waiting: []store.WaitingMember{
			wm("w1", "a1", "u1", t0.Add(-time.Minute)), wm("w2", "a1", "u2", t0.Add(-time.Hour)),
			wm("w3", "a2", "u3", t0), wm("w4", "a1", "u4", time.Time{}),
		},
		users: []store.User{user("u1", "IT"), user("u2", "Sales")},
	})
	list, err := st.ListWaitingMembers(ctx, store.ListWaitingMembersParams{})
	if err != nil {
		t.Fatal(err)
	}
	got := ids(list, func(w store.WaitingMember) string { return fmt.Sprintf("%s@%s#%d", w.ID, w.SKUID[:4], w.QueuePosition) })
	if want := []string{"w1@f245#2", "w2@f245#1", "w3@06eb#1", "w4@f245#3"}; !slices.Equal(got, want) {
		t.Errorf("waiting members = %v, want %v", got, want)
	}
	for _, tt := range []struct {
		p    store.ListWaitingMembersParams
		want []string
	}{
		{store.ListWaitingMembersParams{AllotmentID: "a1", AfterID: "w1", PageSize: 1}, []string{"w2"}},
		{store.ListWaitingMembersParams{SKUID: skuE5}, []string{"w3"}},
		{store.ListWaitingMembersParams{Department: "Sales"}, []string{"w2"}},
		{store.ListWaitingMembersParams{MemberID: "u4"}, []string{"w4"}},
	} {
		list, err := st.ListWaitingMembers(ctx, tt.p)
		if got := ids(list, func(w store.WaitingMember) string { return w.ID }); err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("ListWaitingMembers(%+v) = %v, %v; want %v", tt.p, got, err, tt.want)
		}
	}
	if list, err := st.ListWaitingMembers(ctx, store.ListWaitingMembersParams{Department: "Sales"}); err == nil && len(list) == 1 && list[0].QueuePosition != 1 {
		t.Errorf("w2's position under a department filter = %d, want 1 (counted over the whole allotment)", list[0].QueuePosition)
	}

	// Later arrivals, a tie on waiting_since (broken by id) and an unknown
	// waiting_since (last): a member's own position, asked alone (as the
	// license status does), is its place in the whole queue, now and as of
	// an earlier time.
	applyAt(t, st, t1, snapshot{
		allotments: []store.Allotment{a1, a2},
		waiting: []store.WaitingMember{
			wm("w1", "a1", "u1", t0.Add(-time.Minute)), wm("w2", "a1", "u2", t0.Add(-time.Hour)),
			wm("w3", "a2", "u3", t0), wm("w4", "a1", "u4", time.Time{}),
			wm("w0", "a1", "u5", t0.Add(-time.Minute)), wm("w9", "a1", "u6", time.Time{}), wm("w5", "a2", "u7", t0.Add(-time.Second)),
		},
		users: []store.User{user("u1", "IT"), user("u2", "Sales")},
	})
	for _, tt := range []struct {
		asOf time.Time
		want map[string]int // member → position
	}{
		{time.Time{}, map[string]int{"u2": 1, "u5": 2, "u1": 3, "u4": 4, "u6": 5, "u7": 1, "u3": 2}},
		{t0, map[string]int{"u2": 1, "u1": 2, "u4": 3, "u3": 1}},
	} {
		all, err := st.ListWaitingMembers(ctx, store.ListWaitingMembersParams{AsOf: tt.asOf})
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != len(tt.want) {
			t.Errorf("as of %v: %d waiting members, want %d", tt.asOf, len(all), len(tt.want))
		}
		for _, w := range all {
			if w.QueuePosition != tt.want[w.MemberID] {
				t.Errorf("as of %v: %s (member %s) in the whole list at position %d, want %d", tt.asOf, w.ID, w.MemberID, w.QueuePosition, tt.want[w.MemberID])
			}
			alone, err := st.ListWaitingMembers(ctx, store.ListWaitingMembersParams{AsOf: tt.asOf, MemberID: w.MemberID})
			if err != nil || len(alone) != 1 || alone[0].ID != w.ID || alone[0].QueuePosition != w.QueuePosition {
				t.Errorf("as of %v: member %s asked alone: %+v, %v; want %s at position %d", tt.asOf, w.MemberID, alone, err, w.ID, w.QueuePosition)
			}
		}
	}

	subs, err := st.ListSubscriptions(ctx, store.ListSubscriptionsParams{})
	if err != nil {
		t.Fatal(err)
	}
	want := []store.SubscriptionRow{
		{SubscriptionID: "sub-a1", AllotmentIDs: []string{"a1", "a2"}, SKUIDs: []string{skuTeams, skuE5},
			SKUPartNumbers: []string{a1.SKUPartNumber, a2.SKUPartNumber}, State: "active", StartDate: "2025-07-18",
			NextLifecycleDate: "2026-09-30", Tags: []string{"none"}, ObservedAt: t0},
		{SubscriptionID: "sub-a2", AllotmentIDs: []string{"a2"}, SKUIDs: []string{skuE5},
			SKUPartNumbers: []string{a2.SKUPartNumber}, State: "active", StartDate: "2025-07-18",
			NextLifecycleDate: "2026-09-30", Tags: []string{"none"}, ObservedAt: t0},
	}
	if diff := cmp.Diff(want, subs); diff != "" {
		t.Errorf("ListSubscriptions (-want +got):\n%s", diff)
	}
	// The subscription lapses at t1.
	a1.Subscriptions[0].State = "warning"
	a1.Raw = rawOf(a1)
	a2.Subscriptions[1].State = "warning"
	a2.Raw = rawOf(a2)
	applyAt(t, st, t1, snapshot{allotments: []store.Allotment{a1, a2}})
	for _, tt := range []struct {
		p    store.ListSubscriptionsParams
		want []string
	}{
		{store.ListSubscriptionsParams{State: "warning"}, []string{"sub-a1"}},
		{store.ListSubscriptionsParams{State: "warning", AsOf: t0}, []string{}},
		{store.ListSubscriptionsParams{SKUID: skuTeams}, []string{"sub-a1"}},
		{store.ListSubscriptionsParams{SKUID: skuE5, AfterID: "sub-a1"}, []string{"sub-a2"}},
		{store.ListSubscriptionsParams{PageSize: 1}, []string{"sub-a1"}},
	} {
		list, err := st.ListSubscriptions(ctx, tt.p)
		if got := ids(list, func(s store.SubscriptionRow) string { return s.SubscriptionID }); err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("ListSubscriptions(%+v) = %v, %v; want %v", tt.p, got, err, tt.want)
		}
	}
}

func TestStore_AllotmentHistory(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, _ := newStore(t)
	day1 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	day2 := day1.AddDate(0, 0, 1)
	at := []time.Time{day1.Add(9 * time.Hour), day1.Add(18 * time.Hour), day2.Add(8 * time.Hour)}
	var runs []store.SyncRun
	for i, when := range at {
		var waiting []store.WaitingMember
		for j := range i {
			waiting = append(waiting, store.WaitingMember{ID: fmt.Sprintf("w%d", j), AllotmentID: "a1", MemberID: "u", MemberType: store.KindUser})
		}
		runs = append(runs, applyAt(t, st, when, snapshot{
			allotments: []store.Allotment{allotment("a1", skuTeams, int32(10+i))},
			waiting:    waiting,
			errors:     []store.AssignmentError{{ID: "e1", UserID: "u", SKUID: skuTeams}},
		}))
	}
	point := func(i int, daily bool) store.AllotmentPoint {
		p := store.AllotmentPoint{At: at[i], RunID: runs[i].ID, Allotted: 100, Consumed: int32(10 + i), Waiting: int32(i), Errors: 1}
		if daily {
			p.At = time.Date(at[i].Year(), at[i].Month(), at[i].Day(), 0, 0, 0, 0, time.UTC)
			p.Day = p.At.Format(time.DateOnly)
		}
		return p
	}
	for _, tt := range []struct {
		name string
		p    store.HistoryParams
		want []store.AllotmentPoint
	}{
		{"per run", store.HistoryParams{AllotmentID: "a1"}, []store.AllotmentPoint{point(0, false), point(1, false), point(2, false)}},
		{"per run, from", store.HistoryParams{AllotmentID: "a1", From: at[1]}, []store.AllotmentPoint{point(1, false), point(2, false)}},
		{"per run, to", store.HistoryParams{AllotmentID: "a1", To: at[1]}, []store.AllotmentPoint{point(0, false)}},
		{"per run, paged", store.HistoryParams{AllotmentID: "a1", PageSize: 1, After: at[0]}, []store.AllotmentPoint{point(1, false)}},
		{"daily: the last run of each day", store.HistoryParams{AllotmentID: "a1", Daily: true}, []store.AllotmentPoint{point(1, true), point(2, true)}},
		{"daily, to a day's start", store.HistoryParams{AllotmentID: "a1", Daily: true, To: day2}, []store.AllotmentPoint{point(1, true)}},
		{"daily, from mid-day", store.HistoryParams{AllotmentID: "a1", Daily: true, From: day2.Add(time.Hour)}, []store.AllotmentPoint{point(2, true)}},
		{"daily, paged", store.HistoryParams{AllotmentID: "a1", Daily: true, After: day1}, []store.AllotmentPoint{point(2, true)}},
		{"unknown allotment", store.HistoryParams{AllotmentID: "zz", Daily: true}, nil},
	} {
		got, err := st.AllotmentHistory(ctx, tt.p)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, diff)
		}
	}
}

// benchAssignments yields n assignments shaped like Graph's, generated on
// the fly so the benchmark's own memory stays flat.
func benchAssignments(n int) iter.Seq2[store.Assignment, error] {
	return func(yield func(store.Assignment, error) bool) {
		for i := range n {
			id := fmt.Sprintf("0b5e1c2d-%04x-4a6f-9c1e-%012x", i%500, i)
			user := fmt.Sprintf("7f3a%04x-2c4b-4d8e-a1b2-%012x", i%7, i)
			raw := fmt.Appendf(nil, `{"@odata.type":"#microsoft.graph.cloudLicensing.assignment","id":%q,`+
				`"disabledServicePlanIds":["f4f2f6de-6830-442b-a433-e92249faebe2"],`+
				`"assignedTo":{"@odata.type":"#microsoft.graph.user","id":%q},"allotmentId":"a%03d"}`, id, user, i%200)
			a := store.Assignment{ID: id, AllotmentID: fmt.Sprintf("a%03d", i%200), AssigneeID: user,
				AssigneeType: store.KindUser, DisabledPlanIDs: []string{"f4f2f6de-6830-442b-a433-e92249faebe2"}, Raw: raw}
			if !yield(a, nil) {
				return
			}
		}
	}
}

// BenchmarkSnapshot_Apply250kAssignments measures staging (COPY) and
// applying 250,000 assignments: "first" into an empty mirror (every row a
// new version), "unchanged" again over the same tenant (no version
// written). It reports the staging and apply seconds separately.
func BenchmarkSnapshot_Apply250kAssignments(b *testing.B) {
	const n = 250_000
	run := func(b *testing.B, st *store.Store, at time.Time) (stage, apply time.Duration) {
		ctx := b.Context()
		start := time.Now()
		sn, err := st.BeginSnapshot(ctx, at)
		if err != nil {
			b.Fatal(err)
		}
		if got, err := sn.StageAssignments(ctx, benchAssignments(n)); err != nil || got != n {
			b.Fatalf("StageAssignments = %d, %v", got, err)
		}
		staged := time.Now()
		if _, err := sn.Apply(ctx, store.SyncRun{}, store.ApplyOptions{}); err != nil {
			b.Fatal(err)
		}
		return staged.Sub(start), time.Since(staged)
	}
	report := func(b *testing.B, stage, apply time.Duration, runs int) {
		b.ReportMetric(stage.Seconds()/float64(runs), "stage-s/op")
		b.ReportMetric(apply.Seconds()/float64(runs), "apply-s/op")
	}
	b.Run("first", func(b *testing.B) {
		var stage, apply time.Duration
		runs := 0
		for b.Loop() {
			b.StopTimer()
			st := storetest.New(b)
			b.StartTimer()
			s, a := run(b, st, t0)
			stage, apply, runs = stage+s, apply+a, runs+1
		}
		report(b, stage, apply, runs)
	})
	b.Run("unchanged", func(b *testing.B) {
		st := storetest.New(b)
		at := t0
		run(b, st, at)
		var stage, apply time.Duration
		runs := 0
		for b.Loop() {
			at = at.Add(time.Minute)
			s, a := run(b, st, at)
			stage, apply, runs = stage+s, apply+a, runs+1
		}
		report(b, stage, apply, runs)
	})
}

// TestStore_readsFillJoinedFields: what reads join from other tables is
// filled, never left as an empty look-alike: an allotment's count of
// waiting members (the same members ListWaitingMembers lists) and its
// subscriptions' other allotments and observation time; waiting members'
// and assignment errors' SKU part numbers and display names; and a group
// member waiting in an allotment's waiting room holds no seat of it.
func TestStore_readsFillJoinedFields(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, _ := newStore(t)
	a1, a2 := allotment("a1", skuTeams, 100), allotment("a2", skuE5, 100)
	a2.Subscriptions = append(a2.Subscriptions, a1.Subscriptions[0]) // one subscription backing both
	a2.Raw = rawOf(a2)
	wm := func(id, allot, member string) store.WaitingMember {
		return store.WaitingMember{ID: id, AllotmentID: allot, MemberID: member, MemberType: store.KindUser}
	}
	applyAt(t, st, t0, snapshot{
		allotments:  []store.Allotment{a1, a2},
		assignments: []store.Assignment{groupAsg("ga", "a1", "g1"), groupAsg("gb", "a2", "g1")},
		groups:      map[string][]store.GroupMember{"g1": {{MemberID: "u1", MemberType: store.KindUser}}},
		waiting:     []store.WaitingMember{wm("w1", "a1", "u1"), wm("w2", "a1", "u2")},
		errors:      []store.AssignmentError{{ID: "e1", UserID: "u1", SKUID: skuE5, Code: "CountViolation", Message: "full"}},
		users:       []store.User{user("u1", "IT"), user("u2", "Sales")},
	})
	applyAt(t, st, t1, snapshot{waiting: []store.WaitingMember{wm("w2", "a1", "u2")}})

	for _, tt := range []struct {
		asOf time.Time
		want map[string]int32
	}{{time.Time{}, map[string]int32{"a1": 1, "a2": 0}}, {t0, map[string]int32{"a1": 2, "a2": 0}}} {
		for id, n := range tt.want {
			var a store.Allotment
			var err error
			if tt.asOf.IsZero() {
				a, err = st.GetAllotment(ctx, id)
			} else {
				a, err = st.AllotmentAsOf(ctx, id, tt.asOf)
			}
			if err != nil {
				t.Fatal(err)
			}
			listed, err := st.ListWaitingMembers(ctx, store.ListWaitingMembersParams{AllotmentID: id, AsOf: tt.asOf})
			if err != nil {
				t.Fatal(err)
			}
			if a.WaitingMembers != n || int(a.WaitingMembers) != len(listed) {
				t.Errorf("allotment %s as of %v: WaitingMembers = %d, want %d (%d listed)", id, tt.asOf, a.WaitingMembers, n, len(listed))
			}
		}
	}
	list, err := st.ListAllotments(ctx, store.ListAllotmentsParams{})
	if err != nil {
		t.Fatal(err)
	}
	type subLinks struct {
		ID                                   string
		AllotmentIDs, SKUIDs, SKUPartNumbers []string
		ObservedAt                           time.Time
	}
	got := map[string][]subLinks{}
	for _, a := range list {
		for _, s := range a.Subscriptions {
			got[a.ID] = append(got[a.ID], subLinks{s.SubscriptionID, s.AllotmentIDs, s.SKUIDs, s.SKUPartNumbers, s.ObservedAt})
		}
	}
	both := subLinks{"sub-a1", []string{"a1", "a2"}, []string{skuTeams, skuE5}, []string{a1.SKUPartNumber, a2.SKUPartNumber}, t0}
	want := map[string][]subLinks{
		"a1": {both},
		"a2": {{"sub-a2", []string{"a2"}, []string{skuE5}, []string{a2.SKUPartNumber}, t0}, both},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("allotments' subscriptions (-want +got):\n%s", diff)
	}

	waiting, err := st.ListWaitingMembers(ctx, store.ListWaitingMembersParams{AsOf: t0})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range waiting {
		if w.SKUPartNumber != a1.SKUPartNumber || w.MemberDisplayName != "User "+w.MemberID {
			t.Errorf("waiting member %s: SKUPartNumber %q, MemberDisplayName %q; want %q, %q", w.ID, w.SKUPartNumber,
				w.MemberDisplayName, a1.SKUPartNumber, "User "+w.MemberID)
		}
	}
	errs, err := st.ListAssignmentErrors(ctx, store.ListAssignmentErrorsParams{})
	if err != nil {
		t.Fatal(err)
	}
	if len(errs) != 1 || errs[0].SKUPartNumber != a2.SKUPartNumber || errs[0].UserDisplayName != "User u1" {
		t.Errorf("assignment errors = %+v, want e1 with SKUPartNumber %q and UserDisplayName %q", errs, a2.SKUPartNumber, "User u1")
	}

	// u1 waits in a1 until t1 (then its seat comes through g1), and holds
	// a2 through g1 throughout.
	for _, tt := range []struct {
		asOf time.Time
		want []string
	}{{t0, []string{"a2"}}, {time.Time{}, []string{"a1", "a2"}}} {
		seats, err := st.UserSeats(ctx, "u1", tt.asOf)
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(seats, func(s store.Seat) string { return s.AllotmentID }); !slices.Equal(got, tt.want) {
			t.Errorf("UserSeats(u1) as of %v = %v, want %v", tt.asOf, got, tt.want)
		}
	}
}

// TestSnapshot_groupNames: Apply keeps each group assignee's current
// name outside the assignments' versions: reads name the group, a rename
// versions nothing and shows in dated reads too, an empty name keeps the
// known one, and a group no longer assigned keeps its last name.
func TestSnapshot_groupNames(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, conn := newStore(t)
	toGroup := func(id, group, name string) store.Assignment {
		a := asg(id, "al1", group)
		a.AssigneeType, a.AssigneeDisplayName = store.KindGroup, name
		return a
	}
	named := func(name string) []store.Assignment {
		// The group listed twice with two names: the later one wins.
		return []store.Assignment{toGroup("a1", "g1", "stale"), toGroup("a2", "g1", name), asg("a3", "al1", "u2")}
	}
	members := map[string][]store.GroupMember{"g1": {{MemberID: "u1", MemberType: store.KindUser}}}
	wantName := func(label string, at time.Time, want string) {
		t.Helper()
		a, err := st.GetAssignment(ctx, "a1", at)
		if err != nil || a.AssigneeDisplayName != want {
			t.Errorf("%s: GetAssignment(a1, %v) named %q (%v), want %q", label, at, a.AssigneeDisplayName, err, want)
		}
		seats, err := st.UserSeats(ctx, "u1", at)
		if err != nil || len(seats) == 0 || seats[0].GroupDisplayName != want {
			t.Errorf("%s: UserSeats(u1, %v) = %+v (%v), want seats through g1 named %q", label, at, seats, err, want)
		}
	}

	applyAt(t, st, t0, snapshot{assignments: named("Sales"), groups: members})
	wantName("first run", time.Time{}, "Sales")
	before := physical(t, conn, "assignment_versions")

	run := applyAt(t, st, t1, snapshot{assignments: named("Sales EMEA"), groups: members})
	wantRunCounts(t, run, map[string]store.Changes{"assignments": {Unchanged: 3}, "group_members": {Unchanged: 1}})
	if after := physical(t, conn, "assignment_versions"); !slices.Equal(before, after) {
		t.Errorf("a rename wrote assignment versions: %v, then %v", before, after)
	}
	wantName("renamed, now", time.Time{}, "Sales EMEA")
	wantName("renamed, as of before", t0, "Sales EMEA") // names are not history

	unnamed := []store.Assignment{toGroup("a1", "g1", ""), toGroup("a2", "g1", ""), asg("a3", "al1", "u2")}
	applyAt(t, st, t2, snapshot{assignments: unnamed, groups: members})
	wantName("no name listed", time.Time{}, "Sales EMEA")

	applyAt(t, st, t3, snapshot{assignments: []store.Assignment{asg("a3", "al1", "u2")}, groups: map[string][]store.GroupMember{}})
	wantName("no longer assigned, as of before", t0, "Sales EMEA")
	checkNoOverlaps(t, conn)
}
