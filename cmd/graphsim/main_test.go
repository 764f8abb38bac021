package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdoutR, stdoutW := io.Pipe()
	var stderr strings.Builder
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-page-size", "2"}, stdoutW, &stderr) // slog serializes writes; read only after run returns
		stdoutW.Close()
	}()

	line, err := bufio.NewReader(stdoutR).ReadString('\n')
	if err != nil {
		t.Fatalf("read ready line: %v (run: %v)", err, <-done)
	}
	var ready map[string]string
	if err := json.Unmarshal([]byte(line), &ready); err != nil {
		t.Fatalf("ready line %q: %v", line, err)
	}
	var keys []string
	for k, v := range ready {
		keys = append(keys, k)
		if v == "" {
			t.Errorf("ready line: %s is empty", k)
		}
	}
	slices.Sort(keys)
	if want := []string{"authority_url", "ca_file", "client_id", "client_secret", "graph_url", "tenant_id"}; !slices.Equal(keys, want) {
		t.Fatalf("ready line keys = %v, want %v", keys, want)
	}

	pem, err := os.ReadFile(ready["ca_file"])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}

	resp, err := hc.PostForm(ready["authority_url"]+ready["tenant_id"]+"/oauth2/v2.0/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {ready["client_id"]},
		"client_secret": {ready["client_secret"]}, "scope": {"https://graph.microsoft.com/.default"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil || tok.AccessToken == "" {
		t.Fatalf("token: %d, %v", resp.StatusCode, err)
	}
	req, _ := http.NewRequest(http.MethodGet, ready["graph_url"]+"/admin/cloudLicensing/allotments", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var page struct {
		NextLink string `json:"@odata.nextLink"`
		Value    []json.RawMessage
	}
	err = json.NewDecoder(resp.Body).Decode(&page)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || len(page.Value) != 2 || page.NextLink == "" {
		t.Errorf("first page: status %d, %d items, next %q, err %v; want 2 items (-page-size 2) and a next link",
			resp.StatusCode, len(page.Value), page.NextLink, err)
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("run after cancel: %v", err)
	}
	if _, err := os.Stat(ready["ca_file"]); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ca_file after exit: %v, want it removed", err)
	}
	if !strings.Contains(stderr.String(), "graphsim ready") {
		t.Errorf("stderr has no ready log line:\n%s", stderr.String())
	}
}

// TestRun_Tenants starts the command with a scenario file and with a
// generated tenant, and reads the users through Graph.
func TestRun_Tenants(t *testing.T) {
	faults := t.TempDir() + "/faults.json"
	if err := os.WriteFile(faults, []byte(`[{"path":"/beta/users","nth":1,"kind":"throttle"}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args  []string
		users int
	}{
		{[]string{"-scenario", "../../internal/graphsim/testdata/scenario-example.json"}, 3},
		{[]string{"-generate", "-seed", "4", "-users", "250", "-allotments", "3", "-waiting-members", "2"}, 250},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		stdoutR, stdoutW := io.Pipe()
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, append([]string{"-addr", "127.0.0.1:0", "-page-size", "999", "-faults", faults}, tt.args...), stdoutW, io.Discard)
			stdoutW.Close()
		}()
		line, err := bufio.NewReader(stdoutR).ReadString('\n')
		if err != nil {
			t.Fatalf("%v: read ready line: %v (run: %v)", tt.args, err, <-done)
		}
		var ready map[string]string
		if err := json.Unmarshal([]byte(line), &ready); err != nil {
			t.Fatal(err)
		}
		pem, _ := os.ReadFile(ready["ca_file"])
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
		hc := &http.Client{Transport: tr}
		resp, err := hc.PostForm(ready["authority_url"]+ready["tenant_id"]+"/oauth2/v2.0/token", url.Values{
			"grant_type": {"client_credentials"}, "client_id": {ready["client_id"]},
			"client_secret": {ready["client_secret"]}, "scope": {"https://graph.microsoft.com/.default"},
		})
		if err != nil {
			t.Fatal(err)
		}
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&tok)
		resp.Body.Close()
		statuses := []int{}
		for range 2 { // the first is throttled by the faults file
			req, _ := http.NewRequest(http.MethodGet, ready["graph_url"]+"/users", nil)
			req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
			resp, err = hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var page struct{ Value []json.RawMessage }
			_ = json.NewDecoder(resp.Body).Decode(&page)
			resp.Body.Close()
			statuses = append(statuses, resp.StatusCode)
			if resp.StatusCode == http.StatusOK && len(page.Value) != tt.users {
				t.Errorf("%v: %d users, want %d", tt.args, len(page.Value), tt.users)
			}
		}
		if !slices.Equal(statuses, []int{429, 200}) {
			t.Errorf("%v: statuses %v, want [429 200]", tt.args, statuses)
		}
		tr.CloseIdleConnections()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}
}

func TestRun_BadFlags(t *testing.T) {
	for _, args := range [][]string{{"-page-size", "1000", "-addr", "127.0.0.1:0"}, {"-nope"}, {"extra"},
		{"-scenario", "x.json", "-generate"}, {"-scenario", "/nonexistent.json"}, {"-faults", "/nonexistent.json"}} {
		if err := run(context.Background(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("run(%q) succeeded", args)
		}
	}
}

// TestRun_StateDir: started again on the same -state-dir, the command comes
// back at the same address as the same tenant, with the change made to it
// in its first life, and keeps its CA file on exit.
func TestRun_StateDir(t *testing.T) {
	dir := t.TempDir()
	start := func() (map[string]string, *http.Client, func()) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		stdoutR, stdoutW := io.Pipe()
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-state-dir", dir}, stdoutW, io.Discard)
			stdoutW.Close()
		}()
		line, err := bufio.NewReader(stdoutR).ReadString('\n')
		if err != nil {
			cancel()
			t.Fatalf("read ready line: %v (run: %v)", err, <-done)
		}
		var ready map[string]string
		if err := json.Unmarshal([]byte(line), &ready); err != nil {
			t.Fatal(err)
		}
		pem, err := os.ReadFile(ready["ca_file"])
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
		return ready, &http.Client{Transport: tr}, func() {
			tr.CloseIdleConnections()
			cancel()
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		}
	}
	adminURL := func(ready map[string]string) string {
		return strings.TrimSuffix(ready["graph_url"], "/beta") + "/_sim"
	}
	users := func(hc *http.Client, ready map[string]string) []string {
		t.Helper()
		resp, err := hc.Get(adminURL(ready) + "/users")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var us []struct {
			ID string `json:"id"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&us); err != nil || len(us) == 0 {
			t.Fatalf("GET /_sim/users: %d users, %v", len(us), err)
		}
		ids := make([]string, 0, len(us))
		for _, u := range us {
			ids = append(ids, u.ID)
		}
		return ids
	}

	first, hc, stop := start()
	before := users(hc, first)
	req, _ := http.NewRequest(http.MethodDelete, adminURL(first)+"/users/"+before[0], nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("DELETE /_sim/users/%s: %d", before[0], resp.StatusCode)
	}
	stop()
	if _, err := os.Stat(first["ca_file"]); err != nil {
		t.Errorf("ca_file of a persistent simulator after exit: %v, want it kept", err)
	}

	second, hc, stop := start()
	defer stop()
	for _, k := range []string{"graph_url", "tenant_id", "client_id", "client_secret", "ca_file"} {
		if first[k] != second[k] {
			t.Errorf("after a restart %s = %q, want %q as before", k, second[k], first[k])
		}
	}
	if after := users(hc, second); !slices.Equal(after, before[1:]) {
		t.Errorf("after a restart the users are %v, want %v (the first life's removal kept)", after, before[1:])
	}
}
