package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/personio-entra/personio-entra/handlers"
	"github.com/personio-entra/personio-entra/handlers/console"
	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"github.com/personio-entra/personio-entra/provisioning/state"
	"github.com/personio-entra/personio-entra/queue"
	"github.com/personio-entra/personio-entra/rules"
)

// newConsole builds the web console for the app (nil without ADMIN_TOKEN or
// without a queue: the console reads approvals, dead letters and the audit
// from it).
func newConsole(a *app) (*console.Console, error) {
	if a.cfg.AdminToken == "" || a.q == nil {
		return nil, nil
	}
	st, ok := a.state.(console.Store) // sessions live in the replicated state bucket
	if !ok {
		return nil, errors.New("console: the state bucket is not open")
	}
	return console.New(console.Config{
		AdminToken: a.cfg.AdminToken, Backend: &consoleBackend{a: a}, Store: st,
		Logger: a.log.With("component", "console"), SecureCookie: a.cfg.ConsoleSecureCookie,
	})
}

// consoleBackend serves the console from the app (wiring only).
type consoleBackend struct {
	a *app

	mu       sync.Mutex
	people   []model.Employee // Personio's list, for search
	peopleAt time.Time
}

var _ console.Backend = (*consoleBackend)(nil)

func (b *consoleBackend) Backlog(ctx context.Context) (int, error) {
	n, err := b.a.q.Backlog(ctx)
	return n, adminError(err)
}

func toConsoleDeadLetter(d queue.DeadLetter) console.DeadLetter {
	return console.DeadLetter{Sequence: d.Sequence, Time: d.Time, Reason: d.Reason, Error: d.Error, Attempts: d.Attempts,
		PersonID: d.PersonID, EmploymentID: d.EmploymentID, WorkReason: d.WorkReason, Subject: d.OriginalSubject, Data: string(d.Data)}
}

func (b *consoleBackend) DeadLetters(ctx context.Context) ([]console.DeadLetter, error) {
	dl, err := b.a.q.DeadLetters(ctx)
	out := make([]console.DeadLetter, len(dl))
	for i, d := range dl {
		out[i] = toConsoleDeadLetter(d)
	}
	return out, adminError(err)
}

func (b *consoleBackend) DeadLetter(ctx context.Context, seq uint64) (console.DeadLetter, error) {
	d, err := b.a.q.DeadLetter(ctx, seq)
	return toConsoleDeadLetter(d), adminError(err)
}

func (b *consoleBackend) Redrive(ctx context.Context, seq uint64) error {
	return adminError(b.a.q.Redrive(ctx, seq))
}

func (b *consoleBackend) PurgeDeadLetter(ctx context.Context, seq uint64) error {
	return adminError(b.a.q.PurgeDeadLetter(ctx, seq))
}

func (b *consoleBackend) Approvals(ctx context.Context) ([]provisioning.Approval, error) {
	aps, err := b.a.syncer.Approvals(ctx)
	return aps, adminError(err)
}

func (b *consoleBackend) Approve(ctx context.Context, id string) (provisioning.Approval, error) {
	ap, err := b.a.syncer.Approve(ctx, id)
	return ap, adminError(err)
}

func (b *consoleBackend) LastSyncs(ctx context.Context) ([]console.SyncOutcome, error) {
	out, err := readSyncOutcomes(ctx, b.a.state)
	return out, adminError(err)
}

func (b *consoleBackend) GraphThrottledUntil() time.Time { return b.a.dir.ThrottledUntil() }

func (b *consoleBackend) Enqueue(ctx context.Context, personID string) error {
	return adminError(b.a.q.Enqueue(ctx, personID, "console"))
}

func (b *consoleBackend) Preview(ctx context.Context, personID string) (provisioning.Plan, error) {
	p, err := b.a.engine.PlanFor(ctx, personID)
	return p, personError(personID, err)
}

// personError: a person Personio does not know is 404.
func personError(personID string, err error) error {
	if errors.Is(err, model.ErrPersonNotFound) {
		return fmt.Errorf("%w: Personio has no person %s", handlers.ErrNotFound, personID)
	}
	return adminError(err)
}

// searchCacheTTL is how long the console reuses Personio's list of people
// for searches: a search types several queries in a row, and reading a
// large company takes a while.
const searchCacheTTL = 2 * time.Minute

func (b *consoleBackend) employees(ctx context.Context) ([]model.Employee, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.people != nil && time.Since(b.peopleAt) < searchCacheTTL {
		return b.people, nil
	}
	emps, err := b.a.source.ListEmployees(ctx)
	if err != nil {
		return nil, err
	}
	b.people, b.peopleAt = emps, time.Now()
	return emps, nil
}

// Search matches the query, case-insensitively, against the person id
// (exact), the name (first, preferred and last, in any order of the words)
// and the Personio email.
func (b *consoleBackend) Search(ctx context.Context, query string, limit int) ([]console.PersonMatch, error) {
	id := strings.TrimSpace(query)
	q := strings.ToLower(id)
	if model.ValidPersonID(id) && strings.ContainsAny(id, "0123456789") {
		// Perhaps a person id: one read finds them even when the cached
		// list is older than the person. Any failure falls back to the
		// list (a name is no id).
		if e, err := b.a.source.GetEmployee(ctx, id); err == nil {
			return []console.PersonMatch{personMatch(e)}, nil
		} else if !errors.Is(err, model.ErrPersonNotFound) {
			b.a.log.Debug("console search: reading the query as a person id failed", "err", err)
		}
	}
	emps, err := b.employees(ctx)
	if err != nil {
		return nil, adminError(err)
	}
	words := strings.Fields(q)
	var out []console.PersonMatch
	for _, e := range emps {
		hay := strings.ToLower(strings.Join([]string{e.FirstName, e.PreferredName, e.LastName, e.Email, e.PersonID}, " "))
		if !slices.ContainsFunc(words, func(w string) bool { return !strings.Contains(hay, w) }) {
			out = append(out, personMatch(e))
		}
	}
	slices.SortFunc(out, func(x, y console.PersonMatch) int {
		return cmp.Or(cmp.Compare(strings.ToLower(x.Name), strings.ToLower(y.Name)), cmp.Compare(x.PersonID, y.PersonID))
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func personMatch(e model.Employee) console.PersonMatch {
	first := e.FirstName
	if e.PreferredName != "" {
		first = e.PreferredName
	}
	return console.PersonMatch{PersonID: e.PersonID, Name: strings.TrimSpace(first + " " + e.LastName), Email: e.Email,
		Status: e.Status, Department: e.Department.Name, Position: e.Position}
}

// consoleAuditLimit is how many of a person's audit records the person page shows.
const consoleAuditLimit = 200

func (b *consoleBackend) audit(ctx context.Context, personID string) ([]provisioning.AuditRecord, error) {
	raw, err := b.a.q.ReadAudit(ctx, personID, consoleAuditLimit)
	if err != nil {
		return nil, err
	}
	recs := make([]provisioning.AuditRecord, 0, len(raw))
	for i := len(raw) - 1; i >= 0; i-- { // newest first
		var r provisioning.AuditRecord
		if err := json.Unmarshal(raw[i], &r); err != nil {
			b.a.log.Warn("console: skipping an audit record that is not valid JSON", "person", personID, "err", err)
			continue
		}
		recs = append(recs, r)
	}
	return recs, nil
}

func (b *consoleBackend) Person(ctx context.Context, personID string) (console.Person, error) {
	x, err := b.a.engine.Explain(ctx, personID)
	if err != nil {
		return console.Person{}, personError(personID, err)
	}
	p := console.Person{Explained: x}
	if p.Audit, err = b.audit(ctx, personID); err != nil {
		return console.Person{}, adminError(err)
	}
	return p, nil
}

func (b *consoleBackend) PreviewRules(ctx context.Context, candidate *rules.Rules) (provisioning.RulesPreview, error) {
	pv, err := provisioning.PreviewRules(ctx, b.a.engine, candidate)
	return pv, adminError(err)
}

// ---- the outcome of the last syncs

// Keys in the state bucket (shared by every replica, so the console shows
// the last syncs whichever replica ran them).
const syncOutcomePrefix = "console.sync."

type syncOutcomeRecord struct {
	Kind     string                  `json:"kind"`
	Trigger  string                  `json:"trigger"`
	Started  time.Time               `json:"started"`
	Finished time.Time               `json:"finished"`
	Error    string                  `json:"error,omitempty"`
	Report   provisioning.SyncReport `json:"report"`
}

// runSync runs one full sync and records how it ended for the console. A
// sync skipped because another replica held the lease is not recorded.
func (a *app) runSync(ctx context.Context, o provisioning.SyncOptions, trigger string) (provisioning.SyncReport, error) {
	started := time.Now()
	rep, err := a.syncer.Run(ctx, o)
	if a.state == nil || rep.Skipped || (err != nil && ctx.Err() != nil) {
		return rep, err
	}
	kind := rep.Kind
	if kind == "" {
		kind = "incremental"
		if o.Complete {
			kind = "complete"
		}
	}
	rec := syncOutcomeRecord{Kind: kind, Trigger: trigger, Started: started, Finished: time.Now(), Report: rep}
	rec.Report.Plans = nil
	if err != nil {
		rec.Error = err.Error()
	}
	if b, merr := json.Marshal(rec); merr == nil {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		if perr := a.state.Put(pctx, syncOutcomePrefix+kind, b); perr != nil {
			a.log.Warn("recording the outcome of the sync failed", "err", perr)
		}
		cancel()
	}
	return rep, err
}

func readSyncOutcomes(ctx context.Context, kv provisioning.KV) ([]console.SyncOutcome, error) {
	if kv == nil {
		return nil, nil
	}
	var out []console.SyncOutcome
	for _, kind := range []string{"complete", "incremental"} {
		b, _, err := kv.Get(ctx, syncOutcomePrefix+kind)
		if errors.Is(err, state.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read the last %s sync: %w", kind, err)
		}
		var r syncOutcomeRecord
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("read the last %s sync: %w", kind, err)
		}
		out = append(out, console.SyncOutcome{Kind: r.Kind, Trigger: r.Trigger, Started: r.Started, Finished: r.Finished, Error: r.Error, Report: r.Report})
	}
	return out, nil
}
