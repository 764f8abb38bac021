package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"
)

// config is everything the server reads from flags and environment. Each
// flag -foo-bar can also be set as SEATLEDGER_FOO_BAR; DATABASE_URL,
// SSL_CERT_FILE and azidentity's AZURE_* variables keep their conventional
// names (see envName). A flag given on the command line wins over the
// environment.
type config struct {
	GRPCAddr        string
	HTTPAddr        string
	DatabaseURL     string // may hold a password: never log it raw
	DataDir         string
	SyncInterval    time.Duration
	SyncMaxRemove   float64
	ShutdownTimeout time.Duration
	ReadCacheMiB    int
	LogLevel        slog.Level
	LogFormat       string
	Graph           graphConfig
	Auth            authConfig
}

// authConfig says how callers of the API are authenticated. With neither
// source set, access control is off.
type authConfig struct {
	TokensFile   string
	OIDCIssuer   string
	OIDCAudience string // comma-separated accepted audiences
}

func (a authConfig) enabled() bool { return a.TokensFile != "" || a.OIDCIssuer != "" }

// graphConfig says which Graph tenant to mirror and how to authenticate.
type graphConfig struct {
	Mode            string // auto, simulator or graph
	URL             string
	PageSize        int
	TenantID        string
	ClientID        string
	ClientSecret    string // never logged
	CertificatePath string
	AuthorityHost   string
	CAFile          string // extra trusted CAs (SSL_CERT_FILE)
}

const defaultGraphURL = "https://graph.microsoft.com/beta"

// simulated reports whether the server runs the built-in Graph simulator
// instead of calling a real tenant: in mode auto, when no Azure identity is
// configured at all.
func (g graphConfig) simulated() bool {
	switch g.Mode {
	case "simulator":
		return true
	case "graph":
		return false
	}
	return g.TenantID == "" && g.ClientID == ""
}

// envNames maps flags whose variables have a name of their own, chosen by
// the ecosystem, to that name. Other flags use SEATLEDGER_<FLAG>.
var envNames = map[string]string{
	"database-url":                  "DATABASE_URL",
	"azure-tenant-id":               "AZURE_TENANT_ID",
	"azure-client-id":               "AZURE_CLIENT_ID",
	"azure-client-secret":           "AZURE_CLIENT_SECRET",
	"azure-client-certificate-path": "AZURE_CLIENT_CERTIFICATE_PATH",
	"azure-authority-host":          "AZURE_AUTHORITY_HOST",
	"ssl-cert-file":                 "SSL_CERT_FILE",
}

func envName(flagName string) string {
	if n, ok := envNames[flagName]; ok {
		return n
	}
	return "SEATLEDGER_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// newFlagSet declares every setting. The README's configuration table
// lists each of them; TestREADMEListsEveryFlag keeps the two in step.
func newFlagSet(c *config, defaultDataDir string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.GRPCAddr, "grpc-addr", "127.0.0.1:9090", "gRPC listen address")
	fs.StringVar(&c.HTTPAddr, "http-addr", "127.0.0.1:8080", "HTTP/JSON gateway listen address")
	fs.StringVar(&c.DatabaseURL, "database-url", "", "PostgreSQL URL; empty starts an embedded PostgreSQL in -data-dir")
	fs.StringVar(&c.DataDir, "data-dir", defaultDataDir, "directory of the embedded PostgreSQL cluster (used when -database-url is empty)")
	fs.DurationVar(&c.SyncInterval, "sync-interval", 15*time.Minute, "time between the end of one sync and the start of the next")
	fs.Float64Var(&c.SyncMaxRemove, "sync-max-remove", 0.2, "mass-deletion guard: hold a sync that would remove more than this share of current assignments or users (0..1)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 20*time.Second, "time allowed to drain requests on SIGINT/SIGTERM")
	fs.IntVar(&c.ReadCacheMiB, "read-cache-mib", 64, "memory for answers of reads kept until the mirror changes (MiB); 0 turns the read cache off")
	fs.TextVar(&c.LogLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "json", "log format: json or text")
	fs.StringVar(&c.Graph.Mode, "graph-mode", "auto", "auto (simulator unless AZURE_TENANT_ID or AZURE_CLIENT_ID is set), simulator, or graph")
	fs.StringVar(&c.Graph.URL, "graph-url", defaultGraphURL, "Microsoft Graph base URL, including the version")
	fs.IntVar(&c.Graph.PageSize, "graph-page-size", 0, "page size ($top) requested from Graph; 0 leaves it to Graph")
	fs.StringVar(&c.Graph.TenantID, "azure-tenant-id", "", "Microsoft Entra tenant id (read by azidentity)")
	fs.StringVar(&c.Graph.ClientID, "azure-client-id", "", "application (client) id of seatledger's app registration")
	fs.StringVar(&c.Graph.ClientSecret, "azure-client-secret", "", "client secret (prefer a certificate or workload identity)")
	fs.StringVar(&c.Graph.CertificatePath, "azure-client-certificate-path", "", "PEM or PKCS#12 file with the client certificate and key")
	fs.StringVar(&c.Graph.AuthorityHost, "azure-authority-host", "", "Microsoft Entra authority; empty means the public cloud")
	fs.StringVar(&c.Graph.CAFile, "ssl-cert-file", "", "PEM file of extra CAs to trust for Graph, the authority and the OIDC issuer")
	fs.StringVar(&c.Auth.TokensFile, "tokens-file", "", "JSON file of static API tokens (hashed) with their roles")
	fs.StringVar(&c.Auth.OIDCIssuer, "oidc-issuer", "", "OpenID Connect issuer whose JWTs authenticate API callers, e.g. https://login.microsoftonline.com/{tenant}/v2.0")
	fs.StringVar(&c.Auth.OIDCAudience, "oidc-audience", "", "accepted audiences (aud) of OIDC tokens, comma-separated, e.g. api://seatledger")
	return fs
}

// loadConfig parses args, fills what the command line left unset from
// getenv, and validates the result.
func loadConfig(args []string, getenv func(string) string, defaultDataDir string, out io.Writer) (config, error) {
	var c config
	fs := newFlagSet(&c, defaultDataDir, out)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		if v := getenv(name); v != "" && !onCommandLine[f.Name] {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return c, err
	}
	return c, c.validate()
}

func (c config) validate() error {
	var errs []error
	for name, addr := range map[string]string{"grpc-addr": c.GRPCAddr, "http-addr": c.HTTPAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not host:port", name, addr))
		}
	}
	if c.DatabaseURL == "" && c.DataDir == "" {
		errs = append(errs, errors.New("data-dir: must be set when database-url is empty"))
	}
	if c.SyncInterval < time.Second {
		errs = append(errs, fmt.Errorf("sync-interval: %v is too short (minimum 1s)", c.SyncInterval))
	}
	if c.SyncMaxRemove <= 0 || c.SyncMaxRemove > 1 {
		errs = append(errs, fmt.Errorf("sync-max-remove: %v is outside (0, 1]", c.SyncMaxRemove))
	}
	if c.ReadCacheMiB < 0 || c.ReadCacheMiB > 1<<20 {
		errs = append(errs, errors.New("read-cache-mib: must be between 0 (off) and 1048576"))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("shutdown-timeout: must be positive"))
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		errs = append(errs, fmt.Errorf("log-format: %q is neither json nor text", c.LogFormat))
	}
	switch c.Graph.Mode {
	case "auto", "simulator", "graph":
	default:
		errs = append(errs, fmt.Errorf("graph-mode: %q is not auto, simulator or graph", c.Graph.Mode))
	}
	if u, err := url.Parse(c.Graph.URL); err != nil || u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		errs = append(errs, fmt.Errorf("graph-url: %q is not an http(s) URL", c.Graph.URL))
	}
	if c.Auth.OIDCIssuer != "" && strings.TrimSpace(c.Auth.OIDCAudience) == "" {
		errs = append(errs, errors.New("oidc-audience: must be set with oidc-issuer"))
	}
	if c.Graph.PageSize < 0 || c.Graph.PageSize > 999 {
		errs = append(errs, fmt.Errorf("graph-page-size: %d is outside 0..999", c.Graph.PageSize))
	}
	return errors.Join(errs...)
}

// LogValue lets the config be logged whole without leaking secrets.
func (c config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("grpc_addr", c.GRPCAddr),
		slog.String("http_addr", c.HTTPAddr),
		slog.String("database_url", redactURL(c.DatabaseURL)),
		slog.String("data_dir", c.DataDir),
		slog.Duration("sync_interval", c.SyncInterval),
		slog.Float64("sync_max_remove", c.SyncMaxRemove),
		slog.String("graph_mode", c.Graph.Mode),
		slog.Bool("graph_simulated", c.Graph.simulated()),
		slog.String("graph_url", c.Graph.URL),
		slog.String("azure_tenant_id", c.Graph.TenantID),
		slog.String("azure_client_id", c.Graph.ClientID),
		slog.Bool("azure_client_secret_set", c.Graph.ClientSecret != ""),
		slog.String("azure_authority_host", c.Graph.AuthorityHost),
		slog.String("tokens_file", c.Auth.TokensFile),
		slog.String("oidc_issuer", c.Auth.OIDCIssuer),
		slog.String("oidc_audience", c.Auth.OIDCAudience),
	)
}

// redactURL hides the password of a database URL. Key=value DSNs cannot be
// redacted reliably, so they are hidden whole.
func redactURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return "<redacted>"
	}
	return u.Redacted()
}
