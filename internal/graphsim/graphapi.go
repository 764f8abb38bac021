package graphsim

import (
	"compress/gzip"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The Graph side: authentication, errors and routing shared by every
// endpoint under /beta.

const (
	// odataJSON is the content type Graph sends with OData payloads.
	odataJSON = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
	// clockSkew is the leeway token lifetimes get, as Microsoft's token
	// validation allows by default.
	clockSkew = 5 * time.Minute
	maxTop    = 999
)

type graphError struct {
	Error graphErrorBody `json:"error"`
}

type graphErrorBody struct {
	Code       string          `json:"code"`
	Message    string          `json:"message"`
	InnerError graphInnerError `json:"innerError"`
}

type graphInnerError struct {
	Code            string `json:"code,omitempty"`
	Date            string `json:"date"`
	RequestID       string `json:"request-id"`
	ClientRequestID string `json:"client-request-id"`
	// RetryAfterSeconds repeats Retry-After on 429, as the Cloud
	// Licensing design spec shows.
	RetryAfterSeconds int `json:"retryAfterSeconds,omitempty"`
}

// writeGraphError answers with Graph's error body. innerCode is the more
// specific code Cloud Licensing puts in innerError.code ("" for none).
// innerError.date has Graph's format: UTC, seconds, no offset.
func writeGraphError(w http.ResponseWriter, _ *http.Request, now time.Time, status int, code, innerCode, msg string) {
	writeJSON(w, status, "application/json", graphError{Error: graphErrorBody{
		Code:    code,
		Message: msg,
		InnerError: graphInnerError{
			Code:            innerCode,
			Date:            now.UTC().Format("2006-01-02T15:04:05"),
			RequestID:       w.Header().Get("request-id"),
			ClientRequestID: w.Header().Get("client-request-id"),
		},
	}})
}

// serveGraph authenticates the request, then routes path (what follows
// /beta) to an endpoint, which checks its permissions.
func (s *Server) serveGraph(w http.ResponseWriter, r *http.Request, path string) {
	if s.latency > 0 {
		select {
		case <-time.After(s.latency):
		case <-r.Context().Done():
			return
		}
	}
	now := s.Now()
	// Tokens live in the authority's time, which AdvanceClock does not
	// move: time travel in the tenant must not log clients out.
	c, problem := s.authenticate(r, s.tokenNow())
	if problem != "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="", authorization_uri="`+authorityBase(r)+"/"+s.tenantID+`/oauth2/authorize", client_id="`+graphAppID+`"`)
		writeGraphError(w, r, now, http.StatusUnauthorized, "InvalidAuthenticationToken", "", problem)
		return
	}
	if err := decodeContentEncoding(r); err != nil {
		writeGraphError(w, r, now, err.Status, err.Code, err.InnerCode, err.Message)
		return
	}
	s.serveGraphPath(w, r, path, c, now)
}

// decodeContentEncoding makes r's body readable as sent before encoding.
// Microsoft's Graph SDKs gzip request bodies by default (Content-Encoding:
// gzip), and Graph accepts them on every write (POST, PATCH, $batch); an
// encoding it does not know is refused with 415, as Graph does. A body that
// is not the gzip it claims is a 400 when read.
func decodeContentEncoding(r *http.Request) *SimError {
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
		return nil
	case "gzip", "x-gzip":
		r.Body = &gzipBody{src: r.Body}
		r.Header.Del("Content-Encoding")
		r.ContentLength = -1
		return nil
	default:
		return &SimError{Status: http.StatusUnsupportedMediaType, Code: "UnsupportedMediaType",
			Message: fmt.Sprintf("Content-Encoding %q is not supported; send the body as is or gzip-compressed.", enc)}
	}
}

// gzipBody decompresses src as it is read; the gzip header is read at the
// first Read, so that a request without a body reads as empty.
type gzipBody struct {
	src io.ReadCloser
	zr  *gzip.Reader
	err error
}

func (b *gzipBody) Read(p []byte) (int, error) {
	if b.zr == nil && b.err == nil {
		b.zr, b.err = gzip.NewReader(b.src)
		if errors.Is(b.err, io.EOF) {
			b.err = io.EOF // an empty body: nothing was compressed
		} else if b.err != nil {
			b.err = fmt.Errorf("the body is not valid gzip: %w", b.err)
		}
	}
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.zr.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = fmt.Errorf("the body is not valid gzip: %w", err)
	}
	return n, err
}

func (b *gzipBody) Close() error { return b.src.Close() }

// allows reports whether the token carries one of the permissions in
// need: an application role (the names ending in .All or .Organization;
// a delegated name such as CloudLicensing.Read is no app role) or a
// delegated scope.
func (c claims) allows(need []string) bool {
	for _, r := range c.Roles {
		if slices.Contains(need, r) && (strings.HasSuffix(r, ".All") || strings.HasSuffix(r, ".Organization")) {
			return true
		}
	}
	for _, p := range strings.Fields(c.Scp) {
		if slices.Contains(need, p) {
			return true
		}
	}
	return false
}

// authenticate checks the bearer token the way Graph does: our signature,
// Graph's audience, a v1.0 issuer and tid for this tenant, and the
// lifetime. It returns the claims, or the message of a 401.
func (s *Server) authenticate(r *http.Request, now time.Time) (claims, string) {
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return claims{}, "Access token is empty."
	}
	c, err := verifyJWT(strings.TrimSpace(tok), &s.key.PublicKey, s.kid)
	if err != nil {
		return claims{}, "Access token validation failure: " + err.Error() + "."
	}
	switch {
	case c.Aud != graphAudience && c.Aud != graphAudience+"/" && c.Aud != graphAppID:
		return claims{}, "Access token validation failure. Invalid audience."
	case c.Iss != tokenIssuer(s.tenantID) || !strings.EqualFold(c.TID, s.tenantID):
		return claims{}, "Access token validation failure. Invalid issuer."
	case now.After(time.Unix(c.Exp, 0).Add(clockSkew)):
		return claims{}, "Lifetime validation failed, the token is expired."
	case now.Before(time.Unix(c.Nbf, 0).Add(-clockSkew)):
		return claims{}, "Lifetime validation failed, the token is not yet valid."
	}
	return c, ""
}

// queryError is a 400 caused by the query string.
type queryError struct {
	inner string // innerError.code: invalidQuery, invalidFilter, invalidExpansion
	msg   string
}

func (e *queryError) Error() string { return e.msg }

func badQuery(inner, format string, args ...any) error {
	return &queryError{inner: inner, msg: fmt.Sprintf(format, args...)}
}

// systemOptions are OData's system query options. On beta Graph accepts
// them with or without the leading $; graphsim accepts either spelling,
// in any case, and answers with the $ spelling.
var systemOptions = []string{"$apply", "$count", "$deltatoken", "$expand", "$filter", "$format", "$orderby", "$search", "$select", "$skip", "$skiptoken", "$top"}

// parseQuery parses the query string into canonical option names and
// rejects options not in allowed, unknown parameters and repeated options.
func parseQuery(raw string, allowed ...string) (map[string]string, error) {
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return nil, badQuery("invalidQuery", "The query specified in the URI is not valid: %v.", err)
	}
	out := map[string]string{}
	for k, v := range vals {
		name := strings.ToLower(k)
		if !strings.HasPrefix(name, "$") && slices.Contains(systemOptions, "$"+name) {
			name = "$" + name
		}
		switch {
		case slices.Contains(allowed, name):
		case name == "$expand":
			return nil, badQuery("invalidExpansion", "Query option '$expand' is not supported by graphsim on this resource yet.")
		case slices.Contains(systemOptions, name):
			return nil, badQuery("invalidQuery", "Query option '%s' is not supported on this resource.", name)
		default:
			return nil, badQuery("invalidQuery", "Query parameter '%s' is not supported on this resource.", k)
		}
		if _, dup := out[name]; dup || len(v) > 1 {
			return nil, badQuery("invalidQuery", "Query option '%s' was specified more than once, but it must be specified at most once.", name)
		}
		out[name] = v[0]
	}
	return out, nil
}

// parseTop parses $top: a page size from 1 to 999.
func parseTop(v string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 1 || n > maxTop {
		return 0, badQuery("invalidQuery", "Invalid page size specified: '%s'. Must be between 1 and %d inclusive.", v, maxTop)
	}
	return n, nil
}

// The skiptoken is opaque to clients; inside, it is the id of the last
// allotment of the previous page: pages are id ranges, so an allotment
// added or removed between pages never shifts another one into or out of
// the listing.
const skiptokenPrefix = "graphsim.v1:"

func encodeSkiptoken(lastID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(skiptokenPrefix + lastID))
}

func decodeSkiptoken(tok string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || !strings.HasPrefix(string(b), skiptokenPrefix) || len(b) == len(skiptokenPrefix) {
		return "", badQuery("invalidQuery", "The $skiptoken value is not valid.")
	}
	return strings.TrimPrefix(string(b), skiptokenPrefix), nil
}

// isGUID reports whether s has the 8-4-4-4-12 hex form.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return false
			}
		default:
			if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F') {
				return false
			}
		}
	}
	return true
}

// graphRoot is the absolute base of Graph as the caller reached it.
func graphRoot(r *http.Request) string { return authorityBase(r) + graphBase }

// queryString renders options in a fixed order with Graph's spelling:
// literal $ in names, %20 for spaces.
func queryString(opts map[string]string) string {
	var parts []string
	for _, name := range []string{"$apply", "$count", "$expand", "$filter", "$select", "$top", "$deltatoken", "$skiptoken"} {
		if v, ok := opts[name]; ok {
			parts = append(parts, name+"="+strings.ReplaceAll(url.QueryEscape(v), "+", "%20"))
		}
	}
	return strings.Join(parts, "&")
}

func writeQueryError(w http.ResponseWriter, r *http.Request, now time.Time, err error) {
	var qe *queryError
	if errors.As(err, &qe) {
		writeGraphError(w, r, now, http.StatusBadRequest, "badRequest", qe.inner, qe.msg)
		return
	}
	writeGraphError(w, r, now, http.StatusBadRequest, "badRequest", "invalidQuery", err.Error())
}
