package store_test

import (
	"slices"
	"testing"
	"time"

	"github.com/seatledger/seatledger/internal/store"
)

// TestSnapshot_writeDuringRun: a write seatledger makes through Graph and
// records at once, while a run that began earlier is still paging, is
// newer than anything that run read. Applying the run must neither undo
// the write (closing the new assignment, reopening the deleted one) nor
// leave overlapping versions; the next run then sees Graph as it is.
func TestSnapshot_writeDuringRun(t *testing.T) {
	t.Parallel()
	st, conn := newStore(t)
	ctx := t.Context()
	t0 := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	applyAt(t, st, t0, snapshot{assignments: []store.Assignment{asg("a1", "al", "u1"), asg("a2", "al", "u2")}})

	// A run starts at t1 and reads Graph before the writes.
	t1 := t0.Add(time.Hour)
	sn := stage(t, st, t1, snapshot{assignments: []store.Assignment{asg("a1", "al", "u1"), asg("a2", "al", "u2")}})

	// At t2, while it pages: a new assignment a3, and a2 deleted.
	t2 := t1.Add(time.Minute)
	if _, err := st.RecordAssignment(ctx, asg("a3", "al", "u3"), t2); err != nil {
		t.Fatal(err)
	}
	if err := st.RecordAssignmentRemoved(ctx, "a2", t2); err != nil {
		t.Fatal(err)
	}

	run, err := sn.Apply(ctx, store.SyncRun{}, store.ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c := run.Counts["assignments"]; c.Removed != 0 || c.Added != 0 {
		t.Errorf("the earlier run counted %+v; it must not undo the writes made after it began", c)
	}
	if got := assignmentIDs(t, st, store.ListAssignmentsParams{PageSize: 10}); !slices.Equal(got, []string{"a1", "a3"}) {
		t.Errorf("after the earlier run the mirror lists %v, want [a1 a3] (the writes kept)", got)
	}
	checkNoOverlaps(t, conn)

	// The next run reads Graph after the writes: nothing to change.
	next := applyAt(t, st, t2.Add(time.Hour), snapshot{assignments: []store.Assignment{asg("a1", "al", "u1"), asg("a3", "al", "u3")}})
	if c := next.Counts["assignments"]; c.Added != 0 || c.Changed != 0 || c.Removed != 0 || c.Unchanged != 2 {
		t.Errorf("the next run counted %+v, want 2 unchanged", c)
	}
	checkNoOverlaps(t, conn)
}

// TestSnapshot_allotmentCountsWrittenDuringRun: an allotment's counts
// refreshed by a write after a run began survive that run's apply, which
// must not fail on the allotments' exclusion constraint either.
func TestSnapshot_allotmentCountsWrittenDuringRun(t *testing.T) {
	t.Parallel()
	st, conn := newStore(t)
	ctx := t.Context()
	t0 := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	al := store.Allotment{ID: "al", SKUID: "sku", SKUPartNumber: "E3", AllottedUnits: 10, ConsumedUnits: 4}
	applyAt(t, st, t0, snapshot{allotments: []store.Allotment{al}})
	t1 := t0.Add(time.Hour)
	sn := stage(t, st, t1, snapshot{allotments: []store.Allotment{al}})
	if err := st.RecordAllotmentCounts(ctx, "al", 10, 5, nil, t1.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Apply(ctx, store.SyncRun{}, store.ApplyOptions{}); err != nil {
		t.Fatalf("applying a run that began before the write: %v", err)
	}
	got, err := st.GetAllotment(ctx, "al")
	if err != nil {
		t.Fatal(err)
	}
	if got.ConsumedUnits != 5 {
		t.Errorf("consumed units = %d after the earlier run, want the written 5", got.ConsumedUnits)
	}
	checkNoOverlaps(t, conn)
}
