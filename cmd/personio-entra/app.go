package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/personio-entra/personio-entra/handlers"
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
}

// appOptions are wiring overrides for the demo and the tests.
type appOptions struct {
	entraHTTP    *http.Client // trusts the Entra simulator's certificate
	now          func() time.Time
	managerRetry time.Duration // how soon a report whose manager has no account yet is retried
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
		RoleAssignableGroups: cfg.EntraRoleGroups, LeaveDate: cfg.EntraLeaveDate,
		Cloud: cfg.EntraCloud, AuthorityHost: cfg.EntraAuthority,
		GraphURL: cfg.GraphAPIURL, HTTPClient: opts.entraHTTP, Logger: log.With("component", "entra"),
	})
	if err != nil {
		return nil, fmt.Errorf("entra client: %w", err)
	}
	lc := r.Lifecycle()
	var keys []provisioning.MatchKey
	for _, k := range r.MatchKeys() {
		keys = append(keys, provisioning.MatchKey{Property: k.Property, Field: k.Field})
	}
	ecfg := provisioning.Config{
		Source: src, Directory: dir, Rules: r,
		ManagedGroups: r.ManagedGroups(), ManageManager: r.ManagesManager(), MatchKeys: keys,
		OnDeleted: provisioning.LeaverActions{RevokeSessions: lc.Leaver.RevokeSessions, RemoveMemberships: lc.Leaver.RemoveMemberships},
		Protected: cfg.ProtectedAccounts, DryRun: cfg.DryRun, Logger: log.With("component", "engine"),
		Now: opts.now, ManagerRetry: opts.managerRetry, RecordLeaveDate: cfg.EntraLeaveDate,
		RehireWithin: time.Duration(lc.RehireWithinDays) * 24 * time.Hour,
	}
	if cfg.PersonioWriteEmail {
		ecfg.WriteBackEmail = src.UpdatePersonEmail
	}
	ecfg.Guard = provisioning.GuardSettings{MaxCount: cfg.GuardMaxChanges, MaxPercent: cfg.GuardMaxPercent,
		Window: cfg.GuardWindow, MinSourcePercent: cfg.GuardMinSource}
	var state provisioning.KV
	if q != nil { // a nil *queue.Queue must not become a non-nil interface
		ecfg.Scheduler, ecfg.Audit = q, q
		kv, err := q.KeyValue(ctx, "personio_entra_state")
		if err != nil {
			return nil, err
		}
		state = kvState{kv}
		ecfg.State = state
	}
	eng, err := provisioning.New(ecfg)
	if err != nil {
		return nil, err
	}
	a := &app{cfg: cfg, log: log, rules: r, source: src, dir: dir, engine: eng, q: q}
	if q != nil {
		host, _ := os.Hostname()
		a.syncer = provisioning.NewSyncer(provisioning.SyncConfig{
			Engine: eng, Queue: q, State: state, Holder: fmt.Sprintf("%s/%d", host, os.Getpid()),
		})
	}
	return a, nil
}

// handler is the queue's work handler: one reconcile per message.
func (a *app) handler() queue.Handler {
	return func(ctx context.Context, personID string) error {
		_, err := a.engine.Reconcile(ctx, personID, queue.ReasonFrom(ctx))
		if err != nil && provisioning.IsPermanent(err) {
			return queue.Permanent(err)
		}
		return err
	}
}

// resolver turns an employment id into its person id for employment
// webhooks that name no person.
func (a *app) resolver() queue.Resolver {
	return func(ctx context.Context, employmentID string) (string, error) {
		id, err := a.source.PersonIDForEmployment(ctx, employmentID)
		if errors.Is(err, personio.ErrNotFound) {
			return "", queue.Permanent(err)
		}
		return id, err
	}
}

// syncLoop runs the full sync at start-up and then every SYNC_INTERVAL
// (0 turns the periodic sync off). The lease makes sure only one process
// syncs at a time.
func (a *app) syncLoop(ctx context.Context) {
	if a.cfg.SyncInterval <= 0 || a.syncer == nil {
		return
	}
	run := func() {
		if _, err := a.syncer.Run(ctx, false, false); err != nil && ctx.Err() == nil {
			a.log.Error("full sync failed; the next one runs at the next interval", "err", err)
		}
	}
	run()
	t := time.NewTicker(a.cfg.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			run()
		}
	}
}

// adminBackend serves the admin API from the app.
type adminBackend struct{ a *app }

var _ handlers.AdminBackend = adminBackend{}

func (b adminBackend) Plan(ctx context.Context, personID string) (any, error) {
	return b.a.engine.PlanFor(ctx, personID)
}

func (b adminBackend) PlanAll(ctx context.Context) (any, error) {
	plans, err := b.a.engine.Drift(ctx, nil)
	if plans == nil {
		plans = []provisioning.Plan{}
	}
	return plans, err
}

func (b adminBackend) Enqueue(ctx context.Context, personID, reason string) error {
	return b.a.q.Enqueue(ctx, personID, reason)
}

func (b adminBackend) FullSync(ctx context.Context) (any, error) {
	return b.a.syncer.Run(ctx, true, false)
}

func (b adminBackend) Audit(ctx context.Context, personID string, limit int) ([]json.RawMessage, error) {
	recs, err := b.a.q.ReadAudit(ctx, personID, limit)
	out := make([]json.RawMessage, len(recs))
	for i, r := range recs {
		out[i] = r
	}
	return out, err
}

func (b adminBackend) Approvals(ctx context.Context) (any, error) {
	aps, err := b.a.syncer.Approvals(ctx)
	if aps == nil {
		aps = []provisioning.Approval{}
	}
	return aps, err
}

func (b adminBackend) Approve(ctx context.Context, id string) (any, error) {
	ap, err := b.a.syncer.Approve(ctx, id)
	if errors.Is(err, provisioning.ErrNoApproval) {
		return nil, fmt.Errorf("%w: %v", handlers.ErrNotFound, err)
	}
	return ap, err
}

func (b adminBackend) DeadLetters(ctx context.Context) (any, error) {
	dl, err := b.a.q.DeadLetters(ctx)
	if dl == nil {
		dl = []queue.DeadLetter{}
	}
	return dl, err
}

func (b adminBackend) Redrive(ctx context.Context, seq uint64) error {
	return b.a.q.Redrive(ctx, seq)
}

func (b adminBackend) PurgeDeadLetter(ctx context.Context, seq uint64) error {
	return b.a.q.PurgeDeadLetter(ctx, seq)
}
