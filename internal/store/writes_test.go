package store_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/seatledger/seatledger/internal/store"
)

func TestStore_ClaimIdempotencyKey(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, conn := newStore(t)
	const ttl, lease = 24 * time.Hour, time.Minute
	key := store.IdempotencyKey{Caller: "hr", Method: "Create", Key: "k1"}

	c, err := st.ClaimIdempotencyKey(ctx, key, "h1", ttl, lease)
	if err != nil || !c.Owned || c.ReadBack || c.Result != nil {
		t.Fatalf("first claim = %+v, %v; want owned", c, err)
	}
	c, err = st.ClaimIdempotencyKey(ctx, key, "h1", ttl, lease)
	if err != nil || !c.Busy || c.Owned {
		t.Fatalf("claim while pending = %+v, %v; want busy", c, err)
	}
	if _, err := st.ClaimIdempotencyKey(ctx, key, "h2", ttl, lease); !errors.Is(err, store.ErrIdempotencyMismatch) {
		t.Fatalf("claim with another request = %v, want ErrIdempotencyMismatch", err)
	}
	// Scoped by caller: another caller's same key is independent.
	if c, err := st.ClaimIdempotencyKey(ctx, store.IdempotencyKey{Caller: "other", Method: "Create", Key: "k1"}, "h2", ttl, lease); err != nil || !c.Owned {
		t.Fatalf("another caller's claim = %+v, %v; want owned", c, err)
	}
	if err := st.FinishIdempotencyKey(ctx, key, 0, []byte("result")); err != nil {
		t.Fatal(err)
	}
	c, err = st.ClaimIdempotencyKey(ctx, key, "h1", ttl, lease)
	if err != nil || c.Owned || c.Result == nil || string(c.Result.Body) != "result" || c.Result.Code != 0 {
		t.Fatalf("claim after finish = %+v, %v; want the stored result", c, err)
	}
	if got := queryInt(t, conn, `SELECT count(*) FROM idempotency_keys WHERE expires_at > now() + interval '23 hours'`); got != 2 {
		t.Errorf("%d keys kept for 24 hours, want 2", got)
	}

	// Unknown outcome: the next claim owns the key and must read back.
	k2 := store.IdempotencyKey{Caller: "hr", Method: "Create", Key: "k2"}
	if _, err := st.ClaimIdempotencyKey(ctx, k2, "h", ttl, lease); err != nil {
		t.Fatal(err)
	}
	if err := st.MarkIdempotencyUnknown(ctx, k2); err != nil {
		t.Fatal(err)
	}
	if c, err := st.ClaimIdempotencyKey(ctx, k2, "h", ttl, lease); err != nil || !c.Owned || !c.ReadBack {
		t.Fatalf("claim after an unknown outcome = %+v, %v; want owned with read-back", c, err)
	}

	// Released keys run afresh.
	k3 := store.IdempotencyKey{Caller: "hr", Method: "Create", Key: "k3"}
	if _, err := st.ClaimIdempotencyKey(ctx, k3, "h", ttl, lease); err != nil {
		t.Fatal(err)
	}
	if err := st.ReleaseIdempotencyKey(ctx, k3); err != nil {
		t.Fatal(err)
	}
	if c, err := st.ClaimIdempotencyKey(ctx, k3, "other request", ttl, lease); err != nil || !c.Owned || c.ReadBack {
		t.Fatalf("claim after release = %+v, %v; want a fresh owner", c, err)
	}

	// A pending key past its lease is taken over, reading back.
	k4 := store.IdempotencyKey{Caller: "hr", Method: "Create", Key: "k4"}
	if _, err := st.ClaimIdempotencyKey(ctx, k4, "h", ttl, lease); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `UPDATE idempotency_keys SET claimed_at = now() - interval '2 minutes'`); err != nil {
		t.Fatal(err)
	}
	if c, err := st.ClaimIdempotencyKey(ctx, k4, "h", ttl, lease); err != nil || !c.Owned || !c.ReadBack {
		t.Fatalf("claim of a stale key = %+v, %v; want owned with read-back", c, err)
	}

	// Expired keys are purged by the next claim.
	if _, err := conn.Exec(ctx, `UPDATE idempotency_keys SET expires_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	if c, err := st.ClaimIdempotencyKey(ctx, key, "h9", ttl, lease); err != nil || !c.Owned {
		t.Fatalf("claim of an expired key = %+v, %v; want a fresh owner", c, err)
	}
	if got := queryInt(t, conn, `SELECT count(*) FROM idempotency_keys`); got != 1 {
		t.Errorf("%d keys after the purge, want 1", got)
	}
}

func TestStore_ClaimIdempotencyKey_concurrent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, _ := newStore(t)
	key := store.IdempotencyKey{Caller: "hr", Method: "Create", Key: "race"}
	owned := make(chan bool, 10)
	for range 10 {
		go func() {
			c, err := st.ClaimIdempotencyKey(ctx, key, "h", time.Hour, time.Minute)
			if err != nil {
				t.Error(err)
			}
			owned <- c.Owned
		}()
	}
	n := 0
	for range 10 {
		if <-owned {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d of 10 concurrent claims owned the key, want 1", n)
	}
}

func TestStore_RecordAssignment(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, conn := newStore(t)
	t0 := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	a := store.Assignment{ID: "a1", AllotmentID: "al1", AssigneeID: "u1", AssigneeType: store.KindUser, Raw: []byte(`{"id":"a1"}`)}

	got, err := st.RecordAssignment(ctx, a, t0)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "a1" || !got.ObservedAt.Equal(t0) || !got.FirstObservedAt.Equal(t0) {
		t.Errorf("recorded %+v; want version from %v", got, t0)
	}
	// The same state again writes nothing.
	if _, err := st.RecordAssignment(ctx, a, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, conn, `SELECT count(*) FROM assignment_versions`); n != 1 {
		t.Errorf("%d versions after an unchanged write, want 1", n)
	}
	// A change closes the version and opens another.
	a.DisabledPlanIDs = []string{"p1"}
	t1 := t0.Add(2 * time.Hour)
	got, err = st.RecordAssignment(ctx, a, t1)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.DisabledPlanIDs, []string{"p1"}) || !got.ObservedAt.Equal(t1) || !got.FirstObservedAt.Equal(t0) {
		t.Errorf("after the change: %+v", got)
	}
	old, err := st.GetAssignment(ctx, "a1", t0.Add(time.Minute))
	if err != nil || len(old.DisabledPlanIDs) != 0 {
		t.Errorf("as of before the change: %+v, %v; want the first state", old, err)
	}
	// Removal closes it; removing again is harmless.
	t2 := t1.Add(time.Hour)
	for range 2 {
		if err := st.RecordAssignmentRemoved(ctx, "a1", t2); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.GetAssignment(ctx, "a1", time.Time{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetAssignment after removal = %v, want ErrNotFound", err)
	}
	if _, err := st.GetAssignment(ctx, "a1", t1.Add(time.Minute)); err != nil {
		t.Errorf("as of before the removal: %v", err)
	}
	if _, err := st.RecordAssignment(ctx, store.Assignment{ID: "x"}, t0); err == nil {
		t.Error("RecordAssignment without allotment and assignee succeeded")
	}
}

func TestStore_RecordAllotmentCounts(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, conn := newStore(t)
	a := allotment("a1", skuTeams, 10)
	apply(t, st, t0, a)
	at := t0.Add(time.Hour)
	// Unchanged counts and no raw: nothing written.
	if err := st.RecordAllotmentCounts(ctx, "a1", a.AllottedUnits, a.ConsumedUnits, nil, at); err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, conn, `SELECT count(*) FROM allotment_versions WHERE id = 'a1'`); n != 1 {
		t.Fatalf("%d versions after an unchanged write, want 1", n)
	}
	raw := []byte(`{"@odata.context":"https://graph/$metadata#x","id":"a1","consumedUnits":11}`)
	if err := st.RecordAllotmentCounts(ctx, "a1", a.AllottedUnits, a.ConsumedUnits+1, raw, at); err != nil {
		t.Fatal(err)
	}
	got, err := st.GetAllotment(ctx, "a1")
	if err != nil {
		t.Fatal(err)
	}
	if got.ConsumedUnits != a.ConsumedUnits+1 || !got.ObservedAt.Equal(at) || got.SKUID != a.SKUID || len(got.Services) != len(a.Services) {
		t.Errorf("after the write: %+v", got)
	}
	if n := queryInt(t, conn, `SELECT count(*) FROM allotment_versions WHERE id = 'a1' AND raw ? '@odata.context'`); n != 0 {
		t.Errorf("%d versions keep @odata.context, want 0", n)
	}
	if old, err := st.AllotmentAsOf(ctx, "a1", t0); err != nil || old.ConsumedUnits != a.ConsumedUnits {
		t.Errorf("as of before the write: %+v, %v", old, err)
	}
	if err := st.RecordAllotmentCounts(ctx, "nope", 1, 1, nil, at); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown allotment: %v, want ErrNotFound", err)
	}
}
