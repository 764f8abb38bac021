package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrIdempotencyMismatch means an idempotency key was sent again with a
// different request than the one it was first used with.
var ErrIdempotencyMismatch = errors.New("idempotency key was used with a different request")

// IdempotencyKey identifies one caller's use of one key for one method.
// Keys are scoped by caller and method: two callers choosing the same key
// never see each other's results.
type IdempotencyKey struct {
	Caller, Method, Key string
}

// hash is the stored primary key: fixed length, whatever the key's.
func (k IdempotencyKey) hash() string {
	sum := sha256.Sum256([]byte(k.Caller + "\x00" + k.Method + "\x00" + k.Key))
	return hex.EncodeToString(sum[:])
}

// IdempotentResult is the stored outcome of the first completed attempt
// under a key: a gRPC code and an opaque serialized result (a response on
// success, a status otherwise) that the API layer wrote.
type IdempotentResult struct {
	Code      int32
	Body      []byte
	CreatedAt time.Time
}

// Claim is what ClaimIdempotencyKey found.
type Claim struct {
	// Owned means the caller now holds the key: it must do the write and
	// then call FinishIdempotencyKey, MarkIdempotencyUnknown or
	// ReleaseIdempotencyKey.
	Owned bool
	// ReadBack (with Owned) means an earlier attempt under this key may
	// have reached Graph without its outcome being known: the caller must
	// read Graph's state back before writing anything.
	ReadBack bool
	// Result (when not Owned) is the first attempt's stored outcome; nil
	// when another attempt still holds the key (Busy).
	Result *IdempotentResult
	// Busy means another attempt holds the key and has not finished; the
	// caller should wait and claim again.
	Busy bool
}

// ClaimIdempotencyKey takes key for an attempt whose canonical request
// hashes to requestHash, keeping it until ttl from now. It first purges
// expired keys. An attempt that held the key for longer than lease
// without finishing is presumed dead: its key is taken over, with
// ReadBack set. A key first used with another request hash is refused
// with an error wrapping ErrIdempotencyMismatch.
func (s *Store) ClaimIdempotencyKey(ctx context.Context, key IdempotencyKey, requestHash string, ttl, lease time.Duration) (Claim, error) {
	var claim Claim
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		const purge = `DELETE FROM idempotency_keys WHERE expires_at < now()`
		if _, err := tx.Exec(ctx, purge); err != nil {
			return fmt.Errorf("purge expired idempotency keys: %w", err)
		}
		const insert = `
			INSERT INTO idempotency_keys (key_hash, method, request_hash, state, expires_at)
			VALUES ($1, $2, $3, 'pending', now() + $4::interval)
			ON CONFLICT (key_hash) DO NOTHING`
		tag, err := tx.Exec(ctx, insert, key.hash(), key.Method, requestHash, ttl)
		if err != nil {
			return fmt.Errorf("insert idempotency key: %w", err)
		}
		if tag.RowsAffected() == 1 {
			claim = Claim{Owned: true}
			return nil
		}
		// The row exists: lock it so that two attempts cannot both take
		// over an unknown or stale key.
		const lock = `
			SELECT request_hash, state, code, result, created_at, claimed_at < now() - $2::interval
			FROM idempotency_keys
			WHERE key_hash = $1
			FOR UPDATE`
		var (
			reqHash, state string
			res            IdempotentResult
			stale          bool
		)
		err = tx.QueryRow(ctx, lock, key.hash(), lease).Scan(&reqHash, &state, &res.Code, &res.Body, &res.CreatedAt, &stale)
		if err != nil {
			return fmt.Errorf("read idempotency key: %w", translate(err))
		}
		switch {
		case reqHash != requestHash:
			return ErrIdempotencyMismatch
		case state == "done":
			res.CreatedAt = res.CreatedAt.UTC()
			claim = Claim{Result: &res}
			return nil
		case state == "pending" && !stale:
			claim = Claim{Busy: true}
			return nil
		}
		const take = `UPDATE idempotency_keys SET state = 'pending', claimed_at = now() WHERE key_hash = $1`
		if _, err := tx.Exec(ctx, take, key.hash()); err != nil {
			return fmt.Errorf("take over idempotency key: %w", err)
		}
		claim = Claim{Owned: true, ReadBack: true}
		return nil
	})
	if err != nil {
		return Claim{}, fmt.Errorf("claim idempotency key: %w", err)
	}
	return claim, nil
}

// FinishIdempotencyKey stores the outcome of the attempt that holds key;
// later claims return it.
func (s *Store) FinishIdempotencyKey(ctx context.Context, key IdempotencyKey, code int32, body []byte) error {
	const q = `
		UPDATE idempotency_keys
		SET state = 'done', code = $2, result = $3
		WHERE key_hash = $1`
	if _, err := s.pool.Exec(ctx, q, key.hash(), code, body); err != nil {
		return fmt.Errorf("finish idempotency key: %w", err)
	}
	return nil
}

// MarkIdempotencyUnknown records that the attempt holding key may have
// reached Graph but its outcome is unknown: the next attempt under the key
// is told to read back first.
func (s *Store) MarkIdempotencyUnknown(ctx context.Context, key IdempotencyKey) error {
	const q = `UPDATE idempotency_keys SET state = 'unknown' WHERE key_hash = $1 AND state = 'pending'`
	if _, err := s.pool.Exec(ctx, q, key.hash()); err != nil {
		return fmt.Errorf("mark idempotency key unknown: %w", err)
	}
	return nil
}

// ReleaseIdempotencyKey forgets a pending key whose attempt failed
// without effect and without a result worth repeating (a transient
// failure), so that a retry under the same key runs afresh.
func (s *Store) ReleaseIdempotencyKey(ctx context.Context, key IdempotencyKey) error {
	const q = `DELETE FROM idempotency_keys WHERE key_hash = $1 AND state = 'pending'`
	if _, err := s.pool.Exec(ctx, q, key.hash()); err != nil {
		return fmt.Errorf("release idempotency key: %w", err)
	}
	return nil
}

// RecordAssignment writes an assignment Graph has just created or changed
// into the mirror's current state, as observed at at (read-your-writes
// before the next sync). It follows the history model: when the current
// version differs it is closed at at and a new one opened; an identical
// current version is left alone; a new id gets its first version. The
// content compared is the one a sync compares, so a later sync that sees
// the same state from Graph writes nothing. A provisional current version
// (see RecordCreatedAssignment) whose columns other than raw equal a's is
// settled in place instead: it takes a's raw and loses its mark, keeping
// its validity. It returns the assignment as the mirror now holds it.
func (s *Store) RecordAssignment(ctx context.Context, a Assignment, at time.Time) (Assignment, error) {
	defer s.changed() // readers see this write at once (changes.go)
	if err := checkRecorded(&a); err != nil {
		return Assignment{}, fmt.Errorf("record assignment: %w", err)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := takeApplyLock(ctx, tx); err != nil {
			return err
		}
		if _, err := settleAssignment(ctx, tx, a); err != nil {
			return err
		}
		_, err := recordAssignment(ctx, tx, a, at, false)
		return err
	})
	if err != nil {
		return Assignment{}, fmt.Errorf("record assignment %q: %w", a.ID, translate(err))
	}
	return s.GetAssignment(ctx, a.ID, time.Time{})
}

// RecordCreatedAssignment writes an assignment that Graph has just created
// at seatledger's request into the mirror, from Graph's answer to the
// create, and counts the seats it takes in its allotment, all in one
// transaction: when the caller hears back, the assignment is listed and
// the allotment's free seats count it.
//
// Graph's answer is not the shape a sync stores (the sync's listing
// expands the allotment and the assignee), so the version is marked
// provisional: the next observation of the same assignment (a read-back
// through SettleAssignment or RecordAssignment, or a sync) replaces its
// raw in place instead of opening a version that differs only in raw.
// Only the columns other than raw are compared with a current version: an
// equal one is left alone (a sync or a read-back recorded it first).
//
// seats (1 for a user or a device, 0 for a group, whose members' seats
// Graph counts as it processes them) is added to the allotment's consumed
// units only when the id is new to the mirror, so a repeat counts nothing
// twice; its raw's consumedUnits follows, so that the true counts, read
// from Graph later, compare equal when the estimate was right. An
// allotment the mirror does not hold is not an error: nothing is counted.
func (s *Store) RecordCreatedAssignment(ctx context.Context, a Assignment, seats int32, at time.Time) (Assignment, error) {
	defer s.changed() // readers see this write at once (changes.go)
	if err := checkRecorded(&a); err != nil {
		return Assignment{}, fmt.Errorf("record created assignment: %w", err)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := takeApplyLock(ctx, tx); err != nil {
			return err
		}
		isNew, err := recordAssignment(ctx, tx, a, at, true)
		if err != nil || !isNew || seats == 0 {
			return err
		}
		const read = `
			SELECT allotted_units, consumed_units
			FROM allotment_versions
			WHERE id = $1 AND upper_inf(valid)
			FOR UPDATE`
		var allotted, consumed int32
		switch err := tx.QueryRow(ctx, read, a.AllotmentID).Scan(&allotted, &consumed); {
		case errors.Is(err, pgx.ErrNoRows):
			return nil
		case err != nil:
			return fmt.Errorf("read allotment %q: %w", a.AllotmentID, err)
		}
		return writeAllotmentCounts(ctx, tx, a.AllotmentID, allotted, consumed+seats, nil, at)
	})
	if err != nil {
		return Assignment{}, fmt.Errorf("record created assignment %q: %w", a.ID, translate(err))
	}
	return s.GetAssignment(ctx, a.ID, time.Time{})
}

// SettleAssignment replaces, in place, the raw of assignment a.ID's
// current version with a's, and clears its provisional mark, when that
// version is provisional and its other columns equal a's (a is the
// assignment read back from Graph in the shape the sync stores). It never
// opens or closes a version: a version that is not provisional, or whose
// content differs (the assignment changed since), is left to the next
// sync. It reports whether it settled one.
func (s *Store) SettleAssignment(ctx context.Context, a Assignment) (bool, error) {
	defer s.changed() // readers see this write at once (changes.go)
	if err := checkRecorded(&a); err != nil {
		return false, fmt.Errorf("settle assignment: %w", err)
	}
	var settled bool
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := takeApplyLock(ctx, tx); err != nil {
			return err
		}
		var err error
		settled, err = settleAssignment(ctx, tx, a)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("settle assignment %q: %w", a.ID, translate(err))
	}
	return settled, nil
}

// checkRecorded checks what every recorded assignment needs, and takes
// the assignee's name out of its raw JSON (see versionedRaw).
func checkRecorded(a *Assignment) error {
	if a.ID == "" || a.AllotmentID == "" || a.AssigneeID == "" {
		return errors.New("id, allotment and assignee are required")
	}
	if a.Raw != nil {
		if err := rawJSON("assignment", a.ID, a.Raw); err != nil {
			return err
		}
		a.Raw = versionedRaw(a.Raw)
	}
	return nil
}

// takeApplyLock serializes a write-through with snapshot applies (same
// lock), so the two never interleave their closes and opens of one key.
func takeApplyLock(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, applyLockKey); err != nil {
		return fmt.Errorf("take apply lock: %w", err)
	}
	return nil
}

// settleAssignment is SettleAssignment inside a transaction.
func settleAssignment(ctx context.Context, tx pgx.Tx, a Assignment) (bool, error) {
	const q = `
		UPDATE assignment_versions
		SET raw = $6::jsonb, provisional = false
		WHERE id = $1
		  AND upper_inf(valid)
		  AND provisional
		  AND (allotment_id, assignee_id, assignee_type, disabled_plan_ids)
		      IS NOT DISTINCT FROM ($2::text, $3::text, $4::text, $5::text[])`
	tag, err := tx.Exec(ctx, q, a.ID, a.AllotmentID, a.AssigneeID, a.AssigneeType, nonNil(a.DisabledPlanIDs), a.Raw)
	if err != nil {
		return false, fmt.Errorf("settle assignment version: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// recordAssignment makes a the current version of its id at at: a
// current version that differs is closed at at (or deleted, when it
// opened at or after at) and a new one opened. With provisional, raw is
// not compared and the new version is marked provisional. It reports
// whether the id had no version at all before.
func recordAssignment(ctx context.Context, tx pgx.Tx, a Assignment, at time.Time, provisional bool) (isNew bool, err error) {
	const seen = `SELECT NOT EXISTS (SELECT 1 FROM assignment_versions WHERE id = $1)`
	if err := tx.QueryRow(ctx, seen, a.ID).Scan(&isNew); err != nil {
		return false, fmt.Errorf("look up assignment: %w", err)
	}
	// $8 (provisional) leaves raw out of the comparison.
	const closeStale = `
		WITH cur AS (
			SELECT id, lower(valid) AS since
			FROM assignment_versions
			WHERE id = $1
			  AND upper_inf(valid)
			  AND (allotment_id, assignee_id, assignee_type, disabled_plan_ids, CASE WHEN $8 THEN NULL ELSE raw END)
			      IS DISTINCT FROM ($2::text, $3::text, $4::text, $5::text[], CASE WHEN $8 THEN NULL ELSE $6::jsonb END)
		), closed AS (
			UPDATE assignment_versions v
			SET valid = tstzrange(lower(v.valid), $7::timestamptz, '[)')
			FROM cur
			WHERE v.id = cur.id AND upper_inf(v.valid) AND cur.since < $7
		)
		DELETE FROM assignment_versions v
		USING cur
		WHERE v.id = cur.id AND upper_inf(v.valid) AND cur.since >= $7`
	if _, err := tx.Exec(ctx, closeStale, a.ID, a.AllotmentID, a.AssigneeID, a.AssigneeType,
		nonNil(a.DisabledPlanIDs), a.Raw, at, provisional); err != nil {
		return false, fmt.Errorf("close assignment version: %w", err)
	}
	const open = `
		INSERT INTO assignment_versions
			(id, allotment_id, assignee_id, assignee_type, disabled_plan_ids, raw, first_observed_at, valid, provisional)
		SELECT $1::text, $2::text, $3::text, $4::text, $5::text[], $6::jsonb,
		       COALESCE((SELECT min(lower(p.valid)) FROM assignment_versions p WHERE p.id = $1), $7),
		       tstzrange($7, NULL, '[)'), $8
		WHERE NOT EXISTS (
			SELECT 1 FROM assignment_versions WHERE id = $1 AND upper_inf(valid))`
	if _, err := tx.Exec(ctx, open, a.ID, a.AllotmentID, a.AssigneeID, a.AssigneeType,
		nonNil(a.DisabledPlanIDs), a.Raw, at, provisional); err != nil {
		return false, fmt.Errorf("open assignment version: %w", err)
	}
	return isNew, nil
}

// RecordAssignmentRemoved closes the current version of assignment id at
// at, after Graph deleted it. An id with no current version is not an
// error (a sync may have seen the deletion first).
func (s *Store) RecordAssignmentRemoved(ctx context.Context, id string, at time.Time) error {
	defer s.changed() // readers see this write at once (changes.go)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := takeApplyLock(ctx, tx); err != nil {
			return err
		}
		const closeQ = `
			UPDATE assignment_versions
			SET valid = tstzrange(lower(valid), $2, '[)')
			WHERE id = $1 AND upper_inf(valid) AND lower(valid) < $2`
		if _, err := tx.Exec(ctx, closeQ, id, at); err != nil {
			return fmt.Errorf("close assignment version: %w", err)
		}
		const drop = `DELETE FROM assignment_versions WHERE id = $1 AND upper_inf(valid) AND lower(valid) >= $2`
		if _, err := tx.Exec(ctx, drop, id, at); err != nil {
			return fmt.Errorf("drop assignment version: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record assignment %q removed: %w", id, translate(err))
	}
	return nil
}

// RecordAllotmentCounts writes an allotment's unit counts, as Graph
// reported them right after a write, into the mirror's current state at
// at, so that free seats are right before the next sync. raw is the
// allotment as Graph sent it (its "@odata.context", which only a single
// entity carries, is dropped so that it compares equal to the sync's
// listing); nil keeps the stored one, with its allottedUnits and
// consumedUnits set to the counts. Other columns are kept. When nothing
// differs nothing is written; an allotment the mirror does not hold is
// ErrNotFound.
func (s *Store) RecordAllotmentCounts(ctx context.Context, id string, allotted, consumed int32, raw []byte, at time.Time) error {
	defer s.changed() // readers see this write at once (changes.go)
	if raw != nil {
		if err := rawJSON("allotment", id, raw); err != nil {
			return fmt.Errorf("record allotment counts: %w", err)
		}
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := takeApplyLock(ctx, tx); err != nil {
			return err
		}
		return writeAllotmentCounts(ctx, tx, id, allotted, consumed, raw, at)
	})
	if err != nil {
		return fmt.Errorf("record counts of allotment %q: %w", id, translate(err))
	}
	return nil
}

// writeAllotmentCounts is RecordAllotmentCounts inside a transaction that
// holds the apply lock.
func writeAllotmentCounts(ctx context.Context, tx pgx.Tx, id string, allotted, consumed int32, raw []byte, at time.Time) error {
	// newRaw is the raw the version would hold: Graph's, or the stored one
	// with the counts it carries set.
	const newRaw = `
		COALESCE($4::jsonb - '@odata.context',
		         CASE WHEN jsonb_typeof(raw) = 'object'
		              THEN jsonb_set(jsonb_set(raw, '{allottedUnits}', to_jsonb($2::integer), false),
		                             '{consumedUnits}', to_jsonb($3::integer), false)
		              ELSE raw END)`
	const read = `
		SELECT lower(valid), (allotted_units, consumed_units, raw)
		       IS NOT DISTINCT FROM ($2::integer, $3::integer, ` + newRaw + `)
		FROM allotment_versions
		WHERE id = $1 AND upper_inf(valid)
		FOR UPDATE`
	var (
		since time.Time
		same  bool
	)
	if err := tx.QueryRow(ctx, read, id, allotted, consumed, raw).Scan(&since, &same); err != nil {
		if err := translate(err); !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("read allotment: %w", err)
		}
		return &NotFoundError{Kind: "allotment", Key: id}
	}
	if same {
		return nil
	}
	if !since.Before(at) {
		at = since.Add(time.Microsecond) // keep the new version after the current one
	}
	const closeQ = `
		UPDATE allotment_versions
		SET valid = tstzrange(lower(valid), $2, '[)')
		WHERE id = $1 AND upper_inf(valid)`
	if _, err := tx.Exec(ctx, closeQ, id, at); err != nil {
		return fmt.Errorf("close allotment version: %w", err)
	}
	const open = `
		INSERT INTO allotment_versions
			(id, sku_id, sku_part_number, allotted_units, consumed_units, assignable_to, services, subscriptions, raw, valid)
		SELECT id, sku_id, sku_part_number, $2, $3, assignable_to, services, subscriptions,
		       ` + newRaw + `, tstzrange($5, NULL, '[)')
		FROM allotment_versions
		WHERE id = $1 AND upper(valid) = $5`
	if _, err := tx.Exec(ctx, open, id, allotted, consumed, raw, at); err != nil {
		return fmt.Errorf("open allotment version: %w", err)
	}
	return nil
}
