package pglocal

import (
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestCheckTraversable(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	open := filepath.Join(base, "open")
	closed := filepath.Join(base, "closed")
	for dir, mode := range map[string]os.FileMode{open: 0o755, closed: 0o700} {
		if err := os.Mkdir(dir, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil { // umask
			t.Fatal(err)
		}
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	// A uid and gid that own nothing here: only "other" bits count.
	stranger := &syscall.Credential{Uid: 54321, Gid: 54321}

	err := checkTraversable(filepath.Join(closed, "pg"), stranger)
	if err == nil || !strings.Contains(err.Error(), closed) {
		t.Errorf("checkTraversable under a 0700 dir = %v, want an error naming %s", err, closed)
	}
	// t.TempDir's own parent is 0700 too, which is exactly the trap; so
	// check the open case from a parent chain we know: /dev/shm or /tmp.
	if err := checkTraversable(filepath.Join(tempRoot(), "pg"), stranger); err != nil {
		t.Errorf("checkTraversable under %s: %v", tempRoot(), err)
	}
}

func TestIsPostgres(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cmdline string
		want    bool
	}{
		{"/usr/lib/postgresql/15/bin/postgres\x00-D\x00/x/data\x00", true},
		{"postgres: checkpointer \x00", true},
		{"postgres: 15/main: walwriter", true},
		{"/bin/sleep\x0060\x00", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := isPostgres([]byte(tt.cmdline)); got != tt.want {
			t.Errorf("isPostgres(%q) = %v, want %v", tt.cmdline, got, tt.want)
		}
	}
}

// TestStart_afterKill covers the zero-config server being killed: the
// next Start must recover the cluster (lock files left behind), refuse a
// cluster another server is running, and not be fooled by a lock file
// whose PID was reused by an unrelated program.
func TestStart_afterKill(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	base, err := os.MkdirTemp(tempRoot(), "pglocal-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "pg")

	s, err := Start(ctx, dir)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	mustExec(t, s.DSN("postgres"), "CREATE TABLE survived (n int)")
	mustExec(t, s.DSN("postgres"), "INSERT INTO survived VALUES (7)")

	// Kill the postmaster as Pdeathsig does when the seatledger server is
	// killed: its children are orphaned and exit when they notice, possibly
	// after the next Start has begun.
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s.done
	pidFile := filepath.Join(dir, "data", "postmaster.pid")
	lockBytes, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("killed server left no postmaster.pid: %v", err)
	}

	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	s, err = Start(ctx, dir, WithLogger(logger))
	if err != nil {
		t.Fatalf("Start after kill: %v", err)
	}
	var n int
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT n FROM survived").Scan(&n); err != nil || n != 7 {
		t.Errorf("after crash recovery: n = %d, err = %v; want 7", n, err)
	}
	conn.Close(ctx)

	// A second server on the same cluster is refused with a clear error.
	if s2, err := Start(ctx, dir); err == nil {
		s2.Stop()
		t.Error("second Start on a cluster in use succeeded")
	} else if !strings.Contains(err.Error(), "in use") {
		t.Errorf("second Start on a cluster in use: %v, want an error saying it is in use", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}

	// A lock file whose PID now belongs to another program.
	other := exec.Command("sleep", "600")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { other.Process.Kill(); other.Wait() }()
	_, rest, _ := strings.Cut(string(lockBytes), "\n")
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(other.Process.Pid)+"\n"+rest), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = Start(ctx, dir, WithLogger(logger))
	if err != nil {
		t.Fatalf("Start with a lock file naming an unrelated live PID: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
}

func mustExec(t *testing.T, dsn, sql string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	if _, err := conn.Exec(t.Context(), sql); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}
