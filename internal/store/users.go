package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// User is a directory user, with the facts chargeback needs.
type User struct {
	ID, UserPrincipalName, DisplayName string
	// Department, CompanyName and CostCenter are "" when Entra has none.
	Department, CompanyName, CostCenter string
	AccountEnabled                      bool
	// Raw is the Graph JSON object as received; nil if none.
	Raw []byte
	// ObservedAt is the start of the version read. Set by reads.
	ObservedAt time.Time
}

// GroupMember is one direct member of a group.
type GroupMember struct {
	GroupID, MemberID string
	// MemberType is KindUser, KindGroup, KindDevice, or another
	// directory object kind.
	MemberType string
}

// userColumns are the columns scanUser reads, in order.
const userColumns = `v.id, v.user_principal_name, v.display_name, v.department, v.company_name, v.cost_center,
	v.account_enabled, v.raw, lower(v.valid)`

func scanUser(row pgx.CollectableRow) (User, error) {
	var u User
	err := row.Scan(&u.ID, &u.UserPrincipalName, &u.DisplayName, &u.Department, &u.CompanyName, &u.CostCenter,
		&u.AccountEnabled, &u.Raw, &u.ObservedAt)
	u.ObservedAt = u.ObservedAt.UTC()
	return u, err
}

// GetUser returns the user whose ID, or user principal name (compared
// case-insensitively), is idOrUPN, as of asOf (the current state when
// asOf is zero). An ID match wins over a UPN match. The error wraps
// ErrNotFound when there is none.
func (s *Store) GetUser(ctx context.Context, idOrUPN string, asOf time.Time) (User, error) {
	var b sqlBuilder
	valid := b.validAt(asOf)
	key := b.arg(idOrUPN)
	b.and(valid("v"))
	b.and("(v.id = " + key + " OR lower(v.user_principal_name) = lower(" + key + "))")
	q := `
		SELECT ` + userColumns + `
		FROM user_versions v
		WHERE ` + b.where() + `
		ORDER BY v.id = ` + key + ` DESC, v.id
		LIMIT 1`
	rows, _ := s.pool.Query(ctx, q, b.args...)
	u, err := pgx.CollectExactlyOneRow(rows, scanUser)
	if err != nil {
		if err := translate(err); !errors.Is(err, ErrNotFound) {
			return User{}, fmt.Errorf("get user %q: %w", idOrUPN, err)
		}
		return User{}, &NotFoundError{Kind: "user", Key: idOrUPN, AsOf: asOf}
	}
	return u, nil
}

// ListUsers returns users in ID order, at most pageSize (0 or less means
// 100), after afterID, as of asOf (the current state when zero).
func (s *Store) ListUsers(ctx context.Context, pageSize int, afterID string, asOf time.Time) ([]User, error) {
	var b sqlBuilder
	valid := b.validAt(asOf)
	b.and(valid("v"))
	b.and("v.id > " + b.arg(afterID))
	q := `
		SELECT ` + userColumns + `
		FROM user_versions v
		WHERE ` + b.where() + `
		ORDER BY v.id
		LIMIT ` + b.arg(pageLimit(pageSize))
	rows, _ := s.pool.Query(ctx, q, b.args...)
	list, err := pgx.CollectRows(rows, scanUser)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", translate(err))
	}
	return list, nil
}

// GroupMembersAsOf returns the direct members of group groupID as of asOf
// (the current ones when asOf is zero), in member ID order.
func (s *Store) GroupMembersAsOf(ctx context.Context, groupID string, asOf time.Time) ([]GroupMember, error) {
	var b sqlBuilder
	valid := b.validAt(asOf)
	b.and(valid("v"))
	b.and("v.group_id = " + b.arg(groupID))
	q := `
		SELECT v.group_id, v.member_id, v.member_type
		FROM group_member_versions v
		WHERE ` + b.where() + `
		ORDER BY v.member_id`
	rows, _ := s.pool.Query(ctx, q, b.args...)
	list, err := pgx.CollectRows(rows, pgx.RowToStructByPos[GroupMember])
	if err != nil {
		return nil, fmt.Errorf("list members of group %q: %w", groupID, translate(err))
	}
	return list, nil
}
