package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	seatledgerv1 "github.com/seatledger/seatledger/gen/seatledger/v1"
	"github.com/seatledger/seatledger/internal/graphsim"
)

// Ids of the demo tenant the restart test writes to.
const (
	restartE3SKU    = "6fd2c87f-b296-42f0-b197-1e91e994b900"
	restartE3Batch2 = "8e4d2a19-7c33-5b0e-91fa-0d6b3e27c845"
	restartUser     = "oskar.nowak@contoso.example" // holds E3 batch 1 only
)

// TestProcesses_RestartOnTheSameDataDirectory is `make run`, stop, `make
// run` again: the zero-config server restarted on its data directory
// becomes ready, syncs successfully, and still has the prices, owners,
// audit events and Graph writes of its first life; the demo token still
// works, and a token it no longer trusts is told where the current one is.
// The first life ends with SIGINT, or with SIGKILL while a sync is held
// half-way by the simulator.
func TestProcesses_RestartOnTheSameDataDirectory(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		midSync bool
	}{
		{"SIGINT", false},
		{"SIGKILL mid-sync", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Searchable by the postgres user when tests run as root, so
			// not t.TempDir (whose parent is 0700).
			dir, err := os.MkdirTemp("", "seatledger-restart-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			environ := map[string]string{"SEATLEDGER_DATA_DIR": dir}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()

			a := startServerProcess(t, environ)
			svcA := a.service(t, dir)
			graphURL := a.simulatorURL(t)
			a.waitFor(t, "sync done", 60*time.Second)
			life := writeFirstLife(ctx, t, svcA)
			// The Graph write is in the simulator's saved state.
			waitForFile(t, filepath.Join(dir, "graphsim", graphsim.StateFileName), life.assignmentID)

			if tt.midSync {
				// Hold the allotments listing of the next sync in the
				// simulator, start that sync, and kill the server once the
				// simulator holds the request.
				sim := simAdmin(t, dir, graphURL)
				sim.call(t, http.MethodPost, "/faults", `[{"path":"/beta/admin/cloudLicensing/allotments","kind":"delay","delay":"1h","rate":1}]`, nil)
				go func() {
					_, _ = seatledgerv1.NewSyncServiceClient(svcA.conn).RunSync(ctx, &seatledgerv1.RunSyncRequest{})
				}()
				a.waitFor(t, "sync started", 60*time.Second)
				for deadline := time.Now().Add(30 * time.Second); ; {
					var rules []graphsim.FaultRule
					sim.call(t, http.MethodGet, "/faults", "", &rules)
					if len(rules) == 1 && rules[0].Fired > 0 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatal("the simulator did not hold the sync's allotments request within 30s")
					}
				}
				if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				a.wait(t)
			} else {
				if err := a.cmd.Process.Signal(syscall.SIGINT); err != nil {
					t.Fatal(err)
				}
				if err := a.wait(t); err != nil {
					t.Fatalf("the server stopped by SIGINT exited with %v, want 0", err)
				}
			}

			restarted := time.Now()
			b := startServerProcess(t, environ)
			svcB := b.service(t, dir)
			if got := b.simulatorURL(t); got != graphURL {
				t.Errorf("the built-in simulator came back on %s, want its first address %s", got, graphURL)
			}
			b.waitFor(t, "sync done", 60*time.Second)
			if svcB.token != svcA.token {
				t.Errorf("the demo token changed across the restart; the first one is still valid and should be kept")
			}
			checkSecondLife(ctx, t, svcB, life, restarted)

			// A token the demo does not trust (another authority's) is
			// told where the demo's token is.
			other, err := graphsim.New(graphsim.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := other.Start("127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			stale, err := other.MintCallerToken(graphsim.CallerToken{Audience: demoAudience, Caller: "demo-admin", Roles: []string{"admin"}})
			if err != nil {
				t.Fatal(err)
			}
			tokenFile := filepath.Join(dir, "demo-token")
			if code, body := svcB.getAs(t, stale, "/v1/allotments"); code != http.StatusUnauthorized || !strings.Contains(string(body), tokenFile) {
				t.Errorf("GET with a token the demo does not trust = %d %s, want 401 naming %s", code, body, tokenFile)
			}
		})
	}
}

// firstLife is what the first life wrote.
type firstLife struct {
	assignmentID string
	auditIDs     []int64
}

// writeFirstLife sets a price and an allotment owner and assigns a licence
// through seatledger (a Graph write), and returns what to look for later.
func writeFirstLife(ctx context.Context, t *testing.T, svc *service) firstLife {
	t.Helper()
	if _, err := seatledgerv1.NewChargebackServiceClient(svc.conn).SetPrice(ctx, &seatledgerv1.SetPriceRequest{SkuId: restartE3SKU, ValidFrom: "2026-01-01",
		MonthlyUnitPrice: &seatledgerv1.Money{CurrencyCode: "USD", Amount: "36.00"}}); err != nil {
		t.Fatalf("SetPrice() = %v", err)
	}
	if _, err := seatledgerv1.NewAllotmentServiceClient(svc.conn).SetAllotmentOwner(ctx, &seatledgerv1.SetAllotmentOwnerRequest{
		Id: restartE3Batch2, OwnerDepartment: "Finance"}); err != nil {
		t.Fatalf("SetAllotmentOwner() = %v", err)
	}
	created, err := seatledgerv1.NewAssignmentServiceClient(svc.conn).CreateAssignment(ctx, &seatledgerv1.CreateAssignmentRequest{
		Assignee: &seatledgerv1.CreateAssignmentRequest_User{User: restartUser},
		Source:   &seatledgerv1.CreateAssignmentRequest_AllotmentId{AllotmentId: restartE3Batch2}})
	if err != nil {
		t.Fatalf("CreateAssignment() = %v", err)
	}
	events, err := seatledgerv1.NewAuditServiceClient(svc.conn).ListAuditEvents(ctx, &seatledgerv1.ListAuditEventsRequest{PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	life := firstLife{assignmentID: created.GetAssignment().GetId()}
	for _, e := range events.GetAuditEvents() {
		life.auditIDs = append(life.auditIDs, e.GetId())
	}
	if len(life.auditIDs) < 3 {
		t.Fatalf("audit events after three writes: %v", events.GetAuditEvents())
	}
	return life
}

// checkSecondLife requires the restarted server to be ready, to have
// synced successfully since restarted, and to hold what life wrote.
func checkSecondLife(ctx context.Context, t *testing.T, svc *service, life firstLife, restarted time.Time) {
	t.Helper()
	if code, body := svc.get(t, "/readyz"); code != http.StatusOK {
		t.Errorf("GET /readyz after the restart = %d %s, want 200", code, body)
	}
	runs, err := seatledgerv1.NewSyncServiceClient(svc.conn).ListSyncRuns(ctx, &seatledgerv1.ListSyncRunsRequest{PageSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs.GetSyncRuns()) == 0 || runs.GetSyncRuns()[0].GetOutcome() != seatledgerv1.SyncOutcome_SYNC_OUTCOME_SUCCEEDED ||
		runs.GetSyncRuns()[0].GetStartTime().AsTime().Before(restarted) {
		t.Errorf("newest sync run after the restart = %v, want one that succeeded after %v", runs.GetSyncRuns(), restarted)
	}
	prices, err := seatledgerv1.NewChargebackServiceClient(svc.conn).ListPrices(ctx, &seatledgerv1.ListPricesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range prices.GetPrices() {
		found = found || p.GetSkuId() == restartE3SKU && p.GetMonthlyUnitPrice().GetAmount() == "36.00"
	}
	if !found {
		t.Errorf("prices after the restart = %v, want the first life's E3 price", prices.GetPrices())
	}
	al, err := seatledgerv1.NewAllotmentServiceClient(svc.conn).GetAllotment(ctx, &seatledgerv1.GetAllotmentRequest{Id: restartE3Batch2})
	if err != nil || al.GetOwnerDepartment() != "Finance" {
		t.Errorf("allotment after the restart = %v, %v; want the owner Finance set in the first life", al, err)
	}
	// The sync after the restart read the simulator: the Graph write of
	// the first life is still there, so the mirror kept it.
	if _, err := seatledgerv1.NewAssignmentServiceClient(svc.conn).GetAssignment(ctx, &seatledgerv1.GetAssignmentRequest{Id: life.assignmentID}); err != nil {
		t.Errorf("GetAssignment(%s) after the restart and a sync = %v; the simulator lost the first life's write", life.assignmentID, err)
	}
	events, err := seatledgerv1.NewAuditServiceClient(svc.conn).ListAuditEvents(ctx, &seatledgerv1.ListAuditEventsRequest{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	have := map[int64]bool{}
	for _, e := range events.GetAuditEvents() {
		have[e.GetId()] = true
	}
	for _, id := range life.auditIDs {
		if !have[id] {
			t.Errorf("audit event %d of the first life is gone after the restart", id)
		}
	}
}

// service waits until p serves and returns a client of it holding the
// demo token from dir.
func (p *serverProcess) service(t *testing.T, dir string) *service {
	t.Helper()
	var e logEvent
	select {
	case e = <-p.serving:
	case <-time.After(120 * time.Second):
		t.Fatal("the server process did not serve within 120s")
	}
	tok, err := os.ReadFile(filepath.Join(dir, "demo-token"))
	if err != nil {
		t.Fatalf("the demo token file: %v", err)
	}
	svc := &service{grpcAddr: e.GRPCAddr, httpURL: "http://" + e.HTTPAddr, logs: &syncBuffer{}, token: strings.TrimSpace(string(tok))}
	svc.conn = svc.dial(t, svc.token)
	return svc
}

// simulatorURL returns the Graph URL of p's built-in simulator.
func (p *serverProcess) simulatorURL(t *testing.T) string {
	t.Helper()
	select {
	case u := <-p.graph:
		return u
	case <-time.After(120 * time.Second):
		t.Fatal("the server process did not log its simulator's Graph URL within 120s")
	}
	return ""
}

// wait waits until p has exited, its log read to the end, and returns how
// it exited.
func (p *serverProcess) wait(t *testing.T) error {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case _, ok := <-p.events:
			if ok {
				continue
			}
			err := p.cmd.Wait()
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				return exit
			}
			return err
		case <-timeout:
			t.Fatal("the server process did not exit within 60s")
		}
	}
}

// waitForFile waits until the file at path contains want.
func waitForFile(t *testing.T, path, want string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		if b, err := os.ReadFile(path); err == nil && strings.Contains(string(b), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not contain %q within 30s", path, want)
		}
	}
}

// simAdminClient calls the admin API of a server's built-in simulator.
type simAdminClient struct {
	base string
	hc   *http.Client
}

// simAdmin returns a client of the admin API of the simulator at
// graphURL, trusting the CA it keeps in dir.
func simAdmin(t *testing.T, dir, graphURL string) simAdminClient {
	t.Helper()
	ca, err := os.ReadFile(filepath.Join(dir, "graphsim", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	hc, err := httpClientTrusting(ca)
	if err != nil {
		t.Fatal(err)
	}
	return simAdminClient{base: strings.TrimSuffix(graphURL, "/beta") + "/_sim", hc: hc}
}

// call sends body (none when empty) to the admin path and decodes the
// answer into out (when not nil), failing the test on any error.
func (c simAdminClient) call(t *testing.T, method, path, body string, out any) {
	t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s = %s", method, path, resp.Status)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
}
