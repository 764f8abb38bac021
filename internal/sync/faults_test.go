package sync

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/seatledger/seatledger/internal/graphsim"
)

// TestMirror_FailuresChangeNothing: whatever Graph does wrong in the
// middle of a run (a failed page, a throttling storm, a malformed or cut
// body, a reset connection), the mirror keeps showing the last good run,
// and the next run converges on the tenant.
func TestMirror_FailuresChangeNothing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		rule graphsim.FaultRule
	}{
		{"second page of assignments fails", graphsim.FaultRule{Path: "/beta/admin/cloudLicensing/assignments", Nth: 2, Kind: graphsim.FaultUnavailable}},
		{"throttling storm", graphsim.FaultRule{PathRegexp: "^/beta/", Rate: 1, Kind: graphsim.FaultThrottle, RetryAfterSeconds: 1}},
		{"malformed users page", graphsim.FaultRule{Path: "/beta/users/delta", Nth: 1, Kind: graphsim.FaultMalformed}},
		{"truncated assignment errors", graphsim.FaultRule{Path: "/beta/admin/cloudLicensing/assignmentErrors", Nth: 1, Kind: graphsim.FaultTruncate}},
		// Every time: net/http itself retries a GET once when a reused
		// connection is reset before any answer.
		{"connection reset on waiting members", graphsim.FaultRule{PathRegexp: "/waitingMembers", Rate: 1, Kind: graphsim.FaultReset}},
		{"gateway timeout on group members", graphsim.FaultRule{PathRegexp: "^/beta/groups/[^/]+/members", Nth: 1, Kind: graphsim.FaultGatewayTimeout}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim, st, s := newMirror(t, nil)
			ctx := context.Background()
			if _, err := s.RunOnce(ctx); err != nil {
				t.Fatal(err)
			}
			lastGood := storeView(t, st, time.Time{})

			// Change the tenant, so that a partly applied run would show.
			users := sim.Users()
			must(t, sim.SetDepartment(users[0].ID, "Moved"))
			must(t, sim.RemoveUser(users[len(users)-1].ID))
			for _, a := range sim.Assignments()[:2] {
				must(t, sim.Unassign(a.ID))
			}
			if _, err := sim.AdvanceClock(time.Hour); err != nil {
				t.Fatal(err)
			}
			must(t, sim.SetFaults([]graphsim.FaultRule{tt.rule}))
			run, err := s.RunOnce(ctx)
			if err == nil {
				t.Fatalf("RunOnce() under %q succeeded; the fault did not reach the sync", tt.name)
			}
			if run.Outcome != "failed" || run.ID == 0 {
				t.Errorf("failed run recorded as %+v", run)
			}
			if diff := cmp.Diff(lastGood, storeView(t, st, time.Time{})); diff != "" {
				t.Errorf("a failed run changed the mirror (-last good +now):\n%s", diff)
			}

			must(t, sim.SetFaults(nil))
			if _, err := s.RunOnce(ctx); err != nil {
				t.Fatalf("RunOnce() after the fault cleared: %v", err)
			}
			if diff := cmp.Diff(simView(sim), storeView(t, st, time.Time{})); diff != "" {
				t.Errorf("the next run did not converge (-sim +mirror):\n%s", diff)
			}
		})
	}
}
