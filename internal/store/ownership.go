package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// SetAllotmentOwner records that department owns allotment allotmentID
// from at on ("" clears the owner), set by actor. Ownership is
// seatledger's own data, kept with history: the current owner's version
// is closed at at and the new one opened. Setting the owner it already
// has writes nothing. It does not check that the allotment exists.
func (s *Store) SetAllotmentOwner(ctx context.Context, allotmentID, department, actor string, at time.Time) error {
	defer s.changed() // readers see this write at once (changes.go)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		const cur = `
			SELECT owner_department, lower(valid)
			FROM allotment_owner_versions
			WHERE allotment_id = $1 AND upper_inf(valid)
			FOR UPDATE`
		var (
			owner string
			since time.Time
		)
		switch err := tx.QueryRow(ctx, cur, allotmentID).Scan(&owner, &since); {
		case errors.Is(err, pgx.ErrNoRows):
			if department == "" {
				return nil
			}
		case err != nil:
			return fmt.Errorf("read current owner: %w", err)
		case owner == department:
			return nil
		case since.Before(at):
			const closeQ = `
				UPDATE allotment_owner_versions
				SET valid = tstzrange(lower(valid), $2, '[)')
				WHERE allotment_id = $1 AND upper_inf(valid)`
			if _, err := tx.Exec(ctx, closeQ, allotmentID, at); err != nil {
				return fmt.Errorf("close owner version: %w", err)
			}
		default:
			// Set twice at the same instant (or the clock went back): the
			// later setting replaces the earlier one.
			const drop = `DELETE FROM allotment_owner_versions WHERE allotment_id = $1 AND upper_inf(valid)`
			if _, err := tx.Exec(ctx, drop, allotmentID); err != nil {
				return fmt.Errorf("replace owner version: %w", err)
			}
			at = since
		}
		if department == "" {
			return nil
		}
		const open = `
			INSERT INTO allotment_owner_versions (allotment_id, owner_department, set_by, valid)
			VALUES ($1, $2, $3, tstzrange($4, NULL, '[)'))`
		if _, err := tx.Exec(ctx, open, allotmentID, department, actor, at); err != nil {
			return fmt.Errorf("open owner version: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set owner of allotment %q: %w", allotmentID, translate(err))
	}
	return nil
}

// AllotmentOwners returns the owning department of every allotment that
// had one at asOf (now when zero), keyed by allotment ID.
func (s *Store) AllotmentOwners(ctx context.Context, asOf time.Time) (map[string]string, error) {
	var b sqlBuilder
	b.and(b.validAt(asOf)("v"))
	q := `
		SELECT v.allotment_id, v.owner_department
		FROM allotment_owner_versions v
		WHERE ` + b.where()
	rows, _ := s.pool.Query(ctx, q, b.args...)
	out := map[string]string{}
	var id, dept string
	_, err := pgx.ForEachRow(rows, []any{&id, &dept}, func() error {
		out[id] = dept
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list allotment owners: %w", translate(err))
	}
	return out, nil
}
