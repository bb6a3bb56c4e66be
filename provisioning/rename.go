package provisioning

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/personio-entra/personio-entra/provisioning/model"
	"github.com/personio-entra/personio-entra/queue/work"
	"github.com/personio-entra/personio-entra/rules"
)

// nameProperties are the properties a name change shows up in.
var nameProperties = []string{"displayName", "givenName", "surname"}

// renameState is what applying a rename_user change needs and learns.
type renameState struct {
	// fallback are the candidates after the chosen one, tried in order
	// when the chosen name turns out to be taken (a soft-deleted account
	// holds it, or someone took it since the plan).
	fallback []string
	// deriveNick: the rules set no mail_nickname, so it follows the user
	// principal name actually used.
	deriveNick bool
	nick       string
	personID   string
	applied    bool
	upn        string // the user principal name the account got
}

// planRename turns the attribute update of a name change into a rename
// when upn.on_name_change is rename: the account's user principal name
// (and mail nickname) move to the first free candidate of the new name,
// chosen like a create's (the account's own name counts as free for it).
//
// A rename happens only for an owned account (created or adopted) that is
// active or pre-hire, whose name properties (displayName, givenName,
// surname) change in this plan, and whose current user principal name is
// none of the new name's candidates. A name that still fits (a fallback
// template, say) is kept, and an account that merely carries a hand-made
// name is never renamed without a name change.
//
// When every candidate is taken, the name properties are held back (so a
// later run still sees the change) and the reconcile ends with an error
// for an admin once the person's other changes are applied.
func (e *Engine) planRename(ctx context.Context, p *Plan, d rules.Desired, u *User, emp model.Employee, lr *lifecycleRun) (hold, err error) {
	if !e.cfg.Lifecycle.RenameOnNameChange || u == nil || (d.Phase != rules.PhaseActive && d.Phase != rules.PhasePreHire) {
		return nil, nil
	}
	i := -1
	for j, c := range p.Changes {
		if c.Kind == UpdateUser && hasNameProperty(c) {
			i = j
		}
	}
	if i < 0 || containsFold(d.UPNCandidates, u.UserPrincipalName) {
		return nil, nil
	}
	if len(d.UPNCandidates) == 0 {
		p.Notes = append(p.Notes, "name changed, but the rules give no user principal name candidate for the new name: the account keeps "+u.UserPrincipalName)
		return nil, nil
	}
	if u.OnPremisesSync {
		p.Notes = append(p.Notes, "name changed, but the account is synced from on-premises Active Directory: rename it there")
		return nil, nil
	}
	owned, err := e.own.Owns(ctx, u.ID)
	if err != nil {
		return nil, fmt.Errorf("rename: %w", err)
	}
	if !owned {
		return nil, nil
	}
	chosen := -1
	for j, c := range d.UPNCandidates {
		ok, err := e.upnFreeFor(ctx, c, u.ID)
		if err != nil {
			return nil, err
		}
		if ok {
			chosen = j
			break
		}
	}
	c := p.Changes[i]
	if chosen < 0 {
		for _, n := range nameProperties {
			delete(c.Properties, n)
			delete(c.Previous, n)
		}
		if len(c.Properties) == 0 {
			p.Changes = append(p.Changes[:i], p.Changes[i+1:]...)
		}
		msg := fmt.Sprintf("rename of %s (person %s): the name changed, but every user principal name candidate of the new name is taken (%s); "+
			"the name change waits: free a name or add a candidate to upn.candidates, then re-drive this dead letter",
			u.UserPrincipalName, d.PersonID, strings.Join(d.UPNCandidates, ", "))
		p.Notes = append(p.Notes, msg)
		return work.Terminal(errors.New(msg)), nil
	}
	upn := d.UPNCandidates[chosen]
	st := &renameState{fallback: d.UPNCandidates[chosen+1:], nick: d.MailNickname, personID: d.PersonID,
		deriveNick: d.MailNickname == "" || d.MailNickname == rules.MailNicknameFor(d.UPNCandidates[0])}
	c.Kind = RenameUser
	c.Properties["userPrincipalName"] = ptr(upn)
	c.Properties["mailNickname"] = ptr(st.nickFor(upn))
	c.Previous["userPrincipalName"] = u.UserPrincipalName
	c.rename = st
	p.Changes[i] = c
	lr.rename = st
	return nil, nil
}

func hasNameProperty(c Change) bool {
	for _, n := range nameProperties {
		if _, ok := c.Properties[n]; ok {
			return true
		}
	}
	return false
}

func (st *renameState) nickFor(upn string) string {
	if st.deriveNick {
		if n := rules.MailNicknameFor(upn); n != "" {
			return n
		}
	}
	return st.nick
}

// upnFreeFor reports whether no account but userID holds upn.
func (e *Engine) upnFreeFor(ctx context.Context, upn, userID string) (bool, error) {
	holders, err := e.cfg.Directory.FindUsers(ctx, "userPrincipalName", upn)
	if err != nil {
		return false, fmt.Errorf("rename: check %s: %w", upn, err)
	}
	for _, h := range holders {
		if h.ID != userID {
			return false, nil
		}
	}
	return true, nil
}

// applyRename patches the user principal name, mail nickname and name
// properties in one request, so that a failed rename leaves the name
// change for the next run. A name Graph refuses as taken (a soft-deleted
// account keeps its name reserved and no read shows it) moves on to the
// next free candidate; the change's properties then name the one used,
// which is what the audit records.
func (e *Engine) applyRename(ctx context.Context, userID string, c Change) error {
	st := c.rename
	if st == nil {
		return &DirectoryError{Kind: KindRejected, Op: "rename user", Message: "the rename was not planned by this engine"}
	}
	try := append([]string{deref(c.Properties["userPrincipalName"])}, st.fallback...)
	var taken []string
	for j, upn := range try {
		if j > 0 {
			ok, err := e.upnFreeFor(ctx, upn, userID)
			if err != nil {
				return err
			}
			if !ok {
				taken = append(taken, upn)
				continue
			}
		}
		c.Properties["userPrincipalName"] = ptr(upn)
		c.Properties["mailNickname"] = ptr(st.nickFor(upn))
		err := e.cfg.Directory.UpdateUser(ctx, userID, c.Properties)
		if errors.Is(err, ErrConflict) {
			taken = append(taken, upn)
			continue
		}
		if err != nil {
			return err
		}
		st.applied, st.upn = true, upn
		return nil
	}
	return work.Terminal(fmt.Errorf("rename of person %s: every user principal name candidate is taken (%s); the name change waits: free a name or add a candidate, then re-drive this dead letter",
		st.personID, strings.Join(taken, ", ")))
}

// writeBackRename stores the new user principal name as the person's email
// in Personio when email write-back is on (PERSONIO_WRITE_BACK_EMAIL), as
// a create does. A failure is audited and does not fail the reconcile.
func (e *Engine) writeBackRename(ctx context.Context, log *slog.Logger, now time.Time, trigger string, res *Result, emp model.Employee, upn string) {
	if e.cfg.WriteBackEmail == nil || strings.EqualFold(emp.Email, upn) {
		return
	}
	c := Change{Kind: WriteBackEmail, Properties: map[string]*string{"email": ptr(upn)}, Previous: map[string]string{"email": emp.Email}}
	if err := e.cfg.WriteBackEmail(ctx, emp.PersonID, upn); err != nil {
		e.record(ctx, log, now, trigger, res.Plan, c, ResultFailed, "account renamed; Personio keeps the old email", err)
		return
	}
	e.record(ctx, log, now, trigger, res.Plan, c, ResultApplied, "account renamed", nil)
}
