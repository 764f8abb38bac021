package graphsim

import (
	"errors"
	"slices"
	"time"
)

// CallerToken describes an access token the simulator's authority issues
// for an API other than Graph (seatledger itself, in tests and the
// zero-config demo): the shape Microsoft Entra gives a v2.0 access token
// for an app registration that exposes app roles.
type CallerToken struct {
	// Audience is the API's application id URI or client id (aud).
	Audience string
	// Caller names the calling application (azp and name claims).
	Caller string
	// Roles are the app roles granted to the caller (roles claim).
	Roles []string
	// Lifetime is how long the token is valid; 0 means one hour. A
	// negative lifetime gives a token that has already expired.
	Lifetime time.Duration
}

// MintCallerToken signs a caller token with the authority's key. Its
// issuer is Info.IssuerURL, whose discovery document and JWKS the
// simulator serves, so an OpenID Connect verifier configured with that
// issuer accepts it. It fails before Start, when the issuer is unknown.
func (s *Server) MintCallerToken(t CallerToken) (string, error) {
	s.startMu.Lock()
	issuer := s.issuerURL
	s.startMu.Unlock()
	if issuer == "" {
		return "", errors.New("graphsim: MintCallerToken before Start")
	}
	lifetime := t.Lifetime
	if lifetime == 0 {
		lifetime = tokenLifetime
	}
	now := s.tokenNow()
	nbf := now
	if lifetime < 0 {
		nbf = now.Add(2 * lifetime)
	}
	sub := servicePrincipalID(s.tenantID, t.Caller)
	c := claims{
		Aud:    t.Audience,
		Iss:    issuer,
		Iat:    nbf.Unix(),
		Nbf:    nbf.Unix(),
		Exp:    now.Add(lifetime).Unix(),
		Azp:    t.Caller,
		Name:   t.Caller,
		IDType: "app",
		OID:    sub,
		Roles:  slices.Clone(t.Roles),
		Sub:    sub,
		TID:    s.tenantID,
		Ver:    "2.0",
	}
	return signJWT(c, s.key, s.kid)
}
