package entra

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/conformance"
	"github.com/personio-entra/personio-entra/provisioning/entra/entratest"
)

// TestConformance runs the Directory contract suite (provisioning/conformance)
// through this adapter against the Graph simulator and, when
// ENTRA_CONFORMANCE=1 and ENTRA_TENANT_ID / ENTRA_CLIENT_ID /
// ENTRA_CLIENT_SECRET are set, against a real tenant. The tenant run also
// needs ENTRA_CONFORMANCE_DOMAIN (a verified domain for the test users) and
// ENTRA_CONFORMANCE_GROUP_ID (an assigned security group the app may manage).
// It creates users named conformance-* and soft-deletes them when each
// check ends (Entra purges them after 30 days). The tenant fixture has no
// seeding hooks, so the checks that need guests, accounts synced from
// on-premises, seeded mail addresses or extra groups are skipped there.
func TestConformance(t *testing.T) {
	t.Run("simulator", func(t *testing.T) {
		conformance.RunDirectory(t, func(t *testing.T) conformance.DirectoryFixture {
			sim, d, _ := newSimDirectory(t, entratest.Options{ReplicationDelay: 200 * time.Millisecond, Domain: "contoso.example"})
			if err := d.Check(ctxT(t)); err != nil {
				t.Fatalf("Check: %v", err)
			}
			return conformance.DirectoryFixture{
				Directory: d,
				Domain:    "contoso.example",
				Group:     sim.AddGroup(entratest.Group{DisplayName: "Conformance", SecurityEnabled: true}),
				Settle:    5 * time.Second,
				SeedUser: func(_ *testing.T, u provisioning.User) string {
					return sim.AddUser(entratest.User{UserPrincipalName: u.UserPrincipalName, Mail: u.Mail, EmployeeID: u.EmployeeID,
						DisplayName: u.UserPrincipalName, UserType: u.UserType, OnPremisesSyncEnabled: u.OnPremisesSync, AccountEnabled: u.AccountEnabled})
				},
				SeedGroup: func(_ *testing.T, name string, unmanageable bool) string {
					g := entratest.Group{DisplayName: name, SecurityEnabled: true}
					if unmanageable { // a distribution list
						g.SecurityEnabled, g.MailEnabled, g.Mail = false, true, "list@contoso.example"
					}
					return sim.AddGroup(g)
				},
			}
		})
	})
	t.Run("tenant", func(t *testing.T) {
		env := map[string]string{}
		for _, k := range []string{"ENTRA_CONFORMANCE", "ENTRA_TENANT_ID", "ENTRA_CLIENT_ID", "ENTRA_CLIENT_SECRET", "ENTRA_CONFORMANCE_DOMAIN", "ENTRA_CONFORMANCE_GROUP_ID"} {
			env[k] = os.Getenv(k)
		}
		if env["ENTRA_CONFORMANCE"] != "1" || env["ENTRA_TENANT_ID"] == "" || env["ENTRA_CLIENT_ID"] == "" || env["ENTRA_CLIENT_SECRET"] == "" {
			t.Skip("real-tenant conformance skipped: set ENTRA_CONFORMANCE=1, ENTRA_TENANT_ID, ENTRA_CLIENT_ID, ENTRA_CLIENT_SECRET, ENTRA_CONFORMANCE_DOMAIN and ENTRA_CONFORMANCE_GROUP_ID to run it")
		}
		if env["ENTRA_CONFORMANCE_DOMAIN"] == "" || env["ENTRA_CONFORMANCE_GROUP_ID"] == "" {
			t.Skip("real-tenant conformance skipped: ENTRA_CONFORMANCE_DOMAIN and ENTRA_CONFORMANCE_GROUP_ID are required")
		}
		d, err := New(context.Background(), Config{
			TenantID: env["ENTRA_TENANT_ID"], ClientID: env["ENTRA_CLIENT_ID"], ClientSecret: env["ENTRA_CLIENT_SECRET"],
			Cloud: os.Getenv("ENTRA_CLOUD"), Logger: testLogger(t),
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := d.Check(ctx); err != nil {
			t.Fatalf("Check: %v", err)
		}
		conformance.RunDirectory(t, func(*testing.T) conformance.DirectoryFixture {
			return conformance.DirectoryFixture{Directory: d, Domain: env["ENTRA_CONFORMANCE_DOMAIN"],
				Group: env["ENTRA_CONFORMANCE_GROUP_ID"], Settle: 2 * time.Minute}
		})
	})
}
