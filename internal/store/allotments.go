package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// Service is one service plan an allotment's assignments can switch on or
// off.
type Service struct {
	PlanID, PlanName string
	AssignableTo     []string
}

// Subscription is one commerce subscription backing an allotment.
type Subscription struct {
	SubscriptionID, State string
	// StartDate and NextLifecycleDate are "YYYY-MM-DD", or "" when Graph
	// sent none. StageAllotments also accepts RFC 3339 timestamps (Graph's
	// examples send them) and keeps their UTC date.
	StartDate, NextLifecycleDate string
	Tags                         []string
	// AllotmentIDs (sorted) are the allotments the subscription backs at
	// the time read, with their SKUIDs and SKUPartNumbers at the same
	// index; ObservedAt is the latest start of those versions, as
	// ListSubscriptions gives them. Set by allotment reads; ignored by
	// StageAllotments.
	AllotmentIDs, SKUIDs, SKUPartNumbers []string
	ObservedAt                           time.Time
}

// Allotment is one licence pool (a SKU's units from one or more
// subscriptions) as mirrored from Graph. Empty lists read back as nil.
type Allotment struct {
	ID, SKUID, SKUPartNumber     string
	AllottedUnits, ConsumedUnits int32
	// AssignableTo lists the assignee kinds, e.g. ["user", "group"].
	AssignableTo  []string
	Services      []Service
	Subscriptions []Subscription
	// Raw is the Graph JSON object as received; nil if none. It reads back
	// as Postgres normalizes jsonb (key order and spacing may differ).
	Raw []byte
	// ObservedAt is when the sync first saw the allotment in this state
	// (the start of the version's validity). Set by reads; ignored by
	// StageAllotments.
	ObservedAt time.Time
	// OwnerDepartment is the department that owned the allotment at the
	// same time (SetAllotmentOwner), "" when none. Set by reads; ignored
	// by StageAllotments.
	OwnerDepartment string
	// WaitingMembers is the number of users and devices waiting in the
	// allotment's waiting room at the same time (those
	// ListWaitingMembers lists). Set by reads; ignored by StageAllotments.
	WaitingMembers int32
}

// serviceJSON and subscriptionJSON are the stored forms inside
// allotment_versions.services and .subscriptions.
type serviceJSON struct {
	PlanID       string   `json:"plan_id"`
	PlanName     string   `json:"plan_name"`
	AssignableTo []string `json:"assignable_to,omitempty"`
}

type subscriptionJSON struct {
	SubscriptionID    string   `json:"subscription_id"`
	State             string   `json:"state"`
	StartDate         string   `json:"start_date,omitempty"`
	NextLifecycleDate string   `json:"next_lifecycle_date,omitempty"`
	Tags              []string `json:"tags,omitempty"`
}

// applyLockKey is the transaction-level advisory lock that serializes
// snapshot applies across replicas, and the writes recorded through Graph
// with them, so that the fencing check and the writes it guards see each
// other's commits. (goose uses its own key.)
const applyLockKey int64 = 0x5EA7_1ED6_0000_0001

// fence takes the apply lock, tunes the transaction, then refuses a snapshot observed before the
// newest successful run. An equal time is accepted: it is the same instant,
// and the later apply wins.
func fence(ctx context.Context, tx pgx.Tx, at time.Time) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, applyLockKey); err != nil {
		return fmt.Errorf("take apply lock: %w", err)
	}
	// The diff statements' cost estimates cross jit_above_cost at a few
	// thousand rows, and compiling them takes longer (~0.4 s each) than
	// running them (a few ms).
	if _, err := tx.Exec(ctx, `SET LOCAL jit = off`); err != nil {
		return fmt.Errorf("turn off jit: %w", err)
	}
	const q = `
		SELECT max(started_at)
		FROM sync_runs
		WHERE outcome = 'succeeded'`
	var newest pgtype.Timestamptz
	if err := tx.QueryRow(ctx, q).Scan(&newest); err != nil {
		return fmt.Errorf("read newest applied run: %w", err)
	}
	if newest.Valid && at.Before(newest.Time) {
		return fmt.Errorf("%w: snapshot observed at %s is older than the newest applied one (%s)",
			ErrConflict, at.UTC().Format(time.RFC3339Nano), newest.Time.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

// allotmentRow converts a into its stage_allotments columns (id … raw),
// its subscriptions encoded in the subscriptions column, validating what
// Postgres would reject less clearly.
func allotmentRow(a Allotment) ([]any, error) {
	if a.ID == "" {
		return nil, errors.New("allotment has no id")
	}
	if a.Raw != nil && !json.Valid(a.Raw) {
		return nil, fmt.Errorf("allotment %q: raw is not valid JSON", a.ID)
	}
	services := make([]serviceJSON, len(a.Services))
	for j, sv := range a.Services {
		services[j] = serviceJSON(sv)
	}
	subs := make([]subscriptionJSON, len(a.Subscriptions))
	for j, sub := range a.Subscriptions {
		if sub.SubscriptionID == "" {
			return nil, fmt.Errorf("allotment %q: subscription %d has no id", a.ID, j)
		}
		start, err := parseDate(sub.StartDate)
		if err != nil {
			return nil, fmt.Errorf("allotment %q: subscription %q: start date: %w", a.ID, sub.SubscriptionID, err)
		}
		next, err := parseDate(sub.NextLifecycleDate)
		if err != nil {
			return nil, fmt.Errorf("allotment %q: subscription %q: next lifecycle date: %w", a.ID, sub.SubscriptionID, err)
		}
		subs[j] = subscriptionJSON{sub.SubscriptionID, sub.State, start, next, sub.Tags}
	}
	servicesJSON, err := json.Marshal(services)
	if err != nil {
		return nil, fmt.Errorf("allotment %q: encode services: %w", a.ID, err)
	}
	subsJSON, err := json.Marshal(subs)
	if err != nil {
		return nil, fmt.Errorf("allotment %q: encode subscriptions: %w", a.ID, err)
	}
	return []any{a.ID, a.SKUID, a.SKUPartNumber, a.AllottedUnits, a.ConsumedUnits,
		nonNil(a.AssignableTo), servicesJSON, subsJSON, a.Raw}, nil
}

// parseDate normalizes a "YYYY-MM-DD" or RFC 3339 date to "YYYY-MM-DD"
// (the UTC date of a timestamp); "" stays "" (NULL once staged).
func parseDate(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		var err2 error
		if t, err2 = time.Parse(time.RFC3339Nano, s); err2 != nil {
			return "", fmt.Errorf("%q is neither YYYY-MM-DD nor an RFC 3339 timestamp", s)
		}
		t = t.UTC()
	}
	return t.Format(time.DateOnly), nil
}

// nonNil returns s, or an empty slice for nil: pgx sends a nil slice as
// NULL, and the array columns are NOT NULL.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// createStaged creates the transaction's staged_allotments and
// staged_subscriptions, dropped at commit.
func createStaged(ctx context.Context, tx pgx.Tx) error {
	const create = `
		CREATE TEMP TABLE staged_allotments (
			seq             integer NOT NULL,
			id              text COLLATE "C" NOT NULL,
			sku_id          text NOT NULL,
			sku_part_number text NOT NULL,
			allotted_units  integer NOT NULL,
			consumed_units  integer NOT NULL,
			assignable_to   text[] NOT NULL,
			services        jsonb NOT NULL,
			subscriptions   jsonb NOT NULL,
			raw             jsonb
		) ON COMMIT DROP;
		CREATE TEMP TABLE staged_subscriptions (
			ord                 integer NOT NULL,
			seq                 integer NOT NULL,
			subscription_id     text COLLATE "C" NOT NULL,
			allotment_id        text COLLATE "C" NOT NULL,
			state               text NOT NULL,
			start_date          date,
			next_lifecycle_date date,
			tags                text[] NOT NULL,
			raw                 jsonb
		) ON COMMIT DROP`
	if _, err := tx.Exec(ctx, create); err != nil {
		return fmt.Errorf("create staging tables: %w", err)
	}
	return nil
}

// tidyStaged removes duplicates from staged_allotments and
// staged_subscriptions (see stage) and fills each subscription's raw JSON.
func tidyStaged(ctx context.Context, tx pgx.Tx) error {
	// Several statements, one round trip (no parameters: simple protocol).
	const tidy = `
		DELETE FROM staged_allotments a
		USING staged_allotments b
		WHERE a.id = b.id
		  AND a.seq < b.seq;
		DELETE FROM staged_subscriptions s
		WHERE NOT EXISTS (SELECT 1 FROM staged_allotments a WHERE a.seq = s.seq);
		DELETE FROM staged_subscriptions a
		USING staged_subscriptions b
		WHERE a.subscription_id = b.subscription_id
		  AND a.allotment_id = b.allotment_id
		  AND a.ord < b.ord;
		UPDATE staged_subscriptions s
		SET raw = e.elem
		FROM staged_allotments a,
		     jsonb_array_elements(
		         CASE WHEN jsonb_typeof(a.raw -> 'subscriptions') = 'array'
		              THEN a.raw -> 'subscriptions' ELSE '[]' END) AS e(elem)
		WHERE a.seq = s.seq
		  AND e.elem ->> 'subscriptionId' = s.subscription_id;
		ANALYZE staged_allotments;
		ANALYZE staged_subscriptions`
	if _, err := tx.Exec(ctx, tidy); err != nil {
		return fmt.Errorf("tidy staged snapshot: %w", err)
	}
	return nil
}

// The allotments and subscriptions of a snapshot are diffed from the
// transaction's temporary staged_allotments and staged_subscriptions
// (loadStagedAllotments), without a snapshot column.
var (
	diffedAllotments = mirrored{
		name: "allotments", versions: "allotment_versions", stage: "staged_allotments",
		keys: []string{"id"},
		values: []string{"sku_id", "sku_part_number", "allotted_units", "consumed_units", "assignable_to", "services",
			"subscriptions", "raw"},
	}
	diffedSubscriptions = mirrored{
		name: "subscriptions", versions: "subscription_versions", stage: "staged_subscriptions",
		keys:   []string{"subscription_id", "allotment_id"},
		values: []string{"state", "start_date", "next_lifecycle_date", "tags", "raw"},
	}
)

// diffStaged makes m's current versions equal to its temporary staged
// table, a full listing, and counts: it closes the current versions of
// keys that changed or vanished, opens versions for new and changed ones,
// and writes nothing for unchanged ones. As merge does, it leaves alone a
// key whose history moved after the run's time, and deletes rather than
// closes a version that would close at the very instant it opened (two
// applies with one start time): it was never observable.
func (m mirrored) diffStaged(ctx context.Context, tx pgx.Tx, at time.Time) (Changes, error) {
	stale := `
			SELECT ` + cols("v", m.keys) + `, EXISTS (SELECT 1 FROM ` + m.stage + ` i WHERE ` + m.keyMatch("i", "v") + `) AS present
			FROM ` + m.versions + ` v
			WHERE upper_inf(v.valid)
			  AND lower(v.valid) <= $1 -- a write recorded after the run began is newer
			  AND NOT EXISTS (
				SELECT 1
				FROM ` + m.stage + ` i
				WHERE ` + m.keyMatch("i", "v") + `
				  AND (` + cols("i", m.values) + `) IS NOT DISTINCT FROM (` + cols("v", m.values) + `))`
	var ch Changes
	if err := tx.QueryRow(ctx, m.closeSQL(stale, "$1"), at).Scan(&ch.Changed, &ch.Removed); err != nil {
		return Changes{}, fmt.Errorf("close stale %s versions: %w", m.name, err)
	}
	open := `
		INSERT INTO ` + m.versions + ` (` + strings.Join(m.keys, ", ") + `, ` + strings.Join(m.values, ", ") + `, valid)
		SELECT ` + cols("i", m.keys) + `, ` + cols("i", m.values) + `, tstzrange($1, NULL, '[)')
		FROM ` + m.stage + ` i
		WHERE NOT EXISTS (
			SELECT 1
			FROM ` + m.versions + ` v
			WHERE ` + m.keyMatch("v", "i") + `
			  AND (upper_inf(v.valid) OR upper(v.valid) > $1))`
	tag, err := tx.Exec(ctx, open, at)
	if err != nil {
		return Changes{}, fmt.Errorf("open %s versions: %w", m.name, err)
	}
	var staged int64
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+m.stage).Scan(&staged); err != nil {
		return Changes{}, fmt.Errorf("count staged %s: %w", m.name, err)
	}
	ch.Added = tag.RowsAffected() - ch.Changed
	ch.Unchanged = staged - tag.RowsAffected()
	return ch, nil
}

// allotmentColumns are the columns scanAllotment reads, in order, from
// allotment_versions aliased v; valid renders the condition on another
// table's version (by its alias) to read: the one valid at the same time
// as v's. With v come its owner, its waiting members (counted as
// ListWaitingMembers lists them) and, for each of its subscriptions, the
// allotments that subscription backs and when its state was first seen
// (as ListSubscriptions reads them).
func allotmentColumns(valid func(alias string) string) string {
	return `v.id, v.sku_id, v.sku_part_number, v.allotted_units, v.consumed_units,
	v.assignable_to, v.services, v.subscriptions, v.raw, lower(v.valid),
	COALESCE((SELECT o.owner_department FROM allotment_owner_versions o
	          WHERE o.allotment_id = v.id AND ` + valid("o") + `), ''),
	(SELECT count(*) FROM waiting_member_versions w WHERE w.allotment_id = v.id AND ` + valid("w") + `)::int,
	COALESCE((
		SELECT jsonb_object_agg(x.subscription_id, jsonb_build_object('allotment_ids', x.allotment_ids,
		       'sku_ids', x.sku_ids, 'sku_part_numbers', x.sku_part_numbers, 'observed_at', x.observed_at))
		FROM (
			SELECT s.subscription_id, array_agg(s.allotment_id ORDER BY s.allotment_id) AS allotment_ids,
			       array_agg(COALESCE(sa.sku_id, '') ORDER BY s.allotment_id) AS sku_ids,
			       array_agg(COALESCE(sa.sku_part_number, '') ORDER BY s.allotment_id) AS sku_part_numbers,
			       max(lower(s.valid)) AS observed_at
			FROM subscription_versions s
			LEFT JOIN allotment_versions sa ON sa.id = s.allotment_id AND ` + valid("sa") + `
			WHERE ` + valid("s") + ` AND s.subscription_id IN (
				SELECT s0.subscription_id FROM subscription_versions s0 WHERE s0.allotment_id = v.id AND ` + valid("s0") + `)
			GROUP BY s.subscription_id
		) x), '{}')`
}

// currentAllotmentColumns reads current allotments with the current state
// of what comes with them.
var currentAllotmentColumns = allotmentColumns(func(alias string) string { return "upper_inf(" + alias + ".valid)" })

// subscriptionLinks is what allotmentColumns reads of each subscription
// of an allotment.
type subscriptionLinks struct {
	AllotmentIDs   []string  `json:"allotment_ids"`
	SKUIDs         []string  `json:"sku_ids"`
	SKUPartNumbers []string  `json:"sku_part_numbers"`
	ObservedAt     time.Time `json:"observed_at"`
}

func scanAllotment(row pgx.CollectableRow) (Allotment, error) {
	var (
		a              Allotment
		services, subs []byte
	)
	var links map[string]subscriptionLinks
	if err := row.Scan(&a.ID, &a.SKUID, &a.SKUPartNumber, &a.AllottedUnits, &a.ConsumedUnits,
		&a.AssignableTo, &services, &subs, &a.Raw, &a.ObservedAt, &a.OwnerDepartment, &a.WaitingMembers, &links); err != nil {
		return Allotment{}, err
	}
	a.ObservedAt = a.ObservedAt.UTC()
	if len(a.AssignableTo) == 0 {
		a.AssignableTo = nil
	}
	var sv []serviceJSON
	if err := json.Unmarshal(services, &sv); err != nil {
		return Allotment{}, fmt.Errorf("decode services of allotment %q: %w", a.ID, err)
	}
	for _, x := range sv {
		a.Services = append(a.Services, Service(x))
	}
	var sb []subscriptionJSON
	if err := json.Unmarshal(subs, &sb); err != nil {
		return Allotment{}, fmt.Errorf("decode subscriptions of allotment %q: %w", a.ID, err)
	}
	for _, x := range sb {
		sub := Subscription{SubscriptionID: x.SubscriptionID, State: x.State, StartDate: x.StartDate,
			NextLifecycleDate: x.NextLifecycleDate, Tags: x.Tags}
		if l, ok := links[x.SubscriptionID]; ok {
			sub.AllotmentIDs, sub.SKUIDs, sub.SKUPartNumbers = l.AllotmentIDs, l.SKUIDs, l.SKUPartNumbers
			sub.ObservedAt = l.ObservedAt.UTC()
		}
		a.Subscriptions = append(a.Subscriptions, sub)
	}
	return a, nil
}

// ListAllotmentsParams selects a page of current allotments.
type ListAllotmentsParams struct {
	// PageSize is the most allotments to return; 0 or less means 100.
	PageSize int
	// AfterID continues after the allotment with this ID (the last one of
	// the previous page); "" starts from the first.
	AfterID string
	// SKUID, when set, keeps only allotments of that SKU.
	SKUID string
}

// ListAllotments returns current allotments in ID order (bytewise), at
// most p.PageSize of them, after p.AfterID. A page shorter than PageSize is
// the last one.
func (s *Store) ListAllotments(ctx context.Context, p ListAllotmentsParams) ([]Allotment, error) {
	if p.PageSize <= 0 {
		p.PageSize = defaultPageSize
	}
	var rows pgx.Rows
	switch {
	case p.SKUID != "":
		q := `
			SELECT ` + currentAllotmentColumns + `
			FROM allotment_versions v
			WHERE upper_inf(v.valid)
			  AND v.sku_id = $1
			  AND v.id > $2
			ORDER BY v.id
			LIMIT $3`
		rows, _ = s.pool.Query(ctx, q, p.SKUID, p.AfterID, p.PageSize)
	default:
		q := `
			SELECT ` + currentAllotmentColumns + `
			FROM allotment_versions v
			WHERE upper_inf(v.valid)
			  AND v.id > $1
			ORDER BY v.id
			LIMIT $2`
		rows, _ = s.pool.Query(ctx, q, p.AfterID, p.PageSize)
	}
	list, err := pgx.CollectRows(rows, scanAllotment)
	if err != nil {
		return nil, fmt.Errorf("list allotments: %w", translate(err))
	}
	return list, nil
}

// GetAllotment returns the current state of the allotment with Graph ID
// id. The error wraps ErrNotFound when the mirror has none (never seen, or
// gone from Graph).
func (s *Store) GetAllotment(ctx context.Context, id string) (Allotment, error) {
	q := `
		SELECT ` + currentAllotmentColumns + `
		FROM allotment_versions v
		WHERE v.id = $1
		  AND upper_inf(v.valid)`
	rows, _ := s.pool.Query(ctx, q, id)
	a, err := pgx.CollectExactlyOneRow(rows, scanAllotment)
	switch err := translate(err); {
	case errors.Is(err, ErrNotFound):
		return Allotment{}, &NotFoundError{Kind: "allotment", Key: id}
	case err != nil:
		return Allotment{}, fmt.Errorf("get allotment %q: %w", id, err)
	}
	return a, nil
}

// AllotmentAsOf returns the allotment with Graph ID id as the mirror knew
// it at time at: the version whose validity contains at. The error wraps
// ErrNotFound when there is none (not yet seen at that time, or gone).
func (s *Store) AllotmentAsOf(ctx context.Context, id string, at time.Time) (Allotment, error) {
	q := `
		SELECT ` + allotmentColumns(func(alias string) string { return alias + ".valid @> $2::timestamptz" }) + `
		FROM allotment_versions v
		WHERE v.id = $1
		  AND v.valid @> $2::timestamptz`
	rows, _ := s.pool.Query(ctx, q, id, at)
	a, err := pgx.CollectExactlyOneRow(rows, scanAllotment)
	switch err := translate(err); {
	case errors.Is(err, ErrNotFound):
		return Allotment{}, &NotFoundError{Kind: "allotment", Key: id, AsOf: at}
	case err != nil:
		return Allotment{}, fmt.Errorf("get allotment %q as of %s: %w", id, at.UTC().Format(time.RFC3339Nano), err)
	}
	return a, nil
}
