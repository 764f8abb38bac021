package main

import (
	"flag"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/seatledger/seatledger/internal/graphsim"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadConfig_Defaults(t *testing.T) {
	t.Parallel()
	c, err := loadConfig(nil, env(nil), "/data", io.Discard)
	if err != nil {
		t.Fatalf("loadConfig() error = %v", err)
	}
	if c.GRPCAddr != "127.0.0.1:9090" || c.HTTPAddr != "127.0.0.1:8080" {
		t.Errorf("listen addresses = %s, %s; want 127.0.0.1:9090, 127.0.0.1:8080", c.GRPCAddr, c.HTTPAddr)
	}
	if c.SyncInterval != 15*time.Minute {
		t.Errorf("sync interval = %v, want 15m", c.SyncInterval)
	}
	if c.Graph.URL != "https://graph.microsoft.com/beta" {
		t.Errorf("graph url = %q", c.Graph.URL)
	}
	if !c.Graph.simulated() {
		t.Error("with no Azure identity configured the simulator should be used")
	}
	if c.DataDir != "/data" || c.DatabaseURL != "" {
		t.Errorf("data dir = %q, database url = %q; want the embedded default", c.DataDir, c.DatabaseURL)
	}
}

func TestLoadConfig_EnvironmentAndFlags(t *testing.T) {
	t.Parallel()
	e := env(map[string]string{
		"DATABASE_URL":             "postgres://u:pw@db/seatledger",
		"SEATLEDGER_GRPC_ADDR":     "0.0.0.0:1",
		"SEATLEDGER_HTTP_ADDR":     "0.0.0.0:2",
		"SEATLEDGER_SYNC_INTERVAL": "5m",
		"SEATLEDGER_GRAPH_URL":     "https://127.0.0.1:8443/beta",
		"AZURE_TENANT_ID":          "tenant",
		"AZURE_CLIENT_ID":          "client",
		"AZURE_CLIENT_SECRET":      "s3cret",
		"AZURE_AUTHORITY_HOST":     "https://127.0.0.1:8443/",
		"SSL_CERT_FILE":            "/ca.pem",
	})
	c, err := loadConfig([]string{"-grpc-addr", "127.0.0.1:7"}, e, "/data", io.Discard)
	if err != nil {
		t.Fatalf("loadConfig() error = %v", err)
	}
	if c.GRPCAddr != "127.0.0.1:7" {
		t.Errorf("grpc addr = %q: a flag on the command line must win over the environment", c.GRPCAddr)
	}
	if c.HTTPAddr != "0.0.0.0:2" || c.SyncInterval != 5*time.Minute || c.DatabaseURL != "postgres://u:pw@db/seatledger" {
		t.Errorf("environment not applied: %+v", c)
	}
	g := c.Graph
	if g.simulated() || g.TenantID != "tenant" || g.ClientID != "client" || g.ClientSecret != "s3cret" ||
		g.AuthorityHost != "https://127.0.0.1:8443/" || g.CAFile != "/ca.pem" || g.URL != "https://127.0.0.1:8443/beta" {
		t.Errorf("graph config = %+v", g)
	}
}

func TestLoadConfig_RejectsBadValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // in the error
	}{
		{"bad duration from env", nil, map[string]string{"SEATLEDGER_SYNC_INTERVAL": "soon"}, "SEATLEDGER_SYNC_INTERVAL"},
		{"bad address", []string{"-http-addr", "8080"}, nil, "http-addr"},
		{"bad graph mode", []string{"-graph-mode", "maybe"}, nil, "graph-mode"},
		{"bad log format", []string{"-log-format", "xml"}, nil, "log-format"},
		{"graph url not http", []string{"-graph-url", "ftp://x"}, nil, "graph-url"},
		{"stray argument", []string{"serve"}, nil, "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := loadConfig(tt.args, env(tt.env), "/data", io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("loadConfig() error = %v, want one naming %q", err, tt.want)
			}
		})
	}
}

func TestConfig_LogValueHidesSecrets(t *testing.T) {
	t.Parallel()
	c, err := loadConfig(nil, env(map[string]string{
		"DATABASE_URL":        "postgres://app:hunter2@db:5432/seatledger",
		"AZURE_TENANT_ID":     "t",
		"AZURE_CLIENT_ID":     "c",
		"AZURE_CLIENT_SECRET": "topsecretvalue",
	}), "/data", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	got := c.LogValue().String()
	for _, secret := range []string{"hunter2", "topsecretvalue"} {
		if strings.Contains(got, secret) {
			t.Errorf("LogValue() = %s; leaks %q", got, secret)
		}
	}
	if !strings.Contains(got, "db:5432") {
		t.Errorf("LogValue() = %s; want the database host kept", got)
	}
}

// TestREADMEListsEveryFlag keeps the README's configuration table in step
// with the flags: every flag and its environment variable must appear.
func TestREADMEListsEveryFlag(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var c config
	fs := newFlagSet(&c, "/data", io.Discard)
	fs.VisitAll(func(f *flag.Flag) {
		row := "`-" + f.Name + "`"
		if !strings.Contains(string(readme), row) {
			t.Errorf("README.md has no row for %s", row)
		}
		if v := "`" + envName(f.Name) + "`"; !strings.Contains(string(readme), v) {
			t.Errorf("README.md does not name %s", v)
		}
	})
}

// TestDockerCompose keeps docker-compose.yml true: the server's settings
// there are real environment variables of the server, and the simulator
// credentials it passes are those of graphsim's demo app and tenant.
func TestDockerCompose(t *testing.T) {
	t.Parallel()
	compose, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	var c config
	newFlagSet(&c, "/data", io.Discard).VisitAll(func(f *flag.Flag) { known[envName(f.Name)] = true })
	setting := regexp.MustCompile(`(?m)^      ([A-Z][A-Z0-9_]+): (\S+)`)
	got := map[string]string{}
	for _, m := range setting.FindAllStringSubmatch(string(compose), -1) {
		got[m[1]] = m[2]
		if !strings.HasPrefix(m[1], "POSTGRES_") && !known[m[1]] {
			t.Errorf("docker-compose.yml sets %s, which the server does not read", m[1])
		}
	}
	// A simulator that forgot its tenant, key and CA on a restart would
	// undo the writes the server made and break its trust in the CA.
	if !regexp.MustCompile(`entrypoint: \["graphsim",.*"-state-dir", "/sim/`).Match(compose) {
		t.Error("docker-compose.yml: graphsim runs without -state-dir on its volume; a restart would forget its tenant, key and CA")
	}
	if want := "https://graphsim:8443/" + graphsim.DemoTenant().ID + "/v2.0"; got["SEATLEDGER_OIDC_ISSUER"] != want {
		t.Errorf("docker-compose.yml: SEATLEDGER_OIDC_ISSUER = %q, want the simulator's issuer %q", got["SEATLEDGER_OIDC_ISSUER"], want)
	}
	demo := graphsim.DemoApp()
	tenant := graphsim.DemoTenant()
	for name, want := range map[string]string{
		"AZURE_CLIENT_ID":     demo.ClientID,
		"AZURE_CLIENT_SECRET": demo.ClientSecret,
		"AZURE_TENANT_ID":     tenant.ID,
	} {
		if got[name] != want {
			t.Errorf("docker-compose.yml: %s = %q, want graphsim's demo value %q", name, got[name], want)
		}
	}
}
