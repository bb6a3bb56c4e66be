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
	"github.com/personio-entra/personio-entra/provisioning/entra/entratest"
	"github.com/personio-entra/personio-entra/provisioning/personio/personiotest"
	"github.com/personio-entra/personio-entra/rules"
)

// Ready is the JSON line printed on stdout once everything listens.
type Ready struct {
	PersonioURL          string `json:"personio_url"`
	PersonioClientID     string `json:"personio_client_id"`
	PersonioClientSecret string `json:"personio_client_secret"`
	CompanyID            string `json:"company_id"`
	People               int    `json:"people"`
	EntraAuthorityHost   string `json:"entra_authority_host"`
	GraphURL             string `json:"graph_url"`
	EntraTenantID        string `json:"entra_tenant_id"`
	EntraClientID        string `json:"entra_client_id"`
	EntraClientSecret    string `json:"entra_client_secret"`
	// CAFile is the Entra simulator's TLS certificate in PEM form: point
	// SSL_CERT_FILE at it in processes that talk to the simulator.
	CAFile     string            `json:"ca_file"`
	ControlURL string            `json:"control_url"`
	Groups     map[string]string `json:"groups"` // managed group name → object id
}

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

	pers := personiotest.New(personiotest.Options{Logger: log.With("component", "personio-simulator"),
		Latency: o.latency, AllowHTTPWebhooks: true})
	defer pers.Close()
	pers.SetCompany(company)
	ent := entratest.New(entratest.Options{Logger: log.With("component", "entra-simulator"),
		Latency: o.latency, ReplicationDelay: o.replication, WriteBudget: o.writeBudget, Domain: rs.Domain()})
	defer ent.Close()
	groups := addManagedGroups(ent, rs)

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
	ready := Ready{
		PersonioURL: personioURL, PersonioClientID: "sim-client-id", PersonioClientSecret: "sim-client-secret",
		CompanyID: company.CompanyID, People: len(company.Persons),
		EntraAuthorityHost: ent.AuthorityHost(), GraphURL: ent.GraphURL(),
		EntraTenantID: ent.TenantID(), EntraClientID: ent.ClientID(), EntraClientSecret: ent.ClientSecret(),
		CAFile: caFile, ControlURL: "http://" + ctlLn.Addr().String(), Groups: groups,
	}
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

// addManagedGroups creates the groups the rules manage, as stack.go does
// for the demo: security groups, and "Women" as a Microsoft 365 group
// (Graph cannot manage mail-enabled security groups,
// docs/graph-behaviour.md#groups-graph-cannot-write).
func addManagedGroups(ent *entratest.Server, rs *rules.Rules) map[string]string {
	out := map[string]string{}
	for _, key := range rs.ManagedGroups() {
		g := entratest.Group{DisplayName: key, SecurityEnabled: true, GroupTypes: []string{}}
		if key == "Women" {
			g = entratest.Group{DisplayName: key, MailEnabled: true, GroupTypes: []string{"Unified"},
				Mail: "women@" + rs.Domain(), MailNickname: "women"}
		}
		out[key] = ent.AddGroup(g)
	}
	return out
}
