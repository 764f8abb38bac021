// Package pglocal runs a private PostgreSQL server from the binaries
// installed on this machine: initdb and postgres, found on PATH or under
// /usr/lib/postgresql/<version>/bin. cmd/server uses it when no DATABASE_URL
// is configured (a persistent cluster that survives restarts), and storetest
// uses it for tests (a throwaway cluster on tmpfs with fsync off).
//
// The server listens only on a Unix socket in its own directory: there is no
// TCP port to collide on and nothing is reachable from the network, and
// every client on this machine that can enter the directory is trusted.
//
// PostgreSQL refuses to run as root. When this process is root, initdb and
// postgres run as the "postgres" OS user (or "nobody" when there is none),
// the cluster directory is chowned to that user, and every directory above
// it must be searchable by that user; Start checks this and says so.
package pglocal

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// port is the port number the server is told to use. With a Unix socket
// only it just names the socket file (.s.PGSQL.5432); servers in different
// directories do not collide.
const port = 5432

// maxSocketPath is the longest Unix socket path Linux accepts
// (sizeof(sockaddr_un.sun_path) - 1).
const maxSocketPath = 107

// Option changes how Start finds or runs PostgreSQL.
type Option func(*options)

type options struct {
	binDir       string
	log          *slog.Logger
	startTimeout time.Duration
	stopTimeout  time.Duration
}

// WithBinDir makes Start look for initdb and postgres only in dir, instead
// of on PATH and under /usr/lib/postgresql.
func WithBinDir(dir string) Option {
	return func(o *options) { o.binDir = dir }
}

// WithLogger makes the server report what it does (initdb, stale lock
// files, start and stop) to log. Without it nothing is logged.
func WithLogger(log *slog.Logger) Option {
	return func(o *options) { o.log = log }
}

// WithStartTimeout bounds how long Start waits for the server to accept
// connections (default 60 s; crash recovery of a persistent cluster can
// take a while).
func WithStartTimeout(d time.Duration) Option {
	return func(o *options) { o.startTimeout = d }
}

// WithStopTimeout bounds how long Stop waits for a fast shutdown before it
// kills the server (default 30 s).
func WithStopTimeout(d time.Duration) Option {
	return func(o *options) { o.stopTimeout = d }
}

// Server is a running PostgreSQL server that listens only on a Unix socket
// in its directory. Its methods are safe for concurrent use.
type Server struct {
	dir         string
	temp        bool // created by Start; removed by Stop
	log         *slog.Logger
	stopTimeout time.Duration
	cmd         *exec.Cmd

	done    chan struct{} // closed when the postgres process has exited
	waitErr error         // its exit status; read only after done is closed

	stopOnce sync.Once
	stopErr  error
}

// Start starts a PostgreSQL server.
//
// With dir != "", the cluster is persistent: it lives in dir/data, initdb
// runs only when dir/data holds no cluster yet, the data survives Stop and
// later Starts, and fsync stays on. Missing parent directories are created
// with mode 0755. A lock file left by a server that was killed is dealt
// with; a server still running on dir is an error.
//
// With dir == "", the cluster is temporary: it is created in a new
// directory under /dev/shm (os.TempDir when there is no /dev/shm), runs with
// fsync, synchronous_commit and full_page_writes off, and is removed by Stop.
//
// The server log is dir/postgres.log, rewritten at each start. If the server
// cannot start, the error carries the end of that log.
func Start(ctx context.Context, dir string, opts ...Option) (*Server, error) {
	o := options{startTimeout: 60 * time.Second, stopTimeout: 30 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	bin, err := findBinaries(o.binDir)
	if err != nil {
		return nil, err
	}
	cred, err := unprivilegedUser()
	if err != nil {
		return nil, err
	}

	temp := dir == ""
	if temp {
		if dir, err = os.MkdirTemp(tempRoot(), "seatledger-pg-"); err != nil {
			return nil, fmt.Errorf("create temporary cluster directory: %w", err)
		}
	} else if dir, err = makeClusterDir(dir); err != nil {
		return nil, err
	}
	s, err := start(ctx, dir, temp, bin, cred, o)
	if err != nil && temp {
		_ = os.RemoveAll(dir)
	}
	return s, err
}

func start(ctx context.Context, dir string, temp bool, bin string, cred *syscall.Credential, o options) (*Server, error) {
	if len(filepath.Join(dir, ".s.PGSQL."+strconv.Itoa(port))) > maxSocketPath {
		return nil, fmt.Errorf("start postgres in %s: the path is too long for a Unix socket (at most %d bytes with the socket name); choose a shorter directory",
			dir, maxSocketPath)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, fmt.Errorf("hand cluster directory to the postgres user: %w", err)
		}
		if err := checkTraversable(dir, cred); err != nil {
			return nil, err
		}
	}

	data := filepath.Join(dir, "data")
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); errors.Is(err, fs.ErrNotExist) {
		args := []string{"-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale", "--no-instructions"}
		if temp {
			args = append(args, "--no-sync")
		}
		initdb := command(ctx, cred, dir, filepath.Join(bin, "initdb"), args...)
		t0 := time.Now()
		if out, err := initdb.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("initdb %s: %w\n%s", data, err, bytes.TrimSpace(out))
		}
		o.log.Info("initialized postgres cluster", "dir", data, "took", time.Since(t0).Round(time.Millisecond))
	} else if err != nil {
		return nil, fmt.Errorf("inspect cluster directory: %w", err)
	}
	if !temp {
		if err := clearStaleLockFiles(ctx, o.log, data, filepath.Join(data, "postmaster.pid"),
			filepath.Join(dir, ".s.PGSQL."+strconv.Itoa(port)+".lock")); err != nil {
			return nil, err
		}
	}

	logPath := filepath.Join(dir, "postgres.log")
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create server log: %w", err)
	}
	defer logFile.Close() // the child keeps its own descriptor

	args := []string{"-D", data, "-k", dir, "-p", strconv.Itoa(port), "-c", "listen_addresses="}
	if temp {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	// Not CommandContext: ctx bounds starting, not the server's lifetime.
	cmd := command(context.Background(), cred, dir, filepath.Join(bin, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	s := &Server{dir: dir, temp: temp, log: o.log, stopTimeout: o.stopTimeout, cmd: cmd, done: make(chan struct{})}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.done)
	}()
	if err := s.waitReady(ctx, o.startTimeout); err != nil {
		_ = s.kill()
		return nil, fmt.Errorf("start postgres in %s: %w\n%s", dir, err, logTail(logPath))
	}
	o.log.Info("postgres started", "dir", dir, "temporary", temp, "pid", cmd.Process.Pid,
		"took", time.Since(t0).Round(time.Millisecond))
	return s, nil
}

// makeClusterDir creates dir (mode 0700) and its missing parents (0755) and
// returns its absolute path.
func makeClusterDir(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("resolve cluster directory: %w", err)
	}
	// 0755 parents: when we are root, the postgres user must be able to
	// walk through them to the cluster.
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", fmt.Errorf("create cluster directory: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("create cluster directory: %w", err)
	}
	return dir, nil
}

// command returns a command for a PostgreSQL program that runs as cred
// (nil: as ourselves) in its own process group, and is killed if we die.
func command(ctx context.Context, cred *syscall.Credential, dir, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir // our own working directory may be closed to the postgres user
	cmd.Env = childEnv(dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own process group: a terminal's Ctrl-C reaches only us, and
		// we stop PostgreSQL in order.
		Setpgid: true,
		// PostgreSQL never outlives us. Go applies it after the uid change,
		// so it holds for the unprivileged child.
		Pdeathsig:  syscall.SIGKILL,
		Credential: cred,
	}
	return cmd
}

// childEnv is our environment without PG* variables (PGPORT, PGDATA and
// friends would change what initdb and postgres do), with HOME pointing at
// the cluster directory, which the child can read.
func childEnv(dir string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+dir)
}

// waitReady returns once the server accepts connections, or with the reason
// it could not start.
func (s *Server) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		conn, err := pgconn.Connect(ctx, s.DSN("postgres"))
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-s.done:
			return fmt.Errorf("postgres exited while starting: %v", s.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("postgres did not accept connections: %w (last error: %v)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// logTail returns the end of the server log, for error messages.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(server log unavailable: %v)", err)
	}
	const max = 4096
	if len(b) > max {
		b = b[len(b)-max:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return "server log " + path + ":\n" + string(bytes.TrimSpace(b))
}

// Dir returns the server's directory: the cluster is Dir()/data, the
// socket and postgres.log are directly in Dir().
func (s *Server) Dir() string { return s.dir }

// DSN returns a pgx connection string for database db on this server, as
// the superuser "postgres" over the Unix socket.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=%s sslmode=disable",
		quoteDSNValue(s.dir), port, quoteDSNValue(db))
}

// quoteDSNValue quotes v for a keyword=value connection string.
func quoteDSNValue(v string) string {
	if v != "" && !strings.ContainsAny(v, ` '\`) {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// Done is closed when the server process has exited, whether by Stop or
// by itself. Err then tells why.
func (s *Server) Done() <-chan struct{} { return s.done }

// Err returns the server process's exit status once Done is closed, and
// nil before.
func (s *Server) Err() error {
	select {
	case <-s.done:
		return s.waitErr
	default:
		return nil
	}
}

// EnsureDatabase creates database name on this server unless it exists.
// It is safe to call concurrently and on every start.
func (s *Server) EnsureDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("connect to local postgres: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	const q = `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`
	var exists bool
	if err := conn.QueryRow(ctx, q, name).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %q: %w", name, err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "42P04": // duplicate_database: a concurrent caller won
		return nil
	case err != nil:
		return fmt.Errorf("create database %q: %w", name, err)
	}
	s.log.Info("created database", "name", name)
	return nil
}

// Stop shuts the server down in fast mode (open transactions roll back,
// then a checkpoint), kills it if it has not stopped within the stop
// timeout, and removes a temporary server's directory. Calling it again
// returns the first call's result.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() { s.stopErr = s.stop() })
	return s.stopErr
}

func (s *Server) stop() error {
	var errs []error
	select {
	case <-s.done:
		errs = append(errs, fmt.Errorf("postgres had already exited: %v", s.waitErr))
	default:
		_ = s.cmd.Process.Signal(syscall.SIGINT) // fast shutdown
		t := time.NewTimer(s.stopTimeout)
		select {
		case <-s.done:
			t.Stop()
			if s.waitErr != nil {
				errs = append(errs, fmt.Errorf("postgres shutdown: %w", s.waitErr))
			}
		case <-t.C:
			_ = s.kill()
			errs = append(errs, fmt.Errorf("postgres did not shut down within %v; killed it", s.stopTimeout))
		}
	}
	if s.temp {
		if err := os.RemoveAll(s.dir); err != nil {
			errs = append(errs, fmt.Errorf("remove temporary cluster: %w", err))
		}
	}
	s.log.Info("postgres stopped", "dir", s.dir)
	return errors.Join(errs...)
}

// kill kills the server's whole process group and waits for the postmaster
// to exit.
func (s *Server) kill() error {
	err := syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// DefaultDataDir is where a persistent cluster lives when nothing else is
// configured: /var/lib/seatledger/pg for root (its parents are searchable
// by the postgres user), else $XDG_DATA_HOME/seatledger/pg, else
// ~/.local/share/seatledger/pg, else seatledger-data/pg in the working
// directory when there is no home directory.
func DefaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/seatledger/pg"
	}
	if x := os.Getenv("XDG_DATA_HOME"); filepath.IsAbs(x) {
		return filepath.Join(x, "seatledger", "pg")
	}
	if home, err := os.UserHomeDir(); err == nil && home != "" {
		return filepath.Join(home, ".local", "share", "seatledger", "pg")
	}
	return filepath.Join("seatledger-data", "pg")
}

// tempRoot is where temporary clusters go: tmpfs when there is one (initdb
// and CREATE DATABASE are several times faster there), else os.TempDir.
// Both are world-searchable, which the postgres user needs when we are root.
func tempRoot() string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() && fi.Mode().Perm()&0o003 == 0o003 {
		return "/dev/shm"
	}
	return os.TempDir()
}

// unprivilegedUser returns the credential PostgreSQL must run under: nil
// (run as ourselves) when we are not root, else the "postgres" user's, or
// "nobody"'s when there is no postgres user.
func unprivilegedUser() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("running as root, and there is no postgres or nobody user to run PostgreSQL as (PostgreSQL refuses to run as root)")
}

// checkTraversable reports an error naming the first directory above dir
// that the user cred cannot search (enter). PostgreSQL running as that
// user must reach its data directory through all of them.
func checkTraversable(dir string, cred *syscall.Credential) error {
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("inspect %s: %w", p, err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		mode := fi.Mode().Perm()
		var searchable bool
		switch {
		case !ok:
			searchable = mode&0o001 != 0
		case st.Uid == cred.Uid:
			searchable = mode&0o100 != 0
		case st.Gid == cred.Gid:
			searchable = mode&0o010 != 0
		default:
			searchable = mode&0o001 != 0
		}
		if !searchable {
			return fmt.Errorf("cannot run postgres in %s: PostgreSQL runs as uid %d (it refuses root), which cannot enter %s (mode %04o); "+
				"choose a directory whose parents are world-searchable, such as %s", dir, cred.Uid, p, mode, "/var/lib/seatledger/pg")
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// clearStaleLockFiles deals with lock files (postmaster.pid, the socket's
// .lock) left by a server on data that did not shut down, before postgres
// sees them. A lock whose process is gone is left to postgres, which
// replaces it. A lock whose process is a postgres serving data means the
// cluster is in use: that is an error. A lock whose PID now belongs to some
// other program (PIDs are reused, often so in containers) would make
// postgres refuse to start, so it is removed here.
//
// When a lock is stale, server processes of the dead postmaster may still be
// exiting (a killed postmaster's children notice its death a moment later),
// and postgres refuses to start while they hold the old shared memory; they
// are killed and waited for.
func clearStaleLockFiles(ctx context.Context, log *slog.Logger, data string, paths ...string) error {
	stale := false
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return fmt.Errorf("read lock file: %w", err)
		}
		first, _, _ := strings.Cut(string(b), "\n")
		pid, err := strconv.Atoi(strings.TrimSpace(first))
		if err != nil || pid <= 0 {
			continue // postgres reports malformed lock files itself
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			log.Info("found lock file of a server that is gone; postgres will replace it", "file", path, "pid", pid)
			stale = true
			continue
		}
		owns, known := ownsCluster(pid, data)
		if !known {
			continue // let postgres decide
		}
		if owns {
			return fmt.Errorf("postgres cluster %s is in use by a running server (PID %d, lock file %s): stop that server, or use another directory",
				data, pid, path)
		}
		log.Warn("removing stale lock file: its PID now belongs to another program", "file", path, "pid", pid)
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("remove stale lock file: %w", err)
		}
		stale = true
	}
	if stale {
		return killOrphans(ctx, log, data)
	}
	return nil
}

// killOrphans kills the server processes still working on data (their
// working directory) after their postmaster died, and waits until they are
// gone.
func killOrphans(ctx context.Context, log *slog.Logger, data string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		pids := processesIn(data)
		if len(pids) == 0 {
			return nil
		}
		log.Warn("killing leftover processes of a dead postgres server", "pids", pids)
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("leftover processes of a dead postgres server on %s (PIDs %v) did not exit: %w", data, pids, ctx.Err())
		case <-tick.C:
		}
	}
}

// processesIn returns the PIDs of the live postgres processes whose working
// directory is dir.
func processesIn(dir string) []int {
	want, err := filepath.EvalSymlinks(dir)
	if err != nil {
		want = dir
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err != nil || cwd != want { // also fails for zombies: they hold nothing
			continue
		}
		if cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil && isPostgres(cmdline) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// ownsCluster reports whether process pid is a PostgreSQL server process
// working on data, and whether it could tell. Every server process runs
// with the data directory as its working directory; when that cannot be
// read, any postgres process counts, to be safe.
func ownsCluster(pid int, data string) (owns, known bool) {
	if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); err == nil {
		want, err := filepath.EvalSymlinks(data)
		if err != nil {
			want = data
		}
		return cwd == want, true
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false, false
	}
	return isPostgres(cmdline), true
}

// isPostgres reports whether a /proc/<pid>/cmdline is a PostgreSQL server
// process (the postmaster, or a backend that renamed itself "postgres: ...").
func isPostgres(cmdline []byte) bool {
	argv0, _, _ := bytes.Cut(cmdline, []byte{0})
	name := filepath.Base(string(argv0))
	return name == "postgres" || name == "postmaster" || strings.HasPrefix(string(argv0), "postgres:")
}

// ErrNoBinaries is returned (wrapped) by Start when initdb and postgres
// cannot be found.
var ErrNoBinaries = errors.New(`PostgreSQL server binaries (initdb, postgres) not found; install them with "apt-get install postgresql"`)

// findBinaries returns the directory holding both initdb and postgres: dir
// when it is set; else the directory of the initdb on PATH with symlinks
// resolved (so that postgres comes from the same installation); else the
// highest-versioned /usr/lib/postgresql/<version>/bin.
func findBinaries(dir string) (string, error) {
	var candidates []string
	if dir != "" {
		candidates = []string{dir}
	} else {
		if p, err := exec.LookPath("initdb"); err == nil {
			if real, err := filepath.EvalSymlinks(p); err == nil {
				candidates = append(candidates, filepath.Dir(real))
			}
		}
		candidates = append(candidates, debianBinDirs()...)
	}
	for _, c := range candidates {
		if isExecutable(filepath.Join(c, "initdb")) && isExecutable(filepath.Join(c, "postgres")) {
			return c, nil
		}
	}
	where := "on PATH or in /usr/lib/postgresql/*/bin"
	if dir != "" {
		where = "in " + dir
	}
	return "", fmt.Errorf("looked %s: %w", where, ErrNoBinaries)
}

// debianBinDirs returns /usr/lib/postgresql/<version>/bin directories,
// highest version first.
func debianBinDirs() []string {
	entries, err := os.ReadDir("/usr/lib/postgresql")
	if err != nil {
		return nil
	}
	type versioned struct {
		major, minor int
		dir          string
	}
	var vs []versioned
	for _, e := range entries {
		majorStr, minorStr, _ := strings.Cut(e.Name(), ".")
		major, err := strconv.Atoi(majorStr)
		if err != nil {
			continue
		}
		minor, _ := strconv.Atoi(minorStr) // "9.6" style; absent is 0
		vs = append(vs, versioned{major, minor, filepath.Join("/usr/lib/postgresql", e.Name(), "bin")})
	}
	slices.SortFunc(vs, func(a, b versioned) int { // highest first
		return cmp.Or(cmp.Compare(b.major, a.major), cmp.Compare(b.minor, a.minor))
	})
	dirs := make([]string, len(vs))
	for i, v := range vs {
		dirs[i] = v.dir
	}
	return dirs
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}
