package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
)

// A compact JWS as OpenID Connect issuers sign access tokens: header,
// payload and signature, base64url without padding. Only the asymmetric
// algorithms below are accepted; "none" and the HMAC family are refused
// before any key is looked at, so a public key can never be used as an HMAC
// secret.

var b64 = base64.RawURLEncoding

const (
	algRS256 = "RS256"
	algES256 = "ES256"
)

// jwsHeader is the part of the JOSE header we read.
type jwsHeader struct {
	Alg  string   `json:"alg"`
	Kid  string   `json:"kid"`
	Crit []string `json:"crit"`
}

// jws is a split, decoded token whose signature is not yet verified.
type jws struct {
	header       jwsHeader
	signingInput string // header "." payload, as received
	payload      []byte
	signature    []byte
}

// parseJWS splits and decodes token. Its errors are fixed, caller-safe
// reasons: decoding errors are not wrapped, since some quote their input.
// A token that is not three dot-separated parts with a JSON header is
// errUnrecognized.
func parseJWS(token string) (jws, error) {
	h, p, s, ok := split3(token)
	if !ok {
		return jws{}, errUnrecognized
	}
	// A bearer whose header does not decode is not a JWT at all (it may be
	// a static token): not ours to judge.
	hb, err := b64.DecodeString(h)
	if err != nil {
		return jws{}, errUnrecognized
	}
	var hdr jwsHeader
	if err := json.Unmarshal(hb, &hdr); err != nil {
		return jws{}, errUnrecognized
	}
	pb, err := b64.DecodeString(p)
	if err != nil {
		return jws{}, unauthenticated("token payload is not valid base64url")
	}
	sb, err := b64.DecodeString(s)
	if err != nil {
		return jws{}, unauthenticated("token signature is not valid base64url")
	}
	return jws{header: hdr, signingInput: h + "." + p, payload: pb, signature: sb}, nil
}

func split3(s string) (a, b, c string, ok bool) {
	a, rest, ok1 := strings.Cut(s, ".")
	b, c, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(c, ".") {
		return "", "", "", false
	}
	return a, b, c, true
}

// checkHeader refuses algorithms and JOSE features we do not implement.
func (t jws) checkHeader() error {
	switch t.header.Alg {
	case algRS256, algES256:
	default:
		return unauthenticated("token signature algorithm is not accepted")
	}
	if len(t.header.Crit) > 0 {
		// RFC 7515 4.1.11: unknown critical extensions must be refused.
		return unauthenticated("token uses critical header extensions")
	}
	if t.header.Kid == "" {
		return unauthenticated("token header has no key id")
	}
	return nil
}

// verify checks t's signature with key, which must be of the type the
// header's algorithm names.
func (t jws) verify(key crypto.PublicKey) error {
	digest := sha256.Sum256([]byte(t.signingInput))
	bad := unauthenticated("token signature is invalid")
	switch t.header.Alg {
	case algRS256:
		pub, ok := key.(*rsa.PublicKey)
		if !ok {
			return bad
		}
		if rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], t.signature) != nil {
			return bad
		}
		return nil
	case algES256:
		pub, ok := key.(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() || len(t.signature) != 64 {
			return bad
		}
		// JWS carries R||S (RFC 7518 3.4), not ASN.1.
		r := new(big.Int).SetBytes(t.signature[:32])
		s := new(big.Int).SetBytes(t.signature[32:])
		if !ecdsa.Verify(pub, digest[:], r, s) {
			return bad
		}
		return nil
	}
	return errors.New("unreachable: algorithm checked by checkHeader")
}

// jwtClaims are the claims we read from an access token.
type jwtClaims struct {
	Iss   string       `json:"iss"`
	Sub   string       `json:"sub"`
	Aud   audience     `json:"aud"`
	Exp   *numericDate `json:"exp"`
	Nbf   *numericDate `json:"nbf"`
	Name  string       `json:"name"`
	Azp   string       `json:"azp"`
	AppID string       `json:"appid"`
	// AppDisplayName is Entra's name of the calling application in
	// app-only tokens, which carry no "name".
	AppDisplayName string   `json:"app_displayname"`
	Roles          []string `json:"roles"`
}

// audience is the "aud" claim: one string or an array of them.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("aud is neither a string nor an array of strings")
	}
	*a = many
	return nil
}

// numericDate is a JWT NumericDate: seconds since the epoch, possibly
// fractional.
type numericDate float64

func (d *numericDate) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return errors.New("date claim is not a number")
	}
	*d = numericDate(f)
	return nil
}
