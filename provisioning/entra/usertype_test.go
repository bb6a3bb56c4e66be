package entra

import (
	"strings"
	"testing"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/entra/entratest"
)

// userType and onPremisesSyncEnabled are read with every user (the engine
// never adopts guests or synced accounts through UPN or mail), and Graph's
// default for a created user is Member.
func TestUserTypeIsRead(t *testing.T) {
	sim, d, wire := newSimDirectory(t, entratest.Options{})
	guest := sim.AddUser(entratest.User{UserPrincipalName: "ext_partner.example#EXT#@example.com", Mail: "ext@partner.example",
		EmployeeID: "g1", UserType: "Guest", DisplayName: "Guest"})
	sim.AddUser(entratest.User{UserPrincipalName: "ad@example.com", EmployeeID: "s1", OnPremisesSyncEnabled: true, DisplayName: "Synced"})
	ctx := ctxT(t)
	found, err := d.FindUsers(ctx, "mail", "ext@partner.example")
	if err != nil || len(found) != 1 || found[0].UserType != provisioning.UserTypeGuest {
		t.Fatalf("FindUsers: %+v, %v", found, err)
	}
	got, err := d.GetUser(ctx, guest)
	if err != nil || got.UserType != provisioning.UserTypeGuest {
		t.Fatalf("GetUser: %+v, %v", got, err)
	}
	all, err := d.ListUsers(ctx)
	if err != nil || len(all) != 2 {
		t.Fatalf("ListUsers: %d users, %v", len(all), err)
	}
	for _, u := range all {
		switch u.EmployeeID {
		case "g1":
			if u.UserType != provisioning.UserTypeGuest {
				t.Errorf("ListUsers: guest read as %q", u.UserType)
			}
		case "s1":
			if u.UserType != provisioning.UserTypeMember || !u.OnPremisesSync {
				t.Errorf("ListUsers: synced member read as %q, synced=%t", u.UserType, u.OnPremisesSync)
			}
		}
	}
	created, err := d.CreateUser(ctx, newUser(1))
	if err != nil {
		t.Fatal(err)
	}
	if again, err := d.GetUser(ctx, created.ID); err != nil || again.UserType != provisioning.UserTypeMember {
		t.Errorf("created user: %+v, %v", again, err)
	}
	for _, r := range wire.find("GET", "/users") {
		if !strings.Contains(r.Query, "userType") || !strings.Contains(r.Query, "onPremisesSyncEnabled") {
			t.Errorf("user read without userType/onPremisesSyncEnabled in $select: %s", r.Query)
		}
	}
}
