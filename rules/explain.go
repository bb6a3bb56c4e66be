package rules

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
	"go.yaml.in/yaml/v3"

	"github.com/personio-entra/personio-entra/provisioning/model"
	"github.com/personio-entra/personio-entra/rules/internal/hr"
)

// Origin is the rule that produced a value or a decision: where it is
// written in the rules file and what it says. Line and Col are 1-based;
// Line 0 means the rules file does not write the setting and its default
// applies (Expr then describes the default). Origins are precomputed once
// per rules file and shared: treat them as read-only.
type Origin struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Col  int    `json:"col"`
	// Rule is the rule's place in the file: attributes.jobTitle,
	// groups[3] "Finance", upn.candidates[1], mail_nickname, manager, scope,
	// lifecycle.leaver, ...
	Rule string `json:"rule"`
	// Expr is the expression or template as written (for a lifecycle
	// setting: the setting and its value).
	Expr string `json:"expr,omitempty"`
}

// String renders "rules.yaml:14:5 attributes.jobTitle: employee.position"
// ("rules.yaml (default) lifecycle.leaver: ..." for a default; an origin
// without a file is a setting of the configuration, such as
// ENTRA_RECORD_LEAVE_DATE, rendered as its rule alone).
func (o Origin) String() string {
	var b strings.Builder
	switch {
	case o.File == "":
		b.WriteString(o.Rule)
	case o.Line > 0:
		b.WriteString(o.File + ":" + strconv.Itoa(o.Line) + ":" + strconv.Itoa(o.Col) + " " + o.Rule)
	default:
		b.WriteString(o.File + " (default) " + o.Rule)
	}
	if o.Expr != "" {
		b.WriteString(": " + oneLine(o.Expr))
	}
	return b.String()
}

// oneLine folds a multi-line expression (YAML block scalar) into one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Explanation says, for one person, which rule produced each value of
// their Desired state and why they are or are not in each managed group.
// Rules.Explain and the engine's Explain fill it; Evaluate does not.
type Explanation struct {
	// Phase is the lifecycle (or scope) rule that decided the phase;
	// PhaseReason repeats Desired.Reason and DecidedBy names the Personio
	// field or status that decided it ("last_working_day 2026-03-31",
	// "status INACTIVE", "start_date 2026-12-01", "scope.when is false").
	Phase       Origin `json:"phase"`
	PhaseReason string `json:"phase_reason"`
	DecidedBy   string `json:"decided_by"`
	// Scope is the scope rule (nil: the rules have none, everyone is in scope).
	Scope *Origin `json:"scope,omitempty"`
	// Attributes maps Graph property → the rule that maps it, for every
	// mapped property (also those left out of Desired.Attributes because
	// they could not be computed: see Desired.Warnings).
	Attributes map[string]Origin `json:"attributes,omitempty"`
	// UPN is the candidate that produced the first user principal name
	// (nil when no candidate gave a valid one).
	UPN *Origin `json:"upn,omitempty"`
	// MailNickname is the mail_nickname rule, or the UPN candidate it was
	// derived from.
	MailNickname *Origin `json:"mail_nickname,omitempty"`
	// Manager is the manager rule (nil when the rules do not manage it).
	Manager *Origin `json:"manager,omitempty"`
	// Groups holds one decision per managed group, in file order.
	Groups []GroupDecision `json:"groups"`
}

// GroupDecision is whether the person belongs in one managed group and the
// rule that decided it.
type GroupDecision struct {
	// Group is the group's key as written in the rules.
	Group  string `json:"group"`
	Member bool   `json:"member"`
	// Origin is the group rule (groups[i]); for a leaver whose memberships
	// are removed, the lifecycle.leaver rule.
	Origin Origin `json:"origin"`
	// FalseCondition is, when the condition was false, the part of it that
	// was false: the first false operand of a top-level &&, else the
	// whole condition.
	FalseCondition string `json:"false_condition,omitempty"`
	// Why explains a decision the condition did not take (a leaver, not
	// yet due, out of scope) or a condition that failed to evaluate.
	Why string `json:"why,omitempty"`
}

// phaseRule names the lifecycle setting that decided the phase.
type phaseRule uint8

const (
	phaseByNone          phaseRule = iota
	phaseByScope                   // scope.when is false
	phaseByOnboard                 // ONBOARDING without a start date
	phaseByCreate                  // before the create window (create_days_before_start)
	phaseByPreHire                 // before the start date (enable_on_start_date)
	phaseByActive                  // employed
	phaseByAbsence                 // status LEAVE with leave_of_absence.disable
	phaseByLeaveDay                // after the end of the last working day / termination date
	phaseByInactive                // status INACTIVE without dates
	phaseByDelete                  // delete_after_days passed
	phaseByDeletedPerson           // the person no longer exists in Personio (engine)
	phaseRuleCount
)

// source records, cheaply, where a Desired's values came from: the rules
// (whose precomputed origins are looked up on demand), the instant it was
// evaluated at, the UPN candidate that gave the first UPN and the
// lifecycle rule that decided the phase.
type source struct {
	r     *Rules
	at    time.Time
	upn   int16 // index into Rules.candidates; -1 none
	phase phaseRule
}

// origins is the table of precomputed Origins of one rules file.
type origins struct {
	attrs      map[string]*Origin
	groups     map[string]*Origin // group key → origin
	groupList  []*Origin          // parallel to Rules.groups
	candidates []*Origin          // parallel to Rules.candidates
	mailNick   *Origin
	manager    *Origin // nil: the rules do not manage the manager
	scope      *Origin
	phase      [phaseRuleCount]*Origin

	envOnce sync.Once
	env     *cel.Env
	envErr  error
}

// buildOrigins walks the parsed rules file once and records where every
// rule is written.
func buildOrigins(file string, root *yaml.Node, r *Rules) *origins {
	o := &origins{attrs: map[string]*Origin{}, groups: map[string]*Origin{}}
	at := func(n *yaml.Node, rule, expr string) *Origin {
		og := &Origin{File: file, Rule: rule, Expr: expr}
		if n != nil {
			og.Line, og.Col = n.Line, n.Column
		}
		return og
	}
	fromExpr := func(x *expr, rule string) *Origin {
		return &Origin{File: file, Line: x.pos.line, Col: x.pos.col, Rule: rule, Expr: x.src}
	}
	top := func(key string) (k, v *yaml.Node) { return lookup(root, key) }

	_, attrsNode := top("attributes")
	for _, a := range r.attrs {
		rule := "attributes." + a.property
		if a.value != nil {
			o.attrs[a.property] = fromExpr(a.value, rule)
			continue
		}
		k, _ := lookup(attrsNode, a.property)
		o.attrs[a.property] = at(k, rule, "policy: never")
	}
	for i, g := range r.groups {
		og := &Origin{File: file, Line: g.pos.line, Col: g.pos.col, Rule: fmt.Sprintf("groups[%d] %q", i, g.key), Expr: g.when.src}
		o.groupList = append(o.groupList, og)
		o.groups[g.key] = og
	}
	_, upnNode := top("upn")
	_, candNode := lookup(upnNode, "candidates")
	for i, c := range r.candidates {
		rule := fmt.Sprintf("upn.candidates[%d]", i)
		if c.expr != nil {
			o.candidates = append(o.candidates, fromExpr(c.expr, rule))
			continue
		}
		var n *yaml.Node
		if candNode != nil && i < len(candNode.Content) {
			n = candNode.Content[i]
		}
		o.candidates = append(o.candidates, at(n, rule, c.tmpl.src))
	}
	if r.mailNick != nil {
		o.mailNick = fromExpr(r.mailNick, "mail_nickname")
	}
	switch k, v := top("manager"); {
	case r.manager.expr != nil:
		o.manager = fromExpr(r.manager.expr, "manager")
	case r.manager.fromSupervisor && v != nil:
		o.manager = at(v, "manager", "true (the supervisor in Personio)")
	case r.manager.fromSupervisor:
		o.manager = at(k, "manager", "the supervisor in Personio")
	}
	if r.scope != nil {
		o.scope = fromExpr(r.scope, "scope.when")
	}

	lcKey, lc := top("lifecycle")
	pol := r.lifecycle
	setting := func(rule, key, expr string) *Origin {
		k, _ := lookup(lc, key)
		return at(k, rule, expr)
	}
	general := at(lcKey, "lifecycle", "status and dates in Personio: active from the start date until the end of the last working day")
	o.phase[phaseByNone] = general
	o.phase[phaseByActive] = general
	o.phase[phaseByOnboard] = general
	o.phase[phaseByScope] = o.scope
	o.phase[phaseByCreate] = setting("lifecycle.create_days_before_start", "create_days_before_start",
		fmt.Sprintf("create_days_before_start: %d", pol.CreateDaysBeforeStart))
	o.phase[phaseByPreHire] = setting("lifecycle.enable_on_start_date", "enable_on_start_date",
		fmt.Sprintf("enable_on_start_date: %t", pol.EnableOnStartDate))
	o.phase[phaseByAbsence] = setting("lifecycle.leave_of_absence", "leave_of_absence",
		fmt.Sprintf("disable: %t", pol.LeaveOfAbsence.Disable))
	leaver := setting("lifecycle.leaver", "leaver", fmt.Sprintf("disable: %t, revoke_sessions: %t, remove_memberships: %t",
		pol.Leaver.Disable, pol.Leaver.RevokeSessions, pol.Leaver.RemoveMemberships))
	o.phase[phaseByLeaveDay] = leaver
	o.phase[phaseByInactive] = leaver
	o.phase[phaseByDeletedPerson] = leaver
	o.phase[phaseByDelete] = setting("lifecycle.delete_after_days", "delete_after_days",
		fmt.Sprintf("delete_after_days: %d", pol.DeleteAfterDays))
	return o
}

// lookup finds key in a mapping node: its key and value nodes (nil, nil
// when m is not a mapping or lacks the key).
func lookup(m *yaml.Node, key string) (k, v *yaml.Node) {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i], m.Content[i+1]
		}
	}
	return nil, nil
}

// origins returns the origins of the rules behind d (nil when d was not
// evaluated by a rules file).
func (d *Desired) origins() *origins {
	if d.src.r == nil {
		return nil
	}
	return d.src.r.origins
}

// AttributeOrigin is the rule that maps the Graph property (nil when the
// rules do not map it, e.g. employeeLeaveDateTime, which the engine sets).
// It costs a map look-up: the engine calls it for every planned change.
func (d Desired) AttributeOrigin(property string) *Origin {
	if o := d.origins(); o != nil {
		return o.attrs[property]
	}
	return nil
}

// GroupOrigin is the rule that decides membership of the group (key as
// written in the rules); nil for a group the rules do not name.
func (d Desired) GroupOrigin(key string) *Origin {
	if o := d.origins(); o != nil {
		return o.groups[key]
	}
	return nil
}

// PhaseOrigin is the lifecycle (or scope) rule that decided the phase, and
// with it whether the account exists and is enabled.
func (d Desired) PhaseOrigin() *Origin {
	if o := d.origins(); o != nil {
		return o.phase[d.src.phase]
	}
	return nil
}

// UPNOrigin is the UPN candidate that produced UPNCandidates[0].
func (d Desired) UPNOrigin() *Origin {
	if o := d.origins(); o != nil && d.src.upn >= 0 && int(d.src.upn) < len(o.candidates) {
		return o.candidates[d.src.upn]
	}
	return nil
}

// ManagerOrigin is the manager rule (nil when the rules do not manage it).
func (d Desired) ManagerOrigin() *Origin {
	if o := d.origins(); o != nil {
		return o.manager
	}
	return nil
}

// MarkDeleted attributes the desired state of a person Personio no longer
// knows (the engine builds it: a leaver now) to the rules' lifecycle.leaver,
// so that its plan and explanation name that rule.
func (r *Rules) MarkDeleted(d Desired) Desired {
	d.src = source{r: r, upn: -1, phase: phaseByDeletedPerson}
	return d
}

// File is the rules file's name as given to Load or LoadBytes.
func (r *Rules) File() string { return r.file }

// Explain evaluates the rules like Evaluate and adds the Explanation: the
// rule behind every value and every group decision. It is slower than
// Evaluate (it re-evaluates the false group conditions part by part); use
// it for one person, not for the whole company.
func (r *Rules) Explain(e model.Employee, now time.Time) (Desired, error) {
	d, err := r.Evaluate(e, now)
	if err != nil {
		return d, err
	}
	d.AddExplanation(&e)
	return d, nil
}

// AddExplanation fills d.Explain for the employee d was evaluated for (nil
// when Personio no longer has the person). It does nothing for a Desired
// that no rules file evaluated.
func (d *Desired) AddExplanation(e *model.Employee) {
	o := d.origins()
	if o == nil {
		return
	}
	r := d.src.r
	x := &Explanation{PhaseReason: d.Reason, DecidedBy: decidedBy(d, e, r), Scope: o.scope, Manager: o.manager,
		Attributes: make(map[string]Origin, len(o.attrs)), Groups: make([]GroupDecision, 0, len(r.groups))}
	if po := o.phase[d.src.phase]; po != nil {
		x.Phase = *po
	}
	for k, og := range o.attrs {
		x.Attributes[k] = *og
	}
	x.UPN = d.UPNOrigin()
	x.MailNickname = o.mailNick
	if x.MailNickname == nil {
		x.MailNickname = x.UPN
	}

	member := make(map[string]bool, len(d.Groups))
	for _, g := range d.Groups {
		member[g] = true
	}
	var a *activation
	if e != nil {
		a = &activation{employee: hr.From(*e), now: types.Timestamp{Time: d.src.at.In(r.loc)}}
	}
	for i, g := range r.groups {
		gd := GroupDecision{Group: g.key, Member: member[g.key], Origin: *o.groupList[i]}
		switch {
		case gd.Member:
		case d.Phase == PhaseOutOfScope:
			gd.Why = "out of scope: no group is managed for this person"
			if o.scope != nil {
				gd.Origin = *o.scope
			}
		case d.Phase == PhaseNotYet:
			gd.Why = "no account yet (" + string(d.Phase) + "): groups follow when the account is created"
			gd.Origin = x.Phase
		case d.Phase == PhaseDeleted:
			gd.Why = "the account is due for deletion"
			gd.Origin = x.Phase
		case d.Phase == PhaseLeaver && d.RemoveMembership:
			gd.Why = "leaver: lifecycle.leaver.remove_memberships takes every managed group away"
			gd.Origin = x.Phase
		case a == nil:
			gd.Why = "no Personio record to evaluate the condition with"
		default:
			gd.FalseCondition, gd.Why = o.falsePart(r, g.when, a)
		}
		if d.Phase == PhaseLeaver && !d.RemoveMembership {
			gd.Why = "leaver: lifecycle.leaver.remove_memberships is false, so the membership is left as it is"
		}
		x.Groups = append(x.Groups, gd)
	}
	d.Explain = x
}

// falsePart finds the part of a false condition that made it false: the
// first false operand of a top-level && (conditions are usually a chain of
// requirements), else the whole condition.
func (o *origins) falsePart(r *Rules, when *expr, a *activation) (cond, why string) {
	whole := oneLine(when.src)
	o.envOnce.Do(func() { o.env, o.envErr = newEnv(r.loc) })
	if o.envErr != nil {
		return whole, ""
	}
	parsed, iss := o.env.Parse(when.src)
	if iss != nil && iss.Err() != nil {
		return whole, ""
	}
	var parts []celast.Expr
	var flatten func(x celast.Expr)
	flatten = func(x celast.Expr) {
		if x.Kind() == celast.CallKind && x.AsCall().FunctionName() == operators.LogicalAnd {
			for _, arg := range x.AsCall().Args() {
				flatten(arg)
			}
			return
		}
		parts = append(parts, x)
	}
	native := parsed.NativeRep()
	flatten(native.Expr())
	if len(parts) < 2 {
		return whole, ""
	}
	for _, p := range parts {
		src, err := cel.ExprToString(p, native.SourceInfo())
		if err != nil {
			return whole, ""
		}
		ast, iss := o.env.Compile(src)
		if iss != nil && iss.Err() != nil {
			return whole, ""
		}
		prg, err := o.env.Program(ast, cel.CostLimit(costLimit))
		if err != nil {
			return whole, ""
		}
		out, _, err := prg.Eval(a)
		if err != nil {
			return src, fmt.Sprintf("%s failed: %v", src, err)
		}
		if b, ok := out.Value().(bool); ok && !b {
			return src, ""
		}
	}
	return whole, ""
}

// decidedBy names the Personio field or status that decided the phase.
func decidedBy(d *Desired, e *model.Employee, r *Rules) string {
	if e == nil {
		if d.src.phase == phaseByDeletedPerson {
			return "Personio no longer has the person (confirmed by a second read)"
		}
		return ""
	}
	leave := func() string {
		if !e.LastWorkingDay.IsZero() {
			return "last_working_day " + e.LastWorkingDay.String()
		}
		return "termination_date " + e.TerminationDate.String()
	}
	switch d.src.phase {
	case phaseByScope:
		return "scope.when is false"
	case phaseByDelete:
		return fmt.Sprintf("%s + delete_after_days %d", leave(), r.lifecycle.DeleteAfterDays)
	case phaseByLeaveDay:
		return leave()
	case phaseByInactive:
		return "status INACTIVE"
	case phaseByOnboard:
		return "status ONBOARDING without a start_date"
	case phaseByCreate:
		return fmt.Sprintf("start_date %s - create_days_before_start %d", e.StartDate, r.lifecycle.CreateDaysBeforeStart)
	case phaseByPreHire:
		return "start_date " + e.StartDate.String()
	case phaseByAbsence:
		return "status LEAVE"
	case phaseByActive:
		s := "status " + strings.ToUpper(e.Status)
		if !e.StartDate.IsZero() {
			s += ", start_date " + e.StartDate.String()
		}
		return s
	}
	return ""
}
