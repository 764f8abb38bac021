package graph

import (
	"context"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxBatch is the most requests Graph accepts in one $batch.
const maxBatch = 20

// BatchRequest is one request of a JSON batch. URL is relative to the
// version root ("/users/{id}/cloudLicensing/usageRights"); an absolute URL
// under the client's base URL is made relative. Body, when not nil, is
// sent as JSON. An empty ID is replaced by the request's index.
type BatchRequest struct {
	ID, Method, URL string
	Body            any
}

// BatchResponse is the answer to one BatchRequest: its own status, headers
// and body (a sub-request fails alone; turn it into an error with
// BatchError).
type BatchResponse struct {
	ID     string
	Status int
	Header http.Header
	Body   json.RawMessage
}

type wireBatchRequest struct {
	ID      string            `json:"id"`
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    json.RawMessage   `json:"body,omitempty"`
}

type wireBatchResponse struct {
	ID      string            `json:"id"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    json.RawMessage   `json:"body"`
}

// Batch sends reqs through POST /$batch, in chunks of 20, and returns one
// response per request, in the order of reqs. Sub-requests answered 429
// are sent again (in a new batch, after the longest Retry-After among
// them, capped as for single requests) up to MaxRetries times; so are
// 503/504 answers to GET, PATCH and DELETE sub-requests. After that their
// last answer is returned as it is. The batch POST itself is retried like
// a read when every sub-request is idempotent; otherwise a batch whose
// outcome is unknown fails with an error that satisfies OutcomeUnknown.
func (c *Client) Batch(ctx context.Context, reqs []BatchRequest) ([]BatchResponse, error) {
	wire := make([]wireBatchRequest, len(reqs))
	index := make(map[string]int, len(reqs))
	for i, r := range reqs {
		w, err := c.batchRequest(i, r)
		if err != nil {
			return nil, fmt.Errorf("batch: request %d: %w", i, err)
		}
		if _, dup := index[w.ID]; dup {
			return nil, fmt.Errorf("batch: request id %q is used twice", w.ID)
		}
		index[w.ID] = i
		wire[i] = w
	}
	out := make([]BatchResponse, len(reqs))
	for start := 0; start < len(wire); start += maxBatch {
		chunk := wire[start:min(start+maxBatch, len(wire))]
		if err := c.batchChunk(ctx, chunk, index, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// batchRequest validates r and turns it into its wire form.
func (c *Client) batchRequest(i int, r BatchRequest) (wireBatchRequest, error) {
	w := wireBatchRequest{ID: r.ID, Method: strings.ToUpper(r.Method), URL: r.URL}
	if w.ID == "" {
		w.ID = strconv.Itoa(i + 1)
	}
	switch w.Method {
	case http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodPut, http.MethodDelete:
	default:
		return w, fmt.Errorf("method %q is not supported", r.Method)
	}
	if base := c.base.String(); strings.HasPrefix(w.URL, base+"/") {
		w.URL = strings.TrimPrefix(w.URL, base)
	}
	if !strings.HasPrefix(w.URL, "/") || strings.HasPrefix(w.URL, "//") {
		return w, fmt.Errorf("url %q is not relative to the version root", r.URL)
	}
	if r.Body != nil {
		b, err := json.Marshal(r.Body)
		if err != nil {
			return w, fmt.Errorf("encode body: %w", err)
		}
		w.Body = b
		w.Headers = map[string]string{"Content-Type": "application/json"}
	}
	return w, nil
}

// batchChunk sends up to 20 requests, and again those that were throttled,
// storing each final answer in out at the index of its request.
func (c *Client) batchChunk(ctx context.Context, pending []wireBatchRequest, index map[string]int, out []BatchResponse) error {
	for round := 0; ; round++ {
		idempotent := true
		for _, r := range pending {
			idempotent = idempotent && r.Method != http.MethodPost
		}
		body, err := json.Marshal(struct {
			Requests []wireBatchRequest `json:"requests"`
		}{pending})
		if err != nil {
			return fmt.Errorf("batch: encode: %w", err)
		}
		resp, _, err := c.do(ctx, http.MethodPost, c.resolve("/$batch", Query{}), body, idempotent)
		if err != nil {
			return fmt.Errorf("batch: %w", err)
		}
		var w struct {
			Responses []wireBatchResponse `json:"responses"`
		}
		if err := json.Unmarshal(resp, &w); err != nil {
			err = fmt.Errorf("batch: decode: %w", err)
			if !idempotent {
				return &unknownOutcomeError{err}
			}
			return err
		}
		byID := map[string]wireBatchResponse{}
		for _, r := range w.Responses {
			byID[r.ID] = r
		}
		var again []wireBatchRequest
		var wait time.Duration
		for _, r := range pending {
			sub, ok := byID[r.ID]
			if !ok {
				err := fmt.Errorf("batch: no response for request %q", r.ID)
				if r.Method == http.MethodPost {
					return &unknownOutcomeError{err}
				}
				return err
			}
			h := http.Header{}
			for k, v := range sub.Headers {
				h.Set(k, v)
			}
			out[index[r.ID]] = BatchResponse{ID: r.ID, Status: sub.Status, Header: h, Body: sub.Body}
			if sub.Status == http.StatusTooManyRequests {
				c.throttled.Add(1)
			}
			retryable := sub.Status == http.StatusTooManyRequests ||
				(r.Method != http.MethodPost && (sub.Status == http.StatusServiceUnavailable || sub.Status == http.StatusGatewayTimeout))
			if !retryable || round >= c.maxRetries {
				continue
			}
			d, ok := parseRetryAfter(h.Get("Retry-After"), time.Now())
			if !ok {
				d = backoff(round, c.backoffBase, c.backoffMax, mrand.Float64())
			}
			if d > c.maxRetryAfter {
				continue // leave it to the caller, as for single requests
			}
			wait = max(wait, d)
			again = append(again, r)
		}
		if len(again) == 0 {
			return nil
		}
		c.retries.Add(int64(len(again)))
		c.log.WarnContext(ctx, "graph batch sub-requests throttled; retrying", "count", len(again), "wait", wait, "round", round+1)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("batch: %w (while waiting to retry %d throttled requests)", ctx.Err(), len(again))
		case <-t.C:
		}
		pending = again
	}
}

// BatchError returns the *Error a failed sub-response stands for, or nil
// when its status is 2xx.
func BatchError(r BatchResponse) error {
	if r.Status >= 200 && r.Status < 300 {
		return nil
	}
	resp := &http.Response{StatusCode: r.Status, Header: r.Header}
	if resp.Header == nil {
		resp.Header = http.Header{}
	}
	return errorFromResponse(resp, r.Body)
}
