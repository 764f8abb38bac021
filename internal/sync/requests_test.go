package sync

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/seatledger/seatledger/internal/store"
	"github.com/seatledger/seatledger/internal/store/storetest"
)

// TestSyncer_RunNowOnAFollowerWithAStuckLeader: another process holds the
// sync lock but takes no request (hung, or an old version): RunNow answers
// within the caller's deadline with ErrLeaderUnavailable naming the leader,
// and the request is closed so that no leader runs it later.
func TestSyncer_RunNowOnAFollowerWithAStuckLeader(t *testing.T) {
	t.Parallel()
	_, info := startSim(t, nil)
	st := storetest.New(t)
	ctx := context.Background()
	release, ok, err := st.TryLeaderLock(ctx, leaderLockName)
	if err != nil || !ok {
		t.Fatalf("TryLeaderLock = %v, %v", ok, err)
	}
	defer release()
	stuck := store.LeaderInfo{Instance: "stuck-host/4242/cafe", Host: "stuck-host", PID: 4242, Since: time.Now()}
	if err := st.RecordLeader(ctx, leaderLockName, stuck); err != nil {
		t.Fatal(err)
	}

	follower := New(newClient(t, info, info.ClientSecret), st, Options{})
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	start := time.Now()
	_, err = follower.RunNow(rctx, true)
	if !errors.Is(err, store.ErrLeaderUnavailable) {
		t.Fatalf("RunNow() error = %v, want ErrLeaderUnavailable", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("RunNow() took %v, past the caller's deadline", took)
	}
	for _, want := range []string{"stuck-host/4242/cafe", "pid 4242"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("RunNow() error = %q, want it to name the leader (%q)", err, want)
		}
	}
	// A leader that comes back later finds nothing to take.
	if reqs, err := st.ClaimSyncRequests(ctx, "late-leader"); err != nil || len(reqs) != 0 {
		t.Errorf("ClaimSyncRequests after the follower gave up = %v, %v; want none", reqs, err)
	}
}

// TestSyncer_RunNowOnAFollowerIsRunByTheLeader: two replicas in one
// database; the follower's RunNow is run by the leading one's loop and
// answered with its record; a run the mass-deletion guard holds is
// answered with its record too, and force travels with the request.
func TestSyncer_RunNowOnAFollowerIsRunByTheLeader(t *testing.T) {
	t.Parallel()
	sim, info := startSim(t, nil)
	st := storetest.New(t)
	leader := New(newClient(t, info, info.ClientSecret), st, Options{Interval: time.Hour})
	runs := make(chan store.SyncRun, 10)
	leader.afterRun = func(r store.SyncRun, err error) { runs <- r }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- leader.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	<-runs // the leader's first run: it leads

	follower := New(newClient(t, info, info.ClientSecret), st, Options{})
	rctx, rcancel := context.WithTimeout(ctx, 60*time.Second)
	defer rcancel()
	got, err := follower.RunNow(rctx, true)
	if err != nil {
		t.Fatalf("RunNow() on the follower = %v", err)
	}
	ran := <-runs
	if got.ID != ran.ID || !got.StartedAt.Equal(ran.StartedAt) || got.Outcome != store.OutcomeSucceeded {
		t.Errorf("RunNow() = run %d started %v (%s); the leader ran %d started %v", got.ID, got.StartedAt, got.Outcome, ran.ID, ran.StartedAt)
	}

	for _, a := range sim.Assignments() {
		if err := sim.Unassign(a.ID); err != nil {
			t.Fatal(err)
		}
	}
	held, err := follower.RunNow(rctx, false)
	<-runs
	if err == nil || held.Outcome != store.OutcomeHeld || held.ID <= got.ID {
		t.Fatalf("RunNow() after every assignment vanished = run %d %q, %v; want a held run with its record", held.ID, held.Outcome, err)
	}
	forced, err := follower.RunNow(rctx, true)
	<-runs
	if err != nil || forced.Outcome != store.OutcomeSucceeded {
		t.Fatalf("RunNow(force) on the follower = %q, %v; want the leader to apply it", forced.Outcome, err)
	}
	if follower.Metrics().Succeeded != 0 || follower.HeldRuns() != 0 {
		t.Errorf("the follower ran a sync itself")
	}
}
