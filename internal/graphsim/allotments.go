package graphsim

import (
	"net/http"
	"slices"
	"strings"
	"time"
)

// Wire types of allotments, written from the documentation and the
// examples in shared/graph/fixtures. Pointer fields are left nil when
// $select leaves the property out; a non-nil pointer to an empty slice
// still renders as [] (services is not nullable).
type wireAllotment struct {
	ODataType     string              `json:"@odata.type"`
	ID            *string             `json:"id,omitempty"`
	AllottedUnits *int32              `json:"allottedUnits,omitempty"`
	AssignableTo  *string             `json:"assignableTo,omitempty"`
	ConsumedUnits *int32              `json:"consumedUnits,omitempty"`
	Services      *[]wireService      `json:"services,omitempty"`
	SKUID         *string             `json:"skuId,omitempty"`
	SKUPartNumber *string             `json:"skuPartNumber,omitempty"`
	Subscriptions *[]wireSubscription `json:"subscriptions,omitempty"`
}

type wireService struct {
	ODataType    string `json:"@odata.type"`
	AssignableTo string `json:"assignableTo"`
	PlanID       string `json:"planId"`
	PlanName     string `json:"planName"`
}

type wireSubscription struct {
	ODataType         string `json:"@odata.type"`
	SubscriptionID    string `json:"subscriptionId"`
	NextLifecycleDate string `json:"nextLifecycleDate"`
	StartDate         string `json:"startDate"`
	State             string `json:"state"`
	Tags              string `json:"tags"`
}

// wireAllotmentList is a page of the allotments collection.
type wireAllotmentList struct {
	Context  string          `json:"@odata.context"`
	NextLink string          `json:"@odata.nextLink,omitempty"`
	Value    []wireAllotment `json:"value"`
}

// wireAllotmentEntity is a single allotment at the top level, the way
// OData answers a GET of one entity (see docs/graph-simulator.md for why
// not wrapped in "value").
type wireAllotmentEntity struct {
	Context string `json:"@odata.context"`
	wireAllotment
}

const (
	allotmentType    = "#microsoft.graph.cloudLicensing.allotment"
	serviceType      = "microsoft.graph.cloudLicensing.service" // no '#', as the list example writes it
	subscriptionType = "#microsoft.graph.cloudLicensing.subscription"
)

// allotmentProperties are the structural properties of allotment, in the
// order Graph writes them.
var allotmentProperties = []string{"id", "allottedUnits", "assignableTo", "consumedUnits", "services", "skuId", "skuPartNumber", "subscriptions"}

// parseSelect parses $select into canonical property names; nil means all.
func parseSelect(v string, present bool) ([]string, error) {
	if !present || strings.TrimSpace(v) == "*" {
		return nil, nil
	}
	var out []string
	for item := range strings.SplitSeq(v, ",") {
		item = strings.TrimSpace(item)
		i := slices.IndexFunc(allotmentProperties, func(p string) bool { return strings.EqualFold(p, item) })
		if i < 0 {
			return nil, badQuery("invalidQuery", "Could not find a property named '%s' on type 'microsoft.graph.cloudLicensing.allotment'.", item)
		}
		if !slices.Contains(out, allotmentProperties[i]) {
			out = append(out, allotmentProperties[i])
		}
	}
	return out, nil
}

// selectSuffix is the $select part of @odata.context, e.g. "(id,skuId)".
func selectSuffix(sel []string) string {
	if sel == nil {
		return ""
	}
	return "(" + strings.Join(sel, ",") + ")"
}

func flags(fs []string) string {
	if len(fs) == 0 {
		return "none"
	}
	return strings.Join(fs, ",")
}

// toWire renders a in wire form with the selected properties (nil: all).
// The caller holds s.mu.
func toWire(a *AllotmentState, sel []string) wireAllotment {
	want := func(p string) bool { return sel == nil || slices.Contains(sel, p) }
	w := wireAllotment{ODataType: allotmentType}
	if want("id") {
		w.ID = new(a.ID)
	}
	if want("allottedUnits") {
		w.AllottedUnits = new(a.AllottedUnits)
	}
	if want("assignableTo") {
		w.AssignableTo = new(flags(a.AssignableTo))
	}
	if want("consumedUnits") {
		w.ConsumedUnits = new(a.ConsumedUnits)
	}
	if want("services") {
		svcs := make([]wireService, 0, len(a.Services))
		for _, p := range a.Services {
			svcs = append(svcs, wireService{ODataType: serviceType, AssignableTo: flags(p.AssignableTo), PlanID: p.ID, PlanName: p.Name})
		}
		w.Services = &svcs
	}
	if want("skuId") {
		w.SKUID = new(a.SKUID)
	}
	if want("skuPartNumber") {
		w.SKUPartNumber = new(a.SKUPartNumber)
	}
	if want("subscriptions") {
		subs := make([]wireSubscription, 0, len(a.Subscriptions))
		for _, sub := range a.Subscriptions {
			subs = append(subs, wireSubscription{
				ODataType:         subscriptionType,
				SubscriptionID:    sub.SubscriptionID,
				NextLifecycleDate: wireDate(sub.NextLifecycleDate),
				StartDate:         wireDate(sub.StartDate),
				State:             sub.State,
				Tags:              flags(sub.Tags),
			})
		}
		w.Subscriptions = &subs
	}
	return w
}

// wireDate renders a YYYY-MM-DD date the way the documented examples show
// subscription dates: midnight UTC with milliseconds.
func wireDate(d string) string { return d + "T00:00:00.000Z" }

// listAllotments serves GET /admin/cloudLicensing/allotments: paged in id
// order, $top (1..999) sets the page size, $skiptoken continues, $select
// and $filter (skuId eq/in) as documented.
func (s *Server) listAllotments(w http.ResponseWriter, r *http.Request, now time.Time) {
	opts, err := parseQuery(r.URL.RawQuery, "$top", "$skiptoken", "$select", "$filter")
	if err != nil {
		writeQueryError(w, r, now, err)
		return
	}
	top := s.pageSize
	if v, ok := opts["$top"]; ok {
		if top, err = parseTop(v); err != nil {
			writeQueryError(w, r, now, err)
			return
		}
	}
	var after string
	if v, ok := opts["$skiptoken"]; ok {
		if after, err = decodeSkiptoken(v); err != nil {
			writeQueryError(w, r, now, err)
			return
		}
	}
	v, ok := opts["$select"]
	sel, err := parseSelect(v, ok)
	if err != nil {
		writeQueryError(w, r, now, err)
		return
	}
	var skus map[string]bool
	if v, ok := opts["$filter"]; ok {
		if skus, err = parseSKUFilter(v); err != nil {
			writeQueryError(w, r, now, err)
			return
		}
	}

	page, lastID, more := s.allotmentPage(after, top, skus, sel)
	out := wireAllotmentList{
		Context: graphRoot(r) + "/$metadata#admin/cloudLicensing/allotments" + selectSuffix(sel),
		Value:   page,
	}
	if more {
		next := map[string]string{"$skiptoken": encodeSkiptoken(lastID)}
		for _, k := range []string{"$filter", "$select", "$top"} {
			if v, ok := opts[k]; ok {
				next[k] = v
			}
		}
		out.NextLink = graphRoot(r) + "/admin/cloudLicensing/allotments?" + queryString(next)
	}
	writeJSON(w, http.StatusOK, odataJSON, out)
}

// allotmentPage returns up to top allotments with ids after the given one
// that pass the SKU filter (nil: all), the id of the last one, and whether
// more follow.
func (s *Server) allotmentPage(after string, top int, skus map[string]bool, sel []string) (page []wireAllotment, lastID string, more bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.st.allotments))
	for id, a := range s.st.allotments {
		if id > after && (skus == nil || skus[strings.ToLower(a.SKUID)]) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	if more = len(ids) > top; more {
		ids = ids[:top]
	}
	page = make([]wireAllotment, 0, len(ids))
	for _, id := range ids {
		page = append(page, toWire(s.st.allotments[id], sel))
	}
	if len(ids) > 0 {
		lastID = ids[len(ids)-1]
	}
	return page, lastID, more
}

// getAllotment serves GET /admin/cloudLicensing/allotments/{id}.
func (s *Server) getAllotment(w http.ResponseWriter, r *http.Request, now time.Time, id string) {
	opts, err := parseQuery(r.URL.RawQuery, "$select")
	if err != nil {
		writeQueryError(w, r, now, err)
		return
	}
	v, ok := opts["$select"]
	sel, err := parseSelect(v, ok)
	if err != nil {
		writeQueryError(w, r, now, err)
		return
	}
	s.mu.Lock()
	a, found := s.st.allotments[id]
	var wa wireAllotment
	if found {
		wa = toWire(a, sel)
	}
	s.mu.Unlock()
	if !found {
		writeGraphError(w, r, now, http.StatusNotFound, "notFound", "resourceNotFound",
			"The allotment '"+id+"' was not found.")
		return
	}
	writeJSON(w, http.StatusOK, odataJSON, wireAllotmentEntity{
		Context:       graphRoot(r) + "/$metadata#admin/cloudLicensing/allotments" + selectSuffix(sel) + "/$entity",
		wireAllotment: wa,
	})
}
