package graphsim

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// claims are the access-token claims the simulator issues and checks. They
// follow the v1.0 access tokens Entra issues for Microsoft Graph (Graph
// accepts only v1.0 tokens, whichever endpoint issued them).
type claims struct {
	Aud      string   `json:"aud"`
	Iss      string   `json:"iss"`
	Iat      int64    `json:"iat"`
	Nbf      int64    `json:"nbf"`
	Exp      int64    `json:"exp"`
	AppID    string   `json:"appid,omitempty"`
	Azp      string   `json:"azp,omitempty"`  // v2.0 tokens: the calling app
	Name     string   `json:"name,omitempty"` // a display name for the caller
	AppIDAcr string   `json:"appidacr"`
	IDType   string   `json:"idtyp"`
	OID      string   `json:"oid"`
	Roles    []string `json:"roles,omitempty"`
	Scp      string   `json:"scp,omitempty"` // delegated permissions, space-separated
	Sub      string   `json:"sub"`
	TID      string   `json:"tid"`
	Ver      string   `json:"ver"`
}

type jwtHeader struct {
	Alg string `json:"alg"`
	Typ string `json:"typ"`
	Kid string `json:"kid"`
}

var b64 = base64.RawURLEncoding

// signJWT returns the compact RS256 serialization of c.
func signJWT(c claims, key *rsa.PrivateKey, kid string) (string, error) {
	h, err := json.Marshal(jwtHeader{Alg: "RS256", Typ: "JWT", Kid: kid})
	if err != nil {
		return "", fmt.Errorf("encode jwt header: %w", err)
	}
	p, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("encode jwt claims: %w", err)
	}
	input := b64.EncodeToString(h) + "." + b64.EncodeToString(p)
	digest := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest[:])
	if err != nil {
		return "", fmt.Errorf("sign jwt: %w", err)
	}
	return input + "." + b64.EncodeToString(sig), nil
}

// verifyJWT checks the RS256 signature of token against pub and returns its
// claims. It checks nothing else: the caller validates the claims.
func verifyJWT(token string, pub *rsa.PublicKey, kid string) (claims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return claims{}, errors.New("JWT is not well formed: it does not have three parts")
	}
	hb, err := b64.DecodeString(parts[0])
	if err != nil {
		return claims{}, errors.New("JWT is not well formed: bad header encoding")
	}
	var h jwtHeader
	if err := json.Unmarshal(hb, &h); err != nil {
		return claims{}, errors.New("JWT is not well formed: bad header")
	}
	if h.Alg != "RS256" {
		return claims{}, fmt.Errorf("signature algorithm %q is not supported", h.Alg)
	}
	if h.Kid != kid {
		return claims{}, errors.New("signing key not found")
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		return claims{}, errors.New("JWT is not well formed: bad signature encoding")
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
		return claims{}, errors.New("signature is invalid")
	}
	pb, err := b64.DecodeString(parts[1])
	if err != nil {
		return claims{}, errors.New("JWT is not well formed: bad payload encoding")
	}
	var c claims
	if err := json.Unmarshal(pb, &c); err != nil {
		return claims{}, errors.New("JWT is not well formed: bad payload")
	}
	return c, nil
}

// jwk is an RSA public key in JWK form, as the keys endpoint publishes it.
type jwk struct {
	Kty    string `json:"kty"`
	Use    string `json:"use"`
	Kid    string `json:"kid"`
	N      string `json:"n"`
	E      string `json:"e"`
	Issuer string `json:"issuer,omitempty"`
}

func publicJWK(pub *rsa.PublicKey) jwk {
	return jwk{
		Kty: "RSA",
		Use: "sig",
		N:   b64.EncodeToString(pub.N.Bytes()),
		E:   b64.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}
}

// keyID is the RFC 7638 thumbprint of pub: stable for a key, and what the
// tokens' kid header names.
func keyID(pub *rsa.PublicKey) string {
	k := publicJWK(pub)
	// RFC 7638: the required members, lexicographic order, no whitespace.
	canon := `{"e":"` + k.E + `","kty":"RSA","n":"` + k.N + `"}`
	sum := sha256.Sum256([]byte(canon))
	return b64.EncodeToString(sum[:])
}
