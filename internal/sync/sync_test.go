package sync

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/seatledger/seatledger/internal/graph"
	"github.com/seatledger/seatledger/internal/graphsim"
	"github.com/seatledger/seatledger/internal/store"
	"github.com/seatledger/seatledger/internal/store/storetest"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild()) // a child process of a crash test: be the sync
	}
	storetest.Main(m)
}

// startSim serves tenant (nil: the demo tenant) over HTTPS until the test
// ends.
func startSim(t *testing.T, tenant *graphsim.Tenant) (*graphsim.Server, graphsim.Info) {
	t.Helper()
	sim, err := graphsim.New(graphsim.Options{Tenant: tenant, PageSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	info, err := sim.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim, info
}

// newClient returns a Graph client for the simulator, authenticating with
// secret through azidentity, as the server does.
func newClient(t *testing.T, info graphsim.Info, secret string) *graph.Client {
	t.Helper()
	gc, err := clientFor(info, secret)
	if err != nil {
		t.Fatal(err)
	}
	return gc
}

// clientFor is newClient for code without a *testing.T (child processes).
func clientFor(info graphsim.Info, secret string) (*graph.Client, error) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(info.CAPEM)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	cred, err := graph.NewCredential(graph.CredentialConfig{
		TenantID: info.TenantID, ClientID: info.ClientID, ClientSecret: secret,
		AuthorityHost: info.AuthorityURL, Transport: hc,
	})
	if err != nil {
		return nil, err
	}
	return graph.New(cred, graph.Options{BaseURL: info.GraphURL, HTTPClient: hc, MaxRetries: -1})
}

func ids(as []store.Allotment) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.ID+"/"+a.SKUID)
	}
	return out
}

func simIDs(as []graphsim.AllotmentState) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.ID+"/"+a.SKUID)
	}
	return out
}

func TestSyncer_RunOnce(t *testing.T) {
	t.Parallel()
	sim, info := startSim(t, nil)
	st := storetest.New(t)
	s := New(newClient(t, info, info.ClientSecret), st, Options{})
	ctx := context.Background()

	run, err := s.RunOnce(ctx)
	if err != nil {
		t.Fatalf("RunOnce() error = %v", err)
	}
	want := sim.Allotments()
	if c := run.Counts["allotments"]; run.Outcome != store.OutcomeSucceeded || c.Added != int64(len(want)) {
		t.Errorf("first run = %+v, want succeeded with %d allotments added", run, len(want))
	}
	if run.GraphRequests < 2 {
		t.Errorf("first run made %d Graph requests; %d allotments at page size 3 need at least 2", run.GraphRequests, len(want))
	}
	got, err := st.ListAllotments(ctx, store.ListAllotmentsParams{PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	if g, w := strings.Join(ids(got), " "), strings.Join(simIDs(want), " "); g != w {
		t.Errorf("mirrored allotments = %s, want %s", g, w)
	}
	for i, a := range got {
		if a.AllottedUnits != want[i].AllottedUnits || a.ConsumedUnits != want[i].ConsumedUnits || len(a.Subscriptions) != len(want[i].Subscriptions) {
			t.Errorf("allotment %s = %+v, want the simulator's %+v", a.ID, a, want[i])
		}
	}
	select {
	case <-s.Synced():
	default:
		t.Error("Synced() is not closed after a successful run")
	}

	again, err := s.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := again.Counts["allotments"]; c.Unchanged != int64(len(want)) || c.Added+c.Changed+c.Removed != 0 {
		t.Errorf("unchanged re-run counts = %+v, want %d unchanged and nothing else", c, len(want))
	}
}

// TestSyncer_RunOnceFailureChangesNothing: a run that cannot read Graph
// leaves the mirror as the last good run left it and records why.
func TestSyncer_RunOnceFailureChangesNothing(t *testing.T) {
	t.Parallel()
	_, info := startSim(t, nil)
	st := storetest.New(t)
	ctx := context.Background()
	if _, err := New(newClient(t, info, info.ClientSecret), st, Options{}).RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	before, err := st.ListAllotments(ctx, store.ListAllotmentsParams{PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}

	bad := New(newClient(t, info, "wrong-secret"), st, Options{})
	run, err := bad.RunOnce(ctx)
	if err == nil {
		t.Fatal("RunOnce() with a wrong client secret succeeded")
	}
	// Users page alongside the licensing collections: whichever listing
	// asked for a token first reports the refusal.
	if run.Outcome != store.OutcomeFailed || run.ID == 0 || !strings.Contains(run.Error, "authentication failed") ||
		!strings.Contains(run.Error, "list allotments") && !strings.Contains(run.Error, "users delta") {
		t.Errorf("failed run record = %+v, want a stored failed run saying what failed", run)
	}
	if strings.Contains(run.Error, "wrong-secret") {
		t.Errorf("failed run record leaks the secret: %q", run.Error)
	}
	after, err := st.ListAllotments(ctx, store.ListAllotmentsParams{PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	if g, w := strings.Join(ids(after), " "), strings.Join(ids(before), " "); g != w {
		t.Errorf("after a failed run the mirror shows %s, want the last good run's %s", g, w)
	}
	select {
	case <-bad.Synced():
		t.Error("Synced() closed although no run succeeded")
	default:
	}
}

// TestSyncer_Run checks the loop: it syncs at start, runs again on
// Trigger, and returns nil when its context ends.
func TestSyncer_Run(t *testing.T) {
	t.Parallel()
	_, info := startSim(t, nil)
	st := storetest.New(t)
	s := New(newClient(t, info, info.ClientSecret), st, Options{Interval: time.Hour})
	results := make(chan store.SyncRun, 10)
	s.afterRun = func(r store.SyncRun, err error) {
		if err != nil {
			t.Errorf("run failed: %v", err)
		}
		results <- r
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	first := <-results // the run at start-up
	s.Trigger()
	second := <-results
	if second.ID <= first.ID {
		t.Errorf("triggered run id %d, want one after %d", second.ID, first.ID)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run() = %v after cancel, want nil", err)
	}
	runs, err := st.ListSyncRuns(context.Background(), 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 {
		t.Errorf("%d sync runs recorded, want 2 (start-up and trigger)", len(runs))
	}
}

// TestSyncer_RunFillsChargebackLedger: after each successful run the
// leader computes the chargeback ledger's closed days of the last two
// months, for UTC and for every zone chargebacks were asked in, so that a
// chargeback of last month reads them instead of counting them. RunOnce
// alone (what tools and the bench call) leaves the ledger alone.
func TestSyncer_RunFillsChargebackLedger(t *testing.T) {
	t.Parallel()
	_, info := startSim(t, nil)
	dsn := storetest.NewDSN(t)
	ctx := context.Background()
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	ledgerDays := func(tz string) int64 {
		t.Helper()
		var n int64
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM chargeback_days WHERE time_zone = $1`, tz).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	s := New(newClient(t, info, info.ClientSecret), st, Options{Interval: time.Hour})
	if _, err := s.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if n := ledgerDays("UTC"); n != 0 {
		t.Errorf("RunOnce filled %d ledger days, want none", n)
	}
	// A chargeback in Tokyo of a closed day brings the zone into the
	// ledger.
	day := time.Now().UTC().AddDate(0, 0, -2).Format(time.DateOnly)
	if _, err := st.Chargeback(ctx, store.ChargebackParams{From: day, To: day, TimeZone: "Asia/Tokyo"}); err != nil {
		t.Fatal(err)
	}
	if n := ledgerDays("Asia/Tokyo"); n != 1 {
		t.Fatalf("%d Tokyo ledger days after a one-day chargeback, want 1", n)
	}

	results := make(chan store.SyncRun, 10)
	s.afterRun = func(r store.SyncRun, err error) {
		if err != nil {
			t.Errorf("run failed: %v", err)
		}
		results <- r
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	<-results // the run at start-up; the loop fills the ledger after it
	s.Trigger()
	<-results // so the fill after the first run has finished
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run() = %v after cancel, want nil", err)
	}
	for _, tz := range []string{"UTC", "Asia/Tokyo"} {
		if n := ledgerDays(tz); n != ledgerWindow {
			t.Errorf("%s: %d ledger days after Run's first run, want the last %d closed days", tz, n, ledgerWindow)
		}
	}
}
