package provisioning

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/personio-entra/personio-entra/provisioning/model"
	"github.com/personio-entra/personio-entra/rules"
)

// RulesPreview is what a rules change would do to the whole company,
// before it ships: PreviewRules evaluates the current and the candidate
// rules for everyone in Personio (one complete read) and compares them.
//
// Two views are combined. Desired against desired (rules against rules) is
// the honest comparison of the rules themselves: groups gained and lost,
// attributes old → new, phase, manager, UPN candidates. Against Entra (the
// accounts as they are now) says what would really happen: who would be
// created (no account yet), enabled, disabled or deleted, and who would
// lose access, which is what the safeguard counts. Nothing is applied.
type RulesPreview struct {
	CurrentRules   string    `json:"current_rules"`
	CandidateRules string    `json:"candidate_rules"`
	At             time.Time `json:"at"`
	// Employees is the number of people Personio returned; Accounts the
	// number of Entra accounts; Owned those personio-entra owns.
	Employees int `json:"employees"`
	Accounts  int `json:"accounts"`
	Owned     int `json:"owned"`
	// People holds one entry per person whose outcome differs, sorted by
	// person id.
	People []PersonDiff   `json:"people"`
	Totals PreviewTotals  `json:"totals"`
	Groups []GroupSummary `json:"groups"`
	// Licenses counts the changes of each licence either rule set manages
	// (preview_lifecycle.go).
	Licenses []LicenseSummary `json:"licenses"`
	// Safeguard estimates whether the change would be held for approval.
	Safeguard SafeguardEstimate `json:"safeguard"`
	// Notes are things the preview could not compare (unresolvable groups,
	// people several accounts claim, evaluation errors).
	Notes []string `json:"notes,omitempty"`
}

// LifecycleChange is how a person's account would change against Entra.
type LifecycleChange string

const (
	LifecycleCreate     LifecycleChange = "create"       // no account yet; the candidate creates one
	LifecycleEnable     LifecycleChange = "enable"       // a disabled account is enabled
	LifecycleDisable    LifecycleChange = "disable"      // an enabled account is disabled
	LifecycleDelete     LifecycleChange = "delete"       // the account is deleted
	LifecycleOutOfScope LifecycleChange = "out_of_scope" // no longer managed: never touched again
	LifecycleInScope    LifecycleChange = "in_scope"     // managed from now on
)

// PersonDiff is one person's difference between the current and the
// candidate rules.
type PersonDiff struct {
	PersonID string `json:"person_id"`
	Name     string `json:"name,omitempty"`
	// Account is the UPN of the matched account ("" none); Owned whether
	// personio-entra owns it (only owned accounts lose access).
	Account string `json:"account,omitempty"`
	Owned   bool   `json:"owned,omitempty"`
	// Protected: the account is in PROTECTED_ACCOUNTS and never changed,
	// so only the rules are compared, not the account.
	Protected bool `json:"protected,omitempty"`

	PhaseBefore rules.Phase `json:"phase_before"`
	PhaseAfter  rules.Phase `json:"phase_after"`
	// Lifecycle is what would happen to the account against Entra ("":
	// nothing changes in its lifecycle).
	Lifecycle LifecycleChange `json:"lifecycle,omitempty"`

	// GroupsGained and GroupsLost are managed groups (keys as written)
	// the person gains or loses; GroupsUnmanaged are groups the person was
	// in that the candidate no longer names: their memberships stay as
	// they are (personio-entra touches only the groups its rules name).
	GroupsGained    []string `json:"groups_gained,omitempty"`
	GroupsLost      []string `json:"groups_lost,omitempty"`
	GroupsUnmanaged []string `json:"groups_unmanaged,omitempty"`

	Attributes []AttributeDiff `json:"attributes,omitempty"`
	Manager    *ValueDiff      `json:"manager,omitempty"`
	// UPN is the difference of the UPN candidates, for a person who has no
	// account (an account keeps its UPN).
	UPN *UPNDiff `json:"upn,omitempty"`
	// Rename is the user principal name old → new of an owned account the
	// candidate renames after a name change (upn.on_name_change: rename)
	// and the current rules would not give that name.
	Rename *ValueDiff `json:"rename,omitempty"`
	// LicensesGained, LicensesLost and LicensePlansChanged are the
	// licences the candidate assigns, removes or changes the disabled plans
	// of where the current rules would not (only SKUs the candidate
	// manages; a leaver's after remove_after_days).
	LicensesGained      []LicenseDiff `json:"licenses_gained,omitempty"`
	LicensesLost        []LicenseDiff `json:"licenses_lost,omitempty"`
	LicensePlansChanged []LicenseDiff `json:"license_plans_changed,omitempty"`

	// LosesAccess lists the destructive changes the candidate's plan would
	// make to an owned account (what the safeguard counts).
	LosesAccess []string `json:"loses_access,omitempty"`
	// Error is set when the candidate rules cannot be evaluated for the
	// person (the engine would dead-letter them).
	Error string `json:"error,omitempty"`
}

// AttributeDiff is one Entra property whose desired value changes.
type AttributeDiff struct {
	Property string `json:"property"`
	Before   string `json:"before"`
	After    string `json:"after"`
	// Note says what the change means beyond the values ("no longer
	// mapped: left as it is", "newly mapped", "policy always → on_create").
	Note string `json:"note,omitempty"`
	// Rule is the candidate's rule for the property (the current one when
	// the candidate no longer maps it).
	Rule *rules.Origin `json:"rule,omitempty"`
}

// ValueDiff is a value before and after.
type ValueDiff struct {
	Before string `json:"before"`
	After  string `json:"after"`
}

// UPNDiff compares the UPN candidates (first = the one a create takes when
// it is free) and the mail nickname.
type UPNDiff struct {
	Before             []string `json:"before"`
	After              []string `json:"after"`
	MailNicknameBefore string   `json:"mail_nickname_before,omitempty"`
	MailNicknameAfter  string   `json:"mail_nickname_after,omitempty"`
}

// PreviewTotals count the differences by kind.
type PreviewTotals struct {
	People            int `json:"people"`             // people with any difference
	GroupsGained      int `json:"groups_gained"`      // memberships gained
	GroupsLost        int `json:"groups_lost"`        // memberships lost
	GroupsUnmanaged   int `json:"groups_unmanaged"`   // memberships no longer managed (left as they are)
	AttributesChanged int `json:"attributes_changed"` // people with an attribute change
	ManagerChanged    int `json:"manager_changed"`
	UPNChanged        int `json:"upn_changed"` // people without an account whose first UPN candidate changes
	PhaseChanged      int `json:"phase_changed"`
	Created           int `json:"created"`
	Enabled           int `json:"enabled"`
	Disabled          int `json:"disabled"`
	Deleted           int `json:"deleted"`
	OutOfScope        int `json:"out_of_scope"`
	InScope           int `json:"in_scope"`
	LoseAccess        int `json:"lose_access"` // owned accounts that would lose access
	// Licences gained, lost and with other disabled plans; owned accounts renamed.
	LicensesGained      int `json:"licenses_gained"`
	LicensesLost        int `json:"licenses_lost"`
	LicensePlansChanged int `json:"license_plans_changed"`
	Renamed             int `json:"renamed"`
	Errors              int `json:"errors"`
}

// GroupSummary counts one group's changes.
type GroupSummary struct {
	Group  string `json:"group"`
	Gained int    `json:"gained"`
	Lost   int    `json:"lost"`
	// Unmanaged: the candidate no longer names the group (members stay);
	// Added: only the candidate names it.
	Unmanaged bool `json:"unmanaged,omitempty"`
	Added     bool `json:"added,omitempty"`
	// Problem: the group cannot be used in Entra (unknown, ambiguous, not
	// manageable through Graph); its changes cannot be applied.
	Problem string `json:"problem,omitempty"`
}

// SafeguardEstimate is whether the safeguard (guard.go) would hold the
// change: the complete sync that follows a rules change holds every
// destructive change when more people would lose access than the budget
// has left in its window (or when Personio looks collapsed).
type SafeguardEstimate struct {
	// LoseAccess is the number of owned accounts whose plan under the
	// candidate rules takes access away (disable, delete, revoke sessions,
	// leave a group, lose the manager): what the guard counts.
	// CausedByChange is how many of them only the candidate takes away
	// (the rest would lose it under the current rules too).
	LoseAccess     int `json:"lose_access"`
	CausedByChange int `json:"caused_by_change"`
	// Threshold is max(GUARD_MAX_CHANGES, GUARD_MAX_PERCENT of Owned);
	// UsedInWindow people already lost access in the current window, so
	// Remaining may still lose it now.
	Threshold    int    `json:"threshold"`
	UsedInWindow int    `json:"used_in_window"`
	Remaining    int    `json:"remaining"`
	Window       string `json:"window"`
	// Collapsed: Personio returned far fewer people than the owned
	// accounts (GUARD_MIN_SOURCE_PERCENT): nothing destructive would apply.
	Collapsed bool `json:"collapsed,omitempty"`
	// Held: the destructive changes would be held for approval.
	Held    bool   `json:"held"`
	Verdict string `json:"verdict"`
}

// previewSide is one rule set with what the planner needs.
type previewSide struct {
	ev     rules.Evaluator
	opt    PlanOptions
	keys   map[string]bool // every group key it names
	delete LeaverActions
	// rename: upn.on_name_change is rename; licenses: the SKU part numbers
	// it manages (upper case) with the problem resolving each ("" none).
	rename   bool
	licenses map[string]string
}

// PreviewRules evaluates the candidate rules (already loaded and checked:
// rules.Load or rules.LoadBytes report every problem with file:line:col)
// for everyone in Personio and compares them with the engine's current
// rules, desired against desired and against the accounts in Entra. It
// reads as the complete sync reads (completeRead: the Entra users, the
// members of the managed groups of both rule sets and the ownership
// records, then Personio page by page) and the safeguard's window; it
// writes nothing.
func PreviewRules(ctx context.Context, e *Engine, candidate *rules.Rules) (RulesPreview, error) {
	if e == nil || candidate == nil {
		return RulesPreview{}, errors.New("preview rules: an engine and candidate rules are required")
	}
	now := e.cfg.Now()
	pv := RulesPreview{CandidateRules: candidate.File(), At: now.UTC(), People: []PersonDiff{}, Groups: []GroupSummary{}, Licenses: []LicenseSummary{}}
	if r, ok := e.cfg.Rules.(*rules.Rules); ok {
		pv.CurrentRules = r.File()
	}

	// Both rule sets' groups, resolved once the accounts are read: the
	// current ones as the engine resolved them, the candidate's new ones
	// looked up (reads only). The members of all of them are read.
	lc := candidate.Lifecycle()
	cur := previewSide{ev: e.cfg.Rules, keys: map[string]bool{}, delete: e.cfg.OnDeleted,
		opt: PlanOptions{ManageManager: e.cfg.ManageManager}, rename: e.cfg.Lifecycle.RenameOnNameChange}
	cand := previewSide{ev: candidate, keys: map[string]bool{},
		delete: LeaverActions{RevokeSessions: lc.Leaver.RevokeSessions, RemoveMemberships: lc.Leaver.RemoveMemberships},
		opt:    PlanOptions{ManageManager: candidate.ManagesManager()}, rename: candidate.OnNameChange() == rules.RenameUPN}
	ctx, planNames := e.previewLicenses(ctx, &pv, &cur, &cand, candidate)
	var problems map[string]string
	pic, err := e.readComplete(ctx, func(ctx context.Context) []GroupRef {
		var refs []GroupRef
		refs, problems = e.previewGroups(ctx, &pv, &cur, &cand, candidate)
		return refs
	})
	if err != nil {
		return pv, fmt.Errorf("preview rules: %w", err)
	}
	pv.Accounts, pv.Owned = pic.accounts, len(pic.owned)

	causedByChange := 0
	compare := func(emp *model.Employee, personID string) {
		pd := PersonDiff{PersonID: personID}
		var d0, d1 rules.Desired
		var err0, err1 error
		if emp != nil {
			pd.Name = strings.TrimSpace(cmp.Or(emp.PreferredName, emp.FirstName) + " " + emp.LastName)
			d0, err0 = e.desiredWith(cur.ev, *emp, now)
			d1, err1 = e.desiredWith(cand.ev, *emp, now)
		} else {
			d0, d1 = e.deletedWith(cur, personID), e.deletedWith(cand, personID)
		}
		if err1 != nil {
			pd.Error = err1.Error()
			pd.PhaseBefore = d0.Phase
			pv.People = append(pv.People, pd)
			pv.Totals.Errors++
			return
		}
		if err0 != nil {
			pv.Notes = append(pv.Notes, fmt.Sprintf("person %s: the current rules cannot be evaluated: %v", personID, err0))
		}
		// Against Entra only where the reconcile would act: one account,
		// not protected.
		var u *User
		planned := true
		switch us := pic.accountsOf(personID); {
		case len(us) == 1 && e.isProtected(*us[0]):
			pd.Account, pd.Protected, planned = us[0].UserPrincipalName, true, false
		case len(us) == 1:
			u = us[0]
		case len(us) > 1:
			planned = false
			pv.Notes = append(pv.Notes, fmt.Sprintf("person %s: %d accounts carry this employeeId (the workers stop with an error); compared by the rules only", personID, len(us)))
		}
		if u != nil {
			pd.Account, pd.Owned = u.UserPrincipalName, pic.owned[u.ID]
			if emp != nil {
				d0 = e.keepAccessWith(cur.ev, *emp, d0, *u)
				d1 = e.keepAccessWith(cand.ev, *emp, d1, *u)
			}
		}
		var p0, p1 Plan
		if planned {
			p0 = ComputePlan(d0, pic.actual(u, d0.ManagerPersonID), cur.opt)
			p1 = ComputePlan(d1, pic.actual(u, d1.ManagerPersonID), cand.opt)
		}
		diffPerson(&pd, d0, d1, planned && u == nil, p0, p1, cur.keys, cand.keys)
		if planned {
			diffLicenses(&pd, d0, d1, u, u == nil && hasKind(p1, CreateUser), p0, p1, cand, planNames)
			if u != nil {
				diffRename(&pd, cur, cand, d0, d1, u, pd.Owned, p0, p1, pic)
			}
		}
		if u != nil && pd.Owned && p1.Destructive() > 0 {
			for _, c := range p1.Changes {
				if c.Kind.Destructive() {
					pd.LosesAccess = append(pd.LosesAccess, c.String())
				}
			}
			pv.Totals.LoseAccess++
			if !destructiveSubset(p1, p0) {
				causedByChange++
			}
		}
		if !pd.differs() {
			return
		}
		pv.People = append(pv.People, pd)
	}
	if err := pic.eachEmployee(ctx, func(emp *model.Employee) { compare(emp, emp.PersonID) }); err != nil {
		return pv, fmt.Errorf("preview rules: %w", err)
	}
	pv.Employees = pic.employees
	// Owned accounts whose person Personio no longer has are leavers under
	// both rule sets, with each set's leaver actions.
	for _, id := range pic.absent() {
		if us := pic.accountsOf(id); len(us) == 1 && pic.owned[us[0].ID] {
			compare(nil, id)
		}
	}
	slices.SortFunc(pv.People, func(a, b PersonDiff) int { return strings.Compare(a.PersonID, b.PersonID) })
	pv.total(e.cfg.ManagedGroups, candidate.ManagedGroups(), problems)
	pv.totalLifecycle(cur, cand)
	if err := e.estimateGuard(ctx, &pv, causedByChange); err != nil {
		return pv, err
	}
	return pv, nil
}

// deletedWith is the desired state of a person Personio no longer has,
// under one rule set's leaver actions.
func (e *Engine) deletedWith(s previewSide, personID string) rules.Desired {
	d := rules.Desired{PersonID: personID, Phase: rules.PhaseLeaver, Reason: "person no longer exists in Personio",
		Exists: true, RevokeSessions: s.delete.RevokeSessions, RemoveMembership: s.delete.RemoveMemberships}
	if r, ok := s.ev.(*rules.Rules); ok {
		d = r.MarkDeleted(d)
	}
	return d
}

// previewGroups resolves both rule sets' managed groups: the current ones
// as the engine resolved them (their problems become notes), the
// candidate's new ones looked up (reads only). It fills the sides' keys and
// plan options and returns every group to read the members of, sorted by
// key, and the candidate's groups that cannot be used, by key.
func (e *Engine) previewGroups(ctx context.Context, pv *RulesPreview, cur, cand *previewSide, candidate *rules.Rules) ([]GroupRef, map[string]string) {
	refs, groupErrs := e.managedGroups(ctx)
	for _, ge := range groupErrs {
		pv.Notes = append(pv.Notes, "current rules: "+ge.Error())
	}
	cur.opt.ManagedGroups = refs
	resolved := map[string]GroupRef{}
	for _, g := range refs {
		resolved[g.Key] = g
	}
	for _, k := range e.cfg.ManagedGroups {
		cur.keys[k] = true
	}
	problems := map[string]string{}
	for _, k := range candidate.ManagedGroups() {
		cand.keys[k] = true
		g, ok := resolved[k]
		if !ok {
			grp, err := LookupGroup(ctx, e.cfg.Directory, k)
			switch {
			case err != nil:
				problems[k] = fmt.Sprintf("cannot be resolved in Entra: %v", err)
				continue
			case grp.Unmanageable != "":
				problems[k] = "cannot be managed through Microsoft Graph: " + grp.Unmanageable
				continue
			}
			g = GroupRef{Key: k, ID: grp.ID}
			resolved[k] = g
		}
		cand.opt.ManagedGroups = append(cand.opt.ManagedGroups, g)
	}
	for _, k := range slices.Sorted(maps.Keys(problems)) {
		pv.Notes = append(pv.Notes, fmt.Sprintf("candidate rules: group %q %s; its changes cannot be applied", k, problems[k]))
	}
	return slices.SortedFunc(maps.Values(resolved), func(a, b GroupRef) int { return strings.Compare(a.Key, b.Key) }), problems
}

// destructiveSubset reports whether every destructive change of a is also
// in b (the current rules would take the same access away).
func destructiveSubset(a, b Plan) bool {
	for _, c := range a.Changes {
		if c.Kind.Destructive() && !slices.ContainsFunc(b.Changes, func(o Change) bool { return o.Kind == c.Kind && o.Group == c.Group }) {
			return false
		}
	}
	return true
}

func hasKind(p Plan, k ChangeKind) bool {
	return slices.ContainsFunc(p.Changes, func(c Change) bool { return c.Kind == k })
}

// managesGroups reports whether the planner keeps d's memberships in step
// (out of scope and a leaver who keeps them: nothing is touched).
func managesGroups(d rules.Desired) bool {
	return d.Phase != rules.PhaseOutOfScope && (d.Phase != rules.PhaseLeaver || d.RemoveMembership)
}

// maintained reports whether the account's profile is kept in step.
func maintained(d rules.Desired) bool {
	return d.Phase == rules.PhaseActive || d.Phase == rules.PhasePreHire
}

// diffPerson fills pd with the differences between the two desired states
// and their plans against the account (empty plans: not compared with it).
// noAccount says the person has no account (their UPN candidates matter).
func diffPerson(pd *PersonDiff, d0, d1 rules.Desired, noAccount bool, p0, p1 Plan, curKeys, candKeys map[string]bool) {
	pd.PhaseBefore, pd.PhaseAfter = d0.Phase, d1.Phase
	switch {
	case d1.Phase == rules.PhaseOutOfScope && d0.Phase != rules.PhaseOutOfScope:
		pd.Lifecycle = LifecycleOutOfScope
	case hasKind(p1, DeleteUser) && !hasKind(p0, DeleteUser):
		pd.Lifecycle = LifecycleDelete
	case hasKind(p1, CreateUser) && !hasKind(p0, CreateUser):
		pd.Lifecycle = LifecycleCreate
	case hasKind(p1, DisableUser) && !hasKind(p0, DisableUser):
		pd.Lifecycle = LifecycleDisable
	case hasKind(p1, EnableUser) && !hasKind(p0, EnableUser):
		pd.Lifecycle = LifecycleEnable
	case d0.Phase == rules.PhaseOutOfScope && d1.Phase != rules.PhaseOutOfScope:
		pd.Lifecycle = LifecycleInScope
	}

	// Groups: desired against desired, where the candidate keeps them in step.
	if managesGroups(d1) {
		before := map[string]bool{}
		if managesGroups(d0) {
			for _, g := range d0.Groups {
				before[g] = true
			}
		}
		after := map[string]bool{}
		for _, g := range d1.Groups {
			after[g] = true
			if !before[g] {
				pd.GroupsGained = append(pd.GroupsGained, g)
			}
		}
		for _, g := range d0.Groups {
			switch {
			case !before[g] || after[g]:
			case candKeys[g]:
				pd.GroupsLost = append(pd.GroupsLost, g)
			case curKeys[g]:
				pd.GroupsUnmanaged = append(pd.GroupsUnmanaged, g)
			}
		}
		slices.Sort(pd.GroupsGained)
		slices.Sort(pd.GroupsLost)
		slices.Sort(pd.GroupsUnmanaged)
	}

	if maintained(d0) && maintained(d1) {
		for _, prop := range slices.Sorted(maps.Keys(unionKeys(d0.Attributes, d1.Attributes))) {
			v0, ok0 := d0.Attributes[prop]
			v1, ok1 := d1.Attributes[prop]
			if ok0 == ok1 && v0 == v1 {
				continue
			}
			ad := AttributeDiff{Property: prop, Before: v0.Value, After: v1.Value, Rule: d1.AttributeOrigin(prop)}
			switch {
			case !ok1:
				ad.Note, ad.Rule = "no longer mapped (or not computed): left as it is", d0.AttributeOrigin(prop)
			case !ok0:
				ad.Note = "newly mapped"
			case v0.Policy != v1.Policy:
				ad.Note = fmt.Sprintf("policy %s → %s", v0.Policy, v1.Policy)
			case v1.Policy == rules.OnCreate && !noAccount:
				ad.Note = "policy on_create: the existing account keeps its value"
			}
			pd.Attributes = append(pd.Attributes, ad)
		}
		if d0.ManagerPersonID != d1.ManagerPersonID || (d0.ManagerOrigin() == nil) != (d1.ManagerOrigin() == nil) {
			pd.Manager = &ValueDiff{Before: d0.ManagerPersonID, After: d1.ManagerPersonID}
		}
	}
	if noAccount && d1.Exists && maintained(d1) && (!slices.Equal(d0.UPNCandidates, d1.UPNCandidates) || d0.MailNickname != d1.MailNickname) {
		pd.UPN = &UPNDiff{Before: d0.UPNCandidates, After: d1.UPNCandidates, MailNicknameBefore: d0.MailNickname, MailNicknameAfter: d1.MailNickname}
	}
}

func unionKeys[V any](a, b map[string]V) map[string]bool {
	out := make(map[string]bool, len(a)+len(b))
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

// differs reports whether the person has any difference to show.
func (pd *PersonDiff) differs() bool {
	return pd.PhaseBefore != pd.PhaseAfter || pd.Lifecycle != "" || len(pd.GroupsGained)+len(pd.GroupsLost)+len(pd.GroupsUnmanaged) > 0 ||
		len(pd.Attributes) > 0 || pd.Manager != nil || pd.UPN != nil || pd.Error != "" ||
		pd.Rename != nil || len(pd.LicensesGained)+len(pd.LicensesLost)+len(pd.LicensePlansChanged) > 0
}

// total adds up the people's differences, overall and per group.
func (pv *RulesPreview) total(current, candidate []string, problems map[string]string) {
	t := &pv.Totals
	t.People = len(pv.People)
	groups := map[string]*GroupSummary{}
	group := func(k string) *GroupSummary {
		if groups[k] == nil {
			groups[k] = &GroupSummary{Group: k, Problem: problems[k]}
		}
		return groups[k]
	}
	for _, k := range current {
		group(k).Unmanaged = !slices.Contains(candidate, k)
	}
	for _, k := range candidate {
		group(k).Added = !slices.Contains(current, k)
	}
	for _, pd := range pv.People {
		if pd.Error != "" {
			continue // counted in Errors
		}
		t.GroupsGained += len(pd.GroupsGained)
		t.GroupsLost += len(pd.GroupsLost)
		t.GroupsUnmanaged += len(pd.GroupsUnmanaged)
		for _, g := range pd.GroupsGained {
			group(g).Gained++
		}
		for _, g := range pd.GroupsLost {
			group(g).Lost++
		}
		if len(pd.Attributes) > 0 {
			t.AttributesChanged++
		}
		if pd.Manager != nil {
			t.ManagerChanged++
		}
		if pd.UPN != nil && first(pd.UPN.Before) != first(pd.UPN.After) {
			t.UPNChanged++
		}
		if pd.PhaseBefore != pd.PhaseAfter {
			t.PhaseChanged++
		}
		switch pd.Lifecycle {
		case LifecycleCreate:
			t.Created++
		case LifecycleEnable:
			t.Enabled++
		case LifecycleDisable:
			t.Disabled++
		case LifecycleDelete:
			t.Deleted++
		case LifecycleOutOfScope:
			t.OutOfScope++
		case LifecycleInScope:
			t.InScope++
		}
	}
	for _, k := range slices.Sorted(maps.Keys(groups)) {
		pv.Groups = append(pv.Groups, *groups[k])
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// estimateGuard fills the safeguard estimate from the guard's settings and
// its current window (read, never written).
func (e *Engine) estimateGuard(ctx context.Context, pv *RulesPreview, causedByChange int) error {
	g := e.guard
	entries, _, err := g.window(ctx)
	if err != nil {
		return fmt.Errorf("preview rules: %w", err)
	}
	s := &pv.Safeguard
	s.LoseAccess, s.CausedByChange = pv.Totals.LoseAccess, causedByChange
	s.Threshold = g.threshold(pv.Owned)
	s.UsedInWindow = len(entries)
	s.Remaining = max(0, s.Threshold-s.UsedInWindow)
	s.Window = g.cfg.Window.String()
	s.Collapsed = g.Collapsed(pv.Employees, pv.Owned)
	switch {
	case s.LoseAccess == 0:
		s.Verdict = "no owned account would lose access"
	case s.Collapsed:
		s.Held = true
		s.Verdict = fmt.Sprintf("would be held for approval: Personio returned %d people for %d owned accounts (below GUARD_MIN_SOURCE_PERCENT=%g%%), so nothing destructive applies; %d people would lose access",
			pv.Employees, pv.Owned, g.cfg.MinSourcePercent, s.LoseAccess)
	case s.LoseAccess > s.Remaining:
		s.Held = true
		s.Verdict = fmt.Sprintf("would be held for approval: %d people would lose access; the safeguard allows %d within %s (%d already used, %d left now)",
			s.LoseAccess, s.Threshold, s.Window, s.UsedInWindow, s.Remaining)
	default:
		s.Verdict = fmt.Sprintf("within the safeguard's budget: %d people would lose access; it allows %d within %s (%d already used, %d left now)",
			s.LoseAccess, s.Threshold, s.Window, s.UsedInWindow, s.Remaining)
	}
	return nil
}
