package entra

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/conformance"
	"github.com/personio-entra/personio-entra/provisioning/entra/entratest"
)

func withLicenses(c *Config) { c.Licenses = true }

// TestLifecycleConformance runs the returner and licence contract through
// this adapter against the Graph simulator and, with ENTRA_CONFORMANCE=1
// and ENTRA_CONFORMANCE_SKU (a part number with a free seat) set as for
// TestConformance, against a real tenant.
func TestLifecycleConformance(t *testing.T) {
	t.Run("simulator", func(t *testing.T) {
		conformance.RunLifecycle(t, func(t *testing.T) conformance.LifecycleFixture {
			sim, d, _ := newSimDirectory(t, entratest.Options{ReplicationDelay: 200 * time.Millisecond, Domain: "contoso.example"}, withLicenses)
			n := 0
			return conformance.LifecycleFixture{
				DirectoryFixture: conformance.DirectoryFixture{
					Directory: d, Domain: "contoso.example", Settle: 5 * time.Second,
					SeedUser: func(_ *testing.T, u provisioning.User) string {
						return sim.AddUser(entratest.User{UserPrincipalName: u.UserPrincipalName, Mail: u.Mail, EmployeeID: u.EmployeeID,
							DisplayName: u.UserPrincipalName, AccountEnabled: u.AccountEnabled})
					},
				},
				SeedSKU: func(_ *testing.T, seats int) string {
					n++
					part := fmt.Sprintf("CONFORMANCE_%d", n)
					sim.AddSKU(entratest.SKU{PartNumber: part, Enabled: seats, Plans: []entratest.ServicePlan{{Name: "PLAN_A"}, {Name: "PLAN_B"}}})
					return part
				},
			}
		})
	})
	t.Run("tenant", func(t *testing.T) {
		env := map[string]string{}
		for _, k := range []string{"ENTRA_CONFORMANCE", "ENTRA_TENANT_ID", "ENTRA_CLIENT_ID", "ENTRA_CLIENT_SECRET", "ENTRA_CONFORMANCE_DOMAIN", "ENTRA_CONFORMANCE_SKU"} {
			env[k] = os.Getenv(k)
		}
		if env["ENTRA_CONFORMANCE"] != "1" || env["ENTRA_TENANT_ID"] == "" || env["ENTRA_CLIENT_ID"] == "" || env["ENTRA_CLIENT_SECRET"] == "" || env["ENTRA_CONFORMANCE_DOMAIN"] == "" {
			t.Skip("real-tenant conformance skipped: set ENTRA_CONFORMANCE=1, ENTRA_TENANT_ID, ENTRA_CLIENT_ID, ENTRA_CLIENT_SECRET, ENTRA_CONFORMANCE_DOMAIN and ENTRA_CONFORMANCE_SKU to run it")
		}
		d, err := New(context.Background(), Config{TenantID: env["ENTRA_TENANT_ID"], ClientID: env["ENTRA_CLIENT_ID"], ClientSecret: env["ENTRA_CLIENT_SECRET"],
			Cloud: os.Getenv("ENTRA_CLOUD"), Logger: testLogger(t), Licenses: true})
		if err != nil {
			t.Fatal(err)
		}
		conformance.RunLifecycle(t, func(*testing.T) conformance.LifecycleFixture {
			return conformance.LifecycleFixture{DirectoryFixture: conformance.DirectoryFixture{Directory: d, Domain: env["ENTRA_CONFORMANCE_DOMAIN"], Settle: 2 * time.Minute},
				SKU: env["ENTRA_CONFORMANCE_SKU"]}
		})
	})
}

// The adapter's wire details: the deleted-items filter goes in advanced
// query mode and falls back to listing when refused; a restore under a
// new name goes to the beta endpoint with the documented parameters; the
// granted permissions are read from the token.
func TestLifecycleWire(t *testing.T) {
	sim, d, wire := newSimDirectory(t, entratest.Options{}, withLicenses)
	ctx := ctxT(t)
	at := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	id := sim.AddDeletedUser(entratest.User{UserPrincipalName: "ada@example.com", DisplayName: "Ada", EmployeeID: "7",
		Properties: map[string]any{"jobTitle": "Analyst"}}, at)
	sim.AddDeletedUser(entratest.User{UserPrincipalName: "bob@example.com", DisplayName: "Bob", EmployeeID: "8"}, at)

	for _, refuse := range []bool{false, true} {
		sim.RefuseDeletedItemsFilter(refuse)
		before := len(wire.find("GET", "/directory/deletedItems/graph.user"))
		found, err := d.FindDeletedUsers(ctx, "7")
		if err != nil {
			t.Fatalf("refuse=%t: %v", refuse, err)
		}
		if len(found) != 1 || found[0].ID != id || !found[0].DeletedAt.Equal(at) || found[0].Attributes["jobTitle"] != "Analyst" {
			t.Errorf("refuse=%t: found %+v", refuse, found)
		}
		// The simulator refuses $count without ConsistencyLevel: the
		// first request succeeding (or being refused for its filter
		// only) shows the advanced query mode.
		reqs := wire.find("GET", "/directory/deletedItems/graph.user")[before:]
		if len(reqs) == 0 || !strings.Contains(reqs[0].Query, "$filter=employeeId") || !strings.Contains(reqs[0].Query, "$count=true") {
			t.Errorf("first request %+v: want the filter in advanced query mode", reqs)
		}
		if refuse && (len(reqs) != 2 || strings.Contains(reqs[1].Query, "filter")) {
			t.Errorf("fallback requests %+v", reqs)
		}
		if !refuse && len(reqs) != 1 {
			t.Errorf("requests %+v, want one", reqs)
		}
	}

	sim.AddUser(entratest.User{UserPrincipalName: "ada@example.com", DisplayName: "Other", AccountEnabled: true})
	_, err := d.RestoreDeletedUser(ctx, id, provisioning.RestoreOptions{})
	var de *provisioning.DirectoryError
	if !errors.As(err, &de) || de.Kind != provisioning.KindConflict || de.Target != "userPrincipalName" {
		t.Fatalf("plain restore under a taken name: %v", err)
	}
	u, err := d.RestoreDeletedUser(ctx, id, provisioning.RestoreOptions{NewUserPrincipalName: "ada2@example.com", AutoReconcileProxyConflict: true})
	if err != nil || u.ID != id || u.UserPrincipalName != "ada2@example.com" {
		t.Fatalf("restore under a new name: %+v %v", u, err)
	}
	reqs := wire.find("POST", "/beta/directory/deletedItems/"+id+"/restore")
	if len(reqs) != 1 || !strings.Contains(reqs[0].Body, `"newUserPrincipalName":"ada2@example.com"`) || !strings.Contains(reqs[0].Body, `"autoReconcileProxyConflict":true`) {
		t.Errorf("restore request %+v", reqs)
	}
	if plain := wire.find("POST", "/v1.0/directory/deletedItems/"+id+"/restore"); len(plain) != 1 || plain[0].Body != "" {
		t.Errorf("the plain restore must go to v1.0 without a body: %+v", plain)
	}

	sim.SetPermissions([]string{"User.ReadWrite.All", "LicenseAssignment.Read.All"})
	d2, err := New(context.Background(), Config{TenantID: sim.TenantID(), ClientID: sim.ClientID(), ClientSecret: sim.ClientSecret(),
		AuthorityHost: sim.AuthorityHost(), GraphURL: sim.GraphURL(), HTTPClient: sim.Client(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	perms, err := d2.GrantedPermissions(ctx)
	if err != nil || !slices.Equal(perms, []string{"User.ReadWrite.All", "LicenseAssignment.Read.All"}) {
		t.Errorf("granted %v %v", perms, err)
	}
}
