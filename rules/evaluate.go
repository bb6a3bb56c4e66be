package rules

import (
	"fmt"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"strings"
	"time"
	"unicode/utf16"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/interpreter"

	"github.com/personio-entra/personio-entra/rules/internal/hr"
)

var _ Evaluator = (*Rules)(nil)

// Personio employment statuses (upper case, as normalised).
const (
	statusOnboarding = "ONBOARDING"
	statusActive     = "ACTIVE"
	statusLeave      = "LEAVE"
	statusInactive   = "INACTIVE"
)

// activation feeds `employee` and `now` to the programs without a map.
type activation struct {
	employee *hr.Employee
	now      types.Timestamp
}

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "employee":
		return a.employee, true
	case "now":
		return a.now, true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

func (x *expr) eval(a *activation) (any, error) {
	out, _, err := x.prog.Eval(a)
	if err != nil {
		return nil, fmt.Errorf("line %d: %w", x.pos.line, err)
	}
	return out.Value(), nil
}

func (x *expr) evalString(a *activation) (string, error) {
	v, err := x.eval(a)
	if err != nil {
		return "", err
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("line %d: got %T, want text", x.pos.line, v)
	}
	return s, nil
}

func (x *expr) evalBool(a *activation) (bool, error) {
	v, err := x.eval(a)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("line %d: got %T, want true or false", x.pos.line, v)
	}
	return b, nil
}

// Evaluate returns the Entra state the rules ask for e at now. It is a pure
// function of the rules, e and now. It fails only when the answer would be
// unsafe to act on (scope, manager or a group condition cannot be decided);
// an attribute that cannot be computed or is invalid for Graph is left out
// of Attributes (so it is not touched) and explained in Warnings.
func (r *Rules) Evaluate(e model.Employee, now time.Time) (Desired, error) {
	if e.PersonID == "" {
		return Desired{}, fmt.Errorf("rules: evaluate: employee has no person id")
	}
	d := Desired{PersonID: e.PersonID, src: source{r: r, at: now, upn: -1}}
	a := &activation{employee: hr.From(e), now: types.Timestamp{Time: now.In(r.loc)}}
	fail := func(what string, err error) (Desired, error) {
		return Desired{}, fmt.Errorf("rules: evaluate %s for person %s (%s): %w", what, e.PersonID, r.file, err)
	}

	if r.scope != nil {
		in, err := r.scope.evalBool(a)
		if err != nil {
			return fail("scope.when", err)
		}
		if !in {
			d.Phase, d.Reason, d.src.phase = PhaseOutOfScope, "scope.when is false", phaseByScope
			return d, nil
		}
	}
	r.phase(&d, e, now)
	if d.Phase == PhaseNotYet || d.Phase == PhaseDeleted {
		return d, nil
	}

	d.Attributes = make(map[string]Value, len(r.attrs))
	for _, ar := range r.attrs {
		if ar.value == nil {
			d.Attributes[ar.property] = Value{Policy: ar.policy}
			continue
		}
		s, err := ar.value.evalString(a)
		if err != nil {
			d.Warnings = append(d.Warnings, fmt.Sprintf("attributes.%s not computed, left as is: %v", ar.property, err))
			continue
		}
		v, keep, warn := r.normalise(ar.property, s)
		if warn != "" {
			d.Warnings = append(d.Warnings, fmt.Sprintf("attributes.%s: %s", ar.property, warn))
		}
		if !keep || v == "" && !clearable(ar.property) {
			continue // Graph cannot clear it: leave it as it is
		}
		d.Attributes[ar.property] = Value{Value: v, Policy: ar.policy}
	}

	d.UPNCandidates, d.src.upn = r.upnCandidates(a, e, &d.Warnings)
	if r.mailNick != nil {
		s, err := r.mailNick.evalString(a)
		if err != nil {
			d.Warnings = append(d.Warnings, fmt.Sprintf("mail_nickname not computed, derived from the UPN instead: %v", err))
		}
		d.MailNickname = sanitizeNick(s, r.translit)
	}
	if d.MailNickname == "" && len(d.UPNCandidates) > 0 {
		d.MailNickname = MailNicknameFor(d.UPNCandidates[0])
	}

	switch {
	case r.manager.expr != nil:
		m, err := r.manager.expr.evalString(a)
		if err != nil {
			return fail("manager", err)
		}
		d.ManagerPersonID = strings.TrimSpace(m)
	case r.manager.fromSupervisor:
		d.ManagerPersonID = strings.TrimSpace(e.SupervisorID)
	}
	if d.ManagerPersonID == e.PersonID {
		d.ManagerPersonID = "" // Personio data error; Entra cannot make anyone their own manager
		d.Warnings = append(d.Warnings, "manager: the employee is their own supervisor in Personio; no manager set")
	}

	d.Groups = []string{}
	if d.Phase == PhaseLeaver && d.RemoveMembership {
		return d, nil
	}
	for _, g := range r.groups {
		in, err := g.when.evalBool(a)
		if err != nil {
			return fail(fmt.Sprintf("group %q", g.key), err)
		}
		if in {
			d.Groups = append(d.Groups, g.key)
		}
	}
	return d, nil
}

// phase sets Phase, Reason, Exists, AccountEnabled, leaver actions,
// LeaveDate and NextTransition from the status, the dates and now, all in
// the company time zone. Access ends at the END of the last working day.
func (r *Rules) phase(d *Desired, e model.Employee, now time.Time) {
	loc, lc := r.loc, r.lifecycle
	now = now.In(loc)

	// The leave instant: end of the last working day, else of the
	// termination date.
	var leaveAt, deleteAt time.Time
	leaveDay := e.LastWorkingDay
	if leaveDay.IsZero() {
		leaveDay = e.TerminationDate
	}
	if !leaveDay.IsZero() {
		leaveAt = leaveDay.End(loc)
		d.LeaveDate = leaveAt
		if lc.DeleteAfterDays > 0 {
			deleteAt = leaveDay.AddDays(lc.DeleteAfterDays).End(loc)
		}
	}
	var startAt, createAt time.Time
	if !e.StartDate.IsZero() {
		startAt = e.StartDate.Start(loc)
		createAt = e.StartDate.AddDays(-lc.CreateDaysBeforeStart).Start(loc)
	}
	status := strings.ToUpper(e.Status)

	switch {
	case !deleteAt.IsZero() && !now.Before(deleteAt):
		d.Phase, d.src.phase = PhaseDeleted, phaseByDelete
		d.Reason = fmt.Sprintf("left at the end of %s; deletion was due %d days later, at %s", leaveDay, lc.DeleteAfterDays, deleteAt.Format(time.RFC3339))
	case !leaveAt.IsZero() && !now.Before(leaveAt):
		d.Phase, d.src.phase = PhaseLeaver, phaseByLeaveDay
		d.Reason = fmt.Sprintf("access ended at the end of %s (%s)", leaveDay, leaveAt.Format(time.RFC3339))
	case leaveAt.IsZero() && status == statusInactive:
		d.Phase, d.src.phase = PhaseLeaver, phaseByInactive
		d.Reason = "status INACTIVE without a last working day or termination date: leaver now"
	case status == statusOnboarding && startAt.IsZero():
		d.Phase, d.src.phase = PhaseNotYet, phaseByOnboard
		d.Reason = "status ONBOARDING without a start date: waiting for one in Personio"
	case !startAt.IsZero() && now.Before(createAt):
		d.Phase, d.src.phase = PhaseNotYet, phaseByCreate
		d.Reason = fmt.Sprintf("starts on %s; the account is created from %s (%d days before)", e.StartDate, createAt.Format(time.RFC3339), lc.CreateDaysBeforeStart)
	case !startAt.IsZero() && now.Before(startAt):
		d.Phase, d.src.phase = PhasePreHire, phaseByPreHire
		d.Reason = fmt.Sprintf("starts on %s (%s)", e.StartDate, startAt.Format(time.RFC3339))
	default:
		d.Phase, d.src.phase = PhaseActive, phaseByActive
		d.Reason = "employed"
		if !startAt.IsZero() {
			d.Reason = fmt.Sprintf("employed since %s", e.StartDate)
		}
		if !leaveAt.IsZero() {
			d.Reason += fmt.Sprintf("; last working day %s", leaveDay)
		}
	}

	switch d.Phase {
	case PhasePreHire:
		d.Exists = true
		d.AccountEnabled = !lc.EnableOnStartDate
		if lc.EnableOnStartDate {
			d.Reason += "; sign-in is enabled when the start date begins"
		}
	case PhaseActive:
		d.Exists, d.AccountEnabled = true, true
		if status == statusLeave && lc.LeaveOfAbsence.Disable {
			d.AccountEnabled, d.src.phase = false, phaseByAbsence
			d.Reason += "; on leave of absence (status LEAVE): disabled by lifecycle.leave_of_absence"
		}
	case PhaseLeaver:
		d.Exists = true
		d.AccountEnabled = !lc.Leaver.Disable
		d.RevokeSessions = lc.Leaver.RevokeSessions
		d.RemoveMembership = lc.Leaver.RemoveMemberships
	}

	// The next instant at which time alone changes the answer.
	for _, t := range []time.Time{createAt, startAt, leaveAt, deleteAt} {
		if !t.IsZero() && t.After(now) && (d.NextTransition.IsZero() || t.Before(d.NextTransition)) {
			d.NextTransition = t
		}
	}
	if d.Phase == PhaseNotYet && startAt.IsZero() {
		d.NextTransition = time.Time{}
	}
}

// attribute limits in characters (docs/graph-behaviour.md#user-property-limits).
var maxLen = map[string]int{
	"employeeId": 16, "department": 64, "jobTitle": 128, "companyName": 64, "mobilePhone": 64,
	"streetAddress": 1024, "city": 128, "state": 128, "country": 128, "postalCode": 40,
	"givenName": 64, "surname": 64, "displayName": 256,
}

// clearable reports whether Graph lets the property be emptied (null).
// displayName cannot be cleared and usageLocation is not nullable
// (docs/graph-behaviour.md#user-property-limits).
func clearable(prop string) bool {
	return prop != "displayName" && prop != "usageLocation"
}

// normalise trims and checks one value for Graph. keep is false when the
// value is invalid and must not be written (the property is then left as it
// is); warn says what was changed or dropped.
func (r *Rules) normalise(prop, v string) (out string, keep bool, warn string) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", true, ""
	}
	switch prop {
	case "employeeId":
		// Never truncate the matching key: a cut id could match someone else.
		if utf16Len(v) > maxLen[prop] {
			return "", false, fmt.Sprintf("%q is longer than Graph's 16 characters; not written", v)
		}
		return v, true, ""
	case "usageLocation":
		u := strings.ToUpper(v)
		if len(u) != 2 || u[0] < 'A' || u[0] > 'Z' || u[1] < 'A' || u[1] > 'Z' {
			return "", false, fmt.Sprintf("%q is not an ISO 3166 two-letter country code; not written", v)
		}
		return u, true, ""
	case "employeeHireDate":
		if len(v) == len(time.DateOnly) {
			if d, err := model.ParseDate(v); err == nil {
				return d.Start(r.loc).UTC().Format(time.RFC3339), true, ""
			}
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return "", false, fmt.Sprintf("%q is neither YYYY-MM-DD nor RFC 3339; not written", v)
		}
		return t.UTC().Format(time.RFC3339), true, ""
	case "preferredLanguage":
		if !languageTag(v) {
			return "", false, fmt.Sprintf("%q is not a language tag such as de-DE; not written", v)
		}
		return v, true, ""
	}
	if n, ok := maxLen[prop]; ok && utf16Len(v) > n {
		return strings.TrimSpace(truncateUTF16(v, n)), true, fmt.Sprintf("cut to Graph's %d characters", n)
	}
	return v, true, ""
}

func languageTag(s string) bool {
	parts := strings.Split(s, "-")
	if len(parts[0]) < 2 || len(parts[0]) > 3 {
		return false
	}
	for i, p := range parts {
		if p == "" || len(p) > 8 {
			return false
		}
		for j := 0; j < len(p); j++ {
			c := p[j]
			letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
			if !letter && (i == 0 || c < '0' || c > '9') {
				return false
			}
		}
	}
	return true
}

// utf16Len counts UTF-16 code units, the unit Graph's length limits use.
func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}

func truncateUTF16(s string, n int) string {
	used := 0
	for i, r := range s {
		w := utf16.RuneLen(r)
		if w < 0 {
			w = 1 // invalid rune: Graph counts the replacement character
		}
		if used+w > n {
			return s[:i]
		}
		used += w
	}
	return s
}

// upnCandidates builds the ordered, de-duplicated, valid user principal
// names for the employee.
// first is the index of the candidate that gave out[0] (-1 when none did).
func (r *Rules) upnCandidates(a *activation, e model.Employee, warnings *[]string) (out []string, first int16) {
	parts := nameParts{
		first: namePart(e.FirstName, r.translit),
		last:  namePart(e.LastName, r.translit),
		id:    namePart(e.PersonID, r.translit),
	}
	parts.preferred = namePart(e.PreferredName, r.translit)
	if parts.preferred == "" {
		parts.preferred = parts.first
	}
	var locals []string
	out = make([]string, 0, 12)
	first = -1
	from := int16(0)
	add := func(upn string) {
		// A local part of punctuation alone ("'" or "_") is valid but
		// leaves no mail nickname: skip it.
		if !ValidUPN(upn) || !hasAlnum(upn[:strings.IndexByte(upn, '@')]) {
			return
		}
		for _, o := range out {
			if strings.EqualFold(o, upn) {
				return
			}
		}
		if len(out) == 0 {
			first = from
		}
		out = append(out, upn)
	}
	for i, c := range r.candidates {
		from = int16(i)
		if c.tmpl != nil {
			locals = c.tmpl.expand(locals[:0], parts)
			for _, l := range locals {
				add(l + "@" + r.domain)
			}
			continue
		}
		s, err := c.expr.evalString(a)
		if err != nil {
			*warnings = append(*warnings, fmt.Sprintf("upn.candidates[%d] not computed: %v", i, err))
			continue
		}
		local, domain, hasDomain := strings.Cut(strings.TrimSpace(s), "@")
		if !hasDomain {
			domain = r.domain
		}
		local = sanitizeLocal(local, r.translit)
		if local == "" {
			continue
		}
		if upn := local + "@" + strings.ToLower(domain); ValidUPN(upn) {
			add(upn)
		} else {
			*warnings = append(*warnings, fmt.Sprintf("upn.candidates[%d]: %q is not a valid user principal name; skipped", i, s))
		}
	}
	if len(out) == 0 {
		*warnings = append(*warnings, "no valid user principal name could be built from the name; add a candidate such as \"{id}\" or an {expr: ...}")
	}
	return out, first
}

func hasAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			return true
		}
	}
	return false
}
