package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/seatledger/seatledger/internal/store"
	"github.com/seatledger/seatledger/internal/store/storetest"
)

// twoReplicas returns two stores (two pools, like two server processes)
// on one fresh database, and an admin connection to it.
func twoReplicas(t *testing.T) (a, b *store.Store, admin *pgx.Conn) {
	t.Helper()
	dsn := storetest.NewDSN(t)
	open := func() *store.Store {
		st, err := store.Open(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(st.Close)
		return st
	}
	a, b = open(), open()
	admin, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	return a, b, admin
}

// holder returns the backend pid holding an advisory lock.
func holder(t *testing.T, admin *pgx.Conn) int32 {
	t.Helper()
	var pid int32
	const q = `
		SELECT pid
		FROM pg_locks
		WHERE locktype = 'advisory'
		  AND granted
		  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`
	if err := admin.QueryRow(t.Context(), q).Scan(&pid); err != nil {
		t.Fatalf("find the lock holder: %v", err)
	}
	return pid
}

// waitingForLock blocks until a session waits for an advisory lock (its
// pg_advisory_lock call has reached the server).
func waitingForLock(t *testing.T, admin *pgx.Conn) {
	t.Helper()
	// pg_locks shows the waiter's ungranted lock: polling it is the server
	// telling us, not a timed guess. (pg_locks spans the cluster; other
	// tests use other databases.)
	const q = `
		SELECT count(*)
		FROM pg_locks
		WHERE locktype = 'advisory'
		  AND NOT granted
		  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`
	for {
		var n int
		if err := admin.QueryRow(t.Context(), q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if t.Context().Err() != nil {
			t.Fatal("no session ever waited for the lock")
		}
	}
}

func TestStore_LeaderLock_handover(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	a, b, admin := twoReplicas(t)

	inA, releaseA := make(chan struct{}), make(chan struct{})
	doneA := make(chan error, 1)
	go func() {
		doneA <- a.WithLeaderLock(ctx, "sync", func(ctx context.Context) error {
			close(inA)
			<-releaseA
			return errors.New("fn's own error")
		})
	}()
	<-inA

	// While a leads, b cannot take the lock, but another name is free.
	if release, ok, err := b.TryLeaderLock(ctx, "sync"); err != nil || ok || release != nil {
		t.Errorf("TryLeaderLock while held elsewhere = %v, %v; want not ok", ok, err)
	}
	release, ok, err := b.TryLeaderLock(ctx, "other")
	if err != nil || !ok {
		t.Fatalf("TryLeaderLock(other) = %v, %v; want ok", ok, err)
	}
	release()

	// b waits; when a's fn returns, b gets in.
	inB := make(chan struct{})
	doneB := make(chan error, 1)
	go func() {
		doneB <- b.WithLeaderLock(ctx, "sync", func(context.Context) error {
			close(inB)
			return nil
		})
	}()
	waitingForLock(t, admin)
	select {
	case <-inB:
		t.Fatal("b got the lock while a held it")
	default:
	}
	close(releaseA)
	if err := <-doneA; err == nil || err.Error() != "fn's own error" {
		t.Errorf("WithLeaderLock returned %v, want fn's error", err)
	}
	<-inB
	if err := <-doneB; err != nil {
		t.Errorf("b's WithLeaderLock: %v", err)
	}
	// Free again: Try takes it, and its release frees it.
	release, ok, err = a.TryLeaderLock(ctx, "sync")
	if err != nil || !ok {
		t.Fatalf("TryLeaderLock after both released = %v, %v; want ok", ok, err)
	}
	release()
	if release, ok, err := b.TryLeaderLock(ctx, "sync"); err != nil || !ok {
		t.Errorf("TryLeaderLock after release = %v, %v; want ok", ok, err)
	} else {
		release()
	}

	// A waiter whose context ends gives up.
	release, ok, err = a.TryLeaderLock(ctx, "sync")
	if err != nil || !ok {
		t.Fatalf("TryLeaderLock = %v, %v; want ok", ok, err)
	}
	defer release()
	wctx, cancel := context.WithCancel(ctx)
	doneC := make(chan error, 1)
	go func() {
		doneC <- b.WithLeaderLock(wctx, "sync", func(context.Context) error {
			t.Error("fn ran without the lock")
			return nil
		})
	}()
	waitingForLock(t, admin)
	cancel()
	if err := <-doneC; !errors.Is(err, context.Canceled) {
		t.Errorf("WithLeaderLock with a cancelled context = %v, want context.Canceled", err)
	}
}

func TestStore_LeaderLock_connectionKilled(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	a, b, admin := twoReplicas(t)

	inA := make(chan struct{})
	doneA := make(chan error, 1)
	go func() {
		doneA <- a.WithLeaderLock(ctx, "sync", func(ctx context.Context) error {
			close(inA)
			<-ctx.Done() // leads until told otherwise
			return ctx.Err()
		})
	}()
	<-inA
	pid := holder(t, admin)

	inB := make(chan struct{})
	doneB := make(chan error, 1)
	go func() {
		doneB <- b.WithLeaderLock(ctx, "sync", func(context.Context) error {
			close(inB)
			return nil
		})
	}()
	waitingForLock(t, admin)

	// The server ends a's session (a restart, an admin, a network cut):
	// a's fn is cancelled and b takes over.
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	if err := <-doneA; !errors.Is(err, store.ErrLeadershipLost) {
		t.Errorf("a's WithLeaderLock after its connection was killed = %v, want ErrLeadershipLost", err)
	}
	<-inB
	if err := <-doneB; err != nil {
		t.Errorf("b's WithLeaderLock: %v", err)
	}
	// a's pool still works: only the lock's own connection died.
	if err := a.Ping(ctx); err != nil {
		t.Errorf("Ping after losing the lock: %v", err)
	}
}

func TestStore_LeaderLock_idleChecks(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	a, b, admin := twoReplicas(t)

	inA, releaseA := make(chan struct{}), make(chan struct{})
	doneA := make(chan error, 1)
	go func() {
		doneA <- a.WithLeaderLock(ctx, "sync", func(ctx context.Context) error {
			close(inA)
			select {
			case <-releaseA:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	<-inA
	pid := holder(t, admin)
	// An idle leader's connection is checked with a ping (the interval is
	// shortened in TestMain); the server reports the ping as the session's
	// last query. Surviving it, a keeps the lock.
	for {
		var query string
		if err := admin.QueryRow(ctx, `SELECT query FROM pg_stat_activity WHERE pid = $1`, pid).Scan(&query); err != nil {
			t.Fatal(err)
		}
		if query == "-- ping" {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the leader's connection was never checked")
		}
	}
	if release, ok, err := b.TryLeaderLock(ctx, "sync"); err != nil || ok {
		if ok {
			release()
		}
		t.Errorf("TryLeaderLock after the leader's idle check = %v, %v; want the lock still held", ok, err)
	}
	close(releaseA)
	if err := <-doneA; err != nil {
		t.Errorf("WithLeaderLock after idle checks = %v, want nil", err)
	}
}
