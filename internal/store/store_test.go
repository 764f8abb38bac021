package store_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/seatledger/seatledger/internal/store"
	"github.com/seatledger/seatledger/internal/store/storetest"
)

func TestMain(m *testing.M) {
	// Leader tests then run through several idle checks of the lock's
	// connection.
	store.SetLeaderPingInterval(50 * time.Millisecond)
	storetest.Main(m)
}

// newStore returns a store on a fresh database, and a direct connection to
// the same database for checks the store's API does not offer.
func newStore(t *testing.T) (*store.Store, *pgx.Conn) {
	t.Helper()
	dsn := storetest.NewDSN(t)
	st, err := store.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return st, conn
}

func queryInt(t *testing.T, conn *pgx.Conn, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := conn.QueryRow(t.Context(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

func TestOpen_unreachable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, dsn, secret string
	}{
		{"socket directory without a server", "host=/nonexistent/seatledger user=postgres dbname=x connect_timeout=2", ""},
		{"URL with password", "postgres://app:s3cretpw@127.0.0.1:1/seatledger?sslmode=disable&connect_timeout=2", "s3cretpw"},
		{"keywords with password", "host=127.0.0.1 port=1 user=app password=s3cretpw dbname=x sslmode=disable connect_timeout=2", "s3cretpw"},
		{"malformed URL with password", "postgres://app:s3cretpw@127.0.0.1:notaport/seatledger", "s3cretpw"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			st, err := store.Open(t.Context(), tt.dsn)
			if err == nil {
				st.Close()
				t.Fatal("Open succeeded, want an error")
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("Open took %v to fail, want a prompt error", took)
			}
			msg := err.Error()
			if !strings.Contains(msg, "connect to postgres") && !strings.Contains(msg, "parse database url") {
				t.Errorf("Open error %q says neither connect nor parse", msg)
			}
			if tt.secret != "" && strings.Contains(msg, tt.secret) {
				t.Errorf("Open error %q contains the password", msg)
			}
		})
	}
}

func TestStore_Migrate(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, conn := newStore(t)
	log := testLogger(t)

	current, err := st.SchemaCurrent(ctx)
	if err != nil || !current {
		t.Fatalf("SchemaCurrent on a migrated database = %v, %v; want true", current, err)
	}
	// A second Migrate is a no-op.
	if err := st.Migrate(ctx, log); err != nil {
		t.Fatalf("Migrate again: %v", err)
	}

	// Down to zero: every Down section works.
	applied := queryInt(t, conn, `SELECT count(*) FROM goose_db_version WHERE version_id > 0`)
	for range applied {
		if err := st.MigrateDown(ctx, log); err != nil {
			t.Fatalf("MigrateDown: %v", err)
		}
	}
	if n := queryInt(t, conn, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'goose_db_version'`); n != 0 {
		t.Errorf("after migrating down to zero, %d tables remain", n)
	}
	if current, err := st.SchemaCurrent(ctx); err != nil || current {
		t.Errorf("SchemaCurrent after migrating down = %v, %v; want false", current, err)
	}
	var status strings.Builder
	if err := st.MigrationStatus(ctx, &status); err != nil {
		t.Fatalf("MigrationStatus: %v", err)
	}
	if !strings.Contains(status.String(), "00001_allotments.sql") || !strings.Contains(status.String(), "pending") {
		t.Errorf("MigrationStatus after down:\n%s\nwant 00001_allotments.sql pending", status.String())
	}

	// And up again.
	if err := st.Migrate(ctx, log); err != nil {
		t.Fatalf("Migrate after down: %v", err)
	}
	if current, err := st.SchemaCurrent(ctx); err != nil || !current {
		t.Errorf("SchemaCurrent after migrating up again = %v, %v; want true", current, err)
	}
	status.Reset()
	if err := st.MigrationStatus(ctx, &status); err != nil {
		t.Fatalf("MigrationStatus: %v", err)
	}
	if strings.Contains(status.String(), "pending") {
		t.Errorf("MigrationStatus after up:\n%s\nwant nothing pending", status.String())
	}
	// The schema works: an apply succeeds.
	if _, err := applyAllotments(ctx, st, store.SyncRun{StartedAt: t0}, []store.Allotment{allotment("a1", skuTeams, 5)}); err != nil {
		t.Errorf("applying allotments after down/up: %v", err)
	}
}

func TestStore_Ping(t *testing.T) {
	t.Parallel()
	st := storetest.New(t)
	if err := st.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
	st.Close()
	if err := st.Ping(t.Context()); err == nil {
		t.Error("Ping after Close succeeded")
	}
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
