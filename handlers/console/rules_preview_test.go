package console

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/personio-entra/personio-entra/provisioning"
)

// The rules preview page shows licences (per person and per SKU) and
// renames with the totals.
func TestConsoleRulesPreviewLicencesAndRenames(t *testing.T) {
	h := newHarness(t, nil)
	h.b.preview = &provisioning.RulesPreview{Employees: 2, Accounts: 2, Owned: 2,
		People: []provisioning.PersonDiff{{PersonID: "7", Name: "Ada Byron", Account: "ada.lovelace@example.com", Owned: true,
			PhaseBefore: "active", PhaseAfter: "active",
			Rename:              &provisioning.ValueDiff{Before: "ada.lovelace@example.com", After: "ada.byron@example.com"},
			LicensesGained:      []provisioning.LicenseDiff{{SKU: "SPE_E3", DisabledPlansAfter: []string{"YAMMER_ENTERPRISE"}}},
			LicensesLost:        []provisioning.LicenseDiff{{SKU: "POWER_BI_PRO"}},
			LicensePlansChanged: []provisioning.LicenseDiff{{SKU: "SPE_E5", DisabledPlansBefore: []string{"YAMMER_ENTERPRISE"}}}}},
		Totals:   provisioning.PreviewTotals{People: 1, LicensesGained: 1, LicensesLost: 1, LicensePlansChanged: 1, Renamed: 1},
		Licenses: []provisioning.LicenseSummary{{SKU: "SPE_E3", Gained: 1, Added: true}, {SKU: "POWER_BI_PRO", Lost: 1, Unmanaged: false}},
	}
	sess, csrf, _ := h.signIn(false)
	good := "time_zone: Europe/Berlin\ndomain: example.com\nupn:\n  candidates: [\"{first}.{last}\"]\nattributes:\n  displayName: employee.last_name\n  employeeId: employee.person_id\nmatching: [employeeId]\n"
	resp := h.post("/ui/rules", sess, url.Values{"csrf": {csrf}, "rules": {good}}, nil)
	b := body(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("preview: %d\n%s", resp.StatusCode, b)
	}
	for _, want := range []string{
		"renamed: ada.lovelace@example.com → ada.byron@example.com",
		`<span class="ok">+ SPE_E3</span> <small>disabled: YAMMER_ENTERPRISE</small>`,
		`<span class="bad">− POWER_BI_PRO</span>`,
		"SPE_E5 disabled plans: YAMMER_ENTERPRISE → none",
		`<tr><th scope="row">Licences assigned</th><td>1</td></tr>`,
		`<tr><th scope="row">Accounts renamed</th><td>1</td></tr>`,
		`<table id="licenses">`,
		`<tr><th scope="row">SPE_E3</th><td>1</td><td>0</td><td>0</td><td>new in the candidate. </td></tr>`,
	} {
		if !strings.Contains(b, want) {
			t.Errorf("page lacks %q:\n%s", want, b)
		}
	}
}
