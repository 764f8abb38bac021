package auth_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/seatledger/seatledger/internal/auth"
)

// The simulator signs with RS256 only. These tests stand up a minimal
// issuer over real HTTPS (discovery document and JWKS) to cover ES256 keys
// and JWKS contents the simulator never serves.

func startIssuer(t *testing.T, keys ...map[string]any) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": srv.URL, "jwks_uri": srv.URL + "/keys"})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"keys": keys})
	})
	return srv
}

func ecJWK(kid, alg string, pub *ecdsa.PublicKey) map[string]any {
	b, err := pub.Bytes() // 0x04 || X || Y
	if err != nil {
		panic(err)
	}
	k := map[string]any{"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
		"x": base64.RawURLEncoding.EncodeToString(b[1:33]), "y": base64.RawURLEncoding.EncodeToString(b[33:])}
	if alg != "" {
		k["alg"] = alg
	}
	return k
}

func signES256(t *testing.T, key *ecdsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	h, _ := json.Marshal(map[string]string{"alg": "ES256", "typ": "JWT", "kid": kid})
	c, _ := json.Marshal(claims)
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	digest := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestOIDCES256(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srv := startIssuer(t, ecJWK("ec-1", "ES256", &key.PublicKey), ecJWK("ec-rs", "RS256", &key.PublicKey))
	o, err := auth.NewOIDC(t.Context(), auth.OIDCConfig{Issuer: srv.URL, Audience: []string{"aud-1", testAudience}, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatalf("NewOIDC: %v", err)
	}
	now := time.Now().Unix()
	claims := map[string]any{"iss": srv.URL, "aud": []string{"other", testAudience}, "sub": "s-1",
		"appid": "app-1", "exp": now + 60, "nbf": now, "roles": []string{"finance"}}
	id, err := o.Authenticate(t.Context(), signES256(t, key, "ec-1", claims))
	if err != nil {
		t.Fatalf("Authenticate(ES256): %v", err)
	}
	if id.Subject != "s-1" || id.Name != "app-1" || !id.Has(auth.RoleFinance) || len(id.Roles) != 1 {
		t.Errorf("identity %+v; want subject s-1, name app-1 (from appid), roles [finance]", id)
	}

	// The actor's name: a person's "name", else an app-only token's
	// "app_displayname", beside the application's id.
	for _, tc := range []struct {
		claims map[string]any
		want   string
	}{
		{map[string]any{"name": "Ada Lindqvist", "azp": "app-2"}, "Ada Lindqvist (app-2)"},
		{map[string]any{"app_displayname": "HR onboarding", "appid": "app-3"}, "HR onboarding (app-3)"},
		{map[string]any{"name": "app-4", "azp": "app-4"}, "app-4"},
	} {
		c := map[string]any{"iss": srv.URL, "aud": testAudience, "sub": "s-2", "exp": now + 60, "nbf": now, "roles": []string{"reader"}}
		maps.Copy(c, tc.claims)
		id, err := o.Authenticate(t.Context(), signES256(t, key, "ec-1", c))
		if err != nil || id.Name != tc.want {
			t.Errorf("Authenticate(%v): name %q, %v; want %q", tc.claims, id.Name, err, tc.want)
		}
	}

	for name, tc := range map[string]struct {
		kid    string
		edit   func(map[string]any)
		reason string
	}{
		"key declares another alg": {"ec-rs", func(map[string]any) {}, "token signature algorithm does not match its key"},
		"wrong issuer":             {"ec-1", func(c map[string]any) { c["iss"] = srv.URL + "/other" }, "token issuer is not accepted"},
		"not valid yet":            {"ec-1", func(c map[string]any) { c["nbf"] = now + 600 }, "token is not valid yet"},
		"no expiry":                {"ec-1", func(c map[string]any) { delete(c, "exp") }, "token has no expiry"},
		"no subject":               {"ec-1", func(c map[string]any) { delete(c, "sub") }, "token has no subject"},
	} {
		c := map[string]any{}
		for k, v := range claims {
			c[k] = v
		}
		tc.edit(c)
		_, err := o.Authenticate(t.Context(), signES256(t, key, tc.kid, c))
		if !errors.Is(err, auth.ErrUnauthenticated) || err.Error() != "unauthenticated: "+tc.reason {
			t.Errorf("%s: %v; want %q", name, err, tc.reason)
		}
	}

	// Within the leeway, an expired or not-yet-valid token still passes.
	claims["exp"], claims["nbf"] = now-60, now+60
	if _, err := o.Authenticate(t.Context(), signES256(t, key, "ec-1", claims)); err != nil {
		t.Errorf("Authenticate within the leeway: %v", err)
	}
}

func TestOIDCUnusableKeys(t *testing.T) {
	t.Parallel()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	unusable := []map[string]any{
		{"kty": "RSA", "kid": "small", "n": base64.RawURLEncoding.EncodeToString(small.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(small.E)).Bytes())},
		func() map[string]any { k := ecJWK("enc", "", &ec.PublicKey); k["use"] = "enc"; return k }(),
		{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
	}
	srv := startIssuer(t, unusable...)
	_, err = auth.NewOIDC(t.Context(), auth.OIDCConfig{Issuer: srv.URL, Audience: []string{testAudience}, HTTPClient: srv.Client()})
	if err == nil || !strings.Contains(err.Error(), "no usable signing key") {
		t.Errorf("NewOIDC: %v; want no usable signing key", err)
	}

	// Beside a usable key, the unusable ones are simply unknown.
	srv = startIssuer(t, append(unusable, ecJWK("good", "", &ec.PublicKey))...)
	o, err := auth.NewOIDC(t.Context(), auth.OIDCConfig{Issuer: srv.URL, Audience: []string{testAudience}, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatalf("NewOIDC: %v", err)
	}
	claims := map[string]any{"iss": srv.URL, "aud": testAudience, "sub": "s", "exp": time.Now().Unix() + 60}
	for _, kid := range []string{"small", "enc", "hmac"} {
		h, _ := json.Marshal(map[string]string{"alg": "RS256", "kid": kid})
		c, _ := json.Marshal(claims)
		tok := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + ".c2ln"
		if _, err := o.Authenticate(t.Context(), tok); err == nil || err.Error() != "unauthenticated: token signing key is unknown" {
			t.Errorf("token naming key %s: %v; want token signing key is unknown", kid, err)
		}
	}
	if _, err := o.Authenticate(t.Context(), signES256(t, ec, "good", claims)); err != nil {
		t.Errorf("token naming the good key: %v", err)
	}
}
