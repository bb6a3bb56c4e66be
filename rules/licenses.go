package rules

import (
	"context"
	"fmt"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"slices"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	"go.yaml.in/yaml/v3"
)

// DefaultLicenseRemoveAfterDays is how long a leaver keeps the managed
// licences after the last working day when the rules do not say: Exchange
// Online keeps a mailbox 30 days after its licence is removed, so the
// default keeps the mailbox usable (delegates, a move to a shared mailbox)
// for a month and leaves another month before its data is gone.
const DefaultLicenseRemoveAfterDays = 30

// licensePolicy is the `licenses` section.
type licensePolicy struct {
	removeAfterDays int
	skus            []licenseRule
	pos             position // of the `licenses` section
}

type licenseRule struct {
	sku           string
	when          *expr
	disabledPlans []string
	pos           position   // of the sku value
	planPos       []position // of each disabled plan
}

// LicenseRule is one licence the rules manage: the SKU part number as the
// tenant's subscribedSkus name it (e.g. SPE_E3) and the service plans to
// leave disabled, by name (e.g. YAMMER_ENTERPRISE).
type LicenseRule struct {
	SKU           string   `json:"sku"`
	DisabledPlans []string `json:"disabled_plans,omitempty"`
}

// ManagedLicenses returns the licences the rules manage, in file order.
// Only these SKUs are ever assigned or removed; any other licence a user
// holds is left alone.
func (r *Rules) ManagedLicenses() []LicenseRule {
	out := make([]LicenseRule, len(r.licenses.skus))
	for i, l := range r.licenses.skus {
		out[i] = LicenseRule{SKU: l.sku, DisabledPlans: slices.Clone(l.disabledPlans)}
	}
	return out
}

// LicenseRemoveAfterDays is how many days after the last working day a
// leaver loses the managed licences (licenses.remove_after_days).
func (r *Rules) LicenseRemoveAfterDays() int { return r.licenses.removeAfterDays }

// SKUResolver looks a SKU part number up in the tenant (GET /subscribedSkus):
// it returns the skuId and the tenant's service plan names of that SKU, or
// found false when the tenant has no such subscription.
type SKUResolver func(ctx context.Context, partNumber string) (skuID string, plans []string, found bool, err error)

// CheckLicenses resolves every managed licence in the tenant and reports, in
// one *Error with file:line:col, each SKU part number the tenant does not
// have and each disabled plan the SKU does not contain. A failing look-up
// (no permission, Graph down) is returned as a plain error.
func (r *Rules) CheckLicenses(ctx context.Context, resolve SKUResolver) error {
	var problems []Problem
	for _, l := range r.licenses.skus {
		_, plans, found, err := resolve(ctx, l.sku)
		if err != nil {
			return fmt.Errorf("rules: check licence %s: %w", l.sku, err)
		}
		if !found {
			problems = append(problems, Problem{File: r.file, Line: l.pos.line, Column: l.pos.col,
				Message: fmt.Sprintf("licence %q: the tenant has no subscription with this SKU part number", l.sku),
				Fix:     "write the skuPartNumber exactly as GET /subscribedSkus (Microsoft 365 admin centre › Billing › Licences) names it, e.g. SPE_E3"})
			continue
		}
		for i, p := range l.disabledPlans {
			if !slices.ContainsFunc(plans, func(x string) bool { return strings.EqualFold(x, p) }) {
				problems = append(problems, Problem{File: r.file, Line: l.planPos[i].line, Column: l.planPos[i].col,
					Message: fmt.Sprintf("licence %q has no service plan %q", l.sku, p),
					Fix:     "use a servicePlanName of this SKU: " + strings.Join(plans, ", ")})
			}
		}
	}
	if len(problems) > 0 {
		return &Error{Problems: problems}
	}
	return nil
}

// skuPartChar reports whether c may appear in a SKU part number as written
// in subscribedSkus (SPE_E3, O365_BUSINESS_PREMIUM, Microsoft_Teams_Premium).
func skuPartChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
}

func (l *loader) licenseRules(n *yaml.Node) {
	lp := licensePolicy{removeAfterDays: DefaultLicenseRemoveAfterDays, pos: position{n.Line, n.Column}}
	defer func() { l.r.licenses = lp }()
	f := l.mapping(n, "licenses", []string{"remove_after_days", "skus"})
	if f == nil {
		return
	}
	if v := f["remove_after_days"]; v != nil {
		lp.removeAfterDays, _ = l.integer(v, "licenses.remove_after_days", 0, 3650)
	}
	s := l.required(n, f, "skus", `add skus: [{sku: SPE_E3, when: "true"}]`)
	if s == nil {
		return
	}
	if s.Kind != yaml.SequenceNode || len(s.Content) == 0 {
		l.problem(s, `write a list: - sku: SPE_E3\n      when: employee.employment_type == "INTERNAL"`, "licenses.skus must be a non-empty list")
		return
	}
	seen := map[string]position{}
	for i, item := range s.Content {
		what := fmt.Sprintf("licenses.skus[%d]", i)
		mf := l.mapping(item, what, []string{"sku", "when", "disabled_plans"})
		if mf == nil {
			continue
		}
		sn := l.required(item, mf, "sku", "add sku: <SKU part number>, e.g. SPE_E3")
		w := l.required(item, mf, "when", `add when: <condition>; use when: "true" for everyone in scope`)
		if sn == nil || w == nil {
			continue
		}
		sku, ok := l.str(sn, what+".sku")
		if !ok {
			continue
		}
		sku = strings.TrimSpace(sku)
		valid := sku != ""
		for i := 0; i < len(sku); i++ {
			valid = valid && skuPartChar(sku[i])
		}
		if !valid {
			l.problem(sn, "write the SKU part number as GET /subscribedSkus names it, e.g. SPE_E3 (letters, digits and _ only)", "%s.sku %q is not a SKU part number", what, sku)
			continue
		}
		norm := strings.ToUpper(sku)
		if first, dup := seen[norm]; dup {
			l.problem(sn, "merge the conditions into one entry with ||", "duplicate licence %q (first on line %d)", sku, first.line)
			continue
		}
		seen[norm] = position{sn.Line, sn.Column}
		rule := licenseRule{sku: sku, pos: position{sn.Line, sn.Column}}
		if dp := mf["disabled_plans"]; dp != nil {
			if dp.Kind != yaml.SequenceNode {
				l.problem(dp, "write a list of service plan names, e.g. [YAMMER_ENTERPRISE]", "%s.disabled_plans must be a list, not %s", what, kindName(dp))
				continue
			}
			bad := false
			for j, pn := range dp.Content {
				p, ok := l.str(pn, fmt.Sprintf("%s.disabled_plans[%d]", what, j))
				p = strings.TrimSpace(p)
				switch {
				case !ok:
					bad = true
				case p == "":
					l.problem(pn, "write a service plan name such as YAMMER_ENTERPRISE", "%s.disabled_plans[%d] is empty", what, j)
					bad = true
				case slices.ContainsFunc(rule.disabledPlans, func(x string) bool { return strings.EqualFold(x, p) }):
					l.problem(pn, "remove the repeated plan", "service plan %q appears twice in %s.disabled_plans", p, what)
					bad = true
				default:
					rule.disabledPlans = append(rule.disabledPlans, p)
					rule.planPos = append(rule.planPos, position{pn.Line, pn.Column})
				}
			}
			if bad {
				continue
			}
		}
		if x := l.compile(w, cel.BoolType, what+".when"); x != nil {
			rule.when = x
			lp.skus = append(lp.skus, rule)
		}
	}
}

// licenseCrossChecks: Graph refuses a licence for a user without a
// usageLocation (https://learn.microsoft.com/en-us/graph/api/user-assignlicense),
// so rules that manage licences must map it.
func (l *loader) licenseCrossChecks(root *yaml.Node) {
	if len(l.r.licenses.skus) == 0 {
		return
	}
	pos := l.r.licenses.pos
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "licenses" {
			pos = position{root.Content[i].Line, root.Content[i].Column}
		}
	}
	for _, a := range l.r.attrs {
		if a.property == "usageLocation" && a.policy != Never {
			return
		}
	}
	if l.hasProblemIn("attributes.usageLocation") {
		return
	}
	l.problemAt(pos, `map it in attributes, e.g. usageLocation: { value: '{"Munich": "DE", "London": "GB"}[?employee.office.name].orValue("")', policy: on_create }`,
		"licenses needs attributes.usageLocation: Microsoft Graph refuses a licence for a user without a usage location")
}

// evalLicenses sets d.Licenses (the managed SKUs the person should hold
// now) or d.KeepLicenses (a leaver within remove_after_days keeps what they
// hold), and books the instant the licences go in d.NextTransition. A
// condition that cannot be evaluated fails the evaluation, as a group
// condition does: guessing could take a licence away.
func (r *Rules) evalLicenses(d *Desired, a *activation, e model.Employee, now time.Time) error {
	if len(r.licenses.skus) == 0 {
		return nil
	}
	if d.Phase == PhaseLeaver {
		leaveDay := e.LastWorkingDay
		if leaveDay.IsZero() {
			leaveDay = e.TerminationDate
		}
		if leaveDay.IsZero() {
			d.KeepLicenses = true
			d.Warnings = append(d.Warnings, "licences are kept: no last working day or termination date to count licenses.remove_after_days from; remove them by hand if the person has left")
			return nil
		}
		removeAt := leaveDay.AddDays(r.licenses.removeAfterDays).End(r.loc)
		if now.Before(removeAt) {
			d.KeepLicenses = true
			d.LicensesRemovedAt = removeAt
			if d.NextTransition.IsZero() || removeAt.Before(d.NextTransition) {
				d.NextTransition = removeAt
			}
			return nil
		}
		d.Licenses = []string{}
		d.LicensesRemovedAt = removeAt
		return nil
	}
	d.Licenses = []string{}
	for _, l := range r.licenses.skus {
		in, err := l.when.evalBool(a)
		if err != nil {
			return fmt.Errorf("licence %q: %w", l.sku, err)
		}
		if in {
			d.Licenses = append(d.Licenses, l.sku)
		}
	}
	return nil
}
