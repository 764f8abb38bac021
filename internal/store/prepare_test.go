package store_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/seatledger/seatledger/internal/store"
)

// TestSnapshot_preparedAssignmentsMergeTheSame: PrepareAssignments (the
// comparison made while the rest pages) changes nothing in what Apply
// writes. Two stores go through the same runs and writes at the same
// times, one preparing its assignments, and end with the same history:
// changed, new, removed and duplicated assignments, writes recorded
// between a run's start and its preparation, and between its preparation
// and its apply.
func TestSnapshot_preparedAssignmentsMergeTheSame(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	t0 := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	t1, t2 := t0.Add(time.Hour), t0.Add(2*time.Hour)
	type outcome struct {
		counts   []store.Changes
		versions []string
	}
	play := func(prepare bool) outcome {
		st, conn := newStore(t)
		var out outcome
		apply := func(sn *store.Snapshot) {
			t.Helper()
			run, err := sn.Apply(ctx, store.SyncRun{}, store.ApplyOptions{Force: true})
			if err != nil {
				t.Fatalf("Apply (prepared %v): %v", prepare, err)
			}
			out.counts = append(out.counts, run.Counts["assignments"])
		}
		write := func(at time.Time, add *store.Assignment, remove string) {
			t.Helper()
			if add != nil {
				if _, err := st.RecordAssignment(ctx, *add, at); err != nil {
					t.Fatal(err)
				}
			}
			if remove != "" {
				if err := st.RecordAssignmentRemoved(ctx, remove, at); err != nil {
					t.Fatal(err)
				}
			}
		}
		prep := func(sn *store.Snapshot) {
			t.Helper()
			if !prepare {
				return
			}
			if err := sn.PrepareAssignments(ctx); err != nil {
				t.Fatalf("PrepareAssignments: %v", err)
			}
		}
		first := []store.Assignment{asg("a1", "al", "u1"), asg("a2", "al", "u2"), asg("a3", "al", "u3"), asg("a4", "al", "u4"), asg("a8", "al", "u8")}
		sn := stage(t, st, t0, snapshot{assignments: first})
		prep(sn)
		apply(sn)

		// Run 1: a2 moves, a3 is gone, a4 is listed twice (the later row
		// wins), a5 is new, a8 gets a disabled plan; writes while it
		// pages: a6 added and a1 removed before the preparation, a7
		// added and a5 (new in Graph too) and a8 removed after it.
		sn = stage(t, st, t1, snapshot{assignments: []store.Assignment{
			asg("a1", "al", "u1"), asg("a2", "al2", "u2"), asg("a4", "al", "u4"), asg("a4", "al", "u44"), asg("a5", "al", "u5"),
			asg("a8", "al", "u8", "p1"),
		}})
		write(t1.Add(time.Minute), new(asg("a6", "al", "u6")), "a1")
		prep(sn)
		write(t1.Add(2*time.Minute), new(asg("a7", "al", "u7")), "a5")
		write(t1.Add(2*time.Minute), nil, "a8")
		apply(sn)
		checkNoOverlaps(t, conn)

		// Run 2 lists Graph as it is after the writes.
		sn = stage(t, st, t2, snapshot{assignments: []store.Assignment{
			asg("a2", "al2", "u2"), asg("a4", "al", "u44"), asg("a6", "al", "u6"), asg("a7", "al", "u7"),
		}})
		prep(sn)
		apply(sn)
		checkNoOverlaps(t, conn)

		rows, _ := conn.Query(ctx, `SELECT id || ' ' || allotment_id || ' ' || assignee_id || ' ' || disabled_plan_ids::text || ' ' ||
			valid::text || ' ' || first_observed_at::text FROM assignment_versions ORDER BY id, lower(valid)`)
		var err error
		if out.versions, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			t.Fatal(err)
		}
		return out
	}
	plain, prepared := play(false), play(true)
	if diff := cmp.Diff(plain, prepared, cmp.AllowUnexported(outcome{})); diff != "" {
		t.Errorf("prepared runs differ from plain ones (-plain +prepared):\n%s", diff)
	}
	if len(plain.versions) < 10 {
		t.Errorf("only %d versions: the scenario did not happen as written:\n%v", len(plain.versions), plain.versions)
	}
}
