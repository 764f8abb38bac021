package graphsim

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"
)

// $apply on allotments: the documented form,
// groupby((p, …), aggregate(q with sum as alias, …)), over allottedUnits
// and consumedUnits, grouped by skuId and/or skuPartNumber. The result
// is plain objects without @odata.type or id, as in the example.

var (
	applyRe     = regexp.MustCompile(`^groupby\(\(([^()]*)\)(?:\s*,\s*aggregate\((.*)\))?\)$`)
	aggregateRe = regexp.MustCompile(`^(\w+)\s+with\s+sum\s+as\s+(\w+)$`)
)

func (s *Server) serveApply(w http.ResponseWriter, r *http.Request, apply string, o *options, now time.Time) {
	if o.exp != nil || o.sel != nil || o.raw["$top"] != "" || o.raw["$skiptoken"] != "" {
		writeQueryError(w, r, now, badQuery("invalidQuery", "$apply cannot be combined with $select, $expand, $top or $skiptoken in graphsim."))
		return
	}
	m := applyRe.FindStringSubmatch(strings.TrimSpace(apply))
	if m == nil {
		writeQueryError(w, r, now, badQuery("invalidQuery", "Unsupported $apply '%s': graphsim supports groupby((…), aggregate(… with sum as …)) only.", apply))
		return
	}
	var keys []string
	for k := range strings.SplitSeq(m[1], ",") {
		k = strings.TrimSpace(k)
		if k != "skuId" && k != "skuPartNumber" {
			writeQueryError(w, r, now, badQuery("invalidQuery", "Cannot group allotments by '%s'.", k))
			return
		}
		keys = append(keys, k)
	}
	type agg struct{ prop, alias string }
	var aggs []agg
	if m[2] != "" {
		for a := range strings.SplitSeq(m[2], ",") {
			am := aggregateRe.FindStringSubmatch(strings.TrimSpace(a))
			if am == nil || am[1] != "allottedUnits" && am[1] != "consumedUnits" {
				writeQueryError(w, r, now, badQuery("invalidQuery", "Unsupported aggregate '%s'.", a))
				return
			}
			aggs = append(aggs, agg{am[1], am[2]})
		}
	}
	s.mu.Lock()
	var order []string
	groups := map[string]jobj{}
	sums := map[string][]int64{}
	for _, id := range sortedIDs(s.st, "allotments", s.st.allotments) {
		full := renderAllotment(s, id)
		if o.filter != nil && !o.filter(full) {
			continue
		}
		var key []string
		var g jobj
		for _, k := range keys {
			v, _ := full.lookup(k)
			key = append(key, v.(string))
			g = append(g, field{k, v})
		}
		gk := strings.Join(key, "|")
		if _, ok := groups[gk]; !ok {
			order = append(order, gk)
			groups[gk] = g
			sums[gk] = make([]int64, len(aggs))
		}
		for i, a := range aggs {
			v, _ := full.lookup(a.prop)
			sums[gk][i] += int64(v.(int32))
		}
	}
	s.mu.Unlock()
	slices.Sort(order)
	items := []jobj{}
	for _, gk := range order {
		g := groups[gk]
		for i, a := range aggs {
			g = append(g, field{a.alias, sums[gk][i]})
		}
		items = append(items, g)
	}
	writeJSON(w, http.StatusOK, odataJSON, jobj{
		{"@odata.context", graphRoot(r) + "/$metadata#admin/cloudLicensing/allotments(" + strings.Join(keys, ",") + ")"},
		{"value", items},
	})
}
