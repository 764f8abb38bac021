package graphsim

import (
	"encoding/base64"
	"errors"
	"fmt"
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

// allotmentReadRoles are the application permissions that allow reading
// allotments: the least privileged first, then the higher ones the
// permissions table lists.
var allotmentReadRoles = []string{"CloudLicensing.Read.All", "Directory.Read.All", "Directory.ReadWrite.All"}

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
// /beta) to an endpoint, checking the endpoint's permissions.
func (s *Server) serveGraph(w http.ResponseWriter, r *http.Request, path string) {
	now := s.Now()
	c, problem := s.authenticate(r, now)
	if problem != "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="", authorization_uri="`+authorityBase(r)+"/"+s.tenantID+`/oauth2/authorize", client_id="`+graphAppID+`"`)
		writeGraphError(w, r, now, http.StatusUnauthorized, "InvalidAuthenticationToken", "", problem)
		return
	}
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for i, want := range []string{"admin", "cloudLicensing", "allotments"} {
		if i >= len(segs) || !strings.EqualFold(segs[i], want) {
			seg := ""
			if i < len(segs) {
				seg = segs[i]
			}
			writeGraphError(w, r, now, http.StatusBadRequest, "BadRequest", "",
				fmt.Sprintf("Resource not found for the segment '%s'.", seg))
			return
		}
	}
	if len(segs) > 4 {
		writeGraphError(w, r, now, http.StatusBadRequest, "BadRequest", "",
			fmt.Sprintf("Resource not found for the segment '%s'.", segs[4]))
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeGraphError(w, r, now, http.StatusMethodNotAllowed, "methodNotAllowed", "",
			"Specified HTTP method is not allowed for the request target.")
		return
	}
	if !hasAnyRole(c.Roles, allotmentReadRoles) {
		writeGraphError(w, r, now, http.StatusForbidden, "Authorization_RequestDenied", "",
			"Insufficient privileges to complete the operation.")
		return
	}
	if len(segs) == 3 {
		s.listAllotments(w, r, now)
		return
	}
	s.getAllotment(w, r, now, segs[3])
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

func hasAnyRole(have, want []string) bool {
	for _, h := range have {
		if slices.Contains(want, h) {
			return true
		}
	}
	return false
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

// parseSKUFilter parses the $filter forms allotments support,
// "skuId eq <guid>" and "skuId in (<guid>, …)", into the set of SKU ids
// (lower case) to keep.
func parseSKUFilter(expr string) (map[string]bool, error) {
	fields := strings.Fields(expr)
	if len(fields) < 3 {
		return nil, badQuery("invalidFilter", "Invalid filter clause: '%s'.", expr)
	}
	if !strings.EqualFold(fields[0], "skuId") {
		return nil, badQuery("invalidFilter", "Unsupported or invalid query filter clause specified for property '%s' of resource 'allotment'.", fields[0])
	}
	guid := func(v string) (string, error) {
		if strings.HasPrefix(v, "'") {
			return "", badQuery("invalidFilter", "A binary operator with incompatible types was detected. Found operand types 'Edm.Guid' and 'Edm.String' for operator kind 'Equal'.")
		}
		if !isGUID(v) {
			return "", badQuery("invalidFilter", "Unrecognized 'Edm.Guid' literal '%s' in filter clause.", v)
		}
		return strings.ToLower(v), nil
	}
	want := map[string]bool{}
	switch strings.ToLower(fields[1]) {
	case "eq":
		if len(fields) != 3 {
			return nil, badQuery("invalidFilter", "Invalid filter clause: graphsim supports 'skuId eq <guid>' and 'skuId in (<guid>, ...)' only.")
		}
		g, err := guid(fields[2])
		if err != nil {
			return nil, err
		}
		want[g] = true
	case "in":
		list := strings.TrimSpace(strings.Join(fields[2:], " "))
		if !strings.HasPrefix(list, "(") || !strings.HasSuffix(list, ")") {
			return nil, badQuery("invalidFilter", "Invalid filter clause: the 'in' operator needs a parenthesized list.")
		}
		for item := range strings.SplitSeq(list[1:len(list)-1], ",") {
			g, err := guid(strings.TrimSpace(item))
			if err != nil {
				return nil, err
			}
			want[g] = true
		}
	default:
		return nil, badQuery("invalidFilter", "Invalid filter clause: operator '%s' is not supported for property 'skuId'.", fields[1])
	}
	return want, nil
}

// graphRoot is the absolute base of Graph as the caller reached it.
func graphRoot(r *http.Request) string { return authorityBase(r) + graphBase }

// queryString renders options in a fixed order with Graph's spelling:
// literal $ in names, %20 for spaces.
func queryString(opts map[string]string) string {
	var parts []string
	for _, name := range []string{"$filter", "$select", "$top", "$skiptoken"} {
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
