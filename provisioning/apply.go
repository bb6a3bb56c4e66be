package provisioning

import (
	"context"
	"errors"
	"fmt"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"github.com/personio-entra/personio-entra/queue/work"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// apply carries out the plan's changes in order, auditing each. After a
// create it plans again against the new account so that manager and groups
// are set in the same run (groups on day one).
func (e *Engine) apply(ctx context.Context, log *slog.Logger, now time.Time, trigger string, res *Result, emp model.Employee, actual Actual, opt PlanOptions) error {
	plan := &res.Plan
	if len(plan.Changes) == 0 {
		return nil
	}
	if e.cfg.DryRun {
		for _, c := range plan.Changes {
			e.record(ctx, log, now, trigger, *plan, c, ResultPlanned, "dry run", nil)
			res.Skipped++
		}
		return nil
	}
	if len(plan.Changes) == 1 && plan.Changes[0].Kind == CreateUser {
		c := plan.Changes[0]
		u, err := e.create(ctx, c, plan.PersonID)
		if err != nil {
			e.record(ctx, log, now, trigger, *plan, c, ResultFailed, "", err)
			res.Failed++
			return e.classify(err)
		}
		c.UPNCandidates = []string{u.UserPrincipalName}
		plan.UserID, plan.UPN = u.ID, u.UserPrincipalName
		e.record(ctx, log, now, trigger, *plan, c, ResultApplied, "", nil)
		res.Applied++
		if err := e.own.Record(ctx, OwnershipRecord{UserID: u.ID, PersonID: plan.PersonID, UPN: u.UserPrincipalName, How: "created", Since: now.UTC()}); err != nil {
			// The next reconcile adopts it: it carries this person's employeeId.
			log.Error("record ownership of the new account", "err", err)
		}
		e.noteAccount(ctx, log, plan.PersonID, recentCreated, u) // recent_account.go
		e.writeBackEmail(ctx, log, now, trigger, res, emp, u)
		// Follow-up: manager and groups for the new account. The new object
		// may not be replicated yet; the adapter retries 404s (docs/graph-behaviour.md#replication-delay).
		next, err := e.actual(ctx, &u, plan.Desired)
		if err != nil {
			return err
		}
		next.Groups = map[string]bool{} // a new account is in no group
		follow := ComputePlan(plan.Desired, next, opt)
		// create may have found this person's account already stored (an
		// earlier create whose answer was lost, or one replication hid from
		// the match). Nothing takes access away from it here: the safeguard
		// admitted a create, not that. The next reconcile (booked like a
		// manager retry) matches the account and asks the safeguard.
		var destructive []Change
		follow.Changes, destructive = splitDestructive(follow.Changes)
		if len(destructive) > 0 {
			follow.Notes = append(follow.Notes, fmt.Sprintf("the create found this person's account already stored; %d change(s) that take access away wait for the next reconcile and the safeguard", len(destructive)))
			follow.Wait = true
		}
		plan.Changes = append(plan.Changes, follow.Changes...)
		plan.Notes = append(plan.Notes, follow.Notes...)
		plan.Wait = plan.Wait || follow.Wait
		return e.applyChanges(ctx, log, now, trigger, res, u.ID, follow.Changes)
	}
	return e.applyChanges(ctx, log, now, trigger, res, plan.UserID, plan.Changes)
}

// writeBackEmail stores the new account's UPN in Personio when configured.
// A failure is audited but does not fail the reconcile: the account exists
// and the write-back is a convenience.
func (e *Engine) writeBackEmail(ctx context.Context, log *slog.Logger, now time.Time, trigger string, res *Result, emp model.Employee, u User) {
	if e.cfg.WriteBackEmail == nil || strings.EqualFold(emp.Email, u.UserPrincipalName) {
		return
	}
	c := Change{Kind: WriteBackEmail, Properties: map[string]*string{"email": ptr(u.UserPrincipalName)}, Previous: map[string]string{"email": emp.Email}}
	if err := e.cfg.WriteBackEmail(ctx, emp.PersonID, u.UserPrincipalName); err != nil {
		e.record(ctx, log, now, trigger, res.Plan, c, ResultFailed, "account created; Personio keeps the old email", err)
		return
	}
	e.record(ctx, log, now, trigger, res.Plan, c, ResultApplied, "", nil)
}

func (e *Engine) applyChanges(ctx context.Context, log *slog.Logger, now time.Time, trigger string, res *Result, userID string, changes []Change) error {
	var firstErr error
	// Group additions are independent of each other: send them together so
	// that each joins its group's batch at once. Those of an account that
	// stays disabled until its start date are held instead of waited for
	// (batcher_held.go): they are audited when they are written.
	addErrs := map[int]error{}
	held := map[int]bool{}
	for i, c := range changes {
		var err error
		if held[i] {
			continue
		}
		switch {
		case c.Kind == AddMember && (i == 0 || changes[i-1].Kind != AddMember) && e.canHold(res.Plan):
			j := i
			for j < len(changes) && changes[j].Kind == AddMember {
				j++
			}
			if e.holdAdditions(ctx, log, now, trigger, res.Plan, userID, changes[i:j]) {
				for k := i; k < j; k++ {
					held[k] = true
				}
				continue
			}
			err = e.addAll(ctx, userID, changes, i, addErrs)
		case c.Kind != AddMember:
			err = e.applyOne(ctx, userID, c)
		case i == 0 || changes[i-1].Kind != AddMember:
			// First of a run of additions: send the whole run at once.
			err = e.addAll(ctx, userID, changes, i, addErrs)
		default:
			err = addErrs[i]
		}
		switch {
		case err == nil:
			e.record(ctx, log, now, trigger, res.Plan, c, ResultApplied, "", nil)
			res.Applied++
		case errors.Is(err, ErrForbidden):
			// Graph refuses (privileged target, missing permission): never
			// retry; treat the account as protected (docs/safety.md).
			e.record(ctx, log, now, trigger, res.Plan, c, ResultFailed, "forbidden: account treated as protected", err)
			res.Failed++
			for k, rest := range changes[i+1:] {
				if held[i+1+k] {
					continue // audited when written
				}
				e.record(ctx, log, now, trigger, res.Plan, rest, ResultSkipped, "earlier change was forbidden", nil)
				res.Skipped++
			}
			return work.Terminal(fmt.Errorf("%s: %w", c, err))
		default:
			e.record(ctx, log, now, trigger, res.Plan, c, ResultFailed, "", err)
			res.Failed++
			if firstErr == nil {
				firstErr = fmt.Errorf("%s: %w", c, err)
			}
		}
	}
	if firstErr != nil {
		return e.classify(firstErr)
	}
	return nil
}

// addAll sends the run of additions starting at changes[i] at once and
// stores each result in errs; it returns the first one's.
func (e *Engine) addAll(ctx context.Context, userID string, changes []Change, i int, errs map[int]error) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	for j := i; j < len(changes) && changes[j].Kind == AddMember; j++ {
		wg.Go(func() {
			err := e.applyOne(ctx, userID, changes[j])
			mu.Lock()
			errs[j] = err
			mu.Unlock()
		})
	}
	wg.Wait()
	return errs[i]
}

func (e *Engine) applyOne(ctx context.Context, userID string, c Change) error {
	d := e.cfg.Directory
	switch c.Kind {
	case UpdateUser:
		return d.UpdateUser(ctx, userID, c.Properties)
	case EnableUser:
		return d.SetAccountEnabled(ctx, userID, true)
	case DisableUser:
		return d.SetAccountEnabled(ctx, userID, false)
	case RevokeSessions:
		return d.RevokeSessions(ctx, userID)
	case SetManager:
		return d.SetManager(ctx, userID, c.Manager)
	case RemoveManager:
		return d.SetManager(ctx, userID, "")
	case AddMember:
		return e.members.Add(ctx, c.Group, userID)
	case RemoveMember:
		return d.RemoveGroupMember(ctx, c.Group, userID)
	case DeleteUser:
		return d.DeleteUser(ctx, userID)
	case RenameUser:
		return e.applyRename(ctx, userID, c)
	case AssignLicense, RemoveLicense, DisableLicensePlans:
		return e.applyLicense(ctx, userID, c)
	}
	return fmt.Errorf("unknown change kind %q", c.Kind)
}

// create picks the first free UPN candidate and creates the account. A
// candidate taken by an account with the same employeeId is our account.
//
// A create whose outcome was never learnt (timed out, or the reconcile
// failed after Graph stored it) is retried while Graph may not show the
// account yet: the candidate's UPN is taken, but neither the UPN nor the
// employeeId finds the holder. Moving on to the next candidate then would
// make a second account, so the holder is waited for through the
// replication window first (awaitHolder); if it stays invisible the
// create fails retryably, with no further candidate tried.
func (e *Engine) create(ctx context.Context, c Change, personID string) (User, error) {
	if len(c.UPNCandidates) == 0 {
		return User{}, work.Terminal(errors.New("create: the rules produced no UPN candidate"))
	}
	var taken []string
	for i, upn := range c.UPNCandidates {
		users, err := e.cfg.Directory.FindUsers(ctx, "userPrincipalName", upn)
		if err != nil {
			return User{}, fmt.Errorf("create: check %s: %w", upn, err)
		}
		if len(users) > 0 {
			if users[0].EmployeeID == personID {
				return users[0], nil
			}
			taken = append(taken, upn)
			continue
		}
		nick := c.MailNickname
		if i > 0 && nick == localPart(c.UPNCandidates[0]) {
			nick = localPart(upn) // keep the alias in step with the UPN actually used
		}
		props := map[string]string{"employeeId": personID}
		for k, v := range c.Properties {
			if v != nil {
				props[k] = *v
			}
		}
		props["employeeId"] = personID
		if err := e.noteWrite(ctx, personID, recentCreated, "", upn); err != nil { // recent_account.go
			return User{}, fmt.Errorf("create: %w", err)
		}
		u, err := e.cfg.Directory.CreateUser(ctx, NewUser{UserPrincipalName: upn, MailNickname: nick, AccountEnabled: c.Enabled, Attributes: props})
		if errors.Is(err, ErrRejected) || errors.Is(err, ErrForbidden) {
			e.forgetWrite(ctx, personID) // refused: nothing was stored
		}
		if errors.Is(err, ErrConflict) {
			var de *DirectoryError
			if errors.As(err, &de) && de.Target != "" && !strings.EqualFold(de.Target, "userPrincipalName") {
				// A proxy address or alias clash, not the UPN: was it us?
				// Otherwise try the next candidate.
				if mine, ferr := e.findByEmployeeID(ctx, personID); ferr == nil && mine != nil {
					return *mine, nil
				}
				taken = append(taken, upn)
				continue
			}
			// The UPN is taken although the check above did not see it:
			// by a create of ours Graph has not replicated yet, or by
			// someone else. Wait until the holder can be read.
			mine, werr := e.awaitHolder(ctx, upn, personID)
			if werr != nil {
				return User{}, werr
			}
			if mine != nil {
				return *mine, nil
			}
			taken = append(taken, upn)
			continue
		}
		if err != nil {
			return User{}, fmt.Errorf("create %s: %w", upn, err)
		}
		// Graph answers a create with its default property set only
		// (docs/graph-behaviour.md#query-modes); the account holds what was sent, so the follow-up
		// plan must not patch those properties again.
		if u.Attributes == nil {
			u.Attributes = map[string]string{}
		}
		for k, v := range props {
			if _, ok := u.Attributes[k]; !ok {
				u.Attributes[k] = v
			}
		}
		if u.EmployeeID == "" {
			u.EmployeeID = personID
		}
		return u, nil
	}
	return User{}, work.Terminal(fmt.Errorf("create: every UPN candidate is taken (%s); add a candidate template to the rules", strings.Join(taken, ", ")))
}

// awaitHolder waits, for at most the replication window, until the account
// holding upn (or any account with the person's employeeId) can be read
// (Entra is eventually consistent: https://devblogs.microsoft.com/identity/designing-for-eventual-consistency-for-microsoft-entra/).
// It returns the person's own account, or nil when the UPN belongs to
// someone else; an error, never permanent, when the holder stays unknown.
func (e *Engine) awaitHolder(ctx context.Context, upn, personID string) (*User, error) {
	deadline := time.Now().Add(e.cfg.ReplicationWait)
	delay := 250 * time.Millisecond
	for {
		holders, err := e.cfg.Directory.FindUsers(ctx, "userPrincipalName", upn)
		if err != nil {
			return nil, fmt.Errorf("create: look up the holder of %s: %w", upn, err)
		}
		for _, h := range holders {
			if strings.EqualFold(h.EmployeeID, personID) {
				return &h, nil
			}
		}
		mine, err := e.findByEmployeeID(ctx, personID)
		if err != nil {
			return nil, fmt.Errorf("create: look up employeeId %s: %w", personID, err)
		}
		if mine != nil {
			return mine, nil // our account, under this or another candidate
		}
		if len(holders) > 0 {
			return nil, nil // someone else's
		}
		if !time.Now().Before(deadline) {
			return nil, &DirectoryError{Kind: KindTransient, Op: "create user",
				Message: fmt.Sprintf("%s is taken by an account Graph does not show yet (not replicated within %s); "+
					"not trying the next candidate, which could make a second account for person %s", upn, e.cfg.ReplicationWait, personID)}
		}
		t := time.NewTimer(min(delay, time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("create: wait for the holder of %s: %w", upn, ctx.Err())
		case <-t.C:
		}
		delay = min(delay*2, 4*time.Second)
	}
}

func localPart(upn string) string {
	if i := strings.LastIndexByte(upn, '@'); i >= 0 {
		return upn[:i]
	}
	return upn
}

// classify marks errors retrying cannot fix as permanent.
func (e *Engine) classify(err error) error {
	var de *DirectoryError
	if errors.As(err, &de) {
		switch de.Kind {
		case KindRejected, KindForbidden:
			return work.Terminal(err)
		}
	}
	return err
}

func (e *Engine) record(ctx context.Context, log *slog.Logger, now time.Time, trigger string, p Plan, c Change, result, note string, err error) {
	changesTotal.WithLabelValues(string(c.Kind), result).Inc()
	rec := auditRecord(now, trigger, p, c, result, note, err, e.cfg.DryRun)
	lvl := slog.LevelInfo
	if err != nil {
		lvl = slog.LevelError
	}
	log.Log(ctx, lvl, "change", "kind", c.Kind, "result", result, "change", c.String(), "upn", p.UPN, "note", note, "err", errString(err))
	e.audit(ctx, rec)
}
