package store_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestStore_AllotmentOwner(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, conn := newStore(t)
	t0 := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	steps := []struct {
		id, dept string
		at       time.Time
	}{
		{"al1", "Sales", t0},
		{"al2", "HR", t0},
		{"al1", "Sales", t0.Add(time.Hour)},           // unchanged: nothing written
		{"al1", "Engineering", t0.Add(2 * time.Hour)}, // a move
		{"al2", "", t0.Add(2 * time.Hour)},            // cleared
		{"al3", "", t0},                               // clearing nothing
	}
	for _, s := range steps {
		if err := st.SetAllotmentOwner(ctx, s.id, s.dept, "admin", s.at); err != nil {
			t.Fatalf("SetAllotmentOwner(%s, %q): %v", s.id, s.dept, err)
		}
	}
	if n := queryInt(t, conn, `SELECT count(*) FROM allotment_owner_versions`); n != 3 {
		t.Errorf("%d owner versions, want 3", n)
	}
	now, err := st.AllotmentOwners(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"al1": "Engineering"}, now); diff != "" {
		t.Errorf("current owners (-want +got):\n%s", diff)
	}
	then, err := st.AllotmentOwners(ctx, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"al1": "Sales", "al2": "HR"}, then); diff != "" {
		t.Errorf("owners an hour in (-want +got):\n%s", diff)
	}
	if got, err := st.AllotmentOwner(ctx, "al2", time.Time{}); err != nil || got != "" {
		t.Errorf("AllotmentOwner(al2) = %q, %v; want none", got, err)
	}
	if got, err := st.AllotmentOwner(ctx, "al1", t0); err != nil || got != "Sales" {
		t.Errorf("AllotmentOwner(al1, t0) = %q, %v; want Sales", got, err)
	}
	// The current-owners view serves readers that need no history.
	if n := queryInt(t, conn, `SELECT count(*) FROM allotment_owners WHERE allotment_id = 'al1' AND owner_department = 'Engineering'`); n != 1 {
		t.Errorf("allotment_owners view has %d rows for al1/Engineering, want 1", n)
	}
}
