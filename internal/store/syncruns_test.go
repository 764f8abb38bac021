package store_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/seatledger/seatledger/internal/store"
	"github.com/seatledger/seatledger/internal/store/storetest"
)

func newStoreOnly(t *testing.T) *store.Store { return storetest.New(t) }

func slicesSort(s []string) { slices.Sort(s) }

func TestStore_RecordFailedSyncRun(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, conn := newStore(t)

	if _, err := st.LastSuccessfulSyncRun(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LastSuccessfulSyncRun on an empty database: error = %v, want ErrNotFound", err)
	}
	failed := store.SyncRun{
		StartedAt:     t0,
		FinishedAt:    t0.Add(2 * time.Second),
		Outcome:       store.OutcomeFailed,
		Error:         "list allotments: graph: 503 Service Unavailable",
		GraphRequests: 7, Throttled: 2, BytesReceived: 1234,
	}
	got, err := st.RecordFailedSyncRun(ctx, failed)
	if err != nil {
		t.Fatalf("RecordFailedSyncRun: %v", err)
	}
	want := failed
	want.ID = got.ID
	if got.ID == 0 {
		t.Error("RecordFailedSyncRun returned no ID")
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("RecordFailedSyncRun (-want +got):\n%s", diff)
	}
	if n := queryInt(t, conn, `SELECT count(*) FROM allotment_versions`) + queryInt(t, conn, `SELECT count(*) FROM allotment_facts`); n != 0 {
		t.Errorf("a failed run wrote %d version or fact rows", n)
	}
	if _, err := st.LastSuccessfulSyncRun(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LastSuccessfulSyncRun with only a failed run: error = %v, want ErrNotFound", err)
	}
	// A failed run does not fence: an older snapshot may still apply.
	if _, err := applyAllotments(ctx, st, store.SyncRun{StartedAt: t0.Add(-time.Hour)}, nil); err != nil {
		t.Errorf("applying allotments older than a failed run: %v", err)
	}

	held, err := st.RecordFailedSyncRun(ctx, store.SyncRun{StartedAt: t1, Outcome: store.OutcomeHeld, Error: "would remove 90% of allotments"})
	if err != nil || held.Outcome != store.OutcomeHeld || held.FinishedAt.IsZero() {
		t.Errorf("RecordFailedSyncRun(held) = %+v, %v; want held with a finish time", held, err)
	}
	if _, err := st.RecordFailedSyncRun(ctx, store.SyncRun{StartedAt: t1, Outcome: store.OutcomeSucceeded}); err == nil {
		t.Error("RecordFailedSyncRun accepted a succeeded run")
	}
	// "" means failed.
	if r, err := st.RecordFailedSyncRun(ctx, store.SyncRun{StartedAt: t2, Error: "boom"}); err != nil || r.Outcome != store.OutcomeFailed {
		t.Errorf("RecordFailedSyncRun with no outcome = %q, %v; want failed", r.Outcome, err)
	}
}

func TestStore_ListSyncRuns(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := newStoreOnly(t)
	var ids []int64
	for i := range 7 {
		at := t0.Add(time.Duration(i) * time.Minute)
		var run store.SyncRun
		var err error
		if i%3 == 2 {
			run, err = st.RecordFailedSyncRun(ctx, store.SyncRun{StartedAt: at, Error: "boom"})
		} else {
			run, err = applyAllotments(ctx, st, store.SyncRun{StartedAt: at}, []store.Allotment{allotment("a1", skuTeams, int32(i))})
		}
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, run.ID)
	}
	slices.Reverse(ids) // newest first

	var got []int64
	before := int64(0)
	for {
		page, err := st.ListSyncRuns(ctx, 3, before)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page {
			got = append(got, r.ID)
		}
		if len(page) < 3 {
			break
		}
		before = page[len(page)-1].ID
	}
	if diff := cmp.Diff(ids, got); diff != "" {
		t.Errorf("ListSyncRuns ids (-want +got):\n%s", diff)
	}

	all, err := st.ListSyncRuns(ctx, 0, 0)
	if err != nil || len(all) != 7 {
		t.Fatalf("ListSyncRuns(0, 0) = %d runs, %v; want 7", len(all), err)
	}
	newest := all[0]
	if newest.Outcome != store.OutcomeSucceeded || newest.Counts["allotments"] != (store.Changes{Changed: 1}) {
		t.Errorf("newest run = %+v, want succeeded with one changed allotment", newest)
	}
	last, err := st.LastSuccessfulSyncRun(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(newest, last); diff != "" {
		t.Errorf("LastSuccessfulSyncRun vs newest listed (-want +got):\n%s", diff)
	}
}

// TestStore_SyncRunDemoMark: a run recorded as demo data (applied, failed
// or held) is listed with the mark; other runs are not.
func TestStore_SyncRunDemoMark(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := newStoreOnly(t)
	demo, err := applyAllotments(ctx, st, store.SyncRun{StartedAt: t0, Outcome: store.OutcomeRunning, Demo: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	failed, err := st.RecordFailedSyncRun(ctx, store.SyncRun{StartedAt: t1, Error: "boom", Demo: true})
	if err != nil {
		t.Fatal(err)
	}
	real := apply(t, st, t2)
	runs, err := st.ListSyncRuns(ctx, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64]bool{}
	for _, r := range runs {
		got[r.ID] = r.Demo
	}
	want := map[int64]bool{demo.ID: true, failed.ID: true, real.ID: false}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sync runs' demo marks (-want +got):\n%s", diff)
	}
	if !demo.Demo || !failed.Demo || real.Demo {
		t.Errorf("returned records: applied demo %t, failed demo %t, real %t; want true, true, false", demo.Demo, failed.Demo, real.Demo)
	}
}
