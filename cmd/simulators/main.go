// Command simulators runs the Personio and Entra simulators in one process,
// on loopback only, for multi-process tests and local experiments: a
// company is loaded (generated with --people N, or the 54-person sample),
// and a control API changes persons, injects faults and dumps state.
//
// When ready it prints one JSON line on stdout with every URL and the
// credentials the simulators accept, then serves until SIGINT or SIGTERM.
//
//	go run ./cmd/simulators --people 1000 --dir /tmp/sims
//
// Control API (JSON, loopback, see controlRoutes):
//
//	GET    /info                      the ready line again
//	GET    /entra/state               users and groups (entratest.Dump)
//	GET    /entra/requests            Graph request counters
//	GET    /personio/requests         Personio request counters (API and token)
//	PUT    /entra/faults              {"throttle_rate":0.3,"server_error_rate":0.05,"retry_after":"1s"}
//	PUT    /personio/unavailable      {"for":"60s"}: Personio answers 503 for that long
//	GET    /personio/persons          every person
//	PUT    /personio/persons/{id}     create or replace a person (fires webhooks)
//	DELETE /personio/persons/{id}     delete a person (fires webhooks)
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/personio-entra/personio-entra/cmd/internal/devstack"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/personio-entra/personio-entra/deploy"
	"github.com/personio-entra/personio-entra/provisioning/personio/personiotest"
	"github.com/personio-entra/personio-entra/rules"
)

// Ready is the JSON line printed on stdout once everything listens.
type Ready = devstack.Ready

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "simulators: %v\n", err)
		os.Exit(1)
	}
}

type options struct {
	personioAddr string
	controlAddr  string
	dir          string
	people       int
	rulesFile    string
	latency      time.Duration
	replication  time.Duration
	writeBudget  int
	converged    bool
	logLevel     string
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("simulators", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.personioAddr, "personio-addr", "127.0.0.1:0", "loopback address of the Personio API (port 0 picks a free one)")
	fs.StringVar(&o.controlAddr, "control-addr", "127.0.0.1:0", "loopback address of the control API")
	fs.StringVar(&o.dir, "dir", "", "directory for the Entra CA certificate file (default: a new temporary directory)")
	fs.IntVar(&o.people, "people", 0, "generate a company of N people (0 loads the 54-person sample company)")
	fs.StringVar(&o.rulesFile, "rules", "", "rules file naming the UPN domain and the managed groups (default deploy/rules.example.yaml)")
	fs.DurationVar(&o.latency, "latency", 0, "latency added to every Personio and Graph request")
	fs.DurationVar(&o.replication, "replication-delay", 0, "Graph replication delay after a create")
	fs.IntVar(&o.writeBudget, "write-budget", 0, "Graph writes per 150 s before 429 (0: Graph's 3000)")
	fs.BoolVar(&o.converged, "converged", false, "start Entra with the converged tenant: the account the rules ask for, its manager and managed groups for everyone in scope (not yet owned)")
	fs.StringVar(&o.logLevel, "log-level", "warn", "log level on stderr (debug, info, warn, error)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.people < 0 || o.people > 200_000 {
		return o, fmt.Errorf("--people %d: want 0 to 200000", o.people)
	}
	for name, a := range map[string]string{"--personio-addr": o.personioAddr, "--control-addr": o.controlAddr} {
		if err := requireLoopback(a); err != nil {
			return o, fmt.Errorf("%s: %w", name, err)
		}
	}
	return o, nil
}

// requireLoopback refuses listen addresses other than 127.0.0.1/::1/localhost.
func requireLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q: the simulators listen on loopback addresses only", addr)
	}
	return nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: %w", o.logLevel, err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))

	ruleBytes := deploy.RulesExample
	if o.rulesFile != "" {
		if ruleBytes, err = os.ReadFile(o.rulesFile); err != nil {
			return fmt.Errorf("read rules: %w", err)
		}
	}
	rs, err := rules.LoadBytes("rules.yaml", ruleBytes)
	if err != nil {
		return fmt.Errorf("load rules: %w", err)
	}
	var company *personiotest.Company
	if o.people > 0 {
		company = personiotest.GenerateCompany(o.people)
	} else if company, err = personiotest.LoadSampleCompany(time.Now()); err != nil {
		return fmt.Errorf("load the sample company: %w", err)
	}
	if o.dir == "" {
		if o.dir, err = os.MkdirTemp("", "personio-entra-simulators-"); err != nil {
			return fmt.Errorf("temporary directory: %w", err)
		}
		defer os.RemoveAll(o.dir)
	}

	sims, err := devstack.Start(devstack.Options{Logger: log, Rules: rs, People: company,
		Latency: o.latency, Replication: o.replication, WriteBudget: o.writeBudget, Converged: o.converged})
	if err != nil {
		return err
	}
	defer sims.Close()
	pers, ent := sims.Personio, sims.Entra

	caFile := filepath.Join(o.dir, "entra-ca.pem")
	if err := os.WriteFile(caFile, ent.CertificatePEM(), 0o600); err != nil {
		return fmt.Errorf("write the Entra CA certificate: %w", err)
	}

	gate := newUnavailableGate()
	proxyLn, err := net.Listen("tcp", o.personioAddr)
	if err != nil {
		return fmt.Errorf("personio listener on %s: %w", o.personioAddr, err)
	}
	personioURL := "http://" + proxyLn.Addr().String()
	proxy, err := newPersonioFront(pers.URL(), personioURL, gate, log)
	if err != nil {
		proxyLn.Close()
		return err
	}
	ctlLn, err := net.Listen("tcp", o.controlAddr)
	if err != nil {
		proxyLn.Close()
		return fmt.Errorf("control listener on %s: %w", o.controlAddr, err)
	}
	ready := sims.Ready(personioURL, "http://"+ctlLn.Addr().String(), caFile)
	ctl := &control{personio: pers, entra: ent, gate: gate, ready: ready, log: log}

	servers := []*http.Server{
		{Handler: proxy, ReadHeaderTimeout: 5 * time.Second},
		{Handler: ctl.routes(), ReadHeaderTimeout: 5 * time.Second},
	}
	errc := make(chan error, 2)
	go func() { errc <- servers[0].Serve(proxyLn) }()
	go func() { errc <- servers[1].Serve(ctlLn) }()

	line, err := json.Marshal(ready)
	if err != nil {
		return fmt.Errorf("encode the ready line: %w", err)
	}
	if _, err := fmt.Fprintln(stdout, string(line)); err != nil {
		return fmt.Errorf("write the ready line: %w", err)
	}
	log.Info("simulators ready", slog.String("personio", personioURL), slog.String("graph", ent.GraphURL()),
		slog.String("control", ready.ControlURL), slog.Int("people", ready.People))

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range servers {
		_ = s.Shutdown(sctx)
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", serveErr)
	}
	return nil
}
