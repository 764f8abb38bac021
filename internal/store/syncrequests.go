package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// ErrLeaderUnavailable means a request meant for the sync leader was not
// answered: no replica took it in time, or the one that took it stopped
// leading before it answered. Its message names the leader when one is
// known; the caller may retry.
var ErrLeaderUnavailable = errors.New("the sync leader is unavailable")

// Notification channels of sync requests (migration 00012): a new request
// wakes the leader; a finished one wakes the replica waiting for it.
const (
	syncRequestsChannel     = "seatledger_sync_requests"
	syncRequestsDoneChannel = "seatledger_sync_request_done"
)

// LeaderInfo says which process holds a leader lock.
type LeaderInfo struct {
	// Instance is the process's own id (unique per process start); Host
	// and PID say where it runs.
	Instance, Host string
	PID            int
	// Since is when it took the lock.
	Since time.Time
}

// String names the leader for error messages and logs.
func (l LeaderInfo) String() string {
	return fmt.Sprintf("%s (host %s, pid %d, leading since %s)", l.Instance, l.Host, l.PID, l.Since.UTC().Format(time.RFC3339))
}

// lockHolderPID selects the backend pid of the session that holds the
// advisory lock with key $1 in this database: pg_locks splits a bigint key
// into classid (high 32 bits) and objid (low 32 bits), with objsubid 1.
const lockHolderPID = `
	SELECT pid FROM pg_locks
	WHERE locktype = 'advisory' AND granted AND objsubid = 1
	  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
	  AND classid::bigint = (($1::bigint >> 32) & 4294967295)
	  AND objid::bigint = ($1::bigint & 4294967295)`

// RecordLeader records that info's process now holds the leader lock
// called name (taken with WithLeaderLock or TryLeaderLock on this
// database), replacing whoever held it before. It fails if nobody holds
// the lock.
func (s *Store) RecordLeader(ctx context.Context, name string, info LeaderInfo) error {
	const q = `
		INSERT INTO sync_leaders (lock_name, instance, host, pid, backend_pid, since)
		SELECT $2, $3, $4, $5, holder.pid, $6
		FROM (` + lockHolderPID + `) AS holder
		ON CONFLICT (lock_name) DO UPDATE
		SET instance = EXCLUDED.instance, host = EXCLUDED.host, pid = EXCLUDED.pid,
		    backend_pid = EXCLUDED.backend_pid, since = EXCLUDED.since`
	tag, err := s.pool.Exec(ctx, q, leaderKey(name), name, info.Instance, info.Host, info.PID, info.Since)
	if err != nil {
		return fmt.Errorf("record leader of %q: %w", name, translate(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("record leader of %q: nobody holds the lock", name)
	}
	return nil
}

// Leader returns the process last recorded as holding the leader lock
// called name, and whether it holds it now (the lock is held by the
// session it recorded). The error wraps ErrNotFound when no leader was
// ever recorded.
func (s *Store) Leader(ctx context.Context, name string) (info LeaderInfo, holds bool, err error) {
	const q = `
		SELECT instance, host, pid, since,
		       EXISTS (SELECT 1 FROM (` + lockHolderPID + `) AS holder WHERE holder.pid = l.backend_pid)
		FROM sync_leaders AS l
		WHERE lock_name = $2`
	err = s.pool.QueryRow(ctx, q, leaderKey(name), name).Scan(&info.Instance, &info.Host, &info.PID, &info.Since, &holds)
	if err != nil {
		return LeaderInfo{}, false, fmt.Errorf("leader of %q: %w", name, translate(err))
	}
	info.Since = info.Since.UTC()
	return info, holds, nil
}

// SyncRequest is a sync run asked of the leader by some replica.
type SyncRequest struct {
	ID int64
	// RequestedBy is the asking process's instance id.
	RequestedBy string
	// Force lets the run apply what the mass-deletion guard would hold.
	Force bool
	// TakeBy is the latest time a leader may claim the request.
	TakeBy time.Time
	// ClaimedBy is the instance id of the leader that took it; "" and a
	// zero ClaimedAt while nobody has.
	ClaimedBy string
	ClaimedAt time.Time
	// FinishedAt is set when the request is answered: SyncRunID is the run
	// that answers it (0 if none was recorded) and Error why that run, or
	// the request, failed ("" if it did not).
	FinishedAt time.Time
	SyncRunID  int64
	Error      string
}

const syncRequestColumns = `id, requested_by, force, take_by, claimed_by, claimed_at, finished_at, sync_run_id, error`

func scanSyncRequest(row pgx.CollectableRow) (SyncRequest, error) {
	var (
		r                   SyncRequest
		claimedBy, errText  pgtype.Text
		claimedAt, finished pgtype.Timestamptz
		runID               pgtype.Int8
	)
	if err := row.Scan(&r.ID, &r.RequestedBy, &r.Force, &r.TakeBy, &claimedBy, &claimedAt, &finished, &runID, &errText); err != nil {
		return SyncRequest{}, err
	}
	r.TakeBy = r.TakeBy.UTC()
	r.ClaimedBy, r.Error, r.SyncRunID = claimedBy.String, errText.String, runID.Int64
	if claimedAt.Valid {
		r.ClaimedAt = claimedAt.Time.UTC()
	}
	if finished.Valid {
		r.FinishedAt = finished.Time.UTC()
	}
	return r, nil
}

// RequestSync asks the sync leader for a run: it records the request and
// wakes the leader (ListenSyncRequests). A leader may claim it until
// takeBy. It returns the request's ID.
func (s *Store) RequestSync(ctx context.Context, requestedBy string, force bool, takeBy time.Time) (int64, error) {
	const q = `
		WITH req AS (
			INSERT INTO sync_requests (requested_by, force, take_by) VALUES ($1, $2, $3) RETURNING id
		)
		SELECT id, pg_notify('` + syncRequestsChannel + `', id::text) FROM req`
	var id int64
	if err := s.pool.QueryRow(ctx, q, requestedBy, force, takeBy).Scan(&id, nil); err != nil {
		return 0, fmt.Errorf("request sync: %w", translate(err))
	}
	return id, nil
}

// ClaimSyncRequests takes, for the leader named by, every open request
// that may still be claimed, oldest first.
func (s *Store) ClaimSyncRequests(ctx context.Context, by string) ([]SyncRequest, error) {
	const q = `
		UPDATE sync_requests SET claimed_by = $1, claimed_at = now()
		WHERE claimed_at IS NULL AND finished_at IS NULL AND take_by > now()
		RETURNING ` + syncRequestColumns
	rows, _ := s.pool.Query(ctx, q, by)
	reqs, err := pgx.CollectRows(rows, scanSyncRequest)
	if err != nil {
		return nil, fmt.Errorf("claim sync requests: %w", translate(err))
	}
	// RETURNING lists them in no particular order.
	slices.SortFunc(reqs, func(a, b SyncRequest) int { return cmp.Compare(a.ID, b.ID) })
	return reqs, nil
}

// syncRequestRetention is how long a finished request is kept: long after
// its asker stopped waiting, short enough that the table stays a handful
// of rows however long seatledger runs.
const syncRequestRetention = "1 day"

// FinishSyncRequests answers the requests ids with the run runID (0 when
// no run was recorded) and errText ("" when it succeeded), and wakes the
// replicas waiting for them. It also drops the requests finished more
// than syncRequestRetention ago (their runs stay in sync_runs).
func (s *Store) FinishSyncRequests(ctx context.Context, ids []int64, runID int64, errText string) error {
	const q = `
		WITH done AS (
			UPDATE sync_requests SET finished_at = now(), sync_run_id = $2, error = $3
			WHERE id = ANY($1) AND finished_at IS NULL
			RETURNING id
		), pruned AS (
			DELETE FROM sync_requests
			WHERE finished_at < now() - interval '` + syncRequestRetention + `'
		)
		SELECT pg_notify('` + syncRequestsDoneChannel + `', id::text) FROM done`
	run := pgtype.Int8{Int64: runID, Valid: runID > 0}
	rows, _ := s.pool.Query(ctx, q, ids, run, nullIfEmpty(errText))
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("finish sync requests: %w", translate(err))
	}
	return nil
}

// AbandonSyncRequest closes request id with errText if no leader has
// claimed it yet, and reports whether it did; a claimed request is left to
// its leader.
func (s *Store) AbandonSyncRequest(ctx context.Context, id int64, errText string) (bool, error) {
	const q = `
		UPDATE sync_requests SET finished_at = now(), error = $2
		WHERE id = $1 AND claimed_at IS NULL AND finished_at IS NULL`
	tag, err := s.pool.Exec(ctx, q, id, errText)
	if err != nil {
		return false, fmt.Errorf("abandon sync request %d: %w", id, translate(err))
	}
	return tag.RowsAffected() == 1, nil
}

// GetSyncRequest returns request id; the error wraps ErrNotFound if there
// is none.
func (s *Store) GetSyncRequest(ctx context.Context, id int64) (SyncRequest, error) {
	rows, _ := s.pool.Query(ctx, `SELECT `+syncRequestColumns+` FROM sync_requests WHERE id = $1`, id)
	r, err := pgx.CollectExactlyOneRow(rows, scanSyncRequest)
	if err != nil {
		return SyncRequest{}, fmt.Errorf("get sync request %d: %w", id, translate(err))
	}
	return r, nil
}

// GetSyncRun returns the sync run id; the error wraps ErrNotFound if there
// is none.
func (s *Store) GetSyncRun(ctx context.Context, id int64) (SyncRun, error) {
	rows, _ := s.pool.Query(ctx, `SELECT `+syncRunColumns+` FROM sync_runs WHERE id = $1`, id)
	r, err := pgx.CollectExactlyOneRow(rows, scanSyncRun)
	if err != nil {
		return SyncRun{}, fmt.Errorf("get sync run %d: %w", id, translate(err))
	}
	return r, nil
}

// ListenSyncRequests calls wake once it listens for new sync requests and
// again at every one, until ctx ends (it returns nil then) or its
// connection fails (it returns the error). The first call covers requests
// made before it listened.
func (s *Store) ListenSyncRequests(ctx context.Context, wake func()) error {
	conn, err := s.listenConn(ctx, syncRequestsChannel)
	if err != nil {
		return fmt.Errorf("listen for sync requests: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	wake()
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("listen for sync requests: %w", err)
		}
		wake()
	}
}

// WaitSyncRequest waits until request id is finished and returns it. It
// reads the request when it starts and whenever a request is finished;
// after each read of an unfinished one it calls check, stops with check's
// error if it returns one, and else reads again after check's wait at the
// latest (should a notification be lost, or for check to look again). It
// stops with ctx's error when ctx ends.
func (s *Store) WaitSyncRequest(ctx context.Context, id int64, check func(SyncRequest) (wait time.Duration, err error)) (SyncRequest, error) {
	conn, err := s.listenConn(ctx, syncRequestsDoneChannel)
	if err != nil {
		return SyncRequest{}, fmt.Errorf("wait for sync request %d: %w", id, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for {
		r, err := s.GetSyncRequest(ctx, id)
		if err != nil {
			return SyncRequest{}, err
		}
		if !r.FinishedAt.IsZero() {
			return r, nil
		}
		wait, err := check(r)
		if err != nil {
			return r, err
		}
		wctx, cancel := context.WithTimeout(ctx, wait)
		_, err = conn.WaitForNotification(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return r, ctx.Err()
		case err != nil && !pgconn.Timeout(err):
			return r, fmt.Errorf("wait for sync request %d: %w", id, err)
		}
	}
}

// listenConn opens a connection of its own (notifications arrive on the
// connection that listens, so it cannot go back to the pool) listening on
// channel.
func (s *Store) listenConn(ctx context.Context, channel string) (*pgx.Conn, error) {
	cfg := s.pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = listenerName
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+channel); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("listen: %w", err)
	}
	return conn, nil
}
