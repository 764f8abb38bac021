package graphsim_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/seatledger/seatledger/internal/graphsim"
)

// sendEncoded sends body as JSON with the given Content-Encoding, gzipping
// it when encoding is "gzip"; raw, when not nil, is sent instead.
func sendEncoded(t *testing.T, s started, method, url, token, encoding string, body any, raw []byte) response {
	t.Helper()
	if raw == nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		raw = b
		if encoding == "gzip" {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			if _, err := zw.Write(b); err != nil {
				t.Fatal(err)
			}
			if err := zw.Close(); err != nil {
				t.Fatal(err)
			}
			raw = buf.Bytes()
		}
	}
	req, err := http.NewRequest(method, url, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", encoding)
	return do(t, s.hc, req)
}

// TestServer_GzipRequestBodies: Microsoft's Graph SDKs gzip request bodies
// by default; Graph, and so the simulator, accepts them on every write
// (POST, PATCH, $batch) and refuses an encoding it does not know with 415.
func TestServer_GzipRequestBodies(t *testing.T) {
	t.Parallel()
	s := start(t, graphsim.Options{})
	g := s.info.GraphURL
	write := s.token(t, "CloudLicensing.AssignLicenses.Organization", "CloudLicensing.Read.All")
	create := map[string]any{
		"allotment@odata.bind":   g + "/admin/cloudLicensing/allotments/" + demoExchange,
		"disabledServicePlanIds": []string{"9aaf7827-d63c-4b61-89c3-182f06f82e5c"},
	}
	r := sendEncoded(t, s, "POST", g+"/users/"+demoUser(29)+"/cloudLicensing/assignments", write, "gzip", create, nil)
	if r.status != http.StatusCreated {
		t.Fatalf("gzipped POST: %d %s", r.status, r.raw)
	}
	id := r.body["id"].(string)
	r = sendEncoded(t, s, "PATCH", g+"/admin/cloudLicensing/assignments/"+id, write, "gzip",
		map[string]any{"disabledServicePlanIds": []string{"9aaf7827-d63c-4b61-89c3-182f06f82e5c", "5e62787c-c316-451f-b873-1d05acd4d12c"}}, nil)
	if r.status != http.StatusOK || len(r.body["disabledServicePlanIds"].([]any)) != 2 {
		t.Errorf("gzipped PATCH: %d %s", r.status, r.raw)
	}
	batch := map[string]any{"requests": []map[string]any{
		{"id": "1", "method": "GET", "url": "/admin/cloudLicensing/assignments/" + id},
	}}
	r = sendEncoded(t, s, "POST", g+"/$batch", write, "gzip", batch, nil)
	if r.status != http.StatusOK {
		t.Fatalf("gzipped $batch: %d %s", r.status, r.raw)
	}
	if got := r.body["responses"].([]any)[0].(map[string]any)["status"]; got != float64(http.StatusOK) {
		t.Errorf("gzipped $batch: inner status %v, want 200 (%s)", got, r.raw)
	}

	// An encoding Graph does not know: 415; a body that is not the gzip it
	// claims: 400; neither changes anything.
	before := s.sim.Allotments()
	r = sendEncoded(t, s, "POST", g+"/users/"+demoUser(30)+"/cloudLicensing/assignments", write, "br", create, nil)
	wantGraphError(t, r, http.StatusUnsupportedMediaType, "UnsupportedMediaType")
	r = sendEncoded(t, s, "POST", g+"/users/"+demoUser(30)+"/cloudLicensing/assignments", write, "gzip", nil, []byte(`{"not":"gzip"}`))
	wantGraphError(t, r, http.StatusBadRequest, "badRequest")
	if after := s.sim.Allotments(); after[3].ConsumedUnits != before[3].ConsumedUnits {
		t.Errorf("a refused body changed consumedUnits %d → %d", before[3].ConsumedUnits, after[3].ConsumedUnits)
	}
}
