package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/seatledger/seatledger/internal/auth"
	"github.com/seatledger/seatledger/internal/graphsim"
)

// simChildEnv, when set in the environment, makes the bench binary a
// simulator process: its value is the JSON simSpec to serve.
const simChildEnv = "SEATLEDGER_BENCH_SIM"

// benchAudience is the audience of the caller tokens the benchmark
// presents to seatledger.
const benchAudience = "api://seatledger"

// tenantSpec names a generated tenant: the generator's options, and the
// number of assignments to keep (0 keeps all).
type tenantSpec struct {
	Name        string
	Gen         graphsim.GenerateOptions
	Assignments int
}

// simSpec is what a simulator child process serves.
type simSpec struct {
	Tenant   tenantSpec
	Latency  time.Duration
	PageSize int
}

// simHello is what a simulator child reports once it serves: how to reach
// it, and a caller token with every role for seatledger's API.
type simHello struct {
	Info  graphsim.Info
	Token string
	Error string
}

// build generates the tenant. Generate makes users × AssignmentsPerUser
// regular assignments and then the waiting-room and error assignments;
// trimming drops regular ones so that the total is s.Assignments.
func (s tenantSpec) build() graphsim.Tenant {
	t := graphsim.Generate(s.Gen)
	if s.Assignments > 0 && s.Assignments < len(t.Assignments) {
		regular := s.Gen.Users * max(s.Gen.AssignmentsPerUser, 1)
		tail := t.Assignments[regular:]
		keep := max(s.Assignments-len(tail), 0)
		t.Assignments = append(t.Assignments[:keep:keep], tail...)
	}
	return t
}

// simProcess is a simulator running in a child process, so that its
// in-memory tenant does not count in the heap the benchmark measures.
type simProcess struct {
	simHello
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

// startSim starts a simulator child process serving spec.
func startSim(spec simSpec) (*simProcess, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("start simulator: %w", err)
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("start simulator: %w", err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), simChildEnv+"="+string(b))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("start simulator: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start simulator: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start simulator: %w", err)
	}
	p := &simProcess{cmd: cmd, stdin: stdin}
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &p.simHello)
	}
	if err == nil && p.Error != "" {
		err = fmt.Errorf("%s", p.Error)
	}
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("start simulator %s: %w", spec.Tenant.Name, err)
	}
	return p, nil
}

// Close stops the child: closing its stdin tells it to exit.
func (p *simProcess) Close() {
	p.stdin.Close()
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// simChild is main for a simulator child process: serve the spec from
// the environment until stdin closes.
func simChild(raw string) int {
	out := json.NewEncoder(os.Stdout)
	fail := func(err error) int {
		out.Encode(simHello{Error: err.Error()})
		return 1
	}
	var spec simSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		return fail(fmt.Errorf("decode spec: %w", err))
	}
	t := spec.Tenant.build()
	sim, err := graphsim.New(graphsim.Options{Tenant: &t, PageSize: spec.PageSize, Latency: spec.Latency})
	if err != nil {
		return fail(err)
	}
	t = graphsim.Tenant{} // the simulator holds its own copy
	info, err := sim.Start("127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	defer sim.Close()
	roles := make([]string, 0, len(auth.Roles))
	for _, r := range auth.Roles {
		roles = append(roles, string(r))
	}
	token, err := sim.MintCallerToken(graphsim.CallerToken{Audience: benchAudience, Caller: "bench", Roles: roles, Lifetime: 24 * time.Hour})
	if err != nil {
		return fail(err)
	}
	if err := out.Encode(simHello{Info: info, Token: token}); err != nil {
		return 1
	}
	io.Copy(io.Discard, os.Stdin) // until the parent closes it (or dies)
	return 0
}
