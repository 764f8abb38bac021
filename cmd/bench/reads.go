package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	seatledgerv1 "github.com/seatledger/seatledger/gen/seatledger/v1"
	"github.com/seatledger/seatledger/internal/pglocal"
	"github.com/seatledger/seatledger/internal/store"
)

// readConcurrency is the number of concurrent callers of the read
// benchmark.
const readConcurrency = 32

// load is the outcome of one load test.
type load struct {
	n        int
	rps      float64
	p50, p99 time.Duration
	err      error
}

// runLoad calls call from conc goroutines for d (after a warm-up of d/5
// that is not recorded) and returns throughput and latency percentiles.
func runLoad(ctx context.Context, conc int, d time.Duration, call func(context.Context) error) load {
	warm := time.Now().Add(d / 5)
	end := warm.Add(d)
	lat := make([][]time.Duration, conc)
	errs := make([]error, conc)
	var wg sync.WaitGroup
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				t0 := time.Now()
				if t0.After(end) {
					return
				}
				if err := call(ctx); err != nil {
					errs[w] = err
					return
				}
				if t0.After(warm) {
					lat[w] = append(lat[w], time.Since(t0))
				}
			}
		}()
	}
	wg.Wait()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	for _, err := range errs {
		if err != nil {
			return load{err: err}
		}
	}
	if len(all) == 0 {
		return load{err: fmt.Errorf("no call completed")}
	}
	slices.Sort(all)
	return load{
		n:   len(all),
		rps: float64(len(all)) / d.Seconds(),
		p50: all[len(all)/2],
		p99: all[len(all)*99/100],
	}
}

// bareServer serves fixed responses from memory with plain grpc-go: no
// interceptors, no database. It is the read benchmark's baseline.
type bareServer struct {
	seatledgerv1.UnimplementedAllotmentServiceServer
	seatledgerv1.UnimplementedAssignmentServiceServer
	seatledgerv1.UnimplementedUserServiceServer
	allotment   *seatledgerv1.Allotment
	assignments *seatledgerv1.ListAssignmentsResponse
	license     *seatledgerv1.LicenseStatus
}

func (b *bareServer) GetAllotment(context.Context, *seatledgerv1.GetAllotmentRequest) (*seatledgerv1.Allotment, error) {
	return b.allotment, nil
}

func (b *bareServer) ListAssignments(context.Context, *seatledgerv1.ListAssignmentsRequest) (*seatledgerv1.ListAssignmentsResponse, error) {
	return b.assignments, nil
}

func (b *bareServer) GetLicenseStatus(context.Context, *seatledgerv1.GetLicenseStatusRequest) (*seatledgerv1.LicenseStatus, error) {
	return b.license, nil
}

// storeBareServer is bareServer that first makes the store reads
// seatledger's handler makes for the call (and discards them): grpc-go
// plus the database work, without seatledger's access control,
// interceptors and conversions. Its distance to bareServer is what the
// database costs; seatledger's distance to it is seatledger's own.
type storeBareServer struct {
	*bareServer
	st *store.Store
}

func (b *storeBareServer) GetAllotment(ctx context.Context, req *seatledgerv1.GetAllotmentRequest) (*seatledgerv1.Allotment, error) {
	if _, err := b.st.GetAllotment(ctx, req.GetId()); err != nil {
		return nil, err
	}
	return b.allotment, nil
}

func (b *storeBareServer) ListAssignments(ctx context.Context, req *seatledgerv1.ListAssignmentsRequest) (*seatledgerv1.ListAssignmentsResponse, error) {
	// One row more than the page, as the handler asks, to know whether a
	// next page exists.
	if _, err := b.st.ListAssignments(ctx, store.ListAssignmentsParams{PageSize: int(req.GetPageSize()) + 1}); err != nil {
		return nil, err
	}
	return b.assignments, nil
}

func (b *storeBareServer) GetLicenseStatus(ctx context.Context, req *seatledgerv1.GetLicenseStatusRequest) (*seatledgerv1.LicenseStatus, error) {
	u, err := b.st.GetUser(ctx, req.GetUser(), time.Time{})
	if err != nil {
		return nil, err
	}
	// The handler's four reads, at once as it makes them.
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { _, err := b.st.UserSeats(gctx, u.ID, time.Time{}); return err })
	g.Go(func() error {
		_, err := b.st.ListWaitingMembers(gctx, store.ListWaitingMembersParams{PageSize: 101, MemberID: u.ID})
		return err
	})
	g.Go(func() error {
		_, err := b.st.ListAssignmentErrors(gctx, store.ListAssignmentErrorsParams{PageSize: 101, UserID: u.ID})
		return err
	})
	g.Go(func() error { _, err := b.st.LastSuccessfulSyncRun(gctx); return err })
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return b.license, nil
}

// readTarget is the ids the read benchmark asks for.
type readTarget struct{ allotment, user string }

// pickReadTarget picks the allotment with the most assignments and a user
// who waits for a seat (so that license-status has seats, waits and
// errors to gather), falling back to any assigned user.
func pickReadTarget(ctx context.Context, pg *pglocal.Server, db string) (readTarget, error) {
	conn, err := pgx.Connect(ctx, pg.DSN(db))
	if err != nil {
		return readTarget{}, fmt.Errorf("pick read target: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var t readTarget
	if err := conn.QueryRow(ctx, `SELECT allotment_id FROM assignment_versions WHERE upper_inf(valid)
		GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1`).Scan(&t.allotment); err != nil {
		return t, fmt.Errorf("pick allotment: %w", err)
	}
	err = conn.QueryRow(ctx, `SELECT member_id FROM waiting_member_versions WHERE upper_inf(valid) ORDER BY id LIMIT 1`).Scan(&t.user)
	if err == pgx.ErrNoRows {
		err = conn.QueryRow(ctx, `SELECT assignee_id FROM assignment_versions WHERE upper_inf(valid) AND assignee_type = 'user'
			ORDER BY id LIMIT 1`).Scan(&t.user)
	}
	if err != nil {
		return t, fmt.Errorf("pick user: %w", err)
	}
	return t, nil
}

// storeBreakdown times, one caller at a time, each store read that the
// benchmarked calls make (fastest of 20), to say which bounds them:
// GetAllotment (with its owner), then ListAssignments, then GetLicenseStatus's five.
func storeBreakdown(ctx context.Context, st *store.Store, target readTarget) (string, error) {
	user := target.user
	steps := []struct {
		name string
		f    func() error
	}{
		{"GetAllotment", func() error { _, err := st.GetAllotment(ctx, target.allotment); return err }},
		{"ListAssignments(100)", func() error {
			_, err := st.ListAssignments(ctx, store.ListAssignmentsParams{PageSize: 100})
			return err
		}},
		{"GetUser", func() error { _, err := st.GetUser(ctx, user, time.Time{}); return err }},
		{"UserSeats", func() error { _, err := st.UserSeats(ctx, user, time.Time{}); return err }},
		{"ListWaitingMembers", func() error {
			_, err := st.ListWaitingMembers(ctx, store.ListWaitingMembersParams{PageSize: 100, MemberID: user})
			return err
		}},
		{"ListAssignmentErrors", func() error {
			_, err := st.ListAssignmentErrors(ctx, store.ListAssignmentErrorsParams{PageSize: 100, UserID: user})
			return err
		}},
		{"LastSuccessfulSyncRun", func() error { _, err := st.LastSuccessfulSyncRun(ctx); return err }},
	}
	var parts []string
	for _, s := range steps {
		d, err := fastest(20, s.f)
		if err != nil {
			return "", fmt.Errorf("%s: %w", s.name, err)
		}
		parts = append(parts, fmt.Sprintf("%s %s", s.name, ms(d)))
	}
	return strings.Join(parts, ", "), nil
}

// readFigures is one read call's four load tests.
type readFigures struct {
	call                        string
	bare, withStore, grpc, rest load
}

// benchReads load-tests GetAllotment, ListAssignments (page size 100) and
// GetLicenseStatus on inst over gRPC and REST, and the same calls on a
// bare grpc-go server answering from memory, each for d.
func benchReads(ctx context.Context, inst *instance, target readTarget, d time.Duration) ([]readFigures, error) {
	allotments := seatledgerv1.NewAllotmentServiceClient(inst.conn)
	assignments := seatledgerv1.NewAssignmentServiceClient(inst.conn)
	users := seatledgerv1.NewUserServiceClient(inst.conn)
	getReq := &seatledgerv1.GetAllotmentRequest{Id: target.allotment}
	listReq := &seatledgerv1.ListAssignmentsRequest{PageSize: 100}
	licReq := &seatledgerv1.GetLicenseStatusRequest{User: target.user}

	// The bare server returns what ours returns.
	bare := &bareServer{}
	var err error
	if bare.allotment, err = allotments.GetAllotment(ctx, getReq); err != nil {
		return nil, fmt.Errorf("GetAllotment: %w", err)
	}
	if bare.assignments, err = assignments.ListAssignments(ctx, listReq); err != nil {
		return nil, fmt.Errorf("ListAssignments: %w", err)
	}
	if bare.license, err = users.GetLicenseStatus(ctx, licReq); err != nil {
		return nil, fmt.Errorf("GetLicenseStatus: %w", err)
	}
	serve := func(srv interface {
		seatledgerv1.AllotmentServiceServer
		seatledgerv1.AssignmentServiceServer
		seatledgerv1.UserServiceServer
	}) (*grpc.ClientConn, func(), error) {
		bs := grpc.NewServer()
		seatledgerv1.RegisterAllotmentServiceServer(bs, srv)
		seatledgerv1.RegisterAssignmentServiceServer(bs, srv)
		seatledgerv1.RegisterUserServiceServer(bs, srv)
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, fmt.Errorf("bare server: %w", err)
		}
		go bs.Serve(lis)
		conn, err := dial(lis.Addr().String(), inst.token)
		if err != nil {
			bs.Stop()
			return nil, nil, err
		}
		return conn, func() { conn.Close(); bs.Stop() }, nil
	}
	bconn, stopBare, err := serve(bare)
	if err != nil {
		return nil, err
	}
	defer stopBare()
	sconn, stopStoreBare, err := serve(&storeBareServer{bareServer: bare, st: inst.st})
	if err != nil {
		return nil, err
	}
	defer stopStoreBare()
	bAllotments := seatledgerv1.NewAllotmentServiceClient(bconn)
	bAssignments := seatledgerv1.NewAssignmentServiceClient(bconn)
	bUsers := seatledgerv1.NewUserServiceClient(bconn)
	sAllotments := seatledgerv1.NewAllotmentServiceClient(sconn)
	sAssignments := seatledgerv1.NewAssignmentServiceClient(sconn)
	sUsers := seatledgerv1.NewUserServiceClient(sconn)

	hc := &http.Client{Transport: &http.Transport{MaxIdleConns: 2 * readConcurrency, MaxIdleConnsPerHost: 2 * readConcurrency}}
	defer hc.CloseIdleConnections()
	rest := func(path string) func(context.Context) error {
		return func(ctx context.Context) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, inst.httpURL+path, nil)
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", "Bearer "+inst.token)
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if _, err := io.Copy(io.Discard, resp.Body); err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET %s: %s", path, resp.Status)
			}
			return nil
		}
	}
	type calls struct {
		name                        string
		bare, withStore, grpc, rest func(context.Context) error
	}
	all := []calls{
		{"GetAllotment",
			func(ctx context.Context) error { _, err := bAllotments.GetAllotment(ctx, getReq); return err },
			func(ctx context.Context) error { _, err := sAllotments.GetAllotment(ctx, getReq); return err },
			func(ctx context.Context) error { _, err := allotments.GetAllotment(ctx, getReq); return err },
			rest("/v1/allotments/" + target.allotment)},
		{"ListAssignments(100)",
			func(ctx context.Context) error { _, err := bAssignments.ListAssignments(ctx, listReq); return err },
			func(ctx context.Context) error { _, err := sAssignments.ListAssignments(ctx, listReq); return err },
			func(ctx context.Context) error { _, err := assignments.ListAssignments(ctx, listReq); return err },
			rest("/v1/assignments?page_size=100")},
		{"GetLicenseStatus",
			func(ctx context.Context) error { _, err := bUsers.GetLicenseStatus(ctx, licReq); return err },
			func(ctx context.Context) error { _, err := sUsers.GetLicenseStatus(ctx, licReq); return err },
			func(ctx context.Context) error { _, err := users.GetLicenseStatus(ctx, licReq); return err },
			rest("/v1/users/" + target.user + "/license-status")},
	}
	breakdown, err := storeBreakdown(ctx, inst.st, target)
	if err != nil {
		return nil, fmt.Errorf("store reads: %w", err)
	}
	logf("reads: store reads, one caller: %s", breakdown)
	var out []readFigures
	for _, c := range all {
		f := readFigures{call: c.name}
		f.bare = runLoad(ctx, readConcurrency, d, c.bare)
		f.withStore = runLoad(ctx, readConcurrency, d, c.withStore)
		f.grpc = runLoad(ctx, readConcurrency, d, c.grpc)
		f.rest = runLoad(ctx, readConcurrency, d, c.rest)
		for _, l := range []load{f.bare, f.withStore, f.grpc, f.rest} {
			if l.err != nil {
				return nil, fmt.Errorf("%s: %w", c.name, l.err)
			}
		}
		logf("reads: %s bare %.0f/s, bare with the store reads %.0f/s, gRPC %.0f/s, REST %.0f/s", c.name, f.bare.rps, f.withStore.rps, f.grpc.rps, f.rest.rps)
		out = append(out, f)
	}
	return out, nil
}
