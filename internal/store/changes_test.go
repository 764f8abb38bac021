package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/seatledger/seatledger/internal/store"
)

// watch runs st.WatchChanges until the test ends and waits until it
// listens.
func watch(t *testing.T, st *store.Store) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	g0, _ := st.Generation()
	wg.Go(func() { _ = st.WatchChanges(ctx, testLogger(t)) })
	waitMoved(t, st, g0)
	if _, live := st.Generation(); !live {
		t.Fatal("the generation moved but is not live once WatchChanges listens")
	}
}

// waitMoved waits (10 s at most) for st's generation to pass g.
func waitMoved(t *testing.T, st *store.Store, g uint64) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := st.WaitGeneration(ctx, g); err != nil {
		t.Fatalf("generation did not move past %d: %v", g, err)
	}
	now, _ := st.Generation()
	return now
}

func TestStore_GenerationFollowsEveryWriter(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, conn := newStore(t)
	if _, live := st.Generation(); live {
		t.Fatal("generation live before WatchChanges runs")
	}
	watch(t, st)

	// This process's own write moves it before the call returns.
	g, _ := st.Generation()
	if err := st.SetAllotmentOwner(ctx, "a1", "Sales", "admin", t0); err != nil {
		t.Fatal(err)
	}
	if now, live := st.Generation(); now <= g || !live {
		t.Errorf("after SetAllotmentOwner: generation %d (live %v), want past %d and live", now, live, g)
	}

	// Another process's writes (here, plain SQL on another connection)
	// move it when PostgreSQL delivers their notification; one per
	// transaction that touches a mirrored table.
	for _, q := range []string{
		`INSERT INTO allotment_owner_versions (allotment_id, owner_department, set_by, valid) VALUES ('a2', 'HR', 'ops', tstzrange(now(), NULL))`,
		`UPDATE user_versions SET department = department`, // even a statement that changes no row
		`DELETE FROM assignment_versions WHERE id = 'none'`,
		`INSERT INTO sync_runs (started_at, finished_at, outcome) VALUES (now(), now(), 'succeeded')`,
	} {
		g, _ := st.Generation()
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		waitMoved(t, st, g)
	}
}

func TestStore_GenerationNotLiveWithoutNotifications(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, conn := newStore(t)
	watch(t, st)
	g, _ := st.Generation()
	// Cut the listening connection, as a PostgreSQL restart would.
	if n := queryInt(t, conn, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = 'seatledger-changes' AND datname = current_database()`); n != 1 {
		t.Fatalf("terminated %d listening connections, want 1", n)
	}
	g = waitMoved(t, st, g)
	if _, live := st.Generation(); live {
		t.Error("generation still live after its connection was cut")
	}
	// It reconnects by itself (after a second) and moves once more, live.
	waitMoved(t, st, g)
	if _, live := st.Generation(); !live {
		t.Error("generation not live after reconnecting")
	}
	g, _ = st.Generation()
	if _, err := conn.Exec(ctx, `DELETE FROM waiting_member_versions WHERE id = 'none'`); err != nil {
		t.Fatal(err)
	}
	waitMoved(t, st, g)
}
