package graphsim_test

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/seatledger/seatledger/internal/graphsim"
)

// TestStateDir_RestartIsTheSameTenant: a simulator started again on the
// same state directory is, to its clients, the one they knew: same
// address, tenant, app credentials and CA; tokens it issued are still
// accepted; every change made in the first life is there, seats and
// waiting order included, exactly (not re-derived); its clock keeps the
// time it was advanced by; and the ids it generates do not repeat.
func TestStateDir_RestartIsTheSameTenant(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "sim")
	first := start(t, graphsim.Options{StateDir: dir})
	sim := first.sim
	users := sim.Users()
	// An assignment with a generated id, a removed user, a new user.
	created, err := sim.Assign(graphsim.AssignmentState{AllotmentID: demoE3Batch2, AssignedToID: users[12].ID})
	if err != nil {
		t.Fatal(err)
	}
	must(t, sim.RemoveUser(users[29].ID))
	must(t, sim.AddUser(graphsim.UserState{ID: "0b5e0000-0000-4000-8000-000000000001", UserPrincipalName: "new.hire@contoso.example", DisplayName: "New Hire", AccountEnabled: true}))
	// The Teams trial serves its two waiting engineers, then loses units:
	// eight seats on five units, which a re-derivation would not keep.
	must(t, sim.SetAllottedUnits(demoTeams, 8))
	must(t, sim.SetAllottedUnits(demoTeams, 5))
	if _, err := sim.AdvanceClock(72 * time.Hour); err != nil {
		t.Fatal(err)
	}
	graphToken := first.token(t, "CloudLicensing.Read.All")
	callerToken, err := sim.MintCallerToken(graphsim.CallerToken{Audience: "api://x", Caller: "c"})
	if err != nil {
		t.Fatal(err)
	}
	before := sim.Snapshot()
	must(t, sim.Close())

	for path, want := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, filepath.Join(dir, graphsim.StateFileName): 0o600, filepath.Join(dir, "ca.pem"): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode(), want)
		}
	}

	// Options.Tenant is ignored when there is a saved state.
	other := graphsim.Generate(graphsim.GenerateOptions{Users: 3})
	second := start(t, graphsim.Options{StateDir: dir, Tenant: &other})
	if second.info.GraphURL != first.info.GraphURL || second.info.IssuerURL != first.info.IssuerURL ||
		second.info.TenantID != first.info.TenantID || second.info.ClientID != first.info.ClientID ||
		second.info.ClientSecret != first.info.ClientSecret || !bytes.Equal(second.info.CAPEM, first.info.CAPEM) {
		t.Errorf("restarted simulator info = %+v\nwant the first life's address, tenant, credentials and CA %+v", second.info, first.info)
	}
	if diff := cmp.Diff(before, second.sim.Snapshot()); diff != "" {
		t.Errorf("tenant after the restart differs (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(waitingIDs(sim), waitingIDs(second.sim)); diff != "" {
		t.Errorf("waiting order after the restart differs:\n%s", diff)
	}
	if r := get(t, second.hc, second.info.GraphURL+"/admin/cloudLicensing/allotments", graphToken); r.status != http.StatusOK {
		t.Errorf("a token of the first life = %d %s, want 200", r.status, r.raw)
	}
	if skew := time.Until(second.sim.Now()); skew < 71*time.Hour {
		t.Errorf("clock after the restart is %v ahead, want the 72h it was advanced", skew)
	}
	if got, _ := sim.MintCallerToken(graphsim.CallerToken{Audience: "api://x", Caller: "c"}); got == "" || callerToken == "" {
		t.Error("no caller token")
	}
	again, err := second.sim.Assign(graphsim.AssignmentState{AllotmentID: demoE3Batch2, AssignedToID: users[13].ID})
	if err != nil {
		t.Fatalf("Assign after the restart: %v", err)
	}
	if again.ID == created.ID {
		t.Errorf("the restarted simulator generated id %s again", again.ID)
	}
}

// TestStateDir_SavedSoonAfterEachChange: a change is in the state file
// shortly after it is made, without Close (a killed process keeps it).
func TestStateDir_SavedSoonAfterEachChange(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "sim")
	saves := make(chan error, 100)
	s := start(t, graphsim.Options{StateDir: dir, OnSave: func(err error) { saves <- err }})
	users := s.sim.Users()
	// Through the Graph API, as seatledger's write proxy does.
	tok := s.token(t, "CloudLicensing.AssignLicenses.Organization")
	body := `{"allotment@odata.bind":"https://graph.microsoft.com/beta/admin/cloudLicensing/allotments/` + demoE3Batch2 +
		`","assignedTo@odata.bind":"https://graph.microsoft.com/beta/users/` + users[13].ID + `","disabledServicePlanIds":[]}`
	req, err := http.NewRequest(http.MethodPost, s.info.GraphURL+"/admin/cloudLicensing/assignments", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	if r := do(t, s.hc, req); r.status != http.StatusCreated {
		t.Fatalf("POST assignment = %d %s", r.status, r.raw)
	}
	want := s.sim.Snapshot()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case err := <-saves:
			if err != nil {
				t.Fatalf("save: %v", err)
			}
		case <-timeout:
			t.Fatal("no save holds the change within 10s")
		}
		// New reads the file without listening, beside the running one.
		saved, err := graphsim.New(graphsim.Options{StateDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if cmp.Equal(want, saved.Snapshot()) {
			return
		}
	}
}

// TestStateDir_PortTakenTakesAnother: when the port of the previous life
// is taken, the restarted simulator serves on another one.
func TestStateDir_PortTakenTakesAnother(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "sim")
	first := start(t, graphsim.Options{StateDir: dir})
	must(t, first.sim.Close())
	host := strings.TrimPrefix(strings.TrimSuffix(first.info.GraphURL, "/beta"), "https://")
	ln, err := net.Listen("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	second := start(t, graphsim.Options{StateDir: dir})
	if second.info.GraphURL == first.info.GraphURL {
		t.Fatalf("restarted on %s, which is taken", second.info.GraphURL)
	}
	if r := get(t, second.hc, second.info.GraphURL+"/admin/cloudLicensing/allotments", second.token(t, "CloudLicensing.Read.All")); r.status != http.StatusOK {
		t.Errorf("GET on the new port = %d %s", r.status, r.raw)
	}
}

// TestStateDir_DeltaLinksOfThePreviousLifeExpire: the per-object change
// history is not saved, so a delta link of the previous life answers 410
// syncStateNotFound (as Graph does when it drops a sync state), and a new
// round works.
func TestStateDir_DeltaLinksOfThePreviousLifeExpire(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "sim")
	first := start(t, graphsim.Options{StateDir: dir, PageSize: 999})
	tok := first.token(t, "User.Read.All")
	r := get(t, first.hc, first.info.GraphURL+"/users/delta?$select=id", tok)
	link, _ := r.body["@odata.deltaLink"].(string)
	if link == "" {
		t.Fatalf("no delta link: %s", r.raw)
	}
	must(t, first.sim.Close())
	second := start(t, graphsim.Options{StateDir: dir, PageSize: 999})
	wantGraphError(t, get(t, second.hc, link, tok), http.StatusGone, "syncStateNotFound")
	if r := get(t, second.hc, second.info.GraphURL+"/users/delta?$select=id", tok); r.status != http.StatusOK || r.body["@odata.deltaLink"] == nil {
		t.Errorf("a new round after the restart = %d %s", r.status, r.raw)
	}
}

// TestStateDir_UnreadableStateIsRefused: a damaged state file stops New
// with a message naming it, rather than silently starting a fresh tenant.
func TestStateDir_UnreadableStateIsRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, graphsim.StateFileName)
	for name, content := range map[string]string{
		"not JSON":       "{",
		"another format": `{"format":"graphsim-state/v99"}`,
	} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := graphsim.New(graphsim.Options{StateDir: dir})
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: New() error = %v, want one naming %s", name, err, path)
		}
	}
}

func waitingIDs(sim *graphsim.Server) []string {
	var out []string
	for _, w := range sim.WaitingMembers() {
		out = append(out, w.AllotmentID+"/"+w.MemberID)
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
