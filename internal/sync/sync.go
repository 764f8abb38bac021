// Package sync mirrors Microsoft Graph's cloud licensing state into the
// store.
//
// It is level-triggered, like a Kubernetes controller: every run reads the
// full current state from Graph and asks the store to make the mirror equal
// to it, so a missed, repeated or failed run is harmless. A run either
// applies completely, in one store transaction, or changes nothing but its
// own sync_runs record.
//
// The package is named sync because the design card names the directory;
// inside it, the standard library's sync is imported as gosync if needed.
package sync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/seatledger/seatledger/internal/graph"
	"github.com/seatledger/seatledger/internal/store"
)

// Options tunes a Syncer. The zero value is usable.
type Options struct {
	// Interval is the time from the end of one run to the start of the
	// next; 0 means 15 minutes. Each wait is jittered by up to 10 %.
	Interval time.Duration
	// Logger receives progress and one summary line per run; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now. Tests pin it.
	Now func() time.Time
}

// Syncer runs syncs from a Graph client into a store. Create it with New;
// it is safe for concurrent use, and runs never overlap within a process.
type Syncer struct {
	graph    *graph.Client
	store    *store.Store
	log      *slog.Logger
	interval time.Duration
	now      func() time.Time

	running chan struct{} // capacity 1: held while a run is in progress
	trigger chan struct{} // capacity 1: pending requests coalesce
	synced  chan struct{} // closed after this process's first successful run

	afterRun func(store.SyncRun, error) // for tests: called at the end of every RunOnce
}

// New returns a Syncer that reads from gc and writes to st.
func New(gc *graph.Client, st *store.Store, opts Options) *Syncer {
	s := &Syncer{
		graph:    gc,
		store:    st,
		log:      opts.Logger,
		interval: opts.Interval,
		now:      opts.Now,
		running:  make(chan struct{}, 1),
		trigger:  make(chan struct{}, 1),
		synced:   make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.interval <= 0 {
		s.interval = 15 * time.Minute
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// Synced is closed once this process has completed its first successful
// run. Readiness checks and tests select on it.
func (s *Syncer) Synced() <-chan struct{} { return s.synced }

// Trigger asks Run for a run as soon as possible. Calls made while one is
// already pending merge into it.
func (s *Syncer) Trigger() {
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}

// RunNow runs a sync now, waiting for a run already in progress to finish
// first, and returns the recorded run. force is accepted for the API
// contract; the mass-deletion guard it overrides arrives with the full
// mirror.
func (s *Syncer) RunNow(ctx context.Context, force bool) (store.SyncRun, error) {
	_ = force
	return s.RunOnce(ctx)
}

// Run syncs at once, then every interval and on Trigger, until ctx ends;
// it returns nil then. A failed run is retried with jittered exponential
// backoff (honouring Graph's Retry-After) instead of waiting a full
// interval.
func (s *Syncer) Run(ctx context.Context) error {
	failures := 0
	for {
		wait := jitter(s.interval)
		if _, err := s.RunOnce(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			failures++
			wait = backoff(failures, graph.RetryAfter(err))
			s.log.Warn("sync failed", "err", err, "retry_in", wait)
		} else {
			failures = 0
		}
		// The timer starts at the end of a run, so runs never pile up.
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		case <-s.trigger:
			t.Stop()
		}
	}
}

// RunOnce does one full pass: it pages through every allotment in Graph,
// then applies the snapshot to the store in one transaction together with
// the run's sync_runs record. On failure nothing but a failed sync_runs
// record is written, and the error is returned.
func (s *Syncer) RunOnce(ctx context.Context) (run store.SyncRun, err error) {
	if s.afterRun != nil {
		defer func() { s.afterRun(run, err) }()
	}
	select {
	case s.running <- struct{}{}:
	case <-ctx.Done():
		return store.SyncRun{}, ctx.Err()
	}
	defer func() { <-s.running }()

	run = store.SyncRun{StartedAt: s.now(), Outcome: store.OutcomeRunning}
	before := s.graph.Stats()
	s.log.Info("sync started")

	snapshot, err := s.readAllotments(ctx)
	after := s.graph.Stats()
	run.GraphRequests = after.Requests - before.Requests
	run.Throttled = after.Throttled - before.Throttled
	run.BytesReceived = after.BytesReceived - before.BytesReceived
	if err != nil {
		return s.fail(ctx, run, err)
	}
	res, err := s.store.ApplyAllotments(ctx, run, snapshot)
	if err != nil {
		return s.fail(ctx, run, fmt.Errorf("apply snapshot: %w", err))
	}
	c := res.Counts["allotments"]
	s.log.Info("sync done", "run_id", res.ID,
		"allotments", len(snapshot), "added", c.Added, "changed", c.Changed,
		"removed", c.Removed, "unchanged", c.Unchanged,
		"graph_requests", res.GraphRequests, "throttled", res.Throttled,
		"took", res.FinishedAt.Sub(res.StartedAt).Round(time.Millisecond))
	select {
	case <-s.synced:
	default:
		close(s.synced)
	}
	return res, nil
}

// readAllotments pages through Graph's allotments. Allotments are few (one
// per purchase batch), so holding them in memory is bounded by the tenant's
// purchases, not its users.
func (s *Syncer) readAllotments(ctx context.Context) ([]store.Allotment, error) {
	var snapshot []store.Allotment
	for a, err := range s.graph.Allotments(ctx) {
		if err != nil {
			return nil, fmt.Errorf("list allotments: %w", err)
		}
		snapshot = append(snapshot, allotmentFromGraph(a))
	}
	return snapshot, nil
}

// fail records a failed run and returns err. The record is written even
// when ctx was cancelled (shutdown), so that every run leaves a trace.
func (s *Syncer) fail(ctx context.Context, run store.SyncRun, err error) (store.SyncRun, error) {
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

func allotmentFromGraph(a graph.Allotment) store.Allotment {
	out := store.Allotment{
		ID:            a.ID,
		SKUID:         a.SKUID,
		SKUPartNumber: a.SKUPartNumber,
		AllottedUnits: a.AllottedUnits,
		ConsumedUnits: a.ConsumedUnits,
		AssignableTo:  a.AssignableTo,
		Raw:           a.Raw,
	}
	for _, sv := range a.Services {
		out.Services = append(out.Services, store.Service{
			PlanID:       sv.PlanID,
			PlanName:     sv.PlanName,
			AssignableTo: sv.AssignableTo,
		})
	}
	for _, sub := range a.Subscriptions {
		out.Subscriptions = append(out.Subscriptions, store.Subscription{
			SubscriptionID:    sub.SubscriptionID,
			State:             sub.State,
			StartDate:         sub.StartDate,
			NextLifecycleDate: sub.NextLifecycleDate,
			Tags:              sub.Tags,
		})
	}
	return out
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
