// Package sync mirrors Microsoft Graph's cloud licensing state into the
// store.
//
// It is level-triggered, like a Kubernetes controller: every run reads the
// full current state from Graph and asks the store to make the mirror equal
// to it, so a missed, repeated or failed run is harmless. A run streams
// each collection page by page into a store snapshot (staging tables) and
// then applies the whole snapshot in one transaction: readers see the
// previous run or this one, never a mix, and a run that fails anywhere
// changes nothing but its own sync_runs record.
//
// Only one replica syncs at a time: Run holds a Postgres advisory lock while
// it loops; the others wait for it and keep serving reads.
//
// The package is named sync because the design card names the directory;
// inside it, the standard library's sync is imported as gosync if needed.
package sync

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"math/rand/v2"
	"os"
	gosync "sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/seatledger/seatledger/internal/graph"
	"github.com/seatledger/seatledger/internal/store"
)

// leaderLockName names the advisory lock that elects the syncing replica.
const leaderLockName = "seatledger:sync"

// Options tunes a Syncer. The zero value is usable.
type Options struct {
	// Interval is the time from the end of one run to the start of the
	// next; 0 means 15 minutes. Each wait is jittered by ±10 %.
	Interval time.Duration
	// MaxRemoveFraction is the mass-deletion guard: a run that would remove
	// more than this share of the current assignments or users is held
	// until forced. 0 means 0.2.
	MaxRemoveFraction float64
	// Logger receives progress and one summary line per run; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now. Tests pin it, and so does the
	// zero-configuration demo when it records its seeded past.
	Now func() time.Time
	// Demo marks every run's record as demo data (store.SyncRun.Demo): the
	// runs that record the past the zero-configuration demo seeds.
	Demo bool
}

// Syncer runs syncs from a Graph client into a store. Create it with New;
// it is safe for concurrent use, and runs never overlap within a process.
type Syncer struct {
	graph     *graph.Client
	store     *store.Store
	log       *slog.Logger
	interval  time.Duration
	maxRemove float64
	now       func() time.Time
	instance  string // this process among replicas: host/pid/random
	host      string
	demo      bool

	running  chan struct{}   // capacity 1: held while a run is in progress
	trigger  chan struct{}   // capacity 1: pending requests coalesce
	requests chan runRequest // RunNow's requests to the leading loop
	synced   chan struct{}   // closed after this process's first successful run
	leading  atomic.Bool     // Run holds the leader lock
	held     atomic.Int64    // runs held by the mass-deletion guard (a metric)
	ok       atomic.Int64    // runs applied
	failed   atomic.Int64    // runs that failed
	lastOK   atomic.Int64    // Unix time of the last applied run's end; 0 before one

	afterRun func(store.SyncRun, error) // for tests: called at the end of every run
}

type runRequest struct {
	force bool
	reply chan runResult
}

type runResult struct {
	run store.SyncRun
	err error
}

// New returns a Syncer that reads from gc and writes to st.
func New(gc *graph.Client, st *store.Store, opts Options) *Syncer {
	s := &Syncer{
		graph:     gc,
		store:     st,
		log:       opts.Logger,
		interval:  opts.Interval,
		maxRemove: opts.MaxRemoveFraction,
		now:       opts.Now,
		demo:      opts.Demo,
		running:   make(chan struct{}, 1),
		trigger:   make(chan struct{}, 1),
		requests:  make(chan runRequest),
		synced:    make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.interval <= 0 {
		s.interval = 15 * time.Minute
	}
	if s.maxRemove <= 0 {
		s.maxRemove = 0.2
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.host, _ = os.Hostname()
	var b [4]byte
	_, _ = crand.Read(b[:])
	s.instance = fmt.Sprintf("%s/%d/%s", s.host, os.Getpid(), hex.EncodeToString(b[:]))
	return s
}

// Synced is closed once this process has completed its first successful
// run. Tests select on it.
func (s *Syncer) Synced() <-chan struct{} { return s.synced }

// Ready reports, for /readyz, whether the mirror is fit to serve: this
// process has completed a run, or it does not lead and some replica has
// (the leader's runs keep the mirror current).
func (s *Syncer) Ready(ctx context.Context) error {
	select {
	case <-s.synced:
		return nil
	default:
	}
	if !s.leading.Load() {
		if _, err := s.store.LastSuccessfulSyncRun(ctx); err == nil {
			return nil
		}
	}
	return errors.New("first sync has not completed")
}

// HeldRuns is the number of runs the mass-deletion guard has held since
// the process started.
func (s *Syncer) HeldRuns() int64 { return s.held.Load() }

// Metrics are the sync's counters since the process started.
type Metrics struct {
	Succeeded, Failed, Held int64
	// LastSuccess is when the last applied run ended; zero before one.
	LastSuccess time.Time
	// Leading reports whether this process holds the sync lock.
	Leading bool
}

// Metrics returns the sync's counters, for /metrics.
func (s *Syncer) Metrics() Metrics {
	m := Metrics{Succeeded: s.ok.Load(), Failed: s.failed.Load(), Held: s.held.Load(), Leading: s.leading.Load()}
	if t := s.lastOK.Load(); t > 0 {
		m.LastSuccess = time.Unix(t, 0).UTC()
	}
	return m
}

// Trigger asks Run for a run as soon as possible. Calls made while one is
// already pending merge into it.
func (s *Syncer) Trigger() {
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}

// RunNow runs a sync now and returns its record. force lets a run that the
// mass-deletion guard would hold apply. On the leading replica the request
// goes to Run's loop (after a run in progress, if any); on a replica where
// no Run loop leads, RunNow takes the lock itself for one run; when another
// replica leads, the request goes to it through the database (runRemote).
func (s *Syncer) RunNow(ctx context.Context, force bool) (store.SyncRun, error) {
	req := runRequest{force: force, reply: make(chan runResult, 1)}
	for attempt := 0; ; attempt++ {
		if s.leading.Load() {
			select {
			case s.requests <- req:
				select {
				case res := <-req.reply:
					return res.run, res.err
				case <-ctx.Done():
					return store.SyncRun{}, ctx.Err()
				}
			case <-ctx.Done():
				return store.SyncRun{}, ctx.Err()
			}
		}
		release, ok, err := s.store.TryLeaderLock(ctx, leaderLockName)
		if err != nil {
			return store.SyncRun{}, fmt.Errorf("sync leader lock: %w", err)
		}
		if ok {
			defer release()
			s.recordLeader(ctx)
			return s.runOnce(ctx, force)
		}
		// Our own loop may have just won the lock; look once more.
		if attempt > 0 || !s.leading.Load() {
			return s.runRemote(ctx, force)
		}
	}
}

// Sync requests between replicas: a replica that does not lead asks the
// leader through the database and waits for its answer.
var (
	// requestTake is how long a leader has to take a request before the
	// asking replica gives up (less if the caller's deadline is nearer).
	// The leader takes requests even while it is running a sync, so this
	// measures whether it is alive, not how long a run takes.
	requestTake = 10 * time.Second
	// requestPoll is how often both sides look at the requests should a
	// notification be lost.
	requestPoll = time.Second
)

// runRemote asks the leading replica for a run (force travels with the
// request) and waits for its result: the run's record, which the leader
// stored. It fails with an error wrapping store.ErrLeaderUnavailable,
// naming the leader, when no leader takes the request in time or the one
// that took it stops leading before it answers.
func (s *Syncer) runRemote(ctx context.Context, force bool) (store.SyncRun, error) {
	now := time.Now()
	takeBy := now.Add(requestTake)
	if d, ok := ctx.Deadline(); ok {
		// Keep time to say why, before the caller's deadline.
		margin := min(time.Second, d.Sub(now)/5)
		if d.Add(-margin).Before(takeBy) {
			takeBy = d.Add(-margin)
		}
	}
	id, err := s.store.RequestSync(ctx, s.instance, force, takeBy)
	if err != nil {
		return store.SyncRun{}, err
	}
	s.log.InfoContext(ctx, "sync requested of the leader", "request_id", id, "force", force)
	req, err := s.store.WaitSyncRequest(ctx, id, func(r store.SyncRequest) (time.Duration, error) {
		if r.ClaimedAt.IsZero() {
			if left := time.Until(r.TakeBy); left > 0 {
				return min(requestPoll, left), nil
			}
			gave, err := s.store.AbandonSyncRequest(ctx, id, "no leader took the request in time")
			if err != nil || !gave {
				return requestPoll, err // nil: a leader took it meanwhile; wait for it
			}
			return 0, s.leaderUnavailable(ctx, fmt.Sprintf("took no sync request within %v", takeBy.Sub(now).Round(time.Millisecond)))
		}
		info, holds, err := s.store.Leader(ctx, leaderLockName)
		if err == nil && (!holds || info.Instance != r.ClaimedBy) {
			return 0, fmt.Errorf("%w: the leader %s that took sync request %d stopped leading before it answered",
				store.ErrLeaderUnavailable, r.ClaimedBy, id)
		}
		return requestPoll, nil
	})
	if err != nil {
		return store.SyncRun{}, err
	}
	if req.SyncRunID == 0 {
		return store.SyncRun{}, fmt.Errorf("%w: the leader %s could not run the sync: %s",
			store.ErrLeaderUnavailable, req.ClaimedBy, req.Error)
	}
	run, err := s.store.GetSyncRun(ctx, req.SyncRunID)
	if err != nil {
		return store.SyncRun{}, err
	}
	if req.Error != "" {
		// A failed or held run: the record says why.
		return run, fmt.Errorf("sync run %d by the leader %s: %s", run.ID, req.ClaimedBy, req.Error)
	}
	return run, nil
}

// leaderUnavailable is the error of a request the leader did not take:
// it names the leader when one is known.
func (s *Syncer) leaderUnavailable(ctx context.Context, what string) error {
	info, holds, err := s.store.Leader(ctx, leaderLockName)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: no replica has led the sync yet, and another holds the sync lock; retry later", store.ErrLeaderUnavailable)
	case err != nil:
		return fmt.Errorf("%w: the leader %s (%v)", store.ErrLeaderUnavailable, what, err)
	case !holds:
		return fmt.Errorf("%w: no known replica holds the sync lock (the last leader was %s); retry later", store.ErrLeaderUnavailable, info)
	}
	return fmt.Errorf("%w: the leader %s %s; retry later", store.ErrLeaderUnavailable, info, what)
}

// recordLeader records this process as the holder of the sync lock, so
// that other replicas can name it. A failure only costs that.
func (s *Syncer) recordLeader(ctx context.Context) {
	info := store.LeaderInfo{Instance: s.instance, Host: s.host, PID: os.Getpid(), Since: time.Now()}
	if err := s.store.RecordLeader(ctx, leaderLockName, info); err != nil {
		s.log.WarnContext(ctx, "could not record this process as the sync leader", "err", err)
	}
}

// serveRequests takes the sync requests of other replicas while this
// process leads, until ctx ends: woken by their notifications, and every
// requestPoll should one be lost. Each batch it takes goes to the leading
// loop as one RunNow would, and its result is stored for the askers.
func (s *Syncer) serveRequests(ctx context.Context) {
	var wg gosync.WaitGroup
	defer wg.Wait()
	wake := make(chan struct{}, 1)
	poke := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	wg.Go(func() {
		for ctx.Err() == nil {
			err := s.store.ListenSyncRequests(ctx, poke)
			if ctx.Err() != nil {
				return
			}
			s.log.WarnContext(ctx, "lost the sync requests' notifications; polling until listening again", "err", err)
			t := time.NewTimer(requestPoll)
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
		}
	})
	tick := time.NewTicker(requestPoll)
	defer tick.Stop()
	for {
		reqs, err := s.store.ClaimSyncRequests(ctx, s.instance)
		if err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "could not take sync requests", "err", err)
		}
		if len(reqs) > 0 {
			wg.Go(func() { s.answer(ctx, reqs) })
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-tick.C:
		}
	}
}

// answer runs a sync for reqs (forced if any of them asks it) and records
// the result on them.
func (s *Syncer) answer(ctx context.Context, reqs []store.SyncRequest) {
	ids := make([]int64, len(reqs))
	r := runRequest{reply: make(chan runResult, 1)}
	for i, q := range reqs {
		ids[i] = q.ID
		r.force = r.force || q.Force
	}
	s.log.InfoContext(ctx, "sync requested by another replica", "request_ids", ids, "force", r.force)
	res := runResult{err: errors.New("this replica stopped leading before it ran the sync")}
	select {
	case s.requests <- r:
		select {
		case res = <-r.reply:
		case <-ctx.Done():
		}
	case <-ctx.Done():
	}
	errText := ""
	if res.err != nil {
		errText = res.err.Error()
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.store.FinishSyncRequests(fctx, ids, res.run.ID, errText); err != nil {
		s.log.WarnContext(ctx, "could not answer sync requests", "request_ids", ids, "err", err)
	}
}

// Run waits to become the sync leader, then syncs at once, every interval
// and on Trigger or RunNow, until ctx ends; it returns nil then. When the
// lock's connection breaks, it stops syncing and waits to lead again. A
// failed run is retried with jittered exponential backoff (honouring
// Graph's Retry-After) instead of waiting a full interval. After each
// successful run it fills the chargeback ledger's newly closed days
// (fillLedger) before waiting.
func (s *Syncer) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		err := s.store.WithLeaderLock(ctx, leaderLockName, s.lead)
		if ctx.Err() != nil {
			return nil
		}
		s.log.Warn("lost the sync leader lock; waiting to lead again", "err", err)
		t := time.NewTimer(backoff(1, 0))
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
	return nil
}

// lead is the loop of the leading replica; it returns when ctx ends, which
// happens on shutdown or when the lock's connection breaks.
func (s *Syncer) lead(ctx context.Context) error {
	s.leading.Store(true)
	defer s.leading.Store(false)
	s.recordLeader(ctx)
	s.log.Info("leading the sync", "instance", s.instance)
	served := make(chan struct{})
	defer func() { <-served }()
	go func() {
		defer close(served)
		s.serveRequests(ctx)
	}()
	failures := 0
	force := false
	var waiting []runRequest
	for {
		run, err := s.runOnce(ctx, force)
		for _, r := range waiting {
			r.reply <- runResult{run, err}
		}
		waiting, force = nil, false
		wait := jitter(s.interval)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil && !errors.Is(err, store.ErrMassDeletion):
			failures++
			wait = backoff(failures, graph.RetryAfter(err))
			s.log.Warn("sync failed", "err", err, "retry_in", wait.Round(time.Millisecond))
		default:
			failures = 0
		}
		if err == nil {
			s.fillLedger(ctx)
		}
		// The timer starts at the end of a run, so runs never pile up.
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		case <-s.trigger:
			t.Stop()
		case r := <-s.requests:
			t.Stop()
			waiting, force = append(waiting, r), r.force
		}
	}
}

// ledgerWindow is how many days back the leader keeps the chargeback
// ledger filled after each run: two months cover last month's chargeback
// whenever it is asked. Older days are filled by the first request for
// them, and kept.
const ledgerWindow = 62

// ledgerFillTimeout bounds the ledger fill after a run.
const ledgerFillTimeout = 5 * time.Minute

// fillLedger computes into the chargeback ledger the days the run just
// closed (and any other closed day of the window it lacks), for UTC and
// every time zone chargebacks have been asked in, so that requests read
// them instead of counting them. It runs after the run, outside it: a
// failure is logged and changes nothing but the first request's time,
// since Chargeback fills what it lacks itself.
func (s *Syncer) fillLedger(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, ledgerFillTimeout)
	defer cancel()
	zones, err := s.store.ChargebackLedgerZones(ctx)
	if err != nil {
		s.log.Warn("chargeback ledger fill failed", "err", err)
		return
	}
	for _, tz := range zones {
		start := time.Now()
		n, err := s.store.FillChargebackLedger(ctx, tz, ledgerWindow)
		if err != nil {
			s.log.Warn("chargeback ledger fill failed", "time_zone", tz, "err", err)
			continue
		}
		if n > 0 {
			s.log.Info("chargeback ledger filled", "time_zone", tz, "days", n,
				"took", time.Since(start).Round(time.Millisecond))
		}
	}
}

// RunOnce does one full pass without taking the leader lock (tests and
// single-process tools use it): see runOnce.
func (s *Syncer) RunOnce(ctx context.Context) (store.SyncRun, error) {
	return s.runOnce(ctx, false)
}

// runOnce reads every mirrored collection from Graph into a store snapshot
// and applies it. A stored users delta link that cannot be used (another
// Graph URL, expired, refused) is discarded with a warning: the run makes
// one more pass with a full users listing, whose new link replaces it.
func (s *Syncer) runOnce(ctx context.Context, force bool) (run store.SyncRun, err error) {
	if s.afterRun != nil {
		defer func() { s.afterRun(run, err) }()
	}
	select {
	case s.running <- struct{}{}:
	case <-ctx.Done():
		return store.SyncRun{}, ctx.Err()
	}
	defer func() { <-s.running }()

	run, err = s.pass(ctx, force, false)
	if errors.Is(err, graph.ErrDeltaLinkUnusable) {
		s.log.Warn("users delta link unusable; discarding it and listing all users", "err", err)
		run, err = s.pass(ctx, force, true)
	}
	return run, err
}

// pass is one attempt at a run; fullUsers ignores the stored delta link.
func (s *Syncer) pass(ctx context.Context, force, fullUsers bool) (store.SyncRun, error) {
	run := store.SyncRun{StartedAt: s.now(), Outcome: store.OutcomeRunning, Demo: s.demo}
	before := s.graph.Stats()
	s.log.Info("sync started", "full_users", fullUsers)

	sn, err := s.store.BeginSnapshot(ctx, run.StartedAt)
	if err != nil {
		return s.fail(ctx, run, before, fmt.Errorf("begin snapshot: %w", err))
	}
	applied := false
	defer func() {
		if !applied {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if err := sn.Discard(dctx); err != nil {
				s.log.Warn("discard snapshot", "err", err)
			}
		}
	}()
	if err := s.stage(ctx, sn, fullUsers); err != nil {
		if !fullUsers && errors.Is(err, graph.ErrDeltaLinkUnusable) {
			// Not a failure of the run: runOnce discards the link and
			// makes the pass again with a full users listing.
			return run, err
		}
		return s.fail(ctx, run, before, err)
	}
	s.countGraph(&run, before)
	res, err := sn.Apply(ctx, run, store.ApplyOptions{MaxRemoveFraction: s.maxRemove, Force: force})
	applied = err == nil || errors.Is(err, store.ErrMassDeletion)
	switch {
	case errors.Is(err, store.ErrMassDeletion):
		s.held.Add(1)
		s.log.Error("sync held by the mass-deletion guard: nothing applied; POST /v1/sync:run with force=true applies it",
			"run_id", res.ID, "reason", res.Error, "held_runs", s.held.Load())
		return res, err
	case err != nil:
		return s.fail(ctx, run, before, fmt.Errorf("apply snapshot: %w", err))
	}
	s.logDone(res)
	s.ok.Add(1)
	s.lastOK.Store(res.FinishedAt.Unix())
	select {
	case <-s.synced:
	default:
		close(s.synced)
	}
	return res, nil
}

// stage streams every collection into sn. Allotments, assignments and
// errors are one listing each; waiting members are listed per allotment
// (Graph has no tenant-wide listing); users come from users/delta; group
// memberships are listed for the groups that hold an assignment.
//
// Users are paged at the same time as the rest: they depend on nothing
// else, and two listings in flight keep both the client and PostgreSQL
// busy while Graph composes the next page (the request count, and so
// the Graph budget, is unchanged). The first failure ends both.
func (s *Syncer) stage(ctx context.Context, sn *store.Snapshot, fullUsers bool) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.stageUsers(ctx, sn, fullUsers) })
	g.Go(func() error { return s.stageLicensing(ctx, sn) })
	return g.Wait()
}

// stageLicensing stages everything but the users.
func (s *Syncer) stageLicensing(ctx context.Context, sn *store.Snapshot) error {
	var allotmentIDs []string
	allotments := mapSeq(s.graph.Allotments(ctx), func(a graph.Allotment) store.Allotment {
		allotmentIDs = append(allotmentIDs, a.ID)
		return allotmentFromGraph(a)
	})
	if _, err := sn.StageAllotments(ctx, withProgress(s.log, "allotments", allotments)); err != nil {
		return fmt.Errorf("allotments: %w", err)
	}

	groups := map[string]bool{}
	assignments := mapSeq(s.graph.Assignments(ctx), func(a graph.Assignment) store.Assignment {
		if a.AssignedTo.Type == "group" {
			groups[a.AssignedTo.ID] = true
		}
		return assignmentFromGraph(a)
	})
	if _, err := sn.StageAssignments(ctx, withProgress(s.log, "assignments", assignments)); err != nil {
		return fmt.Errorf("assignments: %w", err)
	}

	// While the rest pages, the store compares the staged assignments
	// with the mirror, so that Apply merges only those that changed.
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return sn.PrepareAssignments(ctx) })
	g.Go(func() error { return s.stageRest(ctx, sn, allotmentIDs, groups) })
	return g.Wait()
}

// stageRest stages waiting members, assignment errors and the members of
// the groups that hold an assignment.
func (s *Syncer) stageRest(ctx context.Context, sn *store.Snapshot, allotmentIDs []string, groups map[string]bool) error {
	waiting := func(yield func(store.WaitingMember, error) bool) {
		for _, id := range allotmentIDs {
			for w, err := range s.graph.AllotmentWaitingMembers(ctx, id) {
				if err != nil {
					yield(store.WaitingMember{}, fmt.Errorf("allotment %s: %w", id, err))
					return
				}
				if w.AllotmentID == "" {
					w.AllotmentID = id
				}
				if !yield(waitingMemberFromGraph(w), nil) {
					return
				}
			}
		}
	}
	if _, err := sn.StageWaitingMembers(ctx, withProgress(s.log, "waiting_members", waiting)); err != nil {
		return fmt.Errorf("waiting members: %w", err)
	}

	errs := mapSeq(s.graph.AssignmentErrors(ctx), assignmentErrorFromGraph)
	if _, err := sn.StageAssignmentErrors(ctx, withProgress(s.log, "assignment_errors", errs)); err != nil {
		return fmt.Errorf("assignment errors: %w", err)
	}

	for g := range groups {
		members := mapSeq(s.graph.GroupMembers(ctx, g), func(m graph.DirectoryObject) store.GroupMember {
			return store.GroupMember{GroupID: g, MemberID: m.ID, MemberType: m.Type}
		})
		if _, err := sn.StageGroupMembers(ctx, g, members); err != nil {
			return fmt.Errorf("members of group %s: %w", g, err)
		}
	}
	return nil
}

// stageUsers follows users/delta from the stored link (a full listing when
// there is none or fullUsers is set) and stages the changes, the removals
// and the new link, all applied with the rest of the snapshot.
func (s *Syncer) stageUsers(ctx context.Context, sn *store.Snapshot, fullUsers bool) error {
	link := ""
	if !fullUsers {
		var err error
		if link, err = s.store.UsersDeltaLink(ctx); err != nil {
			return fmt.Errorf("users delta link: %w", err)
		}
	}
	full := link == ""
	var removed []string
	var next string
	var deltaErr error
	users := func(yield func(store.User, error) bool) {
		stop := errors.New("stop")
		next, deltaErr = s.graph.UsersDelta(ctx, link, func(u graph.User) error {
			if u.Removed {
				removed = append(removed, u.ID)
				return nil
			}
			if !yield(userFromGraph(u), nil) {
				return stop
			}
			return nil
		})
		if errors.Is(deltaErr, stop) {
			return
		}
		if deltaErr != nil {
			yield(store.User{}, deltaErr)
		}
	}
	if _, err := sn.StageUsers(ctx, full, withProgress(s.log, "users", users)); err != nil {
		return fmt.Errorf("users: %w", err)
	}
	if deltaErr != nil {
		return fmt.Errorf("users: %w", deltaErr)
	}
	if !full && len(removed) > 0 {
		if err := sn.StageUserRemovals(ctx, removed); err != nil {
			return fmt.Errorf("user removals: %w", err)
		}
	}
	sn.SetUsersDeltaLink(next)
	return nil
}

// progressEvery is how many rows pass between two progress lines.
const progressEvery = 50_000

// withProgress passes seq through, logging every progressEvery rows so that
// a long run shows its pace, and the total at debug level.
func withProgress[T any](log *slog.Logger, entity string, seq iter.Seq2[T, error]) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		start := time.Now()
		n := 0
		for v, err := range seq {
			if err == nil {
				n++
				if n%progressEvery == 0 {
					log.Info("sync progress", "entity", entity, "rows", n,
						"rows_per_sec", int(float64(n)/max(time.Since(start).Seconds(), 1e-9)))
				}
			}
			if !yield(v, err) {
				return
			}
		}
		log.Debug("sync staged", "entity", entity, "rows", n, "took", time.Since(start).Round(time.Millisecond))
	}
}

// fail records a failed run and returns err. The record is written even
// when ctx was cancelled (shutdown), so that every run leaves a trace.
func (s *Syncer) fail(ctx context.Context, run store.SyncRun, before graph.Stats, err error) (store.SyncRun, error) {
	s.failed.Add(1)
	s.countGraph(&run, before)
	run.Outcome = store.OutcomeFailed
	run.Error = err.Error()
	if errors.Is(err, context.Canceled) {
		run.Error = "canceled: " + run.Error
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	rec, rerr := s.store.RecordFailedSyncRun(rctx, run)
	if rerr != nil {
		s.log.Error("record failed sync run", "err", rerr)
		return run, err
	}
	return rec, err
}

// countGraph fills run's Graph counters with what the client did since
// before. The client is shared with the write proxy, so a write during the
// run is counted too; writes are rare next to a sync's reads.
func (s *Syncer) countGraph(run *store.SyncRun, before graph.Stats) {
	after := s.graph.Stats()
	run.GraphRequests = after.Requests - before.Requests
	run.Throttled = after.Throttled - before.Throttled
	run.BytesReceived = after.BytesReceived - before.BytesReceived
}

func (s *Syncer) logDone(res store.SyncRun) {
	attrs := []any{"run_id", res.ID,
		"graph_requests", res.GraphRequests, "throttled", res.Throttled, "bytes", res.BytesReceived,
		"took", res.FinishedAt.Sub(res.StartedAt).Round(time.Millisecond)}
	for entity, c := range res.Counts {
		attrs = append(attrs, slog.Group(entity, "added", c.Added, "changed", c.Changed, "removed", c.Removed, "unchanged", c.Unchanged))
	}
	s.log.Info("sync done", attrs...)
}

// mapSeq converts each element of seq with f, passing errors through.
func mapSeq[A, B any](seq iter.Seq2[A, error], f func(A) B) iter.Seq2[B, error] {
	return func(yield func(B, error) bool) {
		for a, err := range seq {
			var b B
			if err == nil {
				b = f(a)
			}
			if !yield(b, err) || err != nil {
				return
			}
		}
	}
}

// backoff is how long to wait after the n-th failed run in a row: Graph's
// Retry-After when it sent one, else 1s, 2s, 4s … capped at 5 minutes, with
// jitter so that replicas do not retry in step.
func backoff(n int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return retryAfter
	}
	d := min(time.Second<<min(max(n-1, 0), 9), 5*time.Minute)
	return d/2 + rand.N(d/2+1)
}

// jitter spreads d by up to ±10 % so that replicas started together do not
// sync in step.
func jitter(d time.Duration) time.Duration {
	spread := d / 10
	if spread <= 0 {
		return d
	}
	return d - spread + rand.N(2*spread+1)
}
