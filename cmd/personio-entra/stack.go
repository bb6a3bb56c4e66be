//go:build !nosimulators

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/personio-entra/personio-entra/cmd/internal/devstack"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/personio-entra/personio-entra/deploy"
	"github.com/personio-entra/personio-entra/provisioning/entra/entratest"
	"github.com/personio-entra/personio-entra/provisioning/personio/personiotest"
	"github.com/personio-entra/personio-entra/rules"
)

// stackOptions describe a complete local installation: embedded NATS, the
// Personio and Entra simulators and the product wired as `run` wires it.
type stackOptions struct {
	dataDir      string
	listen       string // LISTEN_ADDR; "" picks a free loopback port
	metrics      string // METRICS_ADDR; "" picks a free loopback port
	latency      time.Duration
	replication  time.Duration
	syncInterval time.Duration
	guardMax     int
	rules        []byte // default deploy/rules.example.yaml
	company      *personiotest.Company
	seed         func(es *entratest.Server) // extra Entra objects before start
	logger       *slog.Logger
	dryRun       bool
	managerRetry time.Duration
	leaveDate    bool          // ENTRA_RECORD_LEAVE_DATE
	writeBack    bool          // PERSONIO_WRITE_BACK_EMAIL
	writeBudget  int           // Entra simulator write budget (its default when 0)
	writeWindow  time.Duration // and its window
}

// stack is a running local installation.
type stack struct {
	sims         *devstack.Simulators
	personio     *personiotest.Server
	entra        *entratest.Server
	cfg          Config
	app          *app
	webhookURL   string
	adminURL     string
	webhookToken string
	adminToken   string
	groups       map[string]string // managed group display name → object id

	cancel context.CancelFunc
	done   chan error
	closeQ func()
}

func randomToken() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startStack starts everything and returns once the receiver listens. The
// first full sync runs in the background right away.
func startStack(ctx context.Context, o stackOptions) (*stack, error) {
	if o.logger == nil {
		o.logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if o.rules == nil {
		o.rules = deploy.RulesExample
	}
	rs, err := rules.LoadBytes("rules.yaml", o.rules)
	if err != nil {
		return nil, err
	}
	for _, p := range []*string{&o.listen, &o.metrics} {
		if *p == "" {
			if *p, err = freeLoopbackAddr(); err != nil {
				return nil, err
			}
		}
	}
	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	rulesFile := filepath.Join(o.dataDir, "rules.yaml")
	if err := os.WriteFile(rulesFile, o.rules, 0o600); err != nil {
		return nil, fmt.Errorf("write rules: %w", err)
	}

	sims, err := devstack.Start(devstack.Options{Logger: o.logger, Rules: rs, People: o.company,
		Latency: o.latency, Replication: o.replication, WriteBudget: o.writeBudget, WriteWindow: o.writeWindow, Seed: o.seed})
	if err != nil {
		return nil, err
	}
	o.company = sims.Company
	s := &stack{webhookToken: randomToken(), adminToken: randomToken(), sims: sims,
		personio: sims.Personio, entra: sims.Entra, groups: sims.Groups}

	s.cfg = Config{
		PersonioAPIURL: s.personio.URL(), PersonioClientID: devstack.PersonioClientID, PersonioClientSecret: devstack.PersonioClientSecret,
		WebhookTokens: []string{s.webhookToken}, PersonioCompanyID: o.company.CompanyID,
		EntraTenantID: s.entra.TenantID(), EntraClientID: s.entra.ClientID(), EntraClientSecret: s.entra.ClientSecret(),
		EntraCloud: "public", EntraAuthority: s.entra.AuthorityHost(), GraphAPIURL: s.entra.GraphURL(),
		DataDir: filepath.Join(o.dataDir, "nats"), Partitions: 32, Replicas: 1,
		RulesFile: rulesFile, ListenAddr: o.listen, AdminToken: s.adminToken, MetricsAddr: o.metrics,
		SyncInterval: o.syncInterval, DryRun: o.dryRun, GuardMaxChanges: o.guardMax, GuardMaxPercent: 0, GuardWindow: time.Hour, GuardMinSource: 50,
		LogFormat: "text", EntraLeaveDate: o.leaveDate, PersonioWriteEmail: o.writeBack,
	}
	if err := s.cfg.Validate(role{receiver: true, worker: true}); err != nil {
		s.closeSimulators()
		return nil, fmt.Errorf("stack configuration: %w", err)
	}
	q, closeQ, err := openQueue(ctx, s.cfg, o.logger)
	if err != nil {
		s.closeSimulators()
		return nil, err
	}
	s.closeQ = closeQ
	a, err := newApp(ctx, s.cfg, o.logger, q, appOptions{entraHTTP: s.entra.Client(), managerRetry: o.managerRetry})
	if err != nil {
		closeQ()
		s.closeSimulators()
		return nil, err
	}
	s.app = a
	s.webhookURL = "http://" + o.listen + "/webhooks/personio"
	s.adminURL = "http://" + o.listen + "/admin"
	runCtx, cancel := context.WithCancel(ctx)
	s.cancel, s.done = cancel, make(chan error, 1)
	go func() { s.done <- a.serve(runCtx, role{receiver: true, worker: true}) }()
	if err := waitListening(ctx, o.listen, s.done); err != nil {
		s.Close()
		return nil, err
	}
	if _, err := a.source.RegisterWebhook(ctx, s.webhookURL, s.webhookToken); err != nil {
		s.Close()
		return nil, fmt.Errorf("register the webhook with the Personio simulator: %w", err)
	}
	return s, nil
}

func waitListening(ctx context.Context, addr string, done <-chan error) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		select {
		case err := <-done:
			return fmt.Errorf("stopped before listening: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return errors.New("receiver did not start listening within 15s")
}

func (s *stack) closeSimulators() {
	if s.sims != nil {
		s.sims.Close()
	}
}

// Close stops the product, the queue and the simulators.
func (s *stack) Close() error {
	var err error
	if s.cancel != nil {
		s.cancel()
		err = <-s.done
	}
	if s.closeQ != nil {
		s.closeQ()
	}
	s.closeSimulators()
	return err
}

// userByEmployeeID returns the simulator's user that carries the id.
func (s *stack) userByEmployeeID(id string) (entratest.User, bool) {
	for _, u := range s.entra.Users() {
		if u.EmployeeID == id && !u.Deleted {
			return u, true
		}
	}
	return entratest.User{}, false
}
