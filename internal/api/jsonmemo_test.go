package api

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/google/go-cmp/cmp"

	seatledgerv1 "github.com/seatledger/seatledger/gen/seatledger/v1"
)

// page returns a page of n assignments, large enough to be remembered.
func assignmentPage(n int, allotment string) *seatledgerv1.ListAssignmentsResponse {
	resp := &seatledgerv1.ListAssignmentsResponse{NextPageToken: "next"}
	for i := range n {
		id := fmt.Sprintf("a-%04d", i)
		resp.Assignments = append(resp.Assignments, &seatledgerv1.Assignment{Name: "assignments/" + id, Id: id,
			AllotmentId: allotment, SkuId: "11111111-0000-4000-8000-000000000001", SkuPartNumber: "ENTERPRISEPACK",
			Assignee: &seatledgerv1.Assignee{Id: fmt.Sprintf("user-%04d", i), UserPrincipalName: fmt.Sprintf("user%d@contoso.example", i)}})
	}
	return resp
}

// TestMemoJSON: the gateway's JSON is what protojson writes for the
// message, remembered for large messages by their content: the same
// content again comes from the memo, a changed one is encoded anew.
func TestMemoJSON(t *testing.T) {
	t.Parallel()
	j := newMemoJSON()
	decode := func(b []byte) *seatledgerv1.ListAssignmentsResponse {
		t.Helper()
		var got seatledgerv1.ListAssignmentsResponse
		if err := protojson.Unmarshal(b, &got); err != nil {
			t.Fatalf("memo's JSON does not decode: %v", err)
		}
		return &got
	}
	for _, n := range []int{1, 100} { // under and over the size remembered
		page := assignmentPage(n, "al-1")
		first, err := j.Marshal(page)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(page, decode(first), protocmp.Transform()); diff != "" {
			t.Errorf("%d assignments: JSON decodes to another message (-want +got):\n%s", n, diff)
		}
		again, err := j.Marshal(assignmentPage(n, "al-1")) // equal content, another message
		if err != nil {
			t.Fatal(err)
		}
		if remembered := &first[0] == &again[0]; remembered != (n == 100) {
			t.Errorf("%d assignments: second encoding remembered = %v, want %v", n, remembered, n == 100)
		}
		changed := assignmentPage(n, "al-2")
		b, err := j.Marshal(changed)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(changed, decode(b), protocmp.Transform()); diff != "" {
			t.Errorf("%d assignments, changed: JSON of the earlier message (-want +got):\n%s", n, diff)
		}
	}
}
