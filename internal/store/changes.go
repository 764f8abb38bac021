package store

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// changesChannel is the PostgreSQL notification channel that the
// triggers of migration 00009 notify whenever a table the cached reads
// come from is written, by any process.
const changesChannel = "seatledger_mirror"

// listenerName is the application_name of the listening connection.
const listenerName = "seatledger-changes"

// changes is the store's generation of the mirror: a number that moves
// past every change. A read cache keeps what it read under the generation
// it started in, and serves it only while the generation is the same.
type changes struct {
	gen  atomic.Uint64
	live atomic.Bool // notifications are being received: the generation follows every change

	mu    sync.Mutex
	moved chan struct{} // closed when the generation moves
}

func (c *changes) bump() {
	c.gen.Add(1)
	c.mu.Lock()
	if c.moved != nil {
		close(c.moved)
	}
	c.moved = make(chan struct{})
	c.mu.Unlock()
}

// movedChan returns a channel closed at the next bump.
func (c *changes) movedChan() chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.moved == nil {
		c.moved = make(chan struct{})
	}
	return c.moved
}

// Generation returns the mirror's generation and whether it is live: it
// moves at every change to the tables reads come from, made by this
// process (as soon as its transaction commits) or by any other (when
// PostgreSQL delivers the notification, milliseconds later). It is live
// only while WatchChanges receives notifications; a cache must not serve
// what it holds when it is not.
func (s *Store) Generation() (gen uint64, live bool) {
	// live first: a generation read after a true live is one that
	// notifications have kept up to date.
	live = s.changes.live.Load()
	return s.changes.gen.Load(), live
}

// WaitGeneration blocks until the generation is past after, or ctx ends.
func (s *Store) WaitGeneration(ctx context.Context, after uint64) error {
	for {
		moved := s.changes.movedChan()
		if s.changes.gen.Load() > after {
			return nil
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// changed moves the generation after a write of this process, so that its
// own reads never wait for the notification of its own change.
func (s *Store) changed() { s.changes.bump() }

// WatchChanges listens for change notifications on a connection of its
// own until ctx ends, moving the generation at each. While it cannot
// listen (PostgreSQL restarting, the connection lost) the generation is
// not live, and it reconnects with a backoff of up to 30 seconds; once
// listening again it moves the generation, since changes may have been
// missed. It returns nil when ctx ends.
func (s *Store) WatchChanges(ctx context.Context, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	backoff := time.Second
	for {
		err := s.listen(ctx)
		s.changes.live.Store(false)
		s.changes.bump()
		if ctx.Err() != nil {
			return nil
		}
		log.WarnContext(ctx, "read cache off: lost the database's change notifications; reconnecting", "err", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// listen receives notifications until its connection fails or ctx ends.
func (s *Store) listen(ctx context.Context) error {
	cfg := s.pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = listenerName
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+changesChannel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// From here on no change goes unnoticed; what happened before is
	// covered by moving the generation once (after going live, so that
	// whoever sees it move sees the generation live).
	s.changes.live.Store(true)
	s.changes.bump()
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return fmt.Errorf("wait for notification: %w", err)
		}
		s.changes.bump()
	}
}
