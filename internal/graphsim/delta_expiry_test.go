package graphsim_test

import (
	"net/http"
	"testing"

	"github.com/seatledger/seatledger/internal/graphsim"
)

// TestUsersDelta_Expired: after ExpireDeltaLinks, an old delta link
// answers 410 syncStateNotFound, and a new round without a token works
// and hands out a link that works.
func TestUsersDelta_Expired(t *testing.T) {
	t.Parallel()
	s := start(t, graphsim.Options{PageSize: 999})
	tok := s.token(t, "User.Read.All")
	round := func(url string) string {
		t.Helper()
		for {
			r := get(t, s.hc, url, tok)
			if r.status != http.StatusOK {
				t.Fatalf("GET %s = %d %s", url, r.status, r.raw)
			}
			if next, ok := r.body["@odata.nextLink"].(string); ok {
				url = next
				continue
			}
			link, _ := r.body["@odata.deltaLink"].(string)
			if link == "" {
				t.Fatalf("the last page of a delta round has no @odata.deltaLink: %s", r.raw)
			}
			return link
		}
	}
	link := round(s.info.GraphURL + "/users/delta?$select=id,department")
	s.sim.ExpireDeltaLinks()
	wantGraphError(t, get(t, s.hc, link, tok), http.StatusGone, "syncStateNotFound")
	fresh := round(s.info.GraphURL + "/users/delta?$select=id,department")
	if r := get(t, s.hc, fresh, tok); r.status != http.StatusOK {
		t.Errorf("a delta link issued after the expiry = %d %s, want 200", r.status, r.raw)
	}
}
