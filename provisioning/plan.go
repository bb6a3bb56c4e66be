package provisioning

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/personio-entra/personio-entra/rules"
)

// ChangeKind names one kind of directory write.
type ChangeKind string

const (
	CreateUser     ChangeKind = "create_user"
	UpdateUser     ChangeKind = "update_user"
	EnableUser     ChangeKind = "enable_user"
	DisableUser    ChangeKind = "disable_user"
	RevokeSessions ChangeKind = "revoke_sessions"
	SetManager     ChangeKind = "set_manager"
	RemoveManager  ChangeKind = "remove_manager"
	AddMember      ChangeKind = "add_member"
	RemoveMember   ChangeKind = "remove_member"
	DeleteUser     ChangeKind = "delete_user"
	// WriteBackEmail stores a new account's UPN as the email in Personio.
	WriteBackEmail ChangeKind = "personio_write_back_email"
	// Audit-only kinds: no directory write.
	NoChange     ChangeKind = "none"
	AdoptAccount ChangeKind = "adopt_account" // an existing account is recorded as owned
	ReleaseHeld  ChangeKind = "release_held"  // an approval released held changes
)

// Destructive reports whether the change takes access away. The safeguard
// counts every person with such a change, whatever the trigger
// (docs/safety.md).
func (k ChangeKind) Destructive() bool {
	switch k {
	case DisableUser, RevokeSessions, RemoveMember, DeleteUser, RemoveManager:
		return true
	}
	return false
}

// Change is one planned directory write.
type Change struct {
	Kind ChangeKind `json:"kind"`
	// Properties holds the new values for create_user / update_user; a nil
	// value clears the property.
	Properties map[string]*string `json:"properties,omitempty"`
	// Previous holds the values before the change (update_user), for the audit.
	Previous map[string]string `json:"previous,omitempty"`
	// Group is the group object id (add_member / remove_member), GroupName its key in the rules.
	Group     string `json:"group,omitempty"`
	GroupName string `json:"group_name,omitempty"`
	// Manager is the manager's object id (set_manager) and person id.
	Manager         string `json:"manager,omitempty"`
	ManagerPersonID string `json:"manager_person_id,omitempty"`
	// UPNCandidates / MailNickname / Enabled for create_user.
	UPNCandidates []string `json:"upn_candidates,omitempty"`
	MailNickname  string   `json:"mail_nickname,omitempty"`
	Enabled       bool     `json:"enabled,omitempty"`
	// Rule is the rule that caused the change: the attribute's rule
	// (update_user: the first changed property that has one), the group
	// rule (add/remove_member), the lifecycle rule (enable, disable,
	// revoke, delete, and remove_member for a leaver), the manager rule
	// (set/remove_manager), the UPN candidate (create_user). Nil when no
	// rule did (a person deleted in Personio without rules behind the
	// engine, audit-only kinds).
	Rule *rules.Origin `json:"rule,omitempty"`
	// PropertyRules maps each property of an update_user to its rule
	// (employeeLeaveDateTime, which the engine records, to the lifecycle
	// rule of the phase).
	PropertyRules map[string]*rules.Origin `json:"property_rules,omitempty"`
}

func (c Change) String() string {
	switch c.Kind {
	case CreateUser:
		upn := ""
		if len(c.UPNCandidates) > 0 {
			upn = c.UPNCandidates[0]
		}
		return fmt.Sprintf("create user %s (enabled=%t)", upn, c.Enabled)
	case UpdateUser:
		keys := make([]string, 0, len(c.Properties))
		for k := range c.Properties {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return "update " + strings.Join(keys, ", ")
	case AddMember:
		return "add to group " + c.GroupName
	case RemoveMember:
		return "remove from group " + c.GroupName
	case SetManager:
		return "set manager to person " + c.ManagerPersonID
	}
	return strings.ReplaceAll(string(c.Kind), "_", " ")
}

// Actual is the directory state of one employee as the planner sees it.
type Actual struct {
	// User is the matched account; nil when none exists.
	User *User
	// Groups is the set of managed group ids the user is a direct member of.
	Groups map[string]bool
	// Manager is the manager's account (resolved from the desired manager
	// person id); nil when it does not exist yet or is not wanted.
	Manager *User
}

// Plan is what one reconcile would change for one employee.
type Plan struct {
	PersonID string        `json:"person_id"`
	Phase    rules.Phase   `json:"phase"`
	Reason   string        `json:"reason"`
	UserID   string        `json:"user_id,omitempty"`
	UPN      string        `json:"user_principal_name,omitempty"`
	Changes  []Change      `json:"changes"`
	Desired  rules.Desired `json:"desired"`
	// Notes explain things the plan could not do yet (e.g. the manager's
	// account does not exist), so the engine retries later.
	Notes []string `json:"notes,omitempty"`
	// Wait is set when the plan must be retried later even without changes.
	Wait bool `json:"-"`
}

// Destructive counts the changes that take access away.
func (p Plan) Destructive() int {
	n := 0
	for _, c := range p.Changes {
		if c.Kind.Destructive() {
			n++
		}
	}
	return n
}

// GroupRef is a managed group resolved to its object id.
type GroupRef struct {
	Key string // as written in the rules
	ID  string
}

// PlanOptions are the engine settings the planner needs.
type PlanOptions struct {
	// ManagedGroups are the groups named in the rules. Nothing else is touched.
	ManagedGroups []GroupRef
	// ManageManager: keep the manager in step with the supervisor.
	ManageManager bool
}

// ComputePlan is the pure heart of the engine: the changes that take the
// actual state to the desired one. Running it on the state it produced
// yields no changes (idempotency).
func ComputePlan(d rules.Desired, a Actual, opt PlanOptions) Plan {
	p := Plan{PersonID: d.PersonID, Phase: d.Phase, Reason: d.Reason, Desired: d}
	if a.User != nil {
		p.UserID, p.UPN = a.User.ID, a.User.UserPrincipalName
	}
	if d.Phase == rules.PhaseOutOfScope {
		return p
	}
	u := a.User
	if u == nil {
		if !d.Exists || d.Phase == rules.PhaseLeaver || d.Phase == rules.PhaseDeleted {
			// Nothing to create: not yet due, or gone before we ever saw them.
			return p
		}
		props := map[string]*string{}
		for name, v := range d.Attributes {
			if v.Policy == rules.Never || v.Value == "" {
				continue
			}
			props[name] = ptr(v.Value)
		}
		p.Changes = append(p.Changes, Change{Kind: CreateUser, Properties: props,
			UPNCandidates: d.UPNCandidates, MailNickname: d.MailNickname, Enabled: d.AccountEnabled, Rule: d.UPNOrigin()})
		// Manager and groups follow in the same reconcile once the account
		// exists (the engine re-plans after create).
		return p
	}

	lifecycle := d.PhaseOrigin()
	if d.Phase == rules.PhaseDeleted {
		if u.AccountEnabled {
			p.Changes = append(p.Changes, Change{Kind: DisableUser, Rule: lifecycle})
		}
		p.Changes = append(p.Changes, Change{Kind: DeleteUser, Rule: lifecycle})
		return p
	}

	leaver := d.Phase == rules.PhaseLeaver
	attrs := d
	if leaver {
		// A leaver's profile is frozen; only the leave date is still recorded.
		attrs.Attributes = map[string]rules.Value{}
		if v, ok := d.Attributes[leaveDateProperty]; ok {
			attrs.Attributes[leaveDateProperty] = v
		}
	}
	if ch := attributeChanges(attrs, u); ch != nil {
		p.Changes = append(p.Changes, *ch)
	}
	if d.AccountEnabled && !u.AccountEnabled {
		p.Changes = append(p.Changes, Change{Kind: EnableUser, Rule: lifecycle})
	}
	if !d.AccountEnabled && u.AccountEnabled {
		p.Changes = append(p.Changes, Change{Kind: DisableUser, Rule: lifecycle})
		if leaver && d.RevokeSessions {
			p.Changes = append(p.Changes, Change{Kind: RevokeSessions, Rule: lifecycle})
		}
	}

	if opt.ManageManager && !leaver {
		switch {
		case d.ManagerPersonID == "" && u.ManagerID != "":
			p.Changes = append(p.Changes, Change{Kind: RemoveManager, Rule: d.ManagerOrigin()})
		case d.ManagerPersonID != "" && u.ManagerEmployeeID != d.ManagerPersonID:
			if a.Manager == nil {
				p.Notes = append(p.Notes, "manager (person "+d.ManagerPersonID+") has no account yet")
				p.Wait = true
			} else if a.Manager.ID != u.ManagerID {
				p.Changes = append(p.Changes, Change{Kind: SetManager, Manager: a.Manager.ID, ManagerPersonID: d.ManagerPersonID, Rule: d.ManagerOrigin()})
			}
		}
	}

	// Memberships of managed groups only.
	want := map[string]bool{}
	if !leaver {
		for _, k := range d.Groups {
			want[k] = true
		}
	}
	if !leaver || d.RemoveMembership {
		// Additions first: a mover gains the new access before losing the old.
		var removes []Change
		for _, g := range opt.ManagedGroups {
			has := a.Groups[g.ID]
			switch {
			case want[g.Key] && !has:
				p.Changes = append(p.Changes, Change{Kind: AddMember, Group: g.ID, GroupName: g.Key, Rule: d.GroupOrigin(g.Key)})
			case !want[g.Key] && has:
				rule := d.GroupOrigin(g.Key)
				if leaver {
					rule = lifecycle // lifecycle.leaver.remove_memberships
				}
				removes = append(removes, Change{Kind: RemoveMember, Group: g.ID, GroupName: g.Key, Rule: rule})
			}
		}
		p.Changes = append(p.Changes, removes...)
	}
	return p
}

// attributeChanges compares the properties with policy "always".
func attributeChanges(d rules.Desired, u *User) *Change {
	props := map[string]*string{}
	prev := map[string]string{}
	names := make([]string, 0, len(d.Attributes))
	for n := range d.Attributes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		v := d.Attributes[name]
		if v.Policy != rules.Always {
			continue
		}
		have := u.Attributes[name]
		if sameValue(name, have, v.Value) {
			continue
		}
		if v.Value == "" {
			props[name] = nil // Graph needs an explicit null to clear (docs/graph-behaviour.md#sdk-clearing-a-property)
		} else {
			props[name] = ptr(v.Value)
		}
		prev[name] = have
	}
	if len(props) == 0 {
		return nil
	}
	c := &Change{Kind: UpdateUser, Properties: props, Previous: prev, PropertyRules: make(map[string]*rules.Origin, len(props))}
	for _, name := range names {
		if _, ok := props[name]; !ok {
			continue
		}
		rule := d.AttributeOrigin(name)
		if rule == nil && name == leaveDateProperty {
			rule = d.PhaseOrigin()
		}
		if rule == nil {
			continue
		}
		c.PropertyRules[name] = rule
		if c.Rule == nil {
			c.Rule = rule
		}
	}
	if len(c.PropertyRules) == 0 {
		c.PropertyRules = nil
	}
	return c
}

// sameValue compares a directory value with a desired one. Date-times are
// compared as instants (Graph may render 2026-12-01T00:00:00Z where the rules
// wrote 2026-12-01T00:00:00+00:00).
func sameValue(name, have, want string) bool {
	if have == want {
		return true
	}
	if strings.HasSuffix(strings.ToLower(name), "datetime") || name == "employeeHireDate" {
		th, err1 := time.Parse(time.RFC3339, have)
		tw, err2 := time.Parse(time.RFC3339, want)
		return err1 == nil && err2 == nil && th.Equal(tw)
	}
	return false
}

func ptr(s string) *string { return &s }

const leaveDateProperty = "employeeLeaveDateTime"
