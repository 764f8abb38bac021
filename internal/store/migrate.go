package store

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"path"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/seatledger/seatledger/migrations"
)

// provider returns a goose provider for the embedded migrations over the
// store's pool, holding goose's Postgres session advisory lock while it
// changes the schema, so that replicas starting together apply each
// migration exactly once. The caller closes the returned *sql.DB (which
// leaves the pool open).
func (s *Store) provider() (*goose.Provider, *sql.DB, error) {
	db := stdlib.OpenDBFromPool(s.pool)
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("create migration lock: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS, goose.WithSessionLocker(locker))
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("load migrations: %w", err)
	}
	return p, db, nil
}

// Migrate applies every embedded migration not yet applied, in order,
// logging each one. Each file runs in its own transaction; on failure the
// schema stays at the last file that succeeded.
func (s *Store) Migrate(ctx context.Context, log *slog.Logger) error {
	p, db, err := s.provider()
	if err != nil {
		return err
	}
	defer db.Close()
	results, err := p.Up(ctx)
	for _, r := range results {
		if r.Error == nil {
			log.Info("applied migration", "file", path.Base(r.Source.Path), "took", r.Duration.Round(time.Microsecond))
		}
	}
	if err != nil {
		return fmt.Errorf("migrate up: %w", err)
	}
	return nil
}

// MigrateDown rolls back the most recently applied migration, logging it.
// With nothing applied it returns an error.
func (s *Store) MigrateDown(ctx context.Context, log *slog.Logger) error {
	p, db, err := s.provider()
	if err != nil {
		return err
	}
	defer db.Close()
	r, err := p.Down(ctx)
	if err != nil {
		return fmt.Errorf("migrate down: %w", err)
	}
	log.Info("rolled back migration", "file", path.Base(r.Source.Path), "took", r.Duration.Round(time.Microsecond))
	return nil
}

// MigrationStatus writes a table of every embedded migration to w: its
// version, file name, and when it was applied ("pending" if not yet).
func (s *Store) MigrationStatus(ctx context.Context, w io.Writer) error {
	p, db, err := s.provider()
	if err != nil {
		return err
	}
	defer db.Close()
	status, err := p.Status(ctx)
	if err != nil {
		return fmt.Errorf("read migration status: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tFILE\tAPPLIED AT")
	for _, st := range status {
		applied := "pending"
		if st.State == goose.StateApplied {
			applied = st.AppliedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\n", st.Source.Version, path.Base(st.Source.Path), applied)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write migration status: %w", err)
	}
	return nil
}

// SchemaCurrent reports whether every embedded migration has been applied.
// It takes no lock, so readiness checks can call it while another replica
// migrates.
func (s *Store) SchemaCurrent(ctx context.Context) (bool, error) {
	p, db, err := s.provider()
	if err != nil {
		return false, err
	}
	defer db.Close()
	pending, err := p.HasPending(ctx)
	if err != nil {
		return false, fmt.Errorf("check migrations: %w", err)
	}
	return !pending, nil
}
