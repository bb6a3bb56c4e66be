package provisioning_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"github.com/personio-entra/personio-entra/rules"
)

// ruleLine is the 1-based line of src that contains text (once).
func ruleLine(t *testing.T, src, text string) int {
	t.Helper()
	if strings.Count(src, text) != 1 {
		t.Fatalf("%q occurs %d times in the rules", text, strings.Count(src, text))
	}
	return strings.Count(src[:strings.Index(src, text)], "\n") + 1
}

// rawAudit keeps the audit records as the engine encoded them.
type rawAudit struct {
	mu   sync.Mutex
	recs [][]byte
}

func (a *rawAudit) AppendAudit(_ context.Context, _ string, b []byte) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.recs = append(a.recs, append([]byte(nil), b...))
	return nil
}

// withAudit rebuilds env's engine with an audit sink (and the protected
// accounts).
func (env *safetyEnv) withAudit(t *testing.T, protected ...string) *rawAudit {
	t.Helper()
	audit := &rawAudit{}
	eng, err := provisioning.New(provisioning.Config{
		Source: env.src, Directory: env.dir, Rules: env.rules, ManagedGroups: env.rules.ManagedGroups(), ManageManager: true,
		MatchKeys: []provisioning.MatchKey{{Property: "employeeId", Field: "person_id"}, {Property: "userPrincipalName", Field: "email"}},
		OnDeleted: provisioning.LeaverActions{RevokeSessions: true, RemoveMemberships: true},
		State:     env.state, Guard: provisioning.GuardSettings{MaxCount: 100}, Scheduler: env.q, Enqueuer: env.q, Audit: audit,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return safetyNow }, Protected: protected,
	})
	if err != nil {
		t.Fatal(err)
	}
	env.eng = eng
	return audit
}

// TestExplain: the person page for an owned account, an account not yet
// adopted, a person without an account, a person deleted in Personio
// (owned account) and an unowned account Personio does not know. Explain
// writes nothing.
func TestExplain(t *testing.T) {
	env := newEngineEnv(t)
	ctx := context.Background()
	jobTitleLine := ruleLine(t, engineRules, "  jobTitle: employee.position")
	financeLine := ruleLine(t, engineRules, "  - group: Finance")
	salesLine := ruleLine(t, engineRules, "  - group: Sales")
	leaverLine := ruleLine(t, engineRules, "  leaver: {")
	upnLine := ruleLine(t, engineRules, `candidates: ["{first}.{last}"`)

	env.src.Set(employee("1", "Ada", "Lovelace"))
	env.src.Set(employee("5", "Eve", "Leaver"))
	env.converge(t, "1", "5")
	env.src.Set(employee("1", "Ada", "Lovelace", func(e *model.Employee) { e.Position = "Head of Finance" }))
	env.src.Set(employee("2", "Bob", "Adoptee", inSales))
	bob := env.dir.AddUser(provisioning.User{UserPrincipalName: "bob@example.com", EmployeeID: "2", AccountEnabled: true, UserType: provisioning.UserTypeMember})
	env.src.Set(employee("4", "Nia", "New"))
	stranger := env.dir.AddUser(provisioning.User{UserPrincipalName: "stranger@example.com", EmployeeID: "3", AccountEnabled: true})
	env.src.Remove("5")
	env.dir.ResetWrites()

	tests := []struct {
		id        string
		employee  bool
		account   string // UPN ("" none)
		ownership provisioning.OwnershipState
		groups    []string
		phase     rules.Phase
		// changes: "kind rule-line" of every planned change
		changes []string
	}{
		{"1", true, "ada.lovelace@example.com", provisioning.OwnershipCreated, []string{"Finance"}, rules.PhaseActive,
			[]string{"update_user " + itoa(jobTitleLine)}},
		{"2", true, "bob@example.com", provisioning.OwnershipUnowned, []string{}, rules.PhaseActive,
			[]string{"update_user " + itoa(ruleLine(t, engineRules, "  displayName:")), "add_member " + itoa(salesLine)}},
		{"4", true, "", provisioning.OwnershipNone, []string{}, rules.PhaseActive,
			[]string{"create_user " + itoa(upnLine)}},
		{"5", false, "eve.leaver@example.com", provisioning.OwnershipCreated, []string{"Finance"}, rules.PhaseLeaver,
			[]string{"disable_user " + itoa(leaverLine), "revoke_sessions " + itoa(leaverLine), "remove_member " + itoa(leaverLine)}},
		{"3", false, "stranger@example.com", provisioning.OwnershipUnowned, []string{}, rules.PhaseLeaver, nil},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			x, err := env.eng.Explain(ctx, tt.id)
			if err != nil {
				t.Fatal(err)
			}
			if (x.Employee != nil) != tt.employee {
				t.Errorf("employee = %+v, want present=%t", x.Employee, tt.employee)
			}
			upn := ""
			if x.Account != nil {
				upn = x.Account.UserPrincipalName
			}
			if upn != tt.account || x.Ownership.State != tt.ownership || x.Ownership.Why == "" {
				t.Errorf("account %q ownership %+v, want %q %s with a reason", upn, x.Ownership, tt.account, tt.ownership)
			}
			if strings.Join(x.Groups, ",") != strings.Join(tt.groups, ",") {
				t.Errorf("groups in Entra %v, want %v", x.Groups, tt.groups)
			}
			if x.Desired.Phase != tt.phase || x.Desired.Explain == nil {
				t.Fatalf("desired phase %s, explain %v", x.Desired.Phase, x.Desired.Explain)
			}
			var got []string
			for _, c := range x.Plan.Changes {
				line := "no rule"
				if c.Rule != nil {
					line = itoa(c.Rule.Line)
				}
				got = append(got, string(c.Kind)+" "+line)
			}
			if strings.Join(got, "; ") != strings.Join(tt.changes, "; ") {
				t.Errorf("plan %v, want %v", got, tt.changes)
			}
		})
	}

	// The explanation itself: the title's rule and why Ada is not in Sales.
	x, err := env.eng.Explain(ctx, "1")
	if err != nil {
		t.Fatal(err)
	}
	ex := x.Desired.Explain
	if o := ex.Attributes["jobTitle"]; o.Line != jobTitleLine || o.Expr != "employee.position" {
		t.Errorf("jobTitle origin %s", o)
	}
	if g := ex.Groups; len(g) != 2 || !g[0].Member || g[0].Origin.Line != financeLine || g[1].Member || g[1].Origin.Line != salesLine ||
		g[1].FalseCondition != `employee.department.name == "Sales"` {
		t.Errorf("group decisions %+v", g)
	}
	if c := x.Plan.Changes[0]; c.PropertyRules["jobTitle"] == nil || c.PropertyRules["jobTitle"].Line != jobTitleLine {
		t.Errorf("update_user property rules %v", c.PropertyRules)
	}
	del, err := env.eng.Explain(ctx, "5")
	if err != nil {
		t.Fatal(err)
	}
	if e := del.Desired.Explain; e.Phase.Line != leaverLine || !strings.Contains(e.DecidedBy, "no longer has the person") {
		t.Errorf("deleted person's phase explanation %+v", e)
	}

	if w := env.dir.WriteLog(); len(w) != 0 {
		t.Errorf("Explain wrote to the directory: %v", w)
	}
	if owned, _ := provisioning.EngineOwns(env.eng, ctx, bob); owned {
		t.Error("Explain adopted an account")
	}
	if owned, _ := provisioning.EngineOwns(env.eng, ctx, stranger); owned {
		t.Error("Explain adopted the stranger's account")
	}
	// After a reconcile adopts Bob's account, Explain says so.
	env.reconcile(t, "2")
	if x, err := env.eng.Explain(ctx, "2"); err != nil || x.Ownership.State != provisioning.OwnershipAdopted || x.Ownership.Since.IsZero() {
		t.Errorf("after adoption: %+v %v", x.Ownership, err)
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// TestAuditRecordsCarryTheRule: every applied change's audit record names
// the rule that caused it, read back from the encoded record.
func TestAuditRecordsCarryTheRule(t *testing.T) {
	env := newEngineEnv(t)
	audit := env.withAudit(t)
	env.src.Set(employee("1", "Ada", "Lovelace"))
	env.converge(t, "1")
	env.src.Set(employee("1", "Ada", "Lovelace", func(e *model.Employee) { e.Position = "Controller"; inSales(e) }))
	audit.mu.Lock()
	audit.recs = nil
	audit.mu.Unlock()
	env.reconcile(t, "1")

	want := map[provisioning.ChangeKind]string{
		provisioning.UpdateUser:   "attributes.jobTitle@" + itoa(ruleLine(t, engineRules, "  jobTitle: employee.position")),
		provisioning.AddMember:    `groups[1] "Sales"@` + itoa(ruleLine(t, engineRules, "  - group: Sales")),
		provisioning.RemoveMember: `groups[0] "Finance"@` + itoa(ruleLine(t, engineRules, "  - group: Finance")),
	}
	seen := map[provisioning.ChangeKind]bool{}
	for _, raw := range audit.recs {
		var rec struct {
			Change struct {
				Kind provisioning.ChangeKind `json:"kind"`
				Rule *struct {
					File string `json:"file"`
					Line int    `json:"line"`
					Col  int    `json:"col"`
					Rule string `json:"rule"`
					Expr string `json:"expr"`
				} `json:"rule"`
			} `json:"change"`
			Result string `json:"result"`
		}
		if err := json.Unmarshal(raw, &rec); err != nil {
			t.Fatal(err)
		}
		w, ok := want[rec.Change.Kind]
		if !ok {
			continue
		}
		seen[rec.Change.Kind] = true
		r := rec.Change.Rule
		if r == nil {
			t.Errorf("%s record has no rule: %s", rec.Change.Kind, raw)
			continue
		}
		if got := r.Rule + "@" + itoa(r.Line); got != w || r.File != "rules.yaml" || r.Col == 0 || r.Expr == "" {
			t.Errorf("%s record names %s (%s:%d:%d %q), want %s", rec.Change.Kind, got, r.File, r.Line, r.Col, r.Expr, w)
		}
	}
	if len(seen) != len(want) {
		t.Errorf("records for %v, want all of %v (%d records)", seen, want, len(audit.recs))
	}
}

// TestExplainProtectedAccount: a protected account is explained as such,
// and looking at it (Explain, PlanFor) writes no audit record; only a
// reconcile records that it skipped the account.
func TestExplainProtectedAccount(t *testing.T) {
	env := newEngineEnv(t)
	env.src.Set(employee("1", "Ada", "Lovelace"))
	env.converge(t, "1")
	audit := env.withAudit(t, "ada.lovelace@example.com")
	ctx := context.Background()
	x, err := env.eng.Explain(ctx, "1")
	if err != nil {
		t.Fatal(err)
	}
	if x.Ownership.State != provisioning.OwnershipProtected || len(x.Plan.Changes) != 0 {
		t.Errorf("ownership %+v, plan %v", x.Ownership, x.Plan.Changes)
	}
	if _, err := env.eng.PlanFor(ctx, "1"); err != nil {
		t.Fatal(err)
	}
	if n := len(audit.recs); n != 0 {
		t.Errorf("looking at a protected account wrote %d audit records: %s", n, audit.recs[0])
	}
	env.reconcile(t, "1")
	if n := len(audit.recs); n != 1 || !strings.Contains(string(audit.recs[0]), "protected account") {
		t.Errorf("a reconcile of a protected account: %d records", n)
	}
}

// TestExplainOutOfScope: a person the scope no longer covers still shows
// their account, its ownership and memberships (read, never changed), and
// every group decision names the scope rule.
func TestExplainOutOfScope(t *testing.T) {
	src := strings.Replace(engineRules, "lifecycle:\n", "scope:\n  when: employee.legal_entity.name != \"Contractors Ltd\"\nlifecycle:\n", 1)
	env := newRulesEnv(t, src, provisioning.GuardSettings{MaxCount: 100})
	env.src.Set(employee("1", "Ada", "Lovelace"))
	env.converge(t, "1")
	env.src.Set(employee("1", "Ada", "Lovelace", func(e *model.Employee) { e.LegalEntity = model.Ref{Name: "Contractors Ltd"} }))
	env.dir.ResetWrites()
	x, err := env.eng.Explain(context.Background(), "1")
	if err != nil {
		t.Fatal(err)
	}
	scopeLine := ruleLine(t, src, "  when: employee.legal_entity.name")
	ex := x.Desired.Explain
	if x.Desired.Phase != rules.PhaseOutOfScope || ex.Phase.Rule != "scope.when" || ex.Phase.Line != scopeLine || ex.DecidedBy != "scope.when is false" {
		t.Errorf("phase %s from %s, decided by %q", x.Desired.Phase, ex.Phase, ex.DecidedBy)
	}
	if x.Account == nil || x.Ownership.State != provisioning.OwnershipCreated || strings.Join(x.Groups, ",") != "Finance" || len(x.Plan.Changes) != 0 {
		t.Errorf("account %v, ownership %+v, groups %v, plan %v", x.Account, x.Ownership, x.Groups, x.Plan.Changes)
	}
	for _, g := range ex.Groups {
		if g.Member || g.Origin.Rule != "scope.when" || !strings.Contains(g.Why, "out of scope") {
			t.Errorf("group decision %+v", g)
		}
	}
	if w := env.dir.WriteLog(); len(w) != 0 {
		t.Errorf("writes: %v", w)
	}
}
