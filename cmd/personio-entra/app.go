package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/personio-entra/personio-entra/queue/work"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/personio-entra/personio-entra/handlers"
	"github.com/personio-entra/personio-entra/handlers/console"
	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/entra"
	"github.com/personio-entra/personio-entra/provisioning/personio"
	"github.com/personio-entra/personio-entra/queue"
	"github.com/personio-entra/personio-entra/rules"
)

// app is the wired product: rules, the Personio and Entra clients, the
// engine and, when a queue is given, the full sync.
type app struct {
	cfg    Config
	log    *slog.Logger
	rules  *rules.Rules
	source *personio.Client
	dir    *entra.Directory
	engine *provisioning.Engine
	q      *queue.Queue         // nil for commands that only read (plan, check)
	syncer *provisioning.Syncer // nil without a queue
	state  provisioning.KV      // the durable state bucket; nil without a queue
	// console is the web console under /ui/ (nil without ADMIN_TOKEN).
	console *console.Console
	// listeners already bound by the caller (the demo); serve binds
	// cfg.ListenAddr and cfg.MetricsAddr itself for those left nil.
	listeners boundListeners
}

type boundListeners struct{ web, metrics net.Listener }

// appOptions are wiring overrides for the demo and the tests.
type appOptions struct {
	entraHTTP    *http.Client // trusts the Entra simulator's certificate
	now          func() time.Time
	managerRetry time.Duration // how soon a report whose manager has no account yet is retried
	listeners    boundListeners
}

// newApp loads the rules and builds the clients and the engine. q may be nil.
func newApp(ctx context.Context, cfg Config, log *slog.Logger, q *queue.Queue, opts appOptions) (*app, error) {
	r, err := rules.Load(cfg.RulesFile)
	if err != nil {
		return nil, err
	}
	src, err := personio.New(personio.Config{
		BaseURL: cfg.PersonioAPIURL, ClientID: cfg.PersonioClientID, ClientSecret: cfg.PersonioClientSecret,
		Logger: log.With("component", "personio"),
	})
	if err != nil {
		return nil, fmt.Errorf("personio client: %w", err)
	}
	dir, err := entra.New(ctx, entra.Config{
		TenantID: cfg.EntraTenantID, ClientID: cfg.EntraClientID, ClientSecret: cfg.EntraClientSecret,
		CertificatePath: cfg.EntraClientCert, CertificatePassword: cfg.EntraCertPassword,
		RoleAssignableGroups: cfg.EntraRoleGroups, LeaveDate: cfg.EntraLeaveDate, Licenses: len(r.ManagedLicenses()) > 0,
		Cloud: cfg.EntraCloud, AuthorityHost: cfg.EntraAuthority,
		GraphURL: cfg.GraphAPIURL, HTTPClient: opts.entraHTTP, Logger: log.With("component", "entra"),
	})
	if err != nil {
		return nil, fmt.Errorf("entra client: %w", err)
	}
	ecfg := provisioning.Config{
		Source: src, Directory: dir,
		Protected: cfg.ProtectedAccounts, DryRun: cfg.DryRun, Logger: log.With("component", "engine"),
		Now: opts.now, ManagerRetry: opts.managerRetry, RecordLeaveDate: cfg.EntraLeaveDate,
		CreatedSettle: time.Second,
	}
	ecfg.ApplyRules(r)
	if cfg.PersonioWriteEmail {
		ecfg.WriteBackEmail = src.UpdatePersonEmail
	}
	ecfg.Guard = provisioning.GuardSettings{MaxCount: cfg.GuardMaxChanges, MaxPercent: cfg.GuardMaxPercent,
		Window: cfg.GuardWindow, MinSourcePercent: cfg.GuardMinSource}
	if err := wireNotify(&ecfg, cfg, r, dir, q, log); err != nil {
		return nil, err
	}
	var state provisioning.KV
	if q != nil { // a nil *queue.Queue must not become a non-nil interface
		ecfg.Scheduler, ecfg.Audit, ecfg.Enqueuer = q, q, q
		st, err := q.State(ctx)
		if err != nil {
			return nil, err
		}
		state, ecfg.State = st, st
	}
	eng, err := provisioning.New(ecfg)
	if err != nil {
		return nil, err
	}
	a := &app{cfg: cfg, log: log, rules: r, source: src, dir: dir, engine: eng, q: q, state: state, listeners: opts.listeners}
	if q != nil {
		host, _ := os.Hostname()
		a.syncer = provisioning.NewSyncer(provisioning.SyncConfig{
			Engine: eng, Queue: q, State: state, Holder: fmt.Sprintf("%s/%d", host, os.Getpid()),
		})
	}
	if a.console, err = newConsole(a); err != nil {
		return nil, err
	}
	return a, nil
}

// adminBackend serves the admin API from the app. Every error it returns
// is typed for the status (adminError).
type adminBackend struct{ a *app }

var _ handlers.AdminBackend = adminBackend{}

// adminError types an error for the admin API: an unknown approval or dead
// letter is 404; a request that cannot succeed as asked (a terminal error)
// stays 500; anything else means Personio, Graph or NATS failed: 503.
func adminError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, provisioning.ErrNoApproval), errors.Is(err, queue.ErrNoDeadLetter):
		return fmt.Errorf("%w: %w", handlers.ErrNotFound, err)
	case work.IsTerminal(err), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return err
	}
	return fmt.Errorf("%w: %w", handlers.ErrUnavailable, err)
}

func (b adminBackend) Plan(ctx context.Context, personID string) (any, error) {
	p, err := b.a.engine.PlanFor(ctx, personID)
	return p, adminError(err)
}

func (b adminBackend) PlanAll(ctx context.Context) (any, error) {
	plans, err := b.a.engine.Drift(ctx, nil)
	if plans == nil {
		plans = []provisioning.Plan{}
	}
	return plans, adminError(err)
}

func (b adminBackend) Enqueue(ctx context.Context, personID, reason string) error {
	return adminError(b.a.q.Enqueue(ctx, personID, reason))
}

func (b adminBackend) FullSync(ctx context.Context) (any, error) {
	rep, err := b.a.runSync(ctx, provisioning.SyncOptions{Complete: true}, "admin API")
	return rep, adminError(err)
}

func (b adminBackend) Audit(ctx context.Context, personID string, limit int) ([]json.RawMessage, error) {
	recs, err := b.a.q.ReadAudit(ctx, personID, limit)
	out := make([]json.RawMessage, len(recs))
	for i, r := range recs {
		out[i] = r
	}
	return out, adminError(err)
}

func (b adminBackend) Approvals(ctx context.Context) (any, error) {
	aps, err := b.a.syncer.Approvals(ctx)
	if aps == nil {
		aps = []provisioning.Approval{}
	}
	return aps, adminError(err)
}

func (b adminBackend) Approve(ctx context.Context, id string) (any, error) {
	ap, err := b.a.syncer.Approve(ctx, id)
	return ap, adminError(err)
}

func (b adminBackend) DeadLetters(ctx context.Context) (any, error) {
	dl, err := b.a.q.DeadLetters(ctx)
	if dl == nil {
		dl = []queue.DeadLetter{}
	}
	return dl, adminError(err)
}

func (b adminBackend) Redrive(ctx context.Context, seq uint64) error {
	return adminError(b.a.q.Redrive(ctx, seq))
}

func (b adminBackend) PurgeDeadLetter(ctx context.Context, seq uint64) error {
	return adminError(b.a.q.PurgeDeadLetter(ctx, seq))
}
