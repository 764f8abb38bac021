package main

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	seatledgerv1 "github.com/seatledger/seatledger/gen/seatledger/v1"
	"github.com/seatledger/seatledger/internal/graphsim"
	"github.com/seatledger/seatledger/internal/store/storetest"
)

// Demo tenant ids the demo past tests look at.
const (
	demoTeamsTrial   = "c52f9b07-4e81-2d6a-b3c0-71e8a5d9f326"
	demoE3SKU        = "6fd2c87f-b296-42f0-b197-1e91e994b900"
	demoMiraE3       = "a55e00f2-1d2c-4b3a-8f9e-7d6c5b4a00f2" // Mira Jensen's seat: she leaves on the past's day 71
	demoPastSyncHour = 18
)

// zeroConfigDir is a data directory for a zero-configuration server. Its
// parent must be searchable by the postgres user when tests run as root,
// so not t.TempDir (whose parent is 0700).
func zeroConfigDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "seatledger-demo-past-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// withDemoToken points svc at the demo token written in dir.
func withDemoToken(t *testing.T, svc *service, dir string) {
	t.Helper()
	tok, err := os.ReadFile(filepath.Join(dir, "demo-token"))
	if err != nil {
		t.Fatalf("the demo token file: %v", err)
	}
	svc.token = strings.TrimSpace(string(tok))
	svc.conn = svc.dial(t, svc.token)
}

// listRuns returns every sync run, newest first.
func listRuns(t *testing.T, svc *service) []*seatledgerv1.SyncRun {
	t.Helper()
	var runs []*seatledgerv1.SyncRun
	for token := ""; ; {
		resp, err := seatledgerv1.NewSyncServiceClient(svc.conn).ListSyncRuns(t.Context(), &seatledgerv1.ListSyncRunsRequest{PageSize: 50, PageToken: token})
		if err != nil {
			t.Fatalf("ListSyncRuns: %v", err)
		}
		runs = append(runs, resp.GetSyncRuns()...)
		if token = resp.GetNextPageToken(); token == "" {
			return runs
		}
	}
}

// TestRun_ZeroConfigurationSeedsDemoPast: a first zero-configuration start
// records the demo tenant's last 90 days through the sync, one run a day
// marked as demo data, so that history, "as of" reads and last month's
// chargeback answer on day one; a restart seeds nothing more.
func TestRun_ZeroConfigurationSeedsDemoPast(t *testing.T) {
	t.Parallel()
	dir := zeroConfigDir(t)
	started := time.Now().UTC()
	today := started.Truncate(24 * time.Hour)
	firstDay := today.AddDate(0, 0, -graphsim.DemoPastDays)

	t.Run("first start", func(t *testing.T) {
		svc := startService(t, map[string]string{"SEATLEDGER_DATA_DIR": dir}, "")
		withDemoToken(t, svc, dir)
		if m := regexp.MustCompile(`"demo past seeded[^\n]*"took":(\d+)`).FindStringSubmatch(svc.logs.String()); m != nil {
			took, _ := strconv.ParseInt(m[1], 10, 64)
			t.Logf("seeding %d days took %s", graphsim.DemoPastDays, time.Duration(took))
		} else {
			t.Errorf("the log does not say the demo past was seeded:\n%s", svc.logs)
		}
		svc.runSync(t)
		ctx := t.Context()

		// One demo run a day at 18:00 UTC, the last yesterday; the runs of
		// the real time after them are not demo data.
		var demoDays []time.Time
		for _, r := range listRuns(t, svc) {
			switch at := r.GetStartTime().AsTime(); {
			case r.GetDemo():
				if r.GetOutcome() != seatledgerv1.SyncOutcome_SYNC_OUTCOME_SUCCEEDED {
					t.Errorf("demo run %d: outcome %v (%s)", r.GetId(), r.GetOutcome(), r.GetError())
				}
				demoDays = append(demoDays, at)
			case at.Before(started):
				t.Errorf("run %d started %s, before the server, and is not marked as demo data", r.GetId(), at)
			}
		}
		slices.SortFunc(demoDays, func(a, b time.Time) int { return a.Compare(b) })
		if len(demoDays) != graphsim.DemoPastDays {
			t.Fatalf("%d sync runs are marked as demo data, want %d (one per day of the past)", len(demoDays), graphsim.DemoPastDays)
		}
		for i, at := range demoDays {
			if want := firstDay.AddDate(0, 0, i).Add(demoPastSyncHour * time.Hour); !at.Equal(want) {
				t.Fatalf("demo run %d started %s, want %s", i+1, at, want)
			}
		}

		// History: the Teams trial had 4 seats, then 6 from the past's day 30.
		hist, err := seatledgerv1.NewAllotmentServiceClient(svc.conn).GetAllotmentHistory(ctx, &seatledgerv1.GetAllotmentHistoryRequest{
			Id: demoTeamsTrial, From: firstDay.Format(time.DateOnly), To: today.AddDate(0, 0, -1).Format(time.DateOnly),
			Granularity: seatledgerv1.HistoryGranularity_HISTORY_GRANULARITY_DAY, PageSize: 1000,
		})
		if err != nil {
			t.Fatalf("GetAllotmentHistory: %v", err)
		}
		points := hist.GetPoints()
		if len(points) != graphsim.DemoPastDays {
			t.Fatalf("the Teams trial's daily history over the past has %d points, want %d", len(points), graphsim.DemoPastDays)
		}
		if a, b := points[28].GetAllottedUnits(), points[29].GetAllottedUnits(); a != 4 || b != 6 {
			t.Errorf("Teams trial allotted units on the past's days 29 and 30 = %d, %d; want 4, 6", a, b)
		}
		if w := points[24].GetWaitingMembers(); w != 1 {
			t.Errorf("Teams trial waiting members on the past's day 25 = %d, want 1 (Chiara Rossi)", w)
		}

		// As of: Mira Jensen held an E3 seat until she left on day 71.
		held := func(at time.Time) bool {
			var asOf *timestamppb.Timestamp
			if !at.IsZero() {
				asOf = timestamppb.New(at)
			}
			resp, err := seatledgerv1.NewAssignmentServiceClient(svc.conn).ListAssignments(ctx, &seatledgerv1.ListAssignmentsRequest{
				PageSize: 1000, AsOf: asOf})
			if err != nil {
				t.Fatalf("ListAssignments(as of %s): %v", at, err)
			}
			return slices.ContainsFunc(resp.GetAssignments(), func(a *seatledgerv1.Assignment) bool { return a.GetId() == demoMiraE3 })
		}
		if day50 := firstDay.AddDate(0, 0, 49).Add(20 * time.Hour); !held(day50) {
			t.Errorf("as of the past's day 50, Mira Jensen's E3 seat %s is not listed", demoMiraE3)
		}
		if held(time.Time{}) {
			t.Errorf("Mira Jensen left, but her E3 seat %s is listed today", demoMiraE3)
		}

		// Last month's chargeback has seat-days.
		cb := seatledgerv1.NewChargebackServiceClient(svc.conn)
		if _, err := cb.SetPrice(ctx, &seatledgerv1.SetPriceRequest{SkuId: demoE3SKU, ValidFrom: firstDay.Format(time.DateOnly),
			MonthlyUnitPrice: &seatledgerv1.Money{CurrencyCode: "EUR", Amount: "32.40"}}); err != nil {
			t.Fatalf("SetPrice: %v", err)
		}
		thisMonth := time.Date(today.Year(), today.Month(), 1, 0, 0, 0, 0, time.UTC)
		report, err := cb.GetChargeback(ctx, &seatledgerv1.GetChargebackRequest{
			From: thisMonth.AddDate(0, -1, 0).Format(time.DateOnly), To: thisMonth.AddDate(0, 0, -1).Format(time.DateOnly)})
		if err != nil {
			t.Fatalf("GetChargeback(last month): %v", err)
		}
		var seatDays int64
		departments := map[string]bool{}
		for _, r := range report.GetRows() {
			seatDays += r.GetSeatDays()
			departments[r.GetDepartment()] = true
		}
		if seatDays == 0 || !departments["Engineering"] || !departments["Sales"] {
			t.Errorf("last month's chargeback has %d seat-days, departments %v; want seats of Engineering and Sales:\n%v", seatDays, departments, report)
		}
		if code, body := svc.get(t, "/readyz"); code != 200 {
			t.Errorf("GET /readyz = %d %s, want 200", code, body)
		}
	})

	t.Run("restart", func(t *testing.T) {
		svc := startService(t, map[string]string{"SEATLEDGER_DATA_DIR": dir}, "")
		withDemoToken(t, svc, dir)
		if strings.Contains(svc.logs.String(), "demo past") {
			t.Errorf("a restart seeded a demo past again:\n%s", svc.logs)
		}
		demo := 0
		for _, r := range listRuns(t, svc) {
			if r.GetDemo() {
				demo++
			}
		}
		if demo != graphsim.DemoPastDays {
			t.Errorf("after a restart %d runs are demo data, want the first start's %d", demo, graphsim.DemoPastDays)
		}
	})
}

// TestRun_DemoPastNotSeededWithDatabaseURL: with DATABASE_URL configured
// (a real database) the built-in simulator is mirrored as it is, with no
// invented past.
func TestRun_DemoPastNotSeededWithDatabaseURL(t *testing.T) {
	t.Parallel()
	dir := zeroConfigDir(t)
	svc := startService(t, map[string]string{"SEATLEDGER_DATA_DIR": dir, "DATABASE_URL": storetest.NewDSN(t)}, "")
	withDemoToken(t, svc, dir)
	svc.runSync(t)
	for _, r := range listRuns(t, svc) {
		if r.GetDemo() || r.GetStartTime().AsTime().Before(time.Now().Add(-time.Hour)) {
			t.Errorf("with DATABASE_URL set, run %d (started %s, demo %t) was seeded", r.GetId(), r.GetStartTime().AsTime(), r.GetDemo())
		}
	}
	if strings.Contains(svc.logs.String(), "demo past") {
		t.Errorf("with DATABASE_URL set the log mentions a demo past:\n%s", svc.logs)
	}
}

// TestZeroConfiguration: a demo past is seeded only with neither Graph
// credentials (whatever the graph mode) nor DATABASE_URL.
func TestZeroConfiguration(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		env  map[string]string
		want bool
	}{
		{map[string]string{}, true},
		{map[string]string{"SEATLEDGER_GRAPH_MODE": "simulator"}, true},
		{map[string]string{"DATABASE_URL": "postgres://db/seatledger"}, false},
		{map[string]string{"AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c", "SEATLEDGER_GRAPH_MODE": "simulator"}, false},
	} {
		cfg, err := loadConfig(nil, env(c.env), t.TempDir(), io.Discard)
		if err != nil {
			t.Fatalf("loadConfig(%v): %v", c.env, err)
		}
		if got := zeroConfiguration(cfg); got != c.want {
			t.Errorf("zeroConfiguration(%v) = %t, want %t", c.env, got, c.want)
		}
	}
}
