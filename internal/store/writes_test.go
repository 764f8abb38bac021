package store_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

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

// TestStore_RecordCreatedAssignment: an assignment recorded from Graph's
// answer to seatledger's own create is listed at once and its seat is
// counted; the true counts read from Graph later, and a sync that lists
// the assignment in its own shape, then write no new version: history
// keeps one version per real change.
func TestStore_RecordCreatedAssignment(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, conn := newStore(t)
	al := allotment("al", skuTeams, 4)
	grp := allotment("grp", skuE5, 0)
	applyAt(t, st, t0, snapshot{allotments: []store.Allotment{al, grp}, assignments: []store.Assignment{}})

	// answer is Graph's answer to a POST; listed the sync's listing of the
	// same assignment, with the expansions it asks for.
	answer := func(id, allotment, assignee, kind string) store.Assignment {
		return store.Assignment{ID: id, AllotmentID: allotment, AssigneeID: assignee, AssigneeType: kind,
			Raw: fmt.Appendf(nil, `{"@odata.context":"https://graph/$metadata#x/$entity","id":%q,"disabledServicePlanIds":[]}`, id)}
	}
	listed := func(a store.Assignment) store.Assignment {
		a.Raw = fmt.Appendf(nil, `{"id":%q,"disabledServicePlanIds":[],"allotment":{"id":%q},"assignedTo":{"id":%q}}`,
			a.ID, a.AllotmentID, a.AssigneeID)
		return a
	}
	sameJSON := func(a, b []byte) string {
		var x, y any
		if err := json.Unmarshal(a, &x); err != nil {
			return err.Error()
		}
		if err := json.Unmarshal(b, &y); err != nil {
			return err.Error()
		}
		return cmp.Diff(x, y)
	}
	versions := func(id string) int64 {
		return queryInt(t, conn, `SELECT count(*) FROM assignment_versions WHERE id = $1`, id)
	}
	provisional := func(id string) int64 {
		return queryInt(t, conn, `SELECT count(*) FROM assignment_versions WHERE id = $1 AND provisional`, id)
	}
	consumed := func(id string) int32 {
		t.Helper()
		a, err := st.GetAllotment(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return a.ConsumedUnits
	}

	a1 := answer("a1", "al", "u1", store.KindUser)
	got, err := st.RecordCreatedAssignment(ctx, a1, 1, t1)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "a1" || !got.ObservedAt.Equal(t1) || !got.FirstObservedAt.Equal(t1) {
		t.Errorf("recorded %+v; want a version from %v", got, t1)
	}
	if n := consumed("al"); n != 5 {
		t.Errorf("consumed units after the create = %d, want 5 (the new seat counted)", n)
	}
	// A repeat (a retry's write-through) counts nothing twice.
	if _, err := st.RecordCreatedAssignment(ctx, a1, 1, t1.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if n, v := consumed("al"), versions("a1"); n != 5 || v != 1 {
		t.Errorf("after a repeat: %d consumed, %d versions; want 5 and 1", n, v)
	}
	// Graph's true counts agree with the estimate: no allotment version.
	before := queryInt(t, conn, `SELECT count(*) FROM allotment_versions WHERE id = 'al'`)
	truth := al
	truth.ConsumedUnits = 5
	if err := st.RecordAllotmentCounts(ctx, "al", truth.AllottedUnits, 5, rawOf(truth), t1.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if after := queryInt(t, conn, `SELECT count(*) FROM allotment_versions WHERE id = 'al'`); after != before {
		t.Errorf("allotment versions %d → %d after Graph confirmed the estimated counts; want none added", before, after)
	}

	// A group takes no seat of its own; a device does.
	if _, err := st.RecordCreatedAssignment(ctx, answer("g1", "grp", "grp-1", store.KindGroup), 0, t1); err != nil {
		t.Fatal(err)
	}
	if n := consumed("grp"); n != 0 {
		t.Errorf("consumed units after a group assignment = %d, want 0", n)
	}

	// a2 is settled by its read-back in place; a3's read-back finds it
	// changed already (another write), which is left to the sync.
	a2, a3 := answer("a2", "al", "u2", store.KindUser), answer("a3", "al", "u3", store.KindUser)
	for _, a := range []store.Assignment{a2, a3} {
		if _, err := st.RecordCreatedAssignment(ctx, a, 1, t1); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := st.SettleAssignment(ctx, listed(a2)); err != nil || !ok {
		t.Fatalf("SettleAssignment(a2) = %v, %v; want settled", ok, err)
	}
	if ok, err := st.SettleAssignment(ctx, listed(a2)); err != nil || ok {
		t.Errorf("settling a2 again = %v, %v; want nothing to settle", ok, err)
	}
	a3changed := listed(a3)
	a3changed.DisabledPlanIDs = []string{"p1"}
	if ok, err := st.SettleAssignment(ctx, a3changed); err != nil || ok {
		t.Errorf("settling a3 with other plans = %v, %v; want left alone", ok, err)
	}
	got, err = st.GetAssignment(ctx, "a2", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := sameJSON(listed(a2).Raw, got.Raw); !got.ObservedAt.Equal(t1) || versions("a2") != 1 || provisional("a2") != 0 {
		t.Errorf("a2 after its read-back: %+v, %d versions, %d provisional, raw diff %s; want the listed raw in the version of %v",
			got, versions("a2"), provisional("a2"), diff, t1)
	}

	// The sync lists every assignment in its own shape: a1 and the group
	// (still provisional) settle in place, a2 is unchanged, a3 changed.
	truth.ConsumedUnits = 7 // a2 and a3 took seats too
	truth.Raw = rawOf(truth)
	run := applyAt(t, st, t2, snapshot{
		allotments: []store.Allotment{truth, grp},
		assignments: []store.Assignment{listed(a1), listed(a2), a3changed,
			listed(answer("g1", "grp", "grp-1", store.KindGroup))},
	})
	if c := run.Counts["assignments"]; c != (store.Changes{Unchanged: 3, Changed: 1}) {
		t.Errorf("sync after the writes counted %+v; want 3 unchanged (raw alone differed) and a3 changed", c)
	}
	if c := run.Counts["allotments"]; c.Changed != 0 {
		t.Errorf("sync counted %+v allotments; want none changed", c)
	}
	for id, want := range map[string]int64{"a1": 1, "g1": 1, "a2": 1, "a3": 2} {
		if v := versions(id); v != want {
			t.Errorf("%s has %d versions, want %d", id, v, want)
		}
	}
	if n := queryInt(t, conn, `SELECT count(*) FROM assignment_versions WHERE provisional AND upper_inf(valid)`); n != 0 {
		t.Errorf("%d current provisional versions after the sync, want 0", n)
	}
	got, err = st.GetAssignment(ctx, "a1", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := sameJSON(listed(a1).Raw, got.Raw); diff != "" || !got.ObservedAt.Equal(t1) {
		t.Errorf("a1 after the sync: observed %v, raw (-want +got):\n%s; want the listed raw in the version of %v", got.ObservedAt, diff, t1)
	}
	checkNoOverlaps(t, conn)

	// RecordAssignment (a write-through of a read-back) settles a
	// provisional version in place too.
	a4 := answer("a4", "al", "u4", store.KindUser)
	if _, err := st.RecordCreatedAssignment(ctx, a4, 1, t3); err != nil {
		t.Fatal(err)
	}
	if got, err := st.RecordAssignment(ctx, listed(a4), t3.Add(time.Minute)); err != nil || !got.ObservedAt.Equal(t3) {
		t.Errorf("RecordAssignment over a provisional version = %+v, %v; want it settled in the version of %v", got, err, t3)
	}
	if v, p := versions("a4"), provisional("a4"); v != 1 || p != 0 {
		t.Errorf("a4: %d versions, %d provisional; want 1 settled", v, p)
	}

	// An allotment the mirror does not hold counts nothing, and is no error.
	if _, err := st.RecordCreatedAssignment(ctx, answer("a5", "unknown", "u5", store.KindUser), 1, t3); err != nil {
		t.Errorf("created assignment of an allotment not mirrored: %v", err)
	}
}

// TestStore_RecordAllotmentCounts_keepsRawCounts: counts written without
// Graph's raw are written into the stored raw too, so the raw never
// contradicts the columns and Graph's own answer compares equal.
func TestStore_RecordAllotmentCounts_keepsRawCounts(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, _ := newStore(t)
	a := allotment("a1", skuTeams, 10)
	apply(t, st, t0, a)
	if err := st.RecordAllotmentCounts(ctx, "a1", 100, 12, nil, t1); err != nil {
		t.Fatal(err)
	}
	got, err := st.GetAllotment(ctx, "a1")
	if err != nil {
		t.Fatal(err)
	}
	want := a
	want.ConsumedUnits = 12
	want.Raw = rawOf(want)
	if diff := cmp.Diff(observed(want, t1), got, jsonEqual, ignoreSubscriptionLinks); diff != "" {
		t.Errorf("after writing counts (-want +got):\n%s", diff)
	}
}
