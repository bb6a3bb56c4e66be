package provisioning

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/personio-entra/personio-entra/rules"
)

// Recent accounts: the record of an account this product has just
// created or restored, so that no second one is made while Graph does not
// show it yet.
//
// Graph's directory reads are eventually consistent: right after a create
// or a restore (POST /directory/deletedItems/{id}/restore), the lookups
// the engine finds a person's account with — $filter on employeeId,
// userPrincipalName or mail, the deleted-items listing — can still answer
// as before the write (https://learn.microsoft.com/en-us/graph/aad-advanced-queries,
// https://learn.microsoft.com/en-us/graph/api/directory-deleteditems-restore,
// docs/graph-behaviour.md#replication-delay). A reconcile of the person in
// that time (a retry after a later step failed, the next webhook, a worker
// in another process) finds no account. The create path catches its own
// name (a create whose UPN is taken waits for the holder, apply.go), but
// not an account that came back, or was made, under a name that is no
// longer among the person's candidates: a restore under the account's old
// name after a change of surname, a create before HR corrected the name.
//
// So every create and restore is recorded in the state bucket under
// "recent.<person id>" (replicated, shared by every worker process and
// kept across restarts, like the ownership records): before the request
// is sent (what is being created or restored), and again with the object
// id once Graph answered. When the lookups find no account and the person
// should have one, a fresh record makes the engine read the recorded
// account by its object id — the read Graph answers first after a write —
// and go on with it. If it cannot be read yet, and the recycle bin gives
// nothing to restore, the reconcile fails and is retried: no account is
// created while the record is fresh. A create whose answer was lost has no
// object id yet; its name is then tried first, so that the create runs
// into the stored account (a UPN conflict, waited out by apply.go) instead
// of making one under another name.
//
// The record is read only when the lookups found no account, so it costs
// nothing once the account is visible; a stale record is deleted when it
// is read, and the next create or restore of the person overwrites it.

const recentPrefix = "recent."

// recentWindow is how long after a create or restore a reconcile that
// finds no account relies on the record instead of the lookups. Microsoft
// gives no upper bound for directory replication; it usually takes
// seconds, and the create path waits 30 s for it (Config.ReplicationWait).
// The window must cover every retry of the reconcile that wrote the
// account — the queue retries a failed reconcile 8 times, backing off from
// 2 s to 2 min, about 4 minutes in all — and the webhooks that follow
// within minutes. Erring long costs little: the record only matters while
// the lookups miss the account, and the one thing it delays is a new
// account for a person whose recorded account was deleted for good, by
// hand, within the window.
const recentWindow = 10 * time.Minute

// How the recorded account came to be.
const (
	recentCreated  = "created"
	recentRestored = "restored"
)

// recentAccount is the record of one person's latest create or restore.
type recentAccount struct {
	How string `json:"how"` // created or restored
	// UserID is "" for a create Graph has not answered yet.
	UserID string `json:"user_id,omitempty"`
	UPN    string `json:"user_principal_name"`
	// Confirmed: Graph answered the write with the account.
	Confirmed bool      `json:"confirmed"`
	At        time.Time `json:"at"`
}

func recentKey(personID string) string { return recentPrefix + personID }

// writeOf names the write of a record: create or restore.
func writeOf(how string) string {
	if how == recentRestored {
		return "restore"
	}
	return "create"
}

func (r recentAccount) String() string {
	s := r.UPN
	if r.UserID != "" {
		s += " (" + r.UserID + ")"
	}
	return fmt.Sprintf("%s was %s at %s", s, r.How, r.At.UTC().Format(time.RFC3339))
}

// noteWrite records, before the request is sent, the account that is
// being created (userID "") or restored. Without the record the write is
// not made: a failure is returned (and retried).
func (e *Engine) noteWrite(ctx context.Context, personID, how, userID, upn string) error {
	if err := e.putRecent(ctx, personID, recentAccount{How: how, UserID: userID, UPN: upn, At: e.cfg.Now().UTC()}); err != nil {
		return fmt.Errorf("record the %s of %s in the state bucket before sending it (without the record a retry could make a second account): %w",
			writeOf(how), upn, err)
	}
	return nil
}

// noteAccount records the account Graph answered a create or restore
// with. A failure is logged: the record written before the request still
// protects the person.
func (e *Engine) noteAccount(ctx context.Context, log *slog.Logger, personID, how string, u User) {
	rec := recentAccount{How: how, UserID: u.ID, UPN: u.UserPrincipalName, Confirmed: true, At: e.cfg.Now().UTC()}
	if err := e.putRecent(ctx, personID, rec); err != nil {
		log.Error("record the "+how+" account in the state bucket", "user_id", u.ID, "err", err)
	}
}

// forgetWrite drops the record of a create Graph refused (nothing was
// stored).
func (e *Engine) forgetWrite(ctx context.Context, personID string) {
	if err := e.cfg.State.Delete(context.WithoutCancel(ctx), recentKey(personID)); err != nil {
		e.log.Warn("drop the record of a refused create", "person_id", personID, "err", err)
	}
}

func (e *Engine) putRecent(ctx context.Context, personID string, rec recentAccount) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return e.cfg.State.Put(ctx, recentKey(personID), b)
}

// loadRecent returns the person's record while it is fresh (nil when
// there is none). A stale or unreadable record is deleted, except in a
// plan or a dry run.
func (e *Engine) loadRecent(ctx context.Context, log *slog.Logger, personID string, planOnly bool) (*recentAccount, error) {
	key := recentKey(personID)
	b, _, err := e.cfg.State.Get(ctx, key)
	switch {
	case errors.Is(err, ErrKeyNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reconcile %s: read the record of a recent create or restore (no account is created without it): %w", personID, err)
	}
	var rec recentAccount
	fresh := json.Unmarshal(b, &rec) == nil && e.cfg.Now().Sub(rec.At) <= recentWindow
	if fresh {
		return &rec, nil
	}
	if !planOnly && !e.cfg.DryRun {
		if err := e.cfg.State.Delete(ctx, key); err != nil {
			log.Warn("delete a stale record of a recent create or restore", "err", err)
		}
	}
	return nil, nil
}

// recentRun is what the record says for one reconcile.
type recentRun struct {
	rec recentAccount
	// unreadable: the recorded account cannot be read by its id yet.
	unreadable bool
	note       string // for the plan
}

// wantsAccount: the person should have an account (the plan creates one
// when none is found).
func wantsAccount(d *rules.Desired) bool {
	return d.Exists && d.Phase != rules.PhaseLeaver && d.Phase != rules.PhaseDeleted && d.Phase != rules.PhaseOutOfScope
}

// recentAccountFor runs when the lookups found no account. A fresh record
// of a create or restore names the account: it is read by its object id
// and returned when it still carries the person's employeeId. The run
// (nil without a fresh record) goes on to beforeCreate.
func (e *Engine) recentAccountFor(ctx context.Context, log *slog.Logger, d *rules.Desired, planOnly bool) (*User, *recentRun, error) {
	if !wantsAccount(d) {
		return nil, nil, nil
	}
	rec, err := e.loadRecent(ctx, log, d.PersonID, planOnly)
	if err != nil || rec == nil {
		return nil, nil, err
	}
	run := &recentRun{rec: *rec}
	if rec.UserID == "" {
		return nil, run, nil
	}
	u, err := e.cfg.Directory.GetUser(ctx, rec.UserID)
	switch {
	case errors.Is(err, ErrNotFound):
		run.unreadable = true
		return nil, run, nil
	case err != nil:
		return nil, nil, fmt.Errorf("reconcile %s: the lookups find no account, but %s: read it by its object id: %w", d.PersonID, rec, err)
	case !strings.EqualFold(u.EmployeeID, d.PersonID):
		log.Warn("the account recently created or restored for the person carries another employeeId now; not used",
			"user_id", u.ID, "upn", u.UserPrincipalName, "employee_id", u.EmployeeID)
		return nil, nil, nil
	}
	run.note = fmt.Sprintf("account %s and Graph's lookups do not show it yet: it is read by its object id instead of creating another", rec)
	log.Info("account found by the record of a recent "+writeOf(rec.How)+" (the lookups do not show it yet)", "user_id", u.ID, "upn", u.UserPrincipalName)
	return &u, run, nil
}

// beforeCreate runs when the plan will create an account: the lookups
// found none and nothing was restored. While a fresh record names an
// account that cannot be read yet, no account is created: the reconcile
// fails and is retried. A create whose answer was lost is tried under its
// name first.
func (e *Engine) beforeCreate(d *rules.Desired, run *recentRun) error {
	if run == nil {
		return nil
	}
	rec := run.rec
	if run.unreadable {
		return &DirectoryError{Kind: KindTransient, Op: "create user",
			Message: fmt.Sprintf("person %s: account %s, and Graph does not show it yet, not even by its object id; "+
				"no second account is created while it may be replicating (%s): retried", d.PersonID, rec, recentWindow)}
	}
	if rec.UserID == "" && rec.UPN != "" {
		d.UPNCandidates = append([]string{rec.UPN}, withoutUPN(d.UPNCandidates, rec.UPN)...)
		run.note = fmt.Sprintf("a create of %s at %s got no answer: that name is tried first, so that an account Graph stored is found instead of making a second one",
			rec.UPN, rec.At.UTC().Format(time.RFC3339))
	}
	return nil
}
