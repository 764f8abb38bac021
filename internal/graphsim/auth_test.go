package graphsim_test

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seatledger/seatledger/internal/graphsim"
)

func TestServer_Unauthenticated(t *testing.T) {
	t.Parallel()
	s := start(t, graphsim.Options{})
	other := start(t, graphsim.Options{}) // same tenant, different signing key
	foreign, err := other.sim.MintToken([]string{"CloudLicensing.Read.All"})
	if err != nil {
		t.Fatal(err)
	}
	good := s.token(t, "CloudLicensing.Read.All")
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"aud":"https://graph.microsoft.com","roles":["Directory.ReadWrite.All"]}`)) + "." + parts[2]

	tests := []struct {
		name   string
		header string
	}{
		{"no header", ""},
		{"not bearer", "Basic dXNlcjpwYXNz"},
		{"empty bearer", "Bearer "},
		{"garbage", "Bearer not-a-jwt"},
		{"signed by another authority", "Bearer " + foreign},
		{"tampered claims", "Bearer " + tampered},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r response
			if tt.header == "" {
				r = get(t, s.hc, allotmentsURL(s.info, ""), "")
			} else {
				r = get(t, s.hc, allotmentsURL(s.info, ""), "", "Authorization", tt.header)
			}
			wantGraphError(t, r, http.StatusUnauthorized, "InvalidAuthenticationToken")
			if r.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	// Authentication comes before routing, as in Graph.
	r := get(t, s.hc, s.info.GraphURL+"/no/such/path", "")
	wantGraphError(t, r, http.StatusUnauthorized, "InvalidAuthenticationToken")
}

// clock is a settable time source for Options.Clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestServer_TokenLifetime(t *testing.T) {
	t.Parallel()
	c := &clock{now: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)}
	s := start(t, graphsim.Options{Clock: c.Now})
	tok := s.token(t, "CloudLicensing.Read.All")

	if r := get(t, s.hc, allotmentsURL(s.info, ""), tok); r.status != http.StatusOK {
		t.Fatalf("fresh token: status %d: %s", r.status, r.raw)
	}
	c.Add(time.Hour + 4*time.Minute) // inside the five-minute skew
	if r := get(t, s.hc, allotmentsURL(s.info, ""), tok); r.status != http.StatusOK {
		t.Fatalf("token within skew: status %d: %s", r.status, r.raw)
	}
	c.Add(2 * time.Minute)
	r := get(t, s.hc, allotmentsURL(s.info, ""), tok)
	wantGraphError(t, r, http.StatusUnauthorized, "InvalidAuthenticationToken")
	if msg := r.body["error"].(map[string]any)["message"].(string); !strings.Contains(msg, "expired") {
		t.Errorf("message = %q, want it to say the token expired", msg)
	}
}

func TestServer_Forbidden(t *testing.T) {
	t.Parallel()
	s := start(t, graphsim.Options{})
	id := s.sim.Allotments()[0].ID
	tests := []struct {
		roles []string
		want  int
	}{
		{nil, http.StatusForbidden},
		{[]string{"User.Read.All", "CloudLicensing.Read"}, http.StatusForbidden}, // delegated name, not the app role
		{[]string{"CloudLicensing.Read.All"}, http.StatusOK},
		{[]string{"Directory.Read.All"}, http.StatusOK},
		{[]string{"Directory.ReadWrite.All"}, http.StatusOK},
	}
	for _, tt := range tests {
		tok := s.token(t, tt.roles...)
		for _, url := range []string{allotmentsURL(s.info, ""), s.info.GraphURL + "/admin/cloudLicensing/allotments/" + id} {
			r := get(t, s.hc, url, tok)
			if tt.want == http.StatusForbidden {
				wantGraphError(t, r, http.StatusForbidden, "Authorization_RequestDenied")
			} else if r.status != tt.want {
				t.Errorf("roles %v: GET %s = %d, want %d", tt.roles, url, r.status, tt.want)
			}
		}
	}
}

func TestAuthority_DiscoveryAndKeys(t *testing.T) {
	t.Parallel()
	s := start(t, graphsim.Options{})
	authority := strings.TrimSuffix(s.info.AuthorityURL, "/")
	tenantURL := authority + "/" + s.info.TenantID

	// MSAL lower-cases the authority, tenant included.
	r := get(t, s.hc, authority+"/"+strings.ToUpper(s.info.TenantID)+"/v2.0/.well-known/openid-configuration", "")
	if r.status != http.StatusOK {
		t.Fatalf("discovery: %d %s", r.status, r.raw)
	}
	for k, want := range map[string]string{
		"issuer":                 tenantURL + "/v2.0",
		"token_endpoint":         tenantURL + "/oauth2/v2.0/token",
		"authorization_endpoint": tenantURL + "/oauth2/v2.0/authorize",
		"jwks_uri":               tenantURL + "/discovery/v2.0/keys",
	} {
		if r.body[k] != want {
			t.Errorf("discovery %s = %v, want %s", k, r.body[k], want)
		}
	}
	if r.header.Get("request-id") == "" {
		t.Error("discovery answer has no request-id")
	}

	r = get(t, s.hc, authority+"/11111111-2222-3333-4444-555555555555/v2.0/.well-known/openid-configuration", "")
	if r.status != http.StatusBadRequest || r.body["error"] != "invalid_tenant" {
		t.Errorf("unknown tenant: %d %s", r.status, r.raw)
	}

	// A token verifies against the published key with nothing but the
	// standard library: the JWT is standard RS256.
	keys := get(t, s.hc, tenantURL+"/discovery/v2.0/keys", "")
	tok := s.token(t, "CloudLicensing.Read.All")
	parts := strings.Split(tok, ".")
	var header struct{ Alg, Kid string }
	mustDecodeSegment(t, parts[0], &header)
	var pub *rsa.PublicKey
	for _, k := range keys.body["keys"].([]any) {
		k := k.(map[string]any)
		if k["kid"] == header.Kid && k["kty"] == "RSA" {
			n, _ := base64.RawURLEncoding.DecodeString(k["n"].(string))
			e, _ := base64.RawURLEncoding.DecodeString(k["e"].(string))
			pub = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		}
	}
	if header.Alg != "RS256" || pub == nil {
		t.Fatalf("token header %+v: no matching RS256 key in %s", header, keys.raw)
	}
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
		t.Errorf("token does not verify with the published key: %v", err)
	}
	var c struct {
		Aud, Iss, Tid, Appid string
		Roles                []string
		Iat, Nbf, Exp        int64
	}
	mustDecodeSegment(t, parts[1], &c)
	if c.Aud != "https://graph.microsoft.com" || c.Tid != s.info.TenantID || c.Appid != s.info.ClientID ||
		c.Iss != "https://sts.windows.net/"+s.info.TenantID+"/" || c.Exp-c.Iat != 3600 || c.Nbf != c.Iat ||
		len(c.Roles) != 1 || c.Roles[0] != "CloudLicensing.Read.All" {
		t.Errorf("claims = %+v", c)
	}
}

func mustDecodeSegment(t *testing.T, seg string, v any) {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatalf("decode JWT segment: %v", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode JWT segment: %v", err)
	}
}

func TestAuthority_Token(t *testing.T) {
	t.Parallel()
	reader := graphsim.App{ClientID: "aaaa0000-0000-4000-8000-00000000000a", ClientSecret: "s3cret", Roles: []string{"CloudLicensing.Read.All"}}
	nobody := graphsim.App{ClientID: "bbbb0000-0000-4000-8000-00000000000b", ClientSecret: "other"}
	tenant := graphsim.DemoTenant()
	tenant.Apps = []graphsim.App{reader, nobody}
	s := start(t, graphsim.Options{Tenant: &tenant})
	tokenURL := s.info.AuthorityURL + s.info.TenantID + "/oauth2/v2.0/token"

	post := func(form url.Values) response {
		req, err := http.NewRequest(http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		req.Header.Set("client-request-id", "c0ffee00-0000-4000-8000-000000000001")
		return do(t, s.hc, req)
	}
	form := func(clientID, secret, scope string) url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret},
			"scope": {scope}}
	}
	const scope = "https://graph.microsoft.com/.default openid offline_access profile" // what MSAL sends

	if s.info.ClientID != reader.ClientID || s.info.ClientSecret != reader.ClientSecret {
		t.Errorf("Info names app %q, want the first registered app", s.info.ClientID)
	}

	r := post(form(reader.ClientID, reader.ClientSecret, scope))
	if r.status != http.StatusOK || r.body["token_type"] != "Bearer" || r.body["expires_in"] != float64(3600) {
		t.Fatalf("token: %d %s", r.status, r.raw)
	}
	if g := get(t, s.hc, allotmentsURL(s.info, ""), r.body["access_token"].(string)); g.status != http.StatusOK {
		t.Errorf("GET with the issued token: %d %s", g.status, g.raw)
	}

	// The app without roles gets a token, and Graph refuses it.
	r = post(form(nobody.ClientID, nobody.ClientSecret, scope))
	if r.status != http.StatusOK {
		t.Fatalf("token for app without roles: %d %s", r.status, r.raw)
	}
	wantGraphError(t, get(t, s.hc, allotmentsURL(s.info, ""), r.body["access_token"].(string)),
		http.StatusForbidden, "Authorization_RequestDenied")

	tests := []struct {
		name      string
		form      url.Values
		status    int
		code      string
		aadstsPfx string
	}{
		{"wrong secret", form(reader.ClientID, "wrong", scope), 401, "invalid_client", "AADSTS7000215:"},
		{"another app's secret", form(reader.ClientID, nobody.ClientSecret, scope), 401, "invalid_client", "AADSTS7000215:"},
		{"no secret", form(reader.ClientID, "", scope), 401, "invalid_client", "AADSTS7000218:"},
		{"unknown client", form("dddd0000-0000-4000-8000-00000000000d", "x", scope), 400, "unauthorized_client", "AADSTS700016:"},
		{"scope without .default", form(reader.ClientID, reader.ClientSecret, "https://graph.microsoft.com/User.Read"), 400, "invalid_scope", "AADSTS1002012:"},
		{"other resource", form(reader.ClientID, reader.ClientSecret, "https://management.azure.com/.default"), 400, "invalid_resource", "AADSTS500011:"},
		{"other grant", url.Values{"grant_type": {"password"}, "client_id": {reader.ClientID}}, 400, "unsupported_grant_type", "AADSTS70003:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := post(tt.form)
			if r.status != tt.status || r.body["error"] != tt.code {
				t.Fatalf("got %d %v, want %d %s: %s", r.status, r.body["error"], tt.status, tt.code, r.raw)
			}
			if d, _ := r.body["error_description"].(string); !strings.HasPrefix(d, tt.aadstsPfx) {
				t.Errorf("error_description = %q, want prefix %s", d, tt.aadstsPfx)
			}
			if r.body["correlation_id"] != "c0ffee00-0000-4000-8000-000000000001" {
				t.Errorf("correlation_id = %v, want the client-request-id", r.body["correlation_id"])
			}
			if strings.Contains(string(r.raw), reader.ClientSecret) {
				t.Error("the error repeats the client secret")
			}
		})
	}
}
