package entra

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/deploy"
	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/entra/entratest"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"github.com/personio-entra/personio-entra/provisioning/provisioningtest"
	"github.com/personio-entra/personio-entra/rules"
)

// previewLicenses is the example rules' licences section, switched on.
const previewLicenses = `
licenses:
  remove_after_days: 30
  skus:
    - sku: SPE_E3
      when: employee.employment_type == "INTERNAL"
      disabled_plans: [YAMMER_ENTERPRISE]
`

// The rules preview's read budget through the real adapter: 10,000 owned
// accounts in the example rules' eight groups, and a candidate that adds
// a licences section and renames on a name change. The preview reads as
// the complete sync reads (users/delta pages of 200, the managed groups
// resolved, their members in groups/delta pages), users with their
// assignedLicenses in the same pages, and subscribedSkus once: no request
// per person. It writes nothing. Without the licences and renames in the
// preview it took 78 requests (50 + 8 + 20).
func TestPreviewRequestCount(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 users: skipped with -short")
	}
	const n = 10_000
	sim, d, _ := newSimDirectory(t, entratest.Options{})
	ctx := ctxT(t)
	cur, err := rules.LoadBytes("rules.yaml", deploy.RulesExample)
	if err != nil {
		t.Fatal(err)
	}
	candSrc := strings.Replace(string(deploy.RulesExample), "# on_name_change: keep", "on_name_change: rename", 1) + previewLicenses
	cand, err := rules.LoadBytes("candidate.yaml", []byte(candSrc))
	if err != nil {
		t.Fatal(err)
	}
	e3 := sim.AddSKU(entratest.SKU{PartNumber: "SPE_E3", Enabled: 2 * n, Plans: []entratest.ServicePlan{{Name: "YAMMER_ENTERPRISE"}, {Name: "EXCHANGE_S_ENTERPRISE"}}})
	depts := []string{"Finance", "Sales", "Engineering", "People", "Marketing", "Customer Success"}
	src := provisioningtest.NewSource()
	kv := provisioning.NewMemKV()
	members := map[string][]string{}
	for i := range n {
		id := fmt.Sprint(100_000 + i)
		first, last := fmt.Sprintf("First%d", i), fmt.Sprintf("Last%d", i)
		dept := depts[i%len(depts)]
		uid := sim.AddUser(entratest.User{UserPrincipalName: strings.ToLower(first + "." + last + "@example.com"), DisplayName: first + " " + last,
			EmployeeID: id, AccountEnabled: true, Properties: map[string]any{"givenName": first, "surname": last, "department": dept}})
		members[dept] = append(members[dept], uid)
		if i%2 == 0 {
			sim.SetUserLicenses(uid, e3) // held without disabled plans: the candidate disables YAMMER
		}
		if i%10 == 0 {
			last = "Renamed" + last // a name change the candidate would rename
		}
		src.Set(model.Employee{PersonID: id, FirstName: first, LastName: last, Status: "ACTIVE", Position: "Analyst", EmploymentType: "INTERNAL",
			Department: model.Ref{Name: dept}, Office: model.Ref{Name: "Munich"}, LegalEntity: model.Ref{Name: "Example GmbH"},
			StartDate: model.Date{Year: 2024, Month: 1, Day: 1}})
		rec, _ := json.Marshal(provisioning.OwnershipRecord{UserID: uid, PersonID: id, How: "created", Since: time.Unix(0, 0).UTC()})
		if err := kv.Put(ctx, "owned."+uid, rec); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range cur.ManagedGroups() {
		sim.AddGroup(entratest.Group{DisplayName: g, SecurityEnabled: true, Members: members[g]})
	}
	cfg := provisioning.Config{Source: src, Directory: d, State: kv, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Guard: provisioning.GuardSettings{MaxCount: 100}, Now: func() time.Time { return time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC) }}
	cfg.ApplyRules(cur)
	eng, err := provisioning.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sim.Reset()
	pv, err := provisioning.PreviewRules(context.Background(), eng, cand)
	if err != nil {
		t.Fatal(err)
	}
	req := sim.Requests()
	t.Logf("preview of %d people: %d Graph requests (%d writes): %v; totals %+v", pv.Employees, req.Total, req.Writes, req.ByRoute, pv.Totals)
	if pv.Employees != n || pv.Owned != n {
		t.Fatalf("preview read %d people, %d owned", pv.Employees, pv.Owned)
	}
	if req.Writes != 0 {
		t.Errorf("the preview wrote: %v", req.ByRoute)
	}
	if got := req.ByRoute["GET /subscribedSkus"]; got != 1 {
		t.Errorf("subscribedSkus read %d times, want once", got)
	}
	if req.Total > 80 {
		t.Errorf("%d Graph requests for %d people, want at most 80 (no request per person): %v", req.Total, n, req.ByRoute)
	}
	if tot := pv.Totals; tot.LicensesGained != n/2 || tot.LicensePlansChanged != n/2 || tot.Renamed != n/10 {
		t.Errorf("licences gained %d, plans changed %d (want %d each: users are read with their licences), renamed %d (want %d)",
			tot.LicensesGained, tot.LicensePlansChanged, n/2, tot.Renamed, n/10)
	}
}
