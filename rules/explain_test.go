package rules

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/provisioning/model"
)

// lineOf is the 1-based line of testdata/explain.yaml that contains text
// (which must occur once) and the 1-based column where at starts on it.
func lineOf(t *testing.T, src, text, at string) (line, col int) {
	t.Helper()
	if strings.Count(src, text) != 1 {
		t.Fatalf("%q occurs %d times in the test rules", text, strings.Count(src, text))
	}
	for i, l := range strings.Split(src, "\n") {
		if strings.Contains(l, text) {
			return i + 1, strings.Index(l, at) + 1
		}
	}
	return 0, 0
}

// TestExplainOrigins: every attribute, group, UPN, manager and phase origin
// points at the line (and column) of testdata/explain.yaml that writes the
// rule, with the expression as written.
func TestExplainOrigins(t *testing.T) {
	raw, err := os.ReadFile("testdata/explain.yaml")
	if err != nil {
		t.Fatal(err)
	}
	src := string(raw)
	r, err := Load("testdata/explain.yaml")
	if err != nil {
		t.Fatal(err)
	}
	berlin := r.TimeZone()
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, berlin)
	base := model.Employee{PersonID: "7", FirstName: "Ada", LastName: "Lovelace", Status: "ACTIVE", Position: "Controller",
		SupervisorID: "3", Department: model.Ref{Name: "Finance"}, Office: model.Ref{Name: "Munich"},
		LegalEntity: model.Ref{Name: "Example GmbH"}, StartDate: model.Date{Year: 2020, Month: 1, Day: 1}}
	d, err := r.Explain(base, now)
	if err != nil {
		t.Fatal(err)
	}
	x := d.Explain
	if x == nil {
		t.Fatal("Explain left Desired.Explain nil")
	}

	type want struct {
		name     string
		got      *Origin
		rule     string
		text, at string // the line that writes the rule, and where on it the origin points
		expr     string
	}
	attr := func(p string) *Origin {
		o, ok := x.Attributes[p]
		if !ok {
			t.Fatalf("no origin for attribute %s", p)
		}
		return &o
	}
	group := func(i int) *Origin { return &x.Groups[i].Origin }
	tests := []want{
		{"attribute, plain expression", attr("jobTitle"), "attributes.jobTitle", "  jobTitle: employee.position", "employee", "employee.position"},
		{"attribute, quoted expression", attr("displayName"), "attributes.displayName", "  displayName:", "'", `employee.first_name + " " + employee.last_name`},
		{"attribute, value in a mapping", attr("department"), "attributes.department", "    value: employee.department.name", "employee", "employee.department.name"},
		{"attribute, flow mapping", attr("employeeHireDate"), "attributes.employeeHireDate", "employeeHireDate: { value", "employee.start_date", "employee.start_date"},
		{"attribute, policy never", attr("mobilePhone"), "attributes.mobilePhone", "  mobilePhone:", "mobilePhone", "policy: never"},
		{"group, member", group(0), `groups[0] "Finance"`, "  - group: Finance", "Finance", `employee.department.name == "Finance"`},
		{"group, not member", group(1), `groups[1] "Berlin Finance"`, "  - group: Berlin Finance", "Berlin", `employee.department.name == "Finance" && employee.office.name == "Berlin"`},
		{"group, always", group(2), `groups[2] "Everyone"`, "  - group: Everyone", "Everyone", "true"},
		{"upn, template", x.UPN, "upn.candidates[0]", `- "{first}.{last}"`, `"`, "{first}.{last}"},
		{"manager", x.Manager, "manager", "manager: employee.supervisor_id", "employee", "employee.supervisor_id"},
		{"scope", x.Scope, "scope.when", "  when: employee.legal_entity.name", "employee", `employee.legal_entity.name != "Contractors Ltd"`},
		{"phase active", &x.Phase, "lifecycle", "lifecycle:", "lifecycle", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got == nil {
				t.Fatal("no origin")
			}
			line, col := lineOf(t, src, tt.text, tt.at)
			o := *tt.got
			if o.File != "testdata/explain.yaml" || o.Line != line || o.Col != col || o.Rule != tt.rule {
				t.Errorf("origin = %s:%d:%d %s, want testdata/explain.yaml:%d:%d %s", o.File, o.Line, o.Col, o.Rule, line, col, tt.rule)
			}
			if tt.expr != "" && o.Expr != tt.expr {
				t.Errorf("expr = %q, want %q", o.Expr, tt.expr)
			}
		})
	}

	if g := x.Groups; len(g) != 3 || !g[0].Member || g[1].Member || !g[2].Member {
		t.Fatalf("group decisions = %+v", g)
	}
	if got := x.Groups[1].FalseCondition; got != `employee.office.name == "Berlin"` {
		t.Errorf("false condition of Berlin Finance = %q, want the office part", got)
	}
	if x.DecidedBy != "status ACTIVE, start_date 2020-01-01" || x.PhaseReason != d.Reason {
		t.Errorf("phase decided by %q, reason %q", x.DecidedBy, x.PhaseReason)
	}
	line, col := lineOf(t, src, "  jobTitle: employee.position", "employee")
	if s, w := x.Attributes["jobTitle"].String(), "testdata/explain.yaml:"+itoa(line)+":"+itoa(col)+" attributes.jobTitle: employee.position"; s != w {
		t.Errorf("String() = %q, want %q", s, w)
	}
	b, err := json.Marshal(x.Attributes["jobTitle"])
	if err != nil || !strings.Contains(string(b), `"line":`+itoa(line)) || !strings.Contains(string(b), `"col":`) {
		t.Errorf("JSON = %s (%v)", b, err)
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// TestExplainPhases: the phase origin is the lifecycle setting that decided
// it, on its line, with the Personio field that decided it.
func TestExplainPhases(t *testing.T) {
	raw, err := os.ReadFile("testdata/explain.yaml")
	if err != nil {
		t.Fatal(err)
	}
	src := string(raw)
	r, err := Load("testdata/explain.yaml")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, r.TimeZone())
	day := func(y, m, d int) model.Date { return model.Date{Year: y, Month: time.Month(m), Day: d} }
	emp := func(f func(e *model.Employee)) model.Employee {
		e := model.Employee{PersonID: "8", FirstName: "Max", LastName: "Muster", Status: "ACTIVE",
			Department: model.Ref{Name: "Finance"}, LegalEntity: model.Ref{Name: "Example GmbH"}, StartDate: day(2020, 1, 1)}
		f(&e)
		return e
	}
	tests := []struct {
		name      string
		e         model.Employee
		phase     Phase
		rule      string
		text, at  string
		decidedBy string
		groupRule string // origin of the group decisions of a non-member ("" the group rule)
	}{
		{"leaver", emp(func(e *model.Employee) { e.LastWorkingDay = day(2026, 11, 20) }), PhaseLeaver,
			"lifecycle.leaver", "  leaver:", "leaver", "last_working_day 2026-11-20", "lifecycle.leaver"},
		{"inactive", emp(func(e *model.Employee) { e.Status = "INACTIVE" }), PhaseLeaver,
			"lifecycle.leaver", "  leaver:", "leaver", "status INACTIVE", "lifecycle.leaver"},
		{"deleted", emp(func(e *model.Employee) { e.TerminationDate = day(2026, 9, 30) }), PhaseDeleted,
			"lifecycle.delete_after_days", "  delete_after_days: 30", "delete", "termination_date 2026-09-30 + delete_after_days 30", "lifecycle.delete_after_days"},
		{"not yet", emp(func(e *model.Employee) { e.StartDate = day(2027, 1, 1); e.Status = "ONBOARDING" }), PhaseNotYet,
			"lifecycle.create_days_before_start", "  create_days_before_start: 14", "create", "start_date 2027-01-01 - create_days_before_start 14", "lifecycle.create_days_before_start"},
		{"pre-hire", emp(func(e *model.Employee) { e.StartDate = day(2026, 12, 1); e.Status = "ONBOARDING" }), PhasePreHire,
			"lifecycle.enable_on_start_date", "  enable_on_start_date: true", "enable", "start_date 2026-12-01", ""},
		{"leave of absence", emp(func(e *model.Employee) { e.Status = "LEAVE" }), PhaseActive,
			"lifecycle.leave_of_absence", "  leave_of_absence:", "leave_of_absence", "status LEAVE", ""},
		{"out of scope", emp(func(e *model.Employee) { e.LegalEntity.Name = "Contractors Ltd" }), PhaseOutOfScope,
			"scope.when", "  when: employee.legal_entity.name", "employee", "scope.when is false", "scope.when"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := r.Explain(tt.e, now)
			if err != nil {
				t.Fatal(err)
			}
			if d.Phase != tt.phase {
				t.Fatalf("phase = %s, want %s (%s)", d.Phase, tt.phase, d.Reason)
			}
			line, col := lineOf(t, src, tt.text, tt.at)
			for name, o := range map[string]*Origin{"Explain.Phase": &d.Explain.Phase, "PhaseOrigin": d.PhaseOrigin()} {
				if o == nil || o.Rule != tt.rule || o.Line != line || o.Col != col {
					t.Errorf("%s = %v, want %s at %d:%d", name, o, tt.rule, line, col)
				}
			}
			if d.Explain.DecidedBy != tt.decidedBy {
				t.Errorf("decided by %q, want %q", d.Explain.DecidedBy, tt.decidedBy)
			}
			// Everyone is a member of "Everyone" whenever groups are evaluated.
			g := d.Explain.Groups[2]
			switch {
			case tt.groupRule == "" && !g.Member:
				t.Errorf("Everyone: not a member in phase %s: %+v", d.Phase, g)
			case tt.groupRule != "" && (g.Member || g.Origin.Rule != tt.groupRule || g.Why == ""):
				t.Errorf("Everyone decision = %+v, want not a member by %s with a reason", g, tt.groupRule)
			}
		})
	}
}

// TestExplainUPNAndDefaults: the UPN origin is the candidate that produced
// the first UPN; settings the file does not write are defaults (line 0).
func TestExplainUPNAndDefaults(t *testing.T) {
	r, err := Load("testdata/explain.yaml")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, r.TimeZone())
	// No name: "{first}.{last}" gives nothing valid, the expression does.
	d, err := r.Evaluate(model.Employee{PersonID: "12", Status: "ACTIVE", LegalEntity: model.Ref{Name: "X"}}, now)
	if err != nil {
		t.Fatal(err)
	}
	if o := d.UPNOrigin(); o == nil || o.Rule != "upn.candidates[1]" || o.Line != 8 || d.UPNCandidates[0] != "12.staff@example.com" {
		t.Errorf("UPN %v from %v, want 12.staff@example.com from upn.candidates[1] on line 8", d.UPNCandidates, o)
	}
	if d.Explain != nil {
		t.Error("Evaluate filled Explain")
	}

	minimal, err := LoadBytes("min.yaml", []byte("time_zone: UTC\ndomain: example.com\nupn: {candidates: [\"{id}\"]}\nattributes:\n  displayName: employee.first_name\n  employeeId: employee.person_id\n"))
	if err != nil {
		t.Fatal(err)
	}
	d, err = minimal.Explain(model.Employee{PersonID: "1", FirstName: "A", Status: "INACTIVE"}, now)
	if err != nil {
		t.Fatal(err)
	}
	o := d.Explain.Phase
	if o.Line != 0 || o.Rule != "lifecycle.leaver" || o.String() != "min.yaml (default) lifecycle.leaver: disable: true, revoke_sessions: true, remove_memberships: true" {
		t.Errorf("default leaver origin = %+v (%s)", o, o)
	}
	if m := d.Explain.Manager; m == nil || m.Line != 0 || !strings.Contains(m.String(), "(default) manager") {
		t.Errorf("default manager origin = %v", m)
	}
	if d.Explain.Scope != nil {
		t.Errorf("scope origin without a scope: %v", d.Explain.Scope)
	}
	// A deleted person's state is attributed to lifecycle.leaver.
	del := minimal.MarkDeleted(Desired{PersonID: "1", Phase: PhaseLeaver})
	del.AddExplanation(nil)
	if del.PhaseOrigin() == nil || del.PhaseOrigin().Rule != "lifecycle.leaver" || !strings.Contains(del.Explain.DecidedBy, "no longer has the person") {
		t.Errorf("deleted person: %v, %+v", del.PhaseOrigin(), del.Explain)
	}
}

// TestExplainLeaverKeepsMemberships: with remove_memberships false a
// leaver's groups are left as they are, and every decision says so.
func TestExplainLeaverKeepsMemberships(t *testing.T) {
	raw, err := os.ReadFile("testdata/explain.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r, err := LoadBytes("keep.yaml", []byte(strings.Replace(string(raw), "remove_memberships: true", "remove_memberships: false", 1)))
	if err != nil {
		t.Fatal(err)
	}
	e := model.Employee{PersonID: "9", FirstName: "Lea", LastName: "Ver", Status: "INACTIVE", Department: model.Ref{Name: "Finance"}}
	d, err := r.Explain(e, time.Date(2026, 11, 27, 10, 0, 0, 0, r.TimeZone()))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range d.Explain.Groups {
		if !strings.Contains(g.Why, "remove_memberships is false") {
			t.Errorf("%s: %+v", g.Group, g)
		}
	}
}
