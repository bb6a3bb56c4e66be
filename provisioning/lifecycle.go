package provisioning

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/personio-entra/personio-entra/provisioning/model"
	"github.com/personio-entra/personio-entra/rules"
)

// LifecycleSettings are the rules' settings for returners, name changes
// and licences (Config.Lifecycle, filled by ApplyRules).
type LifecycleSettings struct {
	// RenameOnNameChange: upn.on_name_change is rename (rename.go).
	RenameOnNameChange bool
	// Licenses are the licences the rules manage (licenses.go).
	Licenses []rules.LicenseRule
}

// lifecycleState is the engine's state for this file's features.
type lifecycleState struct {
	licenses licenseCache
}

func (c *Config) applyLifecycleRules(r *rules.Rules) {
	c.Lifecycle = LifecycleSettings{
		RenameOnNameChange: r.OnNameChange() == rules.RenameUPN,
		Licenses:           r.ManagedLicenses(),
	}
}

var (
	licenseFailures = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "personio_entra_license_assignment_failures_total",
		Help: "Licence assignments and removals Graph refused, by reason (no_seats, no_usage_location, other).",
	}, []string{"reason"})
	licenseSeatsAvailable = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "personio_entra_license_seats_available",
		Help: "Free seats (prepaidUnits.enabled - consumedUnits) of each licence the rules manage, as last read from subscribedSkus.",
	}, []string{"sku"})
	restoresTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "personio_entra_returner_restores_total",
		Help: "Returners' deleted accounts by outcome (restored, restored_new_upn, held, unowned).",
	}, []string{"outcome"})
)

func init() {
	// Expose the reasons at zero, so that alerts on increase() see the
	// first refusal and dashboards show the series before anything failed.
	for _, reason := range []string{"no_seats", "no_usage_location", "other"} {
		licenseFailures.WithLabelValues(reason)
	}
	for _, outcome := range []string{"restored", "restored_new_upn", "held", "unowned"} {
		restoresTotal.WithLabelValues(outcome)
	}
}

// lifecycleRun carries one reconcile's returner and rename state between
// the engine's hooks (engine.go: beforePlan, actualFor, afterPlan,
// afterApply).
type lifecycleRun struct {
	restore *restoreResult
	recent  *recentRun // a recent create or restore (recent_account.go)
	rename  *renameState
	// hold is returned once the other changes are applied: a change that
	// waits for an admin (a rename with no free candidate).
	hold error
}

// beforePlan runs after the match: a person who should have an account but
// has none may have one that Graph does not show yet (created or restored
// moments ago: recent_account.go), or be a returner whose account is in
// the recycle bin. It goes on with the first, restores the second (or, in
// a plan or dry run, shows the restore) so that the rest of the reconcile
// works on it, and it keeps the user principal names of deleted accounts
// that are not ours out of the create.
func (e *Engine) beforePlan(ctx context.Context, log *slog.Logger, now time.Time, trigger string, d *rules.Desired, user **User, planOnly bool) (*lifecycleRun, error) {
	lr := &lifecycleRun{}
	if *user != nil {
		return lr, nil
	}
	u, recent, err := e.recentAccountFor(ctx, log, d, planOnly)
	if err != nil {
		return nil, err
	}
	lr.recent = recent
	if u != nil {
		*user = u
		return lr, nil
	}
	r, err := e.returner(ctx, log, now, trigger, d, planOnly || e.cfg.DryRun)
	if err != nil {
		return nil, err
	}
	lr.restore = r
	if r != nil && r.user != nil {
		*user = r.user
		return lr, nil
	}
	if err := e.beforeCreate(d, recent); err != nil {
		return nil, err
	}
	return lr, nil
}

// actualFor reads the actual state; an account only shown as restored (a
// plan or dry run) is still deleted, so its memberships cannot be read.
func (e *Engine) actualFor(ctx context.Context, u *User, d rules.Desired, lr *lifecycleRun) (Actual, error) {
	if lr == nil || lr.restore == nil || !lr.restore.preview || u == nil {
		return e.actual(ctx, u, d)
	}
	a := Actual{User: u, Groups: map[string]bool{}}
	if e.cfg.ManageManager && d.ManagerPersonID != "" && u.ManagerEmployeeID != d.ManagerPersonID {
		m, err := e.findByEmployeeID(ctx, d.ManagerPersonID)
		if err != nil {
			return a, err
		}
		a.Manager = m
	}
	return a, nil
}

// afterPlan adds what this file's features change to the plan: the
// restore of a plan or dry run, the notes about deleted accounts, and the
// rename after a name change.
func (e *Engine) afterPlan(ctx context.Context, p *Plan, d rules.Desired, u *User, emp model.Employee, lr *lifecycleRun) error {
	if lr == nil {
		return nil
	}
	if lr.recent != nil && lr.recent.note != "" {
		p.Notes = append(p.Notes, lr.recent.note)
	}
	if r := lr.restore; r != nil {
		p.Notes = append(p.Notes, r.notes...)
		if r.user != nil {
			p.UserID, p.UPN = r.user.ID, r.user.UserPrincipalName
			if r.preview {
				p.Changes = append([]Change{r.change}, p.Changes...)
			}
		}
	}
	hold, err := e.planRename(ctx, p, d, u, emp, lr)
	lr.hold = hold
	return err
}

// afterApply completes the result: the restore that ran before planning
// joins the applied changes, a rename is written back to Personio when
// that is configured, and a held change is returned.
func (e *Engine) afterApply(ctx context.Context, log *slog.Logger, now time.Time, trigger string, res *Result, emp model.Employee, lr *lifecycleRun) error {
	if lr == nil {
		return nil
	}
	if r := lr.restore; r != nil && r.user != nil && !r.preview {
		res.Plan.Changes = append([]Change{r.change}, res.Plan.Changes...)
		res.Applied++
	}
	if st := lr.rename; st != nil && st.applied {
		res.Plan.UPN = st.upn
		e.writeBackRename(ctx, log, now, trigger, res, emp, st.upn)
	}
	return lr.hold
}
