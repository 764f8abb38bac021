package api

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/seatledger/seatledger/gen/openapiv2"
)

// TestOpenAPIPageSizes: every pageSize the OpenAPI document describes
// states the default and maximum the code applies.
func TestOpenAPIPageSizes(t *testing.T) {
	t.Parallel()
	var doc struct {
		Paths map[string]map[string]struct {
			Parameters []struct {
				Name        string `json:"name"`
				Description string `json:"description"`
			} `json:"parameters"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(openapiv2.JSON, &doc); err != nil {
		t.Fatal(err)
	}
	n := 0
	for path, ops := range doc.Paths {
		for method, op := range ops {
			for _, p := range op.Parameters {
				if p.Name != "pageSize" {
					continue
				}
				n++
				desc := strings.Join(strings.Fields(p.Description), " ")
				for _, want := range []string{fmt.Sprintf("default (%d)", defaultPageSize), fmt.Sprintf("maximum (%d)", maxPageSize)} {
					if !strings.Contains(desc, want) {
						t.Errorf("%s %s pageSize: %q does not say %q", method, path, p.Description, want)
					}
				}
			}
		}
	}
	if n < 10 {
		t.Errorf("found %d pageSize parameters, want every list's", n)
	}
}

// TestRESTRoutes: the routes the input checks use cover the document,
// and each knows its request message.
func TestRESTRoutes(t *testing.T) {
	t.Parallel()
	if len(restRoutes) != 22 {
		t.Errorf("%d REST routes, want the 22 of the contract", len(restRoutes))
	}
	for _, r := range restRoutes {
		if r.input == nil || (r.body == "" && r.method != "GET" && r.method != "DELETE") {
			t.Errorf("%s %s: input %v, body %q", r.method, r.template, r.input, r.body)
		}
	}
	for _, tt := range []struct {
		path string
		want string
	}{
		{"/v1/allotments", "GET"},
		{"/v1/assignments/x", "DELETE, GET, PATCH"},
		{"/v1/users/ada:reprocess", "POST"},
		{"/v1/users/:reprocess", ""},
		{"/v1/sync:run", "POST"},
		{"/healthz", "GET, HEAD"},
		{"/v1/nothing", ""},
	} {
		if got := strings.Join(allowedMethods(tt.path), ", "); got != tt.want {
			t.Errorf("allowedMethods(%s) = %q, want %q", tt.path, got, tt.want)
		}
	}
}
