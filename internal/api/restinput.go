package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/seatledger/seatledger/gen/openapiv2"
)

// REST input: every REST call's query string and JSON body are checked
// against its route before the gateway parses them, so that bad input is
// refused with a sentence in the caller's terms (the parameter as they
// spelled it, the value they sent, and an accepted example) instead of the
// parser's Go error, and nothing the caller sent is silently ignored. The
// routes, and which request fields each takes from the query string, the
// path and the body, come from the OpenAPI document generated from the
// same protos and HTTP rules as the gateway.

// restRoute is one REST route of the OpenAPI document.
type restRoute struct {
	method   string   // "GET"
	template string   // "/v1/allotments/{id}"
	segs     []string // template split at "/", without the leading ""
	input    protoreflect.MessageType
	// query maps each accepted query key, its JSON name and its proto
	// name, dotted for nested fields, to the field it sets; queryNames
	// are the JSON names in document order.
	query      map[string]protoreflect.FieldDescriptor
	queryNames []string
	// snakeExample is a snake_case key of the route, for messages.
	snakeExample string
	pathFields   []string // proto names of the fields bound to the path
	// body is "" (no body), "*" (the whole request, less the path
	// fields) or the proto name of the one field the body fills.
	body string
}

// extraRoutes are the gateway's own endpoints, which the OpenAPI document
// does not list; they only matter for the Allow header.
var extraRoutes = []string{"GET /openapi.json", "GET /healthz", "GET /readyz", "GET /metrics",
	"HEAD /openapi.json", "HEAD /healthz", "HEAD /readyz", "HEAD /metrics"}

// restRoutes are the routes of the served OpenAPI document.
var restRoutes = mustRESTRoutes(openapiv2.JSON)

func mustRESTRoutes(doc []byte) []*restRoute {
	routes, err := restRoutesOf(doc)
	if err != nil {
		panic("api: the embedded OpenAPI document does not describe the gateway: " + err.Error())
	}
	return routes
}

func restRoutesOf(doc []byte) ([]*restRoute, error) {
	var d struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
			Parameters  []struct {
				Name string `json:"name"`
				In   string `json:"in"`
			} `json:"parameters"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, err
	}
	var routes []*restRoute
	for path, ops := range d.Paths {
		for method, op := range ops {
			svc, rpc, ok := strings.Cut(op.OperationID, "_")
			if !ok {
				return nil, fmt.Errorf("operation %q is not Service_Method", op.OperationID)
			}
			desc, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName("seatledger.v1." + svc))
			if err != nil {
				return nil, fmt.Errorf("operation %q: %w", op.OperationID, err)
			}
			sd, _ := desc.(protoreflect.ServiceDescriptor)
			if sd == nil || sd.Methods().ByName(protoreflect.Name(rpc)) == nil {
				return nil, fmt.Errorf("operation %q names no RPC", op.OperationID)
			}
			in := sd.Methods().ByName(protoreflect.Name(rpc)).Input()
			mt, err := protoregistry.GlobalTypes.FindMessageByName(in.FullName())
			if err != nil {
				return nil, fmt.Errorf("operation %q: %w", op.OperationID, err)
			}
			r := &restRoute{method: strings.ToUpper(method), template: path, segs: strings.Split(path[1:], "/"),
				input: mt, query: map[string]protoreflect.FieldDescriptor{}}
			for _, p := range op.Parameters {
				switch p.In {
				case "path":
					fd, protoName := fieldByJSONPath(in, p.Name)
					if fd == nil {
						return nil, fmt.Errorf("%s %s: path parameter %q is no field of %s", r.method, path, p.Name, in.FullName())
					}
					r.pathFields = append(r.pathFields, protoName)
				case "body":
					r.body = "*"
					if fd, protoName := fieldByJSONPath(in, p.Name); fd != nil {
						r.body = protoName
					}
				}
			}
			// The query string may set every field the path and the body
			// do not (the gateway's rule; the document leaves out some,
			// such as a PATCH's update_mask).
			if r.body != "*" {
				addQueryFields(r, in, "", "")
			}
			routes = append(routes, r)
		}
	}
	return routes, nil
}

// addQueryFields adds md's fields under the given prefixes to r.query,
// nested messages other than well-known types by their dotted paths.
func addQueryFields(r *restRoute, md protoreflect.MessageDescriptor, jsonPrefix, protoPrefix string) {
	for i := range md.Fields().Len() {
		fd := md.Fields().Get(i)
		protoName := protoPrefix + string(fd.Name())
		if slices.Contains(r.pathFields, protoName) || protoName == r.body {
			continue
		}
		jsonName := jsonPrefix + fd.JSONName()
		if m := fd.Message(); m != nil && !fd.IsList() && !fd.IsMap() && !strings.HasPrefix(string(m.FullName()), "google.protobuf.") {
			addQueryFields(r, m, jsonName+".", protoName+".")
			continue
		}
		r.query[jsonName], r.query[protoName] = fd, fd
		r.queryNames = append(r.queryNames, jsonName)
		if jsonName != protoName && r.snakeExample == "" {
			r.snakeExample = protoName
		}
	}
}

// fieldByJSONPath resolves a dotted path of JSON or proto field names in
// md, returning the field and its dotted proto path.
func fieldByJSONPath(md protoreflect.MessageDescriptor, path string) (protoreflect.FieldDescriptor, string) {
	var fd protoreflect.FieldDescriptor
	var names []string
	for i, part := range strings.Split(path, ".") {
		if i > 0 {
			if fd.Message() == nil || fd.IsList() || fd.IsMap() {
				return nil, ""
			}
			md = fd.Message()
		}
		if fd = md.Fields().ByJSONName(part); fd == nil {
			if fd = md.Fields().ByTextName(part); fd == nil {
				return nil, ""
			}
		}
		names = append(names, string(fd.Name()))
	}
	return fd, strings.Join(names, ".")
}

// matches reports whether a request path matches the route's template: a
// {param} segment matches one non-empty segment, "{param}:verb" one that
// ends in ":verb".
func matchesTemplate(segs []string, path string) bool {
	got := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if len(got) != len(segs) {
		return false
	}
	for i, s := range segs {
		if !strings.HasPrefix(s, "{") {
			if got[i] != s {
				return false
			}
			continue
		}
		_, verb, hasVerb := strings.Cut(s, "}:")
		if hasVerb {
			if !strings.HasSuffix(got[i], ":"+verb) || len(got[i]) == len(verb)+1 {
				return false
			}
		} else if got[i] == "" {
			return false
		}
	}
	return true
}

// allowedMethods lists the methods served on path, for a 405's Allow.
func allowedMethods(path string) []string {
	var out []string
	for _, r := range restRoutes {
		if matchesTemplate(r.segs, path) {
			out = append(out, r.method)
		}
	}
	for _, e := range extraRoutes {
		method, p, _ := strings.Cut(e, " ")
		if p == path {
			out = append(out, method)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// patternVar is a captured segment in a runtime.Pattern's String form.
var patternVar = regexp.MustCompile(`\{([^=}]+)=\*\}`)

// routeByPattern remembers routeOf's answer per method and gateway
// pattern (a few dozen keys), so that a call does not run the template
// rewrite and the scan again.
var routeByPattern sync.Map // "GET /v1/…" → *restRoute (nil: none)

// routeOf finds the route of a request the gateway has matched.
func routeOf(r *http.Request) *restRoute {
	pat, ok := runtime.HTTPPattern(r.Context())
	if !ok {
		return nil
	}
	key := r.Method + " " + pat.String()
	if rt, ok := routeByPattern.Load(key); ok {
		return rt.(*restRoute)
	}
	var found *restRoute
	tmpl := patternVar.ReplaceAllString(pat.String(), "{$1}")
	for _, rt := range restRoutes {
		if rt.method == r.Method && rt.template == tmpl {
			found = rt
			break
		}
	}
	routeByPattern.Store(key, found)
	return found
}

// routingError answers the gateway's routing failures: 405 with Allow for
// a path served under other methods (the runtime's default is 501), 404
// naming the path otherwise.
func routingError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	var err error
	switch httpStatus {
	case http.StatusMethodNotAllowed:
		allow := allowedMethods(r.URL.Path)
		w.Header().Set("Allow", strings.Join(allow, ", "))
		err = &runtime.HTTPStatusError{HTTPStatus: http.StatusMethodNotAllowed, Err: status.Errorf(codes.Unimplemented,
			"%s is not a method of %s; it accepts %s", r.Method, r.URL.Path, strings.Join(allow, ", "))}
	case http.StatusNotFound:
		err = status.Errorf(codes.NotFound, "there is no route %s %s; GET /openapi.json lists the routes", r.Method, r.URL.Path)
	default:
		err = status.Errorf(codes.InvalidArgument, "the request path %q is malformed", r.URL.Path)
	}
	runtime.HTTPError(ctx, mux, m, w, r, err)
}

// checkInput is the gateway middleware that refuses bad query strings
// and bodies before the generated handlers parse them (see checkQuery
// and checkBody), and rewrites the short forms of enum values.
func checkInput(mux **runtime.ServeMux) runtime.Middleware {
	return func(next runtime.HandlerFunc) runtime.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request, pathParams map[string]string) {
			rt := routeOf(r)
			if rt == nil {
				next(w, r, pathParams)
				return
			}
			err := rt.checkQuery(r)
			if err == nil {
				err = rt.checkBody(r)
			}
			if err != nil {
				_, out := runtime.MarshalerForRequest(*mux, r)
				runtime.HTTPError(r.Context(), *mux, out, w, r, err)
				return
			}
			next(w, r, pathParams)
		}
	}
}

// checkQuery refuses unknown query parameters and values the parser
// would not accept, naming the parameter as the caller spelled it, and
// rewrites enum values given in a short form (day for
// HISTORY_GRANULARITY_DAY) or another case to the full name.
func (rt *restRoute) checkQuery(r *http.Request) error {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return invalidArgument("query", "the query string is malformed ("+strings.TrimPrefix(err.Error(), "invalid URL escape ")+
			"); escape special characters, e.g. %2B for +")
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	seen := map[protoreflect.FieldDescriptor]string{}
	rewritten := false
	for _, key := range keys {
		fd, ok := rt.query[key]
		if !ok {
			return rt.unknownParameter(key)
		}
		if other, dup := seen[fd]; dup {
			return invalidArgument(key, fmt.Sprintf("%s and %s are the same parameter; give it once", other, key))
		}
		seen[fd] = key
		vals := q[key]
		if len(vals) > 1 && !fd.IsList() {
			return invalidArgument(key, fmt.Sprintf("is given %d times (%s); give it once", len(vals), strings.Join(vals, ", ")))
		}
		for i, v := range vals {
			if fd.Kind() == protoreflect.EnumKind {
				full, err := enumValue(key, fd.Enum(), v)
				if err != nil {
					return err
				}
				if full != v {
					vals[i], rewritten = full, true
				}
				continue
			}
			if err := runtime.PopulateFieldFromPath(rt.input.New().Interface(), key, v); err != nil {
				return badQueryValue(key, fd, v)
			}
		}
	}
	if rewritten {
		r.URL.RawQuery = q.Encode()
		r.Form = nil
	}
	return nil
}

func (rt *restRoute) unknownParameter(key string) error {
	where := rt.method + " " + rt.template
	if len(rt.queryNames) == 0 {
		return invalidArgument(key, fmt.Sprintf("unknown query parameter %q: %s takes no query parameters", key, where))
	}
	msg := fmt.Sprintf("unknown query parameter %q: %s accepts %s", key, where, strings.Join(rt.queryNames, ", "))
	if rt.snakeExample != "" {
		msg += fmt.Sprintf(" (or their snake_case spellings, such as %s)", rt.snakeExample)
	}
	if near := nearest(key, rt.queryNames); near != "" {
		msg = fmt.Sprintf("unknown query parameter %q (did you mean %s?): %s accepts %s", key, near, where, strings.Join(rt.queryNames, ", "))
	}
	return invalidArgument(key, msg)
}

// nearest returns the accepted name closest to key, if it is close.
func nearest(key string, names []string) string {
	norm := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, "_", "")) }
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(norm(key), norm(n)); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// enumPrefix is the common prefix of an enum's value names: the name of
// its zero value (X_UNSPECIFIED, by our proto convention) less UNSPECIFIED.
func enumPrefix(ed protoreflect.EnumDescriptor) string {
	return strings.TrimSuffix(string(ed.Values().ByNumber(0).Name()), "UNSPECIFIED")
}

// enumShortNames are the short forms of an enum's values (day for
// HISTORY_GRANULARITY_DAY), without the unspecified value.
func enumShortNames(ed protoreflect.EnumDescriptor) []string {
	prefix := enumPrefix(ed)
	var out []string
	for i := range ed.Values().Len() {
		if v := ed.Values().Get(i); v.Number() != 0 {
			out = append(out, strings.ToLower(strings.TrimPrefix(string(v.Name()), prefix)))
		}
	}
	return out
}

// enumValue resolves a query value of an enum field: the full value name
// or its short form, in any case, or the value's number.
func enumValue(key string, ed protoreflect.EnumDescriptor, v string) (string, error) {
	prefix := enumPrefix(ed)
	up := strings.ToUpper(v)
	for _, name := range []string{up, prefix + up} {
		if ev := ed.Values().ByName(protoreflect.Name(name)); ev != nil {
			return name, nil
		}
	}
	if n, err := strconv.ParseInt(v, 10, 32); err == nil && ed.Values().ByNumber(protoreflect.EnumNumber(n)) != nil {
		return v, nil
	}
	short := enumShortNames(ed)
	return "", invalidArgument(key, fmt.Sprintf("%q is not one of %s (or the full names, e.g. %s%s); e.g. %s=%s",
		v, strings.Join(short, ", "), prefix, strings.ToUpper(short[0]), key, short[0]))
}

// badQueryValue is the sentence for a query value the parser refused.
func badQueryValue(key string, fd protoreflect.FieldDescriptor, v string) error {
	return invalidArgument(key, fmt.Sprintf("%q is not %s; e.g. %s=%s", v, kindPhrase(fd), key, queryExample(fd)))
}

// kindPhrase names what a field's value must be, in the caller's terms.
func kindPhrase(fd protoreflect.FieldDescriptor) string {
	if fd.Message() != nil {
		switch fd.Message().FullName() {
		case "google.protobuf.Timestamp":
			return "an RFC 3339 time with a time zone"
		case "google.protobuf.Duration":
			return `a duration in seconds or hours ("s", "m" or "h", no days)`
		case "google.protobuf.FieldMask":
			return "a comma-separated list of field names"
		}
		return "an object"
	}
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return "true or false"
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return "a whole number"
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return "a non-negative whole number"
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return "a number"
	case protoreflect.EnumKind:
		return "one of " + strings.Join(enumShortNames(fd.Enum()), ", ")
	case protoreflect.BytesKind:
		return "base64"
	}
	return "text"
}

// fieldExamples are examples of string fields whose form matters, by
// proto field name.
var fieldExamples = map[string]string{
	"amount": "57.00", "currency_code": "USD",
	"sku_id": "6fd2c87f-b296-42f0-b197-1e91e994b900", "allotment_id": "3b0c7e52-11d4-8a6f-02e9-6c5d8f1a4b70",
	"valid_from": "2026-12-01", "from": "2026-11-01", "to": "2026-11-30", "as_of": "2026-12-01",
	"time_zone": "Europe/Berlin", "user": "ada.lindqvist@contoso.example", "department": "Sales",
}

// queryExample is an accepted value of a field, as a query value.
func queryExample(fd protoreflect.FieldDescriptor) string {
	if fd.Message() != nil {
		switch fd.Message().FullName() {
		case "google.protobuf.Timestamp":
			return "2026-12-04T00:00:00Z"
		case "google.protobuf.Duration":
			return "86400s (one day; 24h also works)"
		}
	}
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return "true"
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind, protoreflect.Int64Kind,
		protoreflect.Sint64Kind, protoreflect.Sfixed64Kind, protoreflect.Uint32Kind, protoreflect.Fixed32Kind,
		protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		if fd.Name() == "page_size" {
			return strconv.Itoa(defaultPageSize)
		}
		return "10"
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return "1.5"
	case protoreflect.EnumKind:
		return enumShortNames(fd.Enum())[0]
	}
	if ex, ok := fieldExamples[string(fd.Name())]; ok {
		return ex
	}
	return "text"
}

// jsonExample is an accepted value of a field, as JSON.
func jsonExample(fd protoreflect.FieldDescriptor) string {
	ex := queryExample(fd)
	if fd.Message() != nil {
		switch fd.Message().FullName() {
		case "google.protobuf.Timestamp":
			return strconv.Quote(ex)
		case "google.protobuf.Duration":
			return `"86400s"`
		case "google.protobuf.FieldMask":
			return `"disabledServicePlanIds"`
		}
		return "{...}"
	}
	switch fd.Kind() {
	case protoreflect.StringKind, protoreflect.BytesKind, protoreflect.EnumKind:
		if fd.Kind() == protoreflect.EnumKind {
			ex = string(fd.Enum().Values().Get(1).Name())
		}
		ex = strconv.Quote(ex)
	}
	if fd.IsList() {
		return "[" + ex + "]"
	}
	return ex
}

// checkBody refuses a JSON body that is not what the route takes: not
// JSON, not an object, unknown fields, fields bound to the path, and
// values of the wrong type, naming the field by its path in the body.
func (rt *restRoute) checkBody(r *http.Request) error {
	if rt.body == "" || r.Body == nil {
		return nil
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			return status.Errorf(codes.InvalidArgument, "the request body is larger than %d bytes", maxBodyBytes)
		}
		return status.Error(codes.InvalidArgument, "the request body could not be read")
	}
	r.Body = io.NopCloser(bytes.NewReader(data))
	if len(bytes.TrimSpace(data)) == 0 {
		return nil // an empty body sets nothing, as the gateway reads it
	}
	md := rt.input.Descriptor()
	exclude := rt.pathFields
	if rt.body != "*" {
		md, exclude = md.Fields().ByName(protoreflect.Name(rt.body)).Message(), nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return bodySyntaxError(data, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalidArgument("body", "the request body has more after its JSON object; send one object")
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return invalidArgument("body", fmt.Sprintf("the request body is %s, not a JSON object; send e.g. {%s}", jsonKind(v), bodyExample(md, exclude)))
	}
	if err := checkObject("", obj, md, exclude); err != nil {
		return err
	}
	// Anything the walk above does not know (duplicate keys, values out
	// of range) the protobuf decoder reports, with its prefix removed.
	target := rt.input.New()
	if rt.body != "*" {
		target = target.Mutable(rt.input.Descriptor().Fields().ByName(protoreflect.Name(rt.body))).Message()
	}
	if err := protojson.Unmarshal(data, target.Interface()); err != nil {
		return invalidArgument("body", "the request body is not accepted: "+protojsonReason(err))
	}
	return nil
}

var protojsonPrefix = regexp.MustCompile(`^proto:\s*(\(line \d+:\d+\):\s*)?`)

func protojsonReason(err error) string {
	return protojsonPrefix.ReplaceAllString(err.Error(), "")
}

func bodySyntaxError(data []byte, err error) error {
	var se *json.SyntaxError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return invalidArgument("body", fmt.Sprintf("the request body is not complete JSON: it ends after %d bytes, inside a value; send one whole JSON object", len(data)))
	case errors.As(err, &se):
		at := min(int(se.Offset), len(data))
		near := string(data[max(0, at-10):at])
		return invalidArgument("body", fmt.Sprintf("the request body is not JSON: at byte %d (after %q) %s; send a JSON object, e.g. {\"force\": true}",
			se.Offset, near, strings.TrimPrefix(se.Error(), "invalid character ")))
	}
	return invalidArgument("body", "the request body is not JSON; send a JSON object")
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case []any:
		return "an array"
	}
	return "an object"
}

func bodyExample(md protoreflect.MessageDescriptor, exclude []string) string {
	for i := range md.Fields().Len() {
		fd := md.Fields().Get(i)
		if !slices.Contains(exclude, string(fd.Name())) {
			return fmt.Sprintf("%q: %s", fd.JSONName(), jsonExample(fd))
		}
	}
	return ""
}

func checkObject(prefix string, obj map[string]any, md protoreflect.MessageDescriptor, exclude []string) error {
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fd := md.Fields().ByJSONName(k)
		if fd == nil {
			fd = md.Fields().ByTextName(k)
		}
		name := prefix + k
		if fd == nil {
			var accepted []string
			for i := range md.Fields().Len() {
				if f := md.Fields().Get(i); !slices.Contains(exclude, string(f.Name())) {
					accepted = append(accepted, f.JSONName())
				}
			}
			msg := fmt.Sprintf("unknown field %q in the request body; the accepted fields are %s", name, strings.Join(accepted, ", "))
			if near := nearest(k, accepted); near != "" {
				msg = fmt.Sprintf("unknown field %q in the request body (did you mean %s?); the accepted fields are %s", name, prefix+near, strings.Join(accepted, ", "))
			}
			return invalidArgument(name, msg)
		}
		if slices.Contains(exclude, string(fd.Name())) {
			return invalidArgument(name, fmt.Sprintf("%s comes from the request path; leave it out of the body", k))
		}
		if err := checkJSONValue(name, obj[k], fd); err != nil {
			return err
		}
	}
	return nil
}

func checkJSONValue(name string, v any, fd protoreflect.FieldDescriptor) error {
	if v == nil {
		return nil // null is the field's default
	}
	if fd.IsMap() {
		if _, ok := v.(map[string]any); !ok {
			return wrongJSON(name, v, "an object", "{}")
		}
		return nil
	}
	if fd.IsList() {
		list, ok := v.([]any)
		if !ok {
			return wrongJSON(name, v, "an array", jsonExample(fd))
		}
		for i, e := range list {
			if err := checkJSONSingular(fmt.Sprintf("%s[%d]", name, i), e, fd); err != nil {
				return err
			}
		}
		return nil
	}
	return checkJSONSingular(name, v, fd)
}

func checkJSONSingular(name string, v any, fd protoreflect.FieldDescriptor) error {
	ex := jsonExample(fd)
	if fd.IsList() {
		ex = strings.TrimSuffix(strings.TrimPrefix(ex, "["), "]")
	}
	s, isString := v.(string)
	n, isNumber := v.(json.Number)
	switch fd.Kind() {
	case protoreflect.StringKind:
		if !isString {
			return wrongJSON(name, v, "a string", ex)
		}
	case protoreflect.BytesKind:
		if _, err := base64.StdEncoding.DecodeString(s); !isString || err != nil {
			return wrongJSON(name, v, "base64 text", ex)
		}
	case protoreflect.BoolKind:
		if _, ok := v.(bool); !ok {
			return wrongJSON(name, v, "true or false", ex)
		}
	case protoreflect.EnumKind:
		if isString && fd.Enum().Values().ByName(protoreflect.Name(s)) != nil {
			return nil
		}
		if isNumber {
			if i, err := n.Int64(); err == nil && fd.Enum().Values().ByNumber(protoreflect.EnumNumber(i)) != nil {
				return nil
			}
		}
		var names []string
		for i := range fd.Enum().Values().Len() {
			if ev := fd.Enum().Values().Get(i); ev.Number() != 0 {
				names = append(names, string(ev.Name()))
			}
		}
		return wrongJSON(name, v, "one of "+strings.Join(names, ", "), ex)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind, protoreflect.Int64Kind,
		protoreflect.Sint64Kind, protoreflect.Sfixed64Kind, protoreflect.Uint32Kind, protoreflect.Fixed32Kind,
		protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		txt := s
		if isNumber {
			txt = n.String()
		}
		bits := 64
		switch fd.Kind() {
		case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind, protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
			bits = 32
		}
		if _, err := strconv.ParseInt(txt, 10, bits); (!isString && !isNumber) || err != nil {
			return wrongJSON(name, v, fmt.Sprintf("a whole number (of at most %d bits)", bits), ex)
		}
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		if !isNumber && !isString {
			return wrongJSON(name, v, "a number", ex)
		}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		switch fd.Message().FullName() {
		case "google.protobuf.Timestamp":
			if _, err := time.Parse(time.RFC3339Nano, s); !isString || err != nil {
				return wrongJSON(name, v, "an RFC 3339 time with a time zone", ex)
			}
		case "google.protobuf.Duration":
			if !isString || !strings.HasSuffix(s, "s") {
				return wrongJSON(name, v, `a duration in seconds with an "s" suffix`, ex)
			}
		case "google.protobuf.FieldMask":
			if !isString {
				return wrongJSON(name, v, "a comma-separated string of field names", ex)
			}
		case "google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue", "google.protobuf.Any":
		default:
			obj, ok := v.(map[string]any)
			if !ok {
				return wrongJSON(name, v, "an object", "{"+bodyExample(fd.Message(), nil)+"}")
			}
			return checkObject(name+".", obj, fd.Message(), nil)
		}
	}
	return nil
}

// checkEnums refuses a request holding an enum number its proto does not
// declare (gRPC carries numbers; an unknown one would otherwise read as
// some default), naming the field and the declared values.
func checkEnums() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if m, ok := req.(proto.Message); ok {
			if err := undeclaredEnum("", m.ProtoReflect()); err != nil {
				return nil, err
			}
		}
		return handler(ctx, req)
	}
}

func undeclaredEnum(prefix string, m protoreflect.Message) error {
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := prefix + string(fd.Name())
		switch {
		case fd.IsMap():
		case fd.Kind() == protoreflect.EnumKind && fd.IsList():
			for i := range v.List().Len() {
				if err = declaredEnum(fmt.Sprintf("%s[%d]", name, i), fd.Enum(), v.List().Get(i).Enum()); err != nil {
					return false
				}
			}
		case fd.Kind() == protoreflect.EnumKind:
			err = declaredEnum(name, fd.Enum(), v.Enum())
		case fd.Message() != nil && fd.IsList():
			for i := range v.List().Len() {
				if err = undeclaredEnum(fmt.Sprintf("%s[%d].", name, i), v.List().Get(i).Message()); err != nil {
					return false
				}
			}
		case fd.Message() != nil:
			err = undeclaredEnum(name+".", v.Message())
		}
		return err == nil
	})
	return err
}

func declaredEnum(field string, ed protoreflect.EnumDescriptor, n protoreflect.EnumNumber) error {
	if ed.Values().ByNumber(n) != nil {
		return nil
	}
	var names []string
	for i := range ed.Values().Len() {
		if v := ed.Values().Get(i); v.Number() != 0 {
			names = append(names, fmt.Sprintf("%s (%d)", v.Name(), v.Number()))
		}
	}
	return invalidArgument(field, fmt.Sprintf("%d is not a value of %s; use one of %s", n, ed.Name(), strings.Join(names, ", ")))
}

// wrongJSON is the sentence for a body value of the wrong type.
func wrongJSON(name string, v any, want, example string) error {
	got, _ := json.Marshal(v)
	return invalidArgument(name, fmt.Sprintf("%s is %s, but it must be %s, e.g. %s", got, jsonKind(v), want, example))
}
