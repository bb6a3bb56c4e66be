package provisioning_test

import (
	"context"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"github.com/personio-entra/personio-entra/queue/work"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/provisioningtest"
)

// engineRules manage two groups and match by employeeId, then by the
// Personio email as userPrincipalName.
const engineRules = `
time_zone: Europe/Berlin
domain: example.com
upn:
  candidates: ["{first}.{last}", "{first}.{last}{n}"]
attributes:
  displayName: 'employee.first_name + " " + employee.last_name'
  employeeId: employee.person_id
  jobTitle: employee.position
manager: true
groups:
  - group: Finance
    when: employee.department.name == "Finance"
  - group: Sales
    when: employee.department.name == "Sales"
lifecycle:
  create_days_before_start: 14
  enable_on_start_date: true
  leaver: {disable: true, revoke_sessions: true, remove_memberships: true}
matching: [employeeId, userPrincipalName=email]
`

func newEngineEnv(t *testing.T) *safetyEnv {
	return newRulesEnv(t, engineRules, provisioning.GuardSettings{MaxCount: 100})
}

func (env *safetyEnv) reconcile(t *testing.T, id string) provisioning.Result {
	t.Helper()
	res, err := env.eng.Reconcile(context.Background(), id, "test")
	if err != nil {
		t.Fatalf("reconcile %s: %v", id, err)
	}
	return res
}

// ops lists the directory writes as "Op" (group writes as "Op <group name>").
func (env *safetyEnv) ops() []string {
	name := map[string]string{}
	for n, id := range env.groups {
		name[id] = n
	}
	var out []string
	for _, w := range env.dir.WriteLog() {
		if w.GroupID != "" {
			out = append(out, w.Op+" "+name[w.GroupID])
			continue
		}
		out = append(out, w.Op)
	}
	return out
}

func inSales(e *model.Employee) { e.Department = model.Ref{ID: "2", Name: "Sales"} }

// A joiner gets the first free UPN candidate, and the manager and groups
// in the same run.
func TestReconcileJoiner(t *testing.T) {
	env := newEngineEnv(t)
	env.src.Set(employee("1", "Bea", "Boss"))
	boss := env.converge(t, "1")["1"]
	// Someone else holds the first candidate.
	other := env.dir.AddUser(provisioning.User{UserPrincipalName: "ada.lovelace@example.com", EmployeeID: "X9", AccountEnabled: true})
	env.src.Set(employee("2", "Ada", "Lovelace", func(e *model.Employee) { e.SupervisorID = "1" }))
	env.dir.ResetWrites()

	res := env.reconcile(t, "2")
	if res.Plan.UPN != "ada.lovelace2@example.com" || res.Plan.UserID == "" || res.Plan.UserID == other {
		t.Fatalf("created %q (%s), want ada.lovelace2@example.com as a new account", res.Plan.UPN, res.Plan.UserID)
	}
	u := env.dir.User(res.Plan.UserID)
	if !u.AccountEnabled || u.EmployeeID != "2" || u.Attributes["jobTitle"] != "Analyst" || u.Attributes["displayName"] != "Ada Lovelace" {
		t.Errorf("new account %+v", u)
	}
	if u.ManagerID != boss || u.ManagerEmployeeID != "1" {
		t.Errorf("manager %q/%q, want %s/1 in the same run", u.ManagerID, u.ManagerEmployeeID, boss)
	}
	if !env.dir.IsMember(env.groups["Finance"], u.ID) || env.dir.IsMember(env.groups["Sales"], u.ID) {
		t.Errorf("groups: Finance=%t Sales=%t, want Finance only", env.dir.IsMember(env.groups["Finance"], u.ID), env.dir.IsMember(env.groups["Sales"], u.ID))
	}
	want := []string{"CreateUser", "SetManager", "AddGroupMembers Finance"}
	if got := env.ops(); !slices.Equal(got, want) {
		t.Errorf("writes %v, want %v", got, want)
	}
	if res.Applied != 3 || res.Failed != 0 {
		t.Errorf("applied %d, failed %d; want 3, 0", res.Applied, res.Failed)
	}
	if owned, err := provisioning.EngineOwns(env.eng, context.Background(), u.ID); err != nil || !owned {
		t.Errorf("created account not owned: %t %v", owned, err)
	}
	if env.dir.User(other).EmployeeID != "X9" || env.dir.Writes() != 3 {
		t.Error("the holder of the first candidate was written")
	}
}

// Reconcile is level-triggered: a second run after any change makes no
// writes.
func TestReconcileIsIdempotent(t *testing.T) {
	cases := []struct {
		name   string
		change func(env *safetyEnv)
	}{
		{"joiner", func(*safetyEnv) {}},
		{"new title", func(env *safetyEnv) {
			env.src.Set(employee("2", "Ada", "Lovelace", func(e *model.Employee) { e.SupervisorID, e.Position = "1", "Lead" }))
		}},
		{"mover", func(env *safetyEnv) {
			env.src.Set(employee("2", "Ada", "Lovelace", inSales, func(e *model.Employee) { e.SupervisorID = "1" }))
		}},
		{"new manager", func(env *safetyEnv) {
			env.src.Set(employee("3", "Cid", "Chief"))
			env.converge(t, "3")
			env.src.Set(employee("2", "Ada", "Lovelace", func(e *model.Employee) { e.SupervisorID = "3" }))
		}},
		{"leaver", func(env *safetyEnv) {
			env.src.Set(employee("2", "Ada", "Lovelace", leftYesterday, func(e *model.Employee) { e.SupervisorID = "1" }))
		}},
		{"deleted in Personio", func(env *safetyEnv) { env.src.Remove("2") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := newEngineEnv(t)
			env.src.Set(employee("1", "Bea", "Boss"))
			env.src.Set(employee("2", "Ada", "Lovelace", func(e *model.Employee) { e.SupervisorID = "1" }))
			env.converge(t, "1", "2")
			tc.change(env)
			first := env.reconcile(t, "2")
			env.dir.ResetWrites()
			second := env.reconcile(t, "2")
			if n := env.dir.Writes(); n != 0 || second.Applied != 0 || len(second.Plan.Changes) != 0 {
				t.Fatalf("second reconcile wrote %d times (%v), planned %+v; the first applied %d", n, env.ops(), second.Plan.Changes, first.Applied)
			}
		})
	}
}

// A mover changes groups: additions are applied before removals, so that
// access is never briefly lost.
func TestReconcileMoverAddsBeforeRemoving(t *testing.T) {
	env := newEngineEnv(t)
	env.src.Set(employee("2", "Ada", "Lovelace"))
	id := env.converge(t, "2")["2"]
	env.src.Set(employee("2", "Ada", "Lovelace", inSales, func(e *model.Employee) { e.Position = "Seller" }))
	env.dir.ResetWrites()

	res := env.reconcile(t, "2")
	ops := env.ops()
	add, remove := slices.Index(ops, "AddGroupMembers Sales"), slices.Index(ops, "RemoveGroupMember Finance")
	if add < 0 || remove < 0 || add > remove {
		t.Fatalf("writes %v: want the Sales addition before the Finance removal", ops)
	}
	if !env.dir.IsMember(env.groups["Sales"], id) || env.dir.IsMember(env.groups["Finance"], id) {
		t.Error("groups not swapped")
	}
	if got := env.dir.User(id).Attributes["jobTitle"]; got != "Seller" {
		t.Errorf("jobTitle %q", got)
	}
	if res.Held != 0 || res.Failed != 0 {
		t.Errorf("held %d, failed %d", res.Held, res.Failed)
	}
}

// A directory error Graph will not take back (permanent, forbidden) makes
// the reconcile error permanent, so that the queue dead-letters it at once;
// throttling and transient errors are retried.
func TestReconcileApplyFailureClassification(t *testing.T) {
	cases := []struct {
		name      string
		method    string // the failing Directory method
		kind      provisioning.ErrorKind
		joiner    bool // fail the create of a new account instead of a change
		permanent bool
	}{
		{"update permanent", "UpdateUser", provisioning.KindRejected, false, true},
		{"update forbidden", "UpdateUser", provisioning.KindForbidden, false, true},
		{"update transient", "UpdateUser", provisioning.KindTransient, false, false},
		{"update throttled", "UpdateUser", provisioning.KindThrottled, false, false},
		{"group add permanent", "AddGroupMembers", provisioning.KindRejected, false, true},
		{"group add transient", "AddGroupMembers", provisioning.KindTransient, false, false},
		{"create permanent", "CreateUser", provisioning.KindRejected, true, true},
		{"create transient", "CreateUser", provisioning.KindTransient, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := newEngineEnv(t)
			if !tc.joiner {
				env.src.Set(employee("2", "Ada", "Lovelace"))
				env.converge(t, "2")
				// A move changes the title and the groups.
				env.src.Set(employee("2", "Ada", "Lovelace", inSales, func(e *model.Employee) { e.Position = "Seller" }))
			} else {
				env.src.Set(employee("2", "Ada", "Lovelace"))
			}
			env.dir.Fail(tc.method, &provisioning.DirectoryError{Kind: tc.kind, Op: "test", Message: "injected"})
			res, err := env.eng.Reconcile(context.Background(), "2", "test")
			if err == nil {
				t.Fatalf("reconcile succeeded: %+v", res)
			}
			if got := work.IsTerminal(err); got != tc.permanent {
				t.Errorf("IsTerminal(%v) = %t, want %t", err, got, tc.permanent)
			}
			if res.Failed == 0 {
				t.Errorf("no change counted as failed: %+v", res)
			}
			// Once the directory recovers, the retry converges.
			env.dir.Fail(tc.method, nil)
			env.reconcile(t, "2")
			again := env.reconcile(t, "2")
			if len(again.Plan.Changes) != 0 {
				t.Errorf("not converged after recovery: %+v", again.Plan.Changes)
			}
		})
	}
}

// Matching tries employeeId first, then userPrincipalName = the Personio
// email; an account found by email is adopted only when it is an
// employee account of the company.
func TestReconcileMatching(t *testing.T) {
	const email = "ada.lovelace@example.com"
	cases := []struct {
		name      string
		seed      func(d *provisioningtest.Directory) string // returns the id of the account that should be matched ("" for none)
		adopted   bool                                       // the matched account is used (else a new one is created)
		note      string                                     // a plan note that must appear
		permanent bool                                       // the reconcile stops with a permanent error
	}{
		{name: "by employeeId", adopted: true, seed: func(d *provisioningtest.Directory) string {
			return d.AddUser(provisioning.User{UserPrincipalName: "a.l@example.com", EmployeeID: "2", AccountEnabled: true})
		}},
		{name: "by email as UPN", adopted: true, seed: func(d *provisioningtest.Directory) string {
			return d.AddUser(provisioning.User{UserPrincipalName: email, AccountEnabled: true})
		}},
		{name: "employeeId before email", adopted: true, seed: func(d *provisioningtest.Directory) string {
			d.AddUser(provisioning.User{UserPrincipalName: email, AccountEnabled: true})
			return d.AddUser(provisioning.User{UserPrincipalName: "a.l@example.com", EmployeeID: "2", AccountEnabled: true})
		}},
		{name: "guest by email", note: "guests are never adopted", seed: func(d *provisioningtest.Directory) string {
			return d.AddUser(provisioning.User{UserPrincipalName: email, UserType: provisioning.UserTypeGuest, AccountEnabled: true})
		}},
		{name: "synced by email", note: "synced from on-premises", seed: func(d *provisioningtest.Directory) string {
			return d.AddUser(provisioning.User{UserPrincipalName: email, OnPremisesSync: true, AccountEnabled: true})
		}},
		{name: "another person's account by email", note: "another person's", seed: func(d *provisioningtest.Directory) string {
			return d.AddUser(provisioning.User{UserPrincipalName: email, EmployeeID: "77", AccountEnabled: true})
		}},
		{name: "two accounts with the employeeId", permanent: true, seed: func(d *provisioningtest.Directory) string {
			d.AddUser(provisioning.User{UserPrincipalName: "a1@example.com", EmployeeID: "2"})
			return d.AddUser(provisioning.User{UserPrincipalName: "a2@example.com", EmployeeID: "2"})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := newEngineEnv(t)
			want := tc.seed(env.dir)
			env.src.Set(employee("2", "Ada", "Lovelace", func(e *model.Employee) { e.Email = email }))
			res, err := env.eng.Reconcile(context.Background(), "2", "sync")
			if tc.permanent {
				if err == nil || !work.IsTerminal(err) {
					t.Fatalf("want a permanent error, got %v", err)
				}
				if n := env.dir.Writes(); n != 0 {
					t.Errorf("an ambiguous match wrote %d times", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			owned, _ := provisioning.EngineOwns(env.eng, context.Background(), want)
			if tc.adopted {
				if res.Plan.UserID != want || !owned {
					t.Fatalf("matched %s (owned %t), want %s", res.Plan.UserID, owned, want)
				}
				if got := env.dir.User(want); got.EmployeeID != "2" {
					t.Errorf("adopted account's employeeId %q, want 2", got.EmployeeID)
				}
				if slices.Contains(env.ops(), "CreateUser") {
					t.Error("an account was created although one matched")
				}
			} else {
				if res.Plan.UserID == want || owned || !slices.Contains(env.ops(), "CreateUser") {
					t.Fatalf("the account %s was adopted (owned %t); want a new account, writes %v", want, owned, env.ops())
				}
				if u := env.dir.User(want); !u.AccountEnabled || u.EmployeeID == "2" {
					t.Errorf("the skipped account was changed: %+v", u)
				}
			}
			if tc.note != "" && !slices.ContainsFunc(res.Plan.Notes, func(n string) bool { return strings.Contains(n, tc.note) }) {
				t.Errorf("plan notes %q lack %q", res.Plan.Notes, tc.note)
			}
		})
	}
}

// The guard counts destructive changes only: once the budget is spent a
// leaver is held (the account keeps access) while a non-destructive change
// of another person still applies, whatever triggered the reconcile.
func TestGuardHoldsOnlyDestructiveChanges(t *testing.T) {
	ctx := context.Background()
	env := newRulesEnv(t, engineRules, provisioning.GuardSettings{MaxCount: 1})
	for _, id := range []string{"1", "2", "3"} {
		env.src.Set(employee(id, "P"+id, "Person"))
	}
	acc := env.converge(t, "1", "2", "3")
	env.src.Set(employee("1", "P1", "Person", leftYesterday))
	env.src.Set(employee("2", "P2", "Person", leftYesterday))
	env.src.Set(employee("3", "P3", "Person", func(e *model.Employee) { e.Position = "Lead" }))

	steps := []struct {
		person, trigger string
		held            bool
		enabled         bool
	}{
		{"1", "employment.updated", false, false}, // within the budget
		{"2", "schedule", true, true},             // over it: held
		{"3", "person.updated", false, true},      // not destructive: never held
	}
	for _, s := range steps {
		res, err := env.eng.Reconcile(ctx, s.person, s.trigger)
		if err != nil {
			t.Fatalf("person %s: %v", s.person, err)
		}
		if (res.Held > 0) != s.held {
			t.Errorf("person %s (%s): held %d, want held=%t", s.person, s.trigger, res.Held, s.held)
		}
		if got := env.dir.User(acc[s.person]).AccountEnabled; got != s.enabled {
			t.Errorf("person %s: enabled=%t, want %t", s.person, got, s.enabled)
		}
	}
	if got := env.dir.User(acc["3"]).Attributes["jobTitle"]; got != "Lead" {
		t.Errorf("the non-destructive change was not applied: jobTitle %q", got)
	}
	if !env.dir.IsMember(env.finance, acc["2"]) {
		t.Error("the held leaver lost a group")
	}
	aps, err := env.syncer().Approvals(ctx)
	if err != nil || len(aps) != 1 || !slices.Equal(aps[0].People, []string{"2"}) {
		t.Fatalf("approvals %+v, %v; want one holding person 2", aps, err)
	}
	// Approving releases the leaver.
	if _, err := env.syncer().Approve(ctx, aps[0].ID); err != nil {
		t.Fatal(err)
	}
	if res, err := env.eng.Reconcile(ctx, "2", "approved"); err != nil || res.Held != 0 {
		t.Fatalf("approved leaver: %+v, %v", res, err)
	}
	if env.dir.User(acc["2"]).AccountEnabled || env.dir.IsMember(env.finance, acc["2"]) {
		t.Error("approved leaver keeps access")
	}
}

// A report reconciled before their manager's account exists waits in the
// index; the reconcile that creates the manager's account queues the report
// at once (not after the periodic retry).
func TestReportWaitingForManagerIsQueuedWhenManagerAccountExists(t *testing.T) {
	env := newEngineEnv(t)
	env.src.Set(employee("1", "Bea", "Boss"))
	env.src.Set(employee("2", "Ada", "Lovelace", func(e *model.Employee) { e.SupervisorID = "1" }))
	env.src.Set(employee("3", "Cy", "Clerk", func(e *model.Employee) { e.SupervisorID = "1" }))

	for _, id := range []string{"2", "3", "2"} { // twice: recorded once
		res := env.reconcile(t, id)
		if !slices.ContainsFunc(res.Plan.Notes, func(n string) bool { return strings.Contains(n, "has no account yet") }) {
			t.Fatalf("person %s: no manager note: %v", id, res.Plan.Notes)
		}
	}
	if got := env.q.Enqueued(); len(got) != 0 {
		t.Fatalf("queued before the manager exists: %v", got)
	}
	env.reconcile(t, "1") // creates the manager's account
	got := env.q.Enqueued()
	slices.Sort(got)
	if !slices.Equal(got, []string{"2", "3"}) {
		t.Fatalf("queued after the manager's account was created: %v, want [2 3]", got)
	}
	// The queued reconcile sets the manager.
	res := env.reconcile(t, "2")
	if u := env.dir.User(res.Plan.UserID); u.ManagerEmployeeID != "1" {
		t.Errorf("manager of 2 = %q, want 1", u.ManagerEmployeeID)
	}
	// The index is cleared: a later reconcile of the manager queues no one.
	env.reconcile(t, "1")
	if n := len(env.q.Enqueued()); n != 2 {
		t.Errorf("queued %d times in all, want 2", n)
	}
}

// The first delivery of person.created waits for the employment.created
// that follows it; later deliveries and other events run at once.
func TestHandleSettlesPersonCreated(t *testing.T) {
	env := newEngineEnv(t)
	env.src.Set(employee("1", "Bea", "Boss"))
	env.dir.ResetWrites()
	ctx := func(reason string, attempt int) context.Context {
		return work.WithInfo(context.Background(), work.Info{PersonID: "1", Reason: reason, Attempt: attempt})
	}
	res, err := env.eng.Handle(ctx("person.created", 1), "1")
	if err != nil || res.RequeueAfter != 0 {
		t.Fatalf("without a settle time: %+v %v", res, err)
	}
	if len(env.dir.WriteLog()) == 0 {
		t.Fatal("without a settle time the person was not reconciled")
	}

	env.src.Set(employee("2", "Ada", "Lovelace"))
	eng, err := provisioning.New(provisioning.Config{Source: env.src, Directory: env.dir, Rules: env.rules,
		ManagedGroups: env.rules.ManagedGroups(), State: env.state, CreatedSettle: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	env.dir.ResetWrites()
	ctx2 := func(reason string, attempt int) context.Context {
		return work.WithInfo(context.Background(), work.Info{PersonID: "2", Reason: reason, Attempt: attempt})
	}
	res, err = eng.Handle(ctx2("person.created", 1), "2")
	if err != nil || res.RequeueAfter != time.Second || len(env.dir.WriteLog()) != 0 {
		t.Fatalf("first person.created: %+v %v, %d writes; want RequeueAfter 1s and no reconcile", res, err, len(env.dir.WriteLog()))
	}
	for _, c := range []context.Context{ctx2("person.created", 2), ctx2("employment.created", 1)} {
		if res, err := eng.Handle(c, "2"); err != nil || res.RequeueAfter != 0 {
			t.Fatalf("%v: %+v %v; want a reconcile now", work.Reason(c), res, err)
		}
	}
	if len(env.dir.WriteLog()) == 0 {
		t.Fatal("the later deliveries did not reconcile")
	}
}
