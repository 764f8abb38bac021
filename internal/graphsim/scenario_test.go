package graphsim_test

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/seatledger/seatledger/internal/graphsim"
)

func TestLoadScenario_Example(t *testing.T) {
	t.Parallel()
	f, err := os.Open("testdata/scenario-example.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tn, err := graphsim.LoadScenario(f)
	if err != nil {
		t.Fatal(err)
	}
	sim := newSim(t, &tn)
	if got := sim.Users(); !got[0].AccountEnabled || got[2].AccountEnabled {
		t.Errorf("accountEnabled: want true by default, false when given: %+v", got)
	}
	a := sim.Allotments()
	if a[0].ConsumedUnits != 2 || a[1].ConsumedUnits != 1 {
		t.Errorf("consumed = %d, %d; want 2, 1", a[0].ConsumedUnits, a[1].ConsumedUnits)
	}
	ws := sim.WaitingMembers()
	if len(ws) != 1 || ws[0].MemberID != "22222222-bbbb-4bbb-8bbb-000000000003" {
		t.Errorf("waiting = %+v", ws)
	}
	// Ben has Teams without Exchange Standard: MissingDependency. Ana has both.
	es := sim.AssignmentErrors()
	if len(es) != 1 || es[0].UserID != "22222222-bbbb-4bbb-8bbb-000000000002" {
		t.Errorf("errors = %+v", es)
	}
	// A snapshot loads back to the same tenant.
	again := sim.Snapshot()
	sim2 := newSim(t, &again)
	if diff := cmp.Diff(sim.Snapshot(), sim2.Snapshot()); diff != "" {
		t.Errorf("snapshot round trip (-first +second):\n%s", diff)
	}
}

func TestLoadScenario_Strict(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{`{"skus":[],"allotments":[],"userz":[]}`, `{"users":[{"id":"x","upn":"y"}]}`, `{} {}`} {
		if _, err := graphsim.LoadScenario(strings.NewReader(bad)); err == nil {
			t.Errorf("LoadScenario(%s) accepted it", bad)
		}
	}
}

func TestGenerate(t *testing.T) {
	t.Parallel()
	opts := graphsim.GenerateOptions{Seed: 7, Users: 500, Allotments: 5, AssignmentsPerUser: 2, Groups: 3, Devices: 4, WaitingMembers: 6, AssignmentErrors: 3}
	a, b := graphsim.Generate(opts), graphsim.Generate(opts)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Fatalf("Generate is not deterministic:\n%s", diff)
	}
	if c := graphsim.Generate(graphsim.GenerateOptions{Seed: 8, Users: 500}); c.Users[0].ID == a.Users[0].ID {
		t.Error("another seed gave the same ids")
	}
	sim := newSim(t, &a)
	if n := len(sim.Assignments()); n != 500*2+1+3 {
		t.Errorf("%d assignments", n)
	}
	if n := len(sim.WaitingMembers()); n != 6 {
		t.Errorf("%d waiting", n)
	}
	if n := len(sim.AssignmentErrors()); n != 3 {
		t.Errorf("%d errors", n)
	}
	if n := len(sim.Users()); n != 500 {
		t.Errorf("%d users", n)
	}
}
