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
	"sync"
	"time"

	"github.com/personio-entra/personio-entra/deploy"
	"github.com/personio-entra/personio-entra/provisioning/entra/entratest"
	"github.com/personio-entra/personio-entra/provisioning/personio/personiotest"
	"github.com/personio-entra/personio-entra/rules"
)

// stackOptions describe a complete local installation: embedded NATS, the
// Personio and Entra simulators and the product wired as `run` wires it.
type stackOptions struct {
	dataDir string
	listen  string // LISTEN_ADDR; "" picks a free loopback port
	metrics string // METRICS_ADDR; "" picks a free loopback port
	// listeners already bound on listen and metrics (the demo binds its
	// own to fall back to a free port); startStack binds the others. The
	// stack owns them from the call on, also when it fails.
	listeners    boundListeners
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

	// Notifications: NOTIFY_MAILBOX and the first retry delay.
	notifyMailbox string
	notifyRetry   time.Duration
	converged     bool // Entra starts as the rules ask, nothing owned (devstack.Options.Converged)
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

	listeners boundListeners
	cancel    context.CancelFunc
	// done is closed when the product has stopped, after serveErr is set:
	// any number of waiters may watch it, and Close never waits on a
	// value someone else took.
	done      chan struct{}
	serveErr  error
	closeQ    func()
	closeOnce sync.Once
	closeErr  error
}

func randomToken() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// stopped is closed once the product has stopped; err then tells why.
func (s *stack) stopped() <-chan struct{} { return s.done }

// err is what the product stopped with (nil while it runs or after a clean
// stop).
func (s *stack) err() error {
	select {
	case <-s.done:
		return s.serveErr
	default:
		return nil
	}
}

// listenLoopback binds addr, or a free loopback port when addr is "".
func listenLoopback(addr string) (net.Listener, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	return net.Listen("tcp", addr)
}

func (l boundListeners) close() {
	for _, ln := range []net.Listener{l.web, l.metrics} {
		if ln != nil {
			ln.Close() // already closed by a stopped server: harmless
		}
	}
}

// startStack starts everything and returns once the receiver listens. The
// first full sync runs in the background right away.
func startStack(ctx context.Context, o stackOptions) (*stack, error) {
	if o.logger == nil {
		o.logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	// Bind the addresses first: a busy port is reported before anything
	// else starts, and nobody can take the port between a check and the
	// product's own bind.
	ls := o.listeners
	ok := false
	defer func() {
		if !ok {
			ls.close()
		}
	}()
	var err error
	if ls.web == nil {
		if ls.web, err = listenLoopback(o.listen); err != nil {
			return nil, fmt.Errorf("webhook receiver and admin API: %w", err)
		}
	}
	if ls.metrics == nil {
		if ls.metrics, err = listenLoopback(o.metrics); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	o.listen, o.metrics = ls.web.Addr().String(), ls.metrics.Addr().String()
	if o.rules == nil {
		o.rules = deploy.RulesExample
	}
	rs, err := rules.LoadBytes("rules.yaml", o.rules)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	rulesFile := filepath.Join(o.dataDir, "rules.yaml")
	if err := os.WriteFile(rulesFile, o.rules, 0o600); err != nil {
		return nil, fmt.Errorf("write rules: %w", err)
	}

	sims, err := devstack.Start(devstack.Options{Logger: o.logger, Rules: rs, People: o.company,
		Latency: o.latency, Replication: o.replication, WriteBudget: o.writeBudget, WriteWindow: o.writeWindow, Seed: o.seed,
		Converged: o.converged})
	if err != nil {
		return nil, err
	}
	o.company = sims.Company
	s := &stack{webhookToken: randomToken(), adminToken: randomToken(), sims: sims,
		personio: sims.Personio, entra: sims.Entra, groups: sims.Groups, listeners: ls}
	ok = true // from here on s.Close releases everything

	s.cfg = Config{
		PersonioAPIURL: s.personio.URL(), PersonioClientID: devstack.PersonioClientID, PersonioClientSecret: devstack.PersonioClientSecret,
		WebhookTokens: []string{s.webhookToken}, PersonioCompanyID: o.company.CompanyID,
		EntraTenantID: s.entra.TenantID(), EntraClientID: s.entra.ClientID(), EntraClientSecret: s.entra.ClientSecret(),
		EntraCloud: "public", EntraAuthority: s.entra.AuthorityHost(), GraphAPIURL: s.entra.GraphURL(),
		DataDir: filepath.Join(o.dataDir, "nats"), Partitions: 32, Replicas: 1,
		RulesFile: rulesFile, ListenAddr: o.listen, AdminToken: s.adminToken, MetricsAddr: o.metrics,
		SyncInterval: o.syncInterval, DryRun: o.dryRun, GuardMaxChanges: o.guardMax, GuardMaxPercent: 0, GuardWindow: time.Hour, GuardMinSource: 50,
		LogFormat: "text", EntraLeaveDate: o.leaveDate, PersonioWriteEmail: o.writeBack,
		NotifyMailbox: o.notifyMailbox, notifyRetryBase: o.notifyRetry,
	}
	if err := s.cfg.Validate(role{receiver: true, worker: true}); err != nil {
		s.Close()
		return nil, fmt.Errorf("stack configuration: %w", err)
	}
	q, closeQ, err := openQueue(ctx, s.cfg, o.logger)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.closeQ = closeQ
	a, err := newApp(ctx, s.cfg, o.logger, q, appOptions{entraHTTP: s.entra.Client(), managerRetry: o.managerRetry, listeners: ls})
	if err != nil {
		s.Close()
		return nil, err
	}
	s.app = a
	s.webhookURL = "http://" + o.listen + "/webhooks/personio"
	s.adminURL = "http://" + o.listen + "/admin"
	runCtx, cancel := context.WithCancel(ctx)
	s.cancel, s.done = cancel, make(chan struct{})
	go func() {
		s.serveErr = a.serve(runCtx, role{receiver: true, worker: true})
		close(s.done)
	}()
	if err := waitListening(ctx, o.listen, s); err != nil {
		s.Close()
		return nil, err
	}
	if _, err := a.source.RegisterWebhook(ctx, s.webhookURL, s.webhookToken); err != nil {
		s.Close()
		return nil, fmt.Errorf("register the webhook with the Personio simulator: %w", err)
	}
	return s, nil
}

func waitListening(ctx context.Context, addr string, s *stack) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-s.stopped():
			return fmt.Errorf("stopped before listening: %w", s.err())
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

// Close stops the product, the queue and the simulators and returns what
// the product stopped with. It may be called more than once and from several
// goroutines, also after the product stopped on its own.
func (s *stack) Close() error {
	s.closeOnce.Do(func() {
		if s.cancel != nil {
			s.cancel()
			<-s.done
			s.closeErr = s.serveErr
		}
		s.listeners.close()
		if s.closeQ != nil {
			s.closeQ()
		}
		s.closeSimulators()
	})
	return s.closeErr
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
