// Command server runs seatledger: the Graph mirror, the gRPC API and its
// HTTP/JSON gateway, in one process. Read run top to bottom: it is the
// wiring diagram of the service.
//
// Usage:
//
//	server [flags]                    serve (the default)
//	server migrate up|down|status     manage the schema and exit
//
// With no configuration at all it starts an embedded PostgreSQL from the
// local binaries and the built-in Graph simulator with a demo tenant.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/seatledger/seatledger/internal/api"
	"github.com/seatledger/seatledger/internal/auth"
	"github.com/seatledger/seatledger/internal/graph"
	"github.com/seatledger/seatledger/internal/graphsim"
	"github.com/seatledger/seatledger/internal/pglocal"
	"github.com/seatledger/seatledger/internal/store"
	mirrorsync "github.com/seatledger/seatledger/internal/sync"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr, nil)
	switch {
	case errors.Is(err, flag.ErrHelp):
		// -help printed the flags; that is a success.
	case err != nil:
		fmt.Fprintf(os.Stderr, "seatledger: %v\n", err)
		os.Exit(1)
	}
}

// readyFunc receives the bound listener addresses once both accept
// connections; the end-to-end tests use it instead of fixed ports.
type readyFunc func(grpcAddr, httpAddr net.Addr)

// run is main without process globals, so that the end-to-end tests can
// start the whole service in-process.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, ready readyFunc) error {
	command := "serve"
	if len(args) > 0 && args[0] == "migrate" {
		command, args = "migrate", args[1:]
	}
	var migrateArgs []string
	if command == "migrate" {
		if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
			return errors.New("usage: server migrate up|down|status [flags]")
		}
		migrateArgs, args = args[:1], args[1:]
	}

	cfg, err := loadConfig(args, getenv, pglocal.DefaultDataDir(), stderr)
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	log.Info("starting seatledger", "command", command, "config", cfg)

	// Postgres: DATABASE_URL, or a private server from the local binaries.
	dsn := cfg.DatabaseURL
	if dsn == "" {
		pg, err := pglocal.Start(ctx, cfg.DataDir)
		if err != nil {
			return fmt.Errorf("start embedded postgres: %w", err)
		}
		defer func() {
			if err := pg.Stop(); err != nil {
				log.Error("stop embedded postgres", "err", err)
			}
		}()
		if err := pg.EnsureDatabase(ctx, "seatledger"); err != nil {
			return fmt.Errorf("start embedded postgres: %w", err)
		}
		dsn = pg.DSN("seatledger")
		log.Info("using embedded postgres", "data_dir", cfg.DataDir)
	}
	octx, cancel := context.WithTimeout(ctx, 15*time.Second)
	st, err := store.Open(octx, dsn)
	cancel()
	if err != nil {
		return fmt.Errorf("database %s: %w", redactURL(cfg.DatabaseURL), err)
	}
	defer st.Close()
	if command == "migrate" {
		return migrate(ctx, st, migrateArgs[0], stderr, log)
	}
	if err := st.Migrate(ctx, log); err != nil {
		return err
	}

	// Graph: the configured tenant, else the built-in simulator.
	var sim *graphsim.Server
	var simInfo graphsim.Info
	if cfg.Graph.simulated() {
		if sim, simInfo, err = startSimulator(cfg.DataDir, cfg.LogLevel, log); err != nil {
			return err
		}
		defer sim.Close()
	}
	var simPtr *graphsim.Info
	if sim != nil {
		simPtr = &simInfo
	}
	gc, err := newGraphClient(cfg.Graph, simPtr, log)
	if err != nil {
		return err
	}

	authn, err := newAuthenticator(ctx, cfg, sim, simInfo, log)
	if err != nil {
		return err
	}

	syncer := mirrorsync.New(gc, st, mirrorsync.Options{
		Interval:          cfg.SyncInterval,
		MaxRemoveFraction: cfg.SyncMaxRemove,
		Logger:            log.With("component", "sync"),
	})
	if sim != nil && zeroConfiguration(cfg) {
		// The zero-configuration demo's first start records a past.
		if err := seedDemoPast(ctx, dsn, gc, sim, log.With("component", "demo")); err != nil {
			return err
		}
	}
	completions := api.NewCompletions()
	grpcServer, local := api.New(api.Deps{
		Store:       st,
		Graph:       gc,
		Sync:        syncer,
		Auth:        authn,
		Logger:      log.With("component", "api"),
		Completions: completions,
		// The cache serves only while st.WatchChanges (below) listens.
		ReadCacheBytes: cfg.ReadCacheMiB << 20,
	})

	grpcLis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("grpc listener: %w", err)
	}
	defer grpcLis.Close()
	httpLis, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http listener: %w", err)
	}
	defer httpLis.Close()
	gateway, err := api.NewGateway(ctx, local, api.Readiness(st, syncer.Ready), metricsWriter(syncer, gc, local))
	if err != nil {
		return err
	}
	httpServer := &http.Server{
		Handler:           gateway,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return grpcServer.Serve(grpcLis) })
	g.Go(func() error { return ignoreClosed(httpServer.Serve(httpLis)) })
	g.Go(func() error { return syncer.Run(gctx) }) // returns nil when gctx ends
	if cfg.ReadCacheMiB > 0 {
		g.Go(func() error { return st.WatchChanges(gctx, log.With("component", "store")) }) // nil when gctx ends
	}
	g.Go(func() error {
		<-gctx.Done() // a signal, or one of the goroutines above failed
		log.Info("shutting down", "timeout", cfg.ShutdownTimeout)
		sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), cfg.ShutdownTimeout)
		defer cancel()
		err := httpServer.Shutdown(sctx) // stop accepting, drain REST calls
		stopGRPC(sctx, grpcServer)       // then drain RPCs
		// Then what writes complete after answering.
		if cerr := completions.Close(sctx); cerr != nil {
			log.Warn("write completions cut short by the shutdown timeout; the next sync corrects the mirror", "err", cerr)
		}
		return err
	})
	log.Info("serving", "grpc_addr", grpcLis.Addr().String(), "http_addr", httpLis.Addr().String())
	if ready != nil {
		ready(grpcLis.Addr(), httpLis.Addr())
	}
	err = g.Wait()
	log.Info("stopped", "err", err)
	return err // deferred: close graph, pool; stop Postgres
}

// migrate runs a migrate subcommand against st.
func migrate(ctx context.Context, st *store.Store, verb string, out io.Writer, log *slog.Logger) error {
	switch verb {
	case "up":
		return st.Migrate(ctx, log)
	case "down":
		return st.MigrateDown(ctx, log)
	case "status":
		return st.MigrationStatus(ctx, out)
	}
	return fmt.Errorf("migrate: unknown command %q (want up, down or status)", verb)
}

// demoAudience is the audience of the tokens the zero-configuration demo
// accepts, minted by the built-in simulator's authority.
const demoAudience = "api://seatledger"

// startSimulator starts the built-in Graph simulator with its demo tenant
// on a loopback port. With a data directory it is persistent (in
// dataDir/graphsim): a restart comes back on the same port with the same
// tenant, keys and every change made through seatledger, so that the mirror
// and the demo token stay consistent with it.
func startSimulator(dataDir string, level slog.Level, log *slog.Logger) (*graphsim.Server, graphsim.Info, error) {
	// The simulator logs every request; that is noise unless debugging.
	simLog := slog.New(minLevel{log.Handler(), slog.LevelWarn}).With("component", "graphsim")
	if level <= slog.LevelDebug {
		simLog = log.With("component", "graphsim")
	}
	opts := graphsim.Options{Logger: simLog}
	if dataDir != "" {
		opts.StateDir = filepath.Join(dataDir, "graphsim")
		opts.OnSave = func(err error) {
			if err != nil {
				log.Error("graph simulator state not saved; a restart would lose the latest demo changes", "dir", opts.StateDir, "err", err)
			}
		}
	}
	sim, err := graphsim.New(opts)
	if err != nil {
		return nil, graphsim.Info{}, fmt.Errorf("graph simulator: %w", err)
	}
	info, err := sim.Start("127.0.0.1:0")
	if err != nil {
		return nil, graphsim.Info{}, fmt.Errorf("graph simulator: %w", err)
	}
	log.Warn("no Graph credentials configured: mirroring the built-in Graph simulator's demo tenant; set AZURE_TENANT_ID and AZURE_CLIENT_ID to mirror a real tenant",
		"graph_url", info.GraphURL, "state_dir", opts.StateDir)
	return sim, info, nil
}

// minLevel passes on the records of at least its level.
type minLevel struct {
	slog.Handler
	level slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(as), h.level}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.level}
}

// newGraphClient returns the Graph client for cfg or, when sim is set, for
// the built-in simulator, authenticating against the simulator's own
// authority through the same azidentity path a real tenant uses.
func newGraphClient(cfg graphConfig, sim *graphsim.Info, log *slog.Logger) (*graph.Client, error) {
	opts := graph.Options{BaseURL: cfg.URL, PageSize: cfg.PageSize, Logger: log.With("component", "graph")}
	credCfg := graph.CredentialConfig{
		TenantID:        cfg.TenantID,
		ClientID:        cfg.ClientID,
		ClientSecret:    cfg.ClientSecret,
		CertificatePath: cfg.CertificatePath,
		AuthorityHost:   cfg.AuthorityHost,
	}
	var extraCAs []byte
	if sim != nil {
		opts.BaseURL = sim.GraphURL
		credCfg = graph.CredentialConfig{
			TenantID:      sim.TenantID,
			ClientID:      sim.ClientID,
			ClientSecret:  sim.ClientSecret,
			AuthorityHost: sim.AuthorityURL,
		}
		extraCAs = sim.CAPEM
	} else if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ssl-cert-file: %w", err)
		}
		extraCAs = pem
	}
	hc, err := httpClientTrusting(extraCAs)
	if err != nil {
		return nil, err
	}
	opts.HTTPClient = hc
	credCfg.Transport = hc
	cred, err := graph.NewCredential(credCfg)
	if err != nil {
		return nil, fmt.Errorf("graph credential: %w", err)
	}
	gc, err := graph.New(cred, opts)
	if err != nil {
		return nil, fmt.Errorf("graph client: %w", err)
	}
	return gc, nil
}

// newAuthenticator returns how API callers are authenticated: the tokens
// file, then the OIDC issuer, whichever are configured; nil (access control
// off, said loudly in the log) when neither is.
func newAuthenticator(ctx context.Context, cfg config, sim *graphsim.Server, simInfo graphsim.Info, log *slog.Logger) (auth.Authenticator, error) {
	if !cfg.Auth.enabled() && sim != nil {
		return demoAuthenticator(ctx, cfg, sim, simInfo, log)
	}
	if !cfg.Auth.enabled() {
		log.Warn("API access control is off: any caller can read and change everything; set SEATLEDGER_OIDC_ISSUER or SEATLEDGER_TOKENS_FILE")
		return nil, nil
	}
	alog := log.With("component", "auth")
	var chain []auth.Authenticator
	if cfg.Auth.TokensFile != "" {
		tf, err := auth.NewTokensFile(cfg.Auth.TokensFile, alog)
		if err != nil {
			return nil, fmt.Errorf("tokens-file: %w", err)
		}
		chain = append(chain, tf)
	}
	if cfg.Auth.OIDCIssuer != "" {
		var extra []byte
		if cfg.Graph.CAFile != "" {
			pem, err := os.ReadFile(cfg.Graph.CAFile)
			if err != nil {
				return nil, fmt.Errorf("ssl-cert-file: %w", err)
			}
			extra = pem
		}
		hc, err := httpClientTrusting(extra)
		if err != nil {
			return nil, err
		}
		var audiences []string
		for _, a := range strings.Split(cfg.Auth.OIDCAudience, ",") {
			if a = strings.TrimSpace(a); a != "" {
				audiences = append(audiences, a)
			}
		}
		octx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		o, err := auth.NewOIDC(octx, auth.OIDCConfig{Issuer: cfg.Auth.OIDCIssuer, Audience: audiences, HTTPClient: hc, Logger: alog})
		if err != nil {
			return nil, fmt.Errorf("oidc-issuer: %w", err)
		}
		chain = append(chain, o)
	}
	log.Info("API access control is on", "tokens_file", cfg.Auth.TokensFile != "", "oidc", cfg.Auth.OIDCIssuer != "")
	return auth.Chain(chain...), nil
}

// demoAuthenticator is the zero-configuration demo's access control: the
// built-in simulator's authority is the OIDC issuer, and a token holding
// every role is written to demo-token in the data directory and logged, so
// the demo can be called at once. The token in that file is used again
// while the simulator still accepts it (its key and address persist) and it
// has more than a day left; else a new one replaces it. A rejected token
// gets a 401 that says where the current one is. (This is the one token
// seatledger ever logs: it is the demo's, valid only against this demo.)
func demoAuthenticator(ctx context.Context, cfg config, sim *graphsim.Server, info graphsim.Info, log *slog.Logger) (auth.Authenticator, error) {
	hc, err := httpClientTrusting(info.CAPEM)
	if err != nil {
		return nil, err
	}
	o, err := auth.NewOIDC(ctx, auth.OIDCConfig{Issuer: info.IssuerURL, Audience: []string{demoAudience}, HTTPClient: hc, Logger: log.With("component", "auth")})
	if err != nil {
		return nil, fmt.Errorf("demo access control: %w", err)
	}
	roles := make([]string, 0, len(auth.Roles))
	for _, r := range auth.Roles {
		roles = append(roles, string(r))
	}
	tokenFile := ""
	if cfg.DataDir != "" && os.MkdirAll(cfg.DataDir, 0o700) == nil {
		tokenFile = filepath.Join(cfg.DataDir, "demo-token")
	}
	token, reused := reusableDemoToken(ctx, o, tokenFile)
	if !reused {
		token, err = sim.MintCallerToken(graphsim.CallerToken{Audience: demoAudience, Caller: "demo-admin", Roles: roles, Lifetime: 30 * 24 * time.Hour})
		if err != nil {
			return nil, fmt.Errorf("demo access control: %w", err)
		}
		if tokenFile != "" {
			if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
				log.Error("demo token not written", "token_file", tokenFile, "err", err)
				tokenFile = ""
			}
		}
	}
	log.Warn("demo access control: calls need this bearer token, which holds every role (curl -H \"Authorization: Bearer $TOKEN\")",
		"token", token, "token_file", tokenFile, "roles", roles, "reused", reused)
	where := "the demo's start-up log"
	if tokenFile != "" {
		where = tokenFile
	}
	return demoHint{Authenticator: o, where: where}, nil
}

// reusableDemoToken returns the token in file when a has all it needs:
// valid, with every role, for more than a day more.
func reusableDemoToken(ctx context.Context, a auth.Authenticator, file string) (string, bool) {
	if file == "" {
		return "", false
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", false
	}
	token := strings.TrimSpace(string(b))
	id, err := a.Authenticate(ctx, token)
	if err != nil || len(id.Roles) != len(auth.Roles) {
		return "", false
	}
	// The payload is verified; only its expiry is read here.
	parts := strings.Split(token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	var c struct {
		Exp int64 `json:"exp"`
	}
	if err != nil || json.Unmarshal(payload, &c) != nil || time.Until(time.Unix(c.Exp, 0)) < 24*time.Hour {
		return "", false
	}
	return token, true
}

// demoHint adds to the demo's token rejections where the current token is:
// after a restart that had to replace it, a caller holding the old one
// learns what to do.
type demoHint struct {
	auth.Authenticator
	where string
}

func (d demoHint) Authenticate(ctx context.Context, bearer string) (auth.Identity, error) {
	id, err := d.Authenticator.Authenticate(ctx, bearer)
	if errors.Is(err, auth.ErrUnauthenticated) {
		return id, fmt.Errorf("%w; this demo's bearer token is in %s: re-read it (a restart may have replaced it)", err, d.where)
	}
	return id, err
}

// httpClientTrusting returns an HTTP client that trusts the system's CAs
// plus those in extraPEM (SSL_CERT_FILE adds to the system pool here,
// rather than replacing it).
func httpClientTrusting(extraPEM []byte) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if len(extraPEM) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(extraPEM) {
			return nil, errors.New("ssl-cert-file: no PEM certificate found")
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr}, nil
}

func newLogger(w io.Writer, level slog.Level, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// metricsWriter writes the sync's and the Graph client's counters in the
// Prometheus text format: enough to alert on held or failing syncs and on
// Graph throttling, without a metrics library.
func metricsWriter(syncer *mirrorsync.Syncer, gc *graph.Client, local *api.Local) func(io.Writer) {
	return func(w io.Writer) {
		m, g, c := syncer.Metrics(), gc.Stats(), local.ReadCacheStats()
		leading, last := 0, 0.0
		if m.Leading {
			leading = 1
		}
		if !m.LastSuccess.IsZero() {
			last = float64(m.LastSuccess.Unix())
		}
		fmt.Fprintf(w, "# HELP seatledger_sync_runs_total Sync runs since the process started, by outcome.\n# TYPE seatledger_sync_runs_total counter\n")
		fmt.Fprintf(w, "seatledger_sync_runs_total{outcome=\"succeeded\"} %d\n", m.Succeeded)
		fmt.Fprintf(w, "seatledger_sync_runs_total{outcome=\"failed\"} %d\n", m.Failed)
		fmt.Fprintf(w, "seatledger_sync_runs_total{outcome=\"held\"} %d\n", m.Held)
		fmt.Fprintf(w, "# HELP seatledger_sync_last_success_timestamp_seconds End of the last applied sync run (0: none yet).\n# TYPE seatledger_sync_last_success_timestamp_seconds gauge\n")
		fmt.Fprintf(w, "seatledger_sync_last_success_timestamp_seconds %g\n", last)
		fmt.Fprintf(w, "# HELP seatledger_sync_leader Whether this process holds the sync lock.\n# TYPE seatledger_sync_leader gauge\n")
		fmt.Fprintf(w, "seatledger_sync_leader %d\n", leading)
		fmt.Fprintf(w, "# HELP seatledger_graph_requests_total HTTP requests sent to Microsoft Graph, retries included.\n# TYPE seatledger_graph_requests_total counter\n")
		fmt.Fprintf(w, "seatledger_graph_requests_total %d\n", g.Requests)
		fmt.Fprintf(w, "# HELP seatledger_graph_throttled_total Graph answers with status 429.\n# TYPE seatledger_graph_throttled_total counter\n")
		fmt.Fprintf(w, "seatledger_graph_throttled_total %d\n", g.Throttled)
		fmt.Fprintf(w, "# HELP seatledger_graph_retries_total Graph requests that repeated a failed one.\n# TYPE seatledger_graph_retries_total counter\n")
		fmt.Fprintf(w, "seatledger_graph_retries_total %d\n", g.Retries)
		fmt.Fprintf(w, "# HELP seatledger_graph_throttle_limit_percentage Last x-ms-throttle-limit-percentage Graph sent (0: never).\n# TYPE seatledger_graph_throttle_limit_percentage gauge\n")
		fmt.Fprintf(w, "seatledger_graph_throttle_limit_percentage %g\n", g.ThrottleLimitPercentage)
		if c.Enabled {
			live := 0
			if c.Live {
				live = 1
			}
			fmt.Fprintf(w, "# HELP seatledger_read_cache_live Whether the read cache serves (1: the database's change notifications are received).\n# TYPE seatledger_read_cache_live gauge\n")
			fmt.Fprintf(w, "seatledger_read_cache_live %d\n", live)
			fmt.Fprintf(w, "# HELP seatledger_read_cache_hits_total Cached reads answered from memory.\n# TYPE seatledger_read_cache_hits_total counter\n")
			fmt.Fprintf(w, "seatledger_read_cache_hits_total %d\n", c.Hits)
			fmt.Fprintf(w, "# HELP seatledger_read_cache_misses_total Cached reads answered from the database.\n# TYPE seatledger_read_cache_misses_total counter\n")
			fmt.Fprintf(w, "seatledger_read_cache_misses_total %d\n", c.Misses)
			fmt.Fprintf(w, "# HELP seatledger_read_cache_bytes Wire size of the answers the read cache holds.\n# TYPE seatledger_read_cache_bytes gauge\n")
			fmt.Fprintf(w, "seatledger_read_cache_bytes %d\n", c.Bytes)
		}
	}
}

// stopGRPC drains in-flight RPCs until ctx expires, then cuts off the rest
// (GracefulStop alone waits forever on a stuck stream).
func stopGRPC(ctx context.Context, s *grpc.Server) {
	done := make(chan struct{})
	go func() { s.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.Stop()
	}
}

func ignoreClosed(err error) error {
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
