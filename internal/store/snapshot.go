package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// ErrMassDeletion means a snapshot was held, not applied, because it would
// remove more than ApplyOptions.MaxRemoveFraction of the current
// assignments or users. Apply it again with Force to let it through.
var ErrMassDeletion = errors.New("mass deletion held")

// Assignee and member kinds, as stored in AssigneeType and MemberType.
const (
	KindUser   = "user"
	KindGroup  = "group"
	KindDevice = "device"
)

// Snapshot stages one sync run's view of Graph. Rows stream into
// UNLOGGED staging tables, outside any transaction, while the sync pages
// Graph; nothing is visible to readers until Apply merges them in one
// transaction. Discard, or a crash, leaves only staging rows, which the
// next BeginSnapshot clears.
//
// Different collections may be staged from different goroutines at once
// (each collection from one: rows of one table keep their order); Apply
// and Discard come after every stage call has returned. At most one
// snapshot is staged at a time: BeginSnapshot ends any other (its Apply
// then fails with ErrConflict), so a deposed leader's half-staged run
// cannot mix with the new leader's.
type Snapshot struct {
	s   *Store
	id  int64
	at  time.Time    // run.StartedAt, truncated to the microsecond
	seq atomic.Int64 // last staging sequence number; a later row wins over an earlier duplicate

	mu        sync.Mutex       // guards what follows while collections stage at once
	staged    map[string]int64 // staging table → rows copied into it
	users     string           // "", "full" or "delta"
	deltaLink *string
	err       error // the first staging error: Apply refuses to apply a partial stage
	// prepared maps a staging table that PrepareAssignments compared early
	// to the duplicates it removed.
	prepared map[string]int64
	done     bool // applied, held or discarded
}

// stagingTables are every staging table, cleared by BeginSnapshot and
// Apply.
var stagingTables = []string{"stage_allotments", "stage_assignments", "stage_waiting_members", "stage_assignment_errors",
	"stage_users", "stage_user_removals", "stage_group_members", "stage_changed_keys"}

// smallStage is the number of staged rows up to which clearStaging deletes
// rows rather than truncating tables.
const smallStage = 20000

// clearStaging empties the staging tables; rows is the number of rows the
// caller staged, or -1 when unknown (an earlier run's leftovers).
//
// TRUNCATE gives each table and index new files, and PostgreSQL writes an
// unlogged table's new init fork to disk at once, whatever
// synchronous_commit says: about 3 ms per table and index on a persistent
// cluster, twice a run, which was most of a small tenant's sync (the
// zero-configuration demo records 90 of them on its first start). So
// tables already empty are left alone, and a small stage is deleted
// instead; a large one is still truncated (deleting 250,000 rows costs
// far more than the files).
func clearStaging(ctx context.Context, tx pgx.Tx, rows int64) error {
	var probes []string
	for _, t := range stagingTables {
		probes = append(probes, fmt.Sprintf("('%s', EXISTS (SELECT 1 FROM %s))", t, t))
	}
	var full []string
	q := `SELECT COALESCE(array_agg(t), '{}') FROM (VALUES ` + strings.Join(probes, ", ") + `) v(t, rows) WHERE rows`
	if err := tx.QueryRow(ctx, q).Scan(&full); err != nil {
		return fmt.Errorf("clear staging tables: %w", err)
	}
	if len(full) == 0 {
		return nil
	}
	if rows < 0 || rows > smallStage {
		if _, err := tx.Exec(ctx, `TRUNCATE `+strings.Join(full, ", ")); err != nil {
			return fmt.Errorf("clear staging tables: %w", err)
		}
		return nil
	}
	for _, t := range full {
		if _, err := tx.Exec(ctx, `DELETE FROM `+t); err != nil {
			return fmt.Errorf("clear staging tables: %w", err)
		}
	}
	return nil
}

// BeginSnapshot starts staging a run that reads Graph from startedAt on
// (the time the snapshot is "as of"). It clears the staging rows of every
// earlier snapshot, applied or not.
func (s *Store) BeginSnapshot(ctx context.Context, startedAt time.Time) (*Snapshot, error) {
	if startedAt.IsZero() {
		return nil, errors.New("begin snapshot: startedAt is not set")
	}
	at := startedAt.Truncate(time.Microsecond)
	var id int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Deleting the other snapshots first waits for an Apply in
		// progress (it holds its snapshot's row), so the TRUNCATE never
		// pulls rows from under a running merge.
		if _, err := tx.Exec(ctx, `DELETE FROM sync_snapshots`); err != nil {
			return fmt.Errorf("end earlier snapshots: %w", err)
		}
		if err := clearStaging(ctx, tx, -1); err != nil {
			return err
		}
		const q = `
			INSERT INTO sync_snapshots (started_at)
			VALUES ($1)
			RETURNING id`
		if err := tx.QueryRow(ctx, q, at).Scan(&id); err != nil {
			return fmt.Errorf("register snapshot: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("begin snapshot: %w", translate(err))
	}
	return &Snapshot{s: s, id: id, at: at, staged: map[string]int64{}}, nil
}

// stageRows streams rows into table with COPY, converting each with conv.
// Memory is bounded by pgx's copy buffer, not by the number of rows. On
// error nothing of this call is staged (COPY is one statement), and the
// snapshot refuses to apply.
func stageRows[T any](ctx context.Context, sn *Snapshot, table string, columns []string,
	rows iter.Seq2[T, error], conv func(T) ([]any, error)) (int64, error) {
	if err := sn.usable(); err != nil {
		return 0, err
	}
	next, stop := iter.Pull2(rows)
	defer stop()
	// pgx reports a source error as the server's "COPY failed"; keep the
	// source's own error so that callers can test it.
	var srcErr error
	n, err := sn.s.pool.CopyFrom(ctx, pgx.Identifier{table}, append([]string{"snapshot_id", "seq"}, columns...),
		pgx.CopyFromFunc(func() ([]any, error) {
			v, err, ok := next()
			if !ok {
				return nil, nil
			}
			if err == nil {
				var row []any
				if row, err = conv(v); err == nil {
					return append([]any{sn.id, sn.seq.Add(1)}, row...), nil
				}
			}
			srcErr = err
			return nil, err
		}))
	if srcErr != nil {
		err = srcErr
	}
	sn.mu.Lock()
	defer sn.mu.Unlock()
	if err != nil {
		if sn.err == nil {
			sn.err = fmt.Errorf("stage %s: %w", table, err)
		}
		return 0, fmt.Errorf("stage %s: %w", table, err)
	}
	sn.staged[table] += n
	return n, nil
}

// usable reports why the snapshot can no longer stage or apply.
func (sn *Snapshot) usable() error {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	switch {
	case sn.done:
		return errors.New("snapshot already applied or discarded")
	case sn.err != nil:
		return fmt.Errorf("snapshot failed to stage: %w", sn.err)
	}
	return nil
}

// rawJSON checks raw before COPY, for a clearer error than Postgres'.
func rawJSON(kind, id string, raw []byte) error {
	if raw != nil && !json.Valid(raw) {
		return fmt.Errorf("%s %q: raw is not valid JSON", kind, id)
	}
	return nil
}

// timestamptz maps the zero time to SQL NULL.
func timestamptz(t time.Time) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: t, Valid: !t.IsZero()}
}

// StageAllotments stages allotments, and the subscriptions listed in them.
// It may be called several times (one call per page); together the calls
// are the full list. Apply diffs it set-based: an allotment whose content
// (Raw included) changed, or that is absent from the list, has its current
// version closed at the run's time; a new or changed one gets a version
// from then on; an unchanged one is not written; an ID listed twice keeps
// its later entry. Apply also writes one allotment_facts row per allotment
// and its UTC day's row in the daily roll-up. It returns the number of
// rows staged; a row it cannot store (no id, raw not JSON, a subscription
// without id or with a malformed date) fails the stage.
func (sn *Snapshot) StageAllotments(ctx context.Context, rows iter.Seq2[Allotment, error]) (int64, error) {
	columns := []string{"id", "sku_id", "sku_part_number", "allotted_units", "consumed_units",
		"assignable_to", "services", "subscriptions", "raw"}
	return stageRows(ctx, sn, "stage_allotments", columns, rows, func(a Allotment) ([]any, error) {
		return allotmentRow(a)
	})
}

// StageAssignments stages assignments; the calls together are the full
// list (see StageAllotments). ObservedAt and FirstObservedAt, and the
// joined fields, are ignored, except AssigneeDisplayName: for a group
// assignee it is the group's name, which Apply keeps as the group's
// current name (one per group, outside the assignments' versions: a
// rename versions nothing and is not history). An empty name leaves the
// group's known name as it is.
func (sn *Snapshot) StageAssignments(ctx context.Context, rows iter.Seq2[Assignment, error]) (int64, error) {
	columns := []string{"id", "allotment_id", "assignee_id", "assignee_type", "disabled_plan_ids", "raw", "assignee_display_name"}
	return stageRows(ctx, sn, "stage_assignments", columns, rows, func(a Assignment) ([]any, error) {
		if a.ID == "" {
			return nil, errors.New("assignment has no id")
		}
		if err := rawJSON("assignment", a.ID, a.Raw); err != nil {
			return nil, err
		}
		name := ""
		if a.AssigneeType == KindGroup {
			name = a.AssigneeDisplayName
		}
		return []any{a.ID, a.AllotmentID, a.AssigneeID, a.AssigneeType, nonNil(a.DisabledPlanIDs), versionedRaw(a.Raw), name}, nil
	})
}

// versionedRaw returns an assignment's raw JSON without the assignee's
// display name (assignedTo.displayName), or raw itself when it has none
// or is not an object. Raw is versioned content: a group's rename must
// not version every assignment of the group, nor the listing asking for
// names (since migration 00014) version every assignment once; the
// versions keep what they kept before, the assignee's type and id. Only
// the order of keys may change, which jsonb does not keep anyway.
func versionedRaw(raw []byte) []byte {
	if !bytes.Contains(raw, []byte(`"displayName"`)) {
		return raw
	}
	// Every assignment of the listing goes through here while Graph pages:
	// cut the member out of the bytes (about 20x cheaper than decoding and
	// encoding the object), and decode only what the cut cannot read.
	if out, ok := cutAssigneeName(raw); ok {
		return out
	}
	return versionedRawDecoded(raw)
}

// cutAssigneeName removes the "displayName" member of raw's "assignedTo"
// object from the bytes, with its separating comma. It reports false when
// raw does not have the plain shape it reads ("assignedTo" a key followed
// by an object of members), leaving the work to versionedRawDecoded.
func cutAssigneeName(raw []byte) ([]byte, bool) {
	i := bytes.Index(raw, []byte(`"assignedTo"`))
	if i < 0 {
		return nil, false
	}
	p := skipSpace(raw, i+len(`"assignedTo"`))
	if p >= len(raw) || raw[p] != ':' {
		return nil, false
	}
	p = skipSpace(raw, p+1)
	if p >= len(raw) || raw[p] != '{' {
		return nil, false
	}
	prevEnd := p + 1 // where the previous member (or the brace) ends
	first := true
	for {
		p = skipSpace(raw, prevEnd)
		if !first {
			if p >= len(raw) || raw[p] != ',' {
				return nil, false // the object ended without the member
			}
			p = skipSpace(raw, p+1)
		}
		if p >= len(raw) || raw[p] != '"' {
			return nil, false
		}
		keyStart := p
		keyEnd, ok := skipString(raw, p)
		if !ok {
			return nil, false
		}
		p = skipSpace(raw, keyEnd)
		if p >= len(raw) || raw[p] != ':' {
			return nil, false
		}
		valEnd, ok := skipValue(raw, skipSpace(raw, p+1))
		if !ok {
			return nil, false
		}
		if string(raw[keyStart:keyEnd]) == `"displayName"` {
			from, to := prevEnd, valEnd // ", "displayName": …" after an earlier member
			if first {
				// The first member: drop it and the comma after it, if any.
				from, to = keyStart, valEnd
				if q := skipSpace(raw, valEnd); q < len(raw) && raw[q] == ',' {
					to = q + 1
				}
			}
			out := make([]byte, 0, len(raw)-(to-from))
			return append(append(out, raw[:from]...), raw[to:]...), true
		}
		prevEnd, first = valEnd, false
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the JSON string starting at b[i].
func skipString(b []byte, i int) (int, bool) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, true
		}
	}
	return 0, false
}

// skipValue returns the index after the JSON value starting at b[i].
func skipValue(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, ok := skipString(b, j)
				if !ok {
					return 0, false
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, true
				}
			}
		}
		return 0, false
	}
	j := i // a number, true, false or null
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	return j, j > i
}

// versionedRawDecoded is versionedRaw by decoding and encoding raw.
func versionedRawDecoded(raw []byte) []byte {
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return raw
	}
	var to map[string]json.RawMessage
	if json.Unmarshal(obj["assignedTo"], &to) != nil {
		return raw
	}
	if _, ok := to["displayName"]; !ok {
		return raw
	}
	delete(to, "displayName")
	b, err := json.Marshal(to)
	if err != nil {
		return raw
	}
	obj["assignedTo"] = b
	out, err := json.Marshal(obj)
	if err != nil {
		return raw
	}
	return out
}

// saveGroupNames keeps the names of the groups staged as assignees of
// snapshot snap in group_names: a new group's name is inserted, a renamed
// one's replaced, an unchanged one's not written. Groups that no longer
// hold an assignment keep their last name (past seats still read with
// one). A group listed with two names (pages shifting under the listing)
// keeps the later one.
func saveGroupNames(ctx context.Context, tx pgx.Tx, snap int64, at time.Time) error {
	const q = `
		INSERT INTO group_names AS g (id, display_name, updated_at)
		SELECT DISTINCT ON (assignee_id) assignee_id, assignee_display_name, $2
		FROM stage_assignments
		WHERE snapshot_id = $1
		  AND assignee_type = 'group'
		  AND assignee_display_name <> ''
		ORDER BY assignee_id, seq DESC
		ON CONFLICT (id) DO UPDATE
		SET display_name = excluded.display_name,
		    updated_at = excluded.updated_at
		WHERE g.display_name IS DISTINCT FROM excluded.display_name`
	if _, err := tx.Exec(ctx, q, snap, at); err != nil {
		return fmt.Errorf("save group names: %w", err)
	}
	return nil
}

// PrepareAssignments does, once the assignments are staged and while the
// run pages the rest, the part of Apply's work on them that does not
// write the mirror: it removes duplicates, refreshes the planner's
// statistics, and finds the assignments whose staged row differs from
// their current version (stage_changed_keys), so that Apply merges only
// those. It must be called after the last StageAssignments of the
// snapshot and return before Apply; it may run while other collections
// stage. Without it Apply does the same work itself.
func (sn *Snapshot) PrepareAssignments(ctx context.Context) error {
	if err := sn.usable(); err != nil {
		return err
	}
	m := mirrorAssignments
	var dups int64
	err := pgx.BeginFunc(ctx, sn.s.pool, func(tx pgx.Tx) error {
		var err error
		if dups, err = m.tidy(ctx, tx, sn.id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, m.changedKeysSQL(), sn.id, sn.at); err != nil {
			return fmt.Errorf("find changed %s: %w", m.name, err)
		}
		// Usually few: the planner must know it, to reach the versions
		// of those keys through their index rather than by a scan.
		if _, err := tx.Exec(ctx, `ANALYZE stage_changed_keys`); err != nil {
			return fmt.Errorf("analyze stage_changed_keys: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("prepare assignments: %w", translate(err))
	}
	sn.mu.Lock()
	defer sn.mu.Unlock()
	if sn.prepared == nil {
		sn.prepared = map[string]int64{}
	}
	sn.prepared[m.stage] = dups
	return nil
}

// StageWaitingMembers stages waiting members; the calls together are the
// full list (see StageAllotments).
func (sn *Snapshot) StageWaitingMembers(ctx context.Context, rows iter.Seq2[WaitingMember, error]) (int64, error) {
	columns := []string{"id", "allotment_id", "member_id", "member_type", "waiting_since", "raw"}
	return stageRows(ctx, sn, "stage_waiting_members", columns, rows, func(w WaitingMember) ([]any, error) {
		if w.ID == "" {
			return nil, errors.New("waiting member has no id")
		}
		if err := rawJSON("waiting member", w.ID, w.Raw); err != nil {
			return nil, err
		}
		return []any{w.ID, w.AllotmentID, w.MemberID, w.MemberType, timestamptz(w.WaitingSince), w.Raw}, nil
	})
}

// StageAssignmentErrors stages assignment errors; the calls together are
// the full list (see StageAllotments).
func (sn *Snapshot) StageAssignmentErrors(ctx context.Context, rows iter.Seq2[AssignmentError, error]) (int64, error) {
	columns := []string{"id", "user_id", "sku_id", "code", "message", "occurred_at", "raw"}
	return stageRows(ctx, sn, "stage_assignment_errors", columns, rows, func(e AssignmentError) ([]any, error) {
		if e.ID == "" {
			return nil, errors.New("assignment error has no id")
		}
		if err := rawJSON("assignment error", e.ID, e.Raw); err != nil {
			return nil, err
		}
		return []any{e.ID, e.UserID, e.SKUID, e.Code, e.Message, timestamptz(e.OccurredAt), e.Raw}, nil
	})
}

// StageUsers stages users. With full, the calls together are the full
// directory (a first users/delta round, or a relist): Apply removes
// current users absent from it. Without full they are a delta's changes:
// each user is upserted, users not listed stay as they are, and removals
// come through StageUserRemovals. All calls of one snapshot must agree on
// full.
func (sn *Snapshot) StageUsers(ctx context.Context, full bool, rows iter.Seq2[User, error]) (int64, error) {
	mode := "delta"
	if full {
		mode = "full"
	}
	sn.mu.Lock()
	if sn.users != "" && sn.users != mode {
		sn.mu.Unlock()
		return 0, fmt.Errorf("stage users: snapshot already stages users as a %s listing", sn.users)
	}
	sn.users = mode
	sn.mu.Unlock()
	columns := []string{"id", "user_principal_name", "display_name", "department", "company_name", "cost_center",
		"account_enabled", "raw"}
	return stageRows(ctx, sn, "stage_users", columns, rows, func(u User) ([]any, error) {
		if u.ID == "" {
			return nil, errors.New("user has no id")
		}
		if err := rawJSON("user", u.ID, u.Raw); err != nil {
			return nil, err
		}
		return []any{u.ID, u.UserPrincipalName, u.DisplayName, u.Department, u.CompanyName, u.CostCenter,
			u.AccountEnabled, u.Raw}, nil
	})
}

// StageUserRemovals stages the ids of users a delta reported removed
// (@removed). Apply closes their current versions, unless the same
// snapshot also staged them with StageUsers. Without a StageUsers call the
// snapshot's users are a delta.
func (sn *Snapshot) StageUserRemovals(ctx context.Context, ids []string) error {
	sn.mu.Lock()
	if sn.users == "" {
		sn.users = "delta"
	}
	sn.mu.Unlock()
	_, err := stageRows(ctx, sn, "stage_user_removals", []string{"id"}, func(yield func(string, error) bool) {
		for _, id := range ids {
			if !yield(id, nil) {
				return
			}
		}
	}, func(id string) ([]any, error) {
		if id == "" {
			return nil, errors.New("user removal has no id")
		}
		return []any{id}, nil
	})
	return err
}

// StageGroupMembers stages the full direct membership of group groupID
// (rows' GroupID is ignored; an empty rows stages a group with no
// members). Once a snapshot stages any group, its staged groups are all
// the groups whose memberships the mirror keeps: the memberships of
// groups not staged (those that no longer hold an assignment) are closed.
// A snapshot that stages no group leaves memberships untouched.
func (sn *Snapshot) StageGroupMembers(ctx context.Context, groupID string, rows iter.Seq2[GroupMember, error]) (int64, error) {
	if groupID == "" {
		return 0, errors.New("stage group members: no group id")
	}
	sn.mu.Lock()
	if _, ok := sn.staged["stage_group_members"]; !ok {
		sn.staged["stage_group_members"] = 0
	}
	sn.mu.Unlock()
	return stageRows(ctx, sn, "stage_group_members", []string{"group_id", "member_id", "member_type"}, rows,
		func(m GroupMember) ([]any, error) {
			if m.MemberID == "" {
				return nil, fmt.Errorf("member of group %q has no id", groupID)
			}
			return []any{groupID, m.MemberID, m.MemberType}, nil
		})
}

// SetUsersDeltaLink sets the users/delta link that Apply persists in its
// transaction, so that the link and the users it follows from commit
// together. Without a call the stored link is left as it is.
func (sn *Snapshot) SetUsersDeltaLink(link string) {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	sn.deltaLink = &link
}

// UsersDeltaLink returns the users/delta link persisted by the last
// applied snapshot that set one, or "" when there is none.
func (s *Store) UsersDeltaLink(ctx context.Context) (string, error) {
	var link string
	if err := s.pool.QueryRow(ctx, `SELECT users_delta_link FROM sync_state WHERE id = 1`).Scan(&link); err != nil {
		return "", fmt.Errorf("read users delta link: %w", translate(err))
	}
	return link, nil
}

// ApplyOptions tune Snapshot.Apply.
type ApplyOptions struct {
	// MaxRemoveFraction is the largest share of current assignments, or
	// of current users, one run may remove; 0 means 0.2. The guard only
	// looks at kinds with at least 10 current rows.
	MaxRemoveFraction float64
	// Force applies the snapshot whatever it removes.
	Force bool
}

// massDeletionMinRows is the fewest current rows of a kind for the
// mass-deletion guard to look at it: removing 3 of 5 is not alarming.
const massDeletionMinRows = 10

// Apply makes the mirror equal to the staged snapshot, as observed at the
// snapshot's startedAt, in one transaction, and records run (its StartedAt
// is replaced by the snapshot's) as succeeded. For every kind staged it
// diffs set-based against the current versions: unchanged rows write
// nothing, changed rows close their version and open one, new rows open
// one, rows absent from a full listing close theirs. Kinds not staged are
// left untouched. It also writes allotment_facts for the run (allotted and
// consumed, waiting members and assignment errors per current allotment;
// errors count per SKU), upserts the allotment's day in the daily roll-up,
// persists the users delta link if one was set, and inserts the sync_runs
// row with Counts per staged kind ("allotments", "subscriptions",
// "assignments", "waiting_members", "assignment_errors", "users",
// "group_members").
//
// It refuses, with ErrConflict and no change, a snapshot observed earlier
// than the newest applied run, or one superseded by a later BeginSnapshot.
// If the run would remove more than opts.MaxRemoveFraction of the current
// assignments or users and !opts.Force, nothing is applied: a run with
// outcome "held" is recorded and returned with an error wrapping
// ErrMassDeletion.
//
// After Apply returns the snapshot is finished whatever the outcome; a
// deferred Discard is then harmless.
func (sn *Snapshot) Apply(ctx context.Context, run SyncRun, opts ApplyOptions) (SyncRun, error) {
	defer sn.s.changed() // readers see this write at once (changes.go)
	if err := sn.usable(); err != nil {
		return SyncRun{}, fmt.Errorf("apply snapshot: %w", err)
	}
	if opts.MaxRemoveFraction <= 0 {
		opts.MaxRemoveFraction = 0.2
	}
	run.StartedAt = sn.at
	var (
		stored SyncRun
		held   *heldError
	)
	err := pgx.BeginFunc(ctx, sn.s.pool, func(tx pgx.Tx) error {
		if err := fence(ctx, tx, sn.at); err != nil {
			return err
		}
		// The diff hashes the staged set against the current versions;
		// the default 4 MB would spill a 250k-row join to disk.
		if _, err := tx.Exec(ctx, `SET LOCAL work_mem = '64MB'`); err != nil {
			return fmt.Errorf("raise work_mem: %w", err)
		}
		var found bool
		const lock = `SELECT true FROM sync_snapshots WHERE id = $1 FOR UPDATE`
		if err := tx.QueryRow(ctx, lock, sn.id).Scan(&found); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("%w: snapshot %d was superseded by a newer one", ErrConflict, sn.id)
			}
			return fmt.Errorf("lock snapshot: %w", err)
		}
		counts, current, err := sn.merge(ctx, tx)
		if err != nil {
			return err
		}
		run.Counts = counts
		if h := guard(counts, current, opts); h != nil {
			held = h
			return h
		}
		encoded, err := encodeCounts(counts)
		if err != nil {
			return err
		}
		const insertRun = `
			INSERT INTO sync_runs
				(started_at, finished_at, outcome, error, counts, graph_requests, throttled, bytes_received, demo)
			VALUES ($1, $2, 'succeeded', NULL, $3, $4, $5, $6, $7)
			RETURNING ` + syncRunColumns
		rows, _ := tx.Query(ctx, insertRun, sn.at, finishedAt(run), encoded, run.GraphRequests, run.Throttled, run.BytesReceived, run.Demo)
		if stored, err = pgx.CollectExactlyOneRow(rows, scanSyncRun); err != nil {
			return fmt.Errorf("record sync run: %w", err)
		}
		if err := recordFacts(ctx, tx, stored.ID, sn.at); err != nil {
			return err
		}
		if sn.deltaLink != nil {
			const q = `UPDATE sync_state SET users_delta_link = $1, updated_at = now() WHERE id = 1`
			if _, err := tx.Exec(ctx, q, *sn.deltaLink); err != nil {
				return fmt.Errorf("save users delta link: %w", err)
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM sync_snapshots WHERE id = $1`, sn.id); err != nil {
			return fmt.Errorf("end snapshot: %w", err)
		}
		// This snapshot is the only one staged (a later BeginSnapshot
		// would have deleted its row, locked above), so clearing whole
		// tables is safe.
		var staged int64
		for _, n := range sn.staged {
			staged += n
		}
		if err := clearStaging(ctx, tx, staged); err != nil {
			return err
		}
		return nil
	})
	if held != nil {
		sn.done = true
		run.Outcome = OutcomeHeld
		run.Error = held.Error()
		rec, rerr := sn.s.RecordFailedSyncRun(ctx, run)
		if derr := sn.discard(ctx); derr != nil && rerr == nil {
			rerr = derr
		}
		if rerr != nil {
			return SyncRun{}, fmt.Errorf("apply snapshot: %w (and recording it: %w)", held, rerr)
		}
		return rec, fmt.Errorf("apply snapshot: %w", held)
	}
	if err != nil {
		return SyncRun{}, fmt.Errorf("apply snapshot: %w", translate(err))
	}
	sn.done = true
	return stored, nil
}

// heldError says why the mass-deletion guard held a run; it wraps
// ErrMassDeletion.
type heldError struct {
	kind             string
	removed, current int64
	max              float64
}

func (h *heldError) Error() string {
	return fmt.Sprintf("%v: the run would remove %d of %d current %s (%.0f%%, more than %.0f%%); apply with force to let it through",
		ErrMassDeletion, h.removed, h.current, h.kind, 100*float64(h.removed)/float64(h.current), 100*h.max)
}

func (h *heldError) Unwrap() error { return ErrMassDeletion }

// guard returns why counts remove too much of current (the number of
// current rows per kind before the run), or nil.
func guard(counts map[string]Changes, current map[string]int64, opts ApplyOptions) *heldError {
	if opts.Force {
		return nil
	}
	for _, kind := range []string{"assignments", "users"} {
		c, ok := counts[kind]
		if !ok {
			continue
		}
		n := current[kind]
		if n >= massDeletionMinRows && float64(c.Removed) > opts.MaxRemoveFraction*float64(n) {
			return &heldError{kind: kind, removed: c.Removed, current: n, max: opts.MaxRemoveFraction}
		}
	}
	return nil
}

// merge verifies, deduplicates and merges every staged kind, returning
// the counts per kind and the number of current rows of each kind before
// the merge.
func (sn *Snapshot) merge(ctx context.Context, tx pgx.Tx) (counts map[string]Changes, current map[string]int64, err error) {
	counts, current = map[string]Changes{}, map[string]int64{}
	// prepare checks that the stage holds exactly what this snapshot
	// copied (a newer snapshot's TRUNCATE would show here), removes
	// duplicates, refreshes the planner's statistics, and returns the
	// number of distinct staged rows.
	prepare := func(table string, m mirrored) (int64, error) {
		n, err := m.stagedCount(ctx, tx, sn.id)
		if err != nil {
			return 0, err
		}
		if dups, ok := sn.prepared[table]; ok {
			// Deduplicated and analyzed already (PrepareAssignments).
			if n+dups != sn.staged[table] {
				return 0, fmt.Errorf("%w: %s holds %d rows of snapshot %d, %d were staged, %d removed as duplicates (cleared by a newer snapshot?)",
					ErrConflict, table, n, sn.id, sn.staged[table], dups)
			}
			return n, nil
		}
		if n != sn.staged[table] {
			return 0, fmt.Errorf("%w: %s holds %d rows of snapshot %d, %d were staged (cleared by a newer snapshot?)",
				ErrConflict, table, n, sn.id, sn.staged[table])
		}
		dups, err := m.tidy(ctx, tx, sn.id)
		if err != nil {
			return 0, err
		}
		return n - dups, nil
	}

	if _, ok := sn.staged["stage_allotments"]; ok {
		var n int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM stage_allotments WHERE snapshot_id = $1`, sn.id).Scan(&n); err != nil {
			return nil, nil, fmt.Errorf("count staged allotments: %w", err)
		}
		if n != sn.staged["stage_allotments"] {
			return nil, nil, fmt.Errorf("%w: stage_allotments holds %d rows of snapshot %d, %d were staged",
				ErrConflict, n, sn.id, sn.staged["stage_allotments"])
		}
		if err := loadStagedAllotments(ctx, tx, sn.id); err != nil {
			return nil, nil, err
		}
		a, err := diffedAllotments.diffStaged(ctx, tx, sn.at)
		if err != nil {
			return nil, nil, err
		}
		sub, err := diffedSubscriptions.diffStaged(ctx, tx, sn.at)
		if err != nil {
			return nil, nil, err
		}
		counts["allotments"], counts["subscriptions"] = a, sub
	}

	for _, k := range []struct {
		table string
		m     mirrored
	}{
		{"stage_assignments", mirrorAssignments},
		{"stage_waiting_members", mirrorWaitingMembers},
		{"stage_assignment_errors", mirrorAssignmentErrors},
		{"stage_group_members", mirrorGroupMembers},
	} {
		if _, ok := sn.staged[k.table]; !ok {
			continue
		}
		n, err := prepare(k.table, k.m)
		if err != nil {
			return nil, nil, err
		}
		_, changedKnown := sn.prepared[k.table]
		ch, err := k.m.merge(ctx, tx, sn.id, sn.at, true, n, changedKnown)
		if err != nil {
			return nil, nil, err
		}
		if k.table == "stage_assignments" {
			if err := saveGroupNames(ctx, tx, sn.id, sn.at); err != nil {
				return nil, nil, err
			}
		}
		current[k.m.name] = ch.Unchanged + ch.Changed + ch.Removed
		counts[k.m.name] = ch
	}

	if sn.users != "" {
		n, err := prepare("stage_users", mirrorUsers)
		if err != nil {
			return nil, nil, err
		}
		full := sn.users == "full"
		ch, err := mirrorUsers.merge(ctx, tx, sn.id, sn.at, full, n, false)
		if err != nil {
			return nil, nil, err
		}
		if full {
			current["users"] = ch.Unchanged + ch.Changed + ch.Removed
		} else {
			// A delta touches few users: count the rest to size the guard.
			removed, err := removeUsers(ctx, tx, sn.id, sn.at)
			if err != nil {
				return nil, nil, err
			}
			ch.Removed = removed
			after, err := mirrorUsers.currentCount(ctx, tx)
			if err != nil {
				return nil, nil, err
			}
			current["users"] = after - ch.Added + ch.Removed
		}
		counts["users"] = ch
	}
	return counts, current, nil
}

// loadStagedAllotments fills the transaction's staged_allotments and
// staged_subscriptions (the tables diffStaged reads) from snapshot snap's
// staged allotments; the subscriptions come from each allotment's encoded
// subscriptions list.
func loadStagedAllotments(ctx context.Context, tx pgx.Tx, snap int64) error {
	if err := createStaged(ctx, tx); err != nil {
		return err
	}
	const q = `
		INSERT INTO staged_allotments
			(seq, id, sku_id, sku_part_number, allotted_units, consumed_units,
			 assignable_to, services, subscriptions, raw)
		SELECT seq, id, sku_id, sku_part_number, allotted_units, consumed_units,
		       assignable_to, services, subscriptions, raw
		FROM stage_allotments
		WHERE snapshot_id = $1`
	if _, err := tx.Exec(ctx, q, snap); err != nil {
		return fmt.Errorf("load staged allotments: %w", err)
	}
	const subs = `
		INSERT INTO staged_subscriptions
			(ord, seq, subscription_id, allotment_id, state, start_date, next_lifecycle_date, tags)
		SELECT row_number() OVER (ORDER BY a.seq, e.ord), a.seq,
		       e.elem ->> 'subscription_id', a.id, e.elem ->> 'state',
		       (e.elem ->> 'start_date')::date, (e.elem ->> 'next_lifecycle_date')::date,
		       ARRAY(SELECT jsonb_array_elements_text(COALESCE(e.elem -> 'tags', '[]')))
		FROM staged_allotments a,
		     jsonb_array_elements(a.subscriptions) WITH ORDINALITY AS e(elem, ord)`
	if _, err := tx.Exec(ctx, subs); err != nil {
		return fmt.Errorf("load staged subscriptions: %w", err)
	}
	return tidyStaged(ctx, tx)
}

// recordFacts writes the run's allotment_facts, one row per current
// allotment with its waiting members and its SKU's assignment errors, and
// upserts the run's UTC day in allotment_daily (a later run of the same
// day replaces an earlier one).
func recordFacts(ctx context.Context, tx pgx.Tx, runID int64, at time.Time) error {
	const facts = `
		INSERT INTO allotment_facts (run_id, allotment_id, observed_at, allotted, consumed, waiting, errors)
		SELECT $1, a.id, $2, a.allotted_units, a.consumed_units,
		       (SELECT count(*)
		        FROM waiting_member_versions w
		        WHERE w.allotment_id = a.id
		          AND upper_inf(w.valid)),
		       (SELECT count(*)
		        FROM assignment_error_versions e
		        WHERE e.sku_id = a.sku_id
		          AND a.sku_id <> ''
		          AND upper_inf(e.valid))
		FROM allotment_versions a
		WHERE upper_inf(a.valid)`
	if _, err := tx.Exec(ctx, facts, runID, at); err != nil {
		return fmt.Errorf("record allotment facts: %w", err)
	}
	const daily = `
		INSERT INTO allotment_daily AS d (allotment_id, day, run_id, observed_at, allotted, consumed, waiting, errors)
		SELECT allotment_id, (observed_at AT TIME ZONE 'UTC')::date, run_id, observed_at,
		       allotted, consumed, waiting, errors
		FROM allotment_facts
		WHERE run_id = $1
		ON CONFLICT (allotment_id, day) DO UPDATE
		SET run_id = excluded.run_id,
		    observed_at = excluded.observed_at,
		    allotted = excluded.allotted,
		    consumed = excluded.consumed,
		    waiting = excluded.waiting,
		    errors = excluded.errors
		WHERE d.observed_at <= excluded.observed_at`
	if _, err := tx.Exec(ctx, daily, runID); err != nil {
		return fmt.Errorf("roll up allotment facts: %w", err)
	}
	return nil
}

// Discard drops the snapshot's staged rows without applying them. It is
// harmless after Apply, or called twice.
func (sn *Snapshot) Discard(ctx context.Context) error {
	if sn.done {
		return nil
	}
	sn.done = true
	if err := sn.discard(ctx); err != nil {
		return fmt.Errorf("discard snapshot: %w", err)
	}
	return nil
}

func (sn *Snapshot) discard(ctx context.Context) error {
	return pgx.BeginFunc(ctx, sn.s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM sync_snapshots WHERE id = $1`, sn.id); err != nil {
			return fmt.Errorf("end snapshot: %w", err)
		}
		for _, table := range []string{"stage_allotments", "stage_assignments", "stage_waiting_members",
			"stage_assignment_errors", "stage_users", "stage_user_removals", "stage_group_members"} {
			if _, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE snapshot_id = $1`, sn.id); err != nil {
				return fmt.Errorf("clear %s: %w", table, err)
			}
		}
		return nil
	})
}
