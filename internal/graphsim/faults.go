package graphsim

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// FaultRule makes some requests fail. A request matches when its path
// starts with Path (or matches PathRegexp, tried against the path and
// query) and its method is Method (empty: any). A matching request fails
// when it is the Nth matching one (Nth > 0), or else with probability
// Rate, drawn from a generator seeded with Seed, so a run is repeatable;
// at most Count times (0: no limit). /_sim/ is never faulted.
type FaultRule struct {
	Path       string  `json:"path,omitempty"`
	PathRegexp string  `json:"pathRegexp,omitempty"`
	Method     string  `json:"method,omitempty"`
	Rate       float64 `json:"rate,omitempty"`
	Nth        int     `json:"nth,omitempty"`
	// Kind is one of FaultThrottle, FaultUnavailable, FaultGatewayTimeout,
	// FaultDelay, FaultReset, FaultTruncate, FaultMalformed, FaultNearLimit,
	// FaultLoop.
	Kind string `json:"kind"`
	// RetryAfterSeconds is the Retry-After of throttle (default 1) and,
	// when set, of unavailable.
	RetryAfterSeconds int `json:"retryAfterSeconds,omitempty"`
	// Delay is how long FaultDelay holds the request, e.g. "250ms".
	Delay string `json:"delay,omitempty"`
	// LimitPercentage is the x-ms-throttle-limit-percentage of
	// FaultNearLimit (0.8 to 1.8; default 0.9).
	LimitPercentage float64 `json:"limitPercentage,omitempty"`
	Count           int     `json:"count,omitempty"`
	Seed            int64   `json:"seed,omitempty"`
	// Fired is an output: how often the rule has fired so far.
	Fired int `json:"fired"`
}

// Fault kinds.
const (
	FaultThrottle       = "throttle"        // 429 with Retry-After, error code TooManyRequests
	FaultUnavailable    = "unavailable"     // 503
	FaultGatewayTimeout = "gateway_timeout" // 504
	FaultDelay          = "delay"           // wait Delay, then answer normally
	FaultReset          = "reset"           // close the connection without an answer
	FaultTruncate       = "truncate"        // send half the body, then close
	FaultMalformed      = "malformed"       // a complete answer whose JSON is broken
	// FaultNearLimit answers normally with x-ms-throttle-limit-percentage
	// (LimitPercentage, default 0.9), Graph's warning that the caller
	// used more than 80 % of its limit.
	FaultNearLimit = "near_limit"
	// FaultLoop answers a page of a collection normally, except that its
	// @odata.nextLink leads back to the page itself (a broken server-side
	// cursor): a client that follows links blindly never ends. A page
	// without a next link is left alone.
	FaultLoop = "loop"
)

var faultKinds = []string{FaultThrottle, FaultUnavailable, FaultGatewayTimeout, FaultDelay, FaultReset, FaultTruncate, FaultMalformed,
	FaultNearLimit, FaultLoop}

type faultState struct {
	FaultRule
	re      *regexp.Regexp
	delay   time.Duration
	rng     *rand.Rand
	matched int
}

type faultSet struct {
	mu    sync.Mutex
	rules []*faultState
}

// SetFaults replaces the fault rules (nil clears them).
func (s *Server) SetFaults(rules []FaultRule) error {
	var states []*faultState
	for i, r := range rules {
		fs := &faultState{FaultRule: r}
		fs.Fired = 0
		if !slices.Contains(faultKinds, r.Kind) {
			return fmt.Errorf("fault rule %d: kind %q is not one of %v", i, r.Kind, faultKinds)
		}
		if r.Rate < 0 || r.Rate > 1 || r.Nth < 0 || r.Count < 0 {
			return fmt.Errorf("fault rule %d: rate must be in 0..1, nth and count not negative", i)
		}
		if r.Rate == 0 && r.Nth == 0 {
			return fmt.Errorf("fault rule %d: set rate or nth", i)
		}
		if r.PathRegexp != "" {
			re, err := regexp.Compile(r.PathRegexp)
			if err != nil {
				return fmt.Errorf("fault rule %d: compile pathRegexp: %w", i, err)
			}
			fs.re = re
		}
		if r.Kind == FaultDelay {
			d, err := time.ParseDuration(r.Delay)
			if err != nil || d < 0 {
				return fmt.Errorf("fault rule %d: delay %q is not a duration", i, r.Delay)
			}
			fs.delay = d
		}
		fs.rng = rand.New(rand.NewPCG(uint64(r.Seed), uint64(i)))
		states = append(states, fs)
	}
	s.faults.mu.Lock()
	s.faults.rules = states
	s.faults.mu.Unlock()
	return nil
}

// Faults returns the rules in force, with how often each fired.
func (s *Server) Faults() []FaultRule {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	out := make([]FaultRule, 0, len(s.faults.rules))
	for _, f := range s.faults.rules {
		out = append(out, f.FaultRule)
	}
	return out
}

// pick returns the rule a request triggers, if any. Every matching rule
// counts the request; the first that fires wins.
func (fs *faultSet) pick(r *http.Request, inBatch bool) *faultState {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var fired *faultState
	for _, f := range fs.rules {
		if f.Method != "" && !strings.EqualFold(f.Method, r.Method) {
			continue
		}
		if f.re != nil {
			if !f.re.MatchString(r.URL.RequestURI()) {
				continue
			}
		} else if !strings.HasPrefix(r.URL.Path, f.Path) {
			continue
		}
		if inBatch && (f.Kind == FaultReset || f.Kind == FaultTruncate || f.Kind == FaultMalformed || f.Kind == FaultLoop) {
			continue
		}
		f.matched++
		fire := f.Nth > 0 && f.matched == f.Nth
		if f.Nth == 0 {
			fire = f.rng.Float64() < f.Rate
		}
		if !fire || (f.Count > 0 && f.Fired >= f.Count) || fired != nil {
			continue
		}
		f.Fired++
		fired = f
	}
	return fired
}

// withFaults applies the fault rules before next serves the request.
func (s *Server) withFaults(w http.ResponseWriter, r *http.Request, next http.HandlerFunc) {
	f := s.faults.pick(r, r.Context().Value(inBatchKey{}) != nil)
	if f == nil {
		next(w, r)
		return
	}
	now := s.Now()
	switch f.Kind {
	case FaultThrottle:
		secs := f.RetryAfterSeconds
		if secs <= 0 {
			secs = 1
		}
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeJSON(w, http.StatusTooManyRequests, "application/json", graphError{Error: graphErrorBody{
			Code:    "TooManyRequests",
			Message: "Too many requests. Retry after " + strconv.Itoa(secs) + " seconds (graphsim fault).",
			InnerError: graphInnerError{
				Code:              "tooManyRequests",
				Date:              now.UTC().Format("2006-01-02T15:04:05"),
				RequestID:         w.Header().Get("request-id"),
				ClientRequestID:   w.Header().Get("client-request-id"),
				RetryAfterSeconds: secs,
			},
		}})
	case FaultUnavailable:
		if f.RetryAfterSeconds > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfterSeconds))
		}
		writeGraphError(w, r, now, http.StatusServiceUnavailable, "serviceNotAvailable", "",
			"The service is temporarily unavailable (graphsim fault).")
	case FaultGatewayTimeout:
		writeGraphError(w, r, now, http.StatusGatewayTimeout, "gatewayTimeout", "",
			"The gateway timed out (graphsim fault).")
	case FaultDelay:
		select {
		case <-time.After(f.delay):
		case <-r.Context().Done():
			return
		}
		next(w, r)
	case FaultNearLimit:
		p := f.LimitPercentage
		if p == 0 {
			p = 0.9
		}
		w.Header().Set("x-ms-throttle-limit-percentage", strconv.FormatFloat(p, 'f', -1, 64))
		next(w, r)
	case FaultReset:
		abort(w)
	case FaultLoop:
		rec := httptest.NewRecorder()
		next(rec, r)
		body := rec.Body.Bytes()
		var page map[string]json.RawMessage
		var link string
		if json.Unmarshal(body, &page) == nil && json.Unmarshal(page["@odata.nextLink"], &link) == nil && link != "" {
			if u, err := url.Parse(link); err == nil {
				// The page's own address, on the origin the link names.
				u.Path, u.RawPath, u.RawQuery = r.URL.Path, r.URL.RawPath, r.URL.RawQuery
				page["@odata.nextLink"], _ = json.Marshal(u.String())
				body, _ = json.Marshal(page)
			}
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(rec.Code)
		_, _ = w.Write(body)
	case FaultTruncate, FaultMalformed:
		rec := httptest.NewRecorder()
		next(rec, r)
		body := rec.Body.Bytes()
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		if f.Kind == FaultMalformed {
			broken := append(append([]byte{}, body[:len(body)/2]...), []byte(`<<graphsim: malformed>>`)...)
			w.Header().Set("Content-Length", strconv.Itoa(len(broken)))
			w.WriteHeader(rec.Code)
			_, _ = w.Write(broken)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(rec.Code)
		_, _ = w.Write(body[:len(body)/2])
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
		abort(w)
	}
}

// abort closes the connection abruptly: with HTTP/1 through the
// Hijacker, resetting the TCP connection; with HTTP/2 (no Hijacker) by
// aborting the stream.
func abort(w http.ResponseWriter) {
	for {
		if u, ok := w.(interface{ Unwrap() http.ResponseWriter }); ok {
			if _, isHJ := w.(http.Hijacker); !isHJ {
				w = u.Unwrap()
				continue
			}
		}
		break
	}
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			if tc, ok := conn.(interface{ NetConn() net.Conn }); ok {
				if raw, ok := tc.NetConn().(*net.TCPConn); ok {
					_ = raw.SetLinger(0)
				}
			}
			if raw, ok := conn.(*net.TCPConn); ok {
				_ = raw.SetLinger(0)
			}
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}
