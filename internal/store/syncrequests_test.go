package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/seatledger/seatledger/internal/store"
)

// TestLeader_RecordedHolderIsNamedWhileItHoldsTheLock: the process that
// records itself as leader is named, and known to hold the lock only
// while its session does.
func TestLeader_RecordedHolderIsNamedWhileItHoldsTheLock(t *testing.T) {
	t.Parallel()
	a, b, _ := twoReplicas(t)
	ctx := t.Context()
	if _, _, err := b.Leader(ctx, "sync"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Leader() before any = %v, want ErrNotFound", err)
	}
	if err := a.RecordLeader(ctx, "sync", store.LeaderInfo{Instance: "x"}); err == nil {
		t.Error("RecordLeader() without the lock succeeded")
	}
	release, ok, err := a.TryLeaderLock(ctx, "sync")
	if err != nil || !ok {
		t.Fatalf("TryLeaderLock = %v, %v", ok, err)
	}
	want := store.LeaderInfo{Instance: "host-a/7/ab", Host: "host-a", PID: 7, Since: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)}
	if err := a.RecordLeader(ctx, "sync", want); err != nil {
		t.Fatal(err)
	}
	got, holds, err := b.Leader(ctx, "sync")
	if err != nil || !holds || got != want {
		t.Errorf("Leader() = %+v, %v, %v; want %+v holding", got, holds, err, want)
	}
	release()
	if _, holds, err := b.Leader(ctx, "sync"); err != nil || holds {
		t.Errorf("Leader() after release: holds = %v, %v; want false", holds, err)
	}
}

// TestSyncRequests_RoundTrip: a request carries force to the leader that
// claims it, is claimed once, and its waiter wakes with the run.
func TestSyncRequests_RoundTrip(t *testing.T) {
	t.Parallel()
	a, b, _ := twoReplicas(t)
	ctx := t.Context()
	id, err := b.RequestSync(ctx, "follower", true, time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	woken := make(chan struct{}, 10)
	lctx, stop := context.WithCancel(ctx)
	listened := make(chan error, 1)
	go func() { listened <- a.ListenSyncRequests(lctx, func() { woken <- struct{}{} }) }()
	<-woken // listening
	reqs, err := a.ClaimSyncRequests(ctx, "leader")
	if err != nil || len(reqs) != 1 || reqs[0].ID != id || !reqs[0].Force || reqs[0].RequestedBy != "follower" {
		t.Fatalf("ClaimSyncRequests() = %+v, %v; want request %d with force", reqs, err, id)
	}
	if again, err := a.ClaimSyncRequests(ctx, "leader"); err != nil || len(again) != 0 {
		t.Errorf("second ClaimSyncRequests() = %+v, %v; want none", again, err)
	}
	id2, err := b.RequestSync(ctx, "follower", false, time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-woken:
	case <-time.After(10 * time.Second):
		t.Fatal("the leader was not woken by a new request")
	}
	stop()
	if err := <-listened; err != nil {
		t.Errorf("ListenSyncRequests() = %v after its context ended, want nil", err)
	}
	if gave, err := b.AbandonSyncRequest(ctx, id, "late"); err != nil || gave {
		t.Errorf("AbandonSyncRequest(claimed) = %v, %v; want false", gave, err)
	}
	if gave, err := b.AbandonSyncRequest(ctx, id2, "no leader"); err != nil || !gave {
		t.Errorf("AbandonSyncRequest(unclaimed) = %v, %v; want true", gave, err)
	}

	run, err := a.RecordFailedSyncRun(ctx, store.SyncRun{StartedAt: time.Now(), Error: "graph down"})
	if err != nil {
		t.Fatal(err)
	}
	waited := make(chan store.SyncRequest, 1)
	go func() {
		r, err := b.WaitSyncRequest(ctx, id, func(store.SyncRequest) (time.Duration, error) { return time.Hour, nil })
		if err != nil {
			t.Errorf("WaitSyncRequest() = %v", err)
		}
		waited <- r
	}()
	if err := a.FinishSyncRequests(ctx, []int64{id}, run.ID, "graph down"); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-waited:
		if r.SyncRunID != run.ID || r.Error != "graph down" || r.ClaimedBy != "leader" {
			t.Errorf("WaitSyncRequest() = %+v; want run %d, its error, claimed by the leader", r, run.ID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter was not woken when its request finished")
	}
}

// TestSyncRequests_FinishedOnesArePruned: requests finished more than a
// day ago are dropped when the leader answers the next ones, so the table
// does not grow with every sync:run a follower ever forwarded.
func TestSyncRequests_FinishedOnesArePruned(t *testing.T) {
	t.Parallel()
	a, b, admin := twoReplicas(t)
	ctx := t.Context()
	old, err := b.RequestSync(ctx, "follower", false, time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.FinishSyncRequests(ctx, []int64{old}, 0, "held"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, `UPDATE sync_requests SET finished_at = now() - interval '25 hours' WHERE id = $1`, old); err != nil {
		t.Fatal(err)
	}
	recent, err := b.RequestSync(ctx, "follower", false, time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.FinishSyncRequests(ctx, []int64{recent}, 0, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := a.GetSyncRequest(ctx, old); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetSyncRequest(a request finished 25 hours ago) = %v, want ErrNotFound (pruned)", err)
	}
	if r, err := a.GetSyncRequest(ctx, recent); err != nil || r.FinishedAt.IsZero() {
		t.Errorf("GetSyncRequest(the request just finished) = %+v, %v; want it kept, finished", r, err)
	}
}
