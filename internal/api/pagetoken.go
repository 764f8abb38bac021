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
		return "", badPageToken(tok)
	case pt.Filter != filter:
		return "", invalidArgument("page_token", "the page token belongs to a request with other filters; "+
			"repeat the first request's filters unchanged with its next page token, or leave page_token empty to start over")
	}
	return pt.After, nil
}

// badPageToken refuses a page token this list did not hand out.
func badPageToken(tok string) error {
	if len(tok) > 40 {
		tok = tok[:40] + "…"
	}
	return invalidArgument("page_token", fmt.Sprintf("%q is not a page token of this list; pass the next_page_token "+
		"(nextPageToken) of the previous page unchanged, or leave it empty for the first page", tok))
}

// pageSize validates and normalizes a request's page_size.
func pageSize(n int32) (int, error) {
	switch {
	case n < 0:
		return 0, invalidArgument("page_size", fmt.Sprintf("%d is negative; give a size from 1 to %d, e.g. %d, or 0 for %d",
			n, maxPageSize, defaultPageSize, defaultPageSize))
	case n == 0:
		return defaultPageSize, nil
	case n > maxPageSize:
		return maxPageSize, nil
	}
	return int(n), nil
}
