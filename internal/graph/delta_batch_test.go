package graph_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/seatledger/seatledger/internal/graph"
	"github.com/seatledger/seatledger/internal/graphsim"
)

var sortUsers = cmpopts.SortSlices(func(a, b graph.User) bool { return a.ID < b.ID })

func TestClient_UsersDelta(t *testing.T) {
	t.Parallel()
	s := startSim(t, graphsim.Options{PageSize: 7})
	c := s.client(t, s.info.ClientSecret, graph.Options{})
	ctx := context.Background()
	round := func(link string) ([]graph.User, string) {
		t.Helper()
		var got []graph.User
		next, err := c.UsersDelta(ctx, link, func(u graph.User) error { got = append(got, u); return nil })
		if err != nil {
			t.Fatalf("UsersDelta: %v", err)
		}
		if next == "" {
			t.Fatal("no delta link")
		}
		return got, next
	}

	first, link := round("")
	var want []graph.User
	for _, u := range s.Users() {
		want = append(want, userFromSim(u))
	}
	if diff := cmp.Diff(want, first, ignoreAllRaw, sortUsers); diff != "" {
		t.Errorf("initial round (-sim +client):\n%s", diff)
	}

	users := s.Users()
	moved, gone := users[0], users[1]
	if err := s.SetDepartment(moved.ID, "Research"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveUser(gone.ID); err != nil {
		t.Fatal(err)
	}
	hire := graphsim.UserState{ID: "6d645c5f-089f-40d8-b0e7-136fb5c56d5b", UserPrincipalName: "new.hire@contoso.example", DisplayName: "New Hire", Department: "Sales", AccountEnabled: true}
	if err := s.AddUser(hire); err != nil {
		t.Fatal(err)
	}
	second, link2 := round(link)
	byID := map[string]graph.User{}
	for _, u := range second {
		byID[u.ID] = u
	}
	if len(byID) != 3 {
		t.Errorf("second round reported %d users, want the 3 that changed: %+v", len(byID), second)
	}
	if u := byID[moved.ID]; u.Department != "Research" || u.Removed {
		t.Errorf("moved user = %+v, want department Research", u)
	}
	if u := byID[gone.ID]; !u.Removed {
		t.Errorf("removed user = %+v, want Removed", u)
	}
	if diff := cmp.Diff(userFromSim(hire), byID[hire.ID], ignoreAllRaw); diff != "" {
		t.Errorf("new user (-want +got):\n%s", diff)
	}

	third, _ := round(link2)
	if len(third) != 0 {
		t.Errorf("a round with no change reported %+v", third)
	}

	stop := errors.New("stop")
	n := 0
	_, err := c.UsersDelta(ctx, "", func(graph.User) error {
		if n++; n == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 3 {
		t.Errorf("UsersDelta with a failing callback: err = %v after %d users, want the callback's error after 3", err, n)
	}
}

func TestClient_Batch(t *testing.T) {
	t.Parallel()
	s := startSim(t, graphsim.Options{})
	c := s.client(t, s.info.ClientSecret, graph.Options{})
	ctx := context.Background()
	users := s.Users()
	var reqs []graph.BatchRequest
	for _, u := range users {
		reqs = append(reqs, graph.BatchRequest{Method: http.MethodGet, URL: "/users/" + u.ID + "/cloudLicensing/usageRights"})
	}
	reqs = append(reqs, graph.BatchRequest{ID: "ghost", Method: http.MethodGet, URL: s.info.GraphURL + "/users/00000000-0000-4000-8000-000000000000"})
	if len(reqs) <= 20 {
		t.Fatalf("%d requests do not need two batches", len(reqs))
	}
	resps, err := c.Batch(ctx, reqs)
	if err != nil {
		t.Fatalf("Batch: %v", err)
	}
	if len(resps) != len(reqs) {
		t.Fatalf("%d responses for %d requests", len(resps), len(reqs))
	}
	if n := c.Stats().Requests; n != int64((len(reqs)+19)/20) {
		t.Errorf("%d HTTP requests for %d batched ones", n, len(reqs))
	}
	for i, u := range users {
		r := resps[i]
		if r.ID != fmt.Sprint(i+1) || r.Status != http.StatusOK {
			t.Errorf("response %d: id %q status %d", i, r.ID, r.Status)
			continue
		}
		page, err := graph.DecodeUsageRightPage(r.Body)
		if err != nil {
			t.Errorf("response %d: %v", i, err)
			continue
		}
		direct := all(t, c.UserUsageRights(ctx, u.ID))
		if diff := cmp.Diff(direct, page.UsageRights, ignoreAllRaw, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("user %s: batched usage rights differ from the direct ones (-direct +batch):\n%s", u.ID, diff)
		}
	}
	ghost := resps[len(resps)-1]
	var gerr *graph.Error
	if ghost.ID != "ghost" || !errors.As(graph.BatchError(ghost), &gerr) || gerr.Status != http.StatusNotFound {
		t.Errorf("ghost response = %+v, want a 404", ghost)
	}
	if graph.BatchError(resps[0]) != nil {
		t.Error("BatchError of a 200")
	}

	for name, bad := range map[string][]graph.BatchRequest{
		"duplicate ids": {{ID: "a", Method: "GET", URL: "/users"}, {ID: "a", Method: "GET", URL: "/users"}},
		"absolute URL":  {{Method: "GET", URL: "https://elsewhere.example/beta/users"}},
		"bad method":    {{Method: "TRACE", URL: "/users"}},
	} {
		if _, err := c.Batch(ctx, bad); err == nil {
			t.Errorf("Batch with %s succeeded", name)
		}
	}
}

func TestClient_UsersDeltaExpired(t *testing.T) {
	t.Parallel()
	// The simulator never expires its delta tokens, so a middleware answers
	// the way Graph does for a token it no longer knows.
	tests := []struct {
		name   string
		status int
		body   string
	}{
		{"410 Gone", http.StatusGone, `{"error":{"code":"syncStateNotFound","message":"The sync state is gone."}}`},
		{"400 with an inner resync code", http.StatusBadRequest, `{"error":{"code":"badRequest","message":"x","innerError":{"code":"resyncRequired"}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newWrappedSim(t, graphsim.Options{}, graphOnly(func(w http.ResponseWriter, _ *http.Request, _ http.Handler) {
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}))
			c := f.client(t, graph.Options{})
			called := false
			_, err := c.UsersDelta(context.Background(), f.ts.URL+"/beta/users/delta?$deltatoken=stale", func(graph.User) error { called = true; return nil })
			var gerr *graph.Error
			if !errors.Is(err, graph.ErrDeltaExpired) || !errors.Is(err, graph.ErrDeltaLinkUnusable) || !errors.As(err, &gerr) || gerr.Status != tt.status {
				t.Fatalf("err = %v, want ErrDeltaExpired and ErrDeltaLinkUnusable wrapping the %d", err, tt.status)
			}
			if called || c.Stats().Requests != 1 {
				t.Errorf("callback called %v, %d requests; want none and one", called, c.Stats().Requests)
			}
		})
	}
	for name, link := range map[string]func(graphsim.Info) string{
		"a link to another host is refused": func(graphsim.Info) string {
			return "https://graph.attacker.example/beta/users/delta?$deltatoken=x"
		},
		// A restarted simulator (or a moved Graph URL) on another port.
		"a link to another port is refused": func(graphsim.Info) string {
			return "https://127.0.0.1:1/beta/users/delta?$deltatoken=x"
		},
		"a link of another API version is refused": func(info graphsim.Info) string {
			return strings.TrimSuffix(info.GraphURL, "/beta") + "/v1.0/users/delta?$deltatoken=x"
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := startSim(t, graphsim.Options{})
			c := s.client(t, s.info.ClientSecret, graph.Options{})
			_, err := c.UsersDelta(context.Background(), link(s.info), func(graph.User) error { return nil })
			if !errors.Is(err, graph.ErrDeltaLinkUnusable) || c.Stats().Requests != 0 {
				t.Errorf("err = %v after %d requests, want ErrDeltaLinkUnusable before any request", err, c.Stats().Requests)
			}
		})
	}
	t.Run("a token Graph refuses makes the link unusable", func(t *testing.T) {
		t.Parallel()
		s := startSim(t, graphsim.Options{})
		c := s.client(t, s.info.ClientSecret, graph.Options{})
		_, err := c.UsersDelta(context.Background(), s.info.GraphURL+"/users/delta?$deltatoken=not-a-token", func(graph.User) error { return nil })
		var gerr *graph.Error
		if !errors.Is(err, graph.ErrDeltaLinkUnusable) || !errors.As(err, &gerr) || gerr.Status != http.StatusBadRequest {
			t.Errorf("err = %v, want ErrDeltaLinkUnusable wrapping the simulator's 400", err)
		}
	})
}

func TestClient_BatchRetriesThrottledSubRequests(t *testing.T) {
	t.Parallel()
	// Graph throttles sub-requests one by one: the 2nd and 5th user
	// sub-requests are answered 429 inside the batch.
	throttle := func(nth int) graphsim.FaultRule {
		return graphsim.FaultRule{Path: "/beta/users/", Kind: graphsim.FaultThrottle, RetryAfterSeconds: 1, Nth: nth}
	}
	s := startSim(t, graphsim.Options{Faults: []graphsim.FaultRule{throttle(2), throttle(5)}})
	c := s.fastClient(t, graph.Options{})
	var reqs []graph.BatchRequest
	for _, u := range s.Users()[:6] {
		reqs = append(reqs, graph.BatchRequest{Method: http.MethodGet, URL: "/users/" + u.ID + "/cloudLicensing/assignments"})
	}
	resps, err := c.Batch(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range resps {
		if r.Status != http.StatusOK || r.ID != fmt.Sprint(i+1) {
			t.Errorf("response %d: id %q status %d, want 200", i, r.ID, r.Status)
		}
	}
	if st := c.Stats(); st.Requests != 2 || st.Throttled != 2 || st.Retries != 2 {
		t.Errorf("Stats = %+v, want 2 batches, 2 throttled sub-requests, 2 retried", st)
	}
}
