package graphsim_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/seatledger/seatledger/internal/graphsim"
)

// TestAdmin_Tokens: POST /_sim/tokens mints a caller token for another
// API, issued by the simulator's authority with the roles asked for.
func TestAdmin_Tokens(t *testing.T) {
	t.Parallel()
	s := start(t, graphsim.Options{})
	req, err := http.NewRequest(http.MethodPost, s.info.AdminURL+"/tokens",
		strings.NewReader(`{"audience": "api://seatledger", "caller": "hr-onboarding", "roles": ["writer"]}`))
	if err != nil {
		t.Fatal(err)
	}
	r := do(t, s.hc, req)
	tok, _ := r.body["access_token"].(string)
	if r.status != http.StatusOK || strings.Count(tok, ".") != 2 {
		t.Fatalf("POST /_sim/tokens = %d %s, want a JWT", r.status, r.raw)
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Aud, Iss, Azp string
		Roles         []string
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	if c.Aud != "api://seatledger" || c.Iss != s.info.IssuerURL || c.Azp != "hr-onboarding" || !slices.Equal(c.Roles, []string{"writer"}) {
		t.Errorf("token claims = %+v, want aud api://seatledger, iss %s, azp hr-onboarding, roles [writer]", c, s.info.IssuerURL)
	}

	bad, err := http.NewRequest(http.MethodPost, s.info.AdminURL+"/tokens", strings.NewReader(`{"roles": ["writer"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if r := do(t, s.hc, bad); r.status != http.StatusBadRequest {
		t.Errorf("POST /_sim/tokens without audience = %d %s, want 400", r.status, r.raw)
	}
}
