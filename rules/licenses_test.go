package rules

import (
	"context"
	"errors"
	"fmt"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"slices"
	"strings"
	"testing"
	"time"
)

const licenseRules = `time_zone: Europe/Berlin
domain: example.com
upn:
  candidates: ["{first}.{last}"]
attributes:
  displayName: employee.first_name
  employeeId: employee.person_id
  usageLocation: { value: '"DE"', policy: on_create }
licenses:
  remove_after_days: 10
  skus:
    - sku: SPE_E3
      when: employee.employment_type == "INTERNAL"
      disabled_plans: [YAMMER_ENTERPRISE, SWAY]
    - sku: POWER_BI_PRO
      when: employee.department.name == "Finance"
`

// TestLicenseRulesLoadErrors: every mistake in the licenses section is
// named with file:line:col and a fix, like the rest of the rules file.
func TestLicenseRulesLoadErrors(t *testing.T) {
	tests := []struct {
		name      string
		from, to  string
		line, col int
		message   string
		fix       string
	}{
		{"no usageLocation mapped", "  usageLocation: { value: '\"DE\"', policy: on_create }\n", "", 8, 1,
			"licenses needs attributes.usageLocation", "usageLocation:"},
		{"usageLocation never written", "policy: on_create }", "policy: never }", 9, 1,
			"licenses needs attributes.usageLocation", "usageLocation:"},
		{"unknown key", "remove_after_days: 10", "remove_after: 10", 10, 3, `unknown key "remove_after" in licenses`, "remove_after_days, skus"},
		{"negative days", "remove_after_days: 10", "remove_after_days: -1", 10, 22, "licenses.remove_after_days must be a whole number from 0 to 3650", "whole number"},
		{"no skus", "  skus:\n", "  sku_list:\n", 11, 3, `unknown key "sku_list"`, "skus"},
		{"sku is not a part number", "sku: SPE_E3", "sku: Microsoft 365 E3", 12, 12, `licenses.skus[0].sku "Microsoft 365 E3" is not a SKU part number`, "SPE_E3"},
		{"duplicate sku", "sku: POWER_BI_PRO", "sku: spe_e3", 15, 12, `duplicate licence "spe_e3" (first on line 12)`, "merge the conditions"},
		{"condition is not bool", `when: employee.employment_type == "INTERNAL"`, `when: employee.employment_type`, 13, 13, "licenses.skus[0].when returns string, want bool", "return bool"},
		{"bad CEL field", `employee.department.name == "Finance"`, `employee.departmnt.name == "Finance"`, 16, 21, "undefined field 'departmnt'", `did you mean "department"?`},
		{"missing condition", "      when: employee.department.name == \"Finance\"\n", "", 15, 7, `missing required key "when"`, `when: "true"`},
		{"plans not a list", "disabled_plans: [YAMMER_ENTERPRISE, SWAY]", "disabled_plans: YAMMER_ENTERPRISE", 14, 23, "licenses.skus[0].disabled_plans must be a list", "YAMMER_ENTERPRISE"},
		{"repeated plan", "[YAMMER_ENTERPRISE, SWAY]", "[YAMMER_ENTERPRISE, yammer_enterprise]", 14, 43, `service plan "yammer_enterprise" appears twice`, "remove the repeated plan"},
		{"unknown sku key", "disabled_plans:", "disabled_plan:", 14, 7, `unknown key "disabled_plan" in licenses.skus[0]`, `did you mean "disabled_plans"?`},
		{"skus empty", "  skus:\n    - sku: SPE_E3\n      when: employee.employment_type == \"INTERNAL\"\n      disabled_plans: [YAMMER_ENTERPRISE, SWAY]\n    - sku: POWER_BI_PRO\n      when: employee.department.name == \"Finance\"\n", "  skus: []\n", 11, 9, "licenses.skus must be a non-empty list", "SPE_E3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := strings.Replace(licenseRules, tt.from, tt.to, 1)
			if src == licenseRules {
				t.Fatalf("replacement %q not found", tt.from)
			}
			_, err := LoadBytes("rules.yaml", []byte(src))
			var re *Error
			if !errors.As(err, &re) {
				t.Fatalf("got %v, want *Error", err)
			}
			for _, p := range re.Problems {
				if strings.Contains(p.Message, tt.message) {
					if p.File != "rules.yaml" || p.Line != tt.line || p.Column != tt.col || !strings.Contains(p.Fix, tt.fix) {
						t.Errorf("got %s\nwant rules.yaml:%d:%d: ...%s... — ...%s...", p, tt.line, tt.col, tt.message, tt.fix)
					}
					return
				}
			}
			t.Errorf("no problem mentions %q in:\n%v", tt.message, err)
		})
	}
	r, err := LoadBytes("rules.yaml", []byte(licenseRules))
	if err != nil {
		t.Fatalf("the unbroken file must load: %v", err)
	}
	if got := fmt.Sprint(r.ManagedLicenses()); got != "[{SPE_E3 [YAMMER_ENTERPRISE SWAY]} {POWER_BI_PRO []}]" {
		t.Errorf("managed licences %s", got)
	}
	if r.LicenseRemoveAfterDays() != 10 {
		t.Errorf("remove_after_days %d", r.LicenseRemoveAfterDays())
	}
	def, err := LoadBytes("rules.yaml", []byte(strings.Replace(licenseRules, "  remove_after_days: 10\n", "", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if def.LicenseRemoveAfterDays() != DefaultLicenseRemoveAfterDays {
		t.Errorf("default remove_after_days %d, want %d", def.LicenseRemoveAfterDays(), DefaultLicenseRemoveAfterDays)
	}
	none, err := LoadBytes("rules.yaml", []byte(goodRules))
	if err != nil {
		t.Fatal(err)
	}
	if len(none.ManagedLicenses()) != 0 {
		t.Errorf("rules without licenses manage %v", none.ManagedLicenses())
	}
}

// TestLicenseEvaluation: a licence follows its condition; a leaver keeps
// the managed licences until the end of the last working day plus
// remove_after_days (booked as the next transition) and has none after.
func TestLicenseEvaluation(t *testing.T) {
	r, err := LoadBytes("rules.yaml", []byte(licenseRules))
	if err != nil {
		t.Fatal(err)
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	base := model.Employee{PersonID: "1", FirstName: "Ada", LastName: "Lovelace", Status: "ACTIVE", EmploymentType: "INTERNAL",
		StartDate: model.Date{Year: 2024, Month: 1, Day: 1}, Department: model.Ref{Name: "Finance"}}
	leaver := base
	leaver.LastWorkingDay = model.Date{Year: 2026, Month: 11, Day: 30}
	removeAt := time.Date(2026, 12, 11, 0, 0, 0, 0, berlin) // end of 2026-12-10 = last working day + 10
	tests := []struct {
		name     string
		emp      model.Employee
		now      time.Time
		want     []string
		keep     bool
		next     time.Time
		warnings string
	}{
		{"both conditions true", base, time.Date(2026, 11, 1, 12, 0, 0, 0, berlin), []string{"SPE_E3", "POWER_BI_PRO"}, false, time.Time{}, ""},
		{"external, not in finance", func() model.Employee {
			e := base
			e.EmploymentType, e.Department = "EXTERNAL", model.Ref{Name: "Sales"}
			return e
		}(), time.Date(2026, 11, 1, 12, 0, 0, 0, berlin), []string{}, false, time.Time{}, ""},
		{"active until the last working day", leaver, time.Date(2026, 11, 30, 23, 0, 0, 0, berlin), []string{"SPE_E3", "POWER_BI_PRO"}, false, time.Date(2026, 12, 1, 0, 0, 0, 0, berlin), ""},
		{"leaver keeps them", leaver, time.Date(2026, 12, 5, 12, 0, 0, 0, berlin), nil, true, removeAt, ""},
		{"leaver a second before removal", leaver, removeAt.Add(-time.Second), nil, true, removeAt, ""},
		{"leaver after remove_after_days", leaver, removeAt, []string{}, false, time.Time{}, ""},
		{"inactive without a date keeps them, with a warning", func() model.Employee {
			e := base
			e.Status = "INACTIVE"
			return e
		}(), time.Date(2026, 12, 5, 12, 0, 0, 0, berlin), nil, true, time.Time{}, "licences are kept"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := r.Evaluate(tt.emp, tt.now)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(d.Licenses) != fmt.Sprint(tt.want) || (d.Licenses == nil) != (tt.want == nil) || d.KeepLicenses != tt.keep {
				t.Errorf("licences %#v keep=%t, want %#v keep=%t (phase %s)", d.Licenses, d.KeepLicenses, tt.want, tt.keep, d.Phase)
			}
			if !d.NextTransition.Equal(tt.next) {
				t.Errorf("next transition %s, want %s", d.NextTransition, tt.next)
			}
			if tt.warnings != "" && !strings.Contains(strings.Join(d.Warnings, "\n"), tt.warnings) {
				t.Errorf("warnings %q lack %q", d.Warnings, tt.warnings)
			}
		})
	}

	// A condition that fails at run time stops the evaluation, as a group
	// condition does: treating it as false would take the licence away.
	broken, err := LoadBytes("rules.yaml", []byte(strings.Replace(licenseRules, `employee.department.name == "Finance"`, `days_between(date(employee.termination_date), now) > 0`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := broken.Evaluate(base, time.Now()); err == nil || !strings.Contains(err.Error(), `licence "POWER_BI_PRO"`) {
		t.Errorf("a failing licence condition: %v", err)
	}
}

func TestCheckLicenses(t *testing.T) {
	r, err := LoadBytes("rules.yaml", []byte(licenseRules))
	if err != nil {
		t.Fatal(err)
	}
	tenant := map[string][]string{"SPE_E3": {"EXCHANGE_S_ENTERPRISE", "YAMMER_ENTERPRISE", "TEAMS1"}}
	resolve := func(_ context.Context, part string) (string, []string, bool, error) {
		plans, ok := tenant[part]
		return "id-" + part, plans, ok, nil
	}
	err = r.CheckLicenses(context.Background(), resolve)
	var re *Error
	if !errors.As(err, &re) {
		t.Fatalf("got %v, want *Error", err)
	}
	want := []string{
		`rules.yaml:12:12: licence "SPE_E3" has no service plan "SWAY" — use a servicePlanName of this SKU: EXCHANGE_S_ENTERPRISE, YAMMER_ENTERPRISE, TEAMS1`,
		`rules.yaml:15:12: licence "POWER_BI_PRO": the tenant has no subscription with this SKU part number — write the skuPartNumber`,
	}
	if len(re.Problems) != len(want) {
		t.Fatalf("problems:\n%v", err)
	}
	for i, w := range want {
		got := re.Problems[i].String()
		// the plan is named at its own position
		if i == 0 {
			w = strings.Replace(w, "12:12", "14:43", 1)
		}
		if !strings.HasPrefix(got, w) {
			t.Errorf("problem %d:\n got %s\nwant %s...", i, got, w)
		}
	}
	tenant["POWER_BI_PRO"] = []string{"BI_AZURE_P2"}
	tenant["SPE_E3"] = append(tenant["SPE_E3"], "SWAY")
	if err := r.CheckLicenses(context.Background(), resolve); err != nil {
		t.Errorf("every licence known: %v", err)
	}
	boom := errors.New("403 Authorization_RequestDenied")
	if err := r.CheckLicenses(context.Background(), func(context.Context, string) (string, []string, bool, error) { return "", nil, false, boom }); !errors.Is(err, boom) {
		t.Errorf("a failing look-up: %v", err)
	}
}

func TestOnNameChange(t *testing.T) {
	for _, tt := range []struct {
		line    string
		want    NameChangePolicy
		problem string
	}{
		{"", KeepUPN, ""},
		{"  on_name_change: keep\n", KeepUPN, ""},
		{"  on_name_change: rename\n", RenameUPN, ""},
		{"  on_name_change: always\n", "", `rules.yaml:4:19: unknown upn.on_name_change "always" — use "keep"`},
		{"  on_name_change: [rename]\n", "", "rules.yaml:4:19: upn.on_name_change must be text"},
	} {
		src := strings.Replace(goodRules, "upn:\n", "upn:\n"+tt.line, 1)
		r, err := LoadBytes("rules.yaml", []byte(src))
		if tt.problem != "" {
			if err == nil || !strings.Contains(err.Error(), tt.problem) {
				t.Errorf("%q: got %v, want %q", tt.line, err, tt.problem)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", tt.line, err)
		}
		if r.OnNameChange() != tt.want {
			t.Errorf("%q: policy %q, want %q", tt.line, r.OnNameChange(), tt.want)
		}
	}
	if !slices.Contains(topKeys, "licenses") {
		t.Error("licenses is not a known top-level key")
	}
}
