package pglocal_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/seatledger/seatledger/internal/pglocal"
)

// persistentBase returns a new directory that the postgres user can enter
// when the tests run as root (t.TempDir's parents are 0700), removed when
// the test ends.
func persistentBase(t *testing.T) string {
	t.Helper()
	root := os.TempDir()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		root = "/dev/shm"
	}
	base, err := os.MkdirTemp(root, "pglocal-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	return base
}

func exec1(t *testing.T, dsn, sql string, args ...any) {
	t.Helper()
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}

func queryInt(t *testing.T, dsn, sql string) int {
	t.Helper()
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, sql).Scan(&n); err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	return n
}

func TestStart_temporary(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, err := pglocal.Start(ctx, "")
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			s.Stop()
		}
	})

	if got := queryInt(t, s.DSN("postgres"), "SELECT 1"); got != 1 {
		t.Errorf("SELECT 1 = %d, want 1", got)
	}
	// Throwaway settings, and no TCP listener.
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "listen_addresses": ""} {
		var got string
		if err := conn.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	conn.Close(ctx)

	// EnsureDatabase creates once and is idempotent.
	for range 2 {
		if err := s.EnsureDatabase(ctx, "seat ledger"); err != nil {
			t.Fatalf("EnsureDatabase: %v", err)
		}
	}
	if got := queryInt(t, s.DSN("seat ledger"), "SELECT 2"); got != 2 {
		t.Errorf("SELECT 2 in new database = %d", got)
	}

	stopped = true
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := os.Stat(s.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary directory %s still there after Stop (stat: %v)", s.Dir(), err)
	}
	select {
	case <-s.Done():
	default:
		t.Error("Done not closed after Stop")
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestStart_persistentKeepsData(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := filepath.Join(persistentBase(t), "nested", "pg") // parents created by Start

	s, err := pglocal.Start(ctx, dir)
	if err != nil {
		t.Fatalf("first Start: %v", err)
	}
	if err := s.EnsureDatabase(ctx, "seatledger"); err != nil {
		t.Fatal(err)
	}
	exec1(t, s.DSN("seatledger"), "CREATE TABLE kept (n int)")
	exec1(t, s.DSN("seatledger"), "INSERT INTO kept VALUES (42)")
	fsync := queryInt(t, s.DSN("postgres"), "SELECT (current_setting('fsync') = 'on')::int")
	if fsync != 1 {
		t.Errorf("persistent cluster runs with fsync off")
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("first Stop: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "PG_VERSION")); err != nil {
		t.Fatalf("cluster gone after Stop: %v", err)
	}

	s, err = pglocal.Start(ctx, dir)
	if err != nil {
		t.Fatalf("second Start: %v", err)
	}
	defer s.Stop()
	if err := s.EnsureDatabase(ctx, "seatledger"); err != nil {
		t.Fatal(err)
	}
	if got := queryInt(t, s.DSN("seatledger"), "SELECT n FROM kept"); got != 42 {
		t.Errorf("after restart, kept.n = %d, want 42", got)
	}
}

func TestStart_missingBinaries(t *testing.T) {
	t.Parallel()
	empty := t.TempDir()
	_, err := pglocal.Start(t.Context(), "", pglocal.WithBinDir(empty))
	if !errors.Is(err, pglocal.ErrNoBinaries) {
		t.Fatalf("Start with empty bin dir: err = %v, want ErrNoBinaries", err)
	}
	for _, want := range []string{"apt-get install postgresql", empty} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestDefaultDataDir(t *testing.T) {
	got := pglocal.DefaultDataDir()
	if os.Geteuid() == 0 {
		if got != "/var/lib/seatledger/pg" {
			t.Errorf("DefaultDataDir() as root = %q, want /var/lib/seatledger/pg", got)
		}
		return
	}
	t.Setenv("XDG_DATA_HOME", "/xdg")
	if got := pglocal.DefaultDataDir(); got != "/xdg/seatledger/pg" {
		t.Errorf("DefaultDataDir() with XDG_DATA_HOME=/xdg = %q", got)
	}
}

func TestStart_initdbFailureShowsOutput(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(persistentBase(t), "pg")
	// A data directory that is neither empty nor a cluster: initdb refuses.
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data", "stray"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := pglocal.Start(t.Context(), dir)
	if err == nil {
		s.Stop()
		t.Fatal("Start on a non-empty, non-cluster data directory succeeded")
	}
	for _, want := range []string{"initdb", "exists but is not empty"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Start error %q does not contain %q", err, want)
		}
	}
}
