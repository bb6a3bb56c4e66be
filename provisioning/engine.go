// Package provisioning is the reconcile engine: for one person it reads the
// employee from Personio, asks the rules for the desired Entra state, reads
// the actual state from Entra, plans the difference, guards it and applies
// it, recording every change in the audit log. The same code serves webhooks,
// schedules, the periodic full sync and `personio-entra plan`.
//
// A webhook is a hint, not the truth: Reconcile always re-reads Personio and
// converges (level-triggered), so running it twice makes no writes the
// second time.
package provisioning

import (
	"context"
	"errors"
	"fmt"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"github.com/personio-entra/personio-entra/queue/work"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/personio-entra/personio-entra/rules"
)

// Source is what the engine needs from Personio.
type Source interface {
	GetEmployee(ctx context.Context, personID string) (model.Employee, error)
	ListEmployees(ctx context.Context) ([]model.Employee, error)
	// ConfirmDeleted checks a second way that a person GetEmployee did not
	// find is really gone: true only when that read agrees. false with a
	// nil error means the person was found after all.
	ConfirmDeleted(ctx context.Context, personID string) (bool, error)
}

// Scheduler wakes a person up at an instant (JetStream message schedules).
type Scheduler interface {
	Schedule(ctx context.Context, personID string, at time.Time, reason string) error
	CancelSchedule(ctx context.Context, personID string) error
}

// AuditSink stores audit records durably.
type AuditSink interface {
	AppendAudit(ctx context.Context, personID string, record []byte) error
}

// MatchKey is one way of finding an existing account for an employee:
// the directory property and the employee field whose value it must equal.
type MatchKey struct {
	Property string // employeeId, userPrincipalName, mail
	Field    string // person_id, email
}

// LeaverActions are the lifecycle switches that apply when a person
// disappears from Personio (deleted), where the rules cannot be evaluated.
type LeaverActions struct {
	RevokeSessions    bool
	RemoveMemberships bool
}

// Config holds the engine's collaborators and settings.
type Config struct {
	Source    Source
	Directory Directory
	Rules     rules.Evaluator
	// ManagedGroups are the group keys named in the rules (object id or
	// display name); resolved on first use.
	ManagedGroups []string
	ManageManager bool
	MatchKeys     []MatchKey
	OnDeleted     LeaverActions
	// Protected lists UPNs or object ids that are never changed.
	Protected []string
	DryRun    bool
	Scheduler Scheduler // optional
	Audit     AuditSink // optional
	Logger    *slog.Logger
	// Now is the clock (tests); time.Now by default.
	Now func() time.Time
	// ManagerRetry is how soon a person whose manager has no account yet is
	// looked at again (default 2 minutes).
	ManagerRetry time.Duration
	// RecordLeaveDate keeps employeeLeaveDateTime in step with the last
	// working day (needs User-LifeCycleInfo.ReadWrite.All; Lifecycle
	// Workflows' leaver triggers read it).
	RecordLeaveDate bool
	// RehireWithin bounds reactivation: a disabled account whose recorded
	// leave date (employeeLeaveDateTime, with RecordLeaveDate) is older than
	// this is not enabled again automatically; the reconcile stops with an
	// error for an admin to decide. Zero: always reactivate.
	RehireWithin time.Duration
	// WriteBackEmail, when set, stores a new account's UPN as the person's
	// email in Personio (PERSONIO_WRITE_BACK_EMAIL). The person.updated
	// webhook this causes reconciles to no change.
	WriteBackEmail func(ctx context.Context, personID, email string) error
	// State is the replicated state bucket (JetStream KV) that holds the
	// ownership records, the safeguard's budget and the held approvals. Nil
	// keeps them in process memory (tests, read-only commands).
	State KV
	// Guard configures the safeguard every destructive change counts
	// against; the zero value means the defaults (10 people or 5 % of the
	// owned accounts within 1 h).
	Guard GuardSettings
	// CreatedSettle is how long the first delivery of person.created waits
	// for the employment.created that follows it (Handle); 0 runs it at once.
	CreatedSettle time.Duration
	// Enqueuer queues people (the work queue): reports waiting for a
	// manager's account, approvals' people. Optional.
	Enqueuer Enqueuer
	// Notify wires notifications and the day-one pass (notify.go).
	Notify NotifyConfig
	// ReplicationWait bounds how long a create that finds its UPN taken by
	// an account Graph does not show yet waits for that account to become
	// readable (Graph replicates a new object with a delay), to tell this
	// person's earlier create from someone else's account (default 30 s).
	ReplicationWait time.Duration
	// Lifecycle: returners, name changes and licences (lifecycle.go).
	Lifecycle LifecycleSettings
}

// Engine reconciles people. It is safe for concurrent use by many workers;
// the queue guarantees that one person is never reconciled twice at once.
type Engine struct {
	cfg       Config
	log       *slog.Logger
	protected map[string]bool

	groupsMu sync.Mutex
	groups   map[string]groupState // key → resolved
	members  *memberBatcher
	held     *heldAdditions // additions of disabled pre-hires, batcher_held.go

	own   *Ownership
	guard *Guard

	lifecycle lifecycleState
	snaps     snapshotStore // the complete sync's reads for the work it queued (snapshot.go)
}

type groupState struct {
	ref GroupRef
	err error // unmanageable or unresolvable
}

// New builds an engine.
func New(cfg Config) (*Engine, error) {
	if cfg.Source == nil || cfg.Directory == nil || cfg.Rules == nil {
		return nil, errors.New("provisioning: Source, Directory and Rules are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ManagerRetry <= 0 {
		cfg.ManagerRetry = 2 * time.Minute
	}
	if cfg.ReplicationWait <= 0 {
		cfg.ReplicationWait = 30 * time.Second
	}
	if len(cfg.MatchKeys) == 0 {
		cfg.MatchKeys = []MatchKey{{Property: "employeeId", Field: "person_id"}}
	}
	e := &Engine{cfg: cfg, log: cfg.Logger, protected: map[string]bool{}, groups: map[string]groupState{}}
	for _, p := range cfg.Protected {
		e.protected[strings.ToLower(strings.TrimSpace(p))] = true
	}
	// Group writes and reads go through the cache guard, so that a managed
	// group deleted in Entra is resolved again (groupcache.go).
	e.cfg.Directory = groupCacheDirectory{Directory: cfg.Directory, e: e}
	var throttledUntil func() time.Time
	if t, ok := cfg.Directory.(interface{ ThrottledUntil() time.Time }); ok {
		throttledUntil = t.ThrottledUntil
	}
	e.members = newMemberBatcher(e.cfg.Directory, throttledUntil)
	e.held = newHeldAdditions()
	if cfg.State == nil {
		cfg.State = NewMemKV()
		e.cfg.State = cfg.State
	}
	if cfg.Guard == (GuardSettings{}) {
		cfg.Guard = GuardSettings{MaxCount: 10, MaxPercent: 5}
	}
	e.own = newOwnership(cfg.State)
	e.guard = newGuard(cfg.State, cfg.Guard, e.own, cfg.Now, cfg.Logger.With("component", "safeguard"))
	e.guard.audit = e.audit
	e.guard.queue = cfg.Enqueuer
	return e, nil
}

// Result is what one reconcile did.
type Result struct {
	Plan    Plan
	Applied int
	Skipped int
	Failed  int
	// Held counts destructive changes the safeguard held for approval.
	Held int
}

// terminal reports whether a Reconcile error should not be retried: the
// engine marked it work.Terminal (ambiguous match, invalid rules result, a
// refused write), or the directory classified the request as invalid.
func terminal(err error) bool {
	return work.IsTerminal(err) || errors.Is(err, ErrRejected)
}

// Handle is the queue's handler: one reconcile of the person, the trigger
// taken from the work being handled. It speaks the queue's contract: a
// terminal error dead-letters the work, anything else is retried with the
// queue's backoff. A throttled Graph is not turned into RequeueAfter: the
// Entra client has already waited out Retry-After (up to its MaxWait) before
// it gave up, and a retry delayed by the full Retry-After would hold the
// person's partition for minutes (BenchmarkOnboarding1000 went from 168 s
// to 283 s when it did).
//
// A new person arrives as person.created followed at once by
// employment.created (the employment, with the department, title and start
// date, is a separate object in Personio). The first delivery of
// person.created therefore waits CreatedSettle before it runs: when the
// employment event has been queued meanwhile, the queue skips the older
// message and the person is reconciled once, with the whole record.
func (e *Engine) Handle(ctx context.Context, personID string) (work.Result, error) {
	if w, ok := work.From(ctx); ok && w.Reason == model.EventPersonCreated && w.Attempt == 1 && e.cfg.CreatedSettle > 0 {
		return work.Result{RequeueAfter: e.cfg.CreatedSettle}, nil
	}
	ctx, cr := withCoverRun(ctx)
	_, err := e.Reconcile(ctx, personID, work.Reason(ctx))
	if err != nil && terminal(err) && !work.IsTerminal(err) {
		err = work.Terminal(err)
	}
	if err == nil {
		e.cover(ctx, personID, cr) // coverage.go
	}
	return work.Result{}, err
}

// EmploymentResolver is implemented by sources that can name the person of
// an employment (Personio employment webhooks may carry no person id).
type EmploymentResolver interface {
	PersonIDForEmployment(ctx context.Context, employmentID string) (string, error)
}

// ResolveEmployment is the queue's resolver: the person of an employment.
// An employment the source does not know is terminal.
func (e *Engine) ResolveEmployment(ctx context.Context, employmentID string) (string, error) {
	r, ok := e.cfg.Source.(EmploymentResolver)
	if !ok {
		return "", work.Terminal(errors.New("the source cannot resolve employments to persons"))
	}
	id, err := r.PersonIDForEmployment(ctx, employmentID)
	if errors.Is(err, model.ErrPersonNotFound) {
		return "", work.Terminal(err)
	}
	return id, err
}

// Reconcile converges one person. trigger says why (webhook event name,
// "schedule", "sync", "admin") and ends up in the audit log.
func (e *Engine) Reconcile(ctx context.Context, personID, trigger string) (Result, error) {
	start := time.Now()
	res, err := e.reconcile(ctx, personID, trigger, modeApply)
	outcome := "success"
	switch {
	case err != nil && terminal(err):
		outcome = "permanent_error"
	case err != nil:
		outcome = "error"
	case len(res.Plan.Changes) == 0:
		outcome = "no_change"
	}
	reconcilesTotal.WithLabelValues(outcome).Inc()
	reconcileDuration.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
	return res, err
}

// PlanFor computes what Reconcile would do, applying nothing.
func (e *Engine) PlanFor(ctx context.Context, personID string) (Plan, error) {
	res, err := e.reconcile(ctx, personID, "plan", modePlan)
	return res.Plan, err
}

// mode says whether a reconcile applies its plan.
type mode bool

const (
	modeApply mode = false
	modePlan  mode = true
)

func (e *Engine) reconcile(ctx context.Context, personID, trigger string, m mode) (Result, error) {
	planOnly := m == modePlan
	if !model.ValidPersonID(personID) {
		return Result{}, work.Terminal(fmt.Errorf("reconcile: invalid person id %q", personID))
	}
	now := e.cfg.Now()
	log := e.log.With("person_id", personID, "trigger", trigger)
	obs := observer(ctx) // nil unless Explain asked (explain.go)

	if !planOnly {
		beforeSourceRead(ctx)
	}
	emp, err := e.cfg.Source.GetEmployee(ctx, personID)
	if err == nil && !planOnly {
		sourceRead(ctx, emp)
	}
	var d rules.Desired
	deleted := false
	switch {
	case errors.Is(err, model.ErrPersonNotFound):
		// A 404 alone is no proof of deletion (a wrong id mapping, a
		// permission change or an API fault answer the same): only when a
		// second read agrees is the person a leaver now. Otherwise the
		// account is left alone and the work is retried.
		gone, cerr := e.cfg.Source.ConfirmDeleted(ctx, personID)
		if cerr != nil {
			return Result{}, fmt.Errorf("reconcile %s: Personio answered 404 for the employee, but the deletion could not be confirmed (%w); the account is left alone and the work retried", personID, cerr)
		}
		if !gone {
			return Result{}, fmt.Errorf("reconcile %s: Personio answered 404 for the employee, but the confirming read still finds the person; not treating them as deleted, the account is left alone and the work retried", personID)
		}
		deleted = true
		d = e.deletedPerson(personID)
	case err != nil:
		return Result{}, fmt.Errorf("reconcile %s: read employee: %w", personID, err)
	default:
		d, err = e.desired(emp, now)
		if err != nil {
			return Result{}, work.Terminal(fmt.Errorf("reconcile %s: %w", personID, err))
		}
	}
	d.PersonID = personID
	obs.sawEmployee(emp, deleted)

	if d.Phase == rules.PhaseOutOfScope {
		// Users outside scope are never touched.
		if !planOnly && e.cfg.Scheduler != nil {
			if err := e.cfg.Scheduler.CancelSchedule(ctx, personID); err != nil {
				log.Warn("cancel schedule", "err", err)
			}
		}
		return Result{Plan: Plan{PersonID: personID, Phase: d.Phase, Reason: d.Reason, Desired: d}}, nil
	}

	adopted := false
	snap := e.snapshotFor(personID, trigger, m)
	var user *User
	var skipped []skippedMatch
	if snap != nil {
		user = &snap.user
	} else if user, skipped, err = e.match(ctx, personID, emp); err != nil {
		return Result{}, err
	}
	lr, err := e.beforePlan(ctx, log, now, trigger, &d, &user, planOnly)
	if err != nil {
		return Result{}, err
	}
	obs.sawAccount(user)
	var skipNotes []string
	for _, sk := range skipped {
		skipNotes = append(skipNotes, sk.note)
		log.Warn("match candidate skipped", "user_id", sk.user.ID, "upn", sk.user.UserPrincipalName, "note", sk.note)
		if !planOnly {
			p := Plan{PersonID: personID, Phase: d.Phase, Reason: d.Reason, UserID: sk.user.ID, UPN: sk.user.UserPrincipalName, Desired: d}
			e.audit(ctx, auditRecord(now, trigger, p, Change{Kind: NoChange}, ResultSkipped, sk.note, nil, e.cfg.DryRun))
		}
	}
	if user != nil && e.isProtected(*user) {
		p := Plan{PersonID: personID, Phase: d.Phase, Reason: "account is protected", UserID: user.ID, UPN: user.UserPrincipalName, Desired: d, Notes: skipNotes}
		if !planOnly {
			e.audit(ctx, auditRecord(now, trigger, p, Change{Kind: NoChange}, ResultSkipped, "protected account", nil, e.cfg.DryRun))
		}
		return Result{Plan: p}, nil
	}
	if user != nil {
		owned, err := e.own.Owns(ctx, user.ID)
		if err != nil {
			return Result{}, fmt.Errorf("reconcile %s: %w", personID, err)
		}
		obs.sawOwned(owned)
		switch {
		case !owned && deleted:
			return e.unowned(ctx, now, trigger, d, *user, planOnly), nil
		case !owned && !planOnly && !e.cfg.DryRun:
			if err := e.adopt(ctx, now, trigger, d, *user); err != nil {
				return Result{}, fmt.Errorf("reconcile %s: %w", personID, err)
			}
			adopted = true
		}
		if !deleted {
			d = e.keepAccess(emp, d, *user)
		}
	}
	if err := e.checkRehire(user, d, now); err != nil {
		return Result{}, err
	}
	var staleHeld []string
	if user != nil && !planOnly {
		// Held group additions of an earlier reconcile go first.
		if staleHeld, err = e.settleHeld(ctx, personID); err != nil {
			return Result{}, fmt.Errorf("reconcile %s: %w", personID, err)
		}
	}
	var actual Actual
	if snap != nil && (lr == nil || lr.restore == nil) {
		actual, err = e.snapshotActual(ctx, snap, user, d)
	} else {
		actual, err = e.actualFor(ctx, user, d, lr)
	}
	if err != nil {
		return Result{}, err
	}
	obs.sawGroups(actual.Groups)
	groups, groupErrs := e.managedGroups(ctx)
	opt := PlanOptions{ManagedGroups: groups, ManageManager: e.cfg.ManageManager}
	groupErrs = append(groupErrs, e.licenseOptions(ctx, &opt)...)
	plan := ComputePlan(d, actual, opt)
	if snap != nil && plan.Destructive() > 0 {
		// Never take access away on the sync's snapshot: start again
		// from fresh reads (the snapshot is gone now).
		return e.reconcile(ctx, personID, trigger, m)
	}
	if err := e.afterPlan(ctx, &plan, d, user, emp, lr); err != nil {
		return Result{}, err
	}
	plan.Notes = append(plan.Notes, skipNotes...)
	for _, ge := range groupErrs {
		plan.Notes = append(plan.Notes, ge.Error())
	}
	plan.Notes = append(plan.Notes, d.Warnings...)
	if planOnly {
		// Show the follow-up a create would make in the same run.
		return Result{Plan: plan}, nil
	}

	res := Result{Plan: plan}
	// Every destructive change counts against the one safeguard, whatever
	// triggered the reconcile. What it holds waits in an approval set; the
	// person's other changes still apply.
	var held []Change
	var heldIn string
	granted := false
	if !e.cfg.DryRun && plan.Destructive() > 0 {
		adm, err := e.guard.Admit(ctx, heldPerson(plan))
		if err != nil {
			// Cannot count it: take nothing away, retry.
			return res, fmt.Errorf("reconcile %s: %w", personID, err)
		}
		granted = adm.Via == "approval"
		if !adm.Allowed {
			res.Plan.Changes, held = splitDestructive(plan.Changes)
			heldIn = adm.ApprovalID
			res.Plan.Notes = append(res.Plan.Notes, fmt.Sprintf("%d destructive change(s) held for approval %s: %s", len(held), adm.ApprovalID, adm.Reason))
		}
	}
	applyErr := e.apply(ctx, log, now, trigger, &res, emp, actual, opt)
	for _, c := range held {
		e.record(ctx, log, now, trigger, res.Plan, c, ResultHeld, "held by the safeguard; release with `personio-entra approve "+heldIn+"`", nil)
		res.Held++
	}
	// hold is a change that waits for an admin (a rename with no free
	// name): it stops only itself, so the rest of the reconcile (grants,
	// waiters, notices, the next transition's schedule) still runs and the
	// hold is returned at the end.
	hold := e.afterApply(ctx, log, now, trigger, &res, emp, lr)
	if applyErr != nil {
		return res, applyErr
	}
	if granted {
		e.guard.consumeGrant(ctx, personID)
	}
	if (res.Applied > 0 || adopted) && res.Plan.UserID != "" && d.Phase != rules.PhaseLeaver && d.Phase != rules.PhaseDeleted {
		// The account was just created, adopted or changed (an adopted
		// account gets its employeeId here): reports waiting for it as
		// their manager go now. A reconcile that changed nothing skips the
		// index read.
		e.releaseWaiters(ctx, personID)
	}
	if res.Plan.Wait && d.ManagerPersonID != "" && e.cfg.ManageManager && !e.cfg.DryRun {
		if err := e.waitForManager(ctx, d.ManagerPersonID, personID); err != nil {
			log.Warn("the report is retried on the schedule instead", "err", err)
		}
	}
	if err := e.afterReconcile(ctx, log, now, &res, d, heldIn); err != nil {
		return res, err
	}
	if err := e.schedule(ctx, log, res.Plan, d); err != nil {
		return res, err
	}
	e.clearHeld(ctx, log, personID, staleHeld)
	if len(groupErrs) > 0 && len(d.Groups) > 0 {
		log.Error("some managed groups cannot be used", "err", errors.Join(groupErrs...))
	}
	if hold != nil {
		return res, hold
	}
	return res, nil
}

// splitDestructive separates the changes that take access away.
func splitDestructive(changes []Change) (keep, destructive []Change) {
	for _, c := range changes {
		if c.Kind.Destructive() {
			destructive = append(destructive, c)
		} else {
			keep = append(keep, c)
		}
	}
	return keep, destructive
}

// unowned reports an account whose employeeId Personio does not know and
// that personio-entra never created or adopted: it is never changed.
func (e *Engine) unowned(ctx context.Context, now time.Time, trigger string, d rules.Desired, u User, planOnly bool) Result {
	note := fmt.Sprintf("account %s carries employeeId %q, which Personio does not know, and personio-entra has no record that it created or adopted it: reported, not changed",
		u.UserPrincipalName, d.PersonID)
	p := Plan{PersonID: d.PersonID, Phase: d.Phase, Reason: d.Reason, UserID: u.ID, UPN: u.UserPrincipalName, Desired: d, Notes: []string{note}}
	if !planOnly {
		unownedAccounts.Inc()
		e.log.Warn("unowned account left alone", "person_id", d.PersonID, "upn", u.UserPrincipalName, "user_id", u.ID)
		e.audit(ctx, auditRecord(now, trigger, p, Change{Kind: NoChange}, ResultSkipped, note, nil, e.cfg.DryRun))
	}
	return Result{Plan: p}
}

// adopt records an existing account matched to a Personio person through
// the matching keys as owned, and audits it.
func (e *Engine) adopt(ctx context.Context, now time.Time, trigger string, d rules.Desired, u User) error {
	if err := e.own.Record(ctx, OwnershipRecord{UserID: u.ID, PersonID: d.PersonID, UPN: u.UserPrincipalName, How: "adopted", Since: now.UTC()}); err != nil {
		return err
	}
	p := Plan{PersonID: d.PersonID, Phase: d.Phase, Reason: d.Reason, UserID: u.ID, UPN: u.UserPrincipalName}
	e.audit(ctx, auditRecord(now, trigger, p, Change{Kind: AdoptAccount}, ResultApplied, "existing account matched this person through the matching keys", nil, e.cfg.DryRun))
	changesTotal.WithLabelValues(string(AdoptAccount), ResultApplied).Inc()
	return nil
}

// keepAccess: only status and leave dates take access away. When HR moves
// the start date of an ACTIVE employee into the future, an enabled account
// keeps its access, groups and manager (the desired state of the employee
// as of their start date), and the plan carries a warning.
func (e *Engine) keepAccess(emp model.Employee, d rules.Desired, u User) rules.Desired {
	return e.keepAccessWith(e.cfg.Rules, emp, d, u)
}

// keepAccessWith is keepAccess with other rules (the rules-change preview).
func (e *Engine) keepAccessWith(r rules.Evaluator, emp model.Employee, d rules.Desired, u User) rules.Desired {
	if !u.AccountEnabled || !strings.EqualFold(emp.Status, "active") || emp.StartDate.IsZero() ||
		(d.Phase != rules.PhasePreHire && d.Phase != rules.PhaseNotYet) {
		return d
	}
	// 14:00 UTC on the start date is within the start date in every zone
	// from UTC-12 to UTC+14 or just after it.
	at := emp.StartDate.Start(time.UTC).Add(14 * time.Hour)
	alt, err := e.desiredWith(r, emp, at)
	if err != nil || alt.Phase != rules.PhaseActive {
		return d
	}
	alt.NextTransition = d.NextTransition
	alt.Reason = fmt.Sprintf("status ACTIVE with a start date in the future (%s); the enabled account keeps its access", emp.StartDate)
	alt.Warnings = append(alt.Warnings, fmt.Sprintf("start date %s is in the future but the employee is ACTIVE and the account is enabled: "+
		"access is kept (only status and leave dates take access away); correct the start date in Personio if it is wrong", emp.StartDate))
	return alt
}

// deletedPerson is the desired state of a person Personio no longer knows:
// a leaver now, with the configured leaver actions.
func (e *Engine) deletedPerson(personID string) rules.Desired {
	d := rules.Desired{PersonID: personID, Phase: rules.PhaseLeaver, Reason: "person no longer exists in Personio",
		Exists: true, RevokeSessions: e.cfg.OnDeleted.RevokeSessions, RemoveMembership: e.cfg.OnDeleted.RemoveMemberships}
	if r, ok := e.cfg.Rules.(*rules.Rules); ok {
		d = r.MarkDeleted(d) // its changes name lifecycle.leaver
	}
	return d
}

// checkRehire refuses to reactivate an account whose person left longer
// ago than the rehire window (rules lifecycle.rehire_within_days).
func (e *Engine) checkRehire(u *User, d rules.Desired, now time.Time) error {
	if u == nil || u.AccountEnabled || !d.AccountEnabled || e.cfg.RehireWithin <= 0 {
		return nil
	}
	left, err := time.Parse(time.RFC3339, u.Attributes[leaveDateProperty])
	if err != nil || now.Sub(left) <= e.cfg.RehireWithin {
		return nil
	}
	return work.Terminal(fmt.Errorf("rehire of person %s: account %s was disabled when they left on %s, more than the rehire window (%s) ago; "+
		"enable it by hand (or delete it and let a new one be created), then re-drive this dead letter",
		d.PersonID, u.UserPrincipalName, left.Format(time.DateOnly), e.cfg.RehireWithin))
}

// desired evaluates the rules and adds what the engine's own settings manage.
func (e *Engine) desired(emp model.Employee, now time.Time) (rules.Desired, error) {
	return e.desiredWith(e.cfg.Rules, emp, now)
}

// desiredWith is desired with other rules (the rules-change preview).
func (e *Engine) desiredWith(r rules.Evaluator, emp model.Employee, now time.Time) (rules.Desired, error) {
	d, err := r.Evaluate(emp, now)
	if err != nil {
		return d, fmt.Errorf("evaluate rules: %w", err)
	}
	d.PersonID = emp.PersonID
	if e.cfg.RecordLeaveDate && d.Phase != rules.PhaseOutOfScope {
		v := ""
		if !d.LeaveDate.IsZero() {
			v = d.LeaveDate.UTC().Format(time.RFC3339)
		}
		if d.Attributes == nil {
			d.Attributes = map[string]rules.Value{}
		}
		d.Attributes[LeaveDateProperty] = rules.Value{Value: v, Policy: rules.Always}
	}
	return d, nil
}

// LeaveDateProperty is the Entra property that records the leave date.
const LeaveDateProperty = leaveDateProperty

// schedule books the next time-driven transition, or a retry when the
// manager's account did not exist yet. A schedule that cannot be published
// fails the reconcile so that the work is retried: a lost schedule would
// leave a leaver with access until the next complete sync.
func (e *Engine) schedule(ctx context.Context, log *slog.Logger, p Plan, d rules.Desired) error {
	if e.cfg.Scheduler == nil || e.cfg.DryRun {
		return nil
	}
	next := d.NextTransition
	if p.Wait {
		retry := e.cfg.Now().Add(e.cfg.ManagerRetry)
		if next.IsZero() || retry.Before(next) {
			next = retry
		}
	}
	var err error
	if next.IsZero() {
		err = e.cfg.Scheduler.CancelSchedule(ctx, d.PersonID)
	} else {
		err = e.cfg.Scheduler.Schedule(ctx, d.PersonID, next, string(d.Phase)+" transition")
	}
	if err != nil {
		log.Error("schedule next transition; the work is retried", "at", next, "err", err)
		return fmt.Errorf("schedule next transition of %s at %s: %w", d.PersonID, next.Format(time.RFC3339), err)
	}
	return nil
}

// match finds the employee's account: by employeeId first, then the other
// configured keys. More than one match stops the employee with an error.
//
// Only an account the company owns as an employee account is adopted: an
// account carrying another (non-empty) employeeId never is, and through
// userPrincipalName or mail only member accounts that are not synced from
// on-premises are (userType, https://learn.microsoft.com/en-us/graph/api/resources/user).
// Such candidates come back as skipped, with the reason for the plan and
// the audit log; if none is left the person has no account yet.
func (e *Engine) match(ctx context.Context, personID string, emp model.Employee) (*User, []skippedMatch, error) {
	var skipped []skippedMatch
	noted := map[string]bool{}
	for _, k := range e.cfg.MatchKeys {
		var value string
		switch k.Field {
		case "person_id":
			value = personID
		case "email":
			value = emp.Email
		default:
			return nil, skipped, work.Terminal(fmt.Errorf("match: unknown employee field %q", k.Field))
		}
		if value == "" {
			continue
		}
		users, err := e.cfg.Directory.FindUsers(ctx, k.Property, value)
		if err != nil {
			return nil, skipped, fmt.Errorf("match %s by %s: %w", personID, k.Property, err)
		}
		var mine []User
		for _, u := range users {
			if why := notAdoptable(u, k.Property, personID); why != "" {
				if !noted[u.ID] {
					noted[u.ID] = true
					skipped = append(skipped, skippedMatch{user: u, note: why})
				}
				continue
			}
			mine = append(mine, u)
		}
		switch len(mine) {
		case 0:
			continue
		case 1:
			return &mine[0], skipped, nil
		default:
			ids := make([]string, len(mine))
			for i, u := range mine {
				ids[i] = u.UserPrincipalName + " (" + u.ID + ")"
			}
			return nil, skipped, work.Terminal(fmt.Errorf("match %s: %d accounts have %s=%q: %s; resolve the duplicate in Entra",
				personID, len(mine), k.Property, value, strings.Join(ids, ", ")))
		}
	}
	return nil, skipped, nil
}

// skippedMatch is an account a match key found that is not adopted.
type skippedMatch struct {
	user User
	note string
}

// notAdoptable says why an account found through the match key property is
// not the person's employee account ("" when it may be adopted).
func notAdoptable(u User, property, personID string) string {
	what := fmt.Sprintf("account %s (%s) matched by %s", u.UserPrincipalName, u.ID, property)
	switch {
	case u.EmployeeID != "" && u.EmployeeID != personID:
		// An account that carries another person's employeeId is never ours.
		return fmt.Sprintf("skipped %s: it carries employeeId %s, another person's", what, u.EmployeeID)
	case property == "employeeId":
		return ""
	case strings.EqualFold(u.UserType, UserTypeGuest):
		return fmt.Sprintf("skipped guest %s: guests are never adopted", what)
	case !strings.EqualFold(u.UserType, UserTypeMember):
		return fmt.Sprintf("skipped %s: its userType is %q; only member accounts are adopted", what, u.UserType)
	case u.OnPremisesSync:
		return fmt.Sprintf("skipped %s: accounts synced from on-premises are never adopted (Active Directory masters them)", what)
	}
	return ""
}

// actual reads the state the planner compares: memberships of managed
// groups and the desired manager's account.
func (e *Engine) actual(ctx context.Context, u *User, d rules.Desired) (Actual, error) {
	a := Actual{User: u, Groups: map[string]bool{}}
	if u == nil {
		return a, nil
	}
	groups, _ := e.managedGroups(ctx)
	if len(groups) > 0 {
		ids, err := e.cfg.Directory.ListUserGroups(ctx, u.ID)
		if err != nil {
			return a, fmt.Errorf("read groups of %s: %w", u.UserPrincipalName, err)
		}
		managed := map[string]bool{}
		for _, g := range groups {
			managed[g.ID] = true
		}
		for _, id := range ids {
			if managed[id] {
				a.Groups[id] = true
			}
		}
	}
	if e.cfg.ManageManager && d.ManagerPersonID != "" && u.ManagerEmployeeID != d.ManagerPersonID {
		m, err := e.findByEmployeeID(ctx, d.ManagerPersonID)
		if err != nil {
			return a, fmt.Errorf("find manager (person %s): %w", d.ManagerPersonID, err)
		}
		a.Manager = m
	}
	return a, nil
}

func (e *Engine) findByEmployeeID(ctx context.Context, personID string) (*User, error) {
	users, err := e.cfg.Directory.FindUsers(ctx, "employeeId", personID)
	if err != nil {
		return nil, err
	}
	switch len(users) {
	case 0:
		return nil, nil
	case 1:
		return &users[0], nil
	}
	return nil, work.Terminal(fmt.Errorf("%d accounts carry employeeId %q", len(users), personID))
}

// managedGroups resolves the rules' group keys once; failures are retried
// on the next call.
func (e *Engine) managedGroups(ctx context.Context) ([]GroupRef, []error) {
	e.groupsMu.Lock()
	defer e.groupsMu.Unlock()
	var refs []GroupRef
	var errs []error
	for _, key := range e.cfg.ManagedGroups {
		st, ok := e.groups[key]
		if !ok || (st.err != nil && !errors.Is(st.err, errUnmanageable)) {
			st = e.resolveGroup(ctx, key)
			e.groups[key] = st
		}
		if st.err != nil {
			errs = append(errs, st.err)
			continue
		}
		refs = append(refs, st.ref)
	}
	return refs, errs
}

var errUnmanageable = errors.New("group cannot be managed through Graph")

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// LookupGroup reads a group named in the rules: by object id when the key
// is one, else by display name.
func LookupGroup(ctx context.Context, d Directory, key string) (Group, error) {
	if guidRE.MatchString(key) {
		return d.GetGroup(ctx, key)
	}
	return d.ResolveGroup(ctx, key)
}

func (e *Engine) resolveGroup(ctx context.Context, key string) groupState {
	g, err := LookupGroup(ctx, e.cfg.Directory, key)
	if err != nil {
		return groupState{err: fmt.Errorf("group %q: %w", key, err)}
	}
	if g.Unmanageable != "" {
		return groupState{err: fmt.Errorf("group %q: %w: %s", key, errUnmanageable, g.Unmanageable)}
	}
	return groupState{ref: GroupRef{Key: key, ID: g.ID}}
}

// ResolveGroups resolves every managed group now and reports every problem
// (for `personio-entra check`).
func (e *Engine) ResolveGroups(ctx context.Context) ([]GroupRef, error) {
	refs, errs := e.managedGroups(ctx)
	return refs, errors.Join(errs...)
}

func (e *Engine) isProtected(u User) bool {
	return e.protected[strings.ToLower(u.UserPrincipalName)] || e.protected[strings.ToLower(u.ID)]
}

// ApplyRules fills the settings the rules file decides: the managed groups,
// whether the manager is kept in step, the matching keys, the leaver actions
// for people deleted in Personio and the rehire window.
func (c *Config) ApplyRules(r *rules.Rules) {
	lc := r.Lifecycle()
	c.Rules = r
	c.ManagedGroups = r.ManagedGroups()
	c.ManageManager = r.ManagesManager()
	c.MatchKeys = nil
	for _, k := range r.MatchKeys() {
		c.MatchKeys = append(c.MatchKeys, MatchKey{Property: k.Property, Field: k.Field})
	}
	c.OnDeleted = LeaverActions{RevokeSessions: lc.Leaver.RevokeSessions, RemoveMemberships: lc.Leaver.RemoveMemberships}
	c.RehireWithin = time.Duration(lc.RehireWithinDays) * 24 * time.Hour
	c.applyLifecycleRules(r)
	c.Notify.applyRules(r)
}
