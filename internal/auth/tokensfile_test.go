package auth_test

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/seatledger/seatledger/internal/auth"
	"github.com/seatledger/seatledger/internal/graphsim"
)

func TestHashToken(t *testing.T) {
	t.Parallel()
	// printf %s abc | sha256sum
	const want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	if got := auth.HashToken("abc"); got != want {
		t.Errorf("HashToken(abc) = %s; want %s", got, want)
	}
}

// writeFile replaces path's content atomically, as an admin's deploy would.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func tokensJSON(entries ...string) string {
	return `{"tokens":[` + strings.Join(entries, ",") + `]}`
}

func entry(name, token string, roles ...string) string {
	return `{"name":"` + name + `","sha256":"` + auth.HashToken(token) + `","roles":["` + strings.Join(roles, `","`) + `"]}`
}

func TestTokensFileAuthenticate(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "tokens.json")
	writeFile(t, path, tokensJSON(
		entry("hr-onboarding", "s3cret-hr", "writer"),
		entry("finance-export", "s3cret-fin", "finance", "reader", "finance"),
	))
	f, err := auth.NewTokensFile(path, nil)
	if err != nil {
		t.Fatalf("NewTokensFile: %v", err)
	}
	id, err := f.Authenticate(t.Context(), "s3cret-fin")
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	want := auth.Identity{Subject: "finance-export", Name: "finance-export", Roles: []auth.Role{auth.RoleFinance, auth.RoleReader}, Source: "tokens-file"}
	if diff := cmp.Diff(want, id); diff != "" {
		t.Errorf("identity (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"", "s3cret", "s3cret-hr ", "S3CRET-HR", auth.HashToken("s3cret-hr")} {
		if _, err := f.Authenticate(t.Context(), bad); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Errorf("Authenticate(%q): %v; want ErrUnauthenticated", bad, err)
		}
	}
}

func TestNewTokensFileErrors(t *testing.T) {
	t.Parallel()
	h := auth.HashToken("x")
	tests := []struct{ name, content, want string }{
		{"not json", `{"tokens":[`, "decode tokens file"},
		{"no tokens array", `{}`, `no "tokens" array`},
		{"unknown member", `{"tokens":[{"name":"a","sha256":"` + h + `","roles":["reader"],"rolez":[]}]}`, `unknown field "rolez"`},
		{"plaintext token", `{"tokens":[{"name":"a","token":"plain-secret","roles":["reader"]}]}`, `plaintext "token"`},
		{"bad hash", `{"tokens":[{"name":"a","sha256":"plain-secret","roles":["reader"]}]}`, "not 64 hex digits"},
		{"no name", `{"tokens":[{"sha256":"` + h + `","roles":["reader"]}]}`, "token 1 has no name"},
		{"duplicate name", tokensJSON(entry("a", "x", "reader"), entry("a", "y", "reader")), "listed twice"},
		{"duplicate hash", tokensJSON(entry("a", "x", "reader"), entry("b", "x", "reader")), "same sha256"},
		{"no roles", `{"tokens":[{"name":"a","sha256":"` + h + `","roles":[]}]}`, "no roles"},
		{"unknown role", tokensJSON(entry("a", "x", "writter")), `unknown role "writter"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "tokens.json")
			writeFile(t, path, tt.content)
			_, err := auth.NewTokensFile(path, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewTokensFile: %v; want an error containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "plain-secret") {
				t.Errorf("error %q quotes a secret", err)
			}
		})
	}
	if _, err := auth.NewTokensFile(filepath.Join(t.TempDir(), "missing.json"), nil); err == nil {
		t.Error("NewTokensFile(missing file): no error")
	}
}

// TestTokensFileReload replaces the file and checks, with a test clock, that
// the change takes effect once a second has passed, and that a bad file,
// then a missing one, keep the last good set and log one error each.
func TestTokensFileReload(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "tokens.json")
	writeFile(t, path, tokensJSON(entry("old", "old-token", "reader")))
	logs := &syncBuffer{}
	f, err := auth.NewTokensFile(path, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatalf("NewTokensFile: %v", err)
	}
	clock := newClock()
	f.SetClock(clock.Now)

	accepts := func(token string, want bool) {
		t.Helper()
		_, err := f.Authenticate(t.Context(), token)
		if want && err != nil {
			t.Errorf("Authenticate(%s): %v; want success", token, err)
		}
		if !want && !errors.Is(err, auth.ErrUnauthenticated) {
			t.Errorf("Authenticate(%s): %v; want ErrUnauthenticated", token, err)
		}
	}

	writeFile(t, path, tokensJSON(entry("new", "new-token", "writer")))
	// Within the second: the file is not looked at.
	accepts("new-token", false)
	accepts("old-token", true)
	clock.Advance(time.Second)
	accepts("new-token", true)
	accepts("old-token", false)

	writeFile(t, path, `{"tokens":[{"name":"broken","sha256":"oops"`)
	clock.Advance(time.Second)
	accepts("new-token", true)
	clock.Advance(time.Second)
	accepts("new-token", true) // same bad content: no second error line

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		clock.Advance(time.Second)
		accepts("new-token", true)
	}

	writeFile(t, path, tokensJSON(entry("newer", "newer-token", "admin")))
	clock.Advance(time.Second)
	accepts("newer-token", true)
	accepts("new-token", false)

	out := logs.String()
	if n := strings.Count(out, "keeping the previous tokens"); n != 2 {
		t.Errorf("logged %d reload errors; want 2 (bad JSON, then missing file):\n%s", n, out)
	}
	if n := strings.Count(out, "tokens file reloaded"); n != 2 {
		t.Errorf("logged %d reloads; want 2:\n%s", n, out)
	}
	for _, secret := range []string{"old-token", "new-token", "newer-token"} {
		if strings.Contains(out, secret) {
			t.Errorf("logs contain token %s:\n%s", secret, out)
		}
	}
}

func TestChain(t *testing.T) {
	t.Parallel()
	f := newOIDC(t)
	path := filepath.Join(t.TempDir(), "tokens.json")
	writeFile(t, path, tokensJSON(entry("static", "static-token", "admin")))
	tf, err := auth.NewTokensFile(path, nil)
	if err != nil {
		t.Fatalf("NewTokensFile: %v", err)
	}
	c := auth.Chain(tf, f.oidc)

	id, err := c.Authenticate(t.Context(), "static-token")
	if err != nil || id.Source != "tokens-file" {
		t.Errorf("static token: %+v, %v; want an identity from the tokens file", id, err)
	}
	jwt := mint(t, f.sim, graphsim.CallerToken{Audience: testAudience, Caller: "svc", Roles: []string{"reader"}})
	id, err = c.Authenticate(t.Context(), jwt)
	if err != nil || id.Source != "oidc" {
		t.Errorf("jwt: %+v, %v; want an identity from oidc", id, err)
	}
	expired := mint(t, f.sim, graphsim.CallerToken{Audience: testAudience, Caller: "svc", Lifetime: -time.Hour})
	for token, want := range map[string]string{
		expired:       "unauthenticated: token has expired", // OIDC's reason wins over "not recognized"
		"other-token": "unauthenticated: token not recognized",
	} {
		if _, err := c.Authenticate(t.Context(), token); err == nil || err.Error() != want {
			t.Errorf("Authenticate: %v; want %q", err, want)
		}
	}
}
