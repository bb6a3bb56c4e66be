package provisioning

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"github.com/personio-entra/personio-entra/provisioning/state"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/personio-entra/personio-entra/rules"
)

// KV is the engine's durable state store (state.KV): a JetStream KV
// bucket in production.
type KV = state.KV

// ErrKeyNotFound is returned by KV.Get for absent keys.
var ErrKeyNotFound = state.ErrKeyNotFound

// MemKV is the in-process KV (tests, read-only commands).
type MemKV = state.Mem

// NewMemKV returns an empty in-process KV.
func NewMemKV() *MemKV { return state.NewMem() }

// Enqueuer puts a person on the work queue (serialised with webhooks).
type Enqueuer interface {
	Enqueue(ctx context.Context, personID, reason string) error
}

// IncrementalSource is implemented by Personio clients that can list only
// the people changed since an instant.
type IncrementalSource interface {
	ListEmployeesUpdatedSince(ctx context.Context, since time.Time) ([]model.Employee, error)
}

// SyncConfig configures the full sync.
type SyncConfig struct {
	Engine *Engine
	Queue  Enqueuer
	State  KV // sync state, leases and approvals
	Holder string
	// CompleteEvery forces a complete read this often (default 24h); in
	// between, a sync reads only the people Personio reports as changed.
	CompleteEvery time.Duration
}

// Syncer runs full syncs, one instance at a time across all processes.
type Syncer struct {
	cfg SyncConfig
}

// NewSyncer builds a Syncer.
func NewSyncer(cfg SyncConfig) *Syncer {
	if cfg.CompleteEvery <= 0 {
		cfg.CompleteEvery = 24 * time.Hour
	}
	if cfg.Holder == "" {
		cfg.Holder = "personio-entra"
	}
	if cfg.Engine != nil && cfg.Queue != nil && cfg.Engine.guard.queue == nil {
		cfg.Engine.guard.queue = cfg.Queue
	}
	return &Syncer{cfg: cfg}
}

// SyncReport summarises one full sync.
type SyncReport struct {
	Kind        string    `json:"kind"` // complete or incremental
	Started     time.Time `json:"started"`
	Duration    string    `json:"duration"`
	Employees   int       `json:"employees"`
	Accounts    int       `json:"accounts"`
	Drifting    int       `json:"drifting"`
	Enqueued    int       `json:"enqueued"`
	Destructive int       `json:"destructive"`
	Guarded     bool      `json:"guarded"`
	ApprovalID  string    `json:"approval_id,omitempty"`
	// Owned is the number of accounts personio-entra owns; Unowned lists
	// accounts carrying an employeeId Personio does not know that it does
	// not own (reported, never changed).
	Owned   int      `json:"owned"`
	Unowned []string `json:"unowned,omitempty"`
	// Collapsed: Personio returned no one, or far fewer people than the
	// owned accounts; nothing destructive was applied.
	Collapsed bool   `json:"collapsed,omitempty"`
	Adopted   int    `json:"adopted,omitempty"`
	Scheduled int    `json:"scheduled,omitempty"`
	Skipped   bool   `json:"skipped,omitempty"` // another instance held the lease
	Plans     []Plan `json:"plans,omitempty"`   // drifting plans (when asked for)
	// EntraChanged counts the people an incremental sync found changed in
	// Entra (delta queries); DeltaErrors lists delta reads that failed and
	// are tried again at the next sync; DeltaReset says Graph no longer
	// accepted a delta link, so this sync became a complete one.
	EntraChanged int      `json:"entra_changed,omitempty"`
	DeltaErrors  []string `json:"delta_errors,omitempty"`
	DeltaReset   bool     `json:"delta_reset,omitempty"`

	adopt     []OwnershipRecord
	schedules []pendingSchedule
	links     bulkLinks // delta links of a complete read (BulkReader)
	snaps     map[string]syncSnapshot
}

type pendingSchedule struct {
	personID string
	at       time.Time
	reason   string
}

type syncState struct {
	LastSync     time.Time `json:"last_sync"`
	LastComplete time.Time `json:"last_complete"`
	// LastCompleteAttempt is when the last complete sync started, and
	// CompleteFailures how many complete syncs in a row failed since the
	// last one that succeeded: a failing complete sync is retried with
	// backoff while incremental syncs go on in between.
	LastCompleteAttempt time.Time `json:"last_complete_attempt,omitzero"`
	CompleteFailures    int       `json:"complete_failures,omitempty"`
}

// completeRetryBase is the first wait before a failed complete sync is
// tried again; each further failure doubles it, up to CompleteEvery.
const completeRetryBase = 15 * time.Minute

// completeDue reports whether the sync starting at now must be a complete
// one: never synced, no incremental read possible, or the last complete
// sync older than every. After a failed complete sync the next attempt
// waits min(every, 15 min · 2^(failures-1)) from that attempt, and the runs
// in between are incremental.
func (st syncState) completeDue(now time.Time, every time.Duration) bool {
	if st.LastSync.IsZero() || (st.LastComplete.IsZero() && st.CompleteFailures == 0) {
		return true
	}
	if st.CompleteFailures > 0 {
		wait := every
		if st.CompleteFailures <= 20 {
			wait = min(every, completeRetryBase<<(st.CompleteFailures-1))
		}
		return !now.Before(st.LastCompleteAttempt.Add(wait))
	}
	return now.Sub(st.LastComplete) >= every
}

const (
	stateKey = "sync.state"
	leaseKey = "sync.lease"
)

// SyncOptions choose what one sync does.
type SyncOptions struct {
	// Complete forces a complete read (otherwise incremental unless the
	// last complete one is older than CompleteEvery).
	Complete bool
	// WithPlans puts the drifting plans in the report.
	WithPlans bool
}

// Run performs one sync: incremental unless o.Complete or the last complete
// one is older than CompleteEvery. Only one instance runs at a time (a lease
// in State).
func (s *Syncer) Run(ctx context.Context, o SyncOptions) (SyncReport, error) {
	complete, withPlans := o.Complete, o.WithPlans
	e := s.cfg.Engine
	started := e.cfg.Now()
	rep := SyncReport{Started: started}
	release, ok, err := s.lease(ctx, 30*time.Minute)
	if err != nil {
		return rep, fmt.Errorf("full sync: lease: %w", err)
	}
	if !ok {
		rep.Skipped = true
		return rep, nil
	}
	defer release()

	st, _ := s.loadState(ctx)
	inc, canInc := e.cfg.Source.(IncrementalSource)
	if !complete && canInc && !st.completeDue(started, s.cfg.CompleteEvery) {
		rep.Kind = "incremental"
		err = s.incremental(ctx, inc, st.LastSync.Add(-5*time.Minute), &rep)
		if errors.Is(err, errDeltaReset) {
			// Graph no longer accepts a delta link: what changed since
			// it was issued is unknown, so read everything (which starts
			// the links again) instead of failing every sync.
			e.log.Warn("incremental sync: a delta link expired; running a complete sync instead", "err", err)
			rep = SyncReport{Started: started, Kind: "complete", DeltaReset: true}
			err = s.complete(ctx, &rep, withPlans)
			st.LastCompleteAttempt = started
		}
	} else {
		rep.Kind = "complete"
		err = s.complete(ctx, &rep, withPlans)
		st.LastCompleteAttempt = started
	}
	d := e.cfg.Now().Sub(started)
	rep.Duration = d.Round(time.Millisecond).String()
	outcome := "success"
	switch {
	case err != nil:
		outcome = "error"
	case rep.Guarded:
		outcome = "guarded"
	}
	fullSyncRuns.WithLabelValues(rep.Kind, outcome).Inc()
	if err != nil {
		if rep.Kind == "complete" && ctx.Err() == nil {
			// Record the failed attempt: the next runs are incremental
			// until the backoff allows the complete sync again.
			st.CompleteFailures++
			if serr := s.saveState(ctx, st); serr != nil {
				e.log.Error("save sync state", "err", serr)
			}
		}
		return rep, err
	}
	fullSyncDuration.Observe(d.Seconds())
	fullSyncLastSuccess.Set(float64(e.cfg.Now().Unix()))
	st.LastSync = started
	if rep.Kind == "complete" {
		st.LastComplete = started
		st.CompleteFailures = 0
	}
	if err := s.saveState(ctx, st); err != nil {
		e.log.Error("save sync state", "err", err)
	}
	e.log.Info("full sync done", "kind", rep.Kind, "employees", rep.Employees, "accounts", rep.Accounts,
		"drifting", rep.Drifting, "enqueued", rep.Enqueued, "guarded", rep.Guarded, "duration", rep.Duration)
	return rep, nil
}

// incremental enqueues the people Personio reports as changed and, when
// the Directory supports delta queries, the people whose account or
// managed-group membership changed in Entra since the previous sync (two
// Graph requests when nothing changed). The workers reconcile each. The
// delta links move on only once everyone is enqueued.
func (s *Syncer) incremental(ctx context.Context, src IncrementalSource, since time.Time, rep *SyncReport) error {
	drift, err := s.readEntraDrift(ctx, rep)
	if err != nil {
		return fmt.Errorf("incremental sync: %w", err)
	}
	emps, err := src.ListEmployeesUpdatedSince(ctx, since)
	if err != nil {
		return fmt.Errorf("incremental sync: %w", err)
	}
	rep.Employees = len(emps)
	ids := make([]string, 0, len(emps)+len(drift.people))
	for _, emp := range emps {
		ids = append(ids, emp.PersonID)
	}
	ids = append(ids, drift.people...)
	var people []string
	seen := map[string]bool{}
	for _, id := range ids {
		if id != "" && !seen[id] {
			seen[id] = true
			people = append(people, id)
		}
	}
	rep.Drifting = len(people)
	for _, id := range people {
		if err := s.cfg.Queue.Enqueue(ctx, id, "sync"); err != nil {
			return fmt.Errorf("incremental sync: enqueue %s: %w", id, err)
		}
		rep.Enqueued++
	}
	if err := drift.save(ctx); err != nil {
		return fmt.Errorf("incremental sync: save delta links: %w", err)
	}
	return nil
}

// complete bulk-reads both sides, plans everyone and enqueues only the
// people who drift; destructive drift beyond the guard waits for approval.
//
// With a BulkReader the reads are delta rounds whose links are saved for
// the incremental syncs once the read succeeded; otherwise the links are
// started from now before the read (two requests).
func (s *Syncer) complete(ctx context.Context, rep *SyncReport, withPlans bool) error {
	_, bulk := s.cfg.Engine.bulkReader()
	if !bulk {
		s.startDelta(ctx)
	}
	drift, err := s.cfg.Engine.Drift(ctx, rep)
	if err != nil {
		return err
	}
	if bulk {
		s.saveBulkLinks(ctx, rep.links)
	}
	return s.guardAndEnqueue(ctx, rep, drift, withPlans)
}

// Drift reads Entra and Personio completely (completeRead: the Entra users
// with an employeeId, the members of every managed group, then Personio)
// and plans everyone against that read (no per-person reads). It returns
// the plans that have changes; it applies nothing. rep (optional) receives
// the counts.
//
// Memory (docs/architecture.md#memory-of-a-complete-sync): Entra is kept
// for the whole plan; a PagedSource's people are planned a page at a time
// and let go, so the whole company is never held twice.
func (e *Engine) Drift(ctx context.Context, rep *SyncReport) ([]Plan, error) {
	if rep == nil {
		rep = &SyncReport{}
	}
	now := e.cfg.Now()
	var groups []GroupRef
	pic, err := e.readComplete(ctx, func(ctx context.Context) []GroupRef {
		var groupErrs []error
		groups, groupErrs = e.managedGroups(ctx)
		for _, ge := range groupErrs {
			e.log.Error("full sync: managed group unusable", "err", ge)
		}
		return groups
	})
	if err != nil {
		return nil, fmt.Errorf("full sync: %w", err)
	}
	rep.links = pic.links
	rep.Accounts, rep.Owned = pic.accounts, len(pic.owned)
	opt := PlanOptions{ManagedGroups: groups, ManageManager: e.cfg.ManageManager}
	for _, le := range e.licenseOptions(ctx, &opt) {
		e.log.Error("full sync: managed licence unusable", "err", le)
	}

	var drift []Plan
	planOne := func(d rules.Desired, emp *model.Employee) {
		var a Actual
		if us := pic.accountsOf(d.PersonID); len(us) == 1 {
			u := us[0]
			if e.isProtected(*u) {
				return
			}
			if !pic.owned[u.ID] {
				if emp == nil {
					// Not a Personio person and not ours: report, never change.
					rep.Unowned = append(rep.Unowned, u.UserPrincipalName)
					return
				}
				rep.adopt = append(rep.adopt, OwnershipRecord{UserID: u.ID, PersonID: d.PersonID, UPN: u.UserPrincipalName, How: "adopted", Since: now.UTC()})
			}
			if emp != nil {
				d = e.keepAccess(*emp, d, *u)
			}
			a = pic.actual(u, d.ManagerPersonID)
		} else if len(us) > 1 {
			// Ambiguous: the worker reports it with the details.
			drift = append(drift, Plan{PersonID: d.PersonID, Phase: d.Phase, Notes: []string{"several accounts carry this employeeId"}})
			return
		}
		p := ComputePlan(d, a, opt)
		p.Notes = append(p.Notes, d.Warnings...)
		if len(p.Changes) > 0 {
			drift = append(drift, p)
			if a.User != nil {
				rep.keepSnapshot(now, d, a)
			}
		}
		if !d.NextTransition.IsZero() && d.Phase != rules.PhaseOutOfScope {
			rep.schedules = append(rep.schedules, pendingSchedule{personID: d.PersonID, at: d.NextTransition, reason: string(d.Phase) + " transition"})
		}
	}
	err = pic.eachEmployee(ctx, func(emp *model.Employee) {
		d, err := e.desired(*emp, now)
		if err != nil {
			e.log.Error("full sync: evaluate rules", "person_id", emp.PersonID, "err", err)
			return
		}
		planOne(d, emp)
	})
	rep.Employees += pic.employees
	if err != nil {
		return nil, fmt.Errorf("full sync: %w", err)
	}
	// Owned accounts whose person no longer exists in Personio are leavers.
	for _, id := range pic.absent() {
		planOne(e.deletedPerson(id), nil)
	}
	slices.SortFunc(drift, func(a, b Plan) int { return strings.Compare(a.PersonID, b.PersonID) })
	slices.Sort(rep.Unowned)
	rep.Drifting = len(drift)
	return drift, nil
}

func (s *Syncer) guardAndEnqueue(ctx context.Context, rep *SyncReport, drift []Plan, withPlans bool) error {
	e := s.cfg.Engine
	g := e.guard
	fullSyncDrift.Set(float64(len(drift)))
	unownedGauge.Set(float64(len(rep.Unowned)))
	if withPlans {
		rep.Plans = drift
	}
	if len(rep.Unowned) > 0 {
		e.log.Warn("full sync: accounts carry an employeeId Personio does not know and are not owned by personio-entra; left alone",
			"count", len(rep.Unowned), "first", rep.Unowned[0])
	}
	if !e.cfg.DryRun {
		for _, rec := range rep.adopt {
			if err := e.own.Record(ctx, rec); err != nil {
				return fmt.Errorf("full sync: %w", err)
			}
			p := Plan{PersonID: rec.PersonID, UserID: rec.UserID, UPN: rec.UPN}
			e.audit(ctx, auditRecord(e.cfg.Now(), "sync", p, Change{Kind: AdoptAccount}, ResultApplied, "existing account matched this person through the matching keys", nil, false))
			rep.Adopted++
		}
	}

	// People who would lose access (disable, delete, revoke, leave a group,
	// lose their manager).
	var destructive, safe []Plan
	for _, p := range drift {
		if p.Destructive() > 0 {
			destructive = append(destructive, p)
			rep.Destructive += p.Destructive()
		} else {
			safe = append(safe, p)
		}
	}
	threshold, err := g.Threshold(ctx)
	if err != nil {
		return fmt.Errorf("full sync: %w", err)
	}
	var reason string
	rep.Collapsed = g.Collapsed(rep.Employees, rep.Owned)
	if rep.Collapsed {
		sourceCollapsed.Inc()
		reason = fmt.Sprintf("Personio returned %d people for %d owned accounts (below GUARD_MIN_SOURCE_PERCENT=%g%%): "+
			"a collapsed source takes no access away; check the Personio credential and company before approving",
			rep.Employees, rep.Owned, g.cfg.MinSourcePercent)
		e.log.Error("full sync: Personio returned far fewer people than the owned accounts; nothing destructive is applied",
			"employees", rep.Employees, "owned", rep.Owned)
	} else if len(destructive) > 0 {
		remaining, err := g.Remaining(ctx)
		if err != nil {
			return fmt.Errorf("full sync: %w", err)
		}
		if len(destructive) > remaining {
			// The sync knows the whole set up front: it holds all of it
			// rather than applying the first few.
			reason = fmt.Sprintf("a complete sync would take access away from %d people; the safeguard allows %d within %s (%d left now)",
				len(destructive), threshold, g.cfg.Window, remaining)
		}
	}
	toEnqueue := drift
	if reason != "" && len(destructive) > 0 {
		toEnqueue = safe
		rep.Guarded = true
		people := make([]HeldPerson, len(destructive))
		for i, p := range destructive {
			people[i] = heldPerson(p)
		}
		ap, err := g.Hold(ctx, people, reason, threshold)
		if err != nil {
			return fmt.Errorf("full sync: %w", err)
		}
		rep.ApprovalID = ap.ID
		e.log.Warn("full sync: destructive changes held for approval; the rest is applied",
			"people", len(destructive), "threshold", threshold, "approval_id", ap.ID,
			"approve_with", "personio-entra approve "+ap.ID)
	}
	if !e.cfg.DryRun && len(rep.snaps) > 0 {
		// What the sync read, for the reconciles it queues (snapshot.go);
		// held people are not queued, so their snapshots are not kept.
		keep := make(map[string]syncSnapshot, len(toEnqueue))
		for _, p := range toEnqueue {
			if sn, ok := rep.snaps[p.PersonID]; ok {
				keep[p.PersonID] = sn
			}
		}
		e.snaps.put(e.cfg.Now(), keep)
	}
	enqueued := map[string]bool{}
	for _, p := range toEnqueue {
		if err := s.cfg.Queue.Enqueue(ctx, p.PersonID, "sync"); err != nil {
			return fmt.Errorf("full sync: enqueue %s: %w", p.PersonID, err)
		}
		enqueued[p.PersonID] = true
		rep.Enqueued++
	}
	// Recovery: everyone with a future transition has a schedule, also when
	// their plan has no changes (the queued ones book theirs themselves).
	if sch := e.cfg.Scheduler; sch != nil && !e.cfg.DryRun {
		for _, ps := range rep.schedules {
			if enqueued[ps.personID] {
				continue
			}
			if err := sch.Schedule(ctx, ps.personID, ps.at, ps.reason); err != nil {
				return fmt.Errorf("full sync: schedule %s at %s: %w", ps.personID, ps.at.Format(time.RFC3339), err)
			}
			rep.Scheduled++
		}
	}
	g.refreshPending(ctx)
	return nil
}

// Approvals lists the change sets waiting for approval.
func (s *Syncer) Approvals(ctx context.Context) ([]Approval, error) {
	return s.cfg.Engine.guard.Approvals(ctx)
}

// Approve releases a held change set: its people are enqueued and the
// workers apply their changes (re-reading Personio first).
func (s *Syncer) Approve(ctx context.Context, id string) (Approval, error) {
	return s.cfg.Engine.guard.Approve(ctx, id)
}

type leaseValue struct {
	Holder  string    `json:"holder"`
	Expires time.Time `json:"expires"`
}

// lease takes the full-sync lease; ok is false when another instance holds it.
func (s *Syncer) lease(ctx context.Context, ttl time.Duration) (release func(), ok bool, err error) {
	now := time.Now()
	val, _ := json.Marshal(leaseValue{Holder: s.cfg.Holder, Expires: now.Add(ttl)})
	cur, rev, err := s.cfg.State.Get(ctx, leaseKey)
	switch {
	case errors.Is(err, ErrKeyNotFound):
		if _, err := s.cfg.State.Create(ctx, leaseKey, val); err != nil {
			return nil, false, nil // someone else created it first
		}
	case err != nil:
		return nil, false, err
	default:
		var lv leaseValue
		if json.Unmarshal(cur, &lv) == nil && now.Before(lv.Expires) {
			return nil, false, nil
		}
		if _, err := s.cfg.State.Update(ctx, leaseKey, val, rev); err != nil {
			return nil, false, nil
		}
	}
	return func() {
		if err := s.cfg.State.Delete(context.WithoutCancel(ctx), leaseKey); err != nil {
			s.cfg.Engine.log.Warn("release full-sync lease", "err", err)
		}
	}, true, nil
}

func (s *Syncer) loadState(ctx context.Context) (syncState, error) {
	var st syncState
	b, _, err := s.cfg.State.Get(ctx, stateKey)
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}

func (s *Syncer) saveState(ctx context.Context, st syncState) error {
	b, _ := json.Marshal(st)
	return s.cfg.State.Put(ctx, stateKey, b)
}

// RunEvery calls run at once and then every interval until ctx ends
// (interval <= 0: never). A failed run is logged and the next one runs at
// the next interval; Syncer.Run backs failed complete syncs off on its own.
func RunEvery(ctx context.Context, interval time.Duration, log *slog.Logger, run func(context.Context) error) {
	if interval <= 0 {
		return
	}
	once := func() {
		if err := run(ctx); err != nil && ctx.Err() == nil {
			log.Error("full sync failed; the next one runs at the next interval", "err", err)
		}
	}
	once()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			once()
		}
	}
}
