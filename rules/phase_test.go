package rules

import (
	"github.com/personio-entra/personio-entra/provisioning/model"
	"strings"
	"testing"
	"time"
)

const phaseRules = `
time_zone: Europe/Berlin
domain: example.com
upn: {candidates: ["{first}.{last}"]}
attributes:
  displayName: employee.first_name
  employeeId: employee.person_id
groups:
  - group: Everyone
    when: "true"
scope:
  when: employee.legal_entity.name != "Contractors Ltd"
lifecycle:
  create_days_before_start: 14
  enable_on_start_date: %s
  leaver: {disable: true, revoke_sessions: true, remove_memberships: %s}
  leave_of_absence: {disable: true}
  delete_after_days: %s
`

func phaseRulesWith(t *testing.T, enableOnStart, removeMemberships, deleteAfter string) *Rules {
	t.Helper()
	src := phaseRules
	for _, v := range []string{enableOnStart, removeMemberships, deleteAfter} {
		src = strings.Replace(src, "%s", v, 1)
	}
	r, err := LoadBytes("phase.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestPhases checks the lifecycle at instants around the start date and the
// end of the last working day in Europe/Berlin. Both dates sit on DST
// switches: 2026-03-29 (23-hour day, clocks go 02:00→03:00) and
// 2026-10-25 (25-hour day, 03:00→02:00), where a UTC or fixed-offset
// reading would be off by an hour.
func TestPhases(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	day := func(s string) model.Date {
		d, err := model.ParseDate(s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	starter := model.Employee{PersonID: "1", FirstName: "Ana", LastName: "Ruiz", Status: "ONBOARDING", StartDate: day("2026-03-29")}
	leaver := model.Employee{PersonID: "2", FirstName: "Ben", LastName: "Ott", Status: "ACTIVE", StartDate: day("2020-01-01"),
		LastWorkingDay: day("2026-10-25"), TerminationDate: day("2026-10-31")}
	with := func(e model.Employee, f func(*model.Employee)) model.Employee { f(&e); return e }

	startAt := time.Date(2026, 3, 29, 0, 0, 0, 0, berlin)  // = 2026-03-28T23:00:00Z
	createAt := time.Date(2026, 3, 15, 0, 0, 0, 0, berlin) // = 2026-03-14T23:00:00Z
	leaveAt := time.Date(2026, 10, 26, 0, 0, 0, 0, berlin) // = 2026-10-25T23:00:00Z

	tests := []struct {
		name          string
		rules         *Rules
		e             model.Employee
		now           time.Time
		phase         Phase
		exists        bool
		enabled       bool
		next          time.Time
		groups        int
		revoke        bool
		leaveDate     time.Time
		reasonContain string
	}{
		{name: "create window not open: one second before 14 days ahead", e: starter, now: at("2026-03-14T22:59:59Z"),
			phase: PhaseNotYet, next: createAt, groups: -1},
		{name: "create window opens at local midnight 14 days ahead", e: starter, now: at("2026-03-14T23:00:00Z"),
			phase: PhasePreHire, exists: true, next: startAt, groups: 1},
		{name: "last second before the start date: still disabled", e: starter, now: at("2026-03-28T22:59:59Z"),
			phase: PhasePreHire, exists: true, next: startAt, groups: 1},
		{name: "start date begins at 00:00 Berlin (23:00 UTC the day before)", e: starter, now: at("2026-03-28T23:00:00Z"),
			phase: PhaseActive, exists: true, enabled: true, groups: 1},
		{name: "pre-hire enabled at create when enable_on_start_date is off", rules: phaseRulesWith(t, "false", "true", "0"),
			e: starter, now: at("2026-03-20T12:00:00Z"), phase: PhasePreHire, exists: true, enabled: true, next: startAt, groups: 1},
		{name: "status ACTIVE but start date ahead: dates win", e: with(starter, func(e *model.Employee) { e.Status = "ACTIVE" }),
			now: at("2026-03-20T12:00:00Z"), phase: PhasePreHire, exists: true, next: startAt, groups: 1},
		{name: "ONBOARDING after the start date (Personio lags): active", e: starter, now: at("2026-04-02T09:00:00Z"),
			phase: PhaseActive, exists: true, enabled: true, groups: 1},
		{name: "ONBOARDING without a start date waits", e: with(starter, func(e *model.Employee) { e.StartDate = model.Date{} }),
			now: at("2026-03-20T12:00:00Z"), phase: PhaseNotYet, groups: -1, reasonContain: "without a start date"},
		{name: "during the 25-hour last working day", e: leaver, now: at("2026-10-25T22:59:59Z"),
			phase: PhaseActive, exists: true, enabled: true, next: leaveAt, groups: 1, leaveDate: leaveAt},
		{name: "the end of the last working day (00:00 Berlin = 23:00 UTC)", e: leaver, now: at("2026-10-25T23:00:00Z"),
			phase: PhaseLeaver, exists: true, revoke: true, groups: 0, leaveDate: leaveAt},
		{name: "leaver keeps memberships when remove_memberships is off", rules: phaseRulesWith(t, "true", "false", "0"),
			e: leaver, now: at("2026-11-01T00:00:00Z"), phase: PhaseLeaver, exists: true, revoke: true, groups: 1, leaveDate: leaveAt},
		{name: "termination date alone ends access at its end",
			e:   with(leaver, func(e *model.Employee) { e.LastWorkingDay = model.Date{} }),
			now: at("2026-10-31T22:59:59Z"), phase: PhaseActive, exists: true, enabled: true, groups: 1,
			next: time.Date(2026, 11, 1, 0, 0, 0, 0, berlin), leaveDate: time.Date(2026, 11, 1, 0, 0, 0, 0, berlin)},
		{name: "INACTIVE without any date is a leaver now",
			e: with(leaver, func(e *model.Employee) {
				e.Status, e.LastWorkingDay, e.TerminationDate = "INACTIVE", model.Date{}, model.Date{}
			}),
			now: at("2026-06-01T12:00:00Z"), phase: PhaseLeaver, exists: true, revoke: true, groups: 0, reasonContain: "INACTIVE"},
		{name: "INACTIVE keeps access to the end of a later last working day",
			e:   with(leaver, func(e *model.Employee) { e.Status = "INACTIVE" }),
			now: at("2026-10-25T12:00:00Z"), phase: PhaseActive, exists: true, enabled: true, next: leaveAt, groups: 1, leaveDate: leaveAt},
		{name: "status LEAVE disables when leave_of_absence.disable is on",
			e: with(leaver, func(e *model.Employee) {
				e.Status, e.LastWorkingDay, e.TerminationDate = "LEAVE", model.Date{}, model.Date{}
			}),
			now: at("2026-06-01T12:00:00Z"), phase: PhaseActive, exists: true, enabled: false, groups: 1, reasonContain: "leave of absence"},
		{name: "deletion due 30 days after the last working day", rules: phaseRulesWith(t, "true", "true", "30"),
			e: leaver, now: at("2026-11-24T22:59:59Z"), phase: PhaseLeaver, exists: true, revoke: true, groups: 0,
			next: time.Date(2026, 11, 25, 0, 0, 0, 0, berlin), leaveDate: leaveAt},
		{name: "deleted once the retention has passed", rules: phaseRulesWith(t, "true", "true", "30"),
			e: leaver, now: at("2026-11-24T23:00:00Z"), phase: PhaseDeleted, groups: -1, leaveDate: leaveAt},
		{name: "out of scope is never touched",
			e:   with(leaver, func(e *model.Employee) { e.LegalEntity.Name = "Contractors Ltd" }),
			now: at("2026-11-01T00:00:00Z"), phase: PhaseOutOfScope, groups: -1},
	}
	def := phaseRulesWith(t, "true", "true", "0")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.rules
			if r == nil {
				r = def
			}
			d, err := r.Evaluate(tt.e, tt.now)
			if err != nil {
				t.Fatal(err)
			}
			if d.Phase != tt.phase || d.Exists != tt.exists || d.AccountEnabled != tt.enabled {
				t.Errorf("phase %s exists %v enabled %v (%s), want %s %v %v", d.Phase, d.Exists, d.AccountEnabled, d.Reason, tt.phase, tt.exists, tt.enabled)
			}
			if !d.NextTransition.Equal(tt.next) {
				t.Errorf("next transition %v, want %v", d.NextTransition, tt.next)
			}
			if !d.LeaveDate.Equal(tt.leaveDate) {
				t.Errorf("leave date %v, want %v", d.LeaveDate, tt.leaveDate)
			}
			if tt.groups >= 0 && len(d.Groups) != tt.groups || tt.groups < 0 && d.Groups != nil {
				t.Errorf("groups %q, want %d", d.Groups, tt.groups)
			}
			if d.RevokeSessions != tt.revoke {
				t.Errorf("revoke sessions %v, want %v", d.RevokeSessions, tt.revoke)
			}
			if d.Phase == PhaseLeaver && d.RemoveMembership != (len(d.Groups) == 0) {
				t.Errorf("remove memberships %v with groups %q", d.RemoveMembership, d.Groups)
			}
			if !strings.Contains(d.Reason, tt.reasonContain) {
				t.Errorf("reason %q, want it to mention %q", d.Reason, tt.reasonContain)
			}
		})
	}
}

// TestNextTransitionIsWhenTheAnswerChanges: evaluating one nanosecond before
// NextTransition gives the same phase as now, at NextTransition a different
// one, walking a starter and leaver through their whole life.
func TestNextTransitionIsWhenTheAnswerChanges(t *testing.T) {
	r := phaseRulesWith(t, "true", "true", "30")
	d0, _ := model.ParseDate("2026-03-29")
	d1, _ := model.ParseDate("2026-10-25")
	e := model.Employee{PersonID: "3", FirstName: "Cy", LastName: "Do", Status: "ONBOARDING", StartDate: d0, LastWorkingDay: d1}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var seen []Phase
	for range 10 {
		d, err := r.Evaluate(e, now)
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, d.Phase)
		if d.NextTransition.IsZero() {
			break
		}
		before, err := r.Evaluate(e, d.NextTransition.Add(-time.Nanosecond))
		if err != nil {
			t.Fatal(err)
		}
		if before.Phase != d.Phase {
			t.Errorf("phase changed before NextTransition %v: %s → %s", d.NextTransition, d.Phase, before.Phase)
		}
		now = d.NextTransition
	}
	want := []Phase{PhaseNotYet, PhasePreHire, PhaseActive, PhaseLeaver, PhaseDeleted}
	if strings.Join(phaseStrings(seen), ",") != strings.Join(phaseStrings(want), ",") {
		t.Errorf("walked %v, want %v", seen, want)
	}
}

func phaseStrings(ps []Phase) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = string(p)
	}
	return out
}
