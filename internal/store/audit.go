package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// AuditEvent is one write attempt through seatledger, successful or not.
type AuditEvent struct {
	// ID increases with time; set by RecordAuditEvent.
	ID int64
	// Time is when the call was made.
	Time time.Time
	// Actor is the authenticated caller's stable id ("anonymous" when
	// access control is off); ActorName its name as the token gives it
	// ("" when none); Method the full RPC name.
	Actor, ActorName, Method string
	// Resource names what was acted on, e.g. "assignments/{id}"; "" when
	// nothing was.
	Resource string
	// Status is the result's gRPC code name; Message its message ("" on
	// success).
	Status, Message string
	// IdempotencyKey is the key the caller sent, if any.
	IdempotencyKey string
	// RequestID is seatledger's id of the call (in its log line);
	// GraphRequestID Graph's request-id, "" when Graph was not called.
	RequestID, GraphRequestID string
	// Latency is how long the call took.
	Latency time.Duration
	// Request is the request as JSON, without secrets; nil if none.
	Request []byte
	// Details are further facts, e.g. "sku_id" or "idempotent_replay".
	Details map[string]string
}

// RecordAuditEvent appends e to the audit log and returns its ID.
func (s *Store) RecordAuditEvent(ctx context.Context, e AuditEvent) (int64, error) {
	if e.Request != nil {
		if err := rawJSON("audit request", e.Method, e.Request); err != nil {
			return 0, fmt.Errorf("record audit event: %w", err)
		}
	}
	details := e.Details
	if details == nil {
		details = map[string]string{}
	}
	d, err := json.Marshal(details)
	if err != nil {
		return 0, fmt.Errorf("record audit event: encode details: %w", err)
	}
	const q = `
		INSERT INTO audit_events (event_time, actor, method, resource, status, message, idempotency_key,
		                          request_id, graph_request_id, latency_us, request, details, actor_name)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12::jsonb, $13)
		RETURNING id`
	var id int64
	err = s.pool.QueryRow(ctx, q, e.Time, e.Actor, e.Method, e.Resource, e.Status, e.Message, e.IdempotencyKey,
		e.RequestID, e.GraphRequestID, e.Latency.Microseconds(), e.Request, d, e.ActorName).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("record audit event: %w", translate(err))
	}
	return id, nil
}

// ListAuditEventsParams selects a page of audit events. Filters combine
// with AND; "" and zero times match everything.
type ListAuditEventsParams struct {
	// PageSize is the most events to return; 0 or less means 100.
	PageSize int
	// BeforeID continues with events older than this ID (the last of the
	// previous page); 0 starts from the newest.
	BeforeID int64
	// Actor and Method match exactly.
	Actor, Method string
	// Resource matches exactly, or, when it ends in "/", every resource
	// starting with it.
	Resource string
	// Start keeps events at or after it, End events before it.
	Start, End time.Time
}

// ListAuditEvents returns audit events newest first (by ID), at most
// p.PageSize, before p.BeforeID.
func (s *Store) ListAuditEvents(ctx context.Context, p ListAuditEventsParams) ([]AuditEvent, error) {
	var b sqlBuilder
	if p.BeforeID > 0 {
		b.and("id < " + b.arg(p.BeforeID))
	}
	if p.Actor != "" {
		b.and("actor = " + b.arg(p.Actor))
	}
	if p.Method != "" {
		b.and("method = " + b.arg(p.Method))
	}
	if prefix, ok := strings.CutSuffix(p.Resource, "/"); ok {
		// LIKE with the pattern's metacharacters escaped.
		esc := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(prefix + "/")
		b.and("resource LIKE " + b.arg(esc+"%"))
	} else if p.Resource != "" {
		b.and("resource = " + b.arg(p.Resource))
	}
	if !p.Start.IsZero() {
		b.and("event_time >= " + b.arg(p.Start))
	}
	if !p.End.IsZero() {
		b.and("event_time < " + b.arg(p.End))
	}
	q := `
		SELECT id, event_time, actor, method, resource, status, message, idempotency_key,
		       request_id, graph_request_id, latency_us, request, details, actor_name
		FROM audit_events
		WHERE ` + b.where() + `
		ORDER BY id DESC
		LIMIT ` + b.arg(pageLimit(p.PageSize))
	rows, _ := s.pool.Query(ctx, q, b.args...)
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (AuditEvent, error) {
		var (
			e       AuditEvent
			latency int64
			details []byte
		)
		if err := row.Scan(&e.ID, &e.Time, &e.Actor, &e.Method, &e.Resource, &e.Status, &e.Message, &e.IdempotencyKey,
			&e.RequestID, &e.GraphRequestID, &latency, &e.Request, &details, &e.ActorName); err != nil {
			return AuditEvent{}, err
		}
		e.Time, e.Latency = e.Time.UTC(), time.Duration(latency)*time.Microsecond
		if err := json.Unmarshal(details, &e.Details); err != nil {
			return AuditEvent{}, fmt.Errorf("decode details of audit event %d: %w", e.ID, err)
		}
		return e, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list audit events: %w", translate(err))
	}
	return list, nil
}
