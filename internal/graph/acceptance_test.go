package graph_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/seatledger/seatledger/internal/graph"
	"github.com/seatledger/seatledger/internal/graphsim"
)

// TestClient_Acceptance_AssignmentsUnderFaults lists the assignments of a
// generated 10,000-user tenant in pages of 100 while about 10 % of the
// page requests are answered 429 (3 %, at most 3 times, since Retry-After
// 1 s is the simulator's least) or 503 (7 %, exponential backoff): every
// assignment arrives exactly once.
func TestClient_Acceptance_AssignmentsUnderFaults(t *testing.T) {
	t.Parallel()
	const users, pageSize = 10_000, 100
	tenant := graphsim.Generate(graphsim.GenerateOptions{Seed: 42, Users: users})
	const path = "/beta/admin/cloudLicensing/assignments"
	s := startSim(t, graphsim.Options{Tenant: &tenant, PageSize: pageSize, Faults: []graphsim.FaultRule{
		{Path: path, Method: http.MethodGet, Kind: graphsim.FaultThrottle, Rate: 0.03, RetryAfterSeconds: 1, Seed: 1, Count: 3},
		{Path: path, Method: http.MethodGet, Kind: graphsim.FaultUnavailable, Rate: 0.07, Seed: 2},
	}})
	c := s.fastClient(t, graph.Options{})

	seen := map[string]int{}
	for a, err := range c.Assignments(context.Background()) {
		if err != nil {
			t.Fatalf("after %d assignments: %v", len(seen), err)
		}
		seen[a.ID]++
	}
	want := s.Assignments()
	if len(want) < users {
		t.Fatalf("the simulator holds %d assignments, want at least %d", len(want), users)
	}
	for _, a := range want {
		if seen[a.ID] != 1 {
			t.Errorf("assignment %s listed %d times", a.ID, seen[a.ID])
		}
		delete(seen, a.ID)
	}
	for id := range seen {
		t.Errorf("assignment %s is not the simulator's", id)
	}
	fired := 0
	for _, f := range s.Faults() {
		fired += f.Fired
	}
	pages := int64((len(want) + pageSize - 1) / pageSize)
	st := c.Stats()
	if fired < int(pages)/20 || st.Retries != int64(fired) || st.Requests != pages+st.Retries {
		t.Errorf("Stats = %+v after %d faults, want %d pages plus one retry per fault", st, fired, pages)
	}
}
