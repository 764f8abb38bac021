package graphsim

import (
	"encoding/base64"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Delta queries on users and groups. Every directory change bumps a
// version counter; a delta round lists, in id order, the objects whose
// version is in (since, asOf], where since comes from the $deltatoken
// (0 on the first round) and asOf is the version when the round started.
// Pages carry since, asOf and the last id in the $skiptoken; the last
// page carries @odata.deltaLink with asOf as the next round's since.

const deltaPrefix = "graphsim.delta.v1:"

func encodeDelta(parts ...string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(deltaPrefix + strings.Join(parts, "|")))
}

func decodeDelta(tok string, n int) ([]string, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || !strings.HasPrefix(string(b), deltaPrefix) {
		return nil, badQuery("invalidQuery", "The delta or skip token is not valid.")
	}
	parts := strings.SplitN(strings.TrimPrefix(string(b), deltaPrefix), "|", n)
	if len(parts) != n {
		return nil, badQuery("invalidQuery", "The delta or skip token is not valid.")
	}
	return parts, nil
}

func (s *Server) serveDelta(w http.ResponseWriter, r *http.Request, t *target, now time.Time) {
	raw, err := parseQuery(r.URL.RawQuery, "$select", "$top", "$skiptoken", "$deltatoken")
	if err != nil {
		writeQueryError(w, r, now, err)
		return
	}
	users := t.k == userK
	var sel []string
	wantMembers := true
	if v, ok := raw["$select"]; ok {
		k := t.k
		if !users {
			// groups/delta selects the members navigation too.
			var props []string
			wantMembers = false
			for p := range strings.SplitSeq(v, ",") {
				if strings.EqualFold(strings.TrimSpace(p), "members") {
					wantMembers = true
					continue
				}
				props = append(props, p)
			}
			v = strings.Join(props, ",")
		}
		if v != "" {
			if sel, err = parseSelectFor(k, v); err != nil {
				writeQueryError(w, r, now, err)
				return
			}
		} else {
			sel = []string{"id"}
		}
	}
	top := s.pageSize
	if v, ok := raw["$top"]; ok {
		if top, err = parseTop(v); err != nil {
			writeQueryError(w, r, now, err)
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	var since, asOf int64
	after := ""
	switch {
	case raw["$skiptoken"] != "":
		parts, err := decodeDelta(raw["$skiptoken"], 3)
		if err != nil {
			writeQueryError(w, r, now, err)
			return
		}
		since, _ = strconv.ParseInt(parts[0], 10, 64)
		asOf, _ = strconv.ParseInt(parts[1], 10, 64)
		after = parts[2]
	case raw["$deltatoken"] != "":
		parts, err := decodeDelta(raw["$deltatoken"], 1)
		if err != nil {
			writeQueryError(w, r, now, err)
			return
		}
		since, _ = strconv.ParseInt(parts[0], 10, 64)
		if since < st.deltaFloor {
			// Graph forgets old sync states; the caller must start over.
			writeGraphError(w, r, now, http.StatusGone, "syncStateNotFound", "syncStateNotFound",
				"The delta token is expired or no longer valid; start a new round without it (graphsim).")
			return
		}
		asOf = st.version
	default:
		asOf = st.version
	}
	in := func(v int64) bool { return v > since && v <= asOf }
	type entry struct {
		id      string
		removed bool
	}
	var entries []entry
	if users {
		for id, u := range st.users {
			if in(u.version) {
				entries = append(entries, entry{id: id})
			}
		}
		if since > 0 {
			for id, v := range st.userTombs {
				if in(v) {
					entries = append(entries, entry{id: id, removed: true})
				}
			}
		}
	} else {
		for id, g := range st.groups {
			if in(g.version) {
				entries = append(entries, entry{id: id})
			}
		}
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.id, b.id) })
	items := []jobj{}
	last, more := "", false
	for _, e := range entries {
		if e.id <= after {
			continue
		}
		if len(items) == top {
			more = true
			break
		}
		last = e.id
		if e.removed {
			items = append(items, jobj{{"@odata.type", userType}, {"id", e.id}, {"@removed", jobj{{"reason", "changed"}}}})
			continue
		}
		o := s.present(ref{t.k, e.id}, sel, nil)
		if !users && wantMembers {
			o = append(o, field{"members@delta", s.memberDelta(st.groups[e.id], since, asOf)})
		}
		items = append(items, o)
	}
	base := graphRoot(r) + "/" + t.ctx + "?"
	keep := map[string]string{}
	for _, k := range []string{"$select", "$top"} {
		if v, ok := raw[k]; ok {
			keep[k] = v
		}
	}
	out := jobj{{"@odata.context", graphRoot(r) + "/$metadata#" + strings.TrimSuffix(t.ctx, "/delta") + selectSuffix(sel)}}
	if more {
		keep["$skiptoken"] = encodeDelta(strconv.FormatInt(since, 10), strconv.FormatInt(asOf, 10), last)
		out = append(out, field{"@odata.nextLink", base + queryString(keep)})
	} else {
		keep["$deltatoken"] = encodeDelta(strconv.FormatInt(asOf, 10))
		out = append(out, field{"@odata.deltaLink", base + queryString(keep)})
	}
	out = append(out, field{"value", items})
	writeJSON(w, http.StatusOK, odataJSON, out)
}

// memberDelta lists a group's membership changes in (since, asOf]: on the
// first round every member, later the net change per member, removed
// ones marked with @removed.
func (s *Server) memberDelta(g *groupRec, since, asOf int64) []jobj {
	last := map[string]memberChange{}
	for _, c := range g.log {
		if c.version > since && c.version <= asOf {
			last[c.member] = c
		}
	}
	ids := make([]string, 0, len(last))
	for id, c := range last {
		if since == 0 && c.removed {
			continue
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := []jobj{}
	for _, id := range ids {
		typ := userType
		if s.st.devices[id] != nil {
			typ = deviceType
		}
		o := jobj{{"@odata.type", typ}, {"id", id}}
		if last[id].removed {
			o = append(o, field{"@removed", jobj{{"reason", "deleted"}}})
		}
		out = append(out, o)
	}
	return out
}
