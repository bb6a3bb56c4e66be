package provisioning_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/rules"
)

// licensePreviewEnv: Ada (Finance) and Bob (Sales) own accounts, Dee
// (Finance) has none yet; Bob holds VISIOCLIENT, assigned by hand. The
// current rules manage licences when withLicenses (SPE_E3 for Finance).
func licensePreviewEnv(t *testing.T, current string, guard provisioning.GuardSettings) (*lifecycleEnv, map[string]string, string) {
	t.Helper()
	env := newLifecycleEnv(t, "keep", current, guard)
	yammer := "0000aaaa-0000-4000-8000-000000000001"
	env.dir.AddSKU(provisioning.SKU{PartNumber: "SPE_E3", Enabled: 10, AppliesTo: "User",
		Plans: []provisioning.ServicePlan{{ID: yammer, Name: "YAMMER_ENTERPRISE"}, {ID: "0000aaaa-0000-4000-8000-000000000002", Name: "EXCHANGE_S_ENTERPRISE"}}})
	visio := env.dir.AddSKU(provisioning.SKU{PartNumber: "VISIOCLIENT", Enabled: 10, AppliesTo: "User"})
	env.src.Set(employee("7", "Ada", "Lovelace"))
	env.src.Set(employee("8", "Bob", "Baker", inSales))
	ids := env.converge(t, "7", "8")
	u := env.dir.User(ids["8"])
	env.dir.SetLicenses(ids["8"], append(u.Licenses, provisioning.LicenseAssignment{SKUID: visio})...)
	u = env.dir.User(ids["7"])
	env.dir.SetLicenses(ids["7"], append(u.Licenses, provisioning.LicenseAssignment{SKUID: visio})...)
	env.src.Set(employee("9", "Dee", "Dean"))
	env.dir.ResetWrites()
	return env, ids, yammer
}

func candidateRules(t *testing.T, onNameChange, extra string) *rules.Rules {
	t.Helper()
	r, err := rules.LoadBytes("candidate.yaml", []byte(strings.Replace(lifecycleRules, "%s", onNameChange, 1)+extra))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// licenceLine renders a person's licence differences: "+SKU[plans]",
// "-SKU", "~SKU[before→after]".
func licenceLine(p provisioning.PersonDiff) string {
	var out []string
	for _, l := range p.LicensesGained {
		out = append(out, "+"+l.SKU+fmt.Sprint(l.DisabledPlansAfter))
	}
	for _, l := range p.LicensesLost {
		out = append(out, "-"+l.SKU)
	}
	for _, l := range p.LicensePlansChanged {
		out = append(out, fmt.Sprintf("~%s%v→%v", l.SKU, l.DisabledPlansBefore, l.DisabledPlansAfter))
	}
	return strings.Join(out, " ")
}

// TestPreviewLicences: a candidate licences section shows, per person,
// the SKUs gained and lost (with the disabled plans by name), only for the
// SKUs the candidate manages (a licence assigned by hand never shows), the
// totals and the per-SKU counts; the safeguard counts the removals as the
// real run does. Unchanged rules show nothing.
func TestPreviewLicences(t *testing.T) {
	const e3Finance = licenseSection // SPE_E3 for Finance, YAMMER disabled, remove_after_days 5
	e3Sales := strings.Replace(licenseSection, `employee.department.name == "Finance"`, `employee.department.name == "Sales"`, 1)
	e3NoYammer := strings.Replace(licenseSection, "      disabled_plans: [YAMMER_ENTERPRISE]\n", "", 1)
	tests := []struct {
		name, current, candidate string
		want                     map[string]string // person → licence line
		gained, lost, plans      int
		summary                  string // SPE_E3 +gained -lost ~plans
		loseAccess               int
	}{
		{name: "new licences section assigns to exactly the people it matches", current: "", candidate: e3Finance,
			want: map[string]string{"7": "+SPE_E3[YAMMER_ENTERPRISE]", "9": "+SPE_E3[YAMMER_ENTERPRISE]"}, gained: 2, summary: "+2 -0 ~0"},
		{name: "condition moves the SKU to Sales", current: e3Finance, candidate: e3Sales,
			want: map[string]string{"7": "-SPE_E3", "8": "+SPE_E3[YAMMER_ENTERPRISE]", "9": ""}, gained: 1, lost: 1, summary: "+1 -1 ~0", loseAccess: 1},
		{name: "the SKU is no longer managed: left as it is", current: e3Finance, candidate: "", want: map[string]string{}},
		{name: "fewer disabled plans", current: e3Finance, candidate: e3NoYammer,
			want: map[string]string{"7": "~SPE_E3[YAMMER_ENTERPRISE]→[]", "9": ""}, plans: 1, summary: "+0 -0 ~1"},
		{name: "unchanged rules", current: e3Finance, candidate: e3Finance, want: map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, _, _ := licensePreviewEnv(t, tt.current, provisioning.GuardSettings{MaxCount: 5})
			pv, err := provisioning.PreviewRules(context.Background(), env.eng, candidateRules(t, "keep", tt.candidate))
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, p := range pv.People {
				got[p.PersonID] = licenceLine(p)
				if strings.Contains(got[p.PersonID], "VISIO") {
					t.Errorf("person %s: a licence assigned by hand shows: %s", p.PersonID, got[p.PersonID])
				}
			}
			for id, w := range tt.want {
				if got[id] != w {
					t.Errorf("person %s: licences %q, want %q", id, got[id], w)
				}
			}
			for id, g := range got {
				if _, ok := tt.want[id]; !ok {
					t.Errorf("unexpected difference for %s: %q", id, g)
				}
			}
			tot := pv.Totals
			if tot.LicensesGained != tt.gained || tot.LicensesLost != tt.lost || tot.LicensePlansChanged != tt.plans {
				t.Errorf("totals +%d -%d ~%d, want +%d -%d ~%d", tot.LicensesGained, tot.LicensesLost, tot.LicensePlansChanged, tt.gained, tt.lost, tt.plans)
			}
			summary := ""
			for _, l := range pv.Licenses {
				if l.SKU == "SPE_E3" {
					summary = fmt.Sprintf("+%d -%d ~%d", l.Gained, l.Lost, l.PlansChanged)
				}
				if l.SKU == "VISIOCLIENT" {
					t.Errorf("a SKU no rules name is summarised: %+v", l)
				}
			}
			if summary != tt.summary && tt.summary != "" {
				t.Errorf("SPE_E3 summary %q, want %q (%+v)", summary, tt.summary, pv.Licenses)
			}
			if pv.Safeguard.LoseAccess != tt.loseAccess || pv.Safeguard.CausedByChange != tt.loseAccess {
				t.Errorf("safeguard %+v, want %d losing access because of the change", pv.Safeguard, tt.loseAccess)
			}
			if w := env.dir.WriteLog(); len(w) != 0 {
				t.Errorf("the preview wrote to the directory: %v", w)
			}
		})
	}
}

// TestPreviewLeaverLicenceRemoval: a leaver keeps the managed licences for
// remove_after_days; a candidate that shortens it removes them now, and
// the removal counts against the safeguard as the real run's would (a
// budget already used up holds it).
func TestPreviewLeaverLicenceRemoval(t *testing.T) {
	env, ids, _ := licensePreviewEnv(t, licenseSection, provisioning.GuardSettings{MaxCount: 1})
	env.src.Set(employee("7", "Ada", "Lovelace", leftYesterday))
	// The leaver's account as the engine left it: disabled, out of Finance.
	ctx := context.Background()
	if err := env.dir.SetAccountEnabled(ctx, ids["7"], false); err != nil {
		t.Fatal(err)
	}
	if err := env.dir.RemoveGroupMember(ctx, env.finance, ids["7"]); err != nil {
		t.Fatal(err)
	}
	if adm, err := provisioning.AdmitForTest(env.eng, ctx, "901"); err != nil || !adm.Allowed {
		t.Fatalf("admit: %+v %v", adm, err)
	}
	env.dir.ResetWrites()
	for _, tt := range []struct {
		days string
		want string
		held bool
	}{
		{days: "5", want: ""},
		{days: "0", want: "-SPE_E3", held: true},
	} {
		t.Run("remove_after_days "+tt.days, func(t *testing.T) {
			cand := candidateRules(t, "keep", strings.Replace(licenseSection, "remove_after_days: 5", "remove_after_days: "+tt.days, 1))
			pv, err := provisioning.PreviewRules(context.Background(), env.eng, cand)
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			for _, p := range pv.People {
				if p.PersonID == "7" {
					got = licenceLine(p)
					if tt.held && !strings.Contains(strings.Join(p.LosesAccess, ";"), "remove licence SPE_E3") {
						t.Errorf("loses access %q, want the licence removal", p.LosesAccess)
					}
				}
			}
			if got != tt.want {
				t.Errorf("Ada's licences %q, want %q", got, tt.want)
			}
			if s := pv.Safeguard; s.Held != tt.held || (tt.held && (s.LoseAccess != 1 || s.CausedByChange != 1)) {
				t.Errorf("safeguard %+v, want held=%t", s, tt.held)
			}
		})
	}
}

// TestPreviewRename: switching upn.on_name_change to rename shows old →
// new for the owned accounts whose name changed and whose user principal
// name fits none of the new name's candidates (the first free one);
// accounts without a name change, unowned accounts and unchanged rules
// show no rename.
func TestPreviewRename(t *testing.T) {
	for _, tt := range []struct {
		name, current, candidate string
		template                 string // replaces the candidate's first UPN template ("": as is)
		want                     string // Ada's rename
		renamed                  int
	}{
		{name: "keep → rename", current: "keep", candidate: "rename", want: "ada.lovelace@example.com→ada.byron@example.com", renamed: 1},
		{name: "rename with another template", current: "rename", candidate: "rename", template: "{f}{last}", want: "ada.lovelace@example.com→abyron@example.com", renamed: 1},
		{name: "unchanged rules", current: "rename", candidate: "rename"},
		{name: "rename → keep", current: "rename", candidate: "keep"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := newLifecycleEnv(t, tt.current, "", provisioning.GuardSettings{MaxCount: 5})
			env.src.Set(employee("7", "Ada", "Lovelace"))
			env.src.Set(employee("8", "Bob", "Baker"))
			env.converge(t, "7", "8")
			// Cid's account is not owned: it is never renamed.
			env.dir.AddUser(provisioning.User{UserPrincipalName: "cid.cook@example.com", EmployeeID: "10", AccountEnabled: true,
				Attributes: map[string]string{"displayName": "Cid Cook", "givenName": "Cid", "surname": "Cook"}})
			env.src.Set(employee("10", "Cid", "Miller"))
			env.src.Set(employee("7", "Ada", "Lovelace", married))
			env.dir.ResetWrites()
			src := strings.Replace(lifecycleRules, "%s", tt.candidate, 1)
			if tt.template != "" {
				src = strings.Replace(src, `["{first}.{last}", `, `["`+tt.template+`", `, 1)
			}
			cand, err := rules.LoadBytes("candidate.yaml", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			pv, err := provisioning.PreviewRules(context.Background(), env.eng, cand)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, p := range pv.People {
				if p.Rename != nil {
					got[p.PersonID] = p.Rename.Before + "→" + p.Rename.After
				}
			}
			if got["7"] != tt.want || len(got) > 1 || (tt.want == "" && len(got) != 0) {
				t.Errorf("renames %v, want Ada's %q only", got, tt.want)
			}
			if pv.Totals.Renamed != tt.renamed {
				t.Errorf("totals renamed %d, want %d", pv.Totals.Renamed, tt.renamed)
			}
			if w := env.dir.WriteLog(); len(w) != 0 {
				t.Errorf("the preview wrote to the directory: %v", w)
			}
		})
	}
}

// The first candidate of the new name is taken by another account: the
// preview shows the next free one, as the rename would choose.
func TestPreviewRenameSkipsTakenName(t *testing.T) {
	env := newLifecycleEnv(t, "keep", "", provisioning.GuardSettings{MaxCount: 5})
	env.src.Set(employee("7", "Ada", "Lovelace"))
	env.converge(t, "7")
	env.dir.AddUser(provisioning.User{UserPrincipalName: "ada.byron@example.com", EmployeeID: "X1", AccountEnabled: true})
	env.src.Set(employee("7", "Ada", "Lovelace", married))
	pv, err := provisioning.PreviewRules(context.Background(), env.eng, candidateRules(t, "rename", ""))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pv.People {
		if p.PersonID == "7" {
			if p.Rename == nil || p.Rename.After != "a.byron@example.com" {
				t.Errorf("Ada's rename %+v, want → a.byron@example.com", p.Rename)
			}
			return
		}
	}
	t.Error("Ada's difference is missing")
}
