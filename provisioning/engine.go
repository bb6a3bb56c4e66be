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
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/personio-entra/personio-entra/provisioning/personio"
	"github.com/personio-entra/personio-entra/rules"
)

// Source is what the engine needs from Personio.
type Source interface {
	GetEmployee(ctx context.Context, personID string) (personio.Employee, error)
	ListEmployees(ctx context.Context) ([]personio.Employee, error)
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
	e.members = newMemberBatcher(e.cfg.Directory)
	return e, nil
}

// Result is what one reconcile did.
type Result struct {
	Plan    Plan
	Applied int
	Skipped int
	Failed  int
}

// permanentError marks errors that retrying will not fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// IsPermanent reports whether a Reconcile error should not be retried
// (ambiguous match, invalid rules result, Graph refusing the request for
// good). The queue sends such work to the dead letters at once.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p) || errors.Is(err, ErrPermanent)
}

// Reconcile converges one person. trigger says why (webhook event name,
// "schedule", "sync", "admin") and ends up in the audit log.
func (e *Engine) Reconcile(ctx context.Context, personID, trigger string) (Result, error) {
	start := time.Now()
	res, err := e.reconcile(ctx, personID, trigger, false)
	outcome := "success"
	switch {
	case err != nil && IsPermanent(err):
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
	res, err := e.reconcile(ctx, personID, "plan", true)
	return res.Plan, err
}

func (e *Engine) reconcile(ctx context.Context, personID, trigger string, planOnly bool) (Result, error) {
	if !validPersonID(personID) {
		return Result{}, permanentError{fmt.Errorf("reconcile: invalid person id %q", personID)}
	}
	now := e.cfg.Now()
	log := e.log.With("person_id", personID, "trigger", trigger)

	emp, err := e.cfg.Source.GetEmployee(ctx, personID)
	var d rules.Desired
	switch {
	case errors.Is(err, personio.ErrNotFound):
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
		d = e.deletedPerson(personID)
	case err != nil:
		return Result{}, fmt.Errorf("reconcile %s: read employee: %w", personID, err)
	default:
		d, err = e.desired(emp, now)
		if err != nil {
			return Result{}, permanentError{fmt.Errorf("reconcile %s: %w", personID, err)}
		}
	}
	d.PersonID = personID

	if d.Phase == rules.PhaseOutOfScope {
		// Users outside scope are never touched.
		if !planOnly && e.cfg.Scheduler != nil {
			if err := e.cfg.Scheduler.CancelSchedule(ctx, personID); err != nil {
				log.Warn("cancel schedule", "err", err)
			}
		}
		return Result{Plan: Plan{PersonID: personID, Phase: d.Phase, Reason: d.Reason, Desired: d}}, nil
	}

	user, err := e.match(ctx, personID, emp)
	if err != nil {
		return Result{}, err
	}
	if user != nil && e.isProtected(*user) {
		p := Plan{PersonID: personID, Phase: d.Phase, Reason: "account is protected", UserID: user.ID, UPN: user.UserPrincipalName, Desired: d}
		e.audit(ctx, auditRecord(now, trigger, p, Change{Kind: "none"}, ResultSkipped, "protected account", nil, e.cfg.DryRun))
		return Result{Plan: p}, nil
	}
	if err := e.checkRehire(user, d, now); err != nil {
		return Result{}, err
	}
	actual, err := e.actual(ctx, user, d)
	if err != nil {
		return Result{}, err
	}
	groups, groupErrs := e.managedGroups(ctx)
	opt := PlanOptions{ManagedGroups: groups, ManageManager: e.cfg.ManageManager}
	plan := ComputePlan(d, actual, opt)
	for _, ge := range groupErrs {
		plan.Notes = append(plan.Notes, ge.Error())
	}
	if planOnly {
		// Show the follow-up a create would make in the same run.
		return Result{Plan: plan}, nil
	}

	res := Result{Plan: plan}
	if err := e.apply(ctx, log, now, trigger, &res, emp, actual, opt); err != nil {
		return res, err
	}
	e.schedule(ctx, log, res.Plan, d)
	if len(groupErrs) > 0 && len(d.Groups) > 0 {
		log.Error("some managed groups cannot be used", "err", errors.Join(groupErrs...))
	}
	return res, nil
}

// deletedPerson is the desired state of a person Personio no longer knows:
// a leaver now, with the configured leaver actions.
func (e *Engine) deletedPerson(personID string) rules.Desired {
	return rules.Desired{PersonID: personID, Phase: rules.PhaseLeaver, Reason: "person no longer exists in Personio",
		Exists: true, RevokeSessions: e.cfg.OnDeleted.RevokeSessions, RemoveMembership: e.cfg.OnDeleted.RemoveMemberships}
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
	return permanentError{fmt.Errorf("rehire of person %s: account %s was disabled when they left on %s, more than the rehire window (%s) ago; "+
		"enable it by hand (or delete it and let a new one be created), then re-drive this dead letter",
		d.PersonID, u.UserPrincipalName, left.Format(time.DateOnly), e.cfg.RehireWithin)}
}

// desired evaluates the rules and adds what the engine's own settings manage.
func (e *Engine) desired(emp personio.Employee, now time.Time) (rules.Desired, error) {
	d, err := e.cfg.Rules.Evaluate(emp, now)
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
// manager's account did not exist yet.
func (e *Engine) schedule(ctx context.Context, log *slog.Logger, p Plan, d rules.Desired) {
	if e.cfg.Scheduler == nil || e.cfg.DryRun {
		return
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
		// The periodic full sync catches a missed transition; log loudly.
		log.Error("schedule next transition", "at", next, "err", err)
	}
}

// match finds the employee's account: by employeeId first, then the other
// configured keys. More than one match stops the employee with an error.
func (e *Engine) match(ctx context.Context, personID string, emp personio.Employee) (*User, error) {
	for _, k := range e.cfg.MatchKeys {
		var value string
		switch k.Field {
		case "person_id":
			value = personID
		case "email":
			value = emp.Email
		default:
			return nil, permanentError{fmt.Errorf("match: unknown employee field %q", k.Field)}
		}
		if value == "" {
			continue
		}
		users, err := e.cfg.Directory.FindUsers(ctx, k.Property, value)
		if err != nil {
			return nil, fmt.Errorf("match %s by %s: %w", personID, k.Property, err)
		}
		// An account that carries another person's employeeId is never ours.
		var mine []User
		for _, u := range users {
			if u.EmployeeID == "" || u.EmployeeID == personID {
				mine = append(mine, u)
			}
		}
		switch len(mine) {
		case 0:
			continue
		case 1:
			return &mine[0], nil
		default:
			ids := make([]string, len(mine))
			for i, u := range mine {
				ids[i] = u.UserPrincipalName + " (" + u.ID + ")"
			}
			return nil, permanentError{fmt.Errorf("match %s: %d accounts have %s=%q: %s; resolve the duplicate in Entra",
				personID, len(mine), k.Property, value, strings.Join(ids, ", "))}
		}
	}
	return nil, nil
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
	return nil, permanentError{fmt.Errorf("%d accounts carry employeeId %q", len(users), personID)}
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

var personIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func validPersonID(id string) bool { return personIDRE.MatchString(id) }
