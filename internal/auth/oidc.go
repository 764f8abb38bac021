package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// OIDCConfig configures an OIDC authenticator.
type OIDCConfig struct {
	// Issuer is the OpenID Connect issuer, e.g.
	// https://login.microsoftonline.com/{tenant}/v2.0. Tokens' "iss" and the
	// discovery document's "issuer" must equal it exactly. It must be https.
	Issuer string
	// Audience lists the accepted "aud" values (the API's application id URI
	// and/or client id); at least one is required.
	Audience []string
	// HTTPClient fetches the discovery document and the JWKS; nil means
	// http.DefaultClient. Each fetch has its own 10-second deadline.
	HTTPClient *http.Client
	// Leeway is the clock skew tolerated on exp and nbf; 0 means 2 minutes.
	Leeway time.Duration
	// Now is the current time; nil means time.Now.
	Now func() time.Time
	// Logger receives key-fetch failures; nil discards.
	Logger *slog.Logger
}

// OIDC authenticates JWT access tokens from an OpenID Connect issuer. It is
// safe for concurrent use.
type OIDC struct {
	issuer   string
	audience []string
	client   *http.Client
	leeway   time.Duration
	now      func() time.Time
	log      *slog.Logger
	jwksURI  string

	keys atomic.Pointer[keySet] // replaced whole on each successful fetch

	verified verifiedCache // tokens whose signature and claims were checked

	refreshMu sync.Mutex // serializes JWKS refetches; guards lastFetch
	lastFetch time.Time
}

// keySet maps kid to public key (*rsa.PublicKey or *ecdsa.PublicKey).
type keySet map[string]jwkKey

type jwkKey struct {
	alg string // the JWK's "alg", or "" when it names none
	pub crypto.PublicKey
}

const (
	defaultLeeway = 2 * time.Minute
	// minRefetch bounds JWKS refetches triggered by unknown key ids, so a
	// storm of tokens with made-up kids cannot hammer the issuer.
	minRefetch   = 30 * time.Second
	fetchTimeout = 10 * time.Second
	maxDocSize   = 1 << 20
	minRSABits   = 2048
)

// NewOIDC fetches the issuer's discovery document
// ({Issuer}/.well-known/openid-configuration), checks that its "issuer"
// equals cfg.Issuer, then fetches and caches the keys at its "jwks_uri". It
// fails when the configuration is invalid or either fetch fails.
//
// Keys are refetched when a token names an unknown kid (key rotation), at
// most once per 30 seconds; concurrent refetches collapse into one. A failed
// refetch keeps the cached keys.
func NewOIDC(ctx context.Context, cfg OIDCConfig) (*OIDC, error) {
	if err := checkHTTPS("issuer", cfg.Issuer); err != nil {
		return nil, err
	}
	if len(cfg.Audience) == 0 || slices.Contains(cfg.Audience, "") {
		return nil, errors.New("oidc: audience must list at least one non-empty value")
	}
	if cfg.Leeway < 0 {
		return nil, fmt.Errorf("oidc: leeway %v is negative", cfg.Leeway)
	}
	o := &OIDC{
		issuer:   cfg.Issuer,
		audience: slices.Clone(cfg.Audience),
		client:   cfg.HTTPClient,
		leeway:   cfg.Leeway,
		now:      cfg.Now,
		log:      cfg.Logger,
	}
	if o.client == nil {
		o.client = http.DefaultClient
	}
	if o.leeway == 0 {
		o.leeway = defaultLeeway
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}

	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	discovery := strings.TrimSuffix(cfg.Issuer, "/") + "/.well-known/openid-configuration"
	if err := o.getJSON(ctx, discovery, &doc); err != nil {
		return nil, fmt.Errorf("fetch openid configuration: %w", err)
	}
	if doc.Issuer != cfg.Issuer {
		return nil, fmt.Errorf("oidc: discovery document names issuer %q, want %q", doc.Issuer, cfg.Issuer)
	}
	if err := checkHTTPS("jwks_uri", doc.JWKSURI); err != nil {
		return nil, err
	}
	o.jwksURI = doc.JWKSURI

	o.lastFetch = o.now()
	ks, err := o.fetchKeys(ctx)
	if err != nil {
		return nil, err
	}
	o.keys.Store(&ks)
	return o, nil
}

func checkHTTPS(what, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("oidc: %s %q is not an https URL", what, raw)
	}
	return nil
}

// Authenticate verifies bearer as a JWT from the issuer: algorithm (RS256 or
// ES256), signature, iss, aud, exp and nbf (with leeway). The Identity's
// Subject is "sub"; its Name is "name" (else Entra's "app_displayname" of
// an app-only token) and "azp" (else "appid") as "name (azp)", or
// whichever of them is present; its roles
// are the known ones in "roles". A bearer that is not a JWT at all is
// refused as "token not recognized".
//
// A token that passed is remembered (by its SHA-256, never the token) with
// what was verified, so that the caller's next calls skip the signature
// check, the costliest part of a read: the time claims are checked again
// on every call, and a token signed by a key the issuer no longer
// publishes is refused as soon as the key set is refetched without it.
func (o *OIDC) Authenticate(ctx context.Context, bearer string) (Identity, error) {
	if bearer == "" {
		return Identity{}, unauthenticated("no token")
	}
	if len(bearer) > maxTokenLen {
		return Identity{}, unauthenticated("token is too large")
	}
	sum := sha256.Sum256([]byte(bearer))
	keys := o.keys.Load()
	if v, ok := o.verified.get(sum); ok && v.keys == keys {
		if err := o.checkTimes(v.exp, v.nbf); err != nil {
			return Identity{}, err
		}
		return v.id.clone(), nil
	}
	t, err := parseJWS(bearer)
	if err != nil {
		return Identity{}, err
	}
	if err := t.checkHeader(); err != nil {
		return Identity{}, err
	}
	k, ok := o.key(ctx, t.header.Kid)
	if !ok {
		return Identity{}, unauthenticated("token signing key is unknown")
	}
	if k.alg != "" && k.alg != t.header.Alg {
		return Identity{}, unauthenticated("token signature algorithm does not match its key")
	}
	if err := t.verify(k.pub); err != nil {
		return Identity{}, err
	}
	var c jwtClaims
	if err := json.Unmarshal(t.payload, &c); err != nil {
		return Identity{}, unauthenticated("token claims are malformed")
	}
	if err := o.checkClaims(c); err != nil {
		return Identity{}, err
	}
	id := Identity{Subject: c.Sub, Name: c.Name, Source: SourceOIDC}
	if id.Name == "" {
		id.Name = c.AppDisplayName // an app-only token names its application here
	}
	app := c.Azp
	if app == "" {
		app = c.AppID
	}
	switch {
	case id.Name == "":
		id.Name = app
	case app != "" && app != id.Name:
		id.Name += " (" + app + ")"
	}
	for _, r := range c.Roles {
		// Entra may grant roles other services define; they mean nothing here.
		if role := Role(r); role.Known() && !id.Has(role) {
			id.Roles = append(id.Roles, role)
		}
	}
	if set := o.keys.Load(); (*set)[t.header.Kid] == k {
		// Remember it under the key set that holds its key: a refetch
		// replaces the set, and the next call checks the token afresh.
		o.verified.put(sum, verifiedToken{id: id.clone(), exp: *c.Exp, nbf: c.Nbf, keys: set})
	}
	return id, nil
}

func (o *OIDC) checkClaims(c jwtClaims) error {
	if c.Iss != o.issuer {
		return unauthenticated("token issuer is not accepted")
	}
	if !slices.ContainsFunc(c.Aud, func(a string) bool { return slices.Contains(o.audience, a) }) {
		return unauthenticated("token audience is not accepted")
	}
	if c.Exp == nil {
		return unauthenticated("token has no expiry")
	}
	if err := o.checkTimes(*c.Exp, c.Nbf); err != nil {
		return err
	}
	if c.Sub == "" {
		return unauthenticated("token has no subject")
	}
	return nil
}

// checkTimes checks exp and nbf (nil: none) against now, with leeway.
func (o *OIDC) checkTimes(exp numericDate, nbf *numericDate) error {
	// Compare in float seconds: any NumericDate, however far out, compares
	// without overflow.
	now := float64(o.now().UnixNano()) / 1e9
	leeway := o.leeway.Seconds()
	if now > float64(exp)+leeway {
		return unauthenticated("token has expired")
	}
	if nbf != nil && now+leeway < float64(*nbf) {
		return unauthenticated("token is not valid yet")
	}
	return nil
}

// key returns the key named kid, refetching the JWKS once if it is unknown
// and the last fetch is at least minRefetch old. Callers that find the key
// cached never wait; those that miss queue behind one refetch.
func (o *OIDC) key(ctx context.Context, kid string) (jwkKey, bool) {
	if k, ok := (*o.keys.Load())[kid]; ok {
		return k, true
	}
	o.refreshMu.Lock()
	defer o.refreshMu.Unlock()
	// Another caller may have refetched while this one waited.
	if k, ok := (*o.keys.Load())[kid]; ok {
		return k, true
	}
	now := o.now()
	if now.Sub(o.lastFetch) < minRefetch {
		return jwkKey{}, false
	}
	o.lastFetch = now
	// The refetch serves every waiting caller: do not let this caller's
	// cancellation cut it short.
	ks, err := o.fetchKeys(context.WithoutCancel(ctx))
	if err != nil {
		o.log.ErrorContext(ctx, "refetch oidc signing keys", "issuer", o.issuer, "err", err)
		return jwkKey{}, false
	}
	o.keys.Store(&ks)
	k, ok := ks[kid]
	return k, ok
}

// fetchKeys reads the JWKS. Keys it cannot use (other types or curves, RSA
// shorter than 2048 bits, "use" other than "sig", no kid) are skipped; a set
// with no usable key is an error.
func (o *OIDC) fetchKeys(ctx context.Context) (keySet, error) {
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
			Use string `json:"use"`
			Alg string `json:"alg"`
			Kid string `json:"kid"`
			N   string `json:"n"`
			E   string `json:"e"`
			Crv string `json:"crv"`
			X   string `json:"x"`
			Y   string `json:"y"`
		} `json:"keys"`
	}
	if err := o.getJSON(ctx, o.jwksURI, &set); err != nil {
		return nil, fmt.Errorf("fetch jwks: %w", err)
	}
	ks := keySet{}
	for _, k := range set.Keys {
		if k.Kid == "" || (k.Use != "" && k.Use != "sig") {
			continue
		}
		// Assign only non-nil pointers: a nil *rsa.PublicKey in a
		// crypto.PublicKey would not compare equal to nil.
		switch k.Kty {
		case "RSA":
			if pub := rsaKey(k.N, k.E); pub != nil {
				ks[k.Kid] = jwkKey{alg: k.Alg, pub: pub}
			}
		case "EC":
			if pub := ecKey(k.X, k.Y); pub != nil && k.Crv == "P-256" {
				ks[k.Kid] = jwkKey{alg: k.Alg, pub: pub}
			}
		}
	}
	if len(ks) == 0 {
		return nil, errors.New("jwks holds no usable signing key")
	}
	return ks, nil
}

func rsaKey(n, e string) *rsa.PublicKey {
	nb, err1 := b64.DecodeString(n)
	eb, err2 := b64.DecodeString(e)
	if err1 != nil || err2 != nil || len(eb) == 0 || len(eb) > 4 {
		return nil
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(nb), E: int(new(big.Int).SetBytes(eb).Int64())}
	if pub.N.BitLen() < minRSABits || pub.E < 3 || pub.E%2 == 0 {
		return nil
	}
	return pub
}

func ecKey(x, y string) *ecdsa.PublicKey {
	xb, err1 := b64.DecodeString(x)
	yb, err2 := b64.DecodeString(y)
	if err1 != nil || err2 != nil || len(xb) != 32 || len(yb) != 32 {
		return nil
	}
	// ParseUncompressedPublicKey checks that the point is on the curve.
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, xb...), yb...))
	if err != nil {
		return nil
	}
	return pub
}

// getJSON GETs url and decodes its JSON body (at most 1 MiB) into v.
func (o *OIDC) getJSON(ctx context.Context, url string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := o.client.Do(req)
	if err != nil {
		return fmt.Errorf("get %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get %s: status %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocSize+1))
	if err != nil {
		return fmt.Errorf("read %s: %w", url, err)
	}
	if len(body) > maxDocSize {
		return fmt.Errorf("read %s: larger than %d bytes", url, maxDocSize)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode %s: %w", url, err)
	}
	return nil
}
