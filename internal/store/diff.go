package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// mirrored describes one mirrored entity to the generic diff-and-merge
// engine: its versions table, its staging table, the columns that identify
// it and the columns whose change makes a new version. The SQL built from
// it uses only these constant names, never caller input.
type mirrored struct {
	name     string   // key in SyncRun.Counts
	versions string   // e.g. assignment_versions
	stage    string   // e.g. stage_assignments
	keys     []string // identity columns
	values   []string // content columns (compared with IS DISTINCT FROM)
	// firstObserved adds first_observed_at: the lower bound of the key's
	// earliest version, or the run's time for a key never seen before.
	firstObserved bool
	// provisional means the versions table has a provisional column (and
	// a raw value): see settleSQL.
	provisional bool
}

var (
	mirrorAssignments = mirrored{
		name: "assignments", versions: "assignment_versions", stage: "stage_assignments",
		keys:          []string{"id"},
		values:        []string{"allotment_id", "assignee_id", "assignee_type", "disabled_plan_ids", "raw"},
		firstObserved: true,
		provisional:   true,
	}
	mirrorWaitingMembers = mirrored{
		name: "waiting_members", versions: "waiting_member_versions", stage: "stage_waiting_members",
		keys:   []string{"id"},
		values: []string{"allotment_id", "member_id", "member_type", "waiting_since", "raw"},
	}
	mirrorAssignmentErrors = mirrored{
		name: "assignment_errors", versions: "assignment_error_versions", stage: "stage_assignment_errors",
		keys:   []string{"id"},
		values: []string{"user_id", "sku_id", "code", "message", "occurred_at", "raw"},
	}
	mirrorUsers = mirrored{
		name: "users", versions: "user_versions", stage: "stage_users",
		keys: []string{"id"},
		values: []string{"user_principal_name", "display_name", "department", "company_name", "cost_center",
			"account_enabled", "raw"},
	}
	mirrorGroupMembers = mirrored{
		name: "group_members", versions: "group_member_versions", stage: "stage_group_members",
		keys:   []string{"group_id", "member_id"},
		values: []string{"member_type"},
	}
)

// cols renders columns with a table alias: "s.a, s.b".
func cols(alias string, names []string) string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = alias + "." + n
	}
	return strings.Join(out, ", ")
}

// keyMatch renders "a.k1 = b.k1 AND a.k2 = b.k2".
func (m mirrored) keyMatch(a, b string) string {
	out := make([]string, len(m.keys))
	for i, k := range m.keys {
		out[i] = a + "." + k + " = " + b + "." + k
	}
	return strings.Join(out, " AND ")
}

// stagedCount counts the snapshot's staged rows (duplicates included).
func (m mirrored) stagedCount(ctx context.Context, tx pgx.Tx, snap int64) (int64, error) {
	var n int64
	q := `SELECT count(*) FROM ` + m.stage + ` WHERE snapshot_id = $1`
	if err := tx.QueryRow(ctx, q, snap).Scan(&n); err != nil {
		return 0, fmt.Errorf("count staged %s: %w", m.name, err)
	}
	return n, nil
}

// tidy refreshes the planner's statistics of m's staging table (it knows
// nothing of rows copied moments ago, and guesses one), then removes
// duplicates (dedupe), returning how many.
func (m mirrored) tidy(ctx context.Context, tx pgx.Tx, snap int64) (int64, error) {
	if _, err := tx.Exec(ctx, `ANALYZE `+m.stage); err != nil {
		return 0, fmt.Errorf("analyze %s: %w", m.stage, err)
	}
	return m.dedupe(ctx, tx, snap)
}

// dedupe deletes all but the last-staged row of each key, so that Graph
// listing an object twice (pages shifting under a long listing) cannot
// make the diff see it twice. With no duplicates it writes nothing.
func (m mirrored) dedupe(ctx context.Context, tx pgx.Tx, snap int64) (int64, error) {
	keys := strings.Join(m.keys, ", ")
	// MATERIALIZED: the duplicates are computed once, whatever the
	// planner guesses of the staging table.
	q := `
		WITH d AS MATERIALIZED (
			SELECT ` + keys + `, max(seq) AS seq
			FROM ` + m.stage + `
			WHERE snapshot_id = $1
			GROUP BY ` + keys + `
			HAVING count(*) > 1
		)
		DELETE FROM ` + m.stage + ` s
		USING d
		WHERE s.snapshot_id = $1
		  AND ` + m.keyMatch("s", "d") + `
		  AND s.seq < d.seq`
	tag, err := tx.Exec(ctx, q, snap)
	if err != nil {
		return 0, fmt.Errorf("remove duplicate staged %s: %w", m.name, err)
	}
	return tag.RowsAffected(), nil
}

// closeSQL closes (or, when it opened at this very instant, deletes) the
// current version of every key that stale selects, and counts them:
// stale yields the key columns and a boolean "present" (changed rather
// than removed). at is the placeholder of the run's time.
func (m mirrored) closeSQL(stale, at string) string {
	return `
		WITH stale AS (` + stale + `
		), closed AS (
			UPDATE ` + m.versions + ` v
			SET valid = tstzrange(lower(v.valid), ` + at + `, '[)')
			FROM stale
			WHERE ` + m.keyMatch("v", "stale") + `
			  AND upper_inf(v.valid)
			  AND lower(v.valid) < ` + at + `
		), dropped AS (
			DELETE FROM ` + m.versions + ` v
			USING stale
			WHERE ` + m.keyMatch("v", "stale") + `
			  AND upper_inf(v.valid)
			  AND lower(v.valid) >= ` + at + `
		)
		SELECT count(*) FILTER (WHERE present), count(*) FILTER (WHERE NOT present)
		FROM stale`
}

// settleSQL settles the provisional current versions that the stage
// observes unchanged: a provisional version holds, as raw, the answer
// Graph gave to seatledger's own write, not the shape the sync lists; when
// its other values equal the staged row's, it takes the staged raw in
// place and loses its mark, so the difference in raw alone opens no
// version. Any other difference versions it as usual. $1 is the snapshot.
func (m mirrored) settleSQL() string {
	var other []string
	for _, v := range m.values {
		if v != "raw" {
			other = append(other, v)
		}
	}
	return `
		UPDATE ` + m.versions + ` v
		SET raw = s.raw, provisional = false
		FROM ` + m.stage + ` s
		WHERE s.snapshot_id = $1
		  AND ` + m.keyMatch("s", "v") + `
		  AND upper_inf(v.valid)
		  AND v.provisional
		  AND (` + cols("s", other) + `) IS NOT DISTINCT FROM (` + cols("v", other) + `)`
}

// changedKeysSQL stores into stage_changed_keys the keys whose staged row
// differs from their current version (changed, new, or gone from the
// stage), for a full listing of a kind keyed by id, as the merge's stale
// and open statements would find them now. $1 is the snapshot, $2 the
// run's time.
func (m mirrored) changedKeysSQL() string {
	return `
		INSERT INTO stage_changed_keys (snapshot_id, kind, id)
		SELECT $1, '` + m.name + `', COALESCE(v.id, s.id)
		FROM (SELECT * FROM ` + m.versions + ` WHERE upper_inf(valid) AND lower(valid) <= $2) v
		FULL JOIN (SELECT * FROM ` + m.stage + ` WHERE snapshot_id = $1) s ON s.id = v.id
		WHERE v.id IS NULL OR s.id IS NULL
		   OR (` + cols("s", m.values) + `) IS DISTINCT FROM (` + cols("v", m.values) + `)`
}

// merge makes the current versions equal to the staged rows: changed keys
// get their version closed and a new one opened, new keys a version, and
// unchanged keys nothing written. With full, current keys absent from the
// stage are closed (removed); otherwise (a delta) they are left alone.
// staged is the number of distinct staged keys.
//
// A key whose history moved after the run's time (a write seatledger made
// through Graph and recorded at once, while this run was paging) is newer
// than anything the run read: merge leaves it alone, neither closing a
// version opened after the run began nor reopening one closed after it.
// The next run sees the key as Graph has it then.
//
// Provisional versions are settled first (see settleSQL), so they count
// as unchanged.
//
// With changedKnown, stage_changed_keys holds (from changedKeysSQL) every
// key of this kind whose staged row differed from its current version when
// it was computed, during the run: only those keys are merged. The others
// were equal then, and nothing but a write recorded after the run began
// (which merge leaves alone anyway) can have changed them since.
func (m mirrored) merge(ctx context.Context, tx pgx.Tx, snap int64, at time.Time, full bool, staged int64, changedKnown bool) (Changes, error) {
	if m.provisional {
		// Usually there is none (the index holds only them): then the
		// join of the whole stage with the versions is not worth making.
		// (ORDER BY id keeps the planner on that index: without
		// statistics it guesses a third of the rows are provisional, and
		// an EXISTS would scan the table for the first one.)
		q := `SELECT id FROM ` + m.versions + ` WHERE provisional AND upper_inf(valid) ORDER BY id LIMIT 1`
		rows, _ := tx.Query(ctx, q)
		first, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return Changes{}, fmt.Errorf("look for provisional %s versions: %w", m.name, err)
		}
		if len(first) > 0 {
			if _, err := tx.Exec(ctx, m.settleSQL(), snap); err != nil {
				return Changes{}, fmt.Errorf("settle provisional %s versions: %w", m.name, err)
			}
		}
	}
	// onlyChanged restricts a statement to the keys found changed.
	onlyChanged := func(alias string) string {
		if !changedKnown {
			return ""
		}
		return ` AND ` + alias + `.id IN (SELECT c.id FROM stage_changed_keys c WHERE c.snapshot_id = $1 AND c.kind = '` + m.name + `')`
	}
	var stale string
	if full {
		stale = `
			SELECT ` + cols("v", m.keys) + `, s.` + m.keys[0] + ` IS NOT NULL AS present
			FROM ` + m.versions + ` v
			LEFT JOIN ` + m.stage + ` s
			  ON s.snapshot_id = $1
			 AND ` + m.keyMatch("s", "v") + `
			WHERE upper_inf(v.valid)` + onlyChanged("v") + `
			  AND lower(v.valid) <= $2
			  AND (s.` + m.keys[0] + ` IS NULL
			       OR (` + cols("s", m.values) + `) IS DISTINCT FROM (` + cols("v", m.values) + `))`
	} else {
		stale = `
			SELECT ` + cols("v", m.keys) + `, true AS present
			FROM ` + m.versions + ` v
			JOIN ` + m.stage + ` s
			  ON s.snapshot_id = $1
			 AND ` + m.keyMatch("s", "v") + `
			WHERE upper_inf(v.valid)
			  AND lower(v.valid) <= $2
			  AND (` + cols("s", m.values) + `) IS DISTINCT FROM (` + cols("v", m.values) + `)`
	}
	var ch Changes
	if err := tx.QueryRow(ctx, m.closeSQL(stale, "$2"), snap, at).Scan(&ch.Changed, &ch.Removed); err != nil {
		return Changes{}, fmt.Errorf("close stale %s versions: %w", m.name, err)
	}

	insertCols := strings.Join(m.keys, ", ") + ", " + strings.Join(m.values, ", ")
	selectCols := cols("s", m.keys) + ", " + cols("s", m.values)
	if m.firstObserved {
		insertCols += ", first_observed_at"
		selectCols += `, COALESCE((
				SELECT min(lower(p.valid))
				FROM ` + m.versions + ` p
				WHERE ` + m.keyMatch("p", "s") + `), $2)`
	}
	open := `
		INSERT INTO ` + m.versions + ` (` + insertCols + `, valid)
		SELECT ` + selectCols + `, tstzrange($2, NULL, '[)')
		FROM ` + m.stage + ` s
		WHERE s.snapshot_id = $1` + onlyChanged("s") + `
		  AND NOT EXISTS (
			SELECT 1
			FROM ` + m.versions + ` v
			WHERE ` + m.keyMatch("v", "s") + `
			  AND (upper_inf(v.valid) OR upper(v.valid) > $2))`
	tag, err := tx.Exec(ctx, open, snap, at)
	if err != nil {
		return Changes{}, fmt.Errorf("open %s versions: %w", m.name, err)
	}
	ch.Added = tag.RowsAffected() - ch.Changed
	ch.Unchanged = staged - tag.RowsAffected()
	return ch, nil
}

// removeUsers closes the current versions of the users a delta listed as
// removed, unless the same snapshot also staged them (then the staged
// state wins). It returns how many it closed.
func removeUsers(ctx context.Context, tx pgx.Tx, snap int64, at time.Time) (int64, error) {
	const stale = `
			SELECT DISTINCT v.id, false AS present
			FROM user_versions v
			JOIN stage_user_removals r
			  ON r.snapshot_id = $1
			 AND r.id = v.id
			WHERE upper_inf(v.valid)
			  AND lower(v.valid) <= $2
			  AND NOT EXISTS (
				SELECT 1
				FROM stage_users s
				WHERE s.snapshot_id = $1
				  AND s.id = v.id)`
	var changed, removed int64
	if err := tx.QueryRow(ctx, mirrorUsers.closeSQL(stale, "$2"), snap, at).Scan(&changed, &removed); err != nil {
		return 0, fmt.Errorf("close removed users: %w", err)
	}
	return removed, nil
}

// currentCount counts the current versions of m.
func (m mirrored) currentCount(ctx context.Context, tx pgx.Tx) (int64, error) {
	var n int64
	q := `SELECT count(*) FROM ` + m.versions + ` WHERE upper_inf(valid)`
	if err := tx.QueryRow(ctx, q).Scan(&n); err != nil {
		return 0, fmt.Errorf("count current %s: %w", m.name, err)
	}
	return n, nil
}
