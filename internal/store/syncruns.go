package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// Sync run outcomes, as stored in sync_runs.outcome.
const (
	OutcomeRunning   = "running"
	OutcomeSucceeded = "succeeded"
	OutcomeFailed    = "failed"
	OutcomeHeld      = "held"
)

// Changes counts what one sync run did to one kind of entity.
type Changes struct {
	Added, Changed, Removed, Unchanged int64
}

// SyncRun is the record of one sync run.
type SyncRun struct {
	ID int64
	// StartedAt is when the run began reading Graph: the time its snapshot
	// is taken to be "as of". FinishedAt is when it was recorded.
	StartedAt, FinishedAt time.Time
	// Outcome is one of OutcomeRunning, OutcomeSucceeded, OutcomeFailed,
	// OutcomeHeld.
	Outcome string
	// Error says why a failed or held run did not apply; "" otherwise.
	Error string
	// Counts is keyed by entity name: "allotments", "subscriptions".
	Counts map[string]Changes
	// GraphRequests, Throttled and BytesReceived measure the run's Graph
	// traffic: requests sent, of which answered 429, and body bytes read.
	GraphRequests, Throttled, BytesReceived int64
	// Demo marks a run that recorded demo data: the past the
	// zero-configuration demo seeds on its first start.
	Demo bool
}

// changesJSON is the stored form of Changes inside sync_runs.counts.
type changesJSON struct {
	Added     int64 `json:"added"`
	Changed   int64 `json:"changed"`
	Removed   int64 `json:"removed"`
	Unchanged int64 `json:"unchanged"`
}

func encodeCounts(counts map[string]Changes) ([]byte, error) {
	m := make(map[string]changesJSON, len(counts))
	for k, c := range counts {
		m[k] = changesJSON(c)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode counts: %w", err)
	}
	return b, nil
}

// syncRunColumns are the columns scanSyncRun reads, in order.
const syncRunColumns = `id, started_at, finished_at, outcome, error, counts, graph_requests, throttled, bytes_received, demo`

func scanSyncRun(row pgx.CollectableRow) (SyncRun, error) {
	var (
		r        SyncRun
		finished pgtype.Timestamptz
		errText  pgtype.Text
		counts   []byte
	)
	if err := row.Scan(&r.ID, &r.StartedAt, &finished, &r.Outcome, &errText, &counts,
		&r.GraphRequests, &r.Throttled, &r.BytesReceived, &r.Demo); err != nil {
		return SyncRun{}, err
	}
	r.StartedAt = r.StartedAt.UTC()
	if finished.Valid {
		r.FinishedAt = finished.Time.UTC()
	}
	r.Error = errText.String
	var m map[string]changesJSON
	if err := json.Unmarshal(counts, &m); err != nil {
		return SyncRun{}, fmt.Errorf("decode counts of sync run %d: %w", r.ID, err)
	}
	if len(m) > 0 {
		r.Counts = make(map[string]Changes, len(m))
		for k, c := range m {
			r.Counts[k] = Changes(c)
		}
	}
	return r, nil
}

// nullIfEmpty maps "" to SQL NULL.
func nullIfEmpty(s string) pgtype.Text {
	return pgtype.Text{String: s, Valid: s != ""}
}

// finishedAt is run.FinishedAt, or now when the caller left it zero.
func finishedAt(run SyncRun) time.Time {
	if run.FinishedAt.IsZero() {
		return time.Now()
	}
	return run.FinishedAt
}

// RecordFailedSyncRun records a run that did not apply: run.Outcome is
// OutcomeFailed ("" means that) or OutcomeHeld, run.Error says why, and
// FinishedAt defaults to now. It changes nothing else, so the mirror keeps
// the last good state. It returns the stored record, with its ID.
func (s *Store) RecordFailedSyncRun(ctx context.Context, run SyncRun) (SyncRun, error) {
	defer s.changed() // readers see this write at once (changes.go)
	if run.Outcome == "" {
		run.Outcome = OutcomeFailed
	}
	if run.Outcome != OutcomeFailed && run.Outcome != OutcomeHeld {
		return SyncRun{}, fmt.Errorf("record failed sync run: outcome %q is neither %q nor %q", run.Outcome, OutcomeFailed, OutcomeHeld)
	}
	if run.StartedAt.IsZero() {
		return SyncRun{}, errors.New("record failed sync run: StartedAt is not set")
	}
	counts, err := encodeCounts(run.Counts)
	if err != nil {
		return SyncRun{}, fmt.Errorf("record failed sync run: %w", err)
	}
	const q = `
		INSERT INTO sync_runs
			(started_at, finished_at, outcome, error, counts, graph_requests, throttled, bytes_received, demo)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		RETURNING ` + syncRunColumns
	rows, _ := s.pool.Query(ctx, q, run.StartedAt, finishedAt(run), run.Outcome, nullIfEmpty(run.Error), counts,
		run.GraphRequests, run.Throttled, run.BytesReceived, run.Demo)
	rec, err := pgx.CollectExactlyOneRow(rows, scanSyncRun)
	if err != nil {
		return SyncRun{}, fmt.Errorf("record failed sync run: %w", translate(err))
	}
	return rec, nil
}

// defaultPageSize is the page size used when a caller passes 0 or less.
const defaultPageSize = 100

// ListSyncRuns returns up to pageSize runs (0 or less means 100), newest
// (highest ID) first, starting after beforeID: 0 means from the newest, else
// only runs with a smaller ID, so the last ID of one page continues the
// next.
func (s *Store) ListSyncRuns(ctx context.Context, pageSize int, beforeID int64) ([]SyncRun, error) {
	if pageSize <= 0 {
		pageSize = defaultPageSize
	}
	if beforeID <= 0 {
		beforeID = math.MaxInt64
	}
	const q = `
		SELECT ` + syncRunColumns + `
		FROM sync_runs
		WHERE id < $1
		ORDER BY id DESC
		LIMIT $2`
	rows, _ := s.pool.Query(ctx, q, beforeID, pageSize)
	runs, err := pgx.CollectRows(rows, scanSyncRun)
	if err != nil {
		return nil, fmt.Errorf("list sync runs: %w", translate(err))
	}
	return runs, nil
}

// LastSuccessfulSyncRun returns the successful run with the latest
// StartedAt: the run the mirror's current state comes from. The error wraps
// ErrNotFound when no run has succeeded yet.
func (s *Store) LastSuccessfulSyncRun(ctx context.Context) (SyncRun, error) {
	const q = `
		SELECT ` + syncRunColumns + `
		FROM sync_runs
		WHERE outcome = 'succeeded'
		ORDER BY started_at DESC, id DESC
		LIMIT 1`
	rows, _ := s.pool.Query(ctx, q)
	run, err := pgx.CollectExactlyOneRow(rows, scanSyncRun)
	switch err := translate(err); {
	case errors.Is(err, ErrNotFound):
		return SyncRun{}, fmt.Errorf("successful sync run: %w", err)
	case err != nil:
		return SyncRun{}, fmt.Errorf("get last successful sync run: %w", err)
	}
	return run, nil
}
