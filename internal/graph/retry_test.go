package graph_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seatledger/seatledger/internal/graph"
	"github.com/seatledger/seatledger/internal/graphsim"
)

// fault answers a Graph request instead of the simulator: a status and
// headers, and whether to answer at all (false passes the request on).
type fault func(r *http.Request) (status int, header http.Header, ok bool)

// rawFault answers a Graph request however it likes (resets, truncated
// bodies, stalls) and reports whether it did (false passes it on).
type rawFault func(w http.ResponseWriter, r *http.Request) bool

// faultyGraph serves the real simulator behind a front that answers the
// first Graph requests with scripted faults (the simulator has no fault
// knobs yet). It records every Graph request's client-request-id and
// method.
type faultyGraph struct {
	sim     *graphsim.Server
	ts      *httptest.Server
	mu      sync.Mutex
	script  []rawFault
	ids     []string
	methods []string
}

func newFaultyGraph(t *testing.T, script ...fault) *faultyGraph {
	t.Helper()
	raw := make([]rawFault, len(script))
	for i, f := range script {
		raw[i] = f.raw()
	}
	return newFront(t, graphsim.Options{}, nil, raw...)
}

// raw turns a status fault into a rawFault that writes Graph's error body.
func (f fault) raw() rawFault {
	if f == nil {
		return nil
	}
	return func(w http.ResponseWriter, r *http.Request) bool {
		status, h, ok := f(r)
		if !ok {
			return false
		}
		for k, v := range h {
			w.Header()[k] = v
		}
		w.Header().Set("request-id", "fault-request-id")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"error":{"code":"` + strings.ReplaceAll(http.StatusText(status), " ", "") + `","message":"scripted fault"}}`))
		return true
	}
}

// newFront is newFaultyGraph with simulator options and a middleware
// around the simulator's handler (nil for none).
func newFront(t *testing.T, opts graphsim.Options, wrap func(http.Handler) http.Handler, script ...rawFault) *faultyGraph {
	t.Helper()
	s, err := graphsim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	var simHandler = s.Handler()
	if wrap != nil {
		simHandler = wrap(simHandler)
	}
	f := &faultyGraph{sim: s, script: script}
	f.ts = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/beta/") {
			f.mu.Lock()
			f.ids = append(f.ids, r.Header.Get("client-request-id"))
			f.methods = append(f.methods, r.Method)
			var next rawFault
			if len(f.script) > 0 {
				next, f.script = f.script[0], f.script[1:]
			}
			f.mu.Unlock()
			if next != nil && next(w, r) {
				return
			}
		}
		simHandler.ServeHTTP(w, r)
	}))
	t.Cleanup(f.ts.Close)
	return f
}

func (f *faultyGraph) client(t *testing.T, opts graph.Options) *graph.Client {
	t.Helper()
	cred, err := graph.NewCredential(graph.CredentialConfig{
		TenantID: graphsim.DemoTenant().ID, ClientID: graphsim.DemoApp().ClientID, ClientSecret: graphsim.DemoApp().ClientSecret,
		AuthorityHost: f.ts.URL + "/", Transport: f.ts.Client(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if opts.BaseURL == "" {
		opts.BaseURL = f.ts.URL + "/beta"
	}
	opts.HTTPClient = f.ts.Client()
	c, err := graph.New(cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	graph.SetRetryTiming(c, time.Millisecond, 4*time.Millisecond, time.Second)
	return c
}

// graphMethods returns the method of every Graph request that reached the
// front, in order.
func (f *faultyGraph) graphMethods() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.methods...)
}

func (f *faultyGraph) requestIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ids...)
}

func status(code int, header ...string) fault {
	return func(*http.Request) (int, http.Header, bool) {
		h := http.Header{}
		for i := 0; i+1 < len(header); i += 2 {
			h.Set(header[i], header[i+1])
		}
		return code, h, true
	}
}

var guid = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestClient_Retries(t *testing.T) {
	t.Parallel()
	id := graphsim.DemoTenant().Allotments[0].ID
	tests := []struct {
		name          string
		script        []fault
		maxRetries    int
		wantStatus    int // 0: success
		wantRequests  int64
		wantThrottled int64
		wantRetryWait time.Duration
	}{
		{"429 twice with Retry-After 0, then success", []fault{status(429, "Retry-After", "0"), status(429, "Retry-After", "0")}, 0, 0, 3, 2, 0},
		{"503 and 504 without Retry-After back off, then success", []fault{status(503), status(504)}, 0, 0, 3, 0, 0},
		{"Retry-After as an HTTP date in the past", []fault{status(503, "Retry-After", "Mon, 02 Jan 2006 15:04:05 GMT")}, 0, 0, 2, 0, 0},
		{"429 beyond the Retry-After cap goes back to the caller", []fault{status(429, "Retry-After", "120")}, 0, 429, 1, 1, 120 * time.Second},
		{"429 until retries run out", []fault{status(429, "Retry-After", "0"), status(429, "Retry-After", "0"), status(429, "Retry-After", "0")}, 2, 429, 3, 3, 0},
		{"negative MaxRetries never retries", []fault{status(503)}, -1, 503, 1, 0, 0},
		{"400 is not retried", []fault{status(400)}, 0, 400, 1, 0, 0},
		{"500 is not retried", []fault{status(500)}, 0, 500, 1, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFaultyGraph(t, tt.script...)
			c := f.client(t, graph.Options{MaxRetries: tt.maxRetries})
			a, err := c.GetAllotment(context.Background(), id)
			if tt.wantStatus == 0 {
				if err != nil || a.ID != id {
					t.Fatalf("GetAllotment = %v, %v; want success after retries", a.ID, err)
				}
			} else {
				var gerr *graph.Error
				if !errors.As(err, &gerr) || gerr.Status != tt.wantStatus {
					t.Fatalf("err = %v, want a *graph.Error with status %d", err, tt.wantStatus)
				}
				if gerr.RequestID != "fault-request-id" || gerr.Message != "scripted fault" {
					t.Errorf("error = %+v: request id or message not decoded", gerr)
				}
				if got := graph.RetryAfter(err); got != tt.wantRetryWait {
					t.Errorf("RetryAfter(err) = %v, want %v", got, tt.wantRetryWait)
				}
			}
			st := c.Stats()
			if st.Requests != tt.wantRequests || st.Throttled != tt.wantThrottled {
				t.Errorf("Stats = %+v, want %d requests, %d throttled", st, tt.wantRequests, tt.wantThrottled)
			}
			ids := f.requestIDs()
			seen := map[string]bool{}
			for _, id := range ids {
				if !guid.MatchString(id) || seen[id] {
					t.Errorf("client-request-id %q is not a fresh GUID (all: %v)", id, ids)
				}
				seen[id] = true
			}
		})
	}
}

func TestClient_RetryWaitHonoursContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The fault cancels the caller's context while answering 429 with a
	// Retry-After the client would otherwise wait out.
	f := newFaultyGraph(t, func(*http.Request) (int, http.Header, bool) {
		cancel()
		return http.StatusTooManyRequests, http.Header{"Retry-After": {"1"}}, true
	})
	c := f.client(t, graph.Options{})
	start := time.Now()
	_, err := c.GetAllotment(ctx, graphsim.DemoTenant().Allotments[0].ID)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if took := time.Since(start); took > 900*time.Millisecond {
		t.Errorf("took %v: the wait did not stop at cancellation", took)
	}
}

func TestClient_TransportErrorsAreRetried(t *testing.T) {
	t.Parallel()
	f := newFaultyGraph(t)
	// A port that was just ours and is now closed: connections are refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "https://" + ln.Addr().String() + "/beta"
	ln.Close()
	c := f.client(t, graph.Options{BaseURL: dead, MaxRetries: 2})
	_, err = collect(t, c)
	var gerr *graph.Error
	if err == nil || errors.As(err, &gerr) {
		t.Fatalf("err = %v, want a transport error", err)
	}
	if n := c.Stats().Requests; n != 3 {
		t.Errorf("Stats.Requests = %d, want 1 + 2 retries", n)
	}
}

func TestClient_LogsThrottlePressureWithoutSecrets(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	f := newFaultyGraph(t, status(503, "Retry-After", "0", "x-ms-throttle-limit-percentage", "0.9"))
	c := f.client(t, graph.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if _, err := c.GetAllotment(context.Background(), graphsim.DemoTenant().Allotments[0].ID); err != nil {
		t.Fatal(err)
	}
	if got := c.Stats().ThrottleLimitPercentage; got != 0.9 {
		t.Errorf("Stats.ThrottleLimitPercentage = %v, want 0.9", got)
	}
	out := logs.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "percentage=0.9") {
		t.Errorf("no warning with the throttle percentage:\n%s", out)
	}
	for _, secret := range []string{"Bearer", "eyJ", graphsim.DemoApp().ClientSecret} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains %q:\n%s", secret, out)
		}
	}
}

func TestClient_RefusesNextLinkToAnotherHost(t *testing.T) {
	t.Parallel()
	// The simulator's real pages, with the next link moved to a host that
	// must never see our token.
	moveLinks := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasPrefix(r.URL.Path, "/beta/") {
				next.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			body := bytes.ReplaceAll(rec.Body.Bytes(), []byte(r.Host), []byte("graph.attacker.example"))
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.Header().Del("Content-Length")
			w.WriteHeader(rec.Code)
			_, _ = w.Write(body)
		})
	}
	f := newFront(t, graphsim.Options{PageSize: 2}, moveLinks)
	c := f.client(t, graph.Options{})
	got, err := collect(t, c)
	if err == nil || !strings.Contains(err.Error(), "graph.attacker.example") {
		t.Fatalf("err = %v, want a refusal to follow the next link", err)
	}
	if len(got) != 2 || c.Stats().Requests != 1 {
		t.Errorf("got %d allotments in %d requests, want the first page only", len(got), c.Stats().Requests)
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n      int
		jitter float64
		want   time.Duration
	}{
		{0, 0, 250 * time.Millisecond},
		{0, 1, 500 * time.Millisecond},
		{1, 0, 500 * time.Millisecond},
		{3, 1, 4 * time.Second},
		{10, 0, 15 * time.Second}, // capped at 30s, then jittered
		{62, 1, 30 * time.Second}, // no overflow
	}
	for _, tt := range tests {
		if got := graph.Backoff(tt.n, 500*time.Millisecond, 30*time.Second, tt.jitter); got != tt.want {
			t.Errorf("Backoff(%d, jitter %v) = %v, want %v", tt.n, tt.jitter, got, tt.want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{"550", 550 * time.Second, true},
		{" 7 ", 7 * time.Second, true},
		{"-3", 0, false},
		{"soon", 0, false},
		{"Mon, 23 Nov 2026 10:00:30 GMT", 30 * time.Second, true},
		{"Mon, 23 Nov 2026 09:00:00 GMT", 0, true},
	}
	for _, tt := range tests {
		got, ok := graph.ParseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger
// and the final read of a test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
