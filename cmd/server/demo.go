package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/seatledger/seatledger/internal/graph"
	"github.com/seatledger/seatledger/internal/graphsim"
	"github.com/seatledger/seatledger/internal/store"
	mirrorsync "github.com/seatledger/seatledger/internal/sync"
)

// zeroConfiguration reports whether cfg is the zero-configuration demo's:
// no Graph credentials (even with -graph-mode=simulator) and no
// DATABASE_URL. Only then is a demo past seeded.
func zeroConfiguration(cfg config) bool {
	return cfg.DatabaseURL == "" && cfg.Graph.TenantID == "" && cfg.Graph.ClientID == ""
}

// seedDemoPast gives the zero-configuration demo a past on its first
// start, so that history, "as of" reads and last month's chargeback have
// data on day one: the built-in simulator replays the demo tenant's last
// graphsim.DemoPastDays days (graphsim's DemoPast: hires, leavers,
// department moves, group joins, capacity changes, a suspended
// subscription, waits and errors that come and go), and after each day's
// changes the mirror records the day through its normal sync, with the
// sync's clock pinned to that day. Those runs are marked as demo data
// (SyncRun.demo). The simulator's clock is back on the real time after.
//
// It does nothing when the mirror already has a sync run (a restart, or a
// database that has seen another tenant): the past is seeded once. The
// caller calls it only in the zero-configuration mode (built-in simulator
// and embedded PostgreSQL), before the sync loop starts. A failure is
// logged and leaves whatever days were recorded; only a cancelled ctx is
// returned.
//
// dsn is the embedded PostgreSQL's: the seeding opens its own connections
// to it with synchronous_commit off, which makes the 90 runs several times
// faster (each commit no longer waits for its WAL to reach the disk; a
// crash could lose the last few runs' commits, never consistency, and a
// past cut short is seeded no further anyway).
func seedDemoPast(ctx context.Context, dsn string, gc *graph.Client, sim *graphsim.Server, log *slog.Logger) error {
	st, err := store.Open(ctx, dsn+" synchronous_commit=off")
	if err != nil {
		log.Error("demo past not seeded", "err", err)
		return nil
	}
	defer st.Close()
	runs, err := st.ListSyncRuns(ctx, 1, 0)
	if err != nil {
		log.Error("demo past not seeded", "err", err)
		return nil
	}
	if len(runs) > 0 {
		return nil // not the first start
	}
	start := time.Now()
	var at time.Time
	seeder := mirrorsync.New(gc, st, mirrorsync.Options{
		Now:  func() time.Time { return at },
		Demo: true,
		// One line per day would drown the start-up log; the summary
		// below and a failure's error say what happened.
		Logger: slog.New(slog.DiscardHandler),
	})
	days := 0
	err = sim.DemoPast(start, func(day time.Time) error {
		at = day
		if _, err := seeder.RunOnce(ctx); err != nil {
			return fmt.Errorf("sync of %s: %w", day.Format(time.DateOnly), err)
		}
		days++
		return nil
	})
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, graphsim.ErrNotDemoTenant):
		log.Warn("demo past not seeded: the built-in simulator's tenant is not the demo tenant as it starts", "err", err)
	case err != nil:
		log.Error("demo past seeded in part", "days", days, "err", err)
	default:
		log.Info("demo past seeded: the mirror recorded the demo tenant's last days, with sync runs marked as demo data",
			"days", days, "from", at.AddDate(0, 0, 1-days).Format(time.DateOnly), "to", at.Format(time.DateOnly),
			"took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}
