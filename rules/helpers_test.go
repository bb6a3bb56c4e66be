package rules

import (
	"fmt"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"testing"
	"time"
)

// TestHelpers runs each helper through a real rules file (as the
// jobTitle expression) so that type checking and evaluation are both
// exercised.
func TestHelpers(t *testing.T) {
	e := model.Employee{PersonID: "9", FirstName: "  Zoë ", LastName: "Groß-Öztürk", Status: "ACTIVE",
		StartDate: model.Date{Year: 2026, Month: 3, Day: 28}, LastWorkingDay: model.Date{Year: 2026, Month: 10, Day: 25},
		CostCenters: []model.CostCenter{{ID: "cc1", Weight: 60}, {ID: "cc2", Weight: 40}},
		Attributes:  map[string]model.Attribute{"dynamic_9001": {ID: "dynamic_9001", Label: "Work phone", Value: "+49 30 1"}}}
	// 2026-03-29 01:30 Berlin (CET), half an hour before the switch to CEST.
	now := time.Date(2026, 3, 29, 0, 30, 0, 0, time.UTC)
	tests := []struct{ expr, want string }{
		{`ascii("Łukasiewicz Ørsted Æsir Straße Renée Ayşe Kovačević")`, "Lukasiewicz Orsted AEsir Strasse Renee Ayse Kovacevic"},
		{`german("Müller Groß Öztürk Ärger Łódź")`, "Mueller Gross Oeztuerk Aerger Lodz"},
		{`lower(employee.last_name) + "|" + upper(employee.last_name)`, "groß-öztürk|GROß-ÖZTÜRK"},
		{`trim(employee.first_name)`, "Zoë"},
		{`default(employee.preferred_name, trim(employee.first_name))`, "Zoë"},
		{`default("  ", "fallback") + "|" + default("x", "fallback")`, "fallback|x"},
		{`attr(employee, "Work phone") + "|" + attr(employee, "dynamic_9001") + "|" + attr(employee, "Fax")`, "+49 30 1|+49 30 1|"},
		{`employee.attributes["dynamic_9001"].label`, "Work phone"},
		{`string(date(employee.start_date))`, "2026-03-28T00:00:00+01:00"},
		{`string(date(employee.start_date).add_days(1))`, "2026-03-29T00:00:00+01:00"},
		{`string(add_days(date(employee.start_date), 2))`, "2026-03-30T00:00:00+02:00"}, // across the switch to summer time
		{`string(days_between(date(employee.start_date), date(employee.last_working_day)))`, "211"},
		{`string(today())`, "2026-03-29T00:00:00+01:00"},
		{`format_date(now) + " " + format_date(add_days(now, 1))`, "2026-03-29 2026-03-30"},
		{`today() >= date(employee.start_date) ? "started" : "not yet"`, "started"},
		{`employee.last_working_day != "" && date(employee.last_working_day) < now ? "left" : "here"`, "here"},
		{`employee.cost_centers.map(c, c.id).join(",")`, "cc1,cc2"},
		{`"a,b".split(",")[1]`, "b"},
		{`{"Munich": "DE"}[?employee.office.name].orValue("none")`, "none"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			src := fmt.Sprintf("time_zone: Europe/Berlin\ndomain: example.com\nupn: {candidates: [\"{id}\"]}\nattributes:\n  displayName: '\"x\"'\n  employeeId: employee.person_id\n  officeLocation: %q\n", tt.expr)
			r, err := LoadBytes("helpers.yaml", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			d, err := r.Evaluate(e, now)
			if err != nil {
				t.Fatal(err)
			}
			if got := d.Attributes["officeLocation"].Value; got != tt.want {
				t.Errorf("got %q, want %q (warnings %q)", got, tt.want, d.Warnings)
			}
		})
	}
}

// TestRuntimeErrors: an attribute that fails at run time is left alone with
// a warning; a group condition that fails stops the evaluation, because
// treating it as false would remove memberships.
func TestRuntimeErrors(t *testing.T) {
	r, err := LoadBytes("rt.yaml", []byte(`time_zone: Europe/Berlin
domain: example.com
upn: {candidates: ["{first}"]}
attributes:
  displayName: employee.first_name
  employeeId: employee.person_id
  employeeHireDate: format_date(date(employee.start_date))
groups:
  - group: Veterans
    when: days_between(date(employee.start_date), now) > 3650
`))
	if err != nil {
		t.Fatal(err)
	}
	e := model.Employee{PersonID: "5", FirstName: "Ida", Status: "ACTIVE"}
	_, err = r.Evaluate(e, time.Now())
	if err == nil {
		t.Fatal("group condition on a missing date must fail the evaluation")
	}
	want := `rules: evaluate group "Veterans" for person 5 (rt.yaml): line 10: date(""): the date is not set`
	if got := err.Error(); len(got) < len(want) || got[:len(want)] != want {
		t.Errorf("error %q, want prefix %q", got, want)
	}
	e.StartDate = model.Date{Year: 2010, Month: 1, Day: 4}
	d, err := r.Evaluate(e, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if d.Attributes["employeeHireDate"].Value != "2010-01-03T23:00:00Z" || len(d.Groups) != 1 {
		t.Errorf("hire date %q groups %q", d.Attributes["employeeHireDate"].Value, d.Groups)
	}
	e.StartDate = model.Date{}
	r2, err := LoadBytes("rt2.yaml", []byte(`time_zone: UTC
domain: example.com
upn: {candidates: ["{first}"]}
attributes:
  displayName: employee.first_name
  employeeId: employee.person_id
  employeeHireDate: format_date(date(employee.start_date))
`))
	if err != nil {
		t.Fatal(err)
	}
	d, err = r2.Evaluate(e, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := d.Attributes["employeeHireDate"]; ok || len(d.Warnings) != 1 {
		t.Errorf("attributes %v warnings %q: want employeeHireDate left out with one warning", d.Attributes, d.Warnings)
	}
}

func TestAccessors(t *testing.T) {
	r := loadExample(t)
	if r.TimeZone().String() != "Europe/Berlin" || r.Domain() != "example.com" {
		t.Errorf("time zone %v domain %q", r.TimeZone(), r.Domain())
	}
	if got := fmt.Sprint(r.MatchKeys()); got != "[employeeId=person_id userPrincipalName=email mail=email]" {
		t.Errorf("match keys %s", got)
	}
	lc := r.Lifecycle()
	if lc.CreateDaysBeforeStart != 14 || !lc.EnableOnStartDate || lc.DeleteAfterDays != 0 || lc.RehireWithinDays != 180 ||
		!lc.Leaver.Disable || !lc.Leaver.RevokeSessions || !lc.Leaver.RemoveMemberships || lc.LeaveOfAbsence.Disable {
		t.Errorf("lifecycle %+v", lc)
	}
	e := model.Employee{PersonID: "77", Email: " a@example.com "}
	for _, k := range r.MatchKeys() {
		want := map[string]string{"person_id": "77", "email": "a@example.com"}[k.Field]
		if got := k.Value(e); got != want {
			t.Errorf("%s value %q, want %q", k, got, want)
		}
	}
	if MailNicknameFor("jean-luc.o'neil@example.com") != "jean-luconeil" {
		t.Errorf("nickname %q", MailNicknameFor("jean-luc.o'neil@example.com"))
	}
}
