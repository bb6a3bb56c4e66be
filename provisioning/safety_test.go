package provisioning_test

import (
	"context"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/provisioningtest"
	"github.com/personio-entra/personio-entra/rules"
)

const safetyRules = `
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
lifecycle:
  create_days_before_start: 14
  enable_on_start_date: true
  leaver: {disable: true, revoke_sessions: true, remove_memberships: true}
matching: [employeeId]
`

var safetyNow = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

type safetyEnv struct {
	dir     *provisioningtest.Directory
	src     *provisioningtest.Source
	state   *provisioning.MemKV
	q       *provisioningtest.Queue
	eng     *provisioning.Engine
	rules   *rules.Rules
	groups  map[string]string // display name → object id of the rules' groups
	finance string
}

func newSafetyEnv(t *testing.T, guard provisioning.GuardSettings) *safetyEnv {
	return newRulesEnv(t, safetyRules, guard)
}

// newRulesEnv builds an engine over the in-memory directory and source
// with the rules in yaml; every group the rules name exists.
func newRulesEnv(t *testing.T, yaml string, guard provisioning.GuardSettings) *safetyEnv {
	t.Helper()
	r, err := rules.LoadBytes("rules.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	env := &safetyEnv{dir: provisioningtest.NewDirectory(), src: provisioningtest.NewSource(), state: provisioning.NewMemKV(),
		q: &provisioningtest.Queue{}, rules: r, groups: map[string]string{}}
	for _, g := range r.ManagedGroups() {
		env.groups[g] = env.dir.AddGroup(provisioning.Group{DisplayName: g})
	}
	env.finance = env.groups["Finance"]
	env.eng = env.engine(t, r, guard)
	return env
}

func (env *safetyEnv) engine(t *testing.T, r *rules.Rules, guard provisioning.GuardSettings) *provisioning.Engine {
	t.Helper()
	var keys []provisioning.MatchKey
	for _, k := range r.MatchKeys() {
		keys = append(keys, provisioning.MatchKey{Property: k.Property, Field: k.Field})
	}
	eng, err := provisioning.New(provisioning.Config{
		Source: env.src, Directory: env.dir, Rules: r, ManagedGroups: r.ManagedGroups(), ManageManager: true, MatchKeys: keys,
		OnDeleted: provisioning.LeaverActions{RevokeSessions: true, RemoveMemberships: true},
		State:     env.state, Guard: guard, Scheduler: env.q, Enqueuer: env.q,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return safetyNow },
	})
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

// syncer is the complete sync and approval front end over the engine.
func (env *safetyEnv) syncer() *provisioning.Syncer {
	return provisioning.NewSyncer(provisioning.SyncConfig{Engine: env.eng, Queue: env.q, State: env.state})
}

func employee(id, first, last string, mut ...func(*model.Employee)) model.Employee {
	e := model.Employee{PersonID: id, FirstName: first, LastName: last, Status: "ACTIVE", Position: "Analyst",
		Department: model.Ref{ID: "1", Name: "Finance"}, StartDate: model.Date{Year: 2024, Month: 1, Day: 1}}
	for _, m := range mut {
		m(&e)
	}
	return e
}

func leftYesterday(e *model.Employee) {
	e.LastWorkingDay = model.DateOf(safetyNow.AddDate(0, 0, -1))
}

// converge creates everyone's account through the engine (so they are owned).
func (env *safetyEnv) converge(t *testing.T, ids ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, id := range ids {
		res, err := env.eng.Reconcile(context.Background(), id, "test")
		if err != nil {
			t.Fatalf("reconcile %s: %v", id, err)
		}
		if res.Plan.UserID == "" {
			t.Fatalf("reconcile %s created no account: %+v", id, res.Plan)
		}
		out[id] = res.Plan.UserID
	}
	return out
}

func TestUnknownEmployeeIDOnUnownedAccountIsReportedNotChanged(t *testing.T) {
	env := newSafetyEnv(t, provisioning.GuardSettings{MaxCount: 100})
	ext := env.dir.AddUser(provisioning.User{UserPrincipalName: "ext@example.com", EmployeeID: "EXT-1", AccountEnabled: true})
	env.dir.AddGroupMembers(context.Background(), env.finance, []string{ext})

	res, err := env.eng.Reconcile(context.Background(), "EXT-1", "webhook")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Plan.Changes) != 0 || res.Applied != 0 {
		t.Fatalf("an unowned account was changed: %+v", res)
	}
	if !slices.ContainsFunc(res.Plan.Notes, func(n string) bool { return strings.Contains(n, "no record that it created or adopted it") }) {
		t.Errorf("plan does not say why the account is left alone: %v", res.Plan.Notes)
	}
	if u := env.dir.User(ext); !u.AccountEnabled || !env.dir.IsMember(env.finance, ext) {
		t.Fatalf("unowned account lost access: %+v", u)
	}

	// The complete sync reports it and leaves it alone too.
	s := env.syncer()
	rep, err := s.Run(context.Background(), provisioning.SyncOptions{Complete: true})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(rep.Unowned, "ext@example.com") || rep.Guarded || len(env.q.Enqueued()) != 0 {
		t.Fatalf("sync report = %+v, enqueued %v", rep, env.q.Enqueued())
	}

	// An account the product created does lose access when its person is
	// deleted in Personio.
	env.src.Set(employee("7", "Ada", "Lovelace"))
	ids := env.converge(t, "7")
	env.src.Remove("7")
	if _, err := env.eng.Reconcile(context.Background(), "7", "webhook"); err != nil {
		t.Fatal(err)
	}
	if env.dir.User(ids["7"]).AccountEnabled {
		t.Fatal("an owned account of a deleted person kept access")
	}
}

func TestAdoptionThroughMatchingKeysMakesAccountOwned(t *testing.T) {
	env := newSafetyEnv(t, provisioning.GuardSettings{MaxCount: 100})
	// An installation over an existing tenant: the account exists already.
	id := env.dir.AddUser(provisioning.User{UserPrincipalName: "bob@example.com", EmployeeID: "8", AccountEnabled: true,
		Attributes: map[string]string{"displayName": "Bob Builder", "employeeId": "8", "jobTitle": "Analyst"}})
	env.src.Set(employee("8", "Bob", "Builder"))
	if _, err := env.eng.Reconcile(context.Background(), "8", "sync"); err != nil {
		t.Fatal(err)
	}
	owned, err := provisioning.EngineOwns(env.eng, context.Background(), id)
	if err != nil || !owned {
		t.Fatalf("matched account not adopted: %v %v", owned, err)
	}
	env.src.Remove("8")
	if _, err := env.eng.Reconcile(context.Background(), "8", "webhook"); err != nil {
		t.Fatal(err)
	}
	if env.dir.User(id).AccountEnabled {
		t.Fatal("adopted account of a deleted person kept access")
	}
}

func TestSafeguardBudgetHoldsBeyondThresholdForWebhooks(t *testing.T) {
	ctx := context.Background()
	env := newSafetyEnv(t, provisioning.GuardSettings{MaxCount: 2, Window: time.Hour})
	var ids []string
	for i := range 5 {
		id := string(rune('1' + i))
		env.src.Set(employee(id, "P"+id, "Person"))
		ids = append(ids, id)
	}
	acc := env.converge(t, ids...)
	// Everyone leaves yesterday and gets a new job title on the way out is
	// not possible (a leaver's profile is frozen), so make person 5 a mover
	// instead: new title (non-destructive) and out of Finance (destructive).
	for _, id := range ids[:4] {
		env.src.Set(employee(id, "P"+id, "Person", leftYesterday))
	}
	env.src.Set(employee("5", "P5", "Person", func(e *model.Employee) {
		e.Position, e.Department = "Seller", model.Ref{ID: "2", Name: "Sales"}
	}))
	held := 0
	for _, id := range ids {
		res, err := env.eng.Reconcile(ctx, id, "employment.updated")
		if err != nil {
			t.Fatal(err)
		}
		held += min(res.Held, 1)
	}
	disabled := 0
	for _, id := range ids[:4] {
		if !env.dir.User(acc[id]).AccountEnabled {
			disabled++
		}
	}
	if disabled != 2 || held != 3 {
		t.Fatalf("disabled %d, held %d people; want 2 and 3 (threshold 2)", disabled, held)
	}
	if got := env.dir.User(acc["5"]).Attributes["jobTitle"]; got != "Seller" {
		t.Errorf("the held mover's non-destructive change was not applied: jobTitle=%q", got)
	}
	if !env.dir.IsMember(env.finance, acc["5"]) {
		t.Error("the held mover lost Finance membership")
	}
	aps, err := env.syncer().Approvals(ctx)
	if err != nil || len(aps) != 1 || len(aps[0].People) != 3 {
		t.Fatalf("want one approval with 3 people, got %+v %v", aps, err)
	}

	// A restart (new engine, same state) keeps the hold: a later trigger
	// does not sneak the held change through.
	r, _ := rules.LoadBytes("rules.yaml", []byte(safetyRules))
	env.eng = env.engine(t, r, provisioning.GuardSettings{MaxCount: 100})
	if res, err := env.eng.Reconcile(ctx, aps[0].People[0], "schedule"); err != nil || res.Held == 0 {
		t.Fatalf("held person reconciled again: held=%d err=%v", res.Held, err)
	}

	// Approving releases them: the queue gets them and their reconcile
	// applies what is still due.
	if _, err := env.syncer().Approve(ctx, aps[0].ID); err != nil {
		t.Fatal(err)
	}
	if len(env.q.Enqueued()) != 3 {
		t.Fatalf("approval enqueued %v", env.q.Enqueued())
	}
	for _, id := range env.q.Enqueued() {
		if res, err := env.eng.Reconcile(ctx, id, "approved"); err != nil || res.Held != 0 {
			t.Fatalf("approved person %s still held: %+v %v", id, res, err)
		}
	}
	for _, id := range ids[:4] {
		if env.dir.User(acc[id]).AccountEnabled {
			t.Errorf("person %s still enabled after approval", id)
		}
	}
	if env.dir.IsMember(env.finance, acc["5"]) {
		t.Error("the mover is still in Finance after approval")
	}
	if aps, _ := env.syncer().Approvals(ctx); len(aps) != 0 {
		t.Errorf("approval still pending: %+v", aps)
	}
}

func TestCollapsedSourceChangesNothing(t *testing.T) {
	ctx := context.Background()
	// A generous budget: the small tenant's 4 disables are under it.
	env := newSafetyEnv(t, provisioning.GuardSettings{MaxCount: 10})
	var ids []string
	for i := range 4 {
		id := string(rune('1' + i))
		env.src.Set(employee(id, "P"+id, "Person"))
		ids = append(ids, id)
	}
	acc := env.converge(t, ids...)
	for _, id := range ids {
		env.src.Remove(id)
	}
	s := env.syncer()
	rep, err := s.Run(ctx, provisioning.SyncOptions{Complete: true})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Collapsed || !rep.Guarded || rep.ApprovalID == "" || len(env.q.Enqueued()) != 0 {
		t.Fatalf("collapsed source not held: %+v, enqueued %v", rep, env.q.Enqueued())
	}
	for _, id := range ids {
		if !env.dir.User(acc[id]).AccountEnabled {
			t.Fatalf("person %s disabled from an empty Personio", id)
		}
	}
	// A webhook for one of them is held too: they are in the open set.
	if res, err := env.eng.Reconcile(ctx, ids[0], "person.deleted"); err != nil || res.Held == 0 {
		t.Fatalf("held person applied by a webhook: %+v %v", res, err)
	}
	if !env.dir.User(acc[ids[0]]).AccountEnabled {
		t.Fatal("held person disabled")
	}
}

func TestActiveEmployeeKeepsAccessWhenStartDateMovesForward(t *testing.T) {
	ctx := context.Background()
	env := newSafetyEnv(t, provisioning.GuardSettings{MaxCount: 100})
	env.src.Set(employee("1", "Ann", "Active"))
	acc := env.converge(t, "1")
	if !env.dir.IsMember(env.finance, acc["1"]) {
		t.Fatal("setup: not in Finance")
	}
	for _, days := range []int{3, 30} { // pre-hire window and beyond it
		env.src.Set(employee("1", "Ann", "Active", func(e *model.Employee) {
			e.StartDate = model.DateOf(safetyNow.AddDate(0, 0, days))
		}))
		res, err := env.eng.Reconcile(ctx, "1", "person.updated")
		if err != nil {
			t.Fatal(err)
		}
		if n := res.Plan.Destructive(); n != 0 {
			t.Fatalf("start date +%dd: %d destructive changes planned: %+v", days, n, res.Plan.Changes)
		}
		if !env.dir.User(acc["1"]).AccountEnabled || !env.dir.IsMember(env.finance, acc["1"]) {
			t.Fatalf("start date +%dd: access taken away", days)
		}
		if !slices.ContainsFunc(res.Plan.Notes, func(n string) bool { return strings.Contains(n, "access is kept") }) {
			t.Errorf("start date +%dd: plan has no warning: %v", days, res.Plan.Notes)
		}
	}
	// A starter who is not ACTIVE yet is still pre-hire: disabled until day one.
	env.src.Set(employee("2", "Otto", "Onboarding", func(e *model.Employee) {
		e.Status, e.StartDate = "ONBOARDING", model.DateOf(safetyNow.AddDate(0, 0, 3))
	}))
	acc2 := env.converge(t, "2")
	if env.dir.User(acc2["2"]).AccountEnabled {
		t.Error("an onboarding starter's account is enabled before the start date")
	}
}

func TestCompleteSyncBooksMissingSchedules(t *testing.T) {
	ctx := context.Background()
	env := newSafetyEnv(t, provisioning.GuardSettings{MaxCount: 100})
	env.src.Set(employee("1", "Lea", "Leaving", func(e *model.Employee) {
		e.LastWorkingDay = model.DateOf(safetyNow.AddDate(0, 0, 10))
	}))
	env.converge(t, "1")
	env.q.CancelSchedule(ctx, "1") // the schedule was lost
	s := env.syncer()
	rep, err := s.Run(ctx, provisioning.SyncOptions{Complete: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Drifting != 0 {
		t.Fatalf("setup: person drifts: %+v", rep)
	}
	want := model.DateOf(safetyNow.AddDate(0, 0, 10)).End(mustLoc(t, "Europe/Berlin"))
	if got, _ := env.q.Scheduled("1"); !got.Equal(want) || rep.Scheduled != 1 {
		t.Fatalf("schedule = %v (scheduled %d), want %v", got, rep.Scheduled, want)
	}
}

func mustLoc(t *testing.T, name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}
