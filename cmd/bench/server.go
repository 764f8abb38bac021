package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/seatledger/seatledger/internal/api"
	"github.com/seatledger/seatledger/internal/auth"
	"github.com/seatledger/seatledger/internal/graph"
	"github.com/seatledger/seatledger/internal/pglocal"
	"github.com/seatledger/seatledger/internal/store"
	mirrorsync "github.com/seatledger/seatledger/internal/sync"
)

// graphPageSize is the $top the benchmark's Graph clients send: Graph's
// largest page for these collections.
const graphPageSize = 999

// trusting returns an HTTP client that trusts the simulator's CA. Each
// call gets its own transport, so that clients share no connections.
func trusting(caPEM []byte) (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("simulator CA: no PEM certificate")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	tr.MaxIdleConnsPerHost = 64
	return &http.Client{Transport: tr}, nil
}

// newGraphClient returns a fresh Graph client for the simulator, with
// its own credential and connections.
func newGraphClient(sim *simProcess) (*graph.Client, error) {
	hc, err := trusting(sim.Info.CAPEM)
	if err != nil {
		return nil, err
	}
	cred, err := graph.NewCredential(graph.CredentialConfig{
		TenantID: sim.Info.TenantID, ClientID: sim.Info.ClientID, ClientSecret: sim.Info.ClientSecret,
		AuthorityHost: sim.Info.AuthorityURL, Transport: hc,
	})
	if err != nil {
		return nil, fmt.Errorf("graph credential: %w", err)
	}
	gc, err := graph.New(cred, graph.Options{BaseURL: sim.Info.GraphURL, HTTPClient: hc, PageSize: graphPageSize})
	if err != nil {
		return nil, fmt.Errorf("graph client: %w", err)
	}
	return gc, nil
}

// poolMaxConns, when positive, sets pool_max_conns on the store's DSN
// (-pool-max-conns), to see what the pool size bounds.
var poolMaxConns int

// readCacheBytes is the API's read cache (-read-cache-bytes).
var readCacheBytes int

// instance is seatledger wired as cmd/server's run wires it (store, Graph
// client, syncer, gRPC API with OIDC access control, gateway), in this
// process, on loopback ports.
type instance struct {
	st       *store.Store
	gc       *graph.Client
	syncer   *mirrorsync.Syncer
	grpcAddr string
	httpURL  string
	conn     *grpc.ClientConn
	token    string
	stop     func()
	// syncAt, when set, is the clock of the syncer's next runs (a first
	// sync dated in the past gives the mirror a history).
	syncAt atomic.Pointer[time.Time]
}

// bearer sends a fixed bearer token over a plaintext loopback connection.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }

// dial opens a gRPC client connection presenting token.
func dial(addr, token string) (*grpc.ClientConn, error) {
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(token)))
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return conn, nil
}

// startInstance creates database db on pg, migrates it and serves
// seatledger over it, mirroring sim.
func startInstance(ctx context.Context, pg *pglocal.Server, db string, sim *simProcess) (*instance, error) {
	if err := pg.EnsureDatabase(ctx, db); err != nil {
		return nil, err
	}
	dsn := pg.DSN(db)
	if poolMaxConns > 0 {
		dsn += fmt.Sprintf(" pool_max_conns=%d", poolMaxConns)
	}
	st, err := store.Open(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := st.Migrate(ctx, slog.New(slog.DiscardHandler)); err != nil {
		st.Close()
		return nil, fmt.Errorf("migrate: %w", err)
	}
	gc, err := newGraphClient(sim)
	if err != nil {
		st.Close()
		return nil, err
	}
	hc, err := trusting(sim.Info.CAPEM)
	if err != nil {
		st.Close()
		return nil, err
	}
	oidc, err := auth.NewOIDC(ctx, auth.OIDCConfig{Issuer: sim.Info.IssuerURL, Audience: []string{benchAudience}, HTTPClient: hc})
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("oidc: %w", err)
	}
	inst := &instance{}
	syncer := mirrorsync.New(gc, st, mirrorsync.Options{Interval: time.Hour, Now: func() time.Time {
		if at := inst.syncAt.Load(); at != nil {
			return *at
		}
		return time.Now()
	}})
	// The read cache as the server sets it by default (it serves once
	// WatchChanges, started below, listens).
	gs, local := api.New(api.Deps{Store: st, Graph: gc, Sync: syncer, Auth: oidc, ReadCacheBytes: readCacheBytes})
	grpcLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("grpc listener: %w", err)
	}
	httpLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		grpcLis.Close()
		st.Close()
		return nil, fmt.Errorf("http listener: %w", err)
	}
	gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	gw, err := api.NewGateway(gctx, local, api.Readiness(st, syncer.Ready), nil)
	if err != nil {
		cancel()
		grpcLis.Close()
		httpLis.Close()
		st.Close()
		return nil, err
	}
	hs := &http.Server{Handler: gw, ReadHeaderTimeout: 10 * time.Second}
	go gs.Serve(grpcLis)
	go hs.Serve(httpLis)
	conn, err := dial(grpcLis.Addr().String(), sim.Token)
	if err != nil {
		cancel()
		return nil, err
	}
	wctx, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	watched := make(chan struct{})
	go func() { defer close(watched); _ = st.WatchChanges(wctx, nil) }()
	inst.st, inst.gc, inst.syncer, inst.conn, inst.token = st, gc, syncer, conn, sim.Token
	inst.grpcAddr, inst.httpURL = grpcLis.Addr().String(), "http://"+httpLis.Addr().String()
	inst.stop = func() {
		conn.Close()
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		hs.Shutdown(sctx)
		gs.Stop()
		cancel()
		stopWatch()
		<-watched
		st.Close()
	}
	return inst, nil
}
