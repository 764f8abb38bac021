package graphsim_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/seatledger/seatledger/internal/graphsim"
)

// listAll follows @odata.nextLink from url and returns every page.
func listAll(t *testing.T, hc *http.Client, url, token string) []response {
	t.Helper()
	var pages []response
	for url != "" {
		r := get(t, hc, url, token)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: status %d: %s", url, r.status, r.raw)
		}
		pages = append(pages, r)
		if len(pages) > 1000 {
			t.Fatal("more than 1000 pages: the next links loop")
		}
		url, _ = r.body["@odata.nextLink"].(string)
	}
	return pages
}

func items(r response) []map[string]any {
	var out []map[string]any
	for _, v := range r.body["value"].([]any) {
		out = append(out, v.(map[string]any))
	}
	return out
}

func TestServer_ListAllotments_Paging(t *testing.T) {
	t.Parallel()
	tenant := bigTenant(250)
	s := start(t, graphsim.Options{Tenant: &tenant, PageSize: 7})
	tok := s.token(t, "CloudLicensing.Read.All")

	pages := listAll(t, s.hc, allotmentsURL(s.info, ""), tok)
	if got, want := len(pages), (250+6)/7; got != want {
		t.Errorf("pages = %d, want %d", got, want)
	}
	seen := map[string]int{}
	for i, p := range pages {
		its := items(p)
		if len(its) > 7 || i < len(pages)-1 && len(its) != 7 {
			t.Errorf("page %d has %d items, want 7 (fewer only on the last)", i, len(its))
		}
		if ctx, _ := p.body["@odata.context"].(string); ctx != s.info.GraphURL+"/$metadata#admin/cloudLicensing/allotments" {
			t.Errorf("page %d: @odata.context = %q", i, ctx)
		}
		if next, ok := p.body["@odata.nextLink"].(string); ok {
			if !strings.HasPrefix(next, s.info.GraphURL+"/admin/cloudLicensing/allotments?$skiptoken=") {
				t.Errorf("page %d: nextLink %q is not an absolute link with only a $skiptoken", i, next)
			}
		}
		for _, it := range its {
			seen[it["id"].(string)]++
		}
	}
	var want []string
	for _, a := range s.sim.Allotments() {
		want = append(want, a.ID)
	}
	var got []string
	for id, n := range seen {
		if n != 1 {
			t.Errorf("allotment %s listed %d times", id, n)
		}
		got = append(got, id)
	}
	slices.Sort(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("listed ids differ from Allotments() (-want +got):\n%s", diff)
	}
}

func TestServer_ListAllotments_Top(t *testing.T) {
	t.Parallel()
	tenant := bigTenant(120)
	s := start(t, graphsim.Options{Tenant: &tenant})
	tok := s.token(t, "CloudLicensing.Read.All")

	t.Run("default page size is 100", func(t *testing.T) {
		pages := listAll(t, s.hc, allotmentsURL(s.info, ""), tok)
		if len(pages) != 2 || len(items(pages[0])) != 100 || len(items(pages[1])) != 20 {
			t.Errorf("got %d pages, want 100 + 20 items", len(pages))
		}
	})
	t.Run("top sets the page size and is repeated in the next link", func(t *testing.T) {
		pages := listAll(t, s.hc, allotmentsURL(s.info, "$top=50"), tok)
		var sizes []int
		for _, p := range pages[:len(pages)-1] {
			next := p.body["@odata.nextLink"].(string)
			if !strings.Contains(next, "$top=50") {
				t.Errorf("nextLink %q does not repeat $top=50", next)
			}
		}
		for _, p := range pages {
			sizes = append(sizes, len(items(p)))
		}
		if diff := cmp.Diff([]int{50, 50, 20}, sizes); diff != "" {
			t.Errorf("page sizes (-want +got):\n%s", diff)
		}
	})
	t.Run("top without the dollar (beta)", func(t *testing.T) {
		r := get(t, s.hc, allotmentsURL(s.info, "top=999"), tok)
		if r.status != http.StatusOK || len(items(r)) != 120 || r.body["@odata.nextLink"] != nil {
			t.Errorf("top=999: status %d, %d items, nextLink %v", r.status, len(items(r)), r.body["@odata.nextLink"])
		}
	})
	for _, bad := range []string{"0", "1000", "-1", "ten", ""} {
		t.Run("top="+bad+" is refused", func(t *testing.T) {
			r := get(t, s.hc, allotmentsURL(s.info, "$top="+bad), tok)
			wantGraphError(t, r, http.StatusBadRequest, "badRequest")
		})
	}
	t.Run("a forged skiptoken is refused", func(t *testing.T) {
		r := get(t, s.hc, allotmentsURL(s.info, "$skiptoken=bm90LW91cnM"), tok)
		wantGraphError(t, r, http.StatusBadRequest, "badRequest")
	})
}

func TestServer_ListAllotments_Select(t *testing.T) {
	t.Parallel()
	tenant := bigTenant(12)
	s := start(t, graphsim.Options{Tenant: &tenant, PageSize: 5})
	tok := s.token(t, "CloudLicensing.Read.All")

	pages := listAll(t, s.hc, allotmentsURL(s.info, "$select=skuId,consumedUnits"), tok)
	if len(pages) != 3 {
		t.Fatalf("got %d pages, want 3", len(pages))
	}
	for i, p := range pages {
		if got, want := p.body["@odata.context"], s.info.GraphURL+"/$metadata#admin/cloudLicensing/allotments(skuId,consumedUnits)"; got != want {
			t.Errorf("page %d: @odata.context = %v, want %v", i, got, want)
		}
		if next, ok := p.body["@odata.nextLink"].(string); ok && !strings.Contains(next, "$select=skuId%2CconsumedUnits") {
			t.Errorf("page %d: nextLink %q does not repeat $select", i, next)
		}
		for _, it := range items(p) {
			var keys []string
			for k := range it {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			if diff := cmp.Diff([]string{"@odata.type", "consumedUnits", "skuId"}, keys); diff != "" {
				t.Errorf("selected keys (-want +got):\n%s", diff)
			}
		}
	}

	r := get(t, s.hc, allotmentsURL(s.info, "$select=id,price"), tok)
	wantGraphError(t, r, http.StatusBadRequest, "badRequest")

	one := s.sim.Allotments()[3]
	r = get(t, s.hc, s.info.GraphURL+"/admin/cloudLicensing/allotments/"+one.ID+"?$select=id,allottedUnits", tok)
	want := map[string]any{
		"@odata.context": s.info.GraphURL + "/$metadata#admin/cloudLicensing/allotments(id,allottedUnits)/$entity",
		"@odata.type":    "#microsoft.graph.cloudLicensing.allotment",
		"id":             one.ID,
		"allottedUnits":  float64(one.AllottedUnits),
	}
	if diff := cmp.Diff(want, r.body); diff != "" {
		t.Errorf("GET one with $select (-want +got):\n%s", diff)
	}
}

func TestServer_ListAllotments_Filter(t *testing.T) {
	t.Parallel()
	tenant := bigTenant(30) // every third allotment is skuB
	s := start(t, graphsim.Options{Tenant: &tenant, PageSize: 4})
	tok := s.token(t, "CloudLicensing.Read.All")

	count := func(query string) map[string]int {
		t.Helper()
		n := map[string]int{}
		for _, p := range listAll(t, s.hc, allotmentsURL(s.info, query), tok) {
			if next, ok := p.body["@odata.nextLink"].(string); ok && !strings.Contains(next, "$filter=") {
				t.Errorf("nextLink %q does not repeat $filter", next)
			}
			for _, it := range items(p) {
				n[it["skuId"].(string)]++
			}
		}
		return n
	}
	if diff := cmp.Diff(map[string]int{skuB: 10}, count("$filter=skuId eq "+skuB)); diff != "" {
		t.Errorf("skuId eq (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{skuA: 20}, count("$filter=skuId eq "+strings.ToUpper(skuA))); diff != "" {
		t.Errorf("skuId eq, upper case (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{skuA: 20, skuB: 10}, count("$filter=skuId in ("+skuA+", "+skuB+")")); diff != "" {
		t.Errorf("skuId in (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{}, count("$filter=skuId eq 00000000-0000-0000-0000-000000000000")); diff != "" {
		t.Errorf("no match (-want +got):\n%s", diff)
	}
	for _, bad := range []string{
		"skuId eq '" + skuA + "'",
		"skuPartNumber eq 'SKU_A'",
		"skuId ne " + skuA,
		"skuId eq not-a-guid",
		"skuId",
	} {
		r := get(t, s.hc, allotmentsURL(s.info, "$filter="+bad), tok)
		wantGraphError(t, r, http.StatusBadRequest, "badRequest")
		if inner := r.body["error"].(map[string]any)["innerError"].(map[string]any); inner["code"] != "invalidFilter" {
			t.Errorf("$filter=%s: innerError.code = %v, want invalidFilter", bad, inner["code"])
		}
	}
}

func TestServer_UnsupportedQueryOptions(t *testing.T) {
	t.Parallel()
	s := start(t, graphsim.Options{})
	tok := s.token(t, "CloudLicensing.Read.All")
	id := s.sim.Allotments()[0].ID
	for _, url := range []string{
		allotmentsURL(s.info, "$expand=nothing"),
		allotmentsURL(s.info, "$orderby=skuId"),
		allotmentsURL(s.info, "$count=true"),
		allotmentsURL(s.info, "$apply=filter(allottedUnits gt 5)"),
		allotmentsURL(s.info, "foo=bar"),
		allotmentsURL(s.info, "$top=5&$top=6"),
		s.info.GraphURL + "/admin/cloudLicensing/allotments/" + id + "?$top=1",
		s.info.GraphURL + "/admin/cloudLicensing/allotments/" + id + "?$filter=skuId%20eq%20" + skuA,
	} {
		r := get(t, s.hc, url, tok, "client-request-id", "0f0e0d0c-0b0a-4009-8807-060504030201")
		wantGraphError(t, r, http.StatusBadRequest, "badRequest")
		if got := r.header.Get("client-request-id"); got != "0f0e0d0c-0b0a-4009-8807-060504030201" {
			t.Errorf("%s: client-request-id = %q, want the caller's", url, got)
		}
	}
}

func TestServer_GetAllotment(t *testing.T) {
	t.Parallel()
	s := start(t, graphsim.Options{})
	tok := s.token(t, "Directory.Read.All") // a higher permission is accepted too

	for _, a := range s.sim.Allotments() {
		r := get(t, s.hc, s.info.GraphURL+"/admin/cloudLicensing/allotments/"+a.ID, tok)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", a.ID, r.status, r.raw)
		}
		if r.body["id"] != a.ID || r.body["value"] != nil {
			t.Errorf("GET %s: want the entity at the top level, got %s", a.ID, r.raw)
		}
		if got, want := r.body["@odata.context"], s.info.GraphURL+"/$metadata#admin/cloudLicensing/allotments/$entity"; got != want {
			t.Errorf("@odata.context = %v, want %v", got, want)
		}
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("Content-Type = %q", ct)
		}
	}

	r := get(t, s.hc, s.info.GraphURL+"/admin/cloudLicensing/allotments/no-such-allotment", tok)
	wantGraphError(t, r, http.StatusNotFound, "notFound")

	r = get(t, s.hc, s.info.GraphURL+"/admin/cloudLicensing/nothingHere", tok)
	wantGraphError(t, r, http.StatusBadRequest, "BadRequest")

	req, _ := http.NewRequest(http.MethodDelete, s.info.GraphURL+"/admin/cloudLicensing/allotments/"+s.sim.Allotments()[0].ID, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	wantGraphError(t, do(t, s.hc, req), http.StatusMethodNotAllowed, "methodNotAllowed")
}

// shape maps a decoded JSON value to its structure: objects to their keys'
// shapes, arrays to the merged shape of their elements, scalars to their
// kind. Two bodies with equal shapes have the same field names and JSON
// types.
func shape(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range v {
			out[k] = shape(e)
		}
		return out
	case []any:
		var merged any
		for _, e := range v {
			merged = merge(merged, shape(e))
		}
		return []any{merged}
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	case nil:
		return "null"
	}
	return "unknown"
}

// merge unions two shapes (objects key by key).
func merge(a, b any) any {
	ma, okA := a.(map[string]any)
	mb, okB := b.(map[string]any)
	if a == nil {
		return b
	}
	if !okA || !okB {
		if la, ok := a.([]any); ok {
			if lb, ok := b.([]any); ok {
				return []any{merge(la[0], lb[0])}
			}
		}
		return a
	}
	out := map[string]any{}
	for k, v := range ma {
		out[k] = v
	}
	for k, v := range mb {
		out[k] = merge(out[k], v)
	}
	return out
}

func readFixture(t *testing.T, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

// TestServer_AllotmentShapeMatchesFixtures checks the simulator's bodies
// against the documented examples: the same field names with the same JSON
// types. The list example has no subscriptions and the get example has
// them, so an allotment's documented shape is the union of both.
func TestServer_AllotmentShapeMatchesFixtures(t *testing.T) {
	t.Parallel()
	s := start(t, graphsim.Options{})
	tok := s.token(t, "CloudLicensing.Read.All")

	list := readFixture(t, "list-allotments.response.json")
	one := readFixture(t, "get-allotment.response.json")
	// Where the two examples disagree on '#' in a nested @odata.type, the
	// value's kind (string) is what matters here.
	documented := merge(shape(list["value"]).([]any)[0], shape(one["value"]))

	r := get(t, s.hc, allotmentsURL(s.info, ""), tok)
	gotList := shape(r.body).(map[string]any)
	if diff := cmp.Diff([]any{documented}, gotList["value"]); diff != "" {
		t.Errorf("list item shape differs from the documented one (-documented +simulator):\n%s", diff)
	}
	if diff := cmp.Diff("string", gotList["@odata.context"]); diff != "" {
		t.Errorf("@odata.context (-want +got):\n%s", diff)
	}

	r = get(t, s.hc, s.info.GraphURL+"/admin/cloudLicensing/allotments/"+s.sim.Allotments()[0].ID, tok)
	gotOne := shape(r.body).(map[string]any)
	delete(gotOne, "@odata.context") // the examples omit it; Graph sends it
	if diff := cmp.Diff(documented, any(gotOne)); diff != "" {
		t.Errorf("single allotment shape differs from the documented one (-documented +simulator):\n%s", diff)
	}

	// Values in the documented formats, not just the types.
	first := r.body
	sub := first["subscriptions"].([]any)[0].(map[string]any)
	for _, k := range []string{"startDate", "nextLifecycleDate"} {
		// Edm.Date in Graph's metadata: OData JSON writes YYYY-MM-DD, and
		// the SDKs' strict date parsers refuse a timestamp.
		if v := sub[k].(string); !isEdmDate(v) {
			t.Errorf("subscription %s = %q, want an Edm.Date (YYYY-MM-DD)", k, v)
		}
	}
	for _, sv := range first["services"].([]any) {
		if typ := sv.(map[string]any)["@odata.type"]; !strings.HasSuffix(typ.(string), "microsoft.graph.cloudLicensing.service") {
			t.Errorf("service @odata.type = %v", typ)
		}
	}
}

// TestServer_HandlerOverPlainHTTP mounts Handler on an httptest server: the
// absolute links follow the scheme and host the request came in on.
func TestServer_HandlerOverPlainHTTP(t *testing.T) {
	t.Parallel()
	tenant := bigTenant(3)
	sim, err := graphsim.New(graphsim.Options{Tenant: &tenant, PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(sim.Handler())
	t.Cleanup(ts.Close)
	tok, err := sim.MintToken([]string{"CloudLicensing.Read.All"})
	if err != nil {
		t.Fatal(err)
	}
	pages := listAll(t, ts.Client(), ts.URL+"/beta/admin/cloudLicensing/allotments", tok)
	if len(pages) != 2 {
		t.Fatalf("got %d pages, want 2", len(pages))
	}
	if next := pages[0].body["@odata.nextLink"].(string); !strings.HasPrefix(next, ts.URL+"/beta/") {
		t.Errorf("nextLink = %q, want it under %s", next, ts.URL)
	}
}

// isEdmDate reports whether v is an OData Edm.Date: YYYY-MM-DD and nothing
// else.
func isEdmDate(v string) bool {
	_, err := time.Parse(time.DateOnly, v)
	return err == nil
}
