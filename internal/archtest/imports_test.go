// Package archtest holds the test that keeps seatledger's import graph as
// CONVENTIONS.md draws it. It has no code of its own.
package archtest

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/seatledger/seatledger/"

// TestImportGraph fails when a package imports, directly or not, one that
// the layout forbids: imports point from transport towards data, the
// simulator and the client share nothing, store knows no transport, and
// the rooms of decisions (licensing, chargeback) do no I/O of ours and
// know no transport.
func TestImportGraph(t *testing.T) {
	t.Parallel()
	pure := []string{"internal/store", "internal/api", "internal/graph", "internal/sync", "gen/", "google.golang.org/grpc"}
	rules := []struct {
		pkg       string
		forbidden []string
		// planned marks a room the layout has drawn but the tree may not
		// hold yet: its rule holds once it exists.
		planned bool
	}{
		{"internal/store", []string{"internal/api", "internal/sync", "internal/graph", "internal/graphsim", "gen/", "google.golang.org/grpc"}, false},
		{"internal/api", []string{"internal/sync", "internal/graphsim", "internal/pglocal"}, false},
		{"internal/sync", []string{"internal/api", "internal/graphsim", "gen/", "google.golang.org/grpc"}, false},
		{"internal/graph", []string{"internal/graphsim", "internal/store", "internal/sync", "internal/api", "gen/"}, false},
		{"internal/graphsim", []string{"internal/graph", "internal/store", "internal/sync", "internal/api", "gen/"}, false},
		{"internal/pglocal", []string{"internal/"}, false},
		// The rooms of decisions are pure: plain Go types in, decisions
		// out; api converts to and from them.
		{"internal/licensing", pure, false},
		{"internal/chargeback", pure, true},
	}
	for _, r := range rules {
		t.Run(r.pkg, func(t *testing.T) {
			t.Parallel()
			if _, err := os.Stat(filepath.Join("..", "..", r.pkg)); r.planned && errors.Is(err, fs.ErrNotExist) {
				t.Logf("%s does not exist yet; nothing depends on anything", r.pkg)
				return
			}
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
