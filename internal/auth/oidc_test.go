package auth_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/seatledger/seatledger/internal/auth"
	"github.com/seatledger/seatledger/internal/graphsim"
)

const testAudience = "api://seatledger"

// startSim starts a simulator on 127.0.0.1:0 and stops it with the test.
func startSim(t testing.TB) (*graphsim.Server, graphsim.Info) {
	t.Helper()
	sim, err := graphsim.New(graphsim.Options{})
	if err != nil {
		t.Fatalf("graphsim.New: %v", err)
	}
	info, err := sim.Start("127.0.0.1:0")
	if err != nil {
		t.Fatalf("graphsim Start: %v", err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim, info
}

// countingTransport counts the requests whose path ends in suffix.
type countingTransport struct {
	next   http.RoundTripper
	suffix string
	n      atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, c.suffix) {
		c.n.Add(1)
	}
	return c.next.RoundTrip(r)
}

// testClock is a settable clock, starting at the real time.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *testClock { return &testClock{now: time.Now()} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type oidcFixture struct {
	sim   *graphsim.Server
	info  graphsim.Info
	oidc  *auth.OIDC
	jwks  *countingTransport
	clock *testClock
	logs  *syncBuffer
}

// newOIDC starts a simulator and an OIDC authenticator trusting it over a
// real HTTPS client that counts JWKS fetches.
func newOIDC(t *testing.T) oidcFixture {
	t.Helper()
	sim, info := startSim(t)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(info.CAPEM) {
		t.Fatal("CAPEM holds no certificate")
	}
	base := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(base.CloseIdleConnections)
	jwks := &countingTransport{next: base, suffix: "/keys"}
	clock := newClock()
	logs := &syncBuffer{}
	o, err := auth.NewOIDC(t.Context(), auth.OIDCConfig{
		Issuer:     info.IssuerURL,
		Audience:   []string{testAudience},
		HTTPClient: &http.Client{Transport: jwks},
		Now:        clock.Now,
		Logger:     slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatalf("NewOIDC: %v", err)
	}
	return oidcFixture{sim: sim, info: info, oidc: o, jwks: jwks, clock: clock, logs: logs}
}

func mint(t *testing.T, sim *graphsim.Server, ct graphsim.CallerToken) string {
	t.Helper()
	tok, err := sim.MintCallerToken(ct)
	if err != nil {
		t.Fatalf("MintCallerToken: %v", err)
	}
	return tok
}

// syncBuffer is a bytes.Buffer safe for concurrent writers (slog handlers
// write from every request's goroutine).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestOIDCValidToken(t *testing.T) {
	t.Parallel()
	f := newOIDC(t)
	tok := mint(t, f.sim, graphsim.CallerToken{
		Audience: testAudience, Caller: "hr-onboarding",
		Roles: []string{"writer", "Directory.Read.All", "reader", "writer"},
	})
	id, err := f.oidc.Authenticate(t.Context(), tok)
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	if id.Subject == "" {
		t.Error("Subject is empty; want the token's sub")
	}
	id.Subject = ""
	want := auth.Identity{Name: "hr-onboarding", Roles: []auth.Role{auth.RoleWriter, auth.RoleReader}, Source: "oidc"}
	if diff := cmp.Diff(want, id); diff != "" {
		t.Errorf("identity (-want +got):\n%s", diff)
	}
	if !id.Has(auth.RoleWriter) || id.Has(auth.RoleAdmin) {
		t.Errorf("Has: writer %v admin %v; want true false", id.Has(auth.RoleWriter), id.Has(auth.RoleAdmin))
	}
	if n := f.jwks.n.Load(); n != 1 {
		t.Errorf("JWKS fetched %d times; want 1 (at start, then cached)", n)
	}
}

func TestOIDCRejects(t *testing.T) {
	t.Parallel()
	f := newOIDC(t)
	valid := mint(t, f.sim, graphsim.CallerToken{Audience: testAudience, Caller: "svc", Roles: []string{"reader"}})
	parts := strings.Split(valid, ".")

	tamperedSig := []byte(parts[2])
	if tamperedSig[10] == 'A' {
		tamperedSig[10] = 'B'
	} else {
		tamperedSig[10] = 'A'
	}
	// A payload with more roles under the original signature.
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	claims["roles"] = []string{"admin"}
	forged, _ := json.Marshal(claims)

	tests := []struct {
		name, token, reason string
	}{
		{"empty", "", "no token"},
		{"not a jwt", "opaque-static-token", "token not recognized"},
		{"wrong audience", mint(t, f.sim, graphsim.CallerToken{Audience: "api://other", Caller: "svc", Roles: []string{"reader"}}), "token audience is not accepted"},
		{"expired", mint(t, f.sim, graphsim.CallerToken{Audience: testAudience, Caller: "svc", Lifetime: -time.Hour}), "token has expired"},
		{"tampered signature", parts[0] + "." + parts[1] + "." + string(tamperedSig), "token signature is invalid"},
		{"tampered payload", parts[0] + "." + base64.RawURLEncoding.EncodeToString(forged) + "." + parts[2], "token signature is invalid"},
		{"alg none", handMade(t, map[string]any{"alg": "none", "kid": kidOf(t, valid)}, claims, ""), "token signature algorithm is not accepted"},
		{"alg HS256", handMade(t, map[string]any{"alg": "HS256", "kid": kidOf(t, valid)}, claims, "c2lnbmF0dXJl"), "token signature algorithm is not accepted"},
		{"ES256 with an RSA key", handMade(t, map[string]any{"alg": "ES256", "kid": kidOf(t, valid)}, claims, base64.RawURLEncoding.EncodeToString(make([]byte, 64))), "token signature is invalid"},
		{"crit header", handMade(t, map[string]any{"alg": "RS256", "kid": kidOf(t, valid), "crit": []string{"exp"}}, claims, parts[2]), "token uses critical header extensions"},
		{"no kid", handMade(t, map[string]any{"alg": "RS256"}, claims, parts[2]), "token header has no key id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := f.oidc.Authenticate(context.Background(), tt.token)
			if !errors.Is(err, auth.ErrUnauthenticated) {
				t.Fatalf("Authenticate: %v; want ErrUnauthenticated", err)
			}
			if want := "unauthenticated: " + tt.reason; err.Error() != want {
				t.Errorf("error %q; want %q", err, want)
			}
			if tt.token != "" && strings.Contains(err.Error(), tt.token) {
				t.Errorf("error %q echoes the token", err)
			}
		})
	}
}

// TestOIDCWrongIssuerKey presents tokens signed by another simulator (an
// unknown kid): the first triggers one JWKS refetch and is still refused;
// a storm of them within the refetch interval fetches nothing more; once the
// interval has passed, a concurrent storm fetches exactly once.
func TestOIDCWrongIssuerKey(t *testing.T) {
	t.Parallel()
	f := newOIDC(t)
	other, _ := startSim(t)
	foreign := mint(t, other, graphsim.CallerToken{Audience: testAudience, Caller: "intruder", Roles: []string{"admin"}})

	check := func(wantFetches int64) {
		t.Helper()
		_, err := f.oidc.Authenticate(t.Context(), foreign)
		if !errors.Is(err, auth.ErrUnauthenticated) || !strings.Contains(err.Error(), "token signing key is unknown") {
			t.Errorf("Authenticate(foreign token): %v; want token signing key is unknown", err)
		}
		if n := f.jwks.n.Load(); n != wantFetches {
			t.Errorf("JWKS fetched %d times; want %d", n, wantFetches)
		}
	}
	// NewOIDC fetched at "now": the interval has not passed yet.
	check(1)
	f.clock.Advance(31 * time.Second)
	check(2)
	for range 5 {
		check(2)
	}

	f.clock.Advance(31 * time.Second)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := f.oidc.Authenticate(t.Context(), foreign); !errors.Is(err, auth.ErrUnauthenticated) {
				t.Errorf("Authenticate(foreign token): %v; want ErrUnauthenticated", err)
			}
		})
	}
	wg.Wait()
	if n := f.jwks.n.Load(); n != 3 {
		t.Errorf("after a storm of 20: JWKS fetched %d times; want 3", n)
	}

	// The genuine issuer's tokens still pass, from the cache.
	tok := mint(t, f.sim, graphsim.CallerToken{Audience: testAudience, Caller: "svc", Roles: []string{"reader"}})
	if _, err := f.oidc.Authenticate(t.Context(), tok); err != nil {
		t.Errorf("Authenticate(genuine token): %v", err)
	}
	if n := f.jwks.n.Load(); n != 3 {
		t.Errorf("JWKS fetched %d times; want 3", n)
	}
	if s := f.logs.String(); strings.Contains(s, foreign) {
		t.Errorf("logs contain the token:\n%s", s)
	}
}

func TestNewOIDCConfigErrors(t *testing.T) {
	t.Parallel()
	_, info := startSim(t)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(info.CAPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	tests := []struct {
		name string
		cfg  auth.OIDCConfig
		want string
	}{
		{"http issuer", auth.OIDCConfig{Issuer: "http://example.invalid/x", Audience: []string{"a"}}, "not an https URL"},
		{"no audience", auth.OIDCConfig{Issuer: info.IssuerURL}, "audience"},
		{"issuer mismatch", auth.OIDCConfig{Issuer: info.IssuerURL + "/", Audience: []string{"a"}, HTTPClient: client}, "discovery document names issuer"},
		{"untrusted CA", auth.OIDCConfig{Issuer: info.IssuerURL, Audience: []string{"a"}}, "certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := auth.NewOIDC(t.Context(), tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewOIDC: %v; want an error containing %q", err, tt.want)
			}
		})
	}
}

// handMade builds a token from a header, claims and an already-encoded
// signature.
func handMade(t *testing.T, header, claims map[string]any, sig string) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "." + sig
}

func kidOf(t *testing.T, token string) string {
	t.Helper()
	h, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var hdr struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(h, &hdr); err != nil {
		t.Fatal(err)
	}
	return hdr.Kid
}

// TestOIDCVerifiedTokenStillExpires: a token that passed is remembered, yet
// it is refused once it expires, and what one caller does with its
// Identity does not leak into the next call's.
func TestOIDCVerifiedTokenStillExpires(t *testing.T) {
	t.Parallel()
	f := newOIDC(t)
	tok := mint(t, f.sim, graphsim.CallerToken{Audience: testAudience, Caller: "svc", Roles: []string{"reader", "writer"},
		Lifetime: 10 * time.Minute})
	first, err := f.oidc.Authenticate(t.Context(), tok)
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	first.Roles[0] = auth.RoleAdmin
	again, err := f.oidc.Authenticate(t.Context(), tok)
	if err != nil {
		t.Fatalf("Authenticate again: %v", err)
	}
	if want := []auth.Role{auth.RoleReader, auth.RoleWriter}; !slices.Equal(again.Roles, want) {
		t.Errorf("roles on the second call %v; want %v", again.Roles, want)
	}
	// Past expiry plus the two minutes of leeway.
	f.clock.Advance(13 * time.Minute)
	if _, err := f.oidc.Authenticate(t.Context(), tok); !errors.Is(err, auth.ErrUnauthenticated) ||
		!strings.Contains(err.Error(), "token has expired") {
		t.Errorf("Authenticate after expiry: %v; want token has expired", err)
	}
}

// BenchmarkOIDCAuthenticate measures what each call pays to authenticate a
// caller that presents the same token again (the common case).
func BenchmarkOIDCAuthenticate(b *testing.B) {
	sim, info := startSim(b)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(info.CAPEM)
	o, err := auth.NewOIDC(b.Context(), auth.OIDCConfig{Issuer: info.IssuerURL, Audience: []string{testAudience},
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}})
	if err != nil {
		b.Fatal(err)
	}
	tok, err := sim.MintCallerToken(graphsim.CallerToken{Audience: testAudience, Caller: "svc", Roles: []string{"reader"}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := o.Authenticate(b.Context(), tok); err != nil {
			b.Fatal(err)
		}
	}
}
