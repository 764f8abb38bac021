package sync

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	gosync "sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/seatledger/seatledger/internal/graphsim"
	"github.com/seatledger/seatledger/internal/pglocal"
	"github.com/seatledger/seatledger/internal/store"
	"github.com/seatledger/seatledger/internal/store/storetest"
)

// stagedSignal is a slog.Handler that closes done when the sync logs that
// it has staged entity: the moment a run is known to be half-way, with
// rows staged and nothing applied.
type stagedSignal struct {
	slog.Handler
	entity string
	once   *gosync.Once
	done   chan struct{}
}

func (h stagedSignal) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "sync staged" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "entity" && a.Value.String() == h.entity {
				h.once.Do(func() { close(h.done) })
			}
			return true
		})
	}
	return h.Handler.Handle(ctx, r)
}

func (h stagedSignal) Enabled(context.Context, slog.Level) bool { return true }

// changeTenant makes a change a partly applied run would show, and holds
// the users listing (staged after every licensing collection) for a while,
// so a run is caught half-way.
func changeTenant(t *testing.T, sim *graphsim.Server, hold time.Duration) {
	t.Helper()
	users := sim.Users()
	must(t, sim.SetDepartment(users[0].ID, "Moved"))
	for _, a := range sim.Assignments()[:2] {
		must(t, sim.Unassign(a.ID))
	}
	if _, err := sim.AdvanceClock(time.Hour); err != nil {
		t.Fatal(err)
	}
	must(t, sim.SetFaults([]graphsim.FaultRule{{Path: "/beta/users/delta", Nth: 1, Kind: graphsim.FaultDelay, Delay: hold.String()}}))
}

// TestMirror_PostgresRestartedMidRun: PostgreSQL restarts while a run has
// staged half its data; the mirror shows the last good run, and the next
// run converges.
func TestMirror_PostgresRestartedMidRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// A server of this test's own, to restart; its directory's parent must
	// be searchable by the postgres user when tests run as root.
	dir, err := os.MkdirTemp("", "seatledger-restart-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	pg, err := pglocal.Start(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Stop() })
	must(t, pg.EnsureDatabase(ctx, "seatledger"))
	st, err := store.Open(ctx, pg.DSN("seatledger"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	must(t, st.Migrate(ctx, slog.New(slog.DiscardHandler)))

	sim, info := startSim(t, nil)
	staged := stagedSignal{Handler: slog.DiscardHandler, entity: "assignment_errors", once: &gosync.Once{}, done: make(chan struct{})}
	s := New(newClient(t, info, info.ClientSecret), st, Options{Now: sim.Now, Logger: slog.New(staged)})
	if _, err := s.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	staged.once.Do(func() {}) // the first run's signal is spent
	lastGood := storeView(t, st, time.Time{})

	staged = stagedSignal{Handler: slog.DiscardHandler, entity: "assignment_errors", once: &gosync.Once{}, done: make(chan struct{})}
	s.log = slog.New(staged)
	changeTenant(t, sim, 2*time.Second)
	result := make(chan error, 1)
	go func() { _, err := s.RunOnce(ctx); result <- err }()
	<-staged.done
	must(t, pg.Stop())
	if pg, err = pglocal.Start(ctx, dir); err != nil {
		t.Fatal(err)
	}
	if err := <-result; err == nil {
		t.Fatal("a run across a PostgreSQL restart succeeded; the restart came too late to test anything")
	}
	if diff := cmp.Diff(lastGood, storeView(t, st, time.Time{})); diff != "" {
		t.Errorf("after a restart mid-run the mirror differs from the last good run (-last good +now):\n%s", diff)
	}
	must(t, sim.SetFaults(nil))
	if _, err := s.RunOnce(ctx); err != nil {
		t.Fatalf("RunOnce() after the restart: %v", err)
	}
	if diff := cmp.Diff(simView(sim), storeView(t, st, time.Time{})); diff != "" {
		t.Errorf("the next run did not converge (-sim +mirror):\n%s", diff)
	}
}

// childEnv, when set, makes the test binary a sync process: it runs one
// sync against the database and simulator named in its environment.
const childEnv = "SEATLEDGER_TEST_SYNC_CHILD"

// runChild is the sync process of TestMirror_SyncProcessKilledMidRun.
func runChild() int {
	var info graphsim.Info
	if err := json.Unmarshal([]byte(os.Getenv(childEnv)), &info); err != nil {
		return 2
	}
	ctx := context.Background()
	st, err := store.Open(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		return 2
	}
	gc, err := clientFor(info, info.ClientSecret)
	if err != nil {
		return 2
	}
	s := New(gc, st, Options{
		Logger: slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if _, err := s.RunOnce(ctx); err != nil {
		return 1
	}
	return 0
}

// TestMirror_SyncProcessKilledMidRun: the process running a sync is killed
// (SIGKILL) with half the data staged; the mirror shows the last good run,
// and the next run converges.
func TestMirror_SyncProcessKilledMidRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sim, info := startSim(t, nil)
	dsn := storetest.NewDSN(t)
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	s := New(newClient(t, info, info.ClientSecret), st, Options{Now: sim.Now})
	if _, err := s.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	lastGood := storeView(t, st, time.Time{})

	changeTenant(t, sim, 20*time.Second)
	infoJSON, err := json.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), childEnv+"="+string(infoJSON), "DATABASE_URL="+dsn)
	stderr, err := child.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	must(t, child.Start())
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })
	halfway := false
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		var e struct{ Msg, Entity string }
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Msg == "sync staged" && e.Entity == "assignment_errors" {
			halfway = true
			break
		}
	}
	if !halfway {
		t.Fatal("the sync process ended without staging the licensing collections")
	}
	must(t, child.Process.Kill())
	_ = child.Wait()

	if diff := cmp.Diff(lastGood, storeView(t, st, time.Time{})); diff != "" {
		t.Errorf("after the sync process was killed the mirror differs from the last good run (-last good +now):\n%s", diff)
	}
	must(t, sim.SetFaults(nil))
	if _, err := s.RunOnce(ctx); err != nil {
		t.Fatalf("RunOnce() after the kill: %v", err)
	}
	if diff := cmp.Diff(simView(sim), storeView(t, st, time.Time{})); diff != "" {
		t.Errorf("the next run did not converge (-sim +mirror):\n%s", diff)
	}
}
