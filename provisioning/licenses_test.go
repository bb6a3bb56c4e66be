package provisioning_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"github.com/personio-entra/personio-entra/queue/work"
)

const licenseSection = `licenses:
  remove_after_days: 5
  skus:
    - sku: SPE_E3
      when: employee.department.name == "Finance"
      disabled_plans: [YAMMER_ENTERPRISE]
`

type licenseEnv struct {
	*lifecycleEnv
	e3, visio, yammer string
}

func newLicenseEnv(t *testing.T, seats int, guard provisioning.GuardSettings) *licenseEnv {
	t.Helper()
	env := &licenseEnv{lifecycleEnv: newLifecycleEnv(t, "keep", licenseSection, guard)}
	env.yammer = "0000aaaa-0000-4000-8000-000000000001"
	env.e3 = env.dir.AddSKU(provisioning.SKU{PartNumber: "SPE_E3", Enabled: seats, AppliesTo: "User",
		Plans: []provisioning.ServicePlan{{ID: env.yammer, Name: "YAMMER_ENTERPRISE"}, {ID: "0000aaaa-0000-4000-8000-000000000002", Name: "EXCHANGE_S_ENTERPRISE"}}})
	env.visio = env.dir.AddSKU(provisioning.SKU{PartNumber: "VISIOCLIENT", Enabled: 10, AppliesTo: "User"})
	return env
}

func holds(u provisioning.User, skuID string) bool {
	return slices.ContainsFunc(u.Licenses, func(l provisioning.LicenseAssignment) bool { return l.SKUID == skuID })
}

// A licence follows its condition: assigned with its disabled plans when
// the condition holds (usageLocation first), removed when it stops
// holding; a licence the rules do not name is never touched.
func TestLicenseFollowsCondition(t *testing.T) {
	env := newLicenseEnv(t, 10, provisioning.GuardSettings{MaxCount: 100})
	env.src.Set(employee("7", "Ada", "Lovelace"))
	uid := env.converge(t, "7")["7"]
	u := env.dir.User(uid)
	if !holds(u, env.e3) || !slices.Equal(u.Licenses[0].DisabledPlans, []string{env.yammer}) || u.Attributes["usageLocation"] != "DE" {
		t.Fatalf("new account %+v: want SPE_E3 with YAMMER disabled, usageLocation DE", u)
	}
	// A licence assigned by hand that the rules do not manage.
	env.dir.SetLicenses(uid, append(u.Licenses, provisioning.LicenseAssignment{SKUID: env.visio})...)
	env.src.Set(employee("7", "Ada", "Lovelace", inSales))
	env.dir.ResetWrites()
	res := env.reconcile(t, "7")
	u = env.dir.User(uid)
	if holds(u, env.e3) || !holds(u, env.visio) {
		t.Errorf("licences %+v: want SPE_E3 removed and VISIOCLIENT kept", u.Licenses)
	}
	if !slices.ContainsFunc(res.Plan.Changes, func(c provisioning.Change) bool { return c.Kind == provisioning.RemoveLicense && c.SKU == "SPE_E3" }) {
		t.Errorf("changes %v", res.Plan.Changes)
	}
	env.src.Set(employee("7", "Ada", "Lovelace"))
	env.reconcile(t, "7")
	if u = env.dir.User(uid); !holds(u, env.e3) || !holds(u, env.visio) {
		t.Errorf("licences %+v: want SPE_E3 back and VISIOCLIENT kept", u.Licenses)
	}
	env.dir.ResetWrites()
	if res := env.reconcile(t, "7"); len(res.Plan.Changes) != 0 {
		t.Errorf("converged run changes %v", res.Plan.Changes)
	}
}

// An adopted account without a usageLocation gets the rules' value in the
// same run, before the licence (Graph refuses a licence without one),
// although the rules write usageLocation on create only.
func TestLicenseSetsUsageLocationFirst(t *testing.T) {
	env := newLicenseEnv(t, 10, provisioning.GuardSettings{MaxCount: 100})
	uid := env.dir.AddUser(provisioning.User{UserPrincipalName: "ada.lovelace@example.com", EmployeeID: "7", AccountEnabled: true,
		Attributes: map[string]string{"displayName": "Ada Lovelace", "givenName": "Ada", "surname": "Lovelace", "jobTitle": "Analyst"}})
	env.src.Set(employee("7", "Ada", "Lovelace"))
	env.reconcile(t, "7")
	if got := env.ops(); !slices.Equal(got, []string{"UpdateUser", "AddGroupMembers Finance", "AssignLicense"}) {
		t.Errorf("writes %v", got)
	}
	if u := env.dir.User(uid); u.Attributes["usageLocation"] != "DE" || !holds(u, env.e3) {
		t.Errorf("account %+v", u)
	}
}

// A leaver keeps the managed licences for remove_after_days after the last
// working day (the removal is booked as a schedule), then loses them, and
// only through the safeguard: with the budget spent, the removal is held.
func TestLicenseLeaverRemovedLaterThroughSafeguard(t *testing.T) {
	env := newLicenseEnv(t, 10, provisioning.GuardSettings{MaxCount: 1})
	env.src.Set(employee("7", "Ada", "Lovelace"))
	env.src.Set(employee("8", "Bob", "Builder"))
	ids := env.converge(t, "7", "8")
	lastDay := model.DateOf(safetyNow.AddDate(0, 0, -1))
	env.src.Set(employee("7", "Ada", "Lovelace", func(e *model.Employee) { e.LastWorkingDay = lastDay }))
	env.reconcile(t, "7") // disabled, out of the group: one person of the budget of 1
	u := env.dir.User(ids["7"])
	if u.AccountEnabled || !holds(u, env.e3) {
		t.Fatalf("leaver %+v: want disabled, licence kept", u)
	}
	removeAt := lastDay.AddDays(5).End(env.rules.TimeZone())
	if at, ok := env.q.Scheduled("7"); !ok || !at.Equal(removeAt) {
		t.Errorf("schedule %v %t, want the licence removal at %s", at, ok, removeAt)
	}
	// The removal is due; someone else already used the budget.
	env.now = removeAt
	env.src.Set(employee("8", "Bob", "Builder", func(e *model.Employee) { e.LastWorkingDay = lastDay }))
	env.reconcile(t, "8")
	res := env.reconcile(t, "7")
	if !holds(env.dir.User(ids["7"]), env.e3) || res.Held != 1 {
		t.Fatalf("removal past the budget: held %d, licences %+v", res.Held, env.dir.User(ids["7"]).Licenses)
	}
	var recs []provisioning.AuditRecord
	for _, r := range env.audit.of(provisioning.RemoveLicense) {
		if r.PersonID == "7" {
			recs = append(recs, r)
		}
	}
	if len(recs) != 1 || recs[0].Result != provisioning.ResultHeld {
		t.Errorf("audit %+v", recs)
	}
	aps, err := env.syncer().Approvals(context.Background())
	if err != nil || len(aps) != 1 {
		t.Fatalf("approvals %v %v", aps, err)
	}
	if _, err := env.syncer().Approve(context.Background(), aps[0].ID); err != nil {
		t.Fatal(err)
	}
	env.reconcile(t, "7")
	if holds(env.dir.User(ids["7"]), env.e3) {
		t.Error("the approved removal did not happen")
	}
}

// The documented refusals: no seat is a retryable error (the queue tries
// again; the complete sync finds the missing licence later), an unknown
// part number leaves the licence alone with a note, and a changed list of
// disabled plans that takes a service away is destructive.
func TestLicenseRefusals(t *testing.T) {
	t.Run("no seats", func(t *testing.T) {
		env := newLicenseEnv(t, 1, provisioning.GuardSettings{MaxCount: 100})
		env.src.Set(employee("7", "Ada", "Lovelace"))
		env.converge(t, "7")
		env.src.Set(employee("8", "Bob", "Builder"))
		res, err := env.eng.Reconcile(context.Background(), "8", "test")
		if err == nil || work.IsTerminal(err) || !errors.Is(err, provisioning.ErrNoLicenseSeats) || !strings.Contains(err.Error(), "buy more seats of SPE_E3") {
			t.Fatalf("err = %v, want a retryable no-seats error", err)
		}
		if res.Plan.UserID == "" || !env.dir.Exists(res.Plan.UserID) {
			t.Error("the account was not created")
		}
	})
	t.Run("unknown part number", func(t *testing.T) {
		env := &licenseEnv{lifecycleEnv: newLifecycleEnv(t, "keep", licenseSection, provisioning.GuardSettings{MaxCount: 100})}
		env.src.Set(employee("7", "Ada", "Lovelace"))
		res := env.reconcile(t, "7")
		if slices.ContainsFunc(res.Plan.Changes, func(c provisioning.Change) bool { return strings.Contains(string(c.Kind), "license") }) ||
			!slices.ContainsFunc(res.Plan.Notes, func(n string) bool { return strings.Contains(n, "licence SPE_E3: the tenant has no subscription") }) {
			t.Errorf("plan %v notes %q", res.Plan.Changes, res.Plan.Notes)
		}
	})
	t.Run("disabled plans that take a service away", func(t *testing.T) {
		env := newLicenseEnv(t, 10, provisioning.GuardSettings{MaxCount: 100})
		env.src.Set(employee("7", "Ada", "Lovelace"))
		uid := env.converge(t, "7")["7"]
		env.dir.SetLicenses(uid, provisioning.LicenseAssignment{SKUID: env.e3})
		plan, err := env.eng.PlanFor(context.Background(), "7")
		if err != nil {
			t.Fatal(err)
		}
		if len(plan.Changes) != 1 || plan.Changes[0].Kind != provisioning.DisableLicensePlans || plan.Destructive() != 1 {
			t.Errorf("plan %v", plan.Changes)
		}
	})
}
