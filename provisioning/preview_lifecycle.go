package provisioning

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/personio-entra/personio-entra/rules"
)

// The rules preview's licences and renames (preview.go): what a candidate
// `licenses` section and `upn.on_name_change: rename` (or a new UPN
// template) would do to the accounts, computed from the same complete read
// and the same planner as the real run (licenses.go, rename.go).

// LicenseDiff is one licence a person gains or loses, or whose disabled
// service plans change, by SKU part number. The plans are named as
// subscribedSkus names them (servicePlanName; the id when the tenant does
// not list it).
type LicenseDiff struct {
	SKU                 string   `json:"sku"`
	DisabledPlansBefore []string `json:"disabled_plans_before,omitempty"`
	DisabledPlansAfter  []string `json:"disabled_plans_after,omitempty"`
}

// LicenseSummary counts one managed licence's changes.
type LicenseSummary struct {
	SKU          string `json:"sku"`
	Gained       int    `json:"gained"`
	Lost         int    `json:"lost"`
	PlansChanged int    `json:"plans_changed"`
	// Unmanaged: the candidate no longer names the SKU (the licences
	// stay); Added: only the candidate names it.
	Unmanaged bool `json:"unmanaged,omitempty"`
	Added     bool `json:"added,omitempty"`
	// Problem: the candidate's SKU cannot be resolved in the tenant; it
	// would not be assigned or removed.
	Problem string `json:"problem,omitempty"`
}

// previewLicenses resolves both rule sets' licences for the preview: when
// the candidate has a licences section, subscribedSkus is read once and
// both sides are resolved from it (the current side only if the engine
// manages licences), and users are read with their assignedLicenses
// (WithAssignedLicenses). Without one, the candidate touches no licence
// and nothing is read. It returns the context for the complete read and
// the plan names by id.
func (e *Engine) previewLicenses(ctx context.Context, pv *RulesPreview, cur, cand *previewSide, candidate *rules.Rules) (context.Context, map[string]string) {
	want := candidate.ManagedLicenses()
	if len(want) == 0 {
		return ctx, nil
	}
	ld, ok := e.licenseDirectory()
	if !ok {
		pv.Notes = append(pv.Notes, "candidate rules: licences cannot be previewed: the directory cannot read or assign licences")
		return ctx, nil
	}
	skus, err := ld.SubscribedSkus(ctx)
	if err != nil {
		pv.Notes = append(pv.Notes, fmt.Sprintf("candidate rules: licences cannot be previewed: read the tenant's subscriptions: %v", err))
		return ctx, nil
	}
	names := map[string]string{}
	for _, s := range skus {
		for _, p := range s.Plans {
			names[strings.ToLower(p.ID)] = p.Name
		}
	}
	cand.licenses = map[string]string{}
	for _, w := range want {
		refs, errs := resolveLicenses([]rules.LicenseRule{w}, skus)
		cand.opt.Licenses = append(cand.opt.Licenses, refs...)
		cand.licenses[strings.ToUpper(w.SKU)] = ""
		for _, err := range errs {
			pv.Notes = append(pv.Notes, "candidate rules: "+err.Error())
			cand.licenses[strings.ToUpper(w.SKU)] = err.Error()
		}
	}
	if cw := e.cfg.Lifecycle.Licenses; len(cw) > 0 {
		cur.opt.Licenses, _ = resolveLicenses(cw, skus) // the engine reports its own problems
		cur.licenses = map[string]string{}
		for _, r := range cw {
			cur.licenses[strings.ToUpper(r.SKU)] = ""
		}
	}
	return WithAssignedLicenses(ctx), names
}

// assignedLicensesKey marks a read that needs users' assignedLicenses.
type assignedLicensesKey struct{}

// WithAssignedLicenses asks the directory to read users with their
// assignedLicenses in this context even when the rules it was configured
// for manage none (the rules preview of a candidate that does). A
// directory that always reads them may ignore it.
func WithAssignedLicenses(ctx context.Context) context.Context {
	return context.WithValue(ctx, assignedLicensesKey{}, true)
}

// AssignedLicensesWanted reports whether WithAssignedLicenses marked ctx.
func AssignedLicensesWanted(ctx context.Context) bool {
	v, _ := ctx.Value(assignedLicensesKey{}).(bool)
	return v
}

// diffLicenses fills the person's licence differences. For an account,
// they are the candidate plan's licence changes that the current plan
// does not make (the same planner as the real run: only managed SKUs, a
// leaver's licences after remove_after_days). For a person the candidate
// would create an account for, they are the managed SKUs the candidate
// gives and the current rules do not (assigned once the account exists).
func diffLicenses(pd *PersonDiff, d0, d1 rules.Desired, u *User, create bool, p0, p1 Plan, cand previewSide, names map[string]string) {
	if u == nil {
		if !create {
			return
		}
		for _, ref := range cand.opt.Licenses {
			if containsFold(d1.Licenses, ref.SKU) && !(d0.Licenses != nil && containsFold(d0.Licenses, ref.SKU)) {
				pd.LicensesGained = append(pd.LicensesGained, LicenseDiff{SKU: ref.SKU, DisabledPlansAfter: planNames(ref.DisabledPlans, names)})
			}
		}
		return
	}
	for _, c := range p1.Changes {
		switch c.Kind {
		case AssignLicense, RemoveLicense, DisableLicensePlans:
		default:
			continue
		}
		if slices.ContainsFunc(p0.Changes, func(o Change) bool {
			return o.Kind == c.Kind && strings.EqualFold(o.SKUID, c.SKUID) && samePlans(o.DisabledPlans, c.DisabledPlans)
		}) {
			continue // the current rules make the same change
		}
		i := slices.IndexFunc(u.Licenses, func(l LicenseAssignment) bool { return strings.EqualFold(l.SKUID, c.SKUID) })
		switch {
		case c.Kind == RemoveLicense:
			pd.LicensesLost = append(pd.LicensesLost, LicenseDiff{SKU: c.SKU, DisabledPlansBefore: planNames(u.Licenses[i].DisabledPlans, names)})
		case i < 0:
			pd.LicensesGained = append(pd.LicensesGained, LicenseDiff{SKU: c.SKU, DisabledPlansAfter: planNames(c.DisabledPlans, names)})
		default:
			pd.LicensePlansChanged = append(pd.LicensePlansChanged, LicenseDiff{SKU: c.SKU,
				DisabledPlansBefore: planNames(u.Licenses[i].DisabledPlans, names), DisabledPlansAfter: planNames(c.DisabledPlans, names)})
		}
	}
}

// planNames names service plan ids, sorted.
func planNames(ids []string, names map[string]string) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		out = append(out, cmp.Or(names[strings.ToLower(id)], id))
	}
	slices.Sort(out)
	return out
}

// previewRename is the rename the candidate's plan would make of the
// account ("" none), chosen as planRename chooses (rename.go) but from the
// complete read instead of a read per person: the first candidate of the
// new name that no account read holds (the account's own name counts as
// free). The real rename checks each name with Graph when it applies it.
func previewRename(s previewSide, d rules.Desired, u *User, owned bool, p Plan, pic *completeRead) string {
	if !s.rename || u == nil || !owned || u.OnPremisesSync || (d.Phase != rules.PhaseActive && d.Phase != rules.PhasePreHire) ||
		len(d.UPNCandidates) == 0 || containsFold(d.UPNCandidates, u.UserPrincipalName) ||
		!slices.ContainsFunc(p.Changes, func(c Change) bool { return c.Kind == UpdateUser && hasNameProperty(c) }) {
		return ""
	}
	for _, c := range d.UPNCandidates {
		if !pic.upnTaken(c, u.ID) {
			return c
		}
	}
	return ""
}

// upnTaken reports whether an account read other than userID holds upn.
// The index is built on first use.
func (r *completeRead) upnTaken(upn, userID string) bool {
	if r.upns == nil {
		r.upns = make(map[string]string, r.accounts)
		for _, us := range r.byEmp {
			for _, u := range us {
				r.upns[strings.ToLower(u.UserPrincipalName)] = u.ID
			}
		}
	}
	id, ok := r.upns[strings.ToLower(upn)]
	return ok && id != userID
}

// diffRename fills the person's rename: the candidate renames the owned
// account, and the current rules would not give it the same name.
func diffRename(pd *PersonDiff, cur, cand previewSide, d0, d1 rules.Desired, u *User, owned bool, p0, p1 Plan, pic *completeRead) {
	after := previewRename(cand, d1, u, owned, p1, pic)
	if after == "" || strings.EqualFold(after, previewRename(cur, d0, u, owned, p0, pic)) {
		return
	}
	pd.Rename = &ValueDiff{Before: u.UserPrincipalName, After: after}
}

// totalLifecycle adds up the licences and renames, overall and per SKU.
func (pv *RulesPreview) totalLifecycle(cur, cand previewSide) {
	t := &pv.Totals
	skus := map[string]*LicenseSummary{}
	sku := func(k string) *LicenseSummary {
		k = strings.ToUpper(k)
		if skus[k] == nil {
			skus[k] = &LicenseSummary{SKU: k}
		}
		return skus[k]
	}
	for k := range cur.licenses {
		_, ok := cand.licenses[k]
		sku(k).Unmanaged = !ok
	}
	for k, problem := range cand.licenses {
		_, ok := cur.licenses[k]
		s := sku(k)
		s.Added, s.Problem = !ok, problem
	}
	for _, pd := range pv.People {
		if pd.Error != "" {
			continue
		}
		t.LicensesGained += len(pd.LicensesGained)
		t.LicensesLost += len(pd.LicensesLost)
		t.LicensePlansChanged += len(pd.LicensePlansChanged)
		for _, l := range pd.LicensesGained {
			sku(l.SKU).Gained++
		}
		for _, l := range pd.LicensesLost {
			sku(l.SKU).Lost++
		}
		for _, l := range pd.LicensePlansChanged {
			sku(l.SKU).PlansChanged++
		}
		if pd.Rename != nil {
			t.Renamed++
		}
	}
	pv.Licenses = make([]LicenseSummary, 0, len(skus))
	for _, k := range slices.Sorted(maps.Keys(skus)) {
		pv.Licenses = append(pv.Licenses, *skus[k])
	}
}
