package graphsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// A small OData engine: entities render to ordered JSON objects, $select
// keeps some of their properties, $expand adds navigation properties
// (with nested $select and $filter), $filter keeps the items a predicate
// accepts, and collections page by id.

type field struct {
	k string
	v any
}

// jobj is a JSON object that keeps its keys in order.
type jobj []field

// MarshalJSON writes the object with its keys in order.
func (o jobj) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			buf.WriteByte(',')
		}
		k, _ := json.Marshal(f.k)
		buf.Write(k)
		buf.WriteByte(':')
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(f.v); err != nil {
			return nil, fmt.Errorf("encode %s: %w", f.k, err)
		}
		buf.Truncate(buf.Len() - 1) // Encode's newline
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

func (o jobj) lookup(k string) (any, bool) {
	for _, f := range o {
		if f.k == k {
			return f.v, true
		}
	}
	return nil, false
}

// kind describes an entity type the simulator serves.
type kind struct {
	name     string   // qualified type name, for messages
	props    []string // structural properties, in Graph's order
	defaults []string // properties without $select; nil means all
	filters  map[string]string
	navs     map[string]*nav
	render   func(s *Server, id string) jobj // @odata.type first, then every property
}

// nav is a navigation property.
type nav struct {
	many   bool
	target func() *kind
	refs   func(s *Server, id string) []ref
}

// ref names an entity of some kind.
type ref struct {
	k  *kind
	id string
}

// expandItem is one item of $expand.
type expandItem struct {
	name   string
	sel    []string
	filter func(jobj) bool
}

// options are the parsed query options of a request.
type options struct {
	raw    map[string]string
	top    int
	after  string
	sel    []string
	exp    []expandItem
	filter func(jobj) bool
}

// parseOptions parses the query string for an endpoint serving kind k,
// allowing only the named options.
func (s *Server) parseOptions(rawQuery string, k *kind, allowed ...string) (*options, error) {
	raw, err := parseQuery(rawQuery, allowed...)
	if err != nil {
		return nil, err
	}
	o := &options{raw: raw, top: s.pageSize}
	if v, ok := raw["$top"]; ok {
		if o.top, err = parseTop(v); err != nil {
			return nil, err
		}
	}
	if v, ok := raw["$skiptoken"]; ok {
		if o.after, err = decodeSkiptoken(v); err != nil {
			return nil, err
		}
	}
	if v, ok := raw["$select"]; ok {
		if o.sel, err = parseSelectFor(k, v); err != nil {
			return nil, err
		}
	}
	if v, ok := raw["$filter"]; ok {
		if o.filter, err = parseFilter(k, v); err != nil {
			return nil, err
		}
	}
	if v, ok := raw["$expand"]; ok {
		if o.exp, err = parseExpand(k, v); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// parseSelectFor parses $select against k's properties; nil means the
// default set.
func parseSelectFor(k *kind, v string) ([]string, error) {
	if strings.TrimSpace(v) == "*" {
		return slices.Clone(k.props), nil
	}
	var out []string
	for item := range strings.SplitSeq(v, ",") {
		item = strings.TrimSpace(item)
		i := slices.IndexFunc(k.props, func(p string) bool { return strings.EqualFold(p, item) })
		if i < 0 {
			if _, isNav := navNamed(k, item); isNav {
				continue // selecting a navigation property is allowed and renders nothing without $expand
			}
			return nil, badQuery("invalidQuery", "Could not find a property named '%s' on type '%s'.", item, k.name)
		}
		if !slices.Contains(out, k.props[i]) {
			out = append(out, k.props[i])
		}
	}
	if out == nil {
		out = []string{"id"}
	}
	return out, nil
}

func navNamed(k *kind, name string) (string, bool) {
	for n := range k.navs {
		if strings.EqualFold(n, name) {
			return n, true
		}
	}
	return "", false
}

// splitTop splits s at sep where no parenthesis is open.
func splitTop(s string, sep byte) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
		case sep:
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// parseExpand parses $expand: navigation names, each optionally with
// nested ($select=…;$filter=…).
func parseExpand(k *kind, v string) ([]expandItem, error) {
	var out []expandItem
	for item := range slices.Values(splitTop(v, ',')) {
		item = strings.TrimSpace(item)
		name, nested, hasNested := strings.Cut(item, "(")
		name = strings.TrimSpace(name)
		canon, ok := navNamed(k, name)
		if !ok || name == "" {
			return nil, badQuery("invalidExpansion", "Could not find a navigation property named '%s' on type '%s'.", name, k.name)
		}
		e := expandItem{name: canon}
		target := k.navs[canon].target()
		if hasNested {
			if !strings.HasSuffix(nested, ")") {
				return nil, badQuery("invalidExpansion", "Invalid $expand item '%s': unbalanced parentheses.", item)
			}
			for opt := range slices.Values(splitTop(strings.TrimSuffix(nested, ")"), ';')) {
				key, val, _ := strings.Cut(strings.TrimSpace(opt), "=")
				key = strings.ToLower(strings.TrimSpace(key))
				if !strings.HasPrefix(key, "$") {
					key = "$" + key
				}
				var err error
				switch key {
				case "$select":
					e.sel, err = parseSelectFor(target, val)
				case "$filter":
					e.filter, err = parseFilter(target, val)
				default:
					err = badQuery("invalidExpansion", "Query option '%s' is not supported inside $expand.", key)
				}
				if err != nil {
					return nil, err
				}
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// parseFilter parses the $filter forms the simulator supports on k:
// "p eq v", "p in (v, …)" for the properties k lists, and for services
// "services/any(c:c/planId eq|in …)". Guid properties take unquoted
// literals, string properties quoted ones, bool ones true/false.
func parseFilter(k *kind, expr string) (func(jobj) bool, error) {
	expr = strings.TrimSpace(expr)
	if strings.HasPrefix(strings.ToLower(expr), "services/any(") && k.filters["services"] != "" {
		inner := strings.TrimSuffix(expr[len("services/any("):], ")")
		v, cond, ok := strings.Cut(inner, ":")
		v = strings.TrimSpace(v)
		cond = strings.TrimSpace(cond)
		if !ok || !strings.HasPrefix(strings.ToLower(cond), strings.ToLower(v)+"/planid ") {
			return nil, badQuery("invalidFilter", "Invalid filter clause: '%s'.", expr)
		}
		want, err := parseComparison("planId", "guid", strings.TrimSpace(cond[len(v)+len("/planId "):]))
		if err != nil {
			return nil, err
		}
		return func(o jobj) bool {
			svcs, _ := o.lookup("services")
			for _, sv := range svcs.([]any) {
				id, _ := sv.(jobj).lookup("planId")
				if want(id) {
					return true
				}
			}
			return false
		}, nil
	}
	prop, rest, _ := strings.Cut(expr, " ")
	typ := ""
	for p, t := range k.filters {
		if strings.EqualFold(p, prop) && p != "services" {
			prop, typ = p, t
		}
	}
	if typ == "" {
		return nil, badQuery("invalidFilter", "Unsupported or invalid query filter clause specified for property '%s' of resource '%s'.", prop, k.name)
	}
	want, err := parseComparison(prop, typ, strings.TrimSpace(rest))
	if err != nil {
		return nil, err
	}
	return func(o jobj) bool {
		v, _ := o.lookup(prop)
		return want(v)
	}, nil
}

// parseComparison parses "eq <literal>" or "in (<literal>, …)".
func parseComparison(prop, typ, rest string) (func(any) bool, error) {
	op, operand, _ := strings.Cut(rest, " ")
	operand = strings.TrimSpace(operand)
	var lits []string
	switch strings.ToLower(op) {
	case "eq":
		lits = []string{operand}
	case "in":
		if !strings.HasPrefix(operand, "(") || !strings.HasSuffix(operand, ")") {
			return nil, badQuery("invalidFilter", "Invalid filter clause: the 'in' operator needs a parenthesized list.")
		}
		for item := range strings.SplitSeq(operand[1:len(operand)-1], ",") {
			lits = append(lits, strings.TrimSpace(item))
		}
	default:
		return nil, badQuery("invalidFilter", "Invalid filter clause: operator '%s' is not supported for property '%s'.", op, prop)
	}
	var want []any
	for _, l := range lits {
		switch typ {
		case "guid":
			if strings.HasPrefix(l, "'") {
				return nil, badQuery("invalidFilter", "A binary operator with incompatible types was detected. Found operand types 'Edm.Guid' and 'Edm.String' for operator kind 'Equal'.")
			}
			if !isGUID(l) {
				return nil, badQuery("invalidFilter", "Unrecognized 'Edm.Guid' literal '%s' in filter clause.", l)
			}
			want = append(want, strings.ToLower(l))
		case "string":
			if len(l) < 2 || l[0] != '\'' || l[len(l)-1] != '\'' {
				return nil, badQuery("invalidFilter", "Invalid filter clause: '%s' is not a quoted string literal for property '%s'.", l, prop)
			}
			want = append(want, strings.ToLower(strings.ReplaceAll(l[1:len(l)-1], "''", "'")))
		case "bool":
			switch l {
			case "true":
				want = append(want, true)
			case "false":
				want = append(want, false)
			default:
				return nil, badQuery("invalidFilter", "Invalid filter clause: '%s' is not a Boolean literal.", l)
			}
		}
	}
	return func(v any) bool {
		if str, ok := v.(string); ok {
			v = strings.ToLower(str)
		}
		return slices.Contains(want, v)
	}, nil
}

// present renders an entity with a selection and expansions.
func (s *Server) present(r ref, sel []string, exp []expandItem) jobj {
	return s.presentFull(r, r.k.render(s, r.id), sel, exp)
}

func (s *Server) presentFull(r ref, full jobj, sel []string, exp []expandItem) jobj {
	if full == nil {
		return nil // gone since the path resolved
	}
	out := jobj{full[0]}
	props := sel
	if props == nil {
		props = r.k.defaults
		if props == nil {
			props = r.k.props
		}
	}
	for _, p := range props {
		if v, ok := full.lookup(p); ok {
			out = append(out, field{p, v})
		}
	}
	for _, e := range exp {
		n := r.k.navs[e.name]
		items := []any{}
		for _, target := range n.refs(s, r.id) {
			tf := target.k.render(s, target.id)
			if tf == nil || e.filter != nil && !e.filter(tf) {
				continue
			}
			items = append(items, s.presentFull(target, tf, e.sel, nil))
		}
		switch {
		case n.many:
			out = append(out, field{e.name, items})
		case len(items) > 0:
			out = append(out, field{e.name, items[0]})
		default:
			out = append(out, field{e.name, nil})
		}
	}
	return out
}

// page renders one page of a collection: the ids (sorted) after o.after
// that pass the filter, up to o.top, and reports whether more follow.
func (s *Server) page(k *kind, ids []string, o *options) (items []jobj, lastID string, more bool) {
	start := sort.SearchStrings(ids, o.after)
	if start < len(ids) && ids[start] == o.after && o.after != "" {
		start++
	}
	items = []jobj{}
	for _, id := range ids[start:] {
		r := ref{k, id}
		full := k.render(s, id)
		if full == nil || o.filter != nil && !o.filter(full) {
			continue
		}
		if len(items) == o.top {
			return items, lastID, true
		}
		items = append(items, s.presentFull(r, full, o.sel, o.exp))
		lastID = id
	}
	return items, lastID, false
}
