package main

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

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
	drain := func(p *serverProcess) []string {
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
	for _, e := range drain(b) {
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
