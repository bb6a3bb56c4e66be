package provisioning

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/personio-entra/personio-entra/queue/work"
	"github.com/personio-entra/personio-entra/rules"
)

// restoreResult is what the returner check found.
type restoreResult struct {
	// user is the account the reconcile goes on with: the restored one,
	// or (preview) the deleted one as it would come back. nil when there
	// is nothing to restore.
	user *User
	// change is the restore_user change (audited when applied).
	change Change
	// preview: a plan or dry run; nothing was restored.
	preview bool
	notes   []string
}

// returner looks for the person's soft-deleted account when the plan would
// create one. Only an account personio-entra owned is restored (the
// ownership record outlives the deletion: records are never removed); an
// unowned deleted account that carries the person's employeeId is reported
// and left alone, and its user principal name is kept out of the create,
// because Entra keeps it reserved while the account is restorable.
//
// A create never happens while a restorable owned account exists: every
// case that cannot restore (several owned candidates, a protected one, a
// return later than rehire_within_days, no free user principal name,
// Graph refusing) stops the person with an error for an admin instead.
func (e *Engine) returner(ctx context.Context, log *slog.Logger, now time.Time, trigger string, d *rules.Desired, preview bool) (*restoreResult, error) {
	if !d.Exists || d.Phase == rules.PhaseLeaver || d.Phase == rules.PhaseDeleted || d.Phase == rules.PhaseOutOfScope {
		return nil, nil
	}
	du, ok := unwrapDirectory(e.cfg.Directory).(DeletedUsers)
	if !ok {
		return nil, nil
	}
	found, err := du.FindDeletedUsers(ctx, d.PersonID)
	if err != nil {
		return nil, fmt.Errorf("reconcile %s: look for a deleted account before creating one: %w", d.PersonID, err)
	}
	res := &restoreResult{preview: preview}
	var mine []DeletedUser
	for _, x := range found {
		if !strings.EqualFold(x.EmployeeID, d.PersonID) {
			continue
		}
		owned, err := e.own.Owns(ctx, x.ID)
		if err != nil {
			return nil, fmt.Errorf("reconcile %s: %w", d.PersonID, err)
		}
		if !owned {
			note := fmt.Sprintf("deleted account %s (%s) carries this person's employeeId but personio-entra never created or adopted it: reported, not restored; its user principal name stays reserved while it is restorable",
				x.UserPrincipalName, x.ID)
			res.notes = append(res.notes, note)
			d.UPNCandidates = withoutUPN(d.UPNCandidates, x.UserPrincipalName)
			if !preview {
				restoresTotal.WithLabelValues("unowned").Inc()
				log.Warn("unowned deleted account left alone", "user_id", x.ID, "upn", x.UserPrincipalName)
				p := Plan{PersonID: d.PersonID, Phase: d.Phase, Reason: d.Reason, UserID: x.ID, UPN: x.UserPrincipalName}
				e.audit(ctx, auditRecord(now, trigger, p, Change{Kind: NoChange}, ResultSkipped, note, nil, e.cfg.DryRun))
			}
			continue
		}
		mine = append(mine, x)
	}
	switch len(mine) {
	case 0:
		return res, nil
	case 1:
	default:
		ids := make([]string, len(mine))
		for i, x := range mine {
			ids[i] = x.UserPrincipalName + " (" + x.ID + ")"
		}
		return nil, e.holdRestore(work.Terminal(fmt.Errorf("returner %s: %d deleted accounts of this person are in the recycle bin (%s); restore the right one by hand, then re-drive this dead letter",
			d.PersonID, len(mine), strings.Join(ids, ", "))))
	}
	x := mine[0]
	if e.isProtected(x.User) {
		return nil, e.holdRestore(work.Terminal(fmt.Errorf("returner %s: the deleted account %s is protected (PROTECTED_ACCOUNTS): it is not restored and no second account is created; restore it by hand, then re-drive this dead letter",
			d.PersonID, x.UserPrincipalName)))
	}
	if err := e.checkRehireDeleted(x, d.PersonID, now); err != nil {
		return nil, e.holdRestore(err)
	}
	upn, opts, err := e.restoreUPN(ctx, x, d.UPNCandidates, nil)
	if err != nil {
		return nil, e.holdRestore(err)
	}
	res.change = restoreChange(x, upn)
	back := x.User
	back.UserPrincipalName = upn
	back.Attributes = cloneAttrs(x.Attributes)
	res.user = &back
	deleted := x.DeletedAt.UTC().Format(time.RFC3339)
	if preview {
		res.notes = append(res.notes, fmt.Sprintf("returner: the deleted account %s (deleted %s) is restored instead of creating a new one; "+
			"the group changes shown assume it has no memberships, the ones it comes back with are read after the restore", x.UserPrincipalName, deleted))
		return res, nil
	}

	if err := e.noteWrite(ctx, d.PersonID, recentRestored, x.ID, upn); err != nil {
		return nil, fmt.Errorf("returner %s: %w", d.PersonID, err)
	}
	u, upn, err := e.restore(ctx, du, x, d.UPNCandidates, upn, opts)
	p := Plan{PersonID: d.PersonID, Phase: d.Phase, Reason: d.Reason, UserID: x.ID, UPN: x.UserPrincipalName}
	res.change = restoreChange(x, upn)
	if err != nil {
		e.record(ctx, log, now, trigger, p, res.change, ResultFailed, "returner: restoring the deleted account failed; no new account is created while it is restorable", err)
		switch {
		case errors.Is(err, ErrNotFound):
			// Restored by an attempt whose answer was lost, or purged
			// meanwhile: the next attempts go on with the account, read by
			// its object id through the record of this restore
			// (recent_account.go), or create nothing while that record is
			// fresh, and create once it is stale and the account is gone.
			return nil, fmt.Errorf("returner %s: the deleted account %s is no longer in the recycle bin: %w", d.PersonID, x.UserPrincipalName, err)
		case errors.Is(err, ErrForbidden):
			return nil, e.holdRestore(work.Terminal(fmt.Errorf("returner %s: Graph refused to restore %s (an app cannot restore an account that holds a privileged admin role, "+
				"or the app lacks User.ReadWrite.All): restore it by hand, then re-drive this dead letter: %w", d.PersonID, x.UserPrincipalName, err)))
		}
		return nil, e.holdRestore(e.classify(fmt.Errorf("returner %s: restore %s: %w", d.PersonID, x.UserPrincipalName, err)))
	}
	back.UserPrincipalName = upn
	if u.Mail != "" {
		back.Mail = u.Mail
	}
	res.user = &back
	e.noteAccount(ctx, log, d.PersonID, recentRestored, back)
	note := fmt.Sprintf("returner: account restored from the recycle bin (deleted %s) instead of creating a second one", deleted)
	outcome := "restored"
	if !strings.EqualFold(upn, x.UserPrincipalName) {
		note += fmt.Sprintf("; %s is held by another account, so it was restored as %s", x.UserPrincipalName, upn)
		outcome = "restored_new_upn"
	}
	restoresTotal.WithLabelValues(outcome).Inc()
	p.UPN = upn
	e.record(ctx, log, now, trigger, p, res.change, ResultApplied, note, nil)
	return res, nil
}

// holdRestore counts a returner held for an admin.
func (e *Engine) holdRestore(err error) error {
	restoresTotal.WithLabelValues("held").Inc()
	return err
}

// checkRehireDeleted applies rehire_within_days to a deleted account: the
// leave date recorded on it, else the deletion (which came after the leave
// date), must be within the window.
func (e *Engine) checkRehireDeleted(x DeletedUser, personID string, now time.Time) error {
	if e.cfg.RehireWithin <= 0 {
		return nil
	}
	left, what := x.DeletedAt, "was deleted"
	if t, err := time.Parse(time.RFC3339, x.Attributes[leaveDateProperty]); err == nil {
		left, what = t, "left"
	}
	if left.IsZero() || now.Sub(left) <= e.cfg.RehireWithin {
		return nil
	}
	return work.Terminal(fmt.Errorf("returner %s: the deleted account %s %s on %s, more than the rehire window (%s) ago: it is not restored automatically, "+
		"and no second account is created while it is restorable; restore it by hand (or delete it permanently to let a new one be created), then re-drive this dead letter",
		personID, x.UserPrincipalName, what, left.Format(time.DateOnly), e.cfg.RehireWithin))
}

// restoreUPN picks the user principal name the account comes back with:
// its own when no active account holds it, else the first candidate of
// the rules no one holds (skipping tried ones). A new name comes with
// autoReconcileProxyConflict: the account that took the old name most
// likely took its address too.
func (e *Engine) restoreUPN(ctx context.Context, x DeletedUser, candidates, tried []string) (string, RestoreOptions, error) {
	free := func(upn string) (bool, error) {
		holders, err := e.cfg.Directory.FindUsers(ctx, "userPrincipalName", upn)
		if err != nil {
			return false, fmt.Errorf("returner: check %s: %w", upn, err)
		}
		for _, h := range holders {
			if h.ID != x.ID {
				return false, nil
			}
		}
		return true, nil
	}
	if !containsFold(tried, x.UserPrincipalName) {
		ok, err := free(x.UserPrincipalName)
		if err != nil {
			return "", RestoreOptions{}, err
		}
		if ok {
			return x.UserPrincipalName, RestoreOptions{}, nil
		}
	}
	var taken []string
	for _, c := range candidates {
		if strings.EqualFold(c, x.UserPrincipalName) || containsFold(tried, c) {
			continue
		}
		ok, err := free(c)
		if err != nil {
			return "", RestoreOptions{}, err
		}
		if ok {
			return c, RestoreOptions{NewUserPrincipalName: c, AutoReconcileProxyConflict: true}, nil
		}
		taken = append(taken, c)
	}
	return "", RestoreOptions{}, work.Terminal(fmt.Errorf("returner %s: the deleted account %s cannot be restored: its user principal name is held by another account and every candidate of the rules is taken too (%s); "+
		"no second account is created while it is restorable: free a name or add a candidate to upn.candidates, or restore it by hand, then re-drive this dead letter",
		x.EmployeeID, x.UserPrincipalName, strings.Join(append(tried, taken...), ", ")))
}

// restore calls Graph and resolves the clashes it reports: a proxy address
// another object uses is dropped from the restored account
// (autoReconcileProxyConflict); a user principal name taken meanwhile moves
// on to the next free candidate.
func (e *Engine) restore(ctx context.Context, du DeletedUsers, x DeletedUser, candidates []string, upn string, opts RestoreOptions) (User, string, error) {
	tried := []string{}
	for attempt := 0; attempt < len(candidates)+3; attempt++ {
		u, err := du.RestoreDeletedUser(ctx, x.ID, opts)
		if err == nil {
			return u, upn, nil
		}
		var de *DirectoryError
		if !errors.As(err, &de) || de.Kind != KindConflict {
			return User{}, upn, err
		}
		if !strings.EqualFold(de.Target, "userPrincipalName") && !opts.AutoReconcileProxyConflict {
			// An address of the account is used by another object now.
			opts.AutoReconcileProxyConflict = true
			continue
		}
		tried = append(tried, upn)
		upn, opts, err = e.restoreUPN(ctx, x, candidates, tried)
		if err != nil {
			return User{}, upn, err
		}
	}
	return User{}, upn, work.Terminal(fmt.Errorf("returner %s: restoring %s kept clashing with other accounts; restore it by hand", x.EmployeeID, x.UserPrincipalName))
}

func restoreChange(x DeletedUser, upn string) Change {
	return Change{Kind: RestoreUser,
		Properties: map[string]*string{"userPrincipalName": ptr(upn)},
		Previous:   map[string]string{"userPrincipalName": x.UserPrincipalName, "deletedDateTime": x.DeletedAt.UTC().Format(time.RFC3339)}}
}

func withoutUPN(list []string, upn string) []string {
	out := list[:0:0]
	for _, c := range list {
		if !strings.EqualFold(c, upn) {
			out = append(out, c)
		}
	}
	return out
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func cloneAttrs(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
