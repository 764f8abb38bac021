package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/testing/protocmp"

	seatledgerv1 "github.com/seatledger/seatledger/gen/seatledger/v1"
	"github.com/seatledger/seatledger/internal/graphsim"
)

// asServerEnv, set in a child's environment, makes the test binary run the
// server's main instead of the tests: the multi-process tests start real
// server processes without building a second binary.
const asServerEnv = "SEATLEDGER_TEST_AS_SERVER"

// logEvent is the part of a server's JSON log line these tests watch.
type logEvent struct {
	Msg      string `json:"msg"`
	GRPCAddr string `json:"grpc_addr"`
	HTTPAddr string `json:"http_addr"`
	GraphURL string `json:"graph_url"`
}

// serverProcess is the server running as a child process.
type serverProcess struct {
	cmd     *exec.Cmd
	events  chan string   // log messages, in order; closed when stderr ends
	serving chan logEvent // the "serving" line, with the listen addresses
	graph   chan string   // the built-in simulator's Graph URL, when it starts one
}

// startServerProcess runs the server in a child process with environ and
// streams its log messages.
func startServerProcess(t *testing.T, environ map[string]string) *serverProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), asServerEnv+"=1", "SEATLEDGER_LOG_FORMAT=json")
	for k, v := range environ {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serverProcess{cmd: cmd, events: make(chan string, 1000), serving: make(chan logEvent, 1), graph: make(chan string, 1)}
	go func() {
		defer close(p.events)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var e logEvent
			if json.Unmarshal(sc.Bytes(), &e) == nil && e.Msg != "" {
				p.events <- e.Msg
				if e.Msg == "serving" {
					p.serving <- e
				}
				if e.GraphURL != "" && strings.Contains(e.Msg, "built-in Graph simulator") {
					p.graph <- e.GraphURL
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return p
}

// httpURL waits until p serves and returns its REST base URL.
func (p *serverProcess) httpURL(t *testing.T, timeout time.Duration) string {
	t.Helper()
	select {
	case e := <-p.serving:
		p.serving <- e // for the next call
		return "http://" + e.HTTPAddr
	case <-time.After(timeout):
		t.Fatalf("server process did not serve within %v", timeout)
		return ""
	}
}

// waitFor reads p's log until msg appears, failing the test after timeout
// or if the process ends first. It returns the messages read before msg.
func (p *serverProcess) waitFor(t *testing.T, msg string, timeout time.Duration) []string {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var seen []string
	for {
		select {
		case e, ok := <-p.events:
			if !ok {
				t.Fatalf("server process ended before logging %q; it logged %q", msg, seen)
			}
			if e == msg {
				return seen
			}
			seen = append(seen, e)
		case <-deadline.C:
			t.Fatalf("server process did not log %q within %v; it logged %q", msg, timeout, seen)
		}
	}
}

// TestProcesses_OneLeaderSyncsAndAnotherTakesOver runs two server processes
// against one database: exactly one syncs, and when it is killed the other
// takes over.
func TestProcesses_OneLeaderSyncsAndAnotherTakesOver(t *testing.T) {
	t.Parallel()
	_, environ := startTenant(t, graphsim.Options{})
	environ["SEATLEDGER_SYNC_INTERVAL"] = "1s"
	a := startServerProcess(t, environ)
	a.waitFor(t, "leading the sync", 60*time.Second) // a leads: it was started first and nothing else holds the lock
	b := startServerProcess(t, environ)
	b.waitFor(t, "serving", 60*time.Second)

	// Three syncs by the leader while the other serves and waits.
	for range 3 {
		a.waitFor(t, "sync done", 60*time.Second)
	}
	for _, e := range drainEvents(b) {
		if e == "sync started" || e == "leading the sync" {
			t.Fatalf("the second process logged %q while the first led", e)
		}
	}

	// Kill the leader the hard way; the other must take over and sync.
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	b.waitFor(t, "leading the sync", 60*time.Second)
	b.waitFor(t, "sync done", 60*time.Second)
}

// TestProcesses_SyncRunOnAFollowerIsRunByTheLeader calls POST /v1/sync:run
// on a replica that does not lead: the leader runs the sync, and the
// caller gets that run, as the leader recorded it.
func TestProcesses_SyncRunOnAFollowerIsRunByTheLeader(t *testing.T) {
	t.Parallel()
	sim, environ := startTenant(t, graphsim.Options{})
	environ["SEATLEDGER_SYNC_INTERVAL"] = "1h" // only requested runs after the first
	leader := startServerProcess(t, environ)
	leader.waitFor(t, "leading the sync", 60*time.Second)
	leader.waitFor(t, "sync done", 60*time.Second)
	follower := startServerProcess(t, environ)
	followerURL := follower.httpURL(t, 60*time.Second)
	token := mintToken(t, sim, "ops-admin", "admin")

	code, body := postJSON(t, followerURL+"/v1/sync:run", token, `{"force": true}`)
	if code != http.StatusOK {
		t.Fatalf("POST /v1/sync:run on the follower = %d %s, want 200", code, body)
	}
	var got seatledgerv1.SyncRun
	if err := protojson.Unmarshal(body, &got); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	if got.GetOutcome() != seatledgerv1.SyncOutcome_SYNC_OUTCOME_SUCCEEDED {
		t.Fatalf("run = %v (%s), want SUCCEEDED", got.GetOutcome(), got.GetError())
	}
	leader.waitFor(t, "sync requested by another replica", 10*time.Second)

	// The run is the leader's second, as the leader lists it.
	code, body = getWithToken(t, leader.httpURL(t, time.Second)+"/v1/sync/runs", token)
	if code != http.StatusOK {
		t.Fatalf("GET /v1/sync/runs = %d %s", code, body)
	}
	var runs seatledgerv1.ListSyncRunsResponse
	if err := protojson.Unmarshal(body, &runs); err != nil {
		t.Fatal(err)
	}
	if len(runs.GetSyncRuns()) != 2 {
		t.Fatalf("the leader lists %d runs, want 2 (its first and the requested one)", len(runs.GetSyncRuns()))
	}
	if diff := cmp.Diff(runs.GetSyncRuns()[0], &got, protocmp.Transform()); diff != "" {
		t.Errorf("the follower's answer differs from the leader's record (-leader +follower):\n%s", diff)
	}
	for _, e := range drainEvents(follower) {
		if e == "sync started" || e == "leading the sync" {
			t.Errorf("the follower logged %q: it ran the sync itself", e)
		}
	}
}

// drainEvents returns the log messages p has logged and the test has not
// read.
func drainEvents(p *serverProcess) []string {
	var out []string
	for {
		select {
		case e := <-p.events:
			out = append(out, e)
		default:
			return out
		}
	}
}

// postJSON posts body to url with token and returns the status and body.
func postJSON(t *testing.T, url, token, body string) (int, []byte) {
	t.Helper()
	return doHTTP(t, http.MethodPost, url, token, body)
}

// getWithToken gets url with token and returns the status and body.
func getWithToken(t *testing.T, url, token string) (int, []byte) {
	t.Helper()
	return doHTTP(t, http.MethodGet, url, token, "")
}

func doHTTP(t *testing.T, method, url, token, body string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}
