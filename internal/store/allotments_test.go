package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5"

	"github.com/seatledger/seatledger/internal/store"
	"github.com/seatledger/seatledger/internal/store/storetest"
)

var (
	t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t1 = t0.Add(time.Hour)
	t2 = t1.Add(time.Hour)
	t3 = t2.Add(time.Hour)
	t4 = t3.Add(time.Hour)
)

const (
	skuTeams = "f245ecc8-75af-4f8e-b61f-27d8114de5f3"
	skuE5    = "06ebc4ee-1bb5-47dd-8120-11324bc54e06"
)

// allotment returns an allotment shaped like Graph's, with a Raw that
// matches its fields.
func allotment(id, sku string, consumed int32) store.Allotment {
	a := store.Allotment{
		ID:            id,
		SKUID:         sku,
		SKUPartNumber: "PART_" + sku[:4],
		AllottedUnits: 100,
		ConsumedUnits: consumed,
		AssignableTo:  []string{"user", "group"},
		Services: []store.Service{
			{PlanID: "f4f2f6de-6830-442b-a433-e92249faebe2", PlanName: "TeamsEss", AssignableTo: []string{"user", "group"}},
		},
		Subscriptions: []store.Subscription{
			{SubscriptionID: "sub-" + id, State: "active", StartDate: "2025-07-18", NextLifecycleDate: "2026-09-30", Tags: []string{"none"}},
		},
	}
	a.Raw = rawOf(a)
	return a
}

// rawOf renders a as Graph would send it.
func rawOf(a store.Allotment) []byte {
	var subs []map[string]any
	for _, s := range a.Subscriptions {
		subs = append(subs, map[string]any{
			"@odata.type":       "#microsoft.graph.cloudLicensing.subscription",
			"subscriptionId":    s.SubscriptionID,
			"state":             s.State,
			"startDate":         s.StartDate + "T00:00:00.000Z",
			"nextLifecycleDate": s.NextLifecycleDate + "T00:00:00.000Z",
			"tags":              strings.Join(s.Tags, ","),
		})
	}
	b, _ := json.Marshal(map[string]any{
		"@odata.type":   "#microsoft.graph.cloudLicensing.allotment",
		"id":            a.ID,
		"skuId":         a.SKUID,
		"skuPartNumber": a.SKUPartNumber,
		"allottedUnits": a.AllottedUnits,
		"consumedUnits": a.ConsumedUnits,
		"assignableTo":  strings.Join(a.AssignableTo, ","),
		"subscriptions": subs,
	})
	return b
}

// jsonEqual compares Raw fields by meaning: jsonb normalizes spacing and
// key order.
var jsonEqual = cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Raw" },
	cmp.Comparer(func(a, b []byte) bool {
		if a == nil || b == nil {
			return a == nil && b == nil
		}
		var x, y any
		if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
			return bytes.Equal(a, b)
		}
		return cmp.Equal(x, y)
	}))

// ignoreSubscriptionLinks leaves out of a comparison of allotments what a
// read joins to their subscriptions from the other allotments
// (TestStore_readsFillJoinedFields checks those).
var ignoreSubscriptionLinks = cmpopts.IgnoreFields(store.Subscription{}, "AllotmentIDs", "SKUIDs", "SKUPartNumbers", "ObservedAt")

// observed returns a as a read returns it: with ObservedAt set.
func observed(a store.Allotment, at time.Time) store.Allotment {
	a.ObservedAt = at
	return a
}

// versionRows returns every version row's physical identity: an UPDATE or
// re-INSERT changes it, so equal results mean nothing was written.
func versionRows(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	const q = `
		SELECT 'a ' || ctid::text || ' ' || xmin::text FROM allotment_versions
		UNION ALL
		SELECT 's ' || ctid::text || ' ' || xmin::text FROM subscription_versions
		ORDER BY 1`
	rows, _ := conn.Query(t.Context(), q)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// applyAllotments applies a run that stages only allotments (a snapshot
// begun at run.StartedAt), as a sync whose other listings are not staged.
func applyAllotments(ctx context.Context, st *store.Store, run store.SyncRun, snapshot []store.Allotment) (store.SyncRun, error) {
	sn, err := st.BeginSnapshot(ctx, run.StartedAt)
	if err != nil {
		return store.SyncRun{}, err
	}
	if _, err := sn.StageAllotments(ctx, rows(snapshot...)); err != nil {
		return store.SyncRun{}, errors.Join(err, sn.Discard(ctx))
	}
	return sn.Apply(ctx, run, store.ApplyOptions{})
}

func apply(t *testing.T, st *store.Store, at time.Time, snapshot ...store.Allotment) store.SyncRun {
	t.Helper()
	run, err := applyAllotments(t.Context(), st, store.SyncRun{StartedAt: at, Outcome: store.OutcomeRunning, GraphRequests: 3}, snapshot)
	if err != nil {
		t.Fatalf("applying allotments at %v: %v", at, err)
	}
	return run
}

func wantCounts(t *testing.T, run store.SyncRun, allotments, subscriptions store.Changes) {
	t.Helper()
	want := map[string]store.Changes{"allotments": allotments, "subscriptions": subscriptions}
	if diff := cmp.Diff(want, run.Counts); diff != "" {
		t.Errorf("run %d (started %v) counts (-want +got):\n%s", run.ID, run.StartedAt, diff)
	}
}

func TestStore_applyAllotments_history(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, conn := newStore(t)
	a, b := allotment("a1", skuTeams, 84), allotment("b2", skuE5, 10)

	// t0: first sight.
	run := apply(t, st, t0, a, b)
	wantCounts(t, run, store.Changes{Added: 2}, store.Changes{Added: 2})
	if run.ID == 0 || run.Outcome != store.OutcomeSucceeded || !run.StartedAt.Equal(t0) || run.FinishedAt.IsZero() || run.GraphRequests != 3 {
		t.Errorf("first run = %+v, want an ID, succeeded, started %v, finished, 3 graph requests", run, t0)
	}
	got, err := st.GetAllotment(ctx, "a1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(observed(a, t0), got, jsonEqual, ignoreSubscriptionLinks); diff != "" {
		t.Errorf("GetAllotment after first apply (-want +got):\n%s", diff)
	}

	// t1: same snapshot: counted unchanged, not written.
	before := versionRows(t, conn)
	run = apply(t, st, t1, a, b)
	wantCounts(t, run, store.Changes{Unchanged: 2}, store.Changes{Unchanged: 2})
	if diff := cmp.Diff(before, versionRows(t, conn)); diff != "" {
		t.Errorf("unchanged snapshot wrote version rows (-before +after):\n%s", diff)
	}
	if got, _ := st.GetAllotment(ctx, "a1"); !got.ObservedAt.Equal(t0) {
		t.Errorf("ObservedAt after unchanged apply = %v, want %v", got.ObservedAt, t0)
	}

	// t2: a1's consumption changes: its version closes and a new one opens.
	a2 := a
	a2.ConsumedUnits = 90
	a2.Raw = rawOf(a2)
	run = apply(t, st, t2, a2, b)
	wantCounts(t, run, store.Changes{Changed: 1, Unchanged: 1}, store.Changes{Unchanged: 2})
	if n := queryInt(t, conn, `SELECT count(*) FROM allotment_versions WHERE id = 'a1'`); n != 2 {
		t.Errorf("a1 has %d versions, want 2", n)
	}
	if got, _ := st.GetAllotment(ctx, "a1"); got.ConsumedUnits != 90 || !got.ObservedAt.Equal(t2) {
		t.Errorf("current a1 = consumed %d observed %v, want 90 observed %v", got.ConsumedUnits, got.ObservedAt, t2)
	}

	// As-of reads: the old state before t2, the new one from t2 on, none
	// before t0.
	for _, tt := range []struct {
		at   time.Time
		want store.Allotment
	}{
		{t0, observed(a, t0)},
		{t1.Add(30 * time.Minute), observed(a, t0)},
		{t2.Add(-time.Microsecond), observed(a, t0)},
		{t2, observed(a2, t2)},
		{t4.Add(1000 * time.Hour), observed(a2, t2)},
	} {
		got, err := st.AllotmentAsOf(ctx, "a1", tt.at)
		if err != nil {
			t.Errorf("AllotmentAsOf(a1, %v): %v", tt.at, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got, jsonEqual, ignoreSubscriptionLinks); diff != "" {
			t.Errorf("AllotmentAsOf(a1, %v) (-want +got):\n%s", tt.at, diff)
		}
	}
	if _, err := st.AllotmentAsOf(ctx, "a1", t0.Add(-time.Second)); !isNotFound(err) {
		t.Errorf("AllotmentAsOf(a1, before first sight) error = %v, want ErrNotFound", err)
	}

	// t3: b2 vanishes from Graph: its version (and its subscription's) closes.
	run = apply(t, st, t3, a2)
	wantCounts(t, run, store.Changes{Unchanged: 1, Removed: 1}, store.Changes{Unchanged: 1, Removed: 1})
	if _, err := st.GetAllotment(ctx, "b2"); !isNotFound(err) {
		t.Errorf("GetAllotment(vanished b2) error = %v, want ErrNotFound", err)
	}
	if got, err := st.AllotmentAsOf(ctx, "b2", t2); err != nil || got.ConsumedUnits != 10 {
		t.Errorf("AllotmentAsOf(b2, t2) = %+v, %v; want the state seen at t0", got, err)
	}
	if _, err := st.AllotmentAsOf(ctx, "b2", t3); !isNotFound(err) {
		t.Errorf("AllotmentAsOf(b2, t3) error = %v, want ErrNotFound", err)
	}
	if n := queryInt(t, conn, `SELECT count(*) FROM subscription_versions WHERE allotment_id = 'b2' AND upper(valid) = $1`, t3); n != 1 {
		t.Errorf("b2's subscription: %d versions closed at t3, want 1", n)
	}

	// A late snapshot (a deposed leader waking up) is refused and changes
	// nothing.
	before = versionRows(t, conn)
	runsBefore := queryInt(t, conn, `SELECT count(*) FROM sync_runs`)
	_, err = applyAllotments(ctx, st, store.SyncRun{StartedAt: t1}, []store.Allotment{a, b})
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("applying allotments older than the last applied: error = %v, want ErrConflict", err)
	}
	if diff := cmp.Diff(before, versionRows(t, conn)); diff != "" {
		t.Errorf("refused snapshot wrote version rows (-before +after):\n%s", diff)
	}
	if n := queryInt(t, conn, `SELECT count(*) FROM sync_runs`); n != runsBefore {
		t.Errorf("refused snapshot: sync_runs went from %d to %d rows", runsBefore, n)
	}

	// t4: b2 comes back: a new version, counted as added.
	run = apply(t, st, t4, a2, b)
	wantCounts(t, run, store.Changes{Added: 1, Unchanged: 1}, store.Changes{Added: 1, Unchanged: 1})
	if got, err := st.GetAllotment(ctx, "b2"); err != nil || !got.ObservedAt.Equal(t4) {
		t.Errorf("GetAllotment(returned b2) = observed %v, %v; want observed %v", got.ObservedAt, err, t4)
	}

	// One fact row per allotment per run: 2+2+2+1+2.
	if n := queryInt(t, conn, `SELECT count(*) FROM allotment_facts`); n != 9 {
		t.Errorf("allotment_facts has %d rows, want 9", n)
	}
	if n := queryInt(t, conn, `SELECT consumed FROM allotment_facts f JOIN sync_runs r ON r.id = f.run_id
		WHERE f.allotment_id = 'a1' AND r.started_at = $1`, t2); n != 90 {
		t.Errorf("a1's fact at t2: consumed = %d, want 90", n)
	}
	last, err := st.LastSuccessfulSyncRun(ctx)
	if err != nil || last.ID != run.ID {
		t.Errorf("LastSuccessfulSyncRun = %+v, %v; want run %d", last, err, run.ID)
	}
}

func TestStore_applyAllotments_subscriptionChange(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, conn := newStore(t)
	a := allotment("a1", skuTeams, 84)
	a.Subscriptions = append(a.Subscriptions, store.Subscription{SubscriptionID: "sub-trial", State: "active", Tags: []string{"trial"}})
	a.Raw = rawOf(a)
	apply(t, st, t0, a)

	// One subscription lapses into its grace period.
	a2 := a
	a2.Subscriptions = []store.Subscription{a.Subscriptions[0], a.Subscriptions[1]}
	a2.Subscriptions[1].State = "warning"
	a2.Raw = rawOf(a2)
	run := apply(t, st, t1, a2)
	wantCounts(t, run, store.Changes{Changed: 1}, store.Changes{Changed: 1, Unchanged: 1})

	var state string
	var valid string
	const q = `SELECT state, valid::text FROM subscription_versions WHERE subscription_id = 'sub-trial' AND valid @> $1::timestamptz`
	if err := conn.QueryRow(ctx, q, t0).Scan(&state, &valid); err != nil || state != "active" {
		t.Errorf("sub-trial as of t0: state %q (%v), want active", state, err)
	}
	if err := conn.QueryRow(ctx, q, t1).Scan(&state, &valid); err != nil || state != "warning" {
		t.Errorf("sub-trial as of t1: state %q (%v), want warning", state, err)
	}
	// The subscription's raw is its element of the allotment's raw.
	var raw []byte
	if err := conn.QueryRow(ctx, `SELECT raw FROM subscription_versions WHERE subscription_id = 'sub-trial' AND upper_inf(valid)`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	var rawSub map[string]any
	if err := json.Unmarshal(raw, &rawSub); err != nil || rawSub["state"] != "warning" || rawSub["subscriptionId"] != "sub-trial" {
		t.Errorf("sub-trial raw = %s (%v), want its Graph object", raw, err)
	}
	got, err := st.GetAllotment(ctx, "a1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(observed(a2, t1), got, jsonEqual, ignoreSubscriptionLinks); diff != "" {
		t.Errorf("GetAllotment (-want +got):\n%s", diff)
	}
}

func TestStore_applyAllotments_sameInstant(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, conn := newStore(t)
	a := allotment("a1", skuTeams, 1)
	apply(t, st, t0, a)
	// A second apply observed at the very same instant wins; the version
	// it replaces never existed for any length of time.
	a2 := allotment("a1", skuTeams, 2)
	run := apply(t, st, t0, a2)
	wantCounts(t, run, store.Changes{Changed: 1}, store.Changes{Unchanged: 1})
	if n := queryInt(t, conn, `SELECT count(*) FROM allotment_versions`); n != 1 {
		t.Errorf("%d versions after two applies at one instant, want 1", n)
	}
	if got, err := st.GetAllotment(ctx, "a1"); err != nil || got.ConsumedUnits != 2 {
		t.Errorf("GetAllotment = consumed %d, %v; want 2", got.ConsumedUnits, err)
	}
	// And an unchanged re-apply at the same instant is harmless.
	run = apply(t, st, t0, a2)
	wantCounts(t, run, store.Changes{Unchanged: 1}, store.Changes{Unchanged: 1})
}

func TestStore_applyAllotments_normalizes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, _ := newStore(t)

	a := allotment("a1", skuTeams, 5)
	a.Subscriptions[0].StartDate = "2025-07-18T00:00:00.000Z" // as Graph's examples send it
	a.AssignableTo = nil
	a.Services = []store.Service{}
	a.Raw = nil
	dup := allotment("a1", skuTeams, 6) // listed twice: the later entry wins
	run := apply(t, st, t0, a, allotment("b2", skuE5, 1), dup)
	wantCounts(t, run, store.Changes{Added: 2}, store.Changes{Added: 2})

	got, err := st.GetAllotment(ctx, "a1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(observed(dup, t0), got, jsonEqual, ignoreSubscriptionLinks); diff != "" {
		t.Errorf("GetAllotment of a duplicated id (-want +got):\n%s", diff)
	}

	a.ID = "c3"
	apply(t, st, t1, a, allotment("b2", skuE5, 1), dup)
	got, err = st.GetAllotment(ctx, "c3")
	if err != nil {
		t.Fatal(err)
	}
	want := observed(a, t1)
	want.Subscriptions = []store.Subscription{a.Subscriptions[0]}
	want.Subscriptions[0].StartDate = "2025-07-18"
	want.Services = nil // empty lists read back as nil
	if diff := cmp.Diff(want, got, jsonEqual, ignoreSubscriptionLinks); diff != "" {
		t.Errorf("GetAllotment (-want +got):\n%s", diff)
	}
}

func TestStore_applyAllotments_invalid(t *testing.T) {
	t.Parallel()
	st, conn := newStore(t)
	noID := allotment("", skuTeams, 1)
	badRaw := allotment("a1", skuTeams, 1)
	badRaw.Raw = []byte(`{"id":`)
	badDate := allotment("a1", skuTeams, 1)
	badDate.Subscriptions[0].NextLifecycleDate = "30/09/2026"
	noSubID := allotment("a1", skuTeams, 1)
	noSubID.Subscriptions[0].SubscriptionID = ""
	tests := []struct {
		name     string
		run      store.SyncRun
		snapshot []store.Allotment
		want     string
	}{
		{"no start time", store.SyncRun{}, nil, "startedAt is not set"},
		{"allotment without id", store.SyncRun{StartedAt: t0}, []store.Allotment{noID}, "no id"},
		{"raw not JSON", store.SyncRun{StartedAt: t0}, []store.Allotment{badRaw}, "not valid JSON"},
		{"bad date", store.SyncRun{StartedAt: t0}, []store.Allotment{badDate}, "30/09/2026"},
		{"subscription without id", store.SyncRun{StartedAt: t0}, []store.Allotment{noSubID}, "subscription 0 has no id"},
	}
	for _, tt := range tests {
		_, err := applyAllotments(t.Context(), st, tt.run, tt.snapshot)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: applying allotments: error = %v, want one mentioning %q", tt.name, err, tt.want)
		}
	}
	if n := queryInt(t, conn, `SELECT count(*) FROM sync_runs`); n != 0 {
		t.Errorf("invalid snapshots recorded %d runs, want 0", n)
	}
}

func TestStore_ListAllotments(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := newStoreOnly(t)
	var snapshot []store.Allotment
	var want, wantTeams []string
	for i := range 23 {
		// Ids in no particular order, some differing only in case, which
		// bytewise order sorts upper before lower.
		id := fmt.Sprintf("%c%02d-%x", "zAaM"[i%4], (i*7)%23, i)
		sku := skuTeams
		if i%3 == 0 {
			sku = skuE5
		} else {
			wantTeams = append(wantTeams, id)
		}
		snapshot = append(snapshot, allotment(id, sku, int32(i)))
		want = append(want, id)
	}
	apply(t, st, t0, snapshot...)
	// Vanished allotments are not listed.
	apply(t, st, t1, snapshot[1:]...)
	want = want[1:]
	slicesSort(want)
	slicesSort(wantTeams)

	for _, tt := range []struct {
		name     string
		pageSize int
		sku      string
		want     []string
	}{
		{"pages of 5", 5, "", want},
		{"pages of 1", 1, "", want},
		{"one big page", 100, "", want},
		{"default page size", 0, "", want},
		{"filtered by SKU", 4, skuTeams, wantTeams},
		{"unknown SKU", 4, "nope", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			p := store.ListAllotmentsParams{PageSize: tt.pageSize, SKUID: tt.sku}
			for pages := 0; ; pages++ {
				if pages > len(want)+1 {
					t.Fatalf("paging does not end: %v", got)
				}
				page, err := st.ListAllotments(ctx, p)
				if err != nil {
					t.Fatal(err)
				}
				if tt.pageSize > 0 && len(page) > tt.pageSize {
					t.Fatalf("page of %d, want at most %d", len(page), tt.pageSize)
				}
				for _, a := range page {
					got = append(got, a.ID)
					if a.ObservedAt.IsZero() || a.SKUID == "" {
						t.Errorf("listed allotment %q lacks fields: %+v", a.ID, a)
					}
				}
				if len(page) == 0 || (tt.pageSize > 0 && len(page) < tt.pageSize) {
					break
				}
				p.AfterID = page[len(page)-1].ID
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("listed ids (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStore_GetAllotment_unknown(t *testing.T) {
	t.Parallel()
	st := newStoreOnly(t)
	apply(t, st, t0, allotment("a1", skuTeams, 1))
	_, err := st.GetAllotment(t.Context(), "nope")
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetAllotment(unknown) error = %v, want ErrNotFound", err)
	}
	if err != nil && !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("GetAllotment(unknown) error %q does not name the id", err)
	}
	if _, err := st.AllotmentAsOf(t.Context(), "nope", t1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("AllotmentAsOf(unknown) error = %v, want ErrNotFound", err)
	}
}

// BenchmarkStore_applyAllotments_unchanged measures the common case: a
// sync that finds 5,000 allotments exactly as they were.
func BenchmarkStore_applyAllotments_unchanged(b *testing.B) {
	st := storetest.New(b)
	snapshot := make([]store.Allotment, 5000)
	for i := range snapshot {
		snapshot[i] = allotment(fmt.Sprintf("a%05d", i), skuTeams, int32(i%100))
	}
	at := t0
	if _, err := applyAllotments(b.Context(), st, store.SyncRun{StartedAt: at}, snapshot); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		at = at.Add(time.Minute)
		if _, err := applyAllotments(b.Context(), st, store.SyncRun{StartedAt: at}, snapshot); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStore_applyAllotments_allChanged measures the worst case: every
// one of 5,000 allotments changed since the last run.
func BenchmarkStore_applyAllotments_allChanged(b *testing.B) {
	st := storetest.New(b)
	snapshot := make([]store.Allotment, 5000)
	at := t0
	for b.Loop() {
		for i := range snapshot {
			snapshot[i] = allotment(fmt.Sprintf("a%05d", i), skuTeams, int32(at.Minute()))
		}
		at = at.Add(time.Minute)
		if _, err := applyAllotments(b.Context(), st, store.SyncRun{StartedAt: at}, snapshot); err != nil {
			b.Fatal(err)
		}
	}
}
