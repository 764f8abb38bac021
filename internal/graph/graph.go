// Package graph is seatledger's Microsoft Graph (beta) client for Cloud
// Licensing, shared by the sync loop and the write proxy. It authenticates
// with any azcore.TokenCredential (NewCredential builds the usual ones),
// pages collections as iterators that follow @odata.nextLink, retries
// idempotent requests on throttling and transient failures, and turns every
// non-2xx answer into an *Error.
//
// Its wire types are its own: it must not import internal/graphsim (nor the
// reverse), so that the client and the simulator are each checked against
// the documented examples rather than against each other.
package graph

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
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
}

// Stats are cumulative counters of a Client's traffic.
type Stats struct {
	Requests      int64 // HTTP attempts sent, retries included
	Throttled     int64 // answers with status 429
	BytesReceived int64 // response body bytes read
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

	// Retry timing; fields so that tests can shorten them.
	backoffBase   time.Duration
	backoffMax    time.Duration
	maxRetryAfter time.Duration

	requests, throttled, bytesReceived atomic.Int64
}

const (
	defaultBaseURL    = "https://graph.microsoft.com/beta"
	defaultScope      = "https://graph.microsoft.com/.default"
	defaultMaxRetries = 4
	defaultTimeout    = 60 * time.Second
	maxBody           = 64 << 20
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
	c := &Client{
		cred:          cred,
		base:          base,
		hc:            opts.HTTPClient,
		scope:         opts.Scope,
		log:           opts.Logger,
		pageSize:      opts.PageSize,
		maxRetries:    opts.MaxRetries,
		timeout:       opts.Timeout,
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
	return Stats{Requests: c.requests.Load(), Throttled: c.throttled.Load(), BytesReceived: c.bytesReceived.Load()}
}

// resolve returns the absolute URL of path (relative to the base URL).
func (c *Client) resolve(path string, query url.Values) string {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawPath = ""
	if len(query) > 0 {
		u.RawQuery = query.Encode()
	}
	return u.String()
}

// sameOrigin reports whether link points at the base URL's scheme and host,
// so that a next link never carries our token elsewhere.
func (c *Client) sameOrigin(link string) bool {
	u, err := url.Parse(link)
	return err == nil && strings.EqualFold(u.Scheme, c.base.Scheme) && strings.EqualFold(u.Host, c.base.Host)
}

// get sends GET rawURL and returns the body of a 2xx answer. GET is
// idempotent, so 429 (after Retry-After), 503, 504 and transport failures
// are retried up to MaxRetries times; any other non-2xx is an *Error at
// once.
func (c *Client) get(ctx context.Context, rawURL string) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		body, retryAfter, err := c.try(ctx, http.MethodGet, rawURL)
		if err == nil {
			return body, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("get %s: %w", redact(rawURL), ctx.Err())
		}
		wait, retry := c.retryPolicy(attempt, err, retryAfter)
		if !retry {
			return nil, err
		}
		c.log.WarnContext(ctx, "graph request failed; retrying", "method", http.MethodGet, "path", pathOf(rawURL),
			"attempt", attempt+1, "wait", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("get %s: %w (while waiting to retry after: %w)", redact(rawURL), ctx.Err(), err)
		case <-t.C:
		}
	}
}

// retryPolicy decides whether to retry after the attempt-th failure (0
// based) and how long to wait first: Retry-After when Graph sent one (429
// waits longer than maxRetryAfter are returned to the caller instead, so
// that a long pause is scheduled by the caller rather than inside a
// request), else exponential backoff with jitter.
func (c *Client) retryPolicy(attempt int, err error, retryAfter time.Duration) (time.Duration, bool) {
	if attempt >= c.maxRetries {
		return 0, false
	}
	var gerr *Error
	if errors.As(err, &gerr) {
		switch gerr.Status {
		case http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		default:
			return 0, false
		}
		if gerr.hasRetryAfter {
			if retryAfter > c.maxRetryAfter {
				return 0, false
			}
			return retryAfter, true
		}
	} else if !isTransient(err) {
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

// transportError marks failures to get an HTTP answer at all.
type transportError struct{ err error }

func (e *transportError) Error() string { return e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

func isTransient(err error) bool {
	var te *transportError
	return errors.As(err, &te)
}

// try makes one attempt: token, request, body. It returns the body of a
// 2xx answer, or an error (an *Error for non-2xx answers, a
// *transportError when no answer came) and the Retry-After of the answer.
func (c *Client) try(ctx context.Context, method, rawURL string) ([]byte, time.Duration, error) {
	tok, err := c.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{c.scope}})
	if err != nil {
		return nil, 0, fmt.Errorf("get token for %s: %w", c.scope, err)
	}
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, method, rawURL, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("client-request-id", newGUID())
	req.Header.Set("User-Agent", "seatledger")

	c.requests.Add(1)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, 0, &transportError{fmt.Errorf("%s %s: %w", method, redact(rawURL), err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	c.bytesReceived.Add(int64(len(body)))
	if err != nil {
		return nil, 0, &transportError{fmt.Errorf("%s %s: read body: %w", method, redact(rawURL), err)}
	}
	if len(body) > maxBody {
		return nil, 0, fmt.Errorf("%s %s: response body exceeds %d bytes", method, redact(rawURL), maxBody)
	}
	if p := resp.Header.Get("x-ms-throttle-limit-percentage"); p != "" {
		c.log.WarnContext(ctx, "graph throttle limit approaching", "percentage", p, "path", pathOf(rawURL))
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return body, 0, nil
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		c.throttled.Add(1)
	}
	gerr := errorFromResponse(resp, body)
	return nil, gerr.RetryAfter, gerr
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
