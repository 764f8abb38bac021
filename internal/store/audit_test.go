package store_test

import (
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/seatledger/seatledger/internal/store"
)

func TestStore_AuditEvents(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, _ := newStore(t)
	t0 := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	events := []store.AuditEvent{
		{Actor: "hr", Method: "Create", Resource: "assignments/a1", Status: "OK", GraphRequestID: "g1", Request: []byte(`{"user": "ana"}`)}, // jsonb's normal form,
		{Actor: "hr", Method: "Create", Status: "NOT_FOUND", Message: "user not found", IdempotencyKey: "k"},
		{Actor: "ops", Method: "Delete", Resource: "assignments/a1", Status: "OK"},
		{Actor: "ops", Method: "SetOwner", Resource: "allotments/al_1", Status: "OK", Details: map[string]string{"owner": "Sales"}},
		{Actor: "ops", Method: "SetOwner", Resource: "allotments_x", Status: "OK"},
	}
	for i := range events {
		events[i].Time = t0.Add(time.Duration(i) * time.Minute)
		events[i].RequestID = fmt.Sprint("r", i)
		events[i].Latency = 1500 * time.Microsecond
		id, err := st.RecordAuditEvent(ctx, events[i])
		if err != nil {
			t.Fatal(err)
		}
		events[i].ID = id
		if events[i].Details == nil {
			events[i].Details = map[string]string{}
		}
	}
	ids := func(list []store.AuditEvent) []int64 {
		var out []int64
		for _, e := range list {
			out = append(out, e.ID)
		}
		return out
	}
	e := events
	tests := []struct {
		name string
		p    store.ListAuditEventsParams
		want []int64
	}{
		{"all, newest first", store.ListAuditEventsParams{}, []int64{e[4].ID, e[3].ID, e[2].ID, e[1].ID, e[0].ID}},
		{"page", store.ListAuditEventsParams{PageSize: 2, BeforeID: e[3].ID}, []int64{e[2].ID, e[1].ID}},
		{"actor", store.ListAuditEventsParams{Actor: "hr"}, []int64{e[1].ID, e[0].ID}},
		{"method", store.ListAuditEventsParams{Method: "Delete"}, []int64{e[2].ID}},
		{"resource", store.ListAuditEventsParams{Resource: "assignments/a1"}, []int64{e[2].ID, e[0].ID}},
		{"collection (LIKE metacharacters are literal)", store.ListAuditEventsParams{Resource: "allotments/"}, []int64{e[3].ID}},
		{"time range", store.ListAuditEventsParams{Start: t0.Add(time.Minute), End: t0.Add(3 * time.Minute)}, []int64{e[2].ID, e[1].ID}},
	}
	for _, tt := range tests {
		got, err := st.ListAuditEvents(ctx, tt.p)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tt.want, ids(got)); diff != "" {
			t.Errorf("%s: ids mismatch (-want +got):\n%s", tt.name, diff)
		}
	}
	got, err := st.ListAuditEvents(ctx, store.ListAuditEventsParams{Method: "Create"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]store.AuditEvent{e[1], e[0]}, got); diff != "" {
		t.Errorf("events read back differ (-want +got):\n%s", diff)
	}
}

// TestMigrate_AuditStatusesTakeOneSpelling: audit events recorded before
// migration 00012 in Go's spelling of a status (PermissionDenied, written
// by the interceptor's path) read back with the canonical name audit.proto
// promises, beside those already canonical.
func TestMigrate_AuditStatusesTakeOneSpelling(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, conn := newStore(t)
	quiet := slog.New(slog.DiscardHandler)
	for {
		var v int64
		if err := conn.QueryRow(ctx, `SELECT max(version_id) FROM goose_db_version WHERE is_applied`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		if v < 12 {
			break
		}
		if err := st.MigrateDown(ctx, quiet); err != nil {
			t.Fatal(err)
		}
	}
	for _, status := range []string{"PermissionDenied", "NOT_FOUND", "Unauthenticated", "OK"} {
		if _, err := conn.Exec(ctx, `INSERT INTO audit_events (event_time, actor, method, resource, status, message, idempotency_key, request_id, graph_request_id, latency_us)
			VALUES (now(), 'a', 'm', '', $1, '', '', '', '', 0)`, status); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Migrate(ctx, quiet); err != nil {
		t.Fatal(err)
	}
	events, err := st.ListAuditEvents(ctx, store.ListAuditEventsParams{PageSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range events {
		got = append(got, e.Status)
	}
	slices.Sort(got)
	if want := []string{"NOT_FOUND", "OK", "PERMISSION_DENIED", "UNAUTHENTICATED"}; !slices.Equal(got, want) {
		t.Errorf("statuses after the migration = %v, want %v", got, want)
	}
}
