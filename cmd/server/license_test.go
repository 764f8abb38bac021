package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	seatledgerv1 "github.com/seatledger/seatledger/gen/seatledger/v1"
	"github.com/seatledger/seatledger/internal/graphsim"
)

// TestRun_LicenseStatus checks every demo user's license status against
// what the simulator says that user holds, waits for and is blocked on,
// worked out here from the simulator's own state.
func TestRun_LicenseStatus(t *testing.T) {
	t.Parallel()
	sim, environ := startTenant(t, graphsim.Options{})
	svc := startService(t, environ, mintToken(t, sim, "license-test", "reader", "admin"))
	svc.runSync(t)

	allotmentSKU := map[string]string{}
	for _, a := range sim.Allotments() {
		allotmentSKU[a.ID] = a.SKUID
	}
	memberOf := map[string][]string{}
	groupName := map[string]string{}
	for _, g := range sim.Groups() {
		groupName[g.ID] = g.DisplayName
		for _, m := range g.Members {
			memberOf[m] = append(memberOf[m], g.ID)
		}
	}
	client := seatledgerv1.NewUserServiceClient(svc.conn)
	var sawGroupSeat, sawDuplicate, sawWaiting, sawError bool
	for _, u := range sim.Users() {
		var wantWaiting, wantErrors []string
		for _, w := range sim.WaitingMembers() {
			if w.MemberID == u.ID {
				wantWaiting = append(wantWaiting, w.AllotmentID)
			}
		}
		// What the simulator says, as "allotment via group" lines: a
		// member waiting in the allotment's waiting room holds no seat
		// through the group.
		var want []string
		skus := map[string]map[string]bool{}
		for _, a := range sim.Assignments() {
			via := ""
			switch {
			case a.AssignedToType == "user" && a.AssignedToID == u.ID:
			case a.AssignedToType == "group" && slices.Contains(memberOf[u.ID], a.AssignedToID) &&
				!slices.Contains(wantWaiting, a.AllotmentID):
				via = a.AssignedToID
			default:
				continue
			}
			// A group seat names its group, as the directory does.
			if via != "" && groupName[via] == "" {
				t.Fatalf("simulator group %s has no display name: the test would prove nothing", via)
			}
			want = append(want, a.AllotmentID+" via "+via+" "+groupName[via])
			sku := allotmentSKU[a.AllotmentID]
			if skus[sku] == nil {
				skus[sku] = map[string]bool{}
			}
			skus[sku][a.AllotmentID] = true
		}
		for _, e := range sim.AssignmentErrors() {
			if e.UserID == u.ID {
				wantErrors = append(wantErrors, e.Code)
			}
		}

		got, err := client.GetLicenseStatus(context.Background(), &seatledgerv1.GetLicenseStatusRequest{User: u.UserPrincipalName})
		if err != nil {
			t.Errorf("GetLicenseStatus(%s): %v", u.UserPrincipalName, err)
			continue
		}
		var gotSeats, gotWaiting, gotErrors []string
		for _, s := range got.GetSeats() {
			gotSeats = append(gotSeats, s.GetAllotmentId()+" via "+s.GetGroupId()+" "+s.GetGroupDisplayName())
			if dup := len(skus[s.GetSkuId()]) > 1; s.GetDuplicateSku() != dup {
				t.Errorf("%s: seat %s duplicate_sku = %t, want %t", u.UserPrincipalName, s.GetAllotmentId(), s.GetDuplicateSku(), dup)
			}
			sawGroupSeat = sawGroupSeat || s.GetSource() == seatledgerv1.SeatSource_SEAT_SOURCE_GROUP
			sawDuplicate = sawDuplicate || s.GetDuplicateSku()
		}
		for _, w := range got.GetWaiting() {
			gotWaiting = append(gotWaiting, w.GetAllotmentId())
			if w.GetQueuePosition() < 1 || w.GetWaitAge() == nil {
				t.Errorf("%s: waiting entry without queue position or wait age: %v", u.UserPrincipalName, w)
			}
		}
		for _, e := range got.GetErrors() {
			gotErrors = append(gotErrors, e.GetCode())
			if e.GetRemediation().GetHint() == "" {
				t.Errorf("%s: error %s has no remediation hint", u.UserPrincipalName, e.GetCode())
			}
		}
		sawWaiting = sawWaiting || len(gotWaiting) > 0
		sawError = sawError || len(gotErrors) > 0
		for _, l := range []*[]string{&want, &gotSeats, &wantWaiting, &gotWaiting, &wantErrors, &gotErrors} {
			slices.Sort(*l)
		}
		if diff := cmp.Diff(fmt.Sprint(want, wantWaiting, wantErrors), fmt.Sprint(gotSeats, gotWaiting, gotErrors)); diff != "" {
			t.Errorf("%s: license status (seats, waiting, errors) differs from the simulator (-sim +seatledger):\n%s", u.UserPrincipalName, diff)
		}
		if got.GetUserId() != u.ID || got.GetDepartment() != u.Department {
			t.Errorf("%s: user id %q department %q, want %q %q", u.UserPrincipalName, got.GetUserId(), got.GetDepartment(), u.ID, u.Department)
		}
		if len(got.GetSeats()) > 0 && len(got.GetEffectiveServices()) == 0 {
			t.Errorf("%s holds seats but has no effective services", u.UserPrincipalName)
		}
	}
	if !sawGroupSeat || !sawDuplicate || !sawWaiting || !sawError {
		t.Errorf("the demo tenant no longer exercises group seats (%t), duplicate SKUs (%t), waiting (%t) or errors (%t)",
			sawGroupSeat, sawDuplicate, sawWaiting, sawError)
	}

	_, err := client.GetLicenseStatus(context.Background(), &seatledgerv1.GetLicenseStatusRequest{User: "nobody@contoso.example"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("GetLicenseStatus(unknown user) = %v, want NOT_FOUND", err)
	}
	u := sim.Users()[0]
	code, body := svc.get(t, "/v1/users/"+u.ID+"/license-status")
	if code != http.StatusOK || !strings.Contains(string(body), u.UserPrincipalName) {
		t.Errorf("GET /v1/users/{id}/license-status = %d %s", code, body)
	}

	// GET /v1/assignments names group assignees too, current and as of
	// now (a dated read).
	groupAssignments := 0
	for _, q := range []string{"", "&asOf=" + url.QueryEscape(time.Now().UTC().Format(time.RFC3339Nano))} {
		code, body := svc.get(t, "/v1/assignments?assigneeType=ASSIGNEE_TYPE_GROUP&pageSize=1000"+q)
		var got struct {
			Assignments []struct {
				ID       string
				Assignee struct{ ID, DisplayName string }
			}
		}
		if err := json.Unmarshal(body, &got); code != http.StatusOK || err != nil {
			t.Fatalf("GET /v1/assignments (groups)%s = %d %s (%v)", q, code, body, err)
		}
		groupAssignments = len(got.Assignments)
		for _, a := range got.Assignments {
			if want := groupName[a.Assignee.ID]; want == "" || a.Assignee.DisplayName != want {
				t.Errorf("GET /v1/assignments%s: assignment %s to group %s has display name %q, want %q",
					q, a.ID, a.Assignee.ID, a.Assignee.DisplayName, want)
			}
		}
	}
	if groupAssignments == 0 {
		t.Error("GET /v1/assignments listed no group assignment: the demo tenant no longer exercises group names")
	}
}
