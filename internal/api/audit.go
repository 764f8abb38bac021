package api

import (
	"context"
	"fmt"
	"strconv"
	"time"

	seatledgerv1 "github.com/seatledger/seatledger/gen/seatledger/v1"
	"github.com/seatledger/seatledger/internal/store"
)

// ListAuditEvents implements seatledger.v1.AuditService.ListAuditEvents.
func (s *auditService) ListAuditEvents(ctx context.Context, req *seatledgerv1.ListAuditEventsRequest) (*seatledgerv1.ListAuditEventsResponse, error) {
	if err := firstErr(validateText("actor", req.GetActor()), validateText("method", req.GetMethod()),
		validateText("resource", req.GetResource())); err != nil {
		return nil, err
	}
	p := store.ListAuditEventsParams{Actor: req.GetActor(), Method: req.GetMethod(), Resource: req.GetResource()}
	if ts := req.GetStartTime(); ts != nil {
		if err := ts.CheckValid(); err != nil {
			return nil, invalidArgument("start_time", "is not a valid time (between 0001-01-01 and 9999-12-31), e.g. 2026-12-04T00:00:00Z")
		}
		p.Start = ts.AsTime()
	}
	if ts := req.GetEndTime(); ts != nil {
		if err := ts.CheckValid(); err != nil {
			return nil, invalidArgument("end_time", "is not a valid time (between 0001-01-01 and 9999-12-31), e.g. 2026-12-04T00:00:00Z")
		}
		p.End = ts.AsTime()
	}
	filter := fmt.Sprintf("%s;%s;%s;%s;%s", p.Actor, p.Method, p.Resource, p.Start.Format(time.RFC3339Nano), p.End.Format(time.RFC3339Nano))
	rows, next, err := page(req, filter, func(size int, after string) ([]store.AuditEvent, error) {
		if after != "" {
			id, err := strconv.ParseInt(after, 10, 64)
			if err != nil || id <= 0 {
				return nil, badPageToken(req.GetPageToken())
			}
			p.BeforeID = id
		}
		p.PageSize = size
		return s.store.ListAuditEvents(ctx, p)
	}, func(e store.AuditEvent) string { return strconv.FormatInt(e.ID, 10) })
	if err != nil {
		return nil, err
	}
	resp := &seatledgerv1.ListAuditEventsResponse{NextPageToken: next}
	for _, e := range rows {
		resp.AuditEvents = append(resp.AuditEvents, auditEventToProto(e))
	}
	return resp, nil
}

// firstErr returns the first non-nil error (validation reports the first
// field that is wrong).
func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func auditEventToProto(e store.AuditEvent) *seatledgerv1.AuditEvent {
	details := make(map[string]string, len(e.Details)+3)
	for k, v := range e.Details {
		details[k] = v
	}
	if e.GraphRequestID != "" {
		details["graph_request_id"] = e.GraphRequestID
	}
	details["latency_ms"] = strconv.FormatFloat(float64(e.Latency.Microseconds())/1000, 'f', 3, 64)
	if len(e.Request) > 0 {
		details["request"] = string(e.Request)
	}
	return &seatledgerv1.AuditEvent{
		Name:           "audit-events/" + strconv.FormatInt(e.ID, 10),
		Id:             e.ID,
		EventTime:      timeToProto(e.Time),
		Actor:          e.Actor,
		ActorName:      e.ActorName,
		Method:         e.Method,
		Resource:       e.Resource,
		Status:         e.Status,
		Message:        e.Message,
		IdempotencyKey: e.IdempotencyKey,
		RequestId:      e.RequestID,
		Details:        details,
	}
}
