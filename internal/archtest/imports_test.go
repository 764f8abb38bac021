// Package archtest holds the test that keeps seatledger's import graph as
// CONVENTIONS.md draws it. It has no code of its own.
package archtest

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/seatledger/seatledger/"

// TestImportGraph fails when a package imports, directly or not, one that
// the layout forbids: imports point from transport towards data, the
// simulator and the client share nothing, and store knows no transport.
func TestImportGraph(t *testing.T) {
	t.Parallel()
	rules := []struct {
		pkg       string
		forbidden []string
	}{
		{"internal/store", []string{"internal/api", "internal/sync", "internal/graph", "internal/graphsim", "gen/", "google.golang.org/grpc"}},
		{"internal/api", []string{"internal/sync", "internal/graphsim", "internal/pglocal"}},
		{"internal/sync", []string{"internal/api", "internal/graphsim", "gen/", "google.golang.org/grpc"}},
		{"internal/graph", []string{"internal/graphsim", "internal/store", "internal/sync", "internal/api", "gen/"}},
		{"internal/graphsim", []string{"internal/graph", "internal/store", "internal/sync", "internal/api", "gen/"}},
		{"internal/pglocal", []string{"internal/"}},
	}
	for _, r := range rules {
		t.Run(r.pkg, func(t *testing.T) {
			t.Parallel()
			out, err := exec.Command("go", "list", "-deps", module+r.pkg).Output()
			if err != nil {
				t.Fatalf("go list -deps %s: %v", r.pkg, err)
			}
			for _, dep := range strings.Fields(string(out)) {
				if dep == module+r.pkg {
					continue
				}
				for _, f := range r.forbidden {
					if forbids(f, dep) {
						t.Errorf("%s depends on %s; the layout forbids %s", r.pkg, dep, f)
					}
				}
			}
		})
	}
}

// forbids reports whether rule f matches package dep. Rules naming our own
// tree ("internal/…", "gen/…") match only this module's packages, never the
// standard library's internal ones; a rule matches the package it names and
// those below it.
func forbids(f, dep string) bool {
	if strings.HasPrefix(f, "internal/") || strings.HasPrefix(f, "gen/") {
		var ok bool
		if dep, ok = strings.CutPrefix(dep, module); !ok {
			return false
		}
	}
	f = strings.TrimSuffix(f, "/")
	return dep == f || strings.HasPrefix(dep, f+"/")
}
