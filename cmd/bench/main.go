// Command bench is seatledger's tenant-scale benchmark harness (issue 6).
// Every figure is measured next to a baseline in the same run, on the
// same noisy machine, and reported as a ratio against the target.
//
// Usage:
//
//	go run ./cmd/bench [-quick] [-out docs/BENCHMARKS.md] [-cpuprofile file] [-memprofile file]
//
// It starts a private PostgreSQL (pglocal: temporary, on tmpfs, fsync
// off), one Graph simulator per tenant in a child process (the bench
// binary re-executed, so that the simulator's in-memory tenant does not
// count in the heap measured here), and seatledger itself in-process, wired
// as cmd/server wires it (gRPC with OIDC access control, the gateway,
// the syncer). Tenants come from graphsim.Generate with fixed seeds.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/seatledger/seatledger/internal/graphsim"
	"github.com/seatledger/seatledger/internal/pglocal"
)

func main() {
	if spec := os.Getenv(simChildEnv); spec != "" {
		os.Exit(simChild(spec))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

// logw receives progress lines.
var logw io.Writer = os.Stderr

func logf(format string, args ...any) {
	fmt.Fprintf(logw, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// plan is what one mode measures.
type plan struct {
	mode      string
	command   string
	primary   tenantSpec // full sync, unchanged re-sync, reads
	secondary tenantSpec // full sync, heap against primary
	latency   tenantSpec // writes and value to callers, simulator at 50 ms
	readFor   time.Duration
	writes    int
	// chargebackCalls is how many times each chargeback is asked for (the
	// fastest counts).
	chargebackCalls int
	// chargebackDeadline bounds each chargeback call.
	chargebackDeadline time.Duration
	skip               map[string]bool // parts left out (-skip)
}

// Seeds: one per tenant, fixed, so that every run benchmarks the same
// tenants.
const (
	seedSmall  = 1
	seedMedium = 2
	seedLarge  = 3
)

var (
	small = tenantSpec{Name: "small", Gen: graphsim.GenerateOptions{
		Seed: seedSmall, Users: 1_000, Allotments: 4, AssignmentsPerUser: 1, Groups: 10, WaitingMembers: 50, AssignmentErrors: 20, Headroom: 0.5}}
	medium = tenantSpec{Name: "medium", Assignments: 250_000, Gen: graphsim.GenerateOptions{
		Seed: seedMedium, Users: 100_000, Allotments: 20, AssignmentsPerUser: 3, Groups: 100, WaitingMembers: 2_000, AssignmentErrors: 1_000}}
	large = tenantSpec{Name: "large", Assignments: 1_000_000, Gen: graphsim.GenerateOptions{
		Seed: seedLarge, Users: 250_000, Allotments: 20, AssignmentsPerUser: 4, Groups: 100, WaitingMembers: 2_000, AssignmentErrors: 1_000}}
	mediumTenth = tenantSpec{Name: "medium/10", Assignments: 25_000, Gen: graphsim.GenerateOptions{
		Seed: seedMedium, Users: 10_000, Allotments: 20, AssignmentsPerUser: 3, Groups: 10, WaitingMembers: 200, AssignmentErrors: 100}}
)

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	quick := fs.Bool("quick", false, "small tenants, short load tests (under a minute)")
	out := fs.String("out", "", "write the report here (default docs/BENCHMARKS.md for a full run, none for -quick)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	memprofile := fs.String("memprofile", "", "write a heap profile at the end of the largest sync to this file")
	fs.IntVar(&readCacheBytes, "read-cache-bytes", 64<<20, "read cache of seatledger's API (0: off; the server's default is 64 MiB)")
	fs.IntVar(&poolMaxConns, "pool-max-conns", 0, "pool_max_conns of seatledger's database pool (0: pgxpool's default, as in production)")
	skip := fs.String("skip", "", "comma-separated parts to leave out, for profiling one part: secondary, reads, chargeback, latency")
	if err := fs.Parse(args); err != nil {
		return err
	}
	p := plan{mode: "full", command: "make bench", primary: medium, secondary: large, latency: small, readFor: 3 * time.Second, writes: 15,
		chargebackCalls: 40, chargebackDeadline: 60 * time.Second}
	if *quick {
		p = plan{mode: "quick", command: "make bench-quick", primary: small, secondary: mediumTenth, latency: small, readFor: time.Second, writes: 7,
			chargebackCalls: 2, chargebackDeadline: 20 * time.Second}
	}
	if *out == "" && !*quick {
		*out = "docs/BENCHMARKS.md"
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return fmt.Errorf("cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	started := time.Now()
	p.skip = map[string]bool{}
	for _, part := range strings.Split(*skip, ",") {
		if part = strings.TrimSpace(part); part != "" {
			p.skip[part] = true
		}
	}
	r, err := measure(ctx, p, *memprofile)
	if err != nil {
		return err
	}
	r.took = time.Since(started)
	r.machine = machine()
	r.date = started.UTC().Format("2006-01-02 15:04 UTC")
	fmt.Fprintln(stdout)
	fmt.Fprint(stdout, r.table())
	fmt.Fprintf(stdout, "\n%s run took %v\n", p.mode, r.took.Round(time.Second))
	if *out != "" {
		doc := r.markdown()
		// The analysis below the marker is written by people from profiles;
		// a run keeps it.
		if old, err := os.ReadFile(*out); err == nil {
			if _, kept, ok := strings.Cut(string(old), analysisMarker); ok {
				doc += analysisMarker + kept
			}
		}
		if !strings.Contains(doc, analysisMarker) {
			doc += "\n" + analysisMarker + "\n"
		}
		if err := os.WriteFile(*out, []byte(doc), 0o644); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
		fmt.Fprintf(stdout, "wrote %s\n", *out)
	}
	return nil
}

// report is everything one run measured.
type report struct {
	plan
	syncs   []syncFigures
	reads   []readFigures
	writes  writeFigures
	value   valueFigures
	charge  chargebackFigures
	took    time.Duration
	machine string
	date    string
}

func measure(ctx context.Context, p plan, memprofile string) (*report, error) {
	r := &report{plan: p}
	logf("starting postgres")
	pg, err := pglocal.Start(ctx, "", pglocal.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return nil, err
	}
	defer pg.Stop()

	for i, t := range []tenantSpec{p.primary, p.secondary} {
		primary := i == 0
		if !primary && p.skip["secondary"] {
			continue
		}
		if err := func() error {
			logf("%s: generating tenant and starting simulator", t.Name)
			sim, err := startSim(simSpec{Tenant: t, PageSize: graphPageSize})
			if err != nil {
				return err
			}
			defer sim.Close()
			db := "bench_" + strings.ReplaceAll(t.Name, "/", "_")
			inst, err := startInstance(ctx, pg, db, sim)
			if err != nil {
				return err
			}
			defer inst.stop()
			f, err := benchSync(ctx, pg, db, sim, inst, t.Name, primary)
			if err != nil {
				return fmt.Errorf("%s: %w", t.Name, err)
			}
			r.syncs = append(r.syncs, f)
			if !primary && memprofile != "" {
				if err := writeHeapProfile(memprofile); err != nil {
					return err
				}
			}
			if !primary {
				return nil
			}
			target, err := pickReadTarget(ctx, pg, db)
			if err != nil {
				return err
			}
			if !p.skip["reads"] {
				if r.reads, err = benchReads(ctx, inst, target, p.readFor); err != nil {
					return fmt.Errorf("reads: %w", err)
				}
			}
			r.charge.skipped = "left out (-skip)"
			if !p.skip["chargeback"] {
				if r.charge, err = benchChargeback(ctx, pg, db, inst, p.chargebackCalls, p.chargebackDeadline); err != nil {
					return fmt.Errorf("chargeback: %w", err)
				}
			}
			return nil
		}(); err != nil {
			return nil, err
		}
	}

	if p.skip["latency"] {
		r.writes.skipped = "left out (-skip)"
		return r, nil
	}
	logf("latency: simulator at 50 ms per Graph request")
	sim, err := startSim(simSpec{Tenant: p.latency, PageSize: graphPageSize, Latency: 50 * time.Millisecond})
	if err != nil {
		return nil, err
	}
	defer sim.Close()
	inst, err := startInstance(ctx, pg, "bench_latency", sim)
	if err != nil {
		return nil, err
	}
	defer inst.stop()
	if _, err := inst.syncer.RunOnce(ctx); err != nil {
		return nil, fmt.Errorf("latency tenant sync: %w", err)
	}
	target, err := pickReadTarget(ctx, pg, "bench_latency")
	if err != nil {
		return nil, err
	}
	if r.value, err = benchValue(ctx, sim, inst, target.user, p.writes); err != nil {
		return nil, err
	}
	if r.writes, err = benchWrites(ctx, pg, "bench_latency", sim, inst, p.writes); err != nil {
		return nil, err
	}
	return r, nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("memprofile: %w", err)
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		return fmt.Errorf("memprofile: %w", err)
	}
	return nil
}

// machine describes where the run happened: CPU model and count, memory
// and Go version.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf(", %.0f GiB RAM", float64(kb)/(1<<20))
		}
	}
	pgv := ""
	if out, err := exec.Command("sh", "-c", "ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1").Output(); err == nil && len(out) > 0 {
		pgv = ", PostgreSQL " + strings.TrimSpace(string(out))
	}
	return fmt.Sprintf("%s, %d logical CPUs%s; %s %s/%s%s", model, runtime.NumCPU(), mem, runtime.Version(), runtime.GOOS, runtime.GOARCH, pgv)
}
