package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The documentation the docs tests read: README.md and docs/*.md.
func docFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{"../../README.md"}, files...)
}

// shBlock is one ```sh block of the documentation.
type shBlock struct {
	file   string // relative to the repository
	line   int    // of the opening fence
	text   string
	skip   string // why it is not run: its "# not run by the docs test: …" line
	expect int    // HTTP status every curl call must answer: its "# expect: NNN" line; 0 if none
}

var (
	fenceRE  = regexp.MustCompile("^```\\s*(\\S*)")
	skipRE   = regexp.MustCompile(`(?m)^# not run by the docs test: (.+)$`)
	expectRE = regexp.MustCompile(`(?m)^# expect: (\d{3})\s*$`)
)

// shBlocks returns the ```sh blocks of a Markdown file.
func shBlocks(t *testing.T, path string) []shBlock {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rel := strings.TrimPrefix(path, "../../")
	var (
		out   []shBlock
		cur   *shBlock
		inAny bool
		buf   strings.Builder
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		m := fenceRE.FindStringSubmatch(strings.TrimSpace(line))
		switch {
		case m != nil && !inAny:
			inAny = true
			if m[1] == "sh" || m[1] == "bash" {
				cur = &shBlock{file: rel, line: n}
				buf.Reset()
			}
		case m != nil && inAny && m[1] == "":
			inAny = false
			if cur != nil {
				cur.text = buf.String()
				if s := skipRE.FindStringSubmatch(cur.text); s != nil {
					cur.skip = s[1]
				}
				if e := expectRE.FindStringSubmatch(cur.text); e != nil {
					cur.expect, _ = strconv.Atoi(e[1])
				}
				out = append(out, *cur)
				cur = nil
			}
		case cur != nil:
			buf.WriteString(line + "\n")
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// installGrpcurl builds grpcurl (the README's gRPC client) into a
// temporary directory from the Go module proxy, as `go install` does for
// a user, and returns that directory.
func installGrpcurl(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	cmd := exec.Command("go", "install", "github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4")
	cmd.Dir = bin // outside this module: the tool's own go.mod decides its dependencies
	cmd.Env = append(os.Environ(), "GOBIN="+bin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go install grpcurl: %v\n%s", err, out)
	}
	return bin
}

// curlShim wraps curl so that each call reports its HTTP status and body
// on descriptor 3, where the test reads them; the block's own output is
// left as the user sees it.
const curlShim = `
curl() {
  local body; body=$(mktemp)
  command curl -o "$body" -w '%{http_code}' "$@" >"$body.status"
  local rc=$?
  cat "$body"
  { printf '=== %s ' "$(cat "$body.status")"; printf '%s ' "$@"; printf '\n'; cat "$body"; printf '\n'; } >&3
  rm -f "$body" "$body.status"
  return $rc
}
`

// curlCall is one curl call of a block, as curlShim reported it.
type curlCall struct {
	status int
	args   string
	body   string
}

func parseCalls(report string) []curlCall {
	var calls []curlCall
	for _, chunk := range strings.Split(report, "=== ")[1:] {
		head, body, _ := strings.Cut(chunk, "\n")
		code, args, _ := strings.Cut(head, " ")
		n, _ := strconv.Atoi(code)
		calls = append(calls, curlCall{status: n, args: strings.TrimSpace(args), body: strings.TrimSpace(body)})
	}
	return calls
}

// emptyAnswer says why a call's answer is empty ("" when it is not): a
// GET answered with a JSON object holding no non-empty list and no
// resource (protojson leaves empty lists out), or a CSV with a header only.
// Writes and health checks are not looked at.
func emptyAnswer(c curlCall) string {
	if strings.Contains(c.args, "-X ") && !strings.Contains(c.args, "-X GET") || !strings.Contains(c.args, "/v1/") {
		return "" // a write, or health
	}
	if strings.Contains(c.args, "text/csv") || strings.Contains(c.args, "format=focus") {
		if lines := strings.Count(strings.TrimSpace(c.body), "\n"); lines == 0 {
			return "a CSV with no row"
		}
		return ""
	}
	var obj map[string]any
	if json.Unmarshal([]byte(c.body), &obj) != nil {
		return ""
	}
	if _, ok := obj["name"]; ok {
		return "" // one resource
	}
	for _, v := range obj {
		if l, ok := v.([]any); ok && len(l) > 0 {
			return ""
		}
	}
	return "a JSON answer with no list entry"
}

// TestDocs_ShellBlocksWork runs every ```sh block of README.md and
// docs/*.md with bash against a zero-configuration server, in the order
// of the files (README.md, then docs/ by name) and of the blocks, as a
// user following the documentation would. The documented addresses
// (127.0.0.1:8080 or localhost:8080, 127.0.0.1:9090) and the data
// directory (/var/lib/seatledger/pg) are replaced by the test server's;
// every block also finds TOKEN (the demo token) and API (the REST base
// URL) in its environment, as the README and docs/api.md set them, and
// grpcurl on its PATH. A block must exit 0, and every curl call in it must
// answer the status of its "# expect: NNN" line (required when it calls
// curl) with something: a read that answers an empty list fails. A block
// with a "# not run by the docs test: why" line is not run.
func TestDocs_ShellBlocksWork(t *testing.T) {
	t.Parallel()
	grpcurlDir := installGrpcurl(t)
	dir := zeroConfigDir(t)
	svc := startService(t, map[string]string{"SEATLEDGER_DATA_DIR": dir}, "")
	withDemoToken(t, svc, dir)
	svc.runSync(t) // the first sync of the real time: the server is ready
	httpAddr := strings.TrimPrefix(svc.httpURL, "http://")
	replacer := strings.NewReplacer(
		"127.0.0.1:8080", httpAddr, "localhost:8080", httpAddr,
		"127.0.0.1:9090", svc.grpcAddr,
		"/var/lib/seatledger/pg", dir,
	)
	env := append(os.Environ(), "PATH="+grpcurlDir+string(os.PathListSeparator)+os.Getenv("PATH"),
		"TOKEN="+svc.token, "API="+svc.httpURL)

	ran := 0
	for _, file := range docFiles(t) {
		for _, b := range shBlocks(t, file) {
			where := fmt.Sprintf("%s:%d", b.file, b.line)
			if b.skip != "" {
				t.Logf("%s: not run: %s", where, b.skip)
				continue
			}
			calls := strings.Contains(b.text, "curl ")
			if calls && b.expect == 0 {
				t.Errorf("%s: the block calls curl but has no \"# expect: NNN\" line saying the status it expects", where)
				continue
			}
			ran++
			script := "set -eo pipefail\n" + curlShim + replacer.Replace(b.text)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			report, err := os.CreateTemp(t.TempDir(), "calls")
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.CommandContext(ctx, "bash", "-c", script)
			cmd.Env = env
			cmd.ExtraFiles = []*os.File{report}
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			runErr := cmd.Run()
			cancel()
			reported, _ := os.ReadFile(report.Name())
			report.Close()
			if runErr != nil {
				t.Errorf("%s: the block failed: %v\n--- block:\n%s--- stdout:\n%s\n--- stderr:\n%s", where, runErr, b.text, stdout.String(), stderr.String())
				continue
			}
			for _, c := range parseCalls(string(reported)) {
				c.args = strings.ReplaceAll(c.args, svc.token, "$TOKEN")
				if c.status != b.expect {
					t.Errorf("%s: curl %s answered %d, the block expects %d:\n%s", where, c.args, c.status, b.expect, c.body)
				} else if why := emptyAnswer(c); why != "" {
					t.Errorf("%s: curl %s answered %s:\n%s", where, c.args, why, c.body)
				}
			}
		}
	}
	if ran == 0 {
		t.Fatal("no shell block of the documentation ran")
	}
}

var (
	linkRE    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	headingRE = regexp.MustCompile(`(?m)^#{1,6} +(.+?)\s*$`)
)

// anchor is GitHub's id of a heading: lower case, punctuation other than
// hyphens dropped, spaces made hyphens.
func anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TestDocs_RelativeLinksResolve: every relative link of README.md and
// docs/*.md names a file of the repository, and its #fragment, if any, a
// heading of that file.
func TestDocs_RelativeLinksResolve(t *testing.T) {
	t.Parallel()
	for _, file := range docFiles(t) {
		text, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range linkRE.FindAllStringSubmatch(string(text), -1) {
			target := m[1]
			if u, err := url.Parse(target); err == nil && u.Scheme != "" {
				continue // an absolute URL
			}
			path, frag, _ := strings.Cut(target, "#")
			resolved := file
			if path != "" {
				resolved = filepath.Join(filepath.Dir(file), path)
			}
			body, err := os.ReadFile(resolved)
			if err != nil {
				t.Errorf("%s links %q: the repository has no %s", strings.TrimPrefix(file, "../../"), target, strings.TrimPrefix(resolved, "../../"))
				continue
			}
			if frag == "" {
				continue
			}
			found := false
			for _, h := range headingRE.FindAllStringSubmatch(string(body), -1) {
				found = found || anchor(h[1]) == frag
			}
			if !found {
				t.Errorf("%s links %q: %s has no heading with that anchor", strings.TrimPrefix(file, "../../"), target, strings.TrimPrefix(resolved, "../../"))
			}
		}
	}
}

// TestDocs_NamedRepositoryFilesExist: a file path the documentation names
// in code font (`internal/api/policy.go`) is a file of the repository, so
// that a reader can open it.
func TestDocs_NamedRepositoryFilesExist(t *testing.T) {
	t.Parallel()
	pathRE := regexp.MustCompile("`((?:[\\w.-]+/)+[\\w.-]+\\.(?:md|go|proto|yaml|yml|sql|json))`")
	for _, file := range docFiles(t) {
		text, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range pathRE.FindAllStringSubmatch(string(text), -1) {
			if _, err := os.Stat(filepath.Join("../..", m[1])); err != nil {
				t.Errorf("%s names `%s`, which the repository does not have", strings.TrimPrefix(file, "../../"), m[1])
			}
		}
	}
}
