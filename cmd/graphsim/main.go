// Command graphsim serves the Graph simulator over HTTPS: the Cloud
// Licensing slice of Microsoft Graph beta under /beta, a fake Microsoft
// Entra authority beside it and an admin API under /_sim/ (see
// docs/graph-simulator.md). The tenant is the demo tenant, a scenario
// file, or generated from a seed and sizes.
//
// Usage:
//
//	graphsim [-addr 127.0.0.1:8443] [-page-size N] [-hostname NAME] [-ca-file PATH]
//	         [-scenario FILE | -generate [-seed N] [-users N] [-allotments N]
//	          [-assignments-per-user N] [-groups N] [-group-size N] [-devices N]
//	          [-waiting-members N] [-assignment-errors N]]
//	         [-faults FILE] [-latency DURATION]
//
// When it is ready it prints exactly one JSON line on stdout, with the keys
// graph_url, authority_url, tenant_id, client_id, client_secret and ca_file
// (a PEM file of the CA to trust, removed on exit), then serves until
// SIGINT or SIGTERM. Logs go to stderr.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/seatledger/seatledger/internal/graphsim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		// -help printed the flags; that is a success.
	case err != nil:
		fmt.Fprintf(os.Stderr, "graphsim: %v\n", err)
		os.Exit(1)
	}
}

// readyLine is the one line printed on stdout once the simulator serves.
type readyLine struct {
	GraphURL     string `json:"graph_url"`
	AuthorityURL string `json:"authority_url"`
	TenantID     string `json:"tenant_id"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	CAFile       string `json:"ca_file"`
}

// run is main without process globals: it serves until ctx is done.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("graphsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8443", "address to serve HTTPS on (port 0 picks a free one)")
	pageSize := fs.Int("page-size", 0, "page size of collections when a request has no $top (0 means 100, at most 999)")
	hostname := fs.String("hostname", "", "extra DNS name for the certificate, also used in the printed URLs (e.g. graphsim in a container network)")
	caFile := fs.String("ca-file", "", "write the CA's PEM file here instead of a temporary directory (removed on exit)")
	stateDir := fs.String("state-dir", "", "keep the simulator here across restarts: tenant, keys, CA (ca.pem, kept on exit) and port; a saved state wins over -scenario and -generate")
	scenario := fs.String("scenario", "", "load the tenant from this JSON scenario file")
	generate := fs.Bool("generate", false, "generate the tenant from -seed and the sizes below")
	var gen graphsim.GenerateOptions
	fs.Int64Var(&gen.Seed, "seed", 1, "seed of -generate (same seed and sizes, same tenant)")
	fs.IntVar(&gen.Users, "users", 100, "users of -generate")
	fs.IntVar(&gen.Allotments, "allotments", 4, "regular allotments of -generate")
	fs.IntVar(&gen.AssignmentsPerUser, "assignments-per-user", 1, "direct assignments per user of -generate")
	fs.IntVar(&gen.Groups, "groups", 0, "unlicensed groups of -generate")
	fs.IntVar(&gen.GroupSize, "group-size", 25, "members per group of -generate")
	fs.IntVar(&gen.Devices, "devices", 0, "devices of -generate")
	fs.IntVar(&gen.WaitingMembers, "waiting-members", 0, "waiting members of -generate (a full licensed group)")
	fs.IntVar(&gen.AssignmentErrors, "assignment-errors", 0, "assignment errors of -generate (MissingDependency)")
	faultsFile := fs.String("faults", "", "JSON file with a list of fault rules in force from the start")
	latency := fs.Duration("latency", 0, "latency added to every Graph request, e.g. 50ms")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *scenario != "" && *generate {
		return errors.New("-scenario and -generate exclude each other")
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))

	opts := graphsim.Options{PageSize: *pageSize, Logger: log, CAFile: *caFile, Latency: *latency, StateDir: *stateDir}
	switch {
	case *scenario != "":
		t, err := loadScenario(*scenario)
		if err != nil {
			return err
		}
		opts.Tenant = &t
	case *generate:
		t := graphsim.Generate(gen)
		opts.Tenant = &t
	}
	if *faultsFile != "" {
		b, err := os.ReadFile(*faultsFile)
		if err != nil {
			return fmt.Errorf("read faults: %w", err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&opts.Faults); err != nil {
			return fmt.Errorf("decode faults %s: %w", *faultsFile, err)
		}
	}
	if *hostname != "" {
		opts.Hostnames = []string{*hostname}
	}
	sim, err := graphsim.New(opts)
	if err != nil {
		return err
	}
	info, err := sim.Start(*addr)
	if err != nil {
		return err
	}
	defer sim.Close() // a second Close is harmless; this one covers the error paths
	line, err := json.Marshal(readyLine{
		GraphURL:     info.GraphURL,
		AuthorityURL: info.AuthorityURL,
		TenantID:     info.TenantID,
		ClientID:     info.ClientID,
		ClientSecret: info.ClientSecret,
		CAFile:       info.CAFile,
	})
	if err != nil {
		return fmt.Errorf("encode ready line: %w", err)
	}
	if _, err := fmt.Fprintf(stdout, "%s\n", line); err != nil {
		return fmt.Errorf("write ready line: %w", err)
	}
	log.Info("graphsim ready", "graph_url", info.GraphURL, "authority_url", info.AuthorityURL, "tenant_id", info.TenantID)

	<-ctx.Done()
	log.Info("graphsim stopping")
	if err := sim.Close(); err != nil {
		return fmt.Errorf("stop simulator: %w", err)
	}
	return nil
}

// loadScenario reads a scenario file.
func loadScenario(path string) (graphsim.Tenant, error) {
	f, err := os.Open(path)
	if err != nil {
		return graphsim.Tenant{}, fmt.Errorf("open scenario: %w", err)
	}
	defer f.Close()
	t, err := graphsim.LoadScenario(f)
	if err != nil {
		return graphsim.Tenant{}, fmt.Errorf("scenario %s: %w", path, err)
	}
	return t, nil
}
