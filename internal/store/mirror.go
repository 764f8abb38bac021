package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// Assignment is one licence assignment: an allotment's unit given to a
// user, a group or a device.
type Assignment struct {
	ID, AllotmentID, AssigneeID string
	// AssigneeType is KindUser, KindGroup or KindDevice.
	AssigneeType    string
	DisabledPlanIDs []string
	// Raw is the Graph JSON object as received; nil if none.
	Raw []byte
	// ObservedAt is the start of the current version (when the mirror
	// first saw this state); FirstObservedAt when it first saw the
	// assignment at all. Set by reads, ignored by StageAssignments.
	ObservedAt, FirstObservedAt time.Time
	// AssigneeDisplayName is, on read, the assignee user's display name
	// as of the read's time, or a group assignee's current name (group
	// names are not history: see Snapshot.StageAssignments); "" when
	// unknown. StageAssignments stages it as the name of a group assignee.
	AssigneeDisplayName string
	// Joined on read from the assignee user and the allotment as of the
	// read's time; "" when unknown (not a user, or not mirrored).
	AssigneeUPN, AssigneeDepartment, SKUID, SKUPartNumber string
}

// WaitingMember is a user or device waiting for a unit of a full
// allotment.
type WaitingMember struct {
	ID, AllotmentID, MemberID string
	// MemberType is KindUser or KindDevice.
	MemberType string
	// WaitingSince is when the member started waiting; zero if unknown.
	WaitingSince time.Time
	Raw          []byte
	// ObservedAt is the start of the current version. Set by reads.
	ObservedAt time.Time
	// Joined on read: the member's UPN, display name and department, and
	// the allotment's SKU id and part number, as of the read's time (""
	// when unknown: a device, a user not mirrored).
	MemberUPN, MemberDisplayName, MemberDepartment, SKUID, SKUPartNumber string
	// QueuePosition is the member's place (1 = next) among the
	// allotment's waiting members at the read's time, by WaitingSince
	// (unknown last), then ID. Set by reads.
	QueuePosition int
}

// AssignmentError is an asynchronous processing error that keeps a user's
// assignment from taking effect.
type AssignmentError struct {
	ID, UserID, SKUID, Code, Message string
	// OccurredAt is when Graph says the error happened; zero if unknown.
	OccurredAt time.Time
	Raw        []byte
	// ObservedAt is the start of the current version. Set by reads.
	ObservedAt time.Time
	// Joined on read from the user as of the read's time ("" when the
	// user is not mirrored).
	UserUPN, UserDisplayName, UserDepartment string
	// SKUPartNumber is the part number of an allotment of the SKU as of
	// the read's time; "" when the mirror has none.
	SKUPartNumber string
}

// SubscriptionRow is one commerce subscription with the allotments it
// backs.
type SubscriptionRow struct {
	SubscriptionID string
	// AllotmentIDs are sorted; SKUIDs[i] and SKUPartNumbers[i] belong to
	// AllotmentIDs[i] ("" when that allotment is not known at the time).
	AllotmentIDs, SKUIDs, SKUPartNumbers []string
	// State, the dates ("YYYY-MM-DD" or "") and Tags come from the
	// subscription as listed in the first of its allotments.
	State, StartDate, NextLifecycleDate string
	Tags                                []string
	// ObservedAt is the latest start of the versions read.
	ObservedAt time.Time
}

// sqlBuilder collects WHERE conditions and their $n arguments for reads
// whose filters are optional. Conditions are constant text from this
// package; values only ever travel as arguments.
type sqlBuilder struct {
	conds []string
	args  []any
}

// arg adds v as an argument and returns its placeholder.
func (b *sqlBuilder) arg(v any) string {
	b.args = append(b.args, v)
	return "$" + strconv.Itoa(len(b.args))
}

// and adds a condition.
func (b *sqlBuilder) and(cond string) { b.conds = append(b.conds, cond) }

// where renders the conditions, or TRUE.
func (b *sqlBuilder) where() string {
	if len(b.conds) == 0 {
		return "TRUE"
	}
	return strings.Join(b.conds, "\n\t\t  AND ")
}

// validAt returns a function rendering the condition "this alias's version
// is the one valid at asOf": the current version when asOf is zero.
func (b *sqlBuilder) validAt(asOf time.Time) func(alias string) string {
	if asOf.IsZero() {
		return func(alias string) string { return "upper_inf(" + alias + ".valid)" }
	}
	p := b.arg(asOf) + "::timestamptz"
	return func(alias string) string { return alias + ".valid @> " + p }
}

// pageLimit returns n, or the default for 0 or less.
func pageLimit(n int) int {
	if n <= 0 {
		return defaultPageSize
	}
	return n
}

// utc returns a valid timestamptz as UTC, the zero time otherwise.
func utc(t pgtype.Timestamptz) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}

// ListAssignmentsParams selects a page of assignments.
type ListAssignmentsParams struct {
	// PageSize is the most rows to return; 0 or less means 100.
	PageSize int
	// AfterID continues after this ID (the last of the previous page).
	AfterID string
	// Filters; "" matches everything. Department is the assignee user's
	// department at the same time; SKUID the allotment's.
	AllotmentID, AssigneeID, AssigneeType, Department, SKUID string
	// AsOf reads the versions valid at that time; zero reads the current
	// state.
	AsOf time.Time
}

// ListAssignments returns assignments in ID order (bytewise), at most
// p.PageSize, after p.AfterID, as of p.AsOf. A page shorter than PageSize
// is the last one.
func (s *Store) ListAssignments(ctx context.Context, p ListAssignmentsParams) ([]Assignment, error) {
	var b sqlBuilder
	valid := b.validAt(p.AsOf)
	b.and(valid("a"))
	b.and("a.id > " + b.arg(p.AfterID))
	if p.AllotmentID != "" {
		b.and("a.allotment_id = " + b.arg(p.AllotmentID))
	}
	if p.AssigneeID != "" {
		b.and("a.assignee_id = " + b.arg(p.AssigneeID))
	}
	if p.AssigneeType != "" {
		b.and("a.assignee_type = " + b.arg(p.AssigneeType))
	}
	if p.Department != "" {
		b.and("u.department = " + b.arg(p.Department))
	}
	if p.SKUID != "" {
		b.and("al.sku_id = " + b.arg(p.SKUID))
	}
	list, err := s.queryAssignments(ctx, &b, valid, pageLimit(p.PageSize))
	if err != nil {
		return nil, fmt.Errorf("list assignments: %w", err)
	}
	return list, nil
}

// GetAssignment returns the assignment with Graph ID id as of asOf (the
// current state when asOf is zero). The error wraps ErrNotFound when there
// is none.
func (s *Store) GetAssignment(ctx context.Context, id string, asOf time.Time) (Assignment, error) {
	var b sqlBuilder
	valid := b.validAt(asOf)
	b.and(valid("a"))
	b.and("a.id = " + b.arg(id))
	list, err := s.queryAssignments(ctx, &b, valid, 1)
	switch {
	case err != nil:
		return Assignment{}, fmt.Errorf("get assignment %q: %w", id, err)
	case len(list) == 0:
		return Assignment{}, &NotFoundError{Kind: "assignment", Key: id, AsOf: asOf}
	}
	return list[0], nil
}

func (s *Store) queryAssignments(ctx context.Context, b *sqlBuilder, valid func(string) string, limit int) ([]Assignment, error) {
	q := `
		SELECT a.id, a.allotment_id, a.assignee_id, a.assignee_type, a.disabled_plan_ids, a.raw,
		       lower(a.valid), a.first_observed_at,
		       COALESCE(u.user_principal_name, ''), COALESCE(u.display_name, gn.display_name, ''), COALESCE(u.department, ''),
		       COALESCE(al.sku_id, ''), COALESCE(al.sku_part_number, '')
		FROM assignment_versions a
		LEFT JOIN user_versions u
		  ON u.id = a.assignee_id
		 AND ` + valid("u") + `
		-- Group names are current, whatever the read's time: a rename is
		-- not history (migrations/00014_group_names.sql).
		LEFT JOIN group_names gn
		  ON gn.id = a.assignee_id
		 AND a.assignee_type = 'group'
		LEFT JOIN allotment_versions al
		  ON al.id = a.allotment_id
		 AND ` + valid("al") + `
		WHERE ` + b.where() + `
		ORDER BY a.id
		LIMIT ` + b.arg(limit)
	rows, _ := s.pool.Query(ctx, q, b.args...)
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Assignment, error) {
		var a Assignment
		err := row.Scan(&a.ID, &a.AllotmentID, &a.AssigneeID, &a.AssigneeType, &a.DisabledPlanIDs, &a.Raw,
			&a.ObservedAt, &a.FirstObservedAt, &a.AssigneeUPN, &a.AssigneeDisplayName, &a.AssigneeDepartment,
			&a.SKUID, &a.SKUPartNumber)
		a.ObservedAt, a.FirstObservedAt = a.ObservedAt.UTC(), a.FirstObservedAt.UTC()
		if len(a.DisabledPlanIDs) == 0 {
			a.DisabledPlanIDs = nil
		}
		return a, err
	})
	return list, translate(err)
}

// ListWaitingMembersParams selects a page of waiting members.
type ListWaitingMembersParams struct {
	// PageSize is the most rows to return; 0 or less means 100.
	PageSize int
	// AfterID continues after this ID (the last of the previous page).
	AfterID string
	// Filters; "" matches everything. Department is the member user's
	// department at the same time; SKUID the allotment's.
	AllotmentID, SKUID, MemberID, Department string
	// WaitingBefore, when set, keeps only members waiting since that time
	// or earlier (a minimum wait age).
	WaitingBefore time.Time
	// AsOf reads the versions valid at that time; zero reads the current
	// state.
	AsOf time.Time
}

// ListWaitingMembers returns waiting members in ID order, at most
// p.PageSize, after p.AfterID, as of p.AsOf, each with its QueuePosition.
func (s *Store) ListWaitingMembers(ctx context.Context, p ListWaitingMembersParams) ([]WaitingMember, error) {
	var b sqlBuilder
	valid := b.validAt(p.AsOf)
	// position is the member's place in its allotment's queue: ordered by
	// waiting_since (unknown last), then id, among every member of the
	// allotment, whatever the filters.
	position := "row_number() OVER (PARTITION BY v.allotment_id ORDER BY v.waiting_since NULLS LAST, v.id)"
	inner := valid("v")
	if p.MemberID != "" {
		// One member (a user's license status asks this on every call):
		// count the members ahead of it in each of its queues, through
		// the allotment index, instead of numbering every queue.
		ahead := func(cond string) string {
			return "(SELECT count(*) FROM waiting_member_versions o WHERE o.allotment_id = v.allotment_id AND " + valid("o") +
				" AND " + cond + ")"
		}
		position = "1 + CASE WHEN v.waiting_since IS NOT NULL THEN " +
			ahead("(o.waiting_since, o.id) < (v.waiting_since, v.id)") +
			" ELSE " + ahead("o.waiting_since IS NOT NULL") + " + " + ahead("o.waiting_since IS NULL AND o.id < v.id") + " END"
		inner += " AND v.member_id = " + b.arg(p.MemberID)
	}
	if p.AllotmentID != "" {
		inner += " AND v.allotment_id = " + b.arg(p.AllotmentID)
	}
	if p.AfterID != "" {
		b.and("w.id > " + b.arg(p.AfterID))
	}
	if p.SKUID != "" {
		b.and("al.sku_id = " + b.arg(p.SKUID))
	}
	if p.Department != "" {
		b.and("u.department = " + b.arg(p.Department))
	}
	if !p.WaitingBefore.IsZero() {
		b.and("w.waiting_since <= " + b.arg(p.WaitingBefore))
	}
	q := `
		WITH w AS (
			SELECT v.id, v.allotment_id, v.member_id, v.member_type, v.waiting_since, v.raw, lower(v.valid) AS observed_at,
			       ` + position + ` AS position
			FROM waiting_member_versions v
			WHERE ` + inner + `
		)
		SELECT w.id, w.allotment_id, w.member_id, w.member_type, w.waiting_since, w.raw, w.observed_at, w.position,
		       COALESCE(u.user_principal_name, ''), COALESCE(u.display_name, ''), COALESCE(u.department, ''),
		       COALESCE(al.sku_id, ''), COALESCE(al.sku_part_number, '')
		FROM w
		LEFT JOIN user_versions u
		  ON u.id = w.member_id
		 AND ` + valid("u") + `
		LEFT JOIN allotment_versions al
		  ON al.id = w.allotment_id
		 AND ` + valid("al") + `
		WHERE ` + b.where() + `
		ORDER BY w.id
		LIMIT ` + b.arg(pageLimit(p.PageSize))
	rows, _ := s.pool.Query(ctx, q, b.args...)
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (WaitingMember, error) {
		var (
			w     WaitingMember
			since pgtype.Timestamptz
			pos   int64
		)
		err := row.Scan(&w.ID, &w.AllotmentID, &w.MemberID, &w.MemberType, &since, &w.Raw, &w.ObservedAt, &pos,
			&w.MemberUPN, &w.MemberDisplayName, &w.MemberDepartment, &w.SKUID, &w.SKUPartNumber)
		w.WaitingSince, w.ObservedAt, w.QueuePosition = utc(since), w.ObservedAt.UTC(), int(pos)
		return w, err
	})
	if err != nil {
		return nil, fmt.Errorf("list waiting members: %w", translate(err))
	}
	return list, nil
}

// ListAssignmentErrorsParams selects a page of assignment errors.
type ListAssignmentErrorsParams struct {
	// PageSize is the most rows to return; 0 or less means 100.
	PageSize int
	// AfterID continues after this ID (the last of the previous page).
	AfterID string
	// Filters; "" matches everything. Department is the user's
	// department at the same time.
	SKUID, UserID, Department, Code string
	// AsOf reads the versions valid at that time; zero reads the current
	// state.
	AsOf time.Time
}

// ListAssignmentErrors returns assignment errors in ID order, at most
// p.PageSize, after p.AfterID, as of p.AsOf.
func (s *Store) ListAssignmentErrors(ctx context.Context, p ListAssignmentErrorsParams) ([]AssignmentError, error) {
	var b sqlBuilder
	valid := b.validAt(p.AsOf)
	b.and(valid("e"))
	b.and("e.id > " + b.arg(p.AfterID))
	if p.SKUID != "" {
		b.and("e.sku_id = " + b.arg(p.SKUID))
	}
	if p.UserID != "" {
		b.and("e.user_id = " + b.arg(p.UserID))
	}
	if p.Code != "" {
		b.and("e.code = " + b.arg(p.Code))
	}
	if p.Department != "" {
		b.and("u.department = " + b.arg(p.Department))
	}
	q := `
		SELECT e.id, e.user_id, e.sku_id, e.code, e.message, e.occurred_at, e.raw, lower(e.valid),
		       COALESCE(u.user_principal_name, ''), COALESCE(u.display_name, ''), COALESCE(u.department, ''),
		       COALESCE((SELECT min(al.sku_part_number) FROM allotment_versions al
		                 WHERE al.sku_id = e.sku_id AND ` + valid("al") + `), '')
		FROM assignment_error_versions e
		LEFT JOIN user_versions u
		  ON u.id = e.user_id
		 AND ` + valid("u") + `
		WHERE ` + b.where() + `
		ORDER BY e.id
		LIMIT ` + b.arg(pageLimit(p.PageSize))
	rows, _ := s.pool.Query(ctx, q, b.args...)
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (AssignmentError, error) {
		var (
			e  AssignmentError
			at pgtype.Timestamptz
		)
		err := row.Scan(&e.ID, &e.UserID, &e.SKUID, &e.Code, &e.Message, &at, &e.Raw, &e.ObservedAt,
			&e.UserUPN, &e.UserDisplayName, &e.UserDepartment, &e.SKUPartNumber)
		e.OccurredAt, e.ObservedAt = utc(at), e.ObservedAt.UTC()
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("list assignment errors: %w", translate(err))
	}
	return list, nil
}

// ListSubscriptionsParams selects a page of subscriptions.
type ListSubscriptionsParams struct {
	// PageSize is the most rows to return; 0 or less means 100.
	PageSize int
	// AfterID continues after this subscription ID.
	AfterID string
	// State keeps subscriptions in that state; SKUID those backing an
	// allotment of that SKU. "" matches everything.
	State, SKUID string
	// AsOf reads the versions valid at that time; zero reads the current
	// state.
	AsOf time.Time
}

// ListSubscriptions returns subscriptions in subscription ID order, at
// most p.PageSize, after p.AfterID, as of p.AsOf.
func (s *Store) ListSubscriptions(ctx context.Context, p ListSubscriptionsParams) ([]SubscriptionRow, error) {
	var b sqlBuilder
	valid := b.validAt(p.AsOf)
	b.and(valid("s"))
	b.and("s.subscription_id > " + b.arg(p.AfterID))
	if p.State != "" {
		b.and("s.state = " + b.arg(p.State))
	}
	having := "TRUE"
	if p.SKUID != "" {
		having = "bool_or(sku_id = " + b.arg(p.SKUID) + ")"
	}
	q := `
		WITH s AS (
			SELECT s.subscription_id, s.allotment_id, s.state, s.start_date, s.next_lifecycle_date, s.tags,
			       lower(s.valid) AS observed_at,
			       COALESCE(al.sku_id, '') AS sku_id, COALESCE(al.sku_part_number, '') AS sku_part_number
			FROM subscription_versions s
			LEFT JOIN allotment_versions al
			  ON al.id = s.allotment_id
			 AND ` + valid("al") + `
			WHERE ` + b.where() + `
		), g AS (
			SELECT subscription_id,
			       array_agg(allotment_id ORDER BY allotment_id) AS allotment_ids,
			       array_agg(sku_id ORDER BY allotment_id) AS sku_ids,
			       array_agg(sku_part_number ORDER BY allotment_id) AS sku_part_numbers,
			       max(observed_at) AS observed_at
			FROM s
			GROUP BY subscription_id
			HAVING ` + having + `
			ORDER BY subscription_id
			LIMIT ` + b.arg(pageLimit(p.PageSize)) + `
		)
		SELECT g.subscription_id, g.allotment_ids, g.sku_ids, g.sku_part_numbers,
		       f.state, COALESCE(to_char(f.start_date, 'YYYY-MM-DD'), ''),
		       COALESCE(to_char(f.next_lifecycle_date, 'YYYY-MM-DD'), ''), f.tags, g.observed_at
		FROM g
		JOIN LATERAL (
			SELECT state, start_date, next_lifecycle_date, tags
			FROM s
			WHERE s.subscription_id = g.subscription_id
			ORDER BY s.allotment_id
			LIMIT 1
		) f ON TRUE
		ORDER BY g.subscription_id`
	rows, _ := s.pool.Query(ctx, q, b.args...)
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (SubscriptionRow, error) {
		var r SubscriptionRow
		err := row.Scan(&r.SubscriptionID, &r.AllotmentIDs, &r.SKUIDs, &r.SKUPartNumbers, &r.State,
			&r.StartDate, &r.NextLifecycleDate, &r.Tags, &r.ObservedAt)
		r.ObservedAt = r.ObservedAt.UTC()
		if len(r.Tags) == 0 {
			r.Tags = nil
		}
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", translate(err))
	}
	return list, nil
}
