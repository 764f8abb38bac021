package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// AllotmentPoint is one point of an allotment's time series.
type AllotmentPoint struct {
	// At is the run's time for a per-run point, the start of the UTC day
	// for a daily one; Day is that day, "YYYY-MM-DD", for daily points.
	At  time.Time
	Day string
	// RunID is the run the numbers come from (for a day, its last run).
	RunID                               int64
	Allotted, Consumed, Waiting, Errors int32
}

// HistoryParams selects a page of an allotment's history.
type HistoryParams struct {
	AllotmentID string
	// From and To bound the points' At, From included, To excluded; zero
	// means unbounded. For daily points, a day is in when its start is
	// at or after From's day and before To.
	From, To time.Time
	// Daily reads the daily roll-up (the last run of each UTC day)
	// instead of every run.
	Daily bool
	// PageSize is the most points to return; 0 or less means 100.
	PageSize int
	// After continues after the point with this At (the last of the
	// previous page); zero starts at From.
	After time.Time
}

// AllotmentHistory returns an allotment's points in time order: one per
// successful run that saw it, or with p.Daily one per UTC day. An unknown
// allotment has no points.
func (s *Store) AllotmentHistory(ctx context.Context, p HistoryParams) ([]AllotmentPoint, error) {
	if p.AllotmentID == "" {
		return nil, errors.New("allotment history: no allotment id")
	}
	var b sqlBuilder
	b.and("allotment_id = " + b.arg(p.AllotmentID))
	var q string
	if p.Daily {
		if !p.From.IsZero() {
			b.and("day >= " + b.arg(dayOf(p.From)) + "::date")
		}
		if !p.To.IsZero() {
			// A day is in when its start is before To.
			last := dayOf(p.To)
			if last.Equal(p.To.UTC()) {
				last = last.AddDate(0, 0, -1)
			}
			b.and("day <= " + b.arg(last) + "::date")
		}
		if !p.After.IsZero() {
			b.and("day > " + b.arg(dayOf(p.After)) + "::date")
		}
		q = `
			SELECT day, run_id, allotted, consumed, waiting, errors
			FROM allotment_daily
			WHERE ` + b.where() + `
			ORDER BY day
			LIMIT ` + b.arg(pageLimit(p.PageSize))
	} else {
		if !p.From.IsZero() {
			b.and("observed_at >= " + b.arg(p.From))
		}
		if !p.To.IsZero() {
			b.and("observed_at < " + b.arg(p.To))
		}
		if !p.After.IsZero() {
			b.and("observed_at > " + b.arg(p.After))
		}
		q = `
			SELECT observed_at, run_id, allotted, consumed, waiting, errors
			FROM allotment_facts
			WHERE ` + b.where() + `
			ORDER BY observed_at, run_id
			LIMIT ` + b.arg(pageLimit(p.PageSize))
	}
	rows, _ := s.pool.Query(ctx, q, b.args...)
	points, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (AllotmentPoint, error) {
		var pt AllotmentPoint
		err := row.Scan(&pt.At, &pt.RunID, &pt.Allotted, &pt.Consumed, &pt.Waiting, &pt.Errors)
		pt.At = pt.At.UTC()
		if p.Daily {
			pt.Day = pt.At.Format(time.DateOnly)
		}
		return pt, err
	})
	if err != nil {
		return nil, fmt.Errorf("allotment %q history: %w", p.AllotmentID, translate(err))
	}
	return points, nil
}

// dayOf returns the start of t's UTC day.
func dayOf(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}
