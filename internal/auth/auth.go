// Package auth authenticates callers of seatledger's API and decides what
// their roles allow.
//
// Every RPC except the public ones (health, reflection) needs a bearer
// token in the "authorization" metadata ("Authorization: Bearer <token>"
// over HTTP; the grpc-gateway forwards it). Two sources of identity can be
// combined with [Chain]:
//
//   - [OIDC] verifies JWTs from an OpenID Connect issuer, such as Microsoft
//     Entra ID ("https://login.microsoftonline.com/{tenant}/v2.0"). It reads
//     the issuer's discovery document and JWKS, checks the signature (RS256
//     or ES256), iss, aud, exp and nbf, and takes the roles from the "roles"
//     claim, which is where Entra puts the app roles granted to a caller.
//     Role strings it does not know are ignored. (Entra issues v2.0 tokens,
//     whose iss is the issuer above, only when the app registration's
//     accessTokenAcceptedVersion is 2.)
//   - [TokensFile] holds static tokens for small setups
//     (SEATLEDGER_TOKENS_FILE), described below.
//
// # Tokens file
//
// The file is JSON and stores only the SHA-256 of each token, never the
// token itself:
//
//	{"tokens": [
//	  {"name": "hr-onboarding", "sha256": "<64 hex digits>", "roles": ["writer"]},
//	  {"name": "finance-export", "sha256": "<64 hex digits>", "roles": ["finance", "reader"]}
//	]}
//
// Names must be unique and become the Identity's Subject and Name; roles
// must be known. A plaintext "token" member is refused. To make a token and
// its hash:
//
//	TOKEN=$(openssl rand -base64 32)
//	printf %s "$TOKEN" | sha256sum
//
// ([HashToken] computes the same.) Presented tokens are hashed and compared
// with every entry in constant time. The file is re-read when its content
// changes, checked at most once a second when a token is presented; a file
// that fails to load (bad JSON, unknown role, missing) leaves the previous
// set in force and logs an error.
//
// # Policy
//
// The roles are [RoleReader], [RoleWriter], [RoleFinance] and [RoleAdmin].
// What each RPC requires is declared in one [Policy] table, enforced by
// [UnaryServerInterceptor] and [StreamServerInterceptor]: a method missing
// from the table is refused (deny by default). The authenticated
// [Identity] is available to handlers through [FromContext].
//
// Tokens never appear in errors or logs: every error message is a fixed,
// caller-safe reason.
package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
)

// Role is a permission a caller holds. Which RPCs a role opens is decided by
// the Policy, not by the role itself.
type Role string

// The roles seatledger knows.
const (
	// RoleReader reads.
	RoleReader Role = "reader"
	// RoleWriter makes assignment writes (and reads).
	RoleWriter Role = "writer"
	// RoleFinance reads chargeback and manages prices.
	RoleFinance Role = "finance"
	// RoleAdmin controls sync, reads audit events and sets allotment ownership.
	RoleAdmin Role = "admin"
)

// Roles lists every known role, in order of the constants.
var Roles = []Role{RoleReader, RoleWriter, RoleFinance, RoleAdmin}

// Known reports whether r is one of the roles seatledger knows.
func (r Role) Known() bool { return slices.Contains(Roles, r) }

// Identity is an authenticated caller.
type Identity struct {
	// Subject is a stable id: the token's "sub" claim (OIDC), or the static
	// token's name (tokens file).
	Subject string
	// Name is the caller's name as the token gives it, for people to read
	// (the audit log records it beside Subject): the static token's name,
	// or (OIDC) the display name ("name") and the calling application
	// ("azp", else "appid") as "name (application)" when both are present
	// and differ, else whichever is.
	Name string
	// Roles are the known roles the caller holds, without duplicates.
	Roles []Role
	// Source is where the identity came from: "oidc" or "tokens-file".
	Source string
}

// Identity sources.
const (
	SourceOIDC       = "oidc"
	SourceTokensFile = "tokens-file"
)

// Has reports whether id holds role r.
func (id Identity) Has(r Role) bool { return slices.Contains(id.Roles, r) }

// Authenticator turns a bearer token into an Identity. Implementations are
// safe for concurrent use.
type Authenticator interface {
	// Authenticate returns the caller the token identifies. An error that
	// wraps ErrUnauthenticated means the token is missing, malformed,
	// unknown, expired or otherwise not acceptable; its message is safe to
	// show the caller and never contains the token.
	Authenticate(ctx context.Context, bearer string) (Identity, error)
}

// ErrUnauthenticated is wrapped by every error that rejects a token. The
// wrapping error's message is a caller-safe reason.
var ErrUnauthenticated = errors.New("unauthenticated")

// errUnrecognized wraps the rejections that only mean "this token is not one
// of mine" (a token absent from the tokens file, a string that is not a
// JWT): Chain prefers the reason given by an authenticator that recognized
// the token.
var errUnrecognized = fmt.Errorf("%w: token not recognized", ErrUnauthenticated)

// unauthenticated returns an error wrapping ErrUnauthenticated with reason.
func unauthenticated(reason string) error {
	return fmt.Errorf("%w: %s", ErrUnauthenticated, reason)
}

// maxTokenLen bounds the size of a presented token: larger ones are refused
// before any parsing.
const maxTokenLen = 16 << 10

// Chain returns an Authenticator that tries each of as in order and returns
// the first success. Put cheap ones first (the tokens file before OIDC).
// When all fail, the error is the first failure that is not a rejection (an
// authenticator's own trouble, not wrapping ErrUnauthenticated), else the
// first rejection from an authenticator that recognized the token (e.g.
// "token has expired" from OIDC), else "token not recognized".
func Chain(as ...Authenticator) Authenticator {
	return chain(slices.Clone(as))
}

type chain []Authenticator

func (c chain) Authenticate(ctx context.Context, bearer string) (Identity, error) {
	var failed, rejected error
	for _, a := range c {
		id, err := a.Authenticate(ctx, bearer)
		switch {
		case err == nil:
			return id, nil
		case !errors.Is(err, ErrUnauthenticated):
			if failed == nil {
				failed = err
			}
		case rejected == nil && !errors.Is(err, errUnrecognized):
			rejected = err
		}
	}
	switch {
	case failed != nil:
		return Identity{}, failed
	case rejected != nil:
		return Identity{}, rejected
	}
	return Identity{}, errUnrecognized
}

// HashToken returns the lower-case hex SHA-256 of token, as the tokens file
// stores it. It equals the output of: printf %s "$TOKEN" | sha256sum.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

type identityKey struct{}

// NewContext returns a copy of ctx carrying id. The interceptors call it;
// tests of handlers may too.
func NewContext(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// FromContext returns the Identity the interceptor put in ctx, and false
// when there is none (a public method, or a context that did not come
// through the interceptor).
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}
