// Package graphsim simulates the slice of Microsoft Graph (beta) that
// seatledger mirrors — Cloud Licensing (allotments, assignments, waiting
// members, assignment errors, usage rights) and the directory facts
// around it (users, groups, devices, delta queries, $batch) — together
// with a fake Microsoft Entra authority that issues the tokens it
// accepts. It is one http.Handler over an in-memory tenant whose seats,
// waiting room and errors follow from its assignments and plan rules,
// served over HTTPS by Start (azidentity refuses an authority without
// https) or mounted by tests as they like. An admin API under /_sim/ and
// exported mutators change the tenant while it runs; fault rules make
// requests fail on purpose.
//
// graphsim owns its wire types and must not import internal/graph (nor the
// reverse): the client and the simulator are each checked against the
// documented examples in shared/graph/fixtures, so that one misreading of
// the documentation cannot pass every test. docs/graph-simulator.md lists
// the behaviour it chose where the documentation is silent.
package graphsim

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a Server. The zero value serves the demo tenant.
type Options struct {
	// Tenant is the initial state; nil means DemoTenant().
	Tenant *Tenant
	// PageSize is the page size of collections when the request has no
	// $top: 0 means 100; at most 999.
	PageSize int
	// Logger receives one line per request; nil discards.
	Logger *slog.Logger
	// Clock is the simulator's time (token lifetimes, error dates); nil
	// means time.Now.
	Clock func() time.Time
	// Hostnames are extra DNS names the server certificate is valid for;
	// the first also replaces the IP address in the URLs Start returns.
	// A container network, where clients reach the simulator as
	// "graphsim", needs one.
	Hostnames []string
	// CAFile is where Start writes the CA's PEM file; empty means a new
	// temporary directory. Close removes the file either way.
	CAFile string
	// Latency is added to every Graph request (not the authority's, not
	// /_sim/), e.g. 50ms to make benchmarks feel a network.
	Latency time.Duration
	// Faults are the fault rules in force from the start (see SetFaults).
	Faults []FaultRule
	// StateDir, when set, makes the simulator persistent: New restores
	// the state a previous simulator saved there (StateFileName), if any,
	// and Tenant is then ignored; the simulator saves its state there (see
	// Save). What is kept: the tenant (ids, apps and secrets, directory,
	// allotments, assignments, seats, waiting room and its order,
	// assignment errors, plan rules), the token signing key (tokens
	// issued before stay valid), the CA (written to StateDir/ca.pem unless
	// CAFile is set, and kept by Close), the port (Start reuses it when
	// asked for port 0), the id sequence and the clock offset. Not kept:
	// fault rules, latency, page size (options of each start), and users
	// and groups delta links, which answer 410 syncStateNotFound after a
	// restart. A state file that cannot be read makes New fail.
	StateDir string
	// OnSave, when set, is called after each save of a persistent
	// simulator with its outcome (nil, or why the state could not be
	// written).
	OnSave func(error)
}

// Info is what a client needs to reach a started simulator.
type Info struct {
	GraphURL     string // base of the Graph API, e.g. https://127.0.0.1:PORT/beta
	AuthorityURL string // the authority host, e.g. https://127.0.0.1:PORT/ (AZURE_AUTHORITY_HOST)
	TenantID     string
	ClientID     string // the tenant's first registered app
	ClientSecret string
	CAFile       string // PEM file of the CA that signed the server certificate; removed by Close
	CAPEM        []byte // the same CA, in memory
	// IssuerURL is the OpenID Connect issuer of tokens for other APIs
	// (MintCallerToken): its discovery document is at
	// IssuerURL + "/.well-known/openid-configuration".
	IssuerURL string
	// AdminURL is the base of the simulator's admin API, e.g.
	// https://127.0.0.1:PORT/_sim (no token needed).
	AdminURL string
}

// Server is a simulated Graph tenant. Its methods are safe for concurrent
// use.
type Server struct {
	log       *slog.Logger
	now       func() time.Time
	pageSize  int
	hostnames []string
	caFile    string
	key       *rsa.PrivateKey
	kid       string
	stateDir  string
	savedAddr string        // where the previous life listened, from the state file
	dirty     chan struct{} // a change to save; nil without stateDir
	saveMu    sync.Mutex    // one Save at a time
	onSave    func(error)
	tenantID  string
	apps      []App
	handler   http.Handler

	latency time.Duration
	offset  atomic.Int64 // nanoseconds AdvanceClock added to the clock
	pinned  atomic.Int64 // Unix nanoseconds SetClock stopped the clock at; 0: not stopped
	faults  *faultSet

	mu    sync.Mutex // guards st and idSeq
	st    *store
	idSeq uint64

	startMu   sync.Mutex // guards the fields below
	srv       *http.Server
	served    chan struct{} // closed when the serving goroutine returns
	caDir     string        // temporary directory of the CA file, "" when Options.CAFile named it
	caPath    string
	issuerURL string // set by Start: the v2.0 issuer of caller tokens
	closed    bool
	ca        *authorityCA // created by the first Start, or restored
	addr      string       // where Start listens
	stopSave  chan struct{}
	saveDone  chan struct{}
}

const defaultPageSize = 100

// New returns a simulator holding a copy of opts.Tenant (or the demo
// tenant), or the state saved in opts.StateDir. It fails if the tenant is
// inconsistent (unknown SKU, duplicate ids, malformed dates), the state
// file cannot be read, or the page size is out of range. It does not
// listen: call Start, or mount Handler.
func New(opts Options) (*Server, error) {
	t := DemoTenant()
	if opts.Tenant != nil {
		t = *opts.Tenant
	}
	var saved savedState
	var restore *restoreState
	var key *rsa.PrivateKey
	var ca *authorityCA
	if opts.StateDir != "" {
		st, ok, err := readState(opts.StateDir)
		if err != nil {
			return nil, err
		}
		if ok {
			saved, t = st, st.Tenant
			restore = &restoreState{seats: st.Seats, waitingOrder: st.WaitingOrder}
			if key, err = parseSigningKey(st.SigningKey); err != nil {
				return nil, fmt.Errorf("simulator state: %w", err)
			}
			if st.CACertificate != "" {
				if ca, err = parseCA(st.CACertificate, st.CAKey); err != nil {
					return nil, fmt.Errorf("simulator state: %w", err)
				}
				if time.Until(ca.cert.NotAfter) < 30*24*time.Hour {
					ca = nil // a new one at Start, before clients see it expire
				}
			}
		}
	}
	t, err := t.normalize()
	if err != nil {
		return nil, err
	}
	if opts.PageSize < 0 || opts.PageSize > maxTop {
		return nil, fmt.Errorf("page size %d is outside 0..%d", opts.PageSize, maxTop)
	}
	if key == nil {
		if key, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			return nil, fmt.Errorf("generate signing key: %w", err)
		}
	}
	s := &Server{
		log:       opts.Logger,
		now:       opts.Clock,
		pageSize:  opts.PageSize,
		hostnames: opts.Hostnames,
		caFile:    opts.CAFile,
		latency:   opts.Latency,
		key:       key,
		kid:       keyID(&key.PublicKey),
		tenantID:  t.ID,
		apps:      t.Apps,
		st:        newStore(),
		faults:    &faultSet{},
		stateDir:  opts.StateDir,
		onSave:    opts.OnSave,
		savedAddr: saved.Address,
		ca:        ca,
	}
	if s.stateDir != "" {
		s.dirty = make(chan struct{}, 1)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.pageSize == 0 {
		s.pageSize = defaultPageSize
	}
	if err := s.load(t, restore); err != nil {
		if restore != nil {
			return nil, fmt.Errorf("simulator state %s: invalid tenant: %w (move the file away to start from a fresh tenant)",
				filepath.Join(s.stateDir, StateFileName), err)
		}
		return nil, fmt.Errorf("invalid tenant: %w", err)
	}
	if restore != nil {
		s.restoreCounters(saved)
	}
	if err := s.SetFaults(opts.Faults); err != nil {
		return nil, err
	}
	s.handler = s.withRequestID(http.HandlerFunc(s.route))
	return s, nil
}

// Handler returns the whole surface, Graph under /beta and the authority
// under /{tenant}/, for tests that serve it themselves. Absolute URLs in
// answers (discovery, @odata.nextLink) use the request's Host and scheme.
func (s *Server) Handler() http.Handler { return s.handler }

// Start listens on addr (e.g. "127.0.0.1:0") and serves HTTPS until Close,
// with a server certificate for localhost, 127.0.0.1 and ::1 signed by a CA
// generated now. It writes the CA to a PEM file in a new temporary
// directory, which Close removes. A Server starts at most once.
//
// A persistent simulator (Options.StateDir) asked for port 0 listens on
// the port of its previous life when that port is free (else on a new
// one: clients must then cope with the new address), signs with the CA it
// saved, writes it to StateDir/ca.pem (unless Options.CAFile is set), and
// saves its state before returning.
func (s *Server) Start(addr string) (Info, error) {
	info, err := s.start(addr)
	if err != nil || s.stateDir == "" {
		return info, err
	}
	if err := s.Save(); err != nil {
		s.Close()
		return Info{}, err
	}
	s.startMu.Lock()
	s.stopSave, s.saveDone = make(chan struct{}), make(chan struct{})
	go s.saveLoop(s.stopSave, s.saveDone)
	s.startMu.Unlock()
	return info, nil
}

func (s *Server) start(addr string) (Info, error) {
	s.startMu.Lock()
	defer s.startMu.Unlock()
	if s.srv != nil || s.closed {
		return Info{}, errors.New("graphsim: already started")
	}
	ln, err := s.listen(addr)
	if err != nil {
		return Info{}, err
	}
	s.addr = ln.Addr().String()
	tcp := ln.Addr().(*net.TCPAddr)
	host := tcp.IP.String()
	if tcp.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	if len(s.hostnames) > 0 {
		host = s.hostnames[0]
	}
	if s.ca == nil {
		if s.ca, err = newCA(); err != nil {
			ln.Close()
			return Info{}, err
		}
	}
	caPEM := s.ca.pem
	cert, err := s.ca.leaf([]net.IP{tcp.IP}, s.hostnames)
	if err != nil {
		ln.Close()
		return Info{}, err
	}
	caFile, dir := s.caFile, ""
	switch {
	case caFile == "" && s.stateDir != "":
		caFile = filepath.Join(s.stateDir, "ca.pem")
		err = writePrivateFile(s.stateDir, "ca.pem", caPEM)
	case caFile == "":
		if dir, err = os.MkdirTemp("", "graphsim-"); err != nil {
			ln.Close()
			return Info{}, fmt.Errorf("create ca directory: %w", err)
		}
		caFile = filepath.Join(dir, "ca.pem")
		fallthrough
	default:
		err = os.WriteFile(caFile, caPEM, 0o644)
	}
	if err != nil {
		ln.Close()
		if dir != "" {
			os.RemoveAll(dir)
		}
		return Info{}, fmt.Errorf("write ca file: %w", err)
	}
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		// Handshake failures from clients that do not trust the CA land
		// here; they are the client's problem, so debug level.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.served = make(chan struct{})
	s.caDir = dir
	s.caPath = caFile
	go func(srv *http.Server, done chan struct{}) {
		defer close(done)
		if err := srv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("graphsim serve", "err", err)
		}
	}(s.srv, s.served)

	base := "https://" + net.JoinHostPort(host, strconv.Itoa(tcp.Port))
	s.issuerURL = base + "/" + s.tenantID + "/v2.0"
	app := s.apps[0]
	return Info{
		GraphURL:     base + graphBase,
		AuthorityURL: base + "/",
		TenantID:     s.tenantID,
		ClientID:     app.ClientID,
		ClientSecret: app.ClientSecret,
		CAFile:       caFile,
		CAPEM:        caPEM,
		IssuerURL:    base + "/" + s.tenantID + "/v2.0",
		AdminURL:     base + adminBase,
	}, nil
}

// Close stops serving, waiting up to five seconds for requests in flight,
// and removes the CA file (a persistent simulator keeps StateDir/ca.pem,
// and saves its state). It is safe to call more than once and on a Server
// that was never started.
func (s *Server) Close() error {
	first, err := s.close()
	s.startMu.Lock()
	stop, done := s.stopSave, s.saveDone
	s.stopSave = nil
	s.startMu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
	if first && s.stateDir != "" {
		err = errors.Join(err, s.Save())
	}
	return err
}

// close stops serving; first reports whether this call closed s.
func (s *Server) close() (first bool, _ error) {
	s.startMu.Lock()
	defer s.startMu.Unlock()
	if s.closed {
		return false, nil
	}
	s.closed = true
	if s.srv == nil {
		return true, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errs []error
	if err := s.srv.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("shut down: %w", err), s.srv.Close())
	}
	<-s.served
	if s.stateDir != "" && s.caFile == "" {
		return true, errors.Join(errs...) // StateDir/ca.pem outlives the process
	}
	if err := os.Remove(s.caPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, fmt.Errorf("remove ca file: %w", err))
	}
	if s.caDir != "" {
		if err := os.RemoveAll(s.caDir); err != nil {
			errs = append(errs, fmt.Errorf("remove ca directory: %w", err))
		}
	}
	return true, errors.Join(errs...)
}

// listen listens on addr; a persistent simulator asked for port 0 tries
// the port of its previous life first.
func (s *Server) listen(addr string) (net.Listener, error) {
	if host, port, err := net.SplitHostPort(addr); err == nil && port == "0" && s.savedAddr != "" {
		if _, oldPort, err := net.SplitHostPort(s.savedAddr); err == nil {
			if ln, err := net.Listen("tcp", net.JoinHostPort(host, oldPort)); err == nil {
				return ln, nil
			}
			s.log.Warn("graphsim: the port of the previous start is taken; listening on another", "port", oldPort)
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	return ln, nil
}

// Now is the simulator's clock: Options.Clock (or the real time, or the
// time SetClock stopped it at) plus what AdvanceClock added, in UTC, to
// Graph's resolution of 100 ns (the seven fractional digits timestamps
// carry on the wire).
func (s *Server) Now() time.Time {
	base := s.now()
	if p := s.pinned.Load(); p != 0 {
		base = time.Unix(0, p)
	}
	return base.Add(time.Duration(s.offset.Load())).UTC().Truncate(100 * time.Nanosecond)
}

// ExpireDeltaLinks makes every users/groups delta link issued so far
// invalid, as Graph does when it has dropped a sync state: following one
// answers 410 Gone with code syncStateNotFound, and the caller must start
// a new round without a token.
func (s *Server) ExpireDeltaLinks() {
	defer s.write()()
	// A new version separates the old links from those issued from now.
	s.st.version++
	s.st.deltaFloor = s.st.version
}

// AdvanceClock moves the simulator's clock forward by d (a negative d is
// refused) and returns the new time.
func (s *Server) AdvanceClock(d time.Duration) (time.Time, error) {
	if d < 0 {
		return s.Now(), fmt.Errorf("advance clock by %v: must not be negative", d)
	}
	s.offset.Add(int64(d))
	s.changed()
	return s.Now(), nil
}

// newID returns a fresh GUID-shaped id, deterministic for a tenant and
// the order of the changes made to it. The caller holds s.mu.
func (s *Server) newID() string {
	s.idSeq++
	sum := sha256.Sum256([]byte("graphsim-id:" + s.tenantID + ":" + strconv.FormatUint(s.idSeq, 10)))
	sum[6] = sum[6]&0x0f | 0x40
	sum[8] = sum[8]&0x3f | 0x80
	return formatGUID(sum[:16])
}

// MintToken returns a valid bearer token for the tenant's first app,
// carrying exactly the given roles (application permissions), valid for an
// hour from the simulator's clock. Tests use it to reach 403 paths.
func (s *Server) MintToken(roles []string) (string, error) {
	return s.issue(s.apps[0].ClientID, roles)
}

// MintDelegatedToken returns a valid bearer token as a signed-in user
// gets it through a public client (delegated permissions): idtyp "user",
// oid = userID, scp = the scopes. /me resolves to the oid.
func (s *Server) MintDelegatedToken(userID string, scopes []string) (string, error) {
	now := s.tokenNow()
	c := claims{
		Aud:      graphAudience,
		Iss:      tokenIssuer(s.tenantID),
		Iat:      now.Unix(),
		Nbf:      now.Unix(),
		Exp:      now.Add(tokenLifetime).Unix(),
		AppID:    s.apps[0].ClientID,
		AppIDAcr: "0", // public client
		IDType:   "user",
		OID:      userID,
		Scp:      strings.Join(scopes, " "),
		Sub:      userID,
		TID:      s.tenantID,
		Ver:      "1.0",
	}
	return signJWT(c, s.key, s.kid)
}

// tokenNow is the authority's time: Options.Clock, without the offset
// AdvanceClock adds to the tenant's time. Token lifetimes are checked
// against it, so that a client holding a token across simulated days is
// not logged out by the time travel (real tokens age in real time).
func (s *Server) tokenNow() time.Time { return s.now().UTC() }

// issue signs an access token for Microsoft Graph.
func (s *Server) issue(clientID string, roles []string) (string, error) {
	now := s.tokenNow()
	c := claims{
		Aud:      graphAudience,
		Iss:      tokenIssuer(s.tenantID),
		Iat:      now.Unix(),
		Nbf:      now.Unix(),
		Exp:      now.Add(tokenLifetime).Unix(),
		AppID:    clientID,
		AppIDAcr: "1", // client secret
		IDType:   "app",
		OID:      servicePrincipalID(s.tenantID, clientID),
		Roles:    slices.Clone(roles),
		Sub:      servicePrincipalID(s.tenantID, clientID),
		TID:      s.tenantID,
		Ver:      "1.0",
	}
	return signJWT(c, s.key, s.kid)
}

const (
	graphBase     = "/beta"
	graphAudience = "https://graph.microsoft.com"
	graphAppID    = "00000003-0000-0000-c000-000000000000" // Microsoft Graph's well-known application id
	tokenLifetime = time.Hour
)

// tokenIssuer is the iss of v1.0 access tokens, which is what Graph gets.
func tokenIssuer(tenantID string) string { return "https://sts.windows.net/" + tenantID + "/" }

// servicePrincipalID derives a stable, GUID-shaped object id for an app's
// service principal in the tenant.
func servicePrincipalID(tenantID, clientID string) string {
	sum := sha256.Sum256([]byte("sp:" + strings.ToLower(tenantID) + ":" + strings.ToLower(clientID)))
	return formatGUID(sum[:16])
}

// route dispatches to the Graph API or the authority. It routes by hand
// because ServeMux cannot hold both "/{tenant}/…" and a catch-all under
// "/beta/" without a conflict.
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	if p := r.URL.Path; p == adminBase || strings.HasPrefix(p, adminBase+"/") {
		s.serveAdmin(w, r, strings.TrimPrefix(p, adminBase))
		return
	}
	s.withFaults(w, r, s.routeAPI)
}

// routeAPI serves Graph and the authority.
func (s *Server) routeAPI(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if p == graphBase || strings.HasPrefix(p, graphBase+"/") {
		s.serveGraph(w, r, strings.TrimPrefix(p, graphBase))
		return
	}
	segs := strings.Split(strings.Trim(p, "/"), "/")
	if len(segs) == 4 {
		switch strings.Join(segs[1:], "/") {
		case "v2.0/.well-known/openid-configuration":
			s.serveDiscovery(w, r, segs[0])
			return
		case "oauth2/v2.0/token":
			s.serveToken(w, r, segs[0])
			return
		case "discovery/v2.0/keys":
			s.serveKeys(w, r, segs[0])
			return
		}
	}
	writeGraphError(w, r, s.Now(), http.StatusNotFound, "notFound", "", fmt.Sprintf("No route for %q.", p))
}

// withRequestID gives every response a fresh request-id and echoes the
// caller's client-request-id (Graph answers with the request-id when the
// caller sent none), then logs one line per request.
func (s *Server) withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		reqID := newGUID()
		clientReqID := r.Header.Get("client-request-id")
		if clientReqID == "" {
			clientReqID = reqID
		}
		w.Header().Set("request-id", reqID)
		w.Header().Set("client-request-id", clientReqID)
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		s.log.Info("request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
			"request_id", reqID, "took", time.Since(start).Round(time.Microsecond))
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController and the fault injector reach the
// connection.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Flush sends what was written so far.
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// newGUID returns a random version-4 GUID in lower-case 8-4-4-4-12 form.
func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never returns an error
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return formatGUID(b[:])
}

func formatGUID(b []byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
