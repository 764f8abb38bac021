package graph

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Error is a non-2xx answer from Graph.
type Error struct {
	Status    int    // HTTP status
	Code      string // error.code, e.g. "notFound", "TooManyRequests"
	Message   string // error.message (or the start of a non-JSON body)
	InnerCode string // error.innerError.code, e.g. "resourceNotFound"; "" when absent
	RequestID string // the request-id header (else innerError's), for support tickets
	// ClientRequestID is the client-request-id this client sent with the
	// failed attempt (echoed by Graph), to find it in our own logs.
	ClientRequestID string
	RetryAfter      time.Duration // from the Retry-After header; 0 when absent

	hasRetryAfter bool // Retry-After was present (it may say 0)
}

// Error returns "graph: <status> <code>[/<inner code>]: <message> (request-id <id>)".
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "graph: %d", e.Status)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.InnerCode != "" {
		b.WriteString("/" + e.InnerCode)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.RequestID != "" {
		b.WriteString(" (request-id " + e.RequestID + ")")
	}
	return b.String()
}

// RetryAfter returns how long Graph asked to wait before retrying, when err
// is or wraps an *Error that carried Retry-After; else 0.
func RetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// wireError is Graph's error body. innerError is also spelled innererror
// (OData's spelling) by some services; both are read.
type wireError struct {
	Error struct {
		Code       string          `json:"code"`
		Message    string          `json:"message"`
		InnerError *wireInnerError `json:"innerError"`
		InnerLower *wireInnerError `json:"innererror"`
	} `json:"error"`
}

type wireInnerError struct {
	Code            string `json:"code"`
	RequestID       string `json:"request-id"`
	ClientRequestID string `json:"client-request-id"`
}

// errorFromResponse builds the *Error for a non-2xx answer, tolerating
// bodies that are not Graph's JSON (proxies, gateways).
func errorFromResponse(resp *http.Response, body []byte) *Error {
	e := &Error{Status: resp.StatusCode, RequestID: resp.Header.Get("request-id"), ClientRequestID: resp.Header.Get("client-request-id")}
	e.RetryAfter, e.hasRetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	var w wireError
	if err := json.Unmarshal(body, &w); err == nil && (w.Error.Code != "" || w.Error.Message != "") {
		e.Code, e.Message = w.Error.Code, w.Error.Message
		inner := w.Error.InnerError
		if inner == nil {
			inner = w.Error.InnerLower
		}
		if inner != nil {
			e.InnerCode = inner.Code
			if e.RequestID == "" {
				e.RequestID = inner.RequestID
			}
			if e.ClientRequestID == "" {
				e.ClientRequestID = inner.ClientRequestID
			}
		}
		return e
	}
	e.Message = strings.TrimSpace(string(body))
	if len(e.Message) > 200 {
		e.Message = e.Message[:200] + "…"
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	return e
}

// parseRetryAfter reads a Retry-After header: delay seconds or an HTTP date
// (relative to now). It reports whether the header was present and valid.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(min(secs, 24*3600)) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}
