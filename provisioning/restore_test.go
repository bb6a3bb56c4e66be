package provisioning_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"github.com/personio-entra/personio-entra/provisioning/provisioningtest"
	"github.com/personio-entra/personio-entra/queue/work"
	"github.com/personio-entra/personio-entra/rules"
)

// lifecycleRules: two UPN templates, usageLocation for licences, a
// 180-day rehire window; %s is replaced by extra top-level sections.
const lifecycleRules = `
time_zone: Europe/Berlin
domain: example.com
upn:
  candidates: ["{first}.{last}", "{f}.{last}", "{first}.{last}{n}"]
  on_name_change: %s
attributes:
  displayName: 'employee.first_name + " " + employee.last_name'
  givenName: employee.first_name
  surname: employee.last_name
  employeeId: employee.person_id
  jobTitle: employee.position
  usageLocation: { value: '"DE"', policy: on_create }
manager: false
groups:
  - group: Finance
    when: employee.department.name == "Finance"
lifecycle:
  leaver: {disable: true, revoke_sessions: true, remove_memberships: true}
  rehire_within_days: 180
`

type auditSink struct {
	mu   sync.Mutex
	recs []provisioning.AuditRecord
}

func (a *auditSink) AppendAudit(_ context.Context, _ string, b []byte) error {
	var r provisioning.AuditRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.recs = append(a.recs, r)
	return nil
}

// of returns the records of one change kind.
func (a *auditSink) of(kind provisioning.ChangeKind) []provisioning.AuditRecord {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []provisioning.AuditRecord
	for _, r := range a.recs {
		if r.Change.Kind == kind {
			out = append(out, r)
		}
	}
	return out
}

type lifecycleEnv struct {
	*safetyEnv
	audit *auditSink
	now   time.Time
	cfg   provisioning.Config
}

// newLifecycleEnv builds an engine configured from the rules as `run`
// does (Config.ApplyRules), over the in-memory directory and source.
func newLifecycleEnv(t *testing.T, onNameChange, extra string, guard provisioning.GuardSettings, mut ...func(*provisioning.Config)) *lifecycleEnv {
	t.Helper()
	src := strings.Replace(lifecycleRules, "%s", onNameChange, 1) + extra
	r, err := rules.LoadBytes("rules.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	env := &lifecycleEnv{safetyEnv: &safetyEnv{dir: provisioningtest.NewDirectory(), src: provisioningtest.NewSource(), state: provisioning.NewMemKV(),
		q: &provisioningtest.Queue{}, rules: r, groups: map[string]string{}}, audit: &auditSink{}, now: safetyNow}
	for _, g := range r.ManagedGroups() {
		env.groups[g] = env.dir.AddGroup(provisioning.Group{DisplayName: g})
	}
	env.finance = env.groups["Finance"]
	env.cfg = provisioning.Config{Source: env.src, Directory: env.dir, State: env.state, Guard: guard, Scheduler: env.q, Enqueuer: env.q,
		Audit: env.audit, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return env.now }}
	env.cfg.ApplyRules(r)
	for _, m := range mut {
		m(&env.cfg)
	}
	env.rebuild(t)
	return env
}

// rebuild makes a new engine over the same directory and state (a restart).
func (env *lifecycleEnv) rebuild(t *testing.T) {
	t.Helper()
	eng, err := provisioning.New(env.cfg)
	if err != nil {
		t.Fatal(err)
	}
	env.eng = eng
}

// leaveAndDelete makes the person's owned account a deleted leaver's: it
// is created through the engine, disabled, and soft-deleted daysAgo.
func (env *lifecycleEnv) leaveAndDelete(t *testing.T, id string, e model.Employee) string {
	t.Helper()
	env.src.Set(e)
	uid := env.converge(t, id)[id]
	ctx := context.Background()
	if err := env.dir.SetAccountEnabled(ctx, uid, false); err != nil {
		t.Fatal(err)
	}
	if err := env.dir.DeleteUser(ctx, uid); err != nil {
		t.Fatal(err)
	}
	env.dir.ResetWrites()
	return uid
}

func withEmployeeID(dir *provisioningtest.Directory, id string) []provisioning.User {
	users, _ := dir.FindUsers(context.Background(), "employeeId", id)
	return users
}

// A returner whose account is in the recycle bin gets it back: restored,
// enabled, in their groups again, and never a second account.
func TestReturnerIsRestoredNotDuplicated(t *testing.T) {
	env := newLifecycleEnv(t, "keep", "", provisioning.GuardSettings{MaxCount: 100})
	old := env.leaveAndDelete(t, "7", employee("7", "Ada", "Lovelace"))
	env.src.Set(employee("7", "Ada", "Lovelace", func(e *model.Employee) { e.StartDate = model.DateOf(safetyNow.AddDate(0, 0, -1)) }))

	plan, err := env.eng.PlanFor(context.Background(), "7")
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Changes) == 0 || plan.Changes[0].Kind != provisioning.RestoreUser || plan.UserID != old {
		t.Fatalf("plan %+v: want restore_user of %s first", plan.Changes, old)
	}
	for _, c := range plan.Changes {
		if c.Kind == provisioning.CreateUser {
			t.Fatalf("the plan creates an account while the old one is restorable: %+v", plan.Changes)
		}
	}
	if env.dir.Writes() != 0 {
		t.Fatalf("a plan wrote: %v", env.dir.WriteLog())
	}

	res := env.reconcile(t, "7")
	users := withEmployeeID(env.dir, "7")
	if len(users) != 1 || users[0].ID != old || !users[0].AccountEnabled {
		t.Fatalf("accounts with employeeId 7: %+v; want the old one (%s), enabled", users, old)
	}
	if !env.dir.IsMember(env.finance, old) {
		t.Error("the restored account is not in its group")
	}
	if got := env.ops(); len(got) == 0 || got[0] != "RestoreUser" || slices.Contains(got, "CreateUser") {
		t.Errorf("writes %v, want RestoreUser first and no CreateUser", got)
	}
	if res.Plan.Changes[0].Kind != provisioning.RestoreUser || res.Applied != len(res.Plan.Changes) {
		t.Errorf("result %+v: want the restore among the applied changes", res)
	}
	recs := env.audit.of(provisioning.RestoreUser)
	if len(recs) != 1 || recs[0].Result != provisioning.ResultApplied || !strings.Contains(recs[0].Note, "restored from the recycle bin") {
		t.Errorf("restore audit %+v", recs)
	}
	// Level-triggered: the next run changes nothing.
	env.dir.ResetWrites()
	if res := env.reconcile(t, "7"); len(res.Plan.Changes) != 0 || env.dir.Writes() != 0 {
		t.Errorf("second run: %+v, writes %v", res.Plan.Changes, env.dir.WriteLog())
	}
}

// A name taken meanwhile: the account comes back under the first free
// candidate; an address taken meanwhile is dropped from the restored
// account (autoReconcileProxyConflict). Both are in the plan and the audit.
func TestReturnerClashes(t *testing.T) {
	t.Run("user principal name taken", func(t *testing.T) {
		env := newLifecycleEnv(t, "keep", "", provisioning.GuardSettings{MaxCount: 100})
		old := env.leaveAndDelete(t, "7", employee("7", "Ada", "Lovelace"))
		env.dir.AddUser(provisioning.User{UserPrincipalName: "ada.lovelace@example.com", EmployeeID: "X1", AccountEnabled: true})
		env.dir.AddUser(provisioning.User{UserPrincipalName: "a.lovelace@example.com", EmployeeID: "X2", AccountEnabled: true})
		plan, err := env.eng.PlanFor(context.Background(), "7")
		if err != nil {
			t.Fatal(err)
		}
		if c := plan.Changes[0]; c.Kind != provisioning.RestoreUser || *c.Properties["userPrincipalName"] != "ada.lovelace2@example.com" ||
			!strings.Contains(c.String(), "ada.lovelace@example.com is taken") {
			t.Fatalf("plan %v", plan.Changes)
		}
		res := env.reconcile(t, "7")
		u := env.dir.User(old)
		if u.UserPrincipalName != "ada.lovelace2@example.com" || !u.AccountEnabled || res.Plan.UPN != "ada.lovelace2@example.com" {
			t.Errorf("restored %+v (plan UPN %s)", u, res.Plan.UPN)
		}
		recs := env.audit.of(provisioning.RestoreUser)
		if len(recs) != 1 || recs[0].Change.Previous["userPrincipalName"] != "ada.lovelace@example.com" ||
			*recs[0].Change.Properties["userPrincipalName"] != "ada.lovelace2@example.com" || !strings.Contains(recs[0].Note, "restored as ada.lovelace2@example.com") {
			t.Errorf("audit %+v", recs)
		}
		if n := len(withEmployeeID(env.dir, "7")); n != 1 {
			t.Errorf("%d accounts", n)
		}
	})
	t.Run("address taken", func(t *testing.T) {
		env := newLifecycleEnv(t, "keep", "", provisioning.GuardSettings{MaxCount: 100})
		env.src.Set(employee("7", "Ada", "Lovelace"))
		uid := env.converge(t, "7")["7"]
		ctx := context.Background()
		if err := env.dir.UpdateUser(ctx, uid, map[string]*string{"mail": ptr("ada@example.com")}); err != nil {
			t.Fatal(err)
		}
		env.dir.DeleteUser(ctx, uid)
		env.dir.AddUser(provisioning.User{UserPrincipalName: "ada@example.com", Mail: "ada@example.com", EmployeeID: "X1", AccountEnabled: true})
		env.reconcile(t, "7")
		if u := env.dir.User(uid); u.UserPrincipalName != "ada.lovelace@example.com" || !u.AccountEnabled {
			t.Errorf("restored %+v", u)
		}
	})
	t.Run("no free name: held, nothing created", func(t *testing.T) {
		env := newLifecycleEnv(t, "keep", "", provisioning.GuardSettings{MaxCount: 100})
		old := env.leaveAndDelete(t, "7", employee("7", "Ada", "Lovelace"))
		d, err := env.rules.Evaluate(employee("7", "Ada", "Lovelace"), safetyNow)
		if err != nil {
			t.Fatal(err)
		}
		for i, upn := range d.UPNCandidates {
			env.dir.AddUser(provisioning.User{UserPrincipalName: upn, EmployeeID: "X" + string(rune('a'+i)), AccountEnabled: true})
		}
		_, err = env.eng.Reconcile(context.Background(), "7", "test")
		if err == nil || !work.IsTerminal(err) || !strings.Contains(err.Error(), "no second account is created") {
			t.Fatalf("err = %v, want a terminal hold", err)
		}
		if !env.dir.Deleted(old) || len(withEmployeeID(env.dir, "7")) != 0 || env.dir.Writes() != 0 {
			t.Errorf("held returner changed the directory: %v", env.dir.WriteLog())
		}
	})
}

// The safety rules for deleted accounts: an unowned one is reported and
// never restored (the create avoids its reserved name); one owned account
// outside the rehire window, two owned ones or a protected one stop the
// person with an error and no create.
func TestReturnerSafety(t *testing.T) {
	t.Run("unowned deleted account: reported, not restored", func(t *testing.T) {
		env := newLifecycleEnv(t, "keep", "", provisioning.GuardSettings{MaxCount: 100})
		foreign := env.dir.AddDeletedUser(provisioning.User{UserPrincipalName: "ada.lovelace@example.com", EmployeeID: "7"}, safetyNow.AddDate(0, 0, -3))
		env.src.Set(employee("7", "Ada", "Lovelace"))
		res := env.reconcile(t, "7")
		if !env.dir.Deleted(foreign) {
			t.Error("an unowned deleted account was restored")
		}
		if res.Plan.UPN != "a.lovelace@example.com" || res.Plan.Changes[0].Kind != provisioning.CreateUser {
			t.Errorf("created %s via %v, want a.lovelace@example.com (the deleted account keeps its name)", res.Plan.UPN, res.Plan.Changes)
		}
		if !slices.ContainsFunc(res.Plan.Notes, func(n string) bool { return strings.Contains(n, "never created or adopted it") }) {
			t.Errorf("notes %q", res.Plan.Notes)
		}
		skipped := false
		for _, r := range env.audit.of(provisioning.NoChange) {
			skipped = skipped || (r.UserID == foreign && r.Result == provisioning.ResultSkipped)
		}
		if !skipped {
			t.Error("the unowned deleted account is not in the audit log")
		}
	})
	stop := []struct {
		name  string
		setup func(t *testing.T, env *lifecycleEnv)
		want  string
	}{
		{"left longer ago than rehire_within_days", func(t *testing.T, env *lifecycleEnv) {
			env.leaveAndDelete(t, "7", employee("7", "Ada", "Lovelace"))
			env.now = safetyNow.AddDate(1, 0, 0)
		}, "more than the rehire window"},
		{"two owned deleted accounts", func(t *testing.T, env *lifecycleEnv) {
			env.leaveAndDelete(t, "7", employee("7", "Ada", "Lovelace"))
			// A second account of the person, created and deleted earlier.
			id := env.dir.AddDeletedUser(provisioning.User{UserPrincipalName: "ada.lovelace3@example.com", EmployeeID: "7"}, safetyNow.AddDate(0, 0, -20))
			if err := provisioning.EngineRecordOwned(env.eng, context.Background(), id, "7", "ada.lovelace3@example.com"); err != nil {
				t.Fatal(err)
			}
		}, "2 deleted accounts of this person"},
		{"protected", func(t *testing.T, env *lifecycleEnv) {
			env.leaveAndDelete(t, "7", employee("7", "Ada", "Lovelace"))
			env.cfg.Protected = []string{"ada.lovelace@example.com"}
			env.rebuild(t)
		}, "is protected"},
	}
	for _, tt := range stop {
		t.Run(tt.name, func(t *testing.T) {
			env := newLifecycleEnv(t, "keep", "", provisioning.GuardSettings{MaxCount: 100})
			tt.setup(t, env)
			env.dir.ResetWrites()
			_, err := env.eng.Reconcile(context.Background(), "7", "test")
			if err == nil || !work.IsTerminal(err) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want a terminal error about %q", err, tt.want)
			}
			if env.dir.Writes() != 0 || len(withEmployeeID(env.dir, "7")) != 0 {
				t.Errorf("writes %v", env.dir.WriteLog())
			}
		})
	}
	t.Run("dry run: planned, not restored", func(t *testing.T) {
		env := newLifecycleEnv(t, "keep", "", provisioning.GuardSettings{MaxCount: 100})
		old := env.leaveAndDelete(t, "7", employee("7", "Ada", "Lovelace"))
		env.cfg.DryRun = true
		env.rebuild(t)
		env.reconcile(t, "7")
		if !env.dir.Deleted(old) || env.dir.Writes() != 0 {
			t.Errorf("dry run wrote %v", env.dir.WriteLog())
		}
		if recs := env.audit.of(provisioning.RestoreUser); len(recs) != 1 || recs[0].Result != provisioning.ResultPlanned {
			t.Errorf("audit %+v", recs)
		}
	})
	t.Run("the deleted-items read fails: no create", func(t *testing.T) {
		env := newLifecycleEnv(t, "keep", "", provisioning.GuardSettings{MaxCount: 100})
		env.src.Set(employee("7", "Ada", "Lovelace"))
		env.dir.Fail("FindDeletedUsers", &provisioning.DirectoryError{Kind: provisioning.KindTransient, Op: "find deleted users"})
		_, err := env.eng.Reconcile(context.Background(), "7", "test")
		if err == nil || work.IsTerminal(err) || !errors.Is(err, provisioning.ErrTransient) {
			t.Fatalf("err = %v, want a retryable error", err)
		}
		if env.dir.Writes() != 0 {
			t.Errorf("writes %v", env.dir.WriteLog())
		}
	})
}

func ptr(s string) *string { return &s }
