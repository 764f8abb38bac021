package main

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/seatledger/seatledger/internal/graph"
	"github.com/seatledger/seatledger/internal/pglocal"
)

// pass is what one paging pass over every mirrored collection saw.
type pass struct {
	rows        map[string]int64 // Graph objects per collection
	requests    int64            // HTTP requests the client sent
	retries     int64
	minRequests int64 // rows / page size per collection (at least one page each)
	took        time.Duration
}

func (p pass) total() int64 {
	var n int64
	for _, v := range p.rows {
		n += v
	}
	return n
}

// pages is the fewest requests that can list n objects: one page at least.
func pages(n int64) int64 { return max(1, (n+graphPageSize-1)/graphPageSize) }

// copyRow is one Graph object as a row of the COPY baseline's table: its
// kind, id, three key properties and the raw JSON. It shares the strings
// and bytes the decoder made, so keeping it costs one append.
type copyRow struct {
	kind, id, a, b, c string
	raw               []byte
}

// pageAll lists what a sync lists, the way it lists it: allotments,
// assignments, each allotment's waiting members, assignment errors, users
// (delta from usersLink; "" lists all) and the members of each group
// holding an assignment. keep, if not nil, receives every object as a row.
func pageAll(ctx context.Context, gc *graph.Client, usersLink string, keep func(copyRow)) (pass, error) {
	p := pass{rows: map[string]int64{}}
	before := gc.Stats()
	start := time.Now()
	row := func(kind, id, a, b, c string, raw []byte, v any) {
		if keep == nil {
			return
		}
		if raw == nil {
			raw, _ = json.Marshal(v)
		}
		keep(copyRow{kind, id, a, b, c, raw})
	}
	var allotments []string
	for a, err := range gc.Allotments(ctx) {
		if err != nil {
			return p, err
		}
		allotments = append(allotments, a.ID)
		row("allotment", a.ID, a.SKUID, a.SKUPartNumber, "", a.Raw, a)
	}
	p.rows["allotments"] = int64(len(allotments))
	p.minRequests += pages(int64(len(allotments)))

	groups := map[string]bool{}
	var n int64
	for a, err := range gc.Assignments(ctx) {
		if err != nil {
			return p, err
		}
		if a.AssignedTo.Type == "group" {
			groups[a.AssignedTo.ID] = true
		}
		n++
		row("assignment", a.ID, a.AllotmentID, a.AssignedTo.ID, a.AssignedTo.Type, a.Raw, a)
	}
	p.rows["assignments"] = n
	p.minRequests += pages(n)

	n = 0
	for _, id := range allotments {
		var m int64
		for w, err := range gc.AllotmentWaitingMembers(ctx, id) {
			if err != nil {
				return p, err
			}
			m++
			row("waiting", w.ID, id, w.Member.ID, w.Member.Type, w.Raw, w)
		}
		n += m
		p.minRequests += pages(m)
	}
	p.rows["waiting_members"] = n

	n = 0
	for e, err := range gc.AssignmentErrors(ctx) {
		if err != nil {
			return p, err
		}
		n++
		row("error", e.ID, e.User.ID, e.SKUID, e.Code, e.Raw, e)
	}
	p.rows["assignment_errors"] = n
	p.minRequests += pages(n)

	n = 0
	if _, err := gc.UsersDelta(ctx, usersLink, func(u graph.User) error {
		n++
		row("user", u.ID, u.UserPrincipalName, u.DisplayName, u.Department, u.Raw, u)
		return nil
	}); err != nil {
		return p, err
	}
	p.rows["users"] = n
	p.minRequests += pages(n)

	n = 0
	for g := range groups {
		var m int64
		for o, err := range gc.GroupMembers(ctx, g) {
			if err != nil {
				return p, err
			}
			m++
			row("member", g, o.ID, o.Type, "", nil, o)
		}
		n += m
		p.minRequests += pages(m)
	}
	p.rows["group_members"] = n

	p.took = time.Since(start)
	after := gc.Stats()
	p.requests = after.Requests - before.Requests
	p.retries = after.Retries - before.Retries
	return p, nil
}

// copyBaseline COPYs rows into a new table without indexes and returns
// how long the COPY took.
func copyBaseline(ctx context.Context, pg *pglocal.Server, db string, rows []copyRow) (time.Duration, error) {
	conn, err := pgx.Connect(ctx, pg.DSN(db))
	if err != nil {
		return 0, fmt.Errorf("copy baseline: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `DROP TABLE IF EXISTS bench_copy;
		CREATE TABLE bench_copy (kind text, id text, a text, b text, c text, raw jsonb)`); err != nil {
		return 0, fmt.Errorf("copy baseline: %w", err)
	}
	start := time.Now()
	n, err := conn.CopyFrom(ctx, pgx.Identifier{"bench_copy"}, []string{"kind", "id", "a", "b", "c", "raw"},
		pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
			r := rows[i]
			return []any{r.kind, r.id, r.a, r.b, r.c, string(r.raw)}, nil
		}))
	took := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("copy baseline: %w", err)
	}
	if n != int64(len(rows)) {
		return 0, fmt.Errorf("copy baseline: copied %d of %d rows", n, len(rows))
	}
	if _, err := conn.Exec(ctx, `DROP TABLE bench_copy`); err != nil {
		return 0, fmt.Errorf("copy baseline: %w", err)
	}
	return took, nil
}

// versionRows counts the rows of every history (*_versions) table.
func versionRows(ctx context.Context, pg *pglocal.Server, db string) (int64, error) {
	conn, err := pgx.Connect(ctx, pg.DSN(db))
	if err != nil {
		return 0, fmt.Errorf("count versions: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_name LIKE '%\_versions' ORDER BY 1`)
	if err != nil {
		return 0, fmt.Errorf("count versions: %w", err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, fmt.Errorf("count versions: %w", err)
	}
	var total int64
	for _, t := range tables {
		var n int64
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{t}.Sanitize()).Scan(&n); err != nil {
			return 0, fmt.Errorf("count %s: %w", t, err)
		}
		total += n
	}
	return total, nil
}

// heapSampler records the peak HeapInuse, and the peak live heap (as
// marked by the last collection), while it runs.
type heapSampler struct {
	peak, live atomic.Uint64
	stop       chan struct{}
	wg         sync.WaitGroup
	lives      []uint64 // each live heap a GC found, in order (the sampling goroutine's until Stop)
}

// liveHeap is the heap the last GC found live.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// sampleHeap starts sampling every 10 ms, after a full collection so
// that the base figure holds live memory only.
func sampleHeap() (h *heapSampler, base, baseLive uint64) {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	h = &heapSampler{stop: make(chan struct{})}
	h.peak.Store(ms.HeapInuse)
	h.live.Store(liveHeap())
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-t.C:
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > h.peak.Load() {
					h.peak.Store(ms.HeapInuse)
				}
				l := liveHeap()
				if l > h.live.Load() {
					h.live.Store(l)
				}
				if n := len(h.lives); n == 0 || h.lives[n-1] != l {
					h.lives = append(h.lives, l)
				}
			}
		}
	}()
	return h, ms.HeapInuse, h.live.Load()
}

// Stop ends sampling and returns the peaks, and the median of the live
// heaps the collections found (a peak is the largest of many samples, and
// a longer sync takes more).
func (h *heapSampler) Stop() (inuse, live, liveMedian uint64) {
	close(h.stop)
	h.wg.Wait()
	if len(h.lives) > 0 {
		sorted := slices.Clone(h.lives)
		slices.Sort(sorted)
		liveMedian = sorted[len(sorted)/2]
	}
	return h.peak.Load(), h.live.Load(), liveMedian
}

// resyncRounds is how many unchanged re-syncs (each after its paging
// baseline) benchSync times.
const resyncRounds = 2

// syncFigures is what benchSync measured on one tenant.
type syncFigures struct {
	tenant       string
	paging       pass
	copyTook     time.Duration
	syncTook     time.Duration
	syncReqs     int64
	syncRetries  int64
	heapBase     uint64 // HeapInuse before the sync (after a collection): what the process held already
	heapBaseLive uint64
	heapPeak     uint64
	heapLive     uint64 // peak of the live heap found by the GCs during the sync
	heapLiveMed  uint64 // median of those live heaps
	// Unchanged re-sync (when asked for).
	resync          bool
	resyncPaging    pass
	resyncTook      time.Duration
	versionsWritten int64
}

// benchSync measures a full sync of tenant against its baselines and,
// with resync, an unchanged re-sync. It leaves inst synced.
func benchSync(ctx context.Context, pg *pglocal.Server, db string, sim *simProcess, inst *instance, tenant string, resync bool) (syncFigures, error) {
	f := syncFigures{tenant: tenant, resync: resync}
	logf("%s: paging baseline", tenant)
	gc, err := newGraphClient(sim)
	if err != nil {
		return f, err
	}
	// The paging pass keeps what it decoded (one append per object) for
	// the COPY baseline: a second pass would cost minutes on large.
	var rows []copyRow
	if f.paging, err = pageAll(ctx, gc, "", func(r copyRow) { rows = append(rows, r) }); err != nil {
		return f, fmt.Errorf("paging baseline: %w", err)
	}
	logf("%s: %d objects paged in %v; COPY baseline", tenant, f.paging.total(), f.paging.took.Round(time.Millisecond))
	if f.copyTook, err = copyBaseline(ctx, pg, db, rows); err != nil {
		return f, err
	}
	rows = nil
	logf("%s: COPY took %v; full sync", tenant, f.copyTook.Round(time.Millisecond))

	before := inst.gc.Stats()
	if resync {
		// Dated a year back: the chargeback benchmark needs that history.
		at := time.Now().Add(-historyStart)
		inst.syncAt.Store(&at)
	}
	h, base, baseLive := sampleHeap()
	start := time.Now()
	run, err := inst.syncer.RunOnce(ctx)
	inst.syncAt.Store(nil)
	f.syncTook = time.Since(start)
	f.heapPeak, f.heapLive, f.heapLiveMed = h.Stop()
	f.heapBase, f.heapBaseLive = base, baseLive
	if err != nil {
		return f, fmt.Errorf("full sync: %w", err)
	}
	f.syncReqs = run.GraphRequests
	f.syncRetries = inst.gc.Stats().Retries - before.Retries
	logf("%s: full sync took %v, %d Graph requests, peak heap %.1f MiB (live %.1f MiB, median live %.1f MiB, before the sync %.1f MiB)", tenant,
		f.syncTook.Round(time.Millisecond), f.syncReqs, float64(f.heapPeak)/(1<<20), float64(f.heapLive)/(1<<20),
		float64(f.heapLiveMed)/(1<<20), float64(f.heapBase)/(1<<20))
	if !resync {
		return f, nil
	}

	// Two rounds, each the paging baseline then the re-sync; the fastest
	// of each is kept (a run of seconds on a shared machine varies by a
	// tenth), and the version rows are counted over both.
	v0, err := versionRows(ctx, pg, db)
	if err != nil {
		return f, err
	}
	for round := range resyncRounds {
		link, err := inst.st.UsersDeltaLink(ctx)
		if err != nil {
			return f, fmt.Errorf("users delta link: %w", err)
		}
		paging, err := pageAll(ctx, gc, link, nil)
		if err != nil {
			return f, fmt.Errorf("re-sync paging baseline: %w", err)
		}
		start := time.Now()
		if _, err := inst.syncer.RunOnce(ctx); err != nil {
			return f, fmt.Errorf("unchanged re-sync: %w", err)
		}
		took := time.Since(start)
		if round == 0 || paging.took < f.resyncPaging.took {
			f.resyncPaging = paging
		}
		if round == 0 || took < f.resyncTook {
			f.resyncTook = took
		}
	}
	v1, err := versionRows(ctx, pg, db)
	if err != nil {
		return f, err
	}
	f.versionsWritten = v1 - v0
	logf("%s: unchanged re-sync took %v (paging %v), %d version rows written", tenant,
		f.resyncTook.Round(time.Millisecond), f.resyncPaging.took.Round(time.Millisecond), f.versionsWritten)
	return f, nil
}
