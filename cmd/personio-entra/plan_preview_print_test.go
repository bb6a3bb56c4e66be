package main

import (
	"bytes"
	"encoding/json"
	"regexp"
	"testing"

	"github.com/personio-entra/personio-entra/provisioning"
)

// The preview's licences and renames in the CLI text and in the JSON the
// admin API and `--json` return.
func TestPrintPreviewLicencesAndRenames(t *testing.T) {
	pv := provisioning.RulesPreview{CurrentRules: "rules.yaml", CandidateRules: "candidate.yaml",
		People: []provisioning.PersonDiff{
			{PersonID: "7", Name: "Ada Byron", Account: "ada.lovelace@example.com", Owned: true, PhaseBefore: "active", PhaseAfter: "active",
				Rename:         &provisioning.ValueDiff{Before: "ada.lovelace@example.com", After: "ada.byron@example.com"},
				LicensesGained: []provisioning.LicenseDiff{{SKU: "SPE_E3", DisabledPlansAfter: []string{"YAMMER_ENTERPRISE"}}}},
			{PersonID: "8", Account: "bob.baker@example.com", Owned: true, PhaseBefore: "leaver", PhaseAfter: "leaver",
				LicensesLost:        []provisioning.LicenseDiff{{SKU: "POWER_BI_PRO"}},
				LicensePlansChanged: []provisioning.LicenseDiff{{SKU: "SPE_E5", DisabledPlansBefore: []string{"YAMMER_ENTERPRISE"}}},
				LosesAccess:         []string{"remove licence POWER_BI_PRO"}},
		},
		Totals:   provisioning.PreviewTotals{People: 2, LicensesGained: 1, LicensesLost: 1, LicensePlansChanged: 1, Renamed: 1, LoseAccess: 1},
		Licenses: []provisioning.LicenseSummary{{SKU: "POWER_BI_PRO", Lost: 1}, {SKU: "SPE_E3", Gained: 1, Added: true}, {SKU: "SPE_E5", PlansChanged: 1}},
	}
	var out bytes.Buffer
	printPreview(&out, pv)
	for _, re := range []string{
		`(?m)^person 7 Ada Byron \(ada.lovelace@example.com\)  active\n  rename: ada.lovelace@example.com → ada.byron@example.com\n  \+ licence SPE_E3 \(disabled: YAMMER_ENTERPRISE\)\n`,
		`(?m)^  - licence POWER_BI_PRO\n  ~ licence SPE_E5 disabled plans \[YAMMER_ENTERPRISE\] → \[\]\n  loses access: remove licence POWER_BI_PRO\n`,
		`(?m)^Licences: \+1 -1, disabled plans change for 1; 1 accounts renamed$`,
		`(?m)^Per licence:\n  POWER_BI_PRO  \+0 -1 ~0\n  SPE_E3        \+1 -0 ~0  \(new in the candidate\)\n  SPE_E5        \+0 -0 ~1\n`,
	} {
		if !regexp.MustCompile(re).MatchString(out.String()) {
			t.Errorf("output does not match %s:\n%s", re, out.String())
		}
	}
	b, err := json.Marshal(pv)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"rename":{"before":"ada.lovelace@example.com","after":"ada.byron@example.com"}`,
		`"licenses_gained":[{"sku":"SPE_E3","disabled_plans_after":["YAMMER_ENTERPRISE"]}]`, `"licenses_lost":[{"sku":"POWER_BI_PRO"}]`,
		`"license_plans_changed":[{"sku":"SPE_E5","disabled_plans_before":["YAMMER_ENTERPRISE"]}]`,
		`"licenses_gained":1,"licenses_lost":1,"license_plans_changed":1,"renamed":1`,
		`"licenses":[{"sku":"POWER_BI_PRO","gained":0,"lost":1,"plans_changed":0}`} {
		if !bytes.Contains(b, []byte(key)) {
			t.Errorf("JSON lacks %s:\n%s", key, b)
		}
	}
}
