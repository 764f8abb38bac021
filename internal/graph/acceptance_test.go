package graph_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/seatledger/seatledger/internal/graph"
	"github.com/seatledger/seatledger/internal/graphsim"
)

// bigTenant has n users, each holding one direct assignment in one of
// four allotments of one SKU.
func bigTenant(n int) graphsim.Tenant {
	const sku = "6fd2c87f-b296-42f0-b197-1e91e994b900"
	tn := graphsim.Tenant{SKUs: []graphsim.SKU{{
		ID: sku, PartNumber: "ENTERPRISEPACK",
		Plans: []graphsim.Plan{{ID: "efb87545-963c-4e0d-99df-69c6916d9eb0", Name: "EXCHANGE_S_ENTERPRISE", AssignableTo: []string{"user", "group"}}},
	}}}
	for i := range 4 {
		tn.Allotments = append(tn.Allotments, graphsim.AllotmentState{
			ID: fmt.Sprintf("a110%04d-0000-4000-8000-000000000000", i), SKUID: sku, AllottedUnits: int32(n), AssignableTo: []string{"user", "group"},
		})
	}
	for i := range n {
		id := fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
		tn.Users = append(tn.Users, graphsim.UserState{
			ID: id, UserPrincipalName: fmt.Sprintf("user%05d@contoso.example", i), DisplayName: fmt.Sprintf("User %d", i), AccountEnabled: true,
		})
		tn.Assignments = append(tn.Assignments, graphsim.AssignmentState{
			ID: fmt.Sprintf("%08x-1111-4000-8000-%012x", i, i), AllotmentID: tn.Allotments[i%4].ID, AssignedToID: id, AssignedToType: "user",
		})
	}
	return tn
}

// TestClient_Acceptance_AssignmentsUnderFaults lists the assignments of
// a 10,000-user tenant in pages of 100 while every tenth page request is
// answered 429 or 503: every assignment arrives exactly once.
func TestClient_Acceptance_AssignmentsUnderFaults(t *testing.T) {
	t.Parallel()
	const users, pageSize = 10_000, 100
	pages := users / pageSize
	var script []rawFault
	for i := range pages + pages/5 {
		switch {
		case i%20 == 9:
			script = append(script, status(http.StatusTooManyRequests, "Retry-After", "0").raw())
		case i%20 == 19:
			script = append(script, status(http.StatusServiceUnavailable).raw())
		default:
			script = append(script, pass)
		}
	}
	f := newFront(t, graphsim.Options{Tenant: new(bigTenant(users)), PageSize: pageSize}, nil, script...)
	c := f.client(t, graph.Options{})

	seen := make(map[string]int, users)
	for a, err := range c.Assignments(context.Background()) {
		if err != nil {
			t.Fatalf("after %d assignments: %v", len(seen), err)
		}
		seen[a.ID]++
	}
	want := f.sim.Assignments()
	if len(want) != users {
		t.Fatalf("the simulator holds %d assignments, want %d", len(want), users)
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
	st := c.Stats()
	if st.Throttled == 0 || st.Retries < int64(pages/10) || st.Requests != int64(pages)+st.Retries {
		t.Errorf("Stats = %+v, want %d pages plus one retry per fault", st, pages)
	}
}
