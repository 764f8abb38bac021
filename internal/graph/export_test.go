package graph

import "time"

// SetRetryTiming shortens c's backoff and Retry-After cap, so that retry
// tests run in milliseconds.
func SetRetryTiming(c *Client, base, ceiling, maxRetryAfter time.Duration) {
	c.backoffBase, c.backoffMax, c.maxRetryAfter = base, ceiling, maxRetryAfter
}

// Backoff exposes the backoff policy to the external tests.
var Backoff = backoff

// ParseRetryAfter exposes the Retry-After parser to the external tests.
var ParseRetryAfter = parseRetryAfter

// CreateBody exposes the create request body to the external tests.
func CreateBody(c *Client, req CreateAssignment) ([]byte, error) { return c.createBody(req) }

// UpdateBody exposes the PATCH body to the external tests.
var UpdateBody = updateBody

// UnwrapEntity exposes the single-entity unwrapping to the external tests.
var UnwrapEntity = unwrapEntity

// KeyURL exposes key-literal addressing to the external tests.
func KeyURL(c *Client, collection, key string) string { return c.keyURL(Query{}, collection, key) }
