package graphsim_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/seatledger/seatledger/internal/graphsim"
)

// TestIssue3_ListAssignmentsUnderFaults is issue 3's acceptance test on
// the simulator side: a generated tenant of 10,000 users, pages of 100,
// and about 10 % of page requests answered 429 or 503. A plain net/http
// client that retries (honouring Retry-After, capped to keep the test
// fast) lists every assignment exactly once.
func TestIssue3_ListAssignmentsUnderFaults(t *testing.T) {
	t.Parallel()
	tn := graphsim.Generate(graphsim.GenerateOptions{Seed: 3, Users: 10000, Allotments: 10, WaitingMembers: 20, AssignmentErrors: 10})
	s := start(t, graphsim.Options{Tenant: &tn, PageSize: 100, Faults: []graphsim.FaultRule{
		{Path: "/beta/admin/cloudLicensing/assignments", Method: "GET", Rate: 0.05, Kind: graphsim.FaultThrottle, RetryAfterSeconds: 2, Seed: 1},
		{Path: "/beta/admin/cloudLicensing/assignments", Method: "GET", Rate: 0.05, Kind: graphsim.FaultUnavailable, Seed: 2},
	}})
	tok := s.token(t, "CloudLicensing.Read.All")

	fetch := func(url string) (page struct {
		NextLink string            `json:"@odata.nextLink"`
		Value    []json.RawMessage `json:"value"`
	}, faults int) {
		for attempt := 0; ; attempt++ {
			if attempt == 10 {
				t.Fatalf("GET %s: still failing after 10 attempts", url)
			}
			req, err := http.NewRequest(http.MethodGet, url, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := s.hc.Do(req)
			if err != nil {
				t.Fatalf("GET %s: %v", url, err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("read %s: %v", url, err)
			}
			switch resp.StatusCode {
			case http.StatusOK:
				if err := json.Unmarshal(body, &page); err != nil {
					t.Fatalf("decode page: %v", err)
				}
				return page, faults
			case http.StatusTooManyRequests, http.StatusServiceUnavailable:
				faults++
				wait := 10 * time.Millisecond << attempt
				if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
					wait = min(time.Duration(ra)*time.Second, 20*time.Millisecond) // honoured, capped for the test
				}
				time.Sleep(wait)
			default:
				t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
			}
		}
	}

	seen := map[string]int{}
	var order []string
	pages, faults := 0, 0
	for url := s.info.GraphURL + "/admin/cloudLicensing/assignments"; url != ""; {
		page, f := fetch(url)
		pages++
		faults += f
		for _, v := range page.Value {
			var a struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(v, &a); err != nil {
				t.Fatal(err)
			}
			seen[a.ID]++
			order = append(order, a.ID)
		}
		url = page.NextLink
	}
	want := s.sim.Assignments()
	if len(want) < 10000 {
		t.Fatalf("tenant has only %d assignments", len(want))
	}
	for _, a := range want {
		if seen[a.ID] != 1 {
			t.Errorf("assignment %s listed %d times", a.ID, seen[a.ID])
		}
	}
	if len(order) != len(want) {
		t.Errorf("listed %d assignments, want %d", len(order), len(want))
	}
	if pages != (len(want)+99)/100 {
		t.Errorf("%d pages, want %d", pages, (len(want)+99)/100)
	}
	rate := float64(faults) / float64(pages+faults)
	if faults == 0 || rate > 0.25 {
		t.Errorf("%d faults over %d requests (%.0f %%), want about 10 %%", faults, pages+faults, 100*rate)
	}
	t.Logf("%d assignments in %d pages; %d requests answered 429 or 503", len(order), pages, faults)
}
