package api

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
)

// Page sizes for every List method: page_size 0 means defaultPageSize, and
// larger values are capped at maxPageSize (AIP-158).
const (
	defaultPageSize = 50
	maxPageSize     = 1000
)

// pageToken is the cursor behind an opaque page_token: a keyset position
// plus a fingerprint of the request's filters, so a token cannot be replayed
// against a different query. It is versioned so the format can change.
type pageToken struct {
	V      int    `json:"v"`
	After  string `json:"a"`
	Filter string `json:"f,omitempty"`
}

const pageTokenVersion = 1

// encodePageToken returns the page_token that continues after key, or ""
// when there is no next page.
func encodePageToken(after, filter string) string {
	if after == "" {
		return ""
	}
	b, _ := json.Marshal(pageToken{V: pageTokenVersion, After: after, Filter: filter})
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodePageToken returns the keyset position carried by tok ("" for the
// first page). A token that is malformed, from another version, or from a
// request with other filters is an INVALID_ARGUMENT naming page_token.
func decodePageToken(tok, filter string) (string, error) {
	if tok == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	var pt pageToken
	if err == nil {
		err = json.Unmarshal(b, &pt)
	}
	switch {
	case err != nil || pt.V != pageTokenVersion || pt.After == "":
		return "", invalidArgument("page_token", "malformed page token; pass the next_page_token of a previous response unchanged")
	case pt.Filter != filter:
		return "", invalidArgument("page_token", "page token belongs to a request with other filters")
	}
	return pt.After, nil
}

// pageSize validates and normalizes a request's page_size.
func pageSize(n int32) (int, error) {
	switch {
	case n < 0:
		return 0, invalidArgument("page_size", fmt.Sprintf("must not be negative, got %d", n))
	case n == 0:
		return defaultPageSize, nil
	case n > maxPageSize:
		return maxPageSize, nil
	}
	return int(n), nil
}
