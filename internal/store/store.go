// Package store is the only code that talks to Postgres. It owns every SQL
// statement, every transaction boundary, and the row types the rest of
// seatledger reads and writes; the schema is in /migrations.
//
// Mirrored Graph entities keep dated history: each distinct state of an
// entity is one version row, valid over a time range. A sync streams what
// it reads into a Snapshot (COPY into UNLOGGED staging tables, memory
// bounded by a batch) and applies it in one transaction, set-based, writing
// nothing for what did not change. Reads serve the current state, or the
// state "as of" a past time. WithLeaderLock lets one replica sync at a
// time; correctness does not depend on it (Apply fences stale snapshots).
//
// Driver errors do not leave this package: a missing row wraps ErrNotFound,
// a violated uniqueness or exclusion constraint or a stale write wraps
// ErrConflict, and nothing above store imports pgx.
package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Errors returned (wrapped) by Store methods; test them with errors.Is.
var (
	// ErrNotFound means the requested row does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict means the write collided with the stored state: a
	// duplicate key, overlapping history, or a snapshot older than one
	// already applied.
	ErrConflict = errors.New("conflict")
)

// NotFoundError says which object the mirror does not hold: Kind is
// "allotment", "assignment" or "user", Key what the caller looked it up by,
// AsOf the time asked about (zero for now). It matches ErrNotFound.
type NotFoundError struct {
	Kind, Key string
	AsOf      time.Time
}

func (e *NotFoundError) Error() string {
	if !e.AsOf.IsZero() {
		return fmt.Sprintf("%s %q as of %s: not found", e.Kind, e.Key, e.AsOf.UTC().Format(time.RFC3339Nano))
	}
	return fmt.Sprintf("%s %q: not found", e.Kind, e.Key)
}

// Unwrap makes errors.Is(err, ErrNotFound) hold.
func (e *NotFoundError) Unwrap() error { return ErrNotFound }

// Store is a handle on the seatledger database, safe for concurrent use.
type Store struct {
	pool    *pgxpool.Pool
	changes changes // the mirror's generation (changes.go)
}

// defaultConnectTimeout bounds each connection attempt when the DSN sets
// no connect_timeout, so that an unreachable server fails start-up
// promptly instead of hanging.
const defaultConnectTimeout = 10 * time.Second

// defaultMaxConns is the pool size when the URL sets none.
const defaultMaxConns = 12

// Open connects to the database at dsn (a postgres:// URL or keyword=value
// string, as pgx accepts) and checks that it answers. Errors never contain
// the DSN's password.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %s", redact(err.Error(), dsn, ""))
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	// pgxpool's default (the number of CPUs, at least 4) makes callers
	// queue for a connection long before PostgreSQL is busy: reads are
	// short and many. A pool_max_conns in the URL still wins.
	if !strings.Contains(dsn, "pool_max_conns") && cfg.MaxConns < defaultMaxConns {
		cfg.MaxConns = defaultMaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres: %s", redact(err.Error(), dsn, cfg.ConnConfig.Password))
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to postgres: %s", redact(err.Error(), dsn, cfg.ConnConfig.Password))
	}
	return &Store{pool: pool}, nil
}

// redact removes the password from msg, an error message about dsn: the
// known password when there is one, else whatever dsn's syntax marks as
// one. When dsn is a URL too malformed to find its password, and msg
// quotes dsn, msg is replaced wholesale.
func redact(msg, dsn, password string) string {
	if password == "" {
		password = dsnPassword(dsn)
	}
	if password != "" {
		msg = strings.ReplaceAll(msg, password, "xxxxx")
		msg = strings.ReplaceAll(msg, url.QueryEscape(password), "xxxxx")
		msg = strings.ReplaceAll(msg, url.PathEscape(password), "xxxxx")
	}
	if isURL(dsn) && password == "" && strings.Contains(dsn, "@") {
		if _, err := url.Parse(dsn); err != nil {
			return "malformed postgres URL (details withheld: it may contain a password)"
		}
	}
	return msg
}

func isURL(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// dsnPassword returns the password written in dsn, or "".
func dsnPassword(dsn string) string {
	if isURL(dsn) {
		u, err := url.Parse(dsn)
		if err != nil {
			return ""
		}
		if p, ok := u.User.Password(); ok {
			return p
		}
		return u.Query().Get("password")
	}
	for _, f := range strings.Fields(dsn) {
		if v, ok := strings.CutPrefix(f, "password="); ok {
			return strings.Trim(v, "'")
		}
	}
	return ""
}

// Close closes every connection. The Store must not be used afterwards.
func (s *Store) Close() { s.pool.Close() }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping postgres: %w", err)
	}
	return nil
}

// translate turns driver errors into this package's sentinels: no rows
// becomes ErrNotFound itself (callers say what was not found), a unique or
// exclusion violation wraps ErrConflict and keeps the driver's message for
// logs. Other errors pass unchanged.
func translate(err error) error {
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pgx.ErrNoRows):
		return ErrNotFound
	case errors.As(err, &pgErr) && (pgErr.Code == "23505" || pgErr.Code == "23P01"):
		return fmt.Errorf("%w: %w", ErrConflict, err)
	}
	return err
}
