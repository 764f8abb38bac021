package graph_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/seatledger/seatledger/internal/graph"
	"github.com/seatledger/seatledger/internal/graphsim"
)

// delayed holds the first matching request for longer than the clients
// of these tests wait.
func delayed(path string) graphsim.FaultRule {
	return graphsim.FaultRule{Path: path, Kind: graphsim.FaultDelay, Delay: "10s", Nth: 1, Count: 1}
}

func TestClient_GETSurvivesEveryFault(t *testing.T) {
	t.Parallel()
	id := graphsim.DemoTenant().Allotments[0].ID
	tests := []struct {
		name   string
		faults []graphsim.FaultRule
	}{
		{"429 with Retry-After", []graphsim.FaultRule{{Path: "/beta/", Kind: graphsim.FaultThrottle, RetryAfterSeconds: 1, Nth: 1}}},
		{"503", []graphsim.FaultRule{rule(graphsim.FaultUnavailable, 1)}},
		{"504", []graphsim.FaultRule{rule(graphsim.FaultGatewayTimeout, 1)}},
		// Go's transport may repeat a GET once by itself when a reused
		// connection breaks, so two resets make sure the client sees one.
		{"connection reset", []graphsim.FaultRule{rule(graphsim.FaultReset, 1), rule(graphsim.FaultReset, 2)}},
		{"truncated JSON", []graphsim.FaultRule{rule(graphsim.FaultTruncate, 1)}},
		{"malformed JSON", []graphsim.FaultRule{rule(graphsim.FaultMalformed, 1)}},
		{"delay beyond the timeout", []graphsim.FaultRule{delayed("/beta/admin/cloudLicensing/allotments")}},
		{"everything in a row", []graphsim.FaultRule{
			rule(graphsim.FaultReset, 1), rule(graphsim.FaultUnavailable, 2), rule(graphsim.FaultTruncate, 3),
			rule(graphsim.FaultMalformed, 4), rule(graphsim.FaultGatewayTimeout, 5),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := startSim(t, graphsim.Options{Faults: tt.faults})
			c := s.fastClient(t, graph.Options{Timeout: 500 * time.Millisecond, MaxRetries: 6})
			a, err := c.GetAllotment(context.Background(), id)
			if err != nil || a.ID != id {
				t.Fatalf("GetAllotment = %q, %v; want success after retries", a.ID, err)
			}
			fired := 0
			for _, f := range s.Faults() {
				fired += f.Fired
			}
			if st := c.Stats(); fired == 0 || st.Requests != st.Retries+1 {
				t.Errorf("Stats = %+v after %d faults, want requests = retries + 1", st, fired)
			}
		})
	}
}

func TestClient_GETGivesUpWithTheLastError(t *testing.T) {
	t.Parallel()
	s := startSim(t, graphsim.Options{Faults: []graphsim.FaultRule{always(graphsim.FaultMalformed)}})
	c := s.fastClient(t, graph.Options{MaxRetries: 1})
	_, err := c.GetAllotment(context.Background(), s.Allotments()[0].ID)
	if err == nil || !strings.Contains(err.Error(), "not valid JSON") {
		t.Fatalf("err = %v, want one about the invalid body", err)
	}
	if st := c.Stats(); st.Requests != 2 {
		t.Errorf("Stats = %+v, want 2 requests", st)
	}
}

func TestClient_PageFailuresNeitherDuplicateNorDrop(t *testing.T) {
	t.Parallel()
	// The 2nd, 4th and 5th page requests that follow a next link fail in
	// different ways; the listing is still whole.
	page := func(kind string, nth int) graphsim.FaultRule {
		return graphsim.FaultRule{PathRegexp: "skiptoken", Kind: kind, Nth: nth}
	}
	s := startSim(t, graphsim.Options{Tenant: new(manyAllotments(23)), PageSize: 4, Faults: []graphsim.FaultRule{
		page(graphsim.FaultUnavailable, 2), page(graphsim.FaultTruncate, 4), page(graphsim.FaultMalformed, 5),
	}})
	c := s.fastClient(t, graph.Options{})
	var got []string
	for a, err := range c.Allotments(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, a.ID)
	}
	var want []string
	for _, a := range s.Allotments() {
		want = append(want, a.ID)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ids (-sim +client):\n%s", diff)
	}
	if st := c.Stats(); st.Retries != 3 {
		t.Errorf("Stats = %+v, want 3 retries", st)
	}
}

// TestClient_ListingStopsOnALoopingNextLink: when Graph's cursor breaks and
// a page's next link leads back to an earlier page, the listing ends with
// an error after the objects it had, instead of paging forever.
func TestClient_ListingStopsOnALoopingNextLink(t *testing.T) {
	t.Parallel()
	s := startSim(t, graphsim.Options{Tenant: new(manyAllotments(23)), PageSize: 4, Faults: []graphsim.FaultRule{
		{PathRegexp: "skiptoken", Kind: graphsim.FaultLoop, Nth: 2},
	}})
	c := s.fastClient(t, graph.Options{})
	var n int
	var err error
	for _, e := range c.Allotments(context.Background()) {
		if err = e; err != nil {
			break
		}
		n++
	}
	if err == nil || !strings.Contains(err.Error(), "repeats an earlier page") {
		t.Fatalf("listing ended with %v after %d allotments; want an error naming the repeated page", err, n)
	}
	// The first page, the second, then the third whose link loops back
	// to itself: its objects come once, then the loop is refused.
	if n != 12 {
		t.Errorf("%d allotments before the error, want 12 (three pages of 4)", n)
	}
	if st := c.Stats(); st.Requests != 3 {
		t.Errorf("Stats = %+v, want 3 requests (the repeated page is not fetched)", st)
	}
}

// newHire is a user who holds no licence yet, and the create request that
// gives them one.
const newHireID = "6d645c5f-089f-40d8-b0e7-136fb5c56d5b"

func withNewHire(t *testing.T, s sim) graph.CreateAssignment {
	t.Helper()
	if err := s.AddUser(graphsim.UserState{ID: newHireID, UserPrincipalName: "new.hire@contoso.example", DisplayName: "New Hire", AccountEnabled: true}); err != nil {
		t.Fatal(err)
	}
	return graph.CreateAssignment{AllotmentID: s.Allotments()[1].ID, AssigneeID: newHireID, AssigneeType: "user"}
}

// assignmentsOf counts the simulator's assignments to a principal.
func assignmentsOf(s sim, id string) int {
	n := 0
	for _, a := range s.Assignments() {
		if a.AssignedToID == id {
			n++
		}
	}
	return n
}

func TestClient_CreateIsNeverRepeatedBlindly(t *testing.T) {
	t.Parallel()
	const path = "/beta/admin/cloudLicensing/assignments"
	post := func(kind string) graphsim.FaultRule {
		return graphsim.FaultRule{Path: path, Method: http.MethodPost, Kind: kind, Nth: 1}
	}
	tests := []struct {
		name  string
		fault graphsim.FaultRule
		// created is how many assignments the simulator made before the
		// fault struck, which only reading back can tell; -1 when it may
		// still act (a delayed request is served after the client left).
		created int
	}{
		{"503", post(graphsim.FaultUnavailable), 0},
		{"504", post(graphsim.FaultGatewayTimeout), 0},
		{"connection reset", post(graphsim.FaultReset), 0},
		{"delay beyond the timeout", graphsim.FaultRule{Path: path, Method: http.MethodPost, Kind: graphsim.FaultDelay, Delay: "2s", Nth: 1}, -1},
		{"truncated 201", post(graphsim.FaultTruncate), 1},
		{"malformed 201", post(graphsim.FaultMalformed), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := startSim(t, graphsim.Options{Faults: []graphsim.FaultRule{tt.fault}})
			req := withNewHire(t, s)
			c := s.fastClient(t, graph.Options{Timeout: 500 * time.Millisecond})
			_, err := c.CreateAssignment(context.Background(), req)
			if err == nil || !graph.OutcomeUnknown(err) {
				t.Fatalf("err = %v, want one for which OutcomeUnknown is true", err)
			}
			if st := c.Stats(); st.Requests != 1 || st.Retries != 0 {
				t.Errorf("Stats = %+v, want exactly one POST", st)
			}
			want := tt.created
			if want < 0 {
				return
			}
			if n := assignmentsOf(s, newHireID); n != want {
				t.Errorf("the simulator holds %d assignments of the new hire, want %d", n, want)
			}
			// Reading back is how the caller learns the outcome.
			got := all(t, c.UserAssignments(context.Background(), newHireID))
			if len(got) != want {
				t.Errorf("read back %d assignments, want %d", len(got), want)
			}
		})
	}
}

func TestClient_CreateRetriesWhenGraphSurelyDidNotAct(t *testing.T) {
	t.Parallel()
	t.Run("429 is retried after Retry-After", func(t *testing.T) {
		t.Parallel()
		s := startSim(t, graphsim.Options{Faults: []graphsim.FaultRule{{
			Path: "/beta/admin/cloudLicensing/assignments", Method: http.MethodPost, Kind: graphsim.FaultThrottle, RetryAfterSeconds: 1, Nth: 1,
		}}})
		req := withNewHire(t, s)
		c := s.fastClient(t, graph.Options{})
		a, err := c.CreateAssignment(context.Background(), req)
		if err != nil || a.ID == "" {
			t.Fatalf("CreateAssignment = %+v, %v; want success on the second attempt", a, err)
		}
		if st := c.Stats(); st.Requests != 2 || st.Throttled != 1 {
			t.Errorf("Stats = %+v, want 2 requests, 1 throttled", st)
		}
		if n := assignmentsOf(s, newHireID); n != 1 {
			t.Errorf("the new hire holds %d assignments, want 1", n)
		}
	})
	t.Run("refused connection is retried", func(t *testing.T) {
		t.Parallel()
		s := startSim(t, graphsim.Options{})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		dead := "https://" + ln.Addr().String() + "/beta"
		ln.Close()
		c := s.fastClient(t, graph.Options{BaseURL: dead, MaxRetries: 2})
		_, err = c.CreateAssignment(context.Background(), graph.CreateAssignment{AllotmentID: "a", AssigneeID: newHireID, AssigneeType: "user"})
		if err == nil || graph.OutcomeUnknown(err) {
			t.Fatalf("err = %v, want a known failure", err)
		}
		if st := c.Stats(); st.Requests != 3 {
			t.Errorf("Stats.Requests = %d, want 1 + 2 retries", st.Requests)
		}
	})
}

func TestClient_WritesThatAreRetried(t *testing.T) {
	t.Parallel()
	s := startSim(t, graphsim.Options{Faults: []graphsim.FaultRule{
		{Path: "/beta/admin/cloudLicensing/assignments/", Method: http.MethodPatch, Kind: graphsim.FaultUnavailable, Nth: 1},
		{Path: "/beta/admin/cloudLicensing/assignments/", Method: http.MethodDelete, Kind: graphsim.FaultGatewayTimeout, Nth: 1},
		{Path: "/beta/users/", Method: http.MethodPost, Kind: graphsim.FaultUnavailable, Nth: 1},
	}})
	c := s.fastClient(t, graph.Options{})
	ctx := context.Background()
	a := s.Assignments()[0]
	const teams1 = "57ff2da0-773e-42df-b2af-ffb7a2317929"
	if a.AllotmentID != s.Allotments()[0].ID {
		t.Fatalf("assignment %s is not of an ENTERPRISEPACK allotment", a.ID)
	}
	if _, err := c.UpdateAssignment(ctx, a.ID, []string{teams1}); err != nil {
		t.Errorf("UpdateAssignment: %v", err)
	}
	if err := c.ReprocessAssignments(ctx, s.Users()[0].ID); err != nil {
		t.Errorf("ReprocessAssignments: %v", err)
	}
	if err := c.DeleteAssignment(ctx, a.ID); err != nil {
		t.Errorf("DeleteAssignment: %v", err)
	}
	if st := c.Stats(); st.Retries != 3 || st.Requests != 6 {
		t.Errorf("Stats = %+v, want each of the three writes retried once", st)
	}
}

func TestClient_MaxConcurrent(t *testing.T) {
	t.Parallel()
	const limit = 2
	var (
		mu      sync.Mutex
		arrived int
		full    = make(chan struct{})
		release = make(chan struct{})
	)
	// Every Graph request waits until released; the limit-th to arrive
	// says the client is at its limit.
	hold := graphOnly(func(w http.ResponseWriter, r *http.Request, sim http.Handler) {
		mu.Lock()
		arrived++
		if arrived == limit {
			close(full)
		}
		mu.Unlock()
		<-release
		sim.ServeHTTP(w, r)
	})
	f := newWrappedSim(t, graphsim.Options{}, hold)
	c := f.client(t, graph.Options{MaxConcurrent: limit})
	id := graphsim.DemoTenant().Allotments[0].ID
	errs := make(chan error, limit)
	for range limit {
		go func() {
			_, err := c.GetAllotment(context.Background(), id)
			errs <- err
		}()
	}
	<-full
	// One more request must wait for a free slot, not reach Graph.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	_, err := c.GetAllotment(ctx, id)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("request beyond the limit: err = %v, want it to time out waiting", err)
	}
	mu.Lock()
	if arrived != limit {
		t.Errorf("%d requests reached Graph at once, limit %d", arrived, limit)
	}
	mu.Unlock()
	close(release)
	for range limit {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestClient_DeleteWhoseAnswerWasLost(t *testing.T) {
	t.Parallel()
	// The first DELETE reaches the simulator, which deletes; then the
	// connection is reset, so the client cannot know. Its retry finds
	// nothing (404), which means the first attempt worked. (The
	// simulator's own reset fault strikes before it acts.)
	var (
		mu      sync.Mutex
		methods []string
	)
	deleteThenReset := graphOnly(func(w http.ResponseWriter, r *http.Request, sim http.Handler) {
		mu.Lock()
		methods = append(methods, r.Method)
		first := len(methods) == 1
		mu.Unlock()
		if !first {
			sim.ServeHTTP(w, r)
			return
		}
		sim.ServeHTTP(httptest.NewRecorder(), r)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		_ = conn.Close()
	})
	f := newWrappedSim(t, graphsim.Options{}, deleteThenReset)
	c := f.client(t, graph.Options{})
	id := f.sim.Assignments()[0].ID
	if err := c.DeleteAssignment(context.Background(), id); err != nil {
		t.Fatalf("DeleteAssignment: %v", err)
	}
	for _, a := range f.sim.Assignments() {
		if a.ID == id {
			t.Fatal("the assignment is still there")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !cmp.Equal(methods, []string{http.MethodDelete, http.MethodDelete}) {
		t.Errorf("requests = %v, want the DELETE and its retry", methods)
	}
}
