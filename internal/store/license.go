package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Seat is one licence a user holds: an allotment, reached through one
// assignment to the user (direct) or to a group the user is a direct
// member of.
type Seat struct {
	AllotmentID, SKUID, SKUPartNumber string
	AssignmentID                      string
	// GroupID is the group the seat is inherited through; "" when direct.
	GroupID string
	// GroupDisplayName is that group's current name (names are not
	// history); "" when direct or unknown.
	GroupDisplayName string
	DisabledPlanIDs  []string
	// Services are the allotment's service plans.
	Services []Service
}

// UserSeats returns the seats userID holds as of asOf (zero: now), direct
// ones first, then by allotment. A group's licence is no seat while the
// user waits in that allotment's waiting room. A user reached both directly and through
// groups gets one Seat per path: Graph charges one unit per allotment, but
// each path is a reason the user has it.
func (s *Store) UserSeats(ctx context.Context, userID string, asOf time.Time) ([]Seat, error) {
	var b sqlBuilder
	valid := b.validAt(asOf)
	user := b.arg(userID)
	q := `
		WITH held AS (
			SELECT a.id, a.allotment_id, a.disabled_plan_ids, '' AS group_id
			FROM assignment_versions a
			WHERE a.assignee_id = ` + user + ` AND a.assignee_type = 'user' AND ` + valid("a") + `
			UNION ALL
			SELECT a.id, a.allotment_id, a.disabled_plan_ids, g.group_id
			FROM group_member_versions g
			JOIN assignment_versions a
			  ON a.assignee_id = g.group_id AND a.assignee_type = 'group' AND ` + valid("a") + `
			WHERE g.member_id = ` + user + ` AND ` + valid("g") + `
			  -- A member waiting in the allotment's waiting room holds no
			  -- seat of it through the group (Graph counts it in no unit).
			  AND NOT EXISTS (
				SELECT 1 FROM waiting_member_versions w
				WHERE w.member_id = g.member_id AND w.allotment_id = a.allotment_id AND ` + valid("w") + `)
		)
		SELECT h.id, h.allotment_id, h.disabled_plan_ids, h.group_id, COALESCE(gn.display_name, ''),
		       COALESCE(al.sku_id, ''), COALESCE(al.sku_part_number, ''), COALESCE(al.services, '[]')
		FROM held h
		LEFT JOIN allotment_versions al ON al.id = h.allotment_id AND ` + valid("al") + `
		-- Current names whatever asOf: a rename is not history.
		LEFT JOIN group_names gn ON gn.id = h.group_id
		ORDER BY h.group_id <> '', h.allotment_id, h.group_id, h.id`
	rows, _ := s.pool.Query(ctx, q, b.args...)
	seats, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Seat, error) {
		var (
			st       Seat
			services []byte
		)
		if err := row.Scan(&st.AssignmentID, &st.AllotmentID, &st.DisabledPlanIDs, &st.GroupID, &st.GroupDisplayName,
			&st.SKUID, &st.SKUPartNumber, &services); err != nil {
			return Seat{}, err
		}
		var sv []serviceJSON
		if err := json.Unmarshal(services, &sv); err != nil {
			return Seat{}, fmt.Errorf("decode services of allotment %q: %w", st.AllotmentID, err)
		}
		for _, x := range sv {
			st.Services = append(st.Services, Service(x))
		}
		if len(st.DisabledPlanIDs) == 0 {
			st.DisabledPlanIDs = nil
		}
		return st, nil
	})
	if err != nil {
		return nil, fmt.Errorf("seats of user %q: %w", userID, err)
	}
	return seats, nil
}
