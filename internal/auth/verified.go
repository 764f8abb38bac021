package auth

import (
	"slices"
	"sync"
)

// maxVerified bounds the verified-token cache. Callers reuse a token for its
// lifetime (an hour for Entra), so a service sees few distinct tokens at a
// time; when the bound is reached the cache starts over, which costs one
// signature check per caller.
const maxVerified = 4096

// verifiedToken is what a successful verification established about a
// token, less the checks that depend on the time.
type verifiedToken struct {
	id   Identity
	exp  numericDate
	nbf  *numericDate
	keys *keySet // the key set that held the signing key
}

// verifiedCache maps a token's SHA-256 to what its verification found. It
// is safe for concurrent use; the zero value is empty and ready.
type verifiedCache struct {
	mu sync.RWMutex
	m  map[[32]byte]verifiedToken
}

func (c *verifiedCache) get(sum [32]byte) (verifiedToken, bool) {
	c.mu.RLock()
	v, ok := c.m[sum]
	c.mu.RUnlock()
	return v, ok
}

func (c *verifiedCache) put(sum [32]byte, v verifiedToken) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxVerified {
		c.m = make(map[[32]byte]verifiedToken)
	}
	c.m[sum] = v
}

// clone returns a copy whose Roles the caller may change.
func (id Identity) clone() Identity {
	id.Roles = slices.Clone(id.Roles)
	return id
}
