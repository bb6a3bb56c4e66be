package provisioning

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/personio-entra/personio-entra/provisioning/model"
	"github.com/personio-entra/personio-entra/rules"
)

// Explained is everything a person page shows: the Personio record, the
// desired state with the rule behind every value (Desired.Explain), the
// matched Entra account and its managed group memberships, whether
// personio-entra owns the account, and what a reconcile would change now.
// Engine.Explain computes it without applying anything.
type Explained struct {
	PersonID string `json:"person_id"`
	// Employee is the Personio record; nil when Personio no longer has the
	// person (a second read confirmed it).
	Employee *model.Employee `json:"employee"`
	// Desired is the state the rules ask for, with Desired.Explain filled.
	Desired rules.Desired `json:"desired"`
	// Account is the matched Entra account; nil when there is none (or
	// the person is out of scope and no account matches).
	Account *User `json:"account"`
	// Groups are the managed groups (keys as written in the rules) the
	// account is a direct member of, in rules order.
	Groups []string `json:"groups"`
	// Ownership says whether personio-entra may change the account.
	Ownership OwnershipStatus `json:"ownership"`
	// Plan is what a reconcile would change now; nothing was applied. Its
	// changes name their rules (Change.Rule).
	Plan Plan `json:"plan"`
}

// OwnershipState is whether personio-entra owns an account.
type OwnershipState string

const (
	// OwnershipNone: the person has no account.
	OwnershipNone OwnershipState = "none"
	// OwnershipCreated: personio-entra created the account.
	OwnershipCreated OwnershipState = "owned"
	// OwnershipAdopted: an existing account matched the person through the
	// matching keys and was recorded as owned.
	OwnershipAdopted OwnershipState = "adopted"
	// OwnershipUnowned: the account is not recorded as owned. Personio
	// knows the person: the next reconcile adopts it. Personio does not: it
	// is reported and never changed.
	OwnershipUnowned OwnershipState = "unowned"
	// OwnershipProtected: the account is listed in PROTECTED_ACCOUNTS and
	// never changed.
	OwnershipProtected OwnershipState = "protected"
)

// OwnershipStatus is an account's ownership and why.
type OwnershipStatus struct {
	State OwnershipState `json:"state"`
	// Since is when the account was created or adopted (owned, adopted).
	Since time.Time `json:"since,omitzero"`
	Why   string    `json:"why"`
}

// observation collects what a plan-only reconcile saw, for Explain. A nil
// *observation (every other reconcile) ignores everything.
type observation struct {
	employee  *model.Employee
	deleted   bool
	matched   bool
	account   *User
	owned     bool
	protected bool
	groups    map[string]bool // managed group ids the account is in
	readGroup bool
}

type observationKey struct{}

func observer(ctx context.Context) *observation {
	o, _ := ctx.Value(observationKey{}).(*observation)
	return o
}

func (o *observation) sawEmployee(emp model.Employee, deleted bool) {
	if o == nil {
		return
	}
	o.deleted = deleted
	if !deleted {
		o.employee = &emp
	}
}

func (o *observation) sawAccount(u *User) {
	if o == nil {
		return
	}
	o.matched = true
	if u != nil {
		c := *u
		o.account = &c
	}
}

func (o *observation) sawOwned(owned bool) {
	if o != nil {
		o.owned = owned
	}
}

func (o *observation) sawGroups(groups map[string]bool) {
	if o != nil {
		o.groups, o.readGroup = groups, true
	}
}

// leaveDateOrigin explains employeeLeaveDateTime, which the configuration
// (ENTRA_RECORD_LEAVE_DATE), not the rules, asks for.
var leaveDateOrigin = rules.Origin{Rule: "ENTRA_RECORD_LEAVE_DATE", Expr: "the end of the last working day (else the termination date) in the rules' time zone"}

// Explain answers "why does this person have what they have": it runs the
// engine's plan-only reconcile (the same path as PlanFor: nothing is
// applied, audited, scheduled or adopted) and returns what it read and
// decided, with the rule behind every value.
func (e *Engine) Explain(ctx context.Context, personID string) (Explained, error) {
	obs := &observation{}
	res, err := e.reconcile(context.WithValue(ctx, observationKey{}, obs), personID, "explain", modePlan)
	if err != nil {
		return Explained{}, err
	}
	x := Explained{PersonID: personID, Employee: obs.employee, Desired: res.Plan.Desired, Plan: res.Plan, Groups: []string{}}
	x.Desired.AddExplanation(obs.employee)
	if _, ok := x.Desired.Attributes[leaveDateProperty]; ok && x.Desired.Explain != nil {
		// The engine records the leave date itself (ENTRA_RECORD_LEAVE_DATE).
		x.Desired.Explain.Attributes[leaveDateProperty] = leaveDateOrigin
	}

	// An out-of-scope person's reconcile stops before matching: match here
	// (reads only) so the page still shows the account.
	if !obs.matched && obs.employee != nil {
		u, _, err := e.match(ctx, personID, *obs.employee)
		if err != nil {
			return Explained{}, fmt.Errorf("explain %s: %w", personID, err)
		}
		obs.sawAccount(u)
		if u != nil {
			owned, err := e.own.Owns(ctx, u.ID)
			if err != nil {
				return Explained{}, fmt.Errorf("explain %s: %w", personID, err)
			}
			obs.sawOwned(owned)
		}
	}
	x.Account = obs.account
	if x.Account == nil {
		x.Ownership = OwnershipStatus{State: OwnershipNone, Why: "no account matches this person"}
		if res.Plan.Desired.Exists && len(res.Plan.Changes) > 0 && res.Plan.Changes[0].Kind == CreateUser {
			x.Ownership.Why += "; the next reconcile creates one"
		}
		return x, nil
	}

	groups := obs.groups
	if !obs.readGroup {
		if groups, err = e.memberships(ctx, x.Account.ID); err != nil {
			return Explained{}, fmt.Errorf("explain %s: %w", personID, err)
		}
	}
	refs, _ := e.managedGroups(ctx)
	for _, g := range refs {
		if groups[g.ID] {
			x.Groups = append(x.Groups, g.Key)
		}
	}
	x.Ownership, err = e.ownership(ctx, *x.Account, obs)
	if err != nil {
		return Explained{}, fmt.Errorf("explain %s: %w", personID, err)
	}
	return x, nil
}

// memberships reads the managed groups the account is a direct member of.
func (e *Engine) memberships(ctx context.Context, userID string) (map[string]bool, error) {
	out := map[string]bool{}
	refs, _ := e.managedGroups(ctx)
	if len(refs) == 0 {
		return out, nil
	}
	ids, err := e.cfg.Directory.ListUserGroups(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("read groups of %s: %w", userID, err)
	}
	for _, g := range refs {
		if slices.Contains(ids, g.ID) {
			out[g.ID] = true
		}
	}
	return out, nil
}

// ownership reads the account's ownership record and says why.
func (e *Engine) ownership(ctx context.Context, u User, obs *observation) (OwnershipStatus, error) {
	if e.isProtected(u) {
		return OwnershipStatus{State: OwnershipProtected, Why: u.UserPrincipalName + " is listed in PROTECTED_ACCOUNTS: never changed"}, nil
	}
	if !obs.owned {
		if obs.deleted {
			return OwnershipStatus{State: OwnershipUnowned, Why: "personio-entra neither created nor adopted this account and Personio does not know the person: reported, never changed"}, nil
		}
		return OwnershipStatus{State: OwnershipUnowned, Why: "personio-entra has no record of this account yet; it matches the person through the matching keys, so the next reconcile adopts it"}, nil
	}
	key, err := ownedKey(u.ID)
	if err != nil {
		return OwnershipStatus{}, err
	}
	b, _, err := e.cfg.State.Get(ctx, key)
	if err != nil && !errors.Is(err, ErrKeyNotFound) {
		return OwnershipStatus{}, fmt.Errorf("ownership of %s: %w", u.UserPrincipalName, err)
	}
	var rec OwnershipRecord
	if err == nil {
		_ = json.Unmarshal(b, &rec)
	}
	switch rec.How {
	case "adopted":
		return OwnershipStatus{State: OwnershipAdopted, Since: rec.Since,
			Why: "an existing account matched this person through the matching keys and was adopted; personio-entra keeps it in step and may take its access away"}, nil
	default:
		return OwnershipStatus{State: OwnershipCreated, Since: rec.Since,
			Why: "personio-entra created this account; it keeps it in step and may take its access away"}, nil
	}
}
