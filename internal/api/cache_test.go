package api

import (
	"context"
	gosync "sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	seatledgerv1 "github.com/seatledger/seatledger/gen/seatledger/v1"
	"github.com/seatledger/seatledger/internal/store"
	"github.com/seatledger/seatledger/internal/store/storetest"
	mirrorsync "github.com/seatledger/seatledger/internal/sync"
)

// cacheEnv is the read API with a read cache of cacheBytes over a real
// store whose change notifications are watched, and a connection of its
// own to the same database, for changes made behind seatledger's back
// (as another process or an operator would).
type cacheEnv struct {
	st         *store.Store
	sql        *pgx.Conn
	allotments seatledgerv1.AllotmentServiceClient
	chargeback seatledgerv1.ChargebackServiceClient
}

func startCacheEnv(t *testing.T, cacheBytes int) *cacheEnv {
	t.Helper()
	ctx := t.Context()
	_, gc, _ := startGraph(t, completionTenant())
	dsn := storetest.NewDSN(t)
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if _, err := mirrorsync.New(gc, st, mirrorsync.Options{}).RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(context.Background())
	var wg gosync.WaitGroup
	t.Cleanup(func() { stop(); wg.Wait() })
	g, _ := st.Generation()
	wg.Go(func() { _ = st.WatchChanges(wctx, nil) })
	waitGeneration(t, st, g)

	srv := NewGRPCServer(Deps{Store: st, Graph: gc, ReadCacheBytes: cacheBytes})
	conn := serve(t, srv)
	sql, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sql.Close(context.Background()) })
	return &cacheEnv{st: st, sql: sql, allotments: seatledgerv1.NewAllotmentServiceClient(conn),
		chargeback: seatledgerv1.NewChargebackServiceClient(conn)}
}

// waitGeneration waits (10 s at most) until st's generation is past g.
func waitGeneration(t *testing.T, st *store.Store, g uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := st.WaitGeneration(ctx, g); err != nil {
		t.Fatalf("the store's generation did not move past %d: %v", g, err)
	}
}

// exec runs q in the database; with silent, with triggers off, so that no
// process hears of the change.
func (e *cacheEnv) exec(t *testing.T, silent bool, q string, args ...any) {
	t.Helper()
	ctx := t.Context()
	tx, err := e.sql.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if silent {
		if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tx.Exec(ctx, q, args...); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

func (e *cacheEnv) silently(t *testing.T, q string, args ...any) {
	t.Helper()
	e.exec(t, true, q, args...)
}

// setUnits changes the allotment's allotted units in the database; with
// silent, so that no process hears of it.
func (e *cacheEnv) setUnits(t *testing.T, units int, silent bool) {
	t.Helper()
	e.exec(t, silent, `UPDATE allotment_versions SET allotted_units = $1 WHERE id = $2 AND upper_inf(valid)`, units, cAllot)
}

func (e *cacheEnv) units(t *testing.T) int32 {
	t.Helper()
	a, err := e.allotments.GetAllotment(t.Context(), &seatledgerv1.GetAllotmentRequest{Id: cAllot})
	if err != nil {
		t.Fatal(err)
	}
	return a.GetAllottedUnits()
}

// TestReadCache_untilTheMirrorChanges: a read is answered again from the
// cache until the mirror changes, by whoever changes it; while the
// store's change notifications are lost, nothing is served from it.
func TestReadCache_untilTheMirrorChanges(t *testing.T) {
	t.Parallel()
	e := startCacheEnv(t, 1<<20)
	if got := e.units(t); got != 10 {
		t.Fatalf("allotted units %d, want the tenant's 10", got)
	}
	// A change nobody is told of: the cached answer stands (this is how
	// the test sees that the answer comes from the cache).
	e.setUnits(t, 99, true)
	if got := e.units(t); got != 10 {
		t.Errorf("after a change without notification: %d allotted units, want the cached 10", got)
	}
	// A change made the usual way, by another process: once PostgreSQL
	// delivers its notification, reads see it.
	g, _ := e.st.Generation()
	e.setUnits(t, 98, false)
	waitGeneration(t, e.st, g)
	if got := e.units(t); got != 98 {
		t.Errorf("after a notified change: %d allotted units, want 98", got)
	}
	// Notifications lost: the cache steps aside at once.
	g, _ = e.st.Generation()
	if _, err := e.sql.Exec(t.Context(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE application_name = 'seatledger-changes' AND datname = current_database()`); err != nil {
		t.Fatal(err)
	}
	waitGeneration(t, e.st, g)
	e.setUnits(t, 97, true)
	// (Had the store reconnected meanwhile, it would have moved the
	// generation again: the cached 98 is not served either way.)
	if got := e.units(t); got != 97 {
		t.Errorf("while notifications are lost: %d allotted units, want the database's 97", got)
	}
	// Nor does it keep what it reads meanwhile: another silent change
	// shows at once.
	e.setUnits(t, 96, true)
	if _, live := e.st.Generation(); !live {
		if got := e.units(t); got != 96 {
			t.Errorf("while notifications are lost: %d allotted units, want the database's 96", got)
		}
	}
}

// TestReadCache_bounded: answers larger than the cache are not kept.
func TestReadCache_bounded(t *testing.T) {
	t.Parallel()
	e := startCacheEnv(t, 16)
	if got := e.units(t); got != 10 {
		t.Fatalf("allotted units %d, want 10", got)
	}
	e.setUnits(t, 99, true)
	if got := e.units(t); got != 99 {
		t.Errorf("with a 16-byte cache: %d allotted units, want the database's 99", got)
	}
}

// TestReadCache_chargebackFollowsPrices: a chargeback asked again is
// answered from the cache (with its generation time refreshed), and a
// price set through the API shows in the next one.
func TestReadCache_chargebackFollowsPrices(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	e := startCacheEnv(t, 1<<20)
	today := time.Now().UTC().Format(time.DateOnly)
	req := &seatledgerv1.GetChargebackRequest{From: today, To: today}
	first, err := e.chargeback.GetChargeback(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.GetTotals()) != 0 {
		t.Fatalf("totals %v before any price, want none", first.GetTotals())
	}
	// A price set behind everyone's back (no notification): the answer
	// asked again is the cached one, generated anew.
	e.silently(t, `INSERT INTO prices (sku_id, valid_from, currency, monthly_unit_price, updated_by)
		VALUES ($1, '2020-01-01', 'USD', 12, 'ops')`, cSKU)
	again, err := e.chargeback.GetChargeback(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.GetTotals()) != 0 {
		t.Errorf("totals %v asked again after a change nobody was told of, want the cached none", again.GetTotals())
	}
	if !again.GetGenerateTime().AsTime().After(first.GetGenerateTime().AsTime()) {
		t.Errorf("second answer generated at %v, not after the first's %v", again.GetGenerateTime().AsTime(), first.GetGenerateTime().AsTime())
	}
	if _, err := e.chargeback.SetPrice(ctx, &seatledgerv1.SetPriceRequest{SkuId: cSKU, ValidFrom: "2020-01-01",
		MonthlyUnitPrice: &seatledgerv1.Money{CurrencyCode: "EUR", Amount: "31.00"}}); err != nil {
		t.Fatal(err)
	}
	priced, err := e.chargeback.GetChargeback(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if tot := priced.GetTotals(); len(tot) != 1 || tot[0].GetCurrencyCode() != "EUR" {
		t.Errorf("totals after SetPrice %v, want one in EUR", tot)
	}
}

// TestLocal_unknownMethod: the in-process connection answers what a gRPC
// server answers for a method it does not serve.
func TestLocal_unknownMethod(t *testing.T) {
	t.Parallel()
	_, local := New(Deps{})
	err := local.Invoke(t.Context(), "/seatledger.v1.Nope/Nothing", &seatledgerv1.GetAllotmentRequest{}, &seatledgerv1.Allotment{})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("Invoke(unknown method) = %v, want UNIMPLEMENTED", err)
	}
}
