package graphsim

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"
)

// JSON batching: POST /$batch with up to 20 requests whose URLs are
// relative to the version root. Each runs through the Graph handler with
// the batch's token, in order (dependsOn is accepted; running in order
// satisfies it), and answers with its own status, headers and body.
// Fault rules apply to sub-requests too, but only the ones that produce
// a status (throttle, unavailable, gateway_timeout) or a delay.

const maxBatch = 20

type batchRequest struct {
	ID        string            `json:"id"`
	Method    string            `json:"method"`
	URL       string            `json:"url"`
	Headers   map[string]string `json:"headers"`
	Body      json.RawMessage   `json:"body"`
	DependsOn []string          `json:"dependsOn"`
}

type inBatchKey struct{}

func (s *Server) serveBatch(w http.ResponseWriter, r *http.Request, c claims, now time.Time) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeGraphError(w, r, now, http.StatusMethodNotAllowed, "methodNotAllowed", "", "Specified HTTP method is not allowed for the request target.")
		return
	}
	if r.Context().Value(inBatchKey{}) != nil {
		writeGraphError(w, r, now, http.StatusBadRequest, "BadRequest", "", "A batch cannot contain a batch.")
		return
	}
	body, err := readBody(r)
	if err != nil {
		writeSimError(w, r, now, err)
		return
	}
	var reqs []batchRequest
	if err := json.Unmarshal(body["requests"], &reqs); err != nil || reqs == nil {
		writeGraphError(w, r, now, http.StatusBadRequest, "BadRequest", "", "The batch body must have a 'requests' array.")
		return
	}
	if len(reqs) > maxBatch {
		writeGraphError(w, r, now, http.StatusBadRequest, "BadRequest", "", "Number of batch requests exceeds the limit of "+strconv.Itoa(maxBatch)+".")
		return
	}
	ids := map[string]bool{}
	for _, br := range reqs {
		if br.ID == "" || ids[br.ID] || br.Method == "" || br.URL == "" {
			writeGraphError(w, r, now, http.StatusBadRequest, "BadRequest", "", "Every batch request needs a unique id, a method and a url.")
			return
		}
		if strings.Contains(br.URL, "://") {
			writeGraphError(w, r, now, http.StatusBadRequest, "BadRequest", "", "Batch request urls must be relative to the version root: "+br.URL)
			return
		}
		ids[br.ID] = true
	}
	ctx := context.WithValue(r.Context(), inBatchKey{}, true)
	out := make([]jobj, 0, len(reqs))
	for _, br := range reqs {
		u := graphBase + "/" + strings.TrimPrefix(br.URL, "/")
		var rd *bytes.Reader
		if len(br.Body) > 0 {
			rd = bytes.NewReader(br.Body)
		} else {
			rd = bytes.NewReader(nil)
		}
		sub, err := http.NewRequestWithContext(ctx, strings.ToUpper(br.Method), u, rd)
		if err != nil {
			out = append(out, jobj{{"id", br.ID}, {"status", http.StatusBadRequest}, {"body", jobj{{"error", jobj{{"code", "BadRequest"}, {"message", "Invalid request: " + err.Error()}}}}}})
			continue
		}
		sub.Host = r.Host
		sub.TLS = r.TLS
		for k, v := range br.Headers {
			sub.Header.Set(k, v)
		}
		sub.Header.Set("Authorization", r.Header.Get("Authorization"))
		rec := httptest.NewRecorder()
		s.handler.ServeHTTP(rec, sub)
		headers := jobj{}
		for _, k := range []string{"Content-Type", "Retry-After", "Location", "request-id", "client-request-id"} {
			if v := rec.Header().Get(k); v != "" {
				headers = append(headers, field{k, v})
			}
		}
		item := jobj{{"id", br.ID}, {"status", rec.Code}, {"headers", headers}}
		if b := rec.Body.Bytes(); len(b) > 0 && json.Valid(b) {
			item = append(item, field{"body", json.RawMessage(b)})
		} else if len(b) > 0 {
			item = append(item, field{"body", string(b)})
		}
		out = append(out, item)
	}
	writeJSON(w, http.StatusOK, "application/json", jobj{{"responses", out}})
}
