package main

import (
	"fmt"
	"math"
	"strings"
	"text/tabwriter"
	"time"
)

// row is one line of the results table.
type row struct {
	measurement, figure, baseline, ratio, target, met string
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func ratio(a, b float64) (float64, string) {
	if b == 0 {
		return math.Inf(1), "∞"
	}
	x := a / b
	return x, fmt.Sprintf("%.2fx", x)
}

func notMeasured(name, why string) row {
	return row{name, "not measured: " + why, "", "", "", "—"}
}

// rows turns the figures into the results table, in issue 6's order.
func (r *report) rows() []row {
	var out []row
	for _, s := range r.syncs {
		base := s.paging.took + s.copyTook
		x, xs := ratio(s.syncTook.Seconds(), base.Seconds())
		rps := float64(s.paging.total()) / s.syncTook.Seconds()
		out = append(out, row{
			fmt.Sprintf("1 full sync, %s (%d objects)", s.tenant, s.paging.total()),
			fmt.Sprintf("%s, %.0f rows/s", secs(s.syncTook), rps),
			fmt.Sprintf("paging %s + COPY %s", secs(s.paging.took), secs(s.copyTook)),
			xs, "≤ 2x", yes(x <= 2)})
	}
	for _, s := range r.syncs {
		if !s.resync {
			continue
		}
		out = append(out, row{"2 unchanged re-sync, " + s.tenant + ": version rows written",
			fmt.Sprint(s.versionsWritten), "", "", "0", yes(s.versionsWritten == 0)})
		x, xs := ratio(s.resyncTook.Seconds(), s.resyncPaging.took.Seconds())
		out = append(out, row{"2 unchanged re-sync, " + s.tenant + ": time",
			secs(s.resyncTook), "paging " + secs(s.resyncPaging.took) + " (users by delta)", xs, "≤ 1.3x", yes(x <= 1.3)})
	}
	if n := len(r.syncs); n == 2 {
		big, small := r.syncs[1], r.syncs[0]
		out = append(out, row{"3 peak heap (HeapInuse) during full sync, " + big.tenant,
			mib(big.heapPeak), "", "", "≤ 256 MiB", yes(big.heapPeak <= 256<<20)})
		// The sync's own memory: the peaks above what the process held just
		// before the sync (the harness keeps what earlier measurements
		// left, more before the second tenant than before the first).
		above := func(peak, base uint64) uint64 { return peak - min(base, peak) }
		bigIn, smallIn := above(big.heapPeak, big.heapBase), above(small.heapPeak, small.heapBase)
		x, xs := ratio(float64(bigIn), float64(smallIn))
		out = append(out, row{"3 peak heap above the heap before the sync, " + big.tenant + " vs " + small.tenant,
			mib(bigIn), small.tenant + " " + mib(smallIn), xs, "within 20 %", yes(math.Abs(x-1) <= 0.2)})
		bigLive, smallLive := above(big.heapLive, big.heapBaseLive), above(small.heapLive, small.heapBaseLive)
		_, xs = ratio(float64(bigLive), float64(smallLive))
		out = append(out, row{"3 peak live heap (after GC) above the live heap before the sync, " + big.tenant + " vs " + small.tenant,
			mib(bigLive), small.tenant + " " + mib(smallLive), xs, "(diagnostic)", "—"})
		_, xs = ratio(float64(big.heapPeak), float64(small.heapPeak))
		out = append(out, row{"3 peak heap (HeapInuse, the process), " + big.tenant + " vs " + small.tenant,
			mib(big.heapPeak), small.tenant + " " + mib(small.heapPeak), xs, "(diagnostic)", "—"})
	}
	for _, f := range r.reads {
		x, xs := ratio(f.grpc.rps, f.bare.rps)
		out = append(out, row{"4 " + f.call + ", gRPC, 32 callers",
			fmt.Sprintf("%.0f/s p50 %s p99 %s", f.grpc.rps, ms(f.grpc.p50), ms(f.grpc.p99)),
			fmt.Sprintf("bare grpc-go %.0f/s p50 %s p99 %s", f.bare.rps, ms(f.bare.p50), ms(f.bare.p99)),
			xs, "≥ 0.5x", yes(x >= 0.5)})
		_, xs = ratio(f.grpc.rps, f.withStore.rps)
		out = append(out, row{"4 " + f.call + ", gRPC, against reading the database each call",
			fmt.Sprintf("%.0f/s", f.grpc.rps),
			fmt.Sprintf("bare grpc-go making the handler's store reads %.0f/s", f.withStore.rps),
			xs, "(diagnostic)", "—"})
		x, xs = ratio(f.rest.rps, f.grpc.rps)
		out = append(out, row{"4 " + f.call + ", REST, 32 callers",
			fmt.Sprintf("%.0f/s p50 %s p99 %s", f.rest.rps, ms(f.rest.p50), ms(f.rest.p99)),
			fmt.Sprintf("our gRPC %.0f/s", f.grpc.rps), xs, "≥ 0.5x", yes(x >= 0.5)})
	}
	// dur shows milliseconds under a second: the ledger made these short.
	dur := func(d time.Duration) string {
		if d < time.Second {
			return ms(d)
		}
		return secs(d)
	}
	name := fmt.Sprintf("5 chargeback %s..%s by department, %s, 1 year of history", r.charge.from, r.charge.to, r.primary.Name)
	switch c := r.charge; {
	case c.skipped != "":
		out = append(out, notMeasured("5 chargeback, one month", c.skipped))
	case c.timedOut == "1 year":
		x, xs := ratio(c.deadline.Seconds(), c.rollup.Seconds())
		out = append(out, row{name, "over " + secs(c.deadline) + " (the harness's deadline)",
			"aggregate over the month's allotment_daily rows " + ms(c.rollup), "> " + xs, "≤ 3x", yes(x <= 3)})
		out = append(out, notMeasured("5 the same month, 3 years of history", "the 1-year chargeback did not finish within the deadline"))
	case c.timedOut == "3 years":
		x, xs := ratio(c.oneYear.Seconds(), c.rollup.Seconds())
		out = append(out, row{name, dur(c.oneYear), "aggregate over the month's allotment_daily rows " + ms(c.rollup), xs, "≤ 3x", yes(x <= 3)})
		out = append(out, row{"5 the same month, 3 years of history", "over " + secs(c.deadline) + " (the harness's deadline)",
			"1 year " + dur(c.oneYear), "", "within 20 %", "NO"})
	default:
		_, fs := ratio(c.ledgerFill3y.Seconds(), c.ledgerFill.Seconds())
		out = append(out, row{fmt.Sprintf("5 chargeback ledger fill, %d closed days (UTC), after the sync", c.ledgerDays),
			dur(c.ledgerFill), "the same fill after 2 more years of history " + dur(c.ledgerFill3y), fs, "(diagnostic)", "—"})
		x, xs := ratio(c.oneYear.Seconds(), c.rollup.Seconds())
		out = append(out, row{name + ", computed", dur(c.oneYear), "aggregate over the month's allotment_daily rows " + ms(c.rollup), xs, "≤ 3x", yes(x <= 3)})
		x, xs = ratio(c.cached.Seconds(), c.rollup.Seconds())
		out = append(out, row{"5 the same chargeback asked again (read cache)", dur(c.cached),
			"aggregate over the month's allotment_daily rows " + ms(c.rollup), xs, "≤ 3x", yes(x <= 3)})
		x, xs = ratio(c.threeYears.Seconds(), c.oneYear.Seconds())
		out = append(out, row{"5 the same month, 3 years of history",
			dur(c.threeYears), fmt.Sprintf("1 year %s (+%d closed assignment versions)", dur(c.oneYear), c.historyRows),
			xs, "within 20 %", yes(math.Abs(x-1) <= 0.2)})
	}
	if r.writes.skipped != "" {
		out = append(out, notMeasured("6 write proxy, 50 ms Graph", r.writes.skipped))
	} else {
		x, xs := ratio(r.writes.proxy.Seconds(), r.writes.direct.Seconds())
		out = append(out, row{fmt.Sprintf("6 write proxy p50, 50 ms Graph (n=%d)", r.writes.n),
			"POST /v1/assignments (gRPC) " + ms(r.writes.proxy), "direct POST to Graph " + ms(r.writes.direct),
			xs, "≤ 1.2x", yes(x <= 1.2)})
	}
	for _, s := range r.syncs {
		x, xs := ratio(float64(s.syncReqs), float64(s.paging.minRequests))
		out = append(out, row{"7 Graph requests per full sync, " + s.tenant,
			fmt.Sprint(s.syncReqs), fmt.Sprintf("minimum %d (page size %d)", s.paging.minRequests, graphPageSize),
			xs, "≤ 1.1x", yes(x <= 1.1)})
		out = append(out, row{"7 retries in that sync (nothing failed)", fmt.Sprint(s.syncRetries), "", "", "0", yes(s.syncRetries == 0)})
	}
	if r.value.n == 0 {
		return append(out, notMeasured("8 a user's license status, 50 ms Graph", "left out (-skip)"))
	}
	_, xs := ratio(r.value.seatledger.Seconds(), r.value.graph.Seconds())
	out = append(out, row{fmt.Sprintf("8 a user's license status p50, 50 ms Graph (n=%d)", r.value.n),
		"seatledger " + ms(r.value.seatledger),
		fmt.Sprintf("Graph %s (%d requests, in parallel)", ms(r.value.graph), r.value.graphRequests),
		xs, "(a ratio)", "—"})
	return out
}

// table is the results as aligned text for a terminal.
func (r *report) table() string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "measurement\tfigure\tbaseline\tratio\ttarget\tmet?")
	for _, x := range r.rows() {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", x.measurement, x.figure, x.baseline, x.ratio, x.target, x.met)
	}
	w.Flush()
	return b.String()
}

// markdown is docs/BENCHMARKS.md: the table, how it was made, and what
// bounds the figures.
func (r *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Benchmarks\n\n")
	fmt.Fprintf(&b, "Generated by `%s` (`go run ./cmd/bench`) on %s in %v. Everything down to the marker comment is\n", r.command, r.date, r.took.Round(time.Second))
	fmt.Fprintf(&b, "rewritten by each run (its text lives in cmd/bench/report.go); the analysis after it is written by hand and kept.\n\n")
	fmt.Fprintf(&b, "Machine: %s.\n\n", r.machine)
	fmt.Fprintf(&b, "Every figure is measured next to its baseline in the same run (the machine is shared and noisy), so read the\n")
	fmt.Fprintf(&b, "ratios, not the absolute numbers. Targets are issue 6's.\n\n")
	fmt.Fprintf(&b, "| measurement | figure | baseline | ratio | target | met? |\n| --- | --- | --- | --- | --- | --- |\n")
	for _, x := range r.rows() {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", x.measurement, x.figure, x.baseline, x.ratio, x.target, x.met)
	}
	fmt.Fprintf(&b, "\n## Tenants\n\n")
	for _, s := range r.syncs {
		fmt.Fprintf(&b, "- **%s**: %s\n", s.tenant, describeRows(s.paging.rows))
	}
	fmt.Fprintf(&b, "- **%s** (writes, value to callers): the simulator adds 50 ms to every Graph request.\n", r.latency.Name)
	b.WriteString(methodText)
	return b.String()
}

func describeRows(rows map[string]int64) string {
	var parts []string
	for _, k := range []string{"users", "allotments", "assignments", "waiting_members", "assignment_errors", "group_members"} {
		parts = append(parts, fmt.Sprintf("%d %s", rows[k], strings.ReplaceAll(k, "_", " ")))
	}
	return strings.Join(parts, ", ") + "."
}

// analysisMarker separates the generated part of BENCHMARKS.md from the
// analysis written by hand, which runs keep.
const analysisMarker = "<!-- Generated above; written by hand below (cmd/bench keeps it). -->"

// methodText says how each figure is taken and what bounds it.
const methodText = `
All tenants come from ` + "`graphsim.Generate`" + ` with fixed seeds (cmd/bench/main.go), so every run measures the same data.

## How each figure is taken

The harness starts a private PostgreSQL (internal/pglocal: temporary cluster on tmpfs, fsync off), one Graph
simulator per tenant and seatledger itself, wired as cmd/server wires it: the syncer, the gRPC API with OIDC access
control (caller tokens minted by the simulator's authority), the grpc-gateway. The simulator runs in a child process
(the bench binary re-executed) and is reached over HTTPS on loopback: its in-memory tenant must not count in the heap
measured here. Both share the machine's cores with PostgreSQL and the harness.

1. **Full sync**: ` + "`Syncer.RunOnce`" + ` into an empty database, against the sum of two baselines taken just before it: paging
   every collection the sync reads (allotments, assignments, each allotment's waiting members, assignment errors,
   users by delta, members of groups holding an assignment) with a fresh graph client at page size 999, keeping
   only a reference to each decoded object (one append) for the second baseline: one COPY of the same objects (id,
   three key columns, the raw JSON) into a table without indexes. Rows/s counts Graph objects.
2. **Unchanged re-sync**: a second ` + "`RunOnce`" + ` with nothing changed; two rounds of baseline then re-sync, the
   fastest of each kept. Version rows written is the row count of every
   ` + "`*_versions`" + ` table after minus before. The baseline pages the same collections, users from the stored delta link
   (as the re-sync does).
3. **Memory**: ` + "`runtime.ReadMemStats`" + ` HeapInuse sampled every 10 ms during the full sync (after a forced GC), peak
   reported, GOGC at its default; and the peak of the live heap each GC found (runtime/metrics
   ` + "`/gc/heap/live:bytes`" + `), which is what the sync holds, without the garbage not yet collected. Large and
   medium are compared by what the sync adds: the peak above the heap the process held just before the sync (the
   harness holds more before the second tenant, after the read and chargeback measurements, than before the first).
4. **Reads**: 32 goroutines call for a fixed time (after a warm-up) over one gRPC connection, or over HTTP/1.1
   keep-alive connections to the gateway; each call carries a bearer token. The baseline is a bare grpc-go server in
   the same process (no interceptors, no database) returning the very responses seatledger returned. seatledger runs
   with its read cache as the server does by default (the same call asked again is answered from memory until
   the mirror changes). A second bare server makes the store reads seatledger's handler makes before returning the
   same responses: what reading the database on every call would cost (the diagnostic rows). The user asked
   about waits for a seat, so license-status gathers seats, waits and errors.
5. **Chargeback**: the primary tenant's first sync is dated a year back (the syncer's clock), so last month lies
   inside its history. ` + "`GetChargeback`" + ` for last month grouped by department over gRPC (fastest of the calls, each
   with a deadline), against an aggregate over that month's ` + "`allotment_daily`" + ` rows: computed (before each call
   the harness makes the database notify a change, which empties seatledger's read cache), and asked again (answered
   by the read cache). Before the calls the harness
   fills the chargeback ledger as the sync worker does after a run (closed days of the last 62 days, UTC; timed: "ledger
   fill"), so the month is read from the ledger's month sums. Then two more years of history
   are added before the first sync, straight into ` + "`assignment_versions`" + `: each month a tenth of the assignments
   appear under new ids as closed versions, as churn would leave them; the ledger is emptied and filled again (timed:
   the fill counts from the longer history), and the same month is asked again.
6. **Write proxy**: ` + "`CreateAssignment`" + ` over gRPC (the REST route maps to it one to one) for users who lack the SKU,
   alternating with direct ` + "`POST /admin/cloudLicensing/assignments`" + ` calls through the graph client for other users;
   medians. The proxy also resolves the assignee, checks seats, records an idempotency key and an audit event.
7. **Graph budget**: the sync run's own request count against the minimum: one request per 999 objects (at least one)
   for each collection listing, counted from the paging baseline.
8. **Value to callers**: seatledger's ` + "`GetLicenseStatus`" + ` against what a caller would have to ask Graph for the same
   answer: the user's assignments and usage rights, every allotment's waiting members (Graph has no per-user waiting
   listing) and the tenant's assignment errors, all requests in parallel.

Profiles: ` + "`go run ./cmd/bench -cpuprofile cpu.out -memprofile heap.out`" + ` then ` + "`go tool pprof`" + `.
Micro-benchmarks of the inner loops: ` + "`go test -run '^$' -bench . ./internal/graph ./internal/store`" + `
(compare runs with benchstat).
`
