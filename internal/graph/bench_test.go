package graph_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/seatledger/seatledger/internal/graph"
)

// assignmentPage is a full page (999) of assignments as Graph sends them
// for the sync's listing ($expand=allotment($select=id),assignedTo($select=id,displayName)).
func assignmentPage(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"@odata.context":"https://graph.microsoft.com/beta/$metadata#admin/cloudLicensing/assignments","value":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"@odata.type":"#microsoft.graph.cloudLicensing.assignment","id":"405ee855-dd74-f695-8d7e-%012x",`+
			`"disabledServicePlanIds":["9aaf7827-d63c-4b61-89c3-182f06f82e5c"],`+
			`"allotment":{"@odata.type":"#microsoft.graph.cloudLicensing.allotment","id":"551f1755-0184-9e51-0bc7-%012x"},`+
			`"assignedTo":{"@odata.type":"#microsoft.graph.user","id":"a6c034b8-621b-dee3-6abb-%012x"}}`, i, i%20, i)
	}
	b.WriteString(`],"@odata.nextLink":"https://graph.microsoft.com/beta/admin/cloudLicensing/assignments?$skiptoken=abc"}`)
	return []byte(b.String())
}

// userPage is a full page of users as users/delta sends them.
func userPage(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"@odata.context":"https://graph.microsoft.com/beta/$metadata#users","value":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"@odata.type":"#microsoft.graph.user","id":"a6c034b8-621b-dee3-6abb-%012x","userPrincipalName":"user%06d@generated.example",`+
			`"displayName":"User %06d","department":"Engineering","companyName":"Contoso","employeeOrgData":{"costCenter":"CC-100"},"accountEnabled":true}`, i, i, i)
	}
	b.WriteString(`],"@odata.nextLink":"https://graph.microsoft.com/beta/users/delta?$skiptoken=abc"}`)
	return []byte(b.String())
}

// BenchmarkDecodeAssignmentPage measures decoding one page of 999
// assignments, the sync's inner loop on the Graph side.
func BenchmarkDecodeAssignmentPage(b *testing.B) {
	page := assignmentPage(999)
	b.SetBytes(int64(len(page)))
	b.ReportAllocs()
	for b.Loop() {
		p, err := graph.DecodeAssignmentPage(page)
		if err != nil || len(p.Assignments) != 999 {
			b.Fatalf("DecodeAssignmentPage = %d assignments, %v", len(p.Assignments), err)
		}
	}
}

// BenchmarkDecodeUserPage measures decoding one page of 999 users.
func BenchmarkDecodeUserPage(b *testing.B) {
	page := userPage(999)
	b.SetBytes(int64(len(page)))
	b.ReportAllocs()
	for b.Loop() {
		p, err := graph.DecodeUserPage(page)
		if err != nil || len(p.Users) != 999 {
			b.Fatalf("DecodeUserPage = %d users, %v", len(p.Users), err)
		}
	}
}
