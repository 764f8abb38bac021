package graph_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/seatledger/seatledger/internal/graph"
	"github.com/seatledger/seatledger/internal/graphsim"
)

// pass lets a request through to the simulator.
var pass rawFault = func(http.ResponseWriter, *http.Request) bool { return false }

// reset drops the connection with a TCP reset before answering.
var reset rawFault = func(w http.ResponseWriter, _ *http.Request) bool {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(err)
	}
	if tc, ok := conn.(*tls.Conn); ok {
		if tcp, ok := tc.NetConn().(*net.TCPConn); ok {
			_ = tcp.SetLinger(0)
		}
	}
	_ = conn.Close()
	return true
}

// truncated promises a body and sends only its start.
func truncated(status int) rawFault {
	return func(w http.ResponseWriter, _ *http.Request) bool {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n{\"value\":[{\"id\":\"trunc", status, http.StatusText(status))
		_ = buf.Flush()
		_ = conn.Close()
		return true
	}
}

// malformed answers status with a complete body that is not JSON.
func malformed(status int) rawFault {
	return func(w http.ResponseWriter, _ *http.Request) bool {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"value":[{"id":"x",}`))
		return true
	}
}

// stall never answers: it waits until the client gives up.
var stall rawFault = func(_ http.ResponseWriter, r *http.Request) bool {
	// The server notices the client leaving only once the body is read.
	_, _ = io.Copy(io.Discard, r.Body)
	<-r.Context().Done()
	return true
}

func TestClient_GETSurvivesEveryFault(t *testing.T) {
	t.Parallel()
	id := graphsim.DemoTenant().Allotments[0].ID
	tests := []struct {
		name   string
		script []rawFault
	}{
		{"429 with Retry-After", []rawFault{status(429, "Retry-After", "0").raw()}},
		{"503", []rawFault{status(503).raw()}},
		{"504", []rawFault{status(504).raw()}},
		{"409 Directory_ConcurrencyViolation", []rawFault{func(w http.ResponseWriter, _ *http.Request) bool {
			w.WriteHeader(http.StatusConflict)
			_, _ = w.Write([]byte(`{"error":{"code":"Directory_ConcurrencyViolation","message":"busy"}}`))
			return true
		}}},
		{"connection reset", []rawFault{reset, reset}},
		{"truncated JSON", []rawFault{truncated(200)}},
		{"malformed JSON", []rawFault{malformed(200)}},
		{"delay beyond the timeout", []rawFault{stall}},
		{"everything in a row", []rawFault{reset, stall, truncated(200), malformed(200)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFront(t, graphsim.Options{}, nil, tt.script...)
			c := f.client(t, graph.Options{Timeout: 500 * time.Millisecond, MaxRetries: 5})
			a, err := c.GetAllotment(context.Background(), id)
			if err != nil || a.ID != id {
				t.Fatalf("GetAllotment = %q, %v; want success after retries", a.ID, err)
			}
			if st := c.Stats(); st.Retries < 1 || st.Requests != st.Retries+1 {
				t.Errorf("Stats = %+v, want at least one retry and requests = retries + 1", st)
			}
		})
	}
}

func TestClient_GETGivesUpWithTheLastError(t *testing.T) {
	t.Parallel()
	id := graphsim.DemoTenant().Allotments[0].ID
	t.Run("503 every time is an *Error", func(t *testing.T) {
		t.Parallel()
		f := newFront(t, graphsim.Options{}, nil, status(503).raw(), status(503).raw(), status(503).raw())
		c := f.client(t, graph.Options{MaxRetries: 2})
		_, err := c.GetAllotment(context.Background(), id)
		var gerr *graph.Error
		if !errors.As(err, &gerr) || gerr.Status != 503 || gerr.RequestID != "fault-request-id" {
			t.Fatalf("err = %v, want the last 503 as *graph.Error", err)
		}
		if graph.OutcomeUnknown(err) {
			t.Error("a GET's error says its outcome is unknown")
		}
		if st := c.Stats(); st.Requests != 3 || st.Retries != 2 {
			t.Errorf("Stats = %+v, want 3 requests, 2 retries", st)
		}
	})
	t.Run("malformed every time names the problem", func(t *testing.T) {
		t.Parallel()
		f := newFront(t, graphsim.Options{}, nil, malformed(200), malformed(200))
		c := f.client(t, graph.Options{MaxRetries: 1})
		_, err := c.GetAllotment(context.Background(), id)
		if err == nil || !strings.Contains(err.Error(), "not valid JSON") {
			t.Fatalf("err = %v, want one about the invalid body", err)
		}
	})
}

func TestClient_PageFailuresNeitherDuplicateNorDrop(t *testing.T) {
	t.Parallel()
	// Pages 2 and 4 fail in different ways; the listing is still whole.
	f := newFront(t, graphsim.Options{Tenant: new(manyAllotments(23)), PageSize: 4}, nil,
		pass, status(503).raw(), pass, truncated(200), reset, pass)
	c := f.client(t, graph.Options{})
	var got []string
	for a, err := range c.Allotments(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, a.ID)
	}
	var want []string
	for _, a := range f.sim.Allotments() {
		want = append(want, a.ID)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ids (-sim +client):\n%s", diff)
	}
}

// create is an assignment request for the demo tenant.
func create() graph.CreateAssignment {
	return graph.CreateAssignment{
		AllotmentID: graphsim.DemoTenant().Allotments[0].ID, AssigneeID: "6d645c5f-089f-40d8-b0e7-136fb5c56d5b", AssigneeType: "user",
	}
}

func TestClient_CreateIsNeverRepeatedBlindly(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		fault rawFault
	}{
		{"500", status(500).raw()},
		{"503", status(503).raw()},
		{"504", status(504, "Retry-After", "0").raw()},
		{"connection reset", reset},
		{"delay beyond the timeout", stall},
		{"truncated 201", truncated(201)},
		{"malformed 201", malformed(201)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFront(t, graphsim.Options{}, nil, tt.fault)
			c := f.client(t, graph.Options{Timeout: 300 * time.Millisecond})
			_, err := c.CreateAssignment(context.Background(), create())
			if err == nil || !graph.OutcomeUnknown(err) {
				t.Fatalf("err = %v, want one for which OutcomeUnknown is true", err)
			}
			if got := f.graphMethods(); !cmp.Equal(got, []string{http.MethodPost}) {
				t.Errorf("requests = %v, want exactly one POST", got)
			}
			if st := c.Stats(); st.Requests != 1 || st.Retries != 0 {
				t.Errorf("Stats = %+v, want 1 request, no retry", st)
			}
		})
	}
}

func TestClient_CreateRetriesWhenGraphSurelyDidNotAct(t *testing.T) {
	t.Parallel()
	t.Run("429 is retried after Retry-After", func(t *testing.T) {
		t.Parallel()
		f := newFront(t, graphsim.Options{}, nil, status(429, "Retry-After", "0").raw(), status(400).raw())
		c := f.client(t, graph.Options{})
		_, err := c.CreateAssignment(context.Background(), create())
		var gerr *graph.Error
		if !errors.As(err, &gerr) || gerr.Status != 400 || graph.OutcomeUnknown(err) {
			t.Fatalf("err = %v, want the second answer (400), outcome known", err)
		}
		if got := f.graphMethods(); !cmp.Equal(got, []string{http.MethodPost, http.MethodPost}) {
			t.Errorf("requests = %v, want the POST twice", got)
		}
	})
	t.Run("refused connection is retried", func(t *testing.T) {
		t.Parallel()
		f := newFront(t, graphsim.Options{}, nil)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		dead := "https://" + ln.Addr().String() + "/beta"
		ln.Close()
		c := f.client(t, graph.Options{BaseURL: dead, MaxRetries: 2})
		_, err = c.CreateAssignment(context.Background(), create())
		if err == nil || graph.OutcomeUnknown(err) {
			t.Fatalf("err = %v, want a known failure", err)
		}
		if st := c.Stats(); st.Requests != 3 {
			t.Errorf("Stats.Requests = %d, want 1 + 2 retries", st.Requests)
		}
	})
}

func TestClient_MaxConcurrent(t *testing.T) {
	t.Parallel()
	const limit = 2
	var (
		mu      sync.Mutex
		arrived int
		full    = make(chan struct{})
		release = make(chan struct{})
	)
	// Every request waits at the front until released; the limit-th to
	// arrive says the client is at its limit.
	hold := func(http.ResponseWriter, *http.Request) bool {
		mu.Lock()
		arrived++
		if arrived == limit {
			close(full)
		}
		mu.Unlock()
		<-release
		return false
	}
	f := newFront(t, graphsim.Options{}, nil, hold, hold, hold, hold)
	c := f.client(t, graph.Options{MaxConcurrent: limit})
	id := graphsim.DemoTenant().Allotments[0].ID
	errs := make(chan error, limit)
	for range limit {
		go func() {
			_, err := c.GetAllotment(context.Background(), id)
			errs <- err
		}()
	}
	<-full
	// One more request must wait for a free slot, not reach Graph.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	_, err := c.GetAllotment(ctx, id)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("request beyond the limit: err = %v, want it to time out waiting", err)
	}
	mu.Lock()
	if arrived != limit {
		t.Errorf("%d requests reached Graph at once, limit %d", arrived, limit)
	}
	mu.Unlock()
	close(release)
	for range limit {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestClient_DeleteWhoseAnswerWasLost(t *testing.T) {
	t.Parallel()
	// The first DELETE reaches the simulator, which deletes; then the
	// connection is reset, so the client cannot know. Its retry finds
	// nothing (404), which means the first attempt worked.
	var sim http.Handler
	deleteThenReset := func(w http.ResponseWriter, r *http.Request) bool {
		sim.ServeHTTP(httptest.NewRecorder(), r)
		return reset(w, r)
	}
	f := newFront(t, graphsim.Options{}, nil, deleteThenReset)
	sim = f.sim.Handler()
	c := f.client(t, graph.Options{})
	id := f.sim.Assignments()[0].ID
	if err := c.DeleteAssignment(context.Background(), id); err != nil {
		t.Fatalf("DeleteAssignment: %v", err)
	}
	for _, a := range f.sim.Assignments() {
		if a.ID == id {
			t.Fatal("the assignment is still there")
		}
	}
	if got := f.graphMethods(); !cmp.Equal(got, []string{http.MethodDelete, http.MethodDelete}) {
		t.Errorf("requests = %v, want the DELETE and its retry", got)
	}
}
