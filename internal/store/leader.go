package store

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrLeadershipLost means the connection holding a leader lock broke, so
// the lock may now be held by another replica.
var ErrLeadershipLost = errors.New("leadership lost")

// leaderKey maps a lock name to its advisory lock key: a fixed 64-bit
// hash, the same on every replica.
func leaderKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("seatledger:" + name))
	return int64(h.Sum64())
}

// leaderConn takes a connection out of the pool for good: a session
// advisory lock lives as long as its connection, which must never serve
// other queries nor go back to the pool.
func (s *Store) leaderConn(ctx context.Context) (*pgx.Conn, error) {
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("acquire connection: %w", err)
	}
	return pc.Hijack(), nil
}

// leaderPingInterval is how often a held lock's connection is checked
// when nothing arrives on it: a server that closes it (restart,
// pg_terminate_backend) is noticed at once, a silent network at the next
// check. A variable so that tests can shorten it.
var leaderPingInterval = 10 * time.Second

// WithLeaderLock runs fn while holding the session advisory lock called
// name, on a connection of its own. It waits until the lock is free (or
// ctx ends: then it returns ctx's error). fn's context is cancelled if the
// lock's connection breaks; WithLeaderLock then returns an error wrapping
// ErrLeadershipLost (joined with fn's error, if any). Otherwise it returns
// fn's error. The lock is released when it returns.
func (s *Store) WithLeaderLock(ctx context.Context, name string, fn func(ctx context.Context) error) error {
	conn, err := s.leaderConn(ctx)
	if err != nil {
		return fmt.Errorf("leader lock %q: %w", name, err)
	}
	defer unlock(ctx, conn, name)
	// pg_advisory_lock waits in the server, so a waiter takes over the
	// moment the holder's session ends; ctx interrupts the wait.
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, leaderKey(name)); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("leader lock %q: take lock: %w", name, err)
	}

	fnCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		watchConn(fnCtx, conn, func(err error) {
			cancel(fmt.Errorf("%w: lock %q: %w", ErrLeadershipLost, name, err))
		})
	}()
	ferr := fn(fnCtx)
	cancel(nil)
	<-watched
	if cause := context.Cause(fnCtx); errors.Is(cause, ErrLeadershipLost) {
		return errors.Join(cause, ferr)
	}
	return ferr
}

// watchConn waits until ctx ends or conn breaks; then it calls lost with
// the connection's error. Nothing else uses conn meanwhile.
func watchConn(ctx context.Context, conn *pgx.Conn, lost func(error)) {
	for ctx.Err() == nil {
		// Waiting for a notification reads the socket, so a server
		// closing the session is seen at once; a timeout leaves the
		// connection usable.
		wctx, cancel := context.WithTimeout(ctx, leaderPingInterval)
		err := conn.PgConn().WaitForNotification(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err == nil: // a notification nobody asked for: ignore it
			continue
		case !pgconn.Timeout(err) || conn.IsClosed(): // only a read timeout is harmless
			lost(err)
			return
		}
		if err := conn.Ping(ctx); err != nil {
			if ctx.Err() == nil {
				lost(err)
			}
			return
		}
	}
}

// TryLeaderLock takes the session advisory lock called name if it is
// free, on a connection of its own, and returns ok = false at once
// otherwise. release frees the lock (closing its connection); it is nil
// unless ok. Unlike WithLeaderLock, nothing watches the connection.
func (s *Store) TryLeaderLock(ctx context.Context, name string) (release func(), ok bool, err error) {
	conn, err := s.leaderConn(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("try leader lock %q: %w", name, err)
	}
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, leaderKey(name)).Scan(&ok); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, false, fmt.Errorf("try leader lock %q: %w", name, err)
	}
	if !ok {
		conn.Close(context.WithoutCancel(ctx))
		return nil, false, nil
	}
	return func() { unlock(ctx, conn, name) }, true, nil
}

// unlock releases the lock called name held by conn, then closes conn.
// Closing alone would release it too, but only once the server has
// noticed; unlocking first makes the lock free when unlock returns.
func unlock(ctx context.Context, conn *pgx.Conn, name string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if !conn.IsClosed() {
		// An error means the session is gone, and its locks with it.
		_, _ = conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, leaderKey(name))
	}
	conn.Close(ctx)
}
