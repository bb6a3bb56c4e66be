package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/personio-entra/personio-entra/handlers"
	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/queue"
	"github.com/personio-entra/personio-entra/rules"
)

// Explain-why and the rules-change preview: printing and the admin API's
// backend. The logic is in provisioning (Engine.Explain, PreviewRules) and
// rules (Origin, Explanation).

func (b adminBackend) Explain(ctx context.Context, personID string) (any, error) {
	x, err := b.a.engine.Explain(ctx, personID)
	return x, adminError(err)
}

// problemJSON is one rules problem as the admin API reports it.
type problemJSON struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Column  int    `json:"col"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
	Text    string `json:"text"` // file:line:col: message — fix
}

func (b adminBackend) PreviewRules(ctx context.Context, name string, data []byte) (any, error) {
	candidate, err := rules.LoadBytes(name, data)
	if err != nil {
		return nil, invalidRules(err)
	}
	pv, err := provisioning.PreviewRules(ctx, b.a.engine, candidate)
	return pv, adminError(err)
}

// invalidRules turns the loader's problems into a 400 answer.
func invalidRules(err error) error {
	var re *rules.Error
	if !errors.As(err, &re) {
		return &handlers.InvalidInput{Message: err.Error(), Problems: []problemJSON{}}
	}
	ps := make([]problemJSON, len(re.Problems))
	for i, p := range re.Problems {
		ps[i] = problemJSON{File: p.File, Line: p.Line, Column: p.Column, Message: p.Message, Fix: p.Fix, Text: p.String()}
	}
	return &handlers.InvalidInput{Message: fmt.Sprintf("the candidate rules have %d problem(s)", len(ps)), Problems: ps}
}

// loadCandidate loads candidate rules for a preview; a problem is an
// error listing every problem as file:line:col.
func loadCandidate(path string) (*rules.Rules, error) {
	r, err := rules.Load(path)
	if err != nil {
		return nil, fmt.Errorf("candidate rules %s:\n%w", path, err)
	}
	return r, nil
}

// printExplained prints one person's explanation: one line per value with
// the rule that produced it.
func printExplained(w io.Writer, x provisioning.Explained) {
	d := x.Desired
	name := ""
	if x.Employee != nil {
		name = "  " + strings.TrimSpace(x.Employee.FirstName+" "+x.Employee.LastName)
	}
	fmt.Fprintf(w, "person %s%s\n", x.PersonID, name)
	ex := d.Explain
	if ex != nil {
		fmt.Fprintf(w, "  phase = %s ← %s\n", d.Phase, ex.Phase)
		why := ex.PhaseReason
		if ex.DecidedBy != "" {
			why += " (decided by " + ex.DecidedBy + ")"
		}
		fmt.Fprintf(w, "    why: %s\n", why)
		if ex.Scope != nil && d.Phase != "out_of_scope" {
			fmt.Fprintf(w, "  in scope ← %s\n", ex.Scope)
		}
	} else {
		fmt.Fprintf(w, "  phase = %s (%s)\n", d.Phase, d.Reason)
	}
	fmt.Fprintf(w, "  account: ")
	if x.Account == nil {
		fmt.Fprintf(w, "none (%s)\n", x.Ownership.Why)
	} else {
		since := ""
		if !x.Ownership.Since.IsZero() {
			since = " since " + x.Ownership.Since.Format("2006-01-02")
		}
		fmt.Fprintf(w, "%s (%s), enabled=%t, %s%s: %s\n", x.Account.UserPrincipalName, x.Account.ID, x.Account.AccountEnabled, x.Ownership.State, since, x.Ownership.Why)
	}
	if ex != nil && len(ex.Attributes) > 0 {
		fmt.Fprintln(w, "  attributes:")
		props := make([]string, 0, len(ex.Attributes))
		for p := range ex.Attributes {
			props = append(props, p)
		}
		slices.Sort(props)
		for _, p := range props {
			val := "(not computed: left as it is, see the warnings)"
			if v, ok := d.Attributes[p]; ok {
				val = fmt.Sprintf("%q", v.Value)
				if v.Policy != rules.Always {
					val += " (" + string(v.Policy) + ")"
				}
			} else if d.Phase == "out_of_scope" || d.Phase == "not_yet" || d.Phase == "deleted" {
				val = "(not evaluated in this phase)"
			}
			o := ex.Attributes[p]
			fmt.Fprintf(w, "    %s = %s ← %s\n", p, val, &o)
		}
	}
	if ex != nil {
		if len(d.UPNCandidates) > 0 {
			fmt.Fprintf(w, "  userPrincipalName = %s", d.UPNCandidates[0])
			if ex.UPN != nil {
				fmt.Fprintf(w, " ← %s", ex.UPN)
			}
			fmt.Fprintln(w)
		}
		if ex.Manager != nil && d.Phase != "out_of_scope" {
			m := d.ManagerPersonID
			if m == "" {
				m = "(none)"
			}
			fmt.Fprintf(w, "  manager = %s ← %s\n", m, ex.Manager)
		}
		if len(ex.Groups) > 0 {
			fmt.Fprintln(w, "  groups:")
		}
		for _, g := range ex.Groups {
			state := "not member"
			if g.Member {
				state = "member"
			}
			fmt.Fprintf(w, "    %-10s %s ← %s", state, g.Group, &g.Origin)
			switch {
			case g.Why != "":
				fmt.Fprintf(w, " (%s)", g.Why)
			case g.FalseCondition != "" && g.FalseCondition != strings.Join(strings.Fields(g.Origin.Expr), " "):
				fmt.Fprintf(w, " (false: %s)", g.FalseCondition)
			}
			fmt.Fprintln(w)
		}
	}
	if x.Account != nil {
		in := "none of the managed groups"
		if len(x.Groups) > 0 {
			in = strings.Join(x.Groups, ", ")
		}
		fmt.Fprintf(w, "  in Entra now: member of %s\n", in)
	}
	if len(x.Plan.Changes) == 0 {
		fmt.Fprintln(w, "  plan: no changes")
	} else {
		fmt.Fprintln(w, "  plan:")
	}
	for _, c := range x.Plan.Changes {
		fmt.Fprintf(w, "    - %s", c)
		if c.Rule != nil {
			fmt.Fprintf(w, " ← %s", c.Rule)
		}
		fmt.Fprintln(w)
	}
	for _, n := range x.Plan.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}

// printPreview prints a rules preview: each person's difference, the
// totals and the safeguard's verdict.
func printPreview(w io.Writer, pv provisioning.RulesPreview) {
	fmt.Fprintf(w, "Rules preview: %s → %s at %s\n", pv.CurrentRules, pv.CandidateRules, pv.At.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "%d people in Personio, %d Entra accounts (%d owned by personio-entra). Nothing was applied.\n\n", pv.Employees, pv.Accounts, pv.Owned)
	if len(pv.People) == 0 {
		fmt.Fprintln(w, "No difference: the candidate rules give everyone the same outcome.")
	}
	for _, p := range pv.People {
		who := p.PersonID
		if p.Name != "" {
			who += " " + p.Name
		}
		switch {
		case p.Protected:
			who += " (" + p.Account + ", protected: never changed)"
		case p.Account != "":
			who += " (" + p.Account + ")"
		default:
			who += " (no account)"
		}
		fmt.Fprintf(w, "person %s  %s", who, p.PhaseBefore)
		if p.PhaseAfter != p.PhaseBefore {
			fmt.Fprintf(w, " → %s", p.PhaseAfter)
		}
		fmt.Fprintln(w)
		if p.Error != "" {
			fmt.Fprintf(w, "  ERROR the candidate rules cannot be evaluated: %s\n", p.Error)
			continue
		}
		if p.Lifecycle != "" {
			fmt.Fprintf(w, "  lifecycle: %s\n", lifecycleText[p.Lifecycle])
		}
		for _, g := range p.GroupsGained {
			fmt.Fprintf(w, "  + group %s\n", g)
		}
		for _, g := range p.GroupsLost {
			fmt.Fprintf(w, "  - group %s\n", g)
		}
		for _, g := range p.GroupsUnmanaged {
			fmt.Fprintf(w, "  ~ group %s (no longer in the rules: the membership stays)\n", g)
		}
		for _, a := range p.Attributes {
			fmt.Fprintf(w, "  %s: %q → %q", a.Property, a.Before, a.After)
			if a.Note != "" {
				fmt.Fprintf(w, " (%s)", a.Note)
			}
			if a.Rule != nil {
				fmt.Fprintf(w, " ← %s:%d", a.Rule.File, a.Rule.Line)
			}
			fmt.Fprintln(w)
		}
		if p.Manager != nil {
			fmt.Fprintf(w, "  manager: %q → %q\n", p.Manager.Before, p.Manager.After)
		}
		if p.UPN != nil {
			fmt.Fprintf(w, "  upn candidates: %v → %v\n", p.UPN.Before, p.UPN.After)
		}
		if p.Rename != nil {
			fmt.Fprintf(w, "  rename: %s → %s\n", p.Rename.Before, p.Rename.After)
		}
		printLicenceDiffs(w, p)
		if len(p.LosesAccess) > 0 {
			fmt.Fprintf(w, "  loses access: %s\n", strings.Join(p.LosesAccess, "; "))
		}
	}
	t := pv.Totals
	fmt.Fprintf(w, "\nTotals: %d people differ; memberships +%d -%d (%d no longer managed, left as they are); attributes change for %d, manager for %d, phase for %d, first UPN candidate for %d\n",
		t.People, t.GroupsGained, t.GroupsLost, t.GroupsUnmanaged, t.AttributesChanged, t.ManagerChanged, t.PhaseChanged, t.UPNChanged)
	fmt.Fprintf(w, "Lifecycle: %d created, %d enabled, %d disabled, %d deleted, %d out of scope, %d back in scope; %d cannot be evaluated\n",
		t.Created, t.Enabled, t.Disabled, t.Deleted, t.OutOfScope, t.InScope, t.Errors)
	fmt.Fprintf(w, "Licences: +%d -%d, disabled plans change for %d; %d accounts renamed\n",
		t.LicensesGained, t.LicensesLost, t.LicensePlansChanged, t.Renamed)
	if len(pv.Groups) > 0 {
		fmt.Fprintln(w, "Per group:")
		width := 0
		for _, g := range pv.Groups {
			width = max(width, len(g.Group))
		}
		for _, g := range pv.Groups {
			fmt.Fprintf(w, "  %-*s  +%d -%d", width, g.Group, g.Gained, g.Lost)
			switch {
			case g.Added:
				fmt.Fprint(w, "  (new in the candidate)")
			case g.Unmanaged:
				fmt.Fprint(w, "  (no longer in the rules: memberships stay)")
			}
			if g.Problem != "" {
				fmt.Fprintf(w, "  PROBLEM: %s", g.Problem)
			}
			fmt.Fprintln(w)
		}
	}
	if len(pv.Licenses) > 0 {
		fmt.Fprintln(w, "Per licence:")
		width := 0
		for _, l := range pv.Licenses {
			width = max(width, len(l.SKU))
		}
		for _, l := range pv.Licenses {
			fmt.Fprintf(w, "  %-*s  +%d -%d ~%d", width, l.SKU, l.Gained, l.Lost, l.PlansChanged)
			switch {
			case l.Added:
				fmt.Fprint(w, "  (new in the candidate)")
			case l.Unmanaged:
				fmt.Fprint(w, "  (no longer in the rules: assignments stay)")
			}
			if l.Problem != "" {
				fmt.Fprintf(w, "  PROBLEM: %s", l.Problem)
			}
			fmt.Fprintln(w)
		}
	}
	fmt.Fprintf(w, "Safeguard: %s", pv.Safeguard.Verdict)
	if pv.Safeguard.LoseAccess > 0 {
		fmt.Fprintf(w, " (%d of them only because of this change)", pv.Safeguard.CausedByChange)
	}
	fmt.Fprintln(w)
	for _, n := range pv.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

var lifecycleText = map[provisioning.LifecycleChange]string{
	provisioning.LifecycleCreate:     "would be created (no account yet)",
	provisioning.LifecycleEnable:     "would be enabled",
	provisioning.LifecycleDisable:    "would be disabled",
	provisioning.LifecycleDelete:     "would be deleted",
	provisioning.LifecycleOutOfScope: "would be out of scope (never touched again)",
	provisioning.LifecycleInScope:    "would be in scope (managed from now on)",
}

// checkAndPreview is `check --rules NEW.yaml`: the candidate rules are
// checked with the configuration (every problem with file:line:col), then,
// unless offline, the usual checks run and the preview follows them.
// The preview reads the state bucket through q (nil: the queue the
// configuration names).
func checkAndPreview(ctx context.Context, cfg Config, problems []string, path string, offline bool, q *queue.Queue, opts appOptions, stdout io.Writer) error {
	candidate, err := rules.Load(path)
	if err != nil {
		problems = append(problems, strings.Split(err.Error(), "\n")...)
	} else {
		fmt.Fprintf(stdout, "ok   candidate rules %s: %d managed groups, time zone %s\n", path, len(candidate.ManagedGroups()), candidate.TimeZone())
	}
	if err := check(ctx, cfg, problems, offline, opts, stdout); err != nil {
		return err
	}
	if offline {
		fmt.Fprintln(stdout, "Preview skipped (--offline): it reads Personio and Entra.")
		return nil
	}
	log := newLogger(cfg, io.Discard)
	q, closeQ, err := queueOrOpen(ctx, cfg, log, q)
	if err != nil {
		return err
	}
	defer closeQ()
	a, err := newApp(ctx, cfg, log, q, opts)
	if err != nil {
		return err
	}
	pv, err := provisioning.PreviewRules(ctx, a.engine, candidate)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	printPreview(stdout, pv)
	return nil
}

// printLicenceDiffs prints a person's licence differences: "+ licence SKU
// (disabled: PLAN)", "- licence SKU", "~ licence SKU disabled plans [A] → []".
func printLicenceDiffs(w io.Writer, p provisioning.PersonDiff) {
	for _, l := range p.LicensesGained {
		fmt.Fprintf(w, "  + licence %s", l.SKU)
		if len(l.DisabledPlansAfter) > 0 {
			fmt.Fprintf(w, " (disabled: %s)", strings.Join(l.DisabledPlansAfter, ", "))
		}
		fmt.Fprintln(w)
	}
	for _, l := range p.LicensesLost {
		fmt.Fprintf(w, "  - licence %s\n", l.SKU)
	}
	for _, l := range p.LicensePlansChanged {
		fmt.Fprintf(w, "  ~ licence %s disabled plans %v → %v\n", l.SKU, l.DisabledPlansBefore, l.DisabledPlansAfter)
	}
}
