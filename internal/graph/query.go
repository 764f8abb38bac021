package graph

import (
	"fmt"
	"strconv"
	"strings"
)

// Query holds the OData system query options of a request. Property names
// come from this package's code; values that come from data go through
// StringLiteral or GUIDLiteral before they reach a Filter.
type Query struct {
	Select []string // $select
	Expand []Expand // $expand
	Filter string   // $filter, built with StringLiteral/GUIDLiteral/GUIDIn
	Top    int      // $top; 0 leaves it out
	Apply  string   // $apply, e.g. groupby((skuId), aggregate(…))
}

// Expand is one navigation property of $expand, with its nested options.
type Expand struct {
	Property string
	Select   []string
	Filter   string
}

// String renders e as OData writes it: "allotment($select=id;$filter=…)".
func (e Expand) String() string {
	var opts []string
	if len(e.Select) > 0 {
		opts = append(opts, "$select="+strings.Join(e.Select, ","))
	}
	if e.Filter != "" {
		opts = append(opts, "$filter="+e.Filter)
	}
	if len(opts) == 0 {
		return e.Property
	}
	return e.Property + "(" + strings.Join(opts, ";") + ")"
}

// Encode returns the query string (without "?"), options in a fixed order,
// with "$" literal in names and values percent-encoded (spaces as %20, so
// that no server can read a "+" as a plus sign). "" when q is empty.
func (q Query) Encode() string {
	var parts []string
	add := func(name, v string) { parts = append(parts, name+"="+escapeQueryValue(v)) }
	if len(q.Select) > 0 {
		add("$select", strings.Join(q.Select, ","))
	}
	if len(q.Expand) > 0 {
		ex := make([]string, len(q.Expand))
		for i, e := range q.Expand {
			ex[i] = e.String()
		}
		add("$expand", strings.Join(ex, ","))
	}
	if q.Filter != "" {
		add("$filter", q.Filter)
	}
	if q.Apply != "" {
		add("$apply", q.Apply)
	}
	if q.Top > 0 {
		add("$top", strconv.Itoa(q.Top))
	}
	return strings.Join(parts, "&")
}

// escapeQueryValue percent-encodes v for a query string, leaving the
// characters OData expressions are made of readable: unreserved ones and
// $ , ( ) ' / : @ * = (a key ends at the first =, so nested "$select=id"
// stays readable). Everything else, including ; & + # % and space, is
// encoded: Go servers refuse ; as a separator, and + could be read as a
// space.
func escapeQueryValue(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		ch := v[i]
		switch {
		case ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z', ch >= '0' && ch <= '9',
			strings.IndexByte("-._~$,()'/:@*=", ch) >= 0:
			b.WriteByte(ch)
		default:
			fmt.Fprintf(&b, "%%%02X", ch)
		}
	}
	return b.String()
}

// StringLiteral returns s as an OData string literal: in single quotes,
// with each single quote inside written twice, so that no value can end
// the literal and inject an expression.
func StringLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// GUIDLiteral returns s as an OData Edm.Guid literal (unquoted, lower
// case) after checking that it has the 8-4-4-4-12 hexadecimal form.
func GUIDLiteral(s string) (string, error) {
	if !IsGUID(s) {
		return "", fmt.Errorf("%q is not a GUID", s)
	}
	return strings.ToLower(s), nil
}

// GUIDIn returns the filter "<prop> in (<g1>, <g2>, …)" for Edm.Guid
// values, each validated.
func GUIDIn(prop string, guids []string) (string, error) {
	if len(guids) == 0 {
		return "", fmt.Errorf("%s in (): empty list", prop)
	}
	lits := make([]string, len(guids))
	for i, g := range guids {
		l, err := GUIDLiteral(g)
		if err != nil {
			return "", err
		}
		lits[i] = l
	}
	return prop + " in (" + strings.Join(lits, ", ") + ")", nil
}

// IsGUID reports whether s has the 8-4-4-4-12 hexadecimal form (any
// version, either case).
func IsGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch i {
		case 8, 13, 18, 23:
			if ch != '-' {
				return false
			}
		default:
			if !(ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'f' || ch >= 'A' && ch <= 'F') {
				return false
			}
		}
	}
	return true
}
