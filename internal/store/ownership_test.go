package store_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/seatledger/seatledger/internal/store"
)

func TestStore_AllotmentOwner(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, conn := newStore(t)
	t0 := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC) // shadows the package's t0: owners only here
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
	if first, err := st.AllotmentOwners(ctx, t0); err != nil || first["al1"] != "Sales" {
		t.Errorf("AllotmentOwners(t0)[al1] = %q, %v; want Sales", first["al1"], err)
	}
	// The current-owners view serves readers that need no history.
	if n := queryInt(t, conn, `SELECT count(*) FROM allotment_owners WHERE allotment_id = 'al1' AND owner_department = 'Engineering'`); n != 1 {
		t.Errorf("allotment_owners view has %d rows for al1/Engineering, want 1", n)
	}
}

// TestStore_AllotmentReadsCarryOwner: the allotment reads name the owner
// department valid at the same time as the allotment version they return.
func TestStore_AllotmentReadsCarryOwner(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, _ := newStore(t)
	applyAt(t, st, t0, snapshot{allotments: []store.Allotment{allotment("a1", skuTeams, 10), allotment("a2", skuE5, 5)}})
	for _, s := range []struct {
		dept string
		at   time.Time
	}{{"Sales", t0.Add(time.Hour)}, {"Engineering", t0.Add(2 * time.Hour)}} {
		if err := st.SetAllotmentOwner(ctx, "a1", s.dept, "admin", s.at); err != nil {
			t.Fatal(err)
		}
	}
	if a, err := st.GetAllotment(ctx, "a1"); err != nil || a.OwnerDepartment != "Engineering" {
		t.Errorf("GetAllotment(a1) owner %q, %v; want Engineering", a.OwnerDepartment, err)
	}
	list, err := st.ListAllotments(ctx, store.ListAllotmentsParams{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, a := range list {
		got[a.ID] = a.OwnerDepartment
	}
	if diff := cmp.Diff(map[string]string{"a1": "Engineering", "a2": ""}, got); diff != "" {
		t.Errorf("ListAllotments owners (-want +got):\n%s", diff)
	}
	for at, want := range map[time.Time]string{t0.Add(30 * time.Minute): "", t0.Add(90 * time.Minute): "Sales"} {
		if a, err := st.AllotmentAsOf(ctx, "a1", at); err != nil || a.OwnerDepartment != want {
			t.Errorf("AllotmentAsOf(a1, %v) owner %q, %v; want %q", at, a.OwnerDepartment, err, want)
		}
	}
}
