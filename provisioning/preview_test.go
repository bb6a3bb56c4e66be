package provisioning_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/deploy"
	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"github.com/personio-entra/personio-entra/provisioning/provisioningtest"
	"github.com/personio-entra/personio-entra/rules"
)

// previewCandidate changes engineRules: the title in upper case, Finance
// no longer for Cid, Sales no longer managed, two new groups (Veterans
// fails for a person without a start date), contractors out of scope,
// leave of absence disables, accounts 30 days before the start, another
// UPN template.
const previewCandidate = `
time_zone: Europe/Berlin
domain: example.com
upn:
  candidates: ["{f}.{last}", "{first}.{last}{n}"]
attributes:
  displayName: 'employee.first_name + " " + employee.last_name'
  employeeId: employee.person_id
  jobTitle: upper(employee.position)
manager: true
groups:
  - group: Finance
    when: employee.department.name == "Finance" && employee.first_name != "Cid"
  - group: Everyone
    when: "true"
  - group: Veterans
    when: days_between(date(employee.start_date), now) > 3650
scope:
  when: employee.legal_entity.name != "Contractors Ltd"
lifecycle:
  create_days_before_start: 30
  enable_on_start_date: true
  leaver: {disable: true, revoke_sessions: true, remove_memberships: true}
  leave_of_absence: {disable: true}
matching: [employeeId, userPrincipalName=email]
`

// previewEnv: five owned accounts (Ada, Bob in Sales, Cid, Eve the
// contractor, Fay on leave) and three people without one (Dee, due now;
// Gus, who starts in 20 days; Hal, without a start date).
func previewEnv(t *testing.T, guard provisioning.GuardSettings) (*safetyEnv, *rules.Rules) {
	t.Helper()
	env := newRulesEnv(t, engineRules, guard)
	for _, g := range []string{"Everyone", "Veterans"} {
		env.groups[g] = env.dir.AddGroup(provisioning.Group{DisplayName: g})
	}
	env.src.Set(employee("1", "Ada", "Able"))
	env.src.Set(employee("2", "Bob", "Baker", inSales))
	env.src.Set(employee("3", "Cid", "Cook"))
	env.src.Set(employee("5", "Eve", "Extern", func(e *model.Employee) { e.LegalEntity = model.Ref{Name: "Contractors Ltd"} }))
	env.src.Set(employee("6", "Fay", "Family"))
	env.converge(t, "1", "2", "3", "5", "6")
	env.src.Set(employee("6", "Fay", "Family", func(e *model.Employee) { e.Status = "LEAVE" }))
	env.src.Set(employee("4", "Dee", "Dean"))
	start := model.DateOf(safetyNow.AddDate(0, 0, 20))
	env.src.Set(employee("7", "Gus", "Green", func(e *model.Employee) { e.StartDate = start; e.Status = "ONBOARDING" }))
	env.src.Set(employee("8", "Hal", "Hill", func(e *model.Employee) { e.StartDate = model.Date{} }))
	env.dir.ResetWrites()
	cand, err := rules.LoadBytes("candidate.yaml", []byte(previewCandidate))
	if err != nil {
		t.Fatal(err)
	}
	return env, cand
}

// TestPreviewRules: each person's difference, the totals, the groups and
// the safeguard's verdict; nothing is written.
func TestPreviewRules(t *testing.T) {
	env, cand := previewEnv(t, provisioning.GuardSettings{MaxCount: 5})
	ctx := context.Background()
	keysBefore, _ := env.state.Keys(ctx, "")
	pv, err := provisioning.PreviewRules(ctx, env.eng, cand)
	if err != nil {
		t.Fatal(err)
	}
	type person struct {
		lifecycle                provisioning.LifecycleChange
		gained, lost, unmanaged  string
		attrs                    string // "property before→after"
		upn                      string // "first before→first after"
		losesAccess, errContains string
	}
	want := map[string]person{
		"1": {gained: "Everyone", attrs: "jobTitle Analyst→ANALYST"},
		"2": {gained: "Everyone", unmanaged: "Sales", attrs: "jobTitle Analyst→ANALYST"},
		"3": {gained: "Everyone", lost: "Finance", attrs: "jobTitle Analyst→ANALYST", losesAccess: "remove from group Finance"},
		"4": {gained: "Everyone", attrs: "jobTitle Analyst→ANALYST", upn: "dee.dean@example.com→d.dean@example.com"},
		"5": {lifecycle: provisioning.LifecycleOutOfScope},
		"6": {lifecycle: provisioning.LifecycleDisable, gained: "Everyone", attrs: "jobTitle Analyst→ANALYST", losesAccess: "disable user"},
		"7": {lifecycle: provisioning.LifecycleCreate, gained: "Everyone,Finance", upn: "→g.green@example.com"},
		"8": {errContains: "Veterans"},
	}
	var ids []string
	for _, p := range pv.People {
		ids = append(ids, p.PersonID)
		w, ok := want[p.PersonID]
		if !ok {
			t.Errorf("unexpected difference for %s: %+v", p.PersonID, p)
			continue
		}
		var attrs []string
		for _, a := range p.Attributes {
			attrs = append(attrs, fmt.Sprintf("%s %s→%s", a.Property, a.Before, a.After))
			if a.Rule == nil || a.Rule.File != "candidate.yaml" || a.Rule.Line != 9 {
				t.Errorf("%s: attribute %s rule %v, want candidate.yaml line 9", p.PersonID, a.Property, a.Rule)
			}
		}
		upn := ""
		if p.UPN != nil {
			upn = strings.Join(p.UPN.Before[:min(1, len(p.UPN.Before))], "") + "→" + strings.Join(p.UPN.After[:min(1, len(p.UPN.After))], "")
		}
		got := person{lifecycle: p.Lifecycle, gained: strings.Join(p.GroupsGained, ","), lost: strings.Join(p.GroupsLost, ","),
			unmanaged: strings.Join(p.GroupsUnmanaged, ","), attrs: strings.Join(attrs, ";"), upn: upn, losesAccess: strings.Join(p.LosesAccess, ";")}
		if w.errContains != "" {
			if !strings.Contains(p.Error, w.errContains) {
				t.Errorf("%s: error %q, want one naming %s", p.PersonID, p.Error, w.errContains)
			}
			continue
		}
		if got != w {
			t.Errorf("person %s:\n got %+v\nwant %+v", p.PersonID, got, w)
		}
	}
	if !slices.IsSorted(ids) || len(ids) != len(want) {
		t.Errorf("people %v, want the %d with differences, sorted", ids, len(want))
	}

	tot := pv.Totals
	if g := (provisioning.PreviewTotals{People: 8, GroupsGained: 7, GroupsLost: 1, GroupsUnmanaged: 1, AttributesChanged: 5,
		UPNChanged: 2, PhaseChanged: 2, Created: 1, Disabled: 1, OutOfScope: 1, LoseAccess: 2, Errors: 1}); tot != g {
		t.Errorf("totals\n got %+v\nwant %+v", tot, g)
	}
	groups := map[string]string{}
	for _, g := range pv.Groups {
		groups[g.Group] = fmt.Sprintf("+%d -%d unmanaged=%t added=%t", g.Gained, g.Lost, g.Unmanaged, g.Added)
	}
	for k, w := range map[string]string{"Everyone": "+6 -0 unmanaged=false added=true", "Finance": "+1 -1 unmanaged=false added=false",
		"Sales": "+0 -0 unmanaged=true added=false", "Veterans": "+0 -0 unmanaged=false added=true"} {
		if groups[k] != w {
			t.Errorf("group %s: %s, want %s", k, groups[k], w)
		}
	}
	s := pv.Safeguard
	if s.LoseAccess != 2 || s.CausedByChange != 2 || s.Threshold != 5 || s.Remaining != 5 || s.Held || !strings.Contains(s.Verdict, "within the safeguard's budget") {
		t.Errorf("safeguard %+v", s)
	}
	if pv.Employees != 8 || pv.Accounts != 5 || pv.Owned != 5 || pv.CandidateRules != "candidate.yaml" || pv.CurrentRules != "rules.yaml" {
		t.Errorf("preview header %d employees, %d accounts, %d owned, %s → %s", pv.Employees, pv.Accounts, pv.Owned, pv.CurrentRules, pv.CandidateRules)
	}

	if w := env.dir.WriteLog(); len(w) != 0 {
		t.Errorf("the preview wrote to the directory: %v", w)
	}
	keysAfter, _ := env.state.Keys(ctx, "")
	if !slices.Equal(keysBefore, keysAfter) {
		t.Errorf("the preview changed the state bucket: %v → %v", keysBefore, keysAfter)
	}
	if len(env.q.Enqueued()) != 0 {
		t.Errorf("the preview queued %v", env.q.Enqueued())
	}
}

// TestPreviewSafeguardVerdict: the verdict flips exactly at the budget
// (two people would lose access), counting who already lost access in the
// current window.
func TestPreviewSafeguardVerdict(t *testing.T) {
	tests := []struct {
		maxCount, used int
		held           bool
	}{
		{maxCount: 1, held: true},
		{maxCount: 2, held: false},
		{maxCount: 3, held: false},
		{maxCount: 3, used: 1, held: false},
		{maxCount: 3, used: 2, held: true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("max %d used %d", tt.maxCount, tt.used), func(t *testing.T) {
			env, cand := previewEnv(t, provisioning.GuardSettings{MaxCount: tt.maxCount})
			ctx := context.Background()
			for i := range tt.used {
				if adm, err := provisioning.AdmitForTest(env.eng, ctx, fmt.Sprint("90", i)); err != nil || !adm.Allowed {
					t.Fatalf("admit: %+v %v", adm, err)
				}
			}
			pv, err := provisioning.PreviewRules(ctx, env.eng, cand)
			if err != nil {
				t.Fatal(err)
			}
			s := pv.Safeguard
			if s.Held != tt.held || s.LoseAccess != 2 || s.UsedInWindow != tt.used || s.Remaining != tt.maxCount-tt.used {
				t.Fatalf("safeguard %+v, want held=%t", s, tt.held)
			}
			if want := "would be held for approval: 2 people would lose access"; tt.held != strings.HasPrefix(s.Verdict, want) {
				t.Errorf("verdict %q", s.Verdict)
			}
		})
	}
}

// TestPreviewNoChange: the current rules as the candidate differ for no one.
func TestPreviewNoChange(t *testing.T) {
	env, _ := previewEnv(t, provisioning.GuardSettings{MaxCount: 5})
	pv, err := provisioning.PreviewRules(context.Background(), env.eng, env.rules)
	if err != nil {
		t.Fatal(err)
	}
	if len(pv.People) != 0 || pv.Totals.People != 0 || pv.Safeguard.CausedByChange != 0 {
		t.Errorf("same rules: %d people differ (%+v), %+v", len(pv.People), pv.People, pv.Safeguard)
	}
}

// TestPreviewUnknownGroup: a group the candidate names that Entra does not
// have is reported (its changes cannot be applied); its gains still show.
func TestPreviewUnknownGroup(t *testing.T) {
	env, _ := previewEnv(t, provisioning.GuardSettings{MaxCount: 5})
	cand, err := rules.LoadBytes("ghost.yaml", []byte(strings.Replace(engineRules, "groups:\n", "groups:\n  - group: Ghost\n    when: \"true\"\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	pv, err := provisioning.PreviewRules(context.Background(), env.eng, cand)
	if err != nil {
		t.Fatal(err)
	}
	var ghost provisioning.GroupSummary
	for _, g := range pv.Groups {
		if g.Group == "Ghost" {
			ghost = g
		}
	}
	if ghost.Problem == "" || !ghost.Added || ghost.Gained == 0 {
		t.Errorf("Ghost summary %+v, want a problem, added, gains", ghost)
	}
	if !slices.ContainsFunc(pv.Notes, func(n string) bool { return strings.Contains(n, `group "Ghost" cannot be resolved`) }) {
		t.Errorf("notes %q lack the unresolvable group", pv.Notes)
	}
}

// BenchmarkPreviewRules10k: one op previews a rules change (the example
// rules against a candidate with another title, a new group and a changed
// condition) for 10,000 people, 10,000 owned accounts and their memberships
// in the in-memory directory: one complete read, two evaluations each.
func BenchmarkPreviewRules10k(b *testing.B) {
	ctx := context.Background()
	cur, err := rules.LoadBytes("rules.yaml", deploy.RulesExample)
	if err != nil {
		b.Fatal(err)
	}
	candSrc := strings.Replace(string(deploy.RulesExample), "jobTitle: employee.position", "jobTitle: upper(employee.position)", 1)
	candSrc = strings.Replace(candSrc, `when: employee.gender == "FEMALE"`, `when: employee.gender == "FEMALE" && employee.office.name != "London"`, 1)
	candSrc = strings.Replace(candSrc, "groups:\n", "groups:\n  - group: Everyone\n    when: \"true\"\n", 1)
	cand, err := rules.LoadBytes("candidate.yaml", []byte(candSrc))
	if err != nil {
		b.Fatal(err)
	}
	dir, src := provisioningtest.NewDirectory(), provisioningtest.NewSource()
	groups := map[string]string{}
	for _, g := range append(cur.ManagedGroups(), "Everyone") {
		groups[g] = dir.AddGroup(provisioning.Group{DisplayName: g})
	}
	cfg := provisioning.Config{Source: src, Directory: dir, State: provisioning.NewMemKV(), Logger: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return safetyNow }}
	cfg.ApplyRules(cur)
	eng, err := provisioning.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	depts := []string{"Finance", "Sales", "Engineering", "People", "Marketing", "Customer Success"}
	offices := []string{"Munich", "Berlin", "London", "Madrid"}
	genders := []string{"FEMALE", "MALE", "DIVERSE"}
	for i := range 10_000 {
		id := fmt.Sprint(100_000 + i)
		e := employee(id, fmt.Sprintf("First%d", i), fmt.Sprintf("Last%d", i), func(e *model.Employee) {
			e.Department = model.Ref{Name: depts[i%len(depts)]}
			e.Office = model.Ref{Name: offices[i%len(offices)]}
			e.Gender = genders[i%len(genders)]
			e.LegalEntity = model.Ref{Name: "Example GmbH"}
		})
		src.Set(e)
		uid := dir.AddUser(provisioning.User{UserPrincipalName: fmt.Sprintf("first%d.last%d@example.com", i, i), EmployeeID: id, AccountEnabled: true})
		if err := provisioning.RecordOwnedForTest(eng, ctx, uid, id); err != nil {
			b.Fatal(err)
		}
		if err := dir.AddGroupMembers(ctx, groups[e.Department.Name], []string{uid}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		pv, err := provisioning.PreviewRules(ctx, eng, cand)
		if err != nil {
			b.Fatal(err)
		}
		if pv.Totals.People != 10_000 || pv.Employees != 10_000 {
			b.Fatalf("%d people differ of %d", pv.Totals.People, pv.Employees)
		}
	}
}

// TestPreviewProtectedAccount: a protected account is compared by the rules
// only: it never counts as losing access.
func TestPreviewProtectedAccount(t *testing.T) {
	env, cand := previewEnv(t, provisioning.GuardSettings{MaxCount: 5})
	env.withAudit(t, "cid.cook@example.com")
	pv, err := provisioning.PreviewRules(context.Background(), env.eng, cand)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(pv.People, func(p provisioning.PersonDiff) bool { return p.PersonID == "3" })
	if i < 0 {
		t.Fatal("Cid's difference is missing")
	}
	cid := pv.People[i]
	if !cid.Protected || cid.Account != "cid.cook@example.com" || len(cid.LosesAccess) != 0 || strings.Join(cid.GroupsLost, ",") != "Finance" || cid.UPN != nil {
		t.Errorf("Cid: %+v", cid)
	}
	if pv.Safeguard.LoseAccess != 1 {
		t.Errorf("%d people lose access, want 1 (Fay; Cid's account is protected)", pv.Safeguard.LoseAccess)
	}
}
