// Package graph is seatledger's Microsoft Graph (beta) client for Cloud
// Licensing, shared by the sync loop and the write proxy. It authenticates
// with any azcore.TokenCredential (NewCredential builds the usual ones),
// pages collections as iterators that follow @odata.nextLink, retries
// idempotent requests on throttling and transient failures, never repeats a
// create blindly (OutcomeUnknown tells the caller to read back), and turns
// every non-2xx answer into an *Error.
//
// Retry policy: GET, PATCH and DELETE are treated as idempotent. PATCH is,
// because every PATCH this client sends replaces the whole
// disabledServicePlanIds list; DELETE is, because a DELETE retried after an
// attempt whose outcome is unknown treats 404 as "already deleted". They are
// retried on 429 (after Retry-After, capped), 503, 504, 409
// Directory_ConcurrencyViolation, transport failures and 2xx bodies that are
// not valid JSON, with jittered exponential backoff when Graph gives no
// Retry-After. POST is retried only when Graph certainly did not act on it:
// a 429, or a connection that was never established.
//
// Its wire types are its own: it must not import internal/graphsim (nor the
// reverse), so that the client and the simulator are each checked against
// the documented examples rather than against each other.
package graph

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"iter"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// Options configures a Client. The zero value talks to Microsoft Graph
// beta with http.DefaultTransport.
type Options struct {
	// BaseURL is Graph's base including the version; default
	// https://graph.microsoft.com/beta.
	BaseURL string
	// HTTPClient sends the requests; nil means a client on a clone of
	// http.DefaultTransport.
	HTTPClient *http.Client
	// Scope is requested from the credential; default
	// https://graph.microsoft.com/.default.
	Scope string
	// Logger receives warnings (throttling pressure, retries); nil
	// discards.
	Logger *slog.Logger
	// PageSize is sent as $top on collections; 0 leaves the page size to
	// Graph. At most 999.
	PageSize int
	// MaxRetries is how many times a failed idempotent request is retried:
	// 0 means 4, negative means never.
	MaxRetries int
	// Timeout bounds each HTTP attempt, body included; 0 means 60s.
	Timeout time.Duration
	// MaxConcurrent bounds the HTTP requests in flight at once across the
	// client (waits between retries do not count); 0 means 8.
	MaxConcurrent int
}

// Stats are cumulative counters of a Client's traffic.
type Stats struct {
	Requests      int64 // HTTP attempts sent, retries included
	Throttled     int64 // answers with status 429 (batch sub-responses included)
	Retries       int64 // attempts that repeated a failed one
	BytesReceived int64 // response body bytes read
	BytesSent     int64 // request body bytes sent
	// ThrottleLimitPercentage is the last x-ms-throttle-limit-percentage
	// Graph sent (how close the app is to being throttled; Graph sends it
	// above 80); 0 when it never did.
	ThrottleLimitPercentage float64
}

// Client calls Microsoft Graph. It is safe for concurrent use.
type Client struct {
	cred       azcore.TokenCredential
	base       *url.URL
	hc         *http.Client
	scope      string
	log        *slog.Logger
	pageSize   int
	maxRetries int
	timeout    time.Duration
	sem        chan struct{} // one token per request in flight

	// Retry timing; fields so that tests can shorten them.
	backoffBase   time.Duration
	backoffMax    time.Duration
	maxRetryAfter time.Duration

	requests, throttled, retries, bytesReceived, bytesSent atomic.Int64
	throttlePct                                            atomic.Uint64 // math.Float64bits
}

const (
	defaultBaseURL       = "https://graph.microsoft.com/beta"
	defaultScope         = "https://graph.microsoft.com/.default"
	defaultMaxRetries    = 4
	defaultTimeout       = 60 * time.Second
	defaultMaxConcurrent = 8
	maxBody              = 64 << 20
)

// New returns a client that authenticates with cred. It fails when cred is
// nil or an option is invalid; it makes no request.
func New(cred azcore.TokenCredential, opts Options) (*Client, error) {
	if cred == nil {
		return nil, errors.New("graph: credential is nil")
	}
	if opts.BaseURL == "" {
		opts.BaseURL = defaultBaseURL
	}
	base, err := url.Parse(strings.TrimSuffix(opts.BaseURL, "/"))
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" {
		return nil, fmt.Errorf("graph: base URL %q is not an absolute http(s) URL", opts.BaseURL)
	}
	if opts.PageSize < 0 || opts.PageSize > 999 {
		return nil, fmt.Errorf("graph: page size %d is outside 0..999", opts.PageSize)
	}
	if opts.MaxConcurrent < 0 {
		return nil, fmt.Errorf("graph: MaxConcurrent %d is negative", opts.MaxConcurrent)
	}
	if opts.MaxConcurrent == 0 {
		opts.MaxConcurrent = defaultMaxConcurrent
	}
	c := &Client{
		cred:          cred,
		base:          base,
		hc:            opts.HTTPClient,
		scope:         opts.Scope,
		log:           opts.Logger,
		pageSize:      opts.PageSize,
		maxRetries:    opts.MaxRetries,
		timeout:       opts.Timeout,
		sem:           make(chan struct{}, opts.MaxConcurrent),
		backoffBase:   500 * time.Millisecond,
		backoffMax:    30 * time.Second,
		maxRetryAfter: time.Minute,
	}
	if c.hc == nil {
		c.hc = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	if c.scope == "" {
		c.scope = defaultScope
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.maxRetries == 0:
		c.maxRetries = defaultMaxRetries
	case c.maxRetries < 0:
		c.maxRetries = 0
	}
	if c.timeout <= 0 {
		c.timeout = defaultTimeout
	}
	return c, nil
}

// Stats returns the counters accumulated since New.
func (c *Client) Stats() Stats {
	return Stats{
		Requests:                c.requests.Load(),
		Throttled:               c.throttled.Load(),
		Retries:                 c.retries.Load(),
		BytesReceived:           c.bytesReceived.Load(),
		BytesSent:               c.bytesSent.Load(),
		ThrottleLimitPercentage: math.Float64frombits(c.throttlePct.Load()),
	}
}

// resolve returns the absolute URL of path (relative to the base URL) with
// the query q (already encoded, "" for none).
func (c *Client) resolve(path string, q Query) string {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawPath = ""
	u.RawQuery = q.Encode()
	return u.String()
}

// pathURL is resolve for a path built from segments, each escaped, e.g.
// pathURL(q, "users", id, "cloudLicensing", "assignments").
func (c *Client) pathURL(q Query, segs ...string) string {
	u := *c.base
	var raw strings.Builder
	raw.WriteString(strings.TrimSuffix(u.EscapedPath(), "/"))
	for _, s := range segs {
		raw.WriteString("/" + url.PathEscape(s))
	}
	u.RawPath = raw.String()
	u.Path, _ = url.PathUnescape(u.RawPath)
	u.RawQuery = q.Encode()
	return u.String()
}

// sameOrigin reports whether link points at the base URL's scheme and host,
// so that a next link never carries our token elsewhere.
func (c *Client) sameOrigin(link string) bool {
	u, err := url.Parse(link)
	return err == nil && strings.EqualFold(u.Scheme, c.base.Scheme) && strings.EqualFold(u.Host, c.base.Host)
}

// get sends GET rawURL and returns the body of a 2xx answer.
func (c *Client) get(ctx context.Context, rawURL string) ([]byte, error) {
	body, _, err := c.do(ctx, http.MethodGet, rawURL, nil, true)
	return body, err
}

// do sends one logical request, retrying as the package comment says, and
// returns the body and status of the 2xx answer. reqBody, when not nil, is
// sent as JSON. idempotent says whether repeating the request is harmless
// (true for GET, PATCH, DELETE, and POSTs such as a batch of reads).
// Errors are *Error for non-2xx answers; for a request that is not
// idempotent and whose effect is unknown they satisfy OutcomeUnknown.
func (c *Client) do(ctx context.Context, method, rawURL string, reqBody []byte, idempotent bool) ([]byte, int, error) {
	unknownBefore := false // an earlier attempt may have reached Graph and acted
	for attempt := 0; ; attempt++ {
		body, status, retryAfter, err := c.try(ctx, method, rawURL, reqBody)
		if err == nil {
			return body, status, nil
		}
		var gerr *Error
		if method == http.MethodDelete && unknownBefore && errors.As(err, &gerr) && gerr.Status == http.StatusNotFound {
			// The earlier attempt deleted it; its answer was lost.
			c.log.InfoContext(ctx, "graph delete retried after an unknown outcome found nothing to delete", "path", pathOf(rawURL))
			return nil, http.StatusNoContent, nil
		}
		unknownBefore = unknownBefore || mayHaveActed(err)
		if ctx.Err() != nil {
			err = fmt.Errorf("%s %s: %w (last attempt: %w)", method, redact(rawURL), ctx.Err(), err)
			if !idempotent && unknownBefore {
				return nil, 0, &unknownOutcomeError{err}
			}
			return nil, 0, err
		}
		wait, retry := c.retryPolicy(attempt, err, retryAfter, idempotent)
		if !retry {
			if !idempotent && unknownBefore {
				return nil, 0, &unknownOutcomeError{err}
			}
			return nil, 0, err
		}
		c.retries.Add(1)
		c.log.WarnContext(ctx, "graph request failed; retrying", "method", method, "path", pathOf(rawURL),
			"attempt", attempt+1, "wait", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			err = fmt.Errorf("%s %s: %w (while waiting to retry after: %w)", method, redact(rawURL), ctx.Err(), err)
			if !idempotent && unknownBefore {
				return nil, 0, &unknownOutcomeError{err}
			}
			return nil, 0, err
		case <-t.C:
		}
	}
}

// retryPolicy decides whether to retry after the attempt-th failure (0
// based) and how long to wait first: Retry-After when Graph sent one (429
// waits longer than maxRetryAfter are returned to the caller instead, so
// that a long pause is scheduled by the caller rather than inside a
// request), else exponential backoff with jitter. Requests that are not
// idempotent are retried only when Graph certainly did not act.
func (c *Client) retryPolicy(attempt int, err error, retryAfter time.Duration, idempotent bool) (time.Duration, bool) {
	if attempt >= c.maxRetries {
		return 0, false
	}
	var gerr *Error
	if errors.As(err, &gerr) {
		switch {
		case gerr.Status == http.StatusTooManyRequests:
		case !idempotent:
			return 0, false
		case gerr.Status == http.StatusServiceUnavailable, gerr.Status == http.StatusGatewayTimeout:
		case gerr.Status == http.StatusConflict && strings.EqualFold(gerr.Code, "Directory_ConcurrencyViolation"):
		default:
			return 0, false
		}
		if gerr.hasRetryAfter {
			if retryAfter > c.maxRetryAfter {
				return 0, false
			}
			return retryAfter, true
		}
	} else if !isTransient(err) || (!idempotent && mayHaveActed(err)) {
		return 0, false
	}
	return backoff(attempt, c.backoffBase, c.backoffMax, mrand.Float64()), true
}

// backoff is the wait before retry n (0 based) when Graph gave no
// Retry-After: base·2ⁿ capped at ceiling, scaled by a jitter factor in
// [0.5, 1) so that clients do not retry in step.
func backoff(n int, base, ceiling time.Duration, jitter float64) time.Duration {
	d := ceiling
	if n < 30 && base<<n < ceiling {
		d = base << n
	}
	return time.Duration(float64(d) * (0.5 + jitter/2))
}

// transportError marks failures to get a complete, well-formed HTTP answer:
// no connection, a reset, a timeout, a truncated body, or a 2xx body that
// is not JSON. notSent says the request certainly never reached Graph.
type transportError struct {
	err     error
	notSent bool
}

func (e *transportError) Error() string { return e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

func isTransient(err error) bool {
	var te *transportError
	return errors.As(err, &te)
}

// mayHaveActed reports whether Graph may have carried out the request that
// failed with err: it got the request (or may have) and its answer was lost
// or says the server failed.
func mayHaveActed(err error) bool {
	var te *transportError
	if errors.As(err, &te) {
		return !te.notSent
	}
	var gerr *Error
	return errors.As(err, &gerr) && gerr.Status >= 500
}

// unknownOutcomeError wraps the failure of a request that was not
// idempotent and may have taken effect.
type unknownOutcomeError struct{ err error }

func (e *unknownOutcomeError) Error() string {
	return e.err.Error() + " (outcome unknown: read back before retrying)"
}
func (e *unknownOutcomeError) Unwrap() error { return e.err }

// OutcomeUnknown reports whether err comes from a write that was not
// retried and may nevertheless have taken effect (a timeout, a reset, a 5xx,
// or a success whose answer could not be read). The caller must read the
// state back before deciding to repeat it.
func OutcomeUnknown(err error) bool {
	var u *unknownOutcomeError
	return errors.As(err, &u)
}

// isDialError reports whether err happened while connecting, before any
// byte of the request was written.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// try makes one attempt: token, request, body. It returns the body and
// status of a 2xx answer, or an error (an *Error for non-2xx answers, a
// *transportError when no usable answer came) and the Retry-After of the
// answer.
func (c *Client) try(ctx context.Context, method, rawURL string, reqBody []byte) ([]byte, int, time.Duration, error) {
	tok, err := c.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{c.scope}})
	if err != nil {
		return nil, 0, 0, fmt.Errorf("get token for %s: %w", c.scope, err)
	}
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, 0, 0, &transportError{err: ctx.Err(), notSent: true}
	}
	defer func() { <-c.sem }()
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var rd io.Reader
	if reqBody != nil {
		rd = bytes.NewReader(reqBody)
	}
	req, err := http.NewRequestWithContext(actx, method, rawURL, rd)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	req.Header.Set("Accept", "application/json")
	crid := newGUID()
	req.Header.Set("client-request-id", crid)
	req.Header.Set("User-Agent", "seatledger")
	if reqBody != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	c.requests.Add(1)
	c.bytesSent.Add(int64(len(reqBody)))
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, 0, 0, &transportError{err: fmt.Errorf("%s %s: %w", method, redact(rawURL), err), notSent: isDialError(err)}
	}
	defer resp.Body.Close()
	noteResponse(ctx, resp)
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	c.bytesReceived.Add(int64(len(body)))
	if err != nil {
		return nil, 0, 0, &transportError{err: fmt.Errorf("%s %s: read body: %w", method, redact(rawURL), err)}
	}
	if len(body) > maxBody {
		return nil, 0, 0, fmt.Errorf("%s %s: response body exceeds %d bytes", method, redact(rawURL), maxBody)
	}
	if p := resp.Header.Get("x-ms-throttle-limit-percentage"); p != "" {
		if f, err := strconv.ParseFloat(strings.TrimSpace(p), 64); err == nil {
			c.throttlePct.Store(math.Float64bits(f))
		}
		c.log.WarnContext(ctx, "graph throttle limit approaching", "percentage", p, "path", pathOf(rawURL))
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if len(bytes.TrimSpace(body)) > 0 && !json.Valid(body) {
			// A body cut short by a proxy or a dropped stream: the request
			// itself may well have worked, but its answer is unusable.
			return nil, 0, 0, &transportError{err: fmt.Errorf("%s %s: status %d with a body that is not valid JSON (%d bytes)",
				method, redact(rawURL), resp.StatusCode, len(body))}
		}
		return body, resp.StatusCode, 0, nil
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		c.throttled.Add(1)
	}
	gerr := errorFromResponse(resp, body)
	if gerr.ClientRequestID == "" {
		gerr.ClientRequestID = crid
	}
	return nil, 0, gerr.RetryAfter, gerr
}

// list pages a collection from first, following @odata.nextLink verbatim
// (and only to the base URL's origin), and yields its items. decode turns
// one page into items and the next link. The sequence stops after the
// first error, which it yields with a zero T wrapped as "list <what>: …".
func list[T any](c *Client, ctx context.Context, what, first string, decode func([]byte) ([]T, string, error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		next := first
		// The links followed, by a 64-bit hash rather than the ~250-byte
		// URL itself: a listing of a million objects follows a thousand
		// links, and its memory must follow the page size, not the
		// tenant's. A false alarm needs two of them to collide (~1e-13).
		seed := maphash.MakeSeed()
		seen := map[uint64]struct{}{}
		for next != "" {
			h := maphash.String(seed, next)
			if _, again := seen[h]; again {
				yield(zero, fmt.Errorf("list %s: next link %s repeats an earlier page", what, redact(next)))
				return
			}
			seen[h] = struct{}{}
			body, err := c.get(ctx, next)
			if err != nil {
				yield(zero, fmt.Errorf("list %s: %w", what, err))
				return
			}
			items, link, err := decode(body)
			if err != nil {
				yield(zero, fmt.Errorf("list %s: %w", what, err))
				return
			}
			for _, it := range items {
				if !yield(it, nil) {
					return
				}
			}
			if link != "" && !c.sameOrigin(link) {
				yield(zero, fmt.Errorf("list %s: next link %s leaves %s", what, redact(link), c.base.Host))
				return
			}
			next = link
		}
	}
}

// pageQuery is q with $top set to the client's page size, if it has one.
func (c *Client) pageQuery(q Query) Query {
	if c.pageSize > 0 && q.Top == 0 {
		q.Top = c.pageSize
	}
	return q
}

// pathOf returns the path of a URL, for logs: query strings may hold
// opaque tokens that are nobody's business.
func pathOf(rawURL string) string {
	if u, err := url.Parse(rawURL); err == nil {
		return u.Path
	}
	return ""
}

// redact is rawURL without its query, for error messages.
func redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(invalid URL)"
	}
	u.RawQuery, u.Fragment, u.User = "", "", nil
	return u.String()
}

// newGUID returns a random version-4 GUID, for client-request-id.
func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never returns an error
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// ResponseInfo collects facts about Graph's answers to the requests made
// with a context from WithResponseInfo, successful or not: the audit log
// records Graph's request-id of every write, not only of refused ones.
// It is safe for concurrent use.
type ResponseInfo struct {
	requestID atomic.Pointer[string]
}

// RequestID is the request-id header of the last answer Graph sent ("" if
// none arrived).
func (r *ResponseInfo) RequestID() string {
	if p := r.requestID.Load(); p != nil {
		return *p
	}
	return ""
}

type responseInfoKey struct{}

// WithResponseInfo returns a context whose requests report Graph's answers
// to the returned ResponseInfo.
func WithResponseInfo(ctx context.Context) (context.Context, *ResponseInfo) {
	ri := &ResponseInfo{}
	return context.WithValue(ctx, responseInfoKey{}, ri), ri
}

// noteResponse reports resp to the context's ResponseInfo, if any.
func noteResponse(ctx context.Context, resp *http.Response) {
	if ri, ok := ctx.Value(responseInfoKey{}).(*ResponseInfo); ok {
		if id := resp.Header.Get("request-id"); id != "" {
			ri.requestID.Store(&id)
		}
	}
}
