package conformance

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/personio-entra/personio-entra/provisioning"
)

// LifecycleFixture is a directory with the optional interfaces of
// returners and licences (provisioning/lifecycle_directory.go).
type LifecycleFixture struct {
	DirectoryFixture
	// SKU is the part number of a subscription with at least one free
	// seat whose licence the suite may assign to the users it creates (and
	// removes again). SeedSKU, when set, is used instead: it creates a
	// subscription with the given number of seats and returns its part
	// number; nil skips the check that needs a subscription without a
	// free seat.
	SKU     string
	SeedSKU func(t *testing.T, seats int) string
}

// RunLifecycle runs the contract of DeletedUsers and Licenses against the
// directories newDir returns (one fresh fixture per sub-test). Directory
// must implement both; the user reads must carry licences
// (User.Licenses).
func RunLifecycle(t *testing.T, newDir func(t *testing.T) LifecycleFixture) {
	tests := []struct {
		name string
		run  func(t *testing.T, f LifecycleFixture, du provisioning.DeletedUsers, l provisioning.Licenses)
	}{
		{"FindAndRestoreDeleted", testFindAndRestoreDeleted},
		{"RestoreUnderANewName", testRestoreUnderNewName},
		{"AssignAndRemoveLicense", testAssignAndRemoveLicense},
		{"LicenseRefusals", testLicenseRefusals},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newDir(t)
			du, ok1 := f.Directory.(provisioning.DeletedUsers)
			l, ok2 := f.Directory.(provisioning.Licenses)
			if !ok1 || !ok2 || f.Domain == "" {
				t.Fatalf("conformance: the fixture needs a Domain and a Directory with DeletedUsers (%t) and Licenses (%t)", ok1, ok2)
			}
			tc.run(t, f, du, l)
		})
	}
}

// createAndDelete creates a user, waits until it is readable and
// soft-deletes it.
func createAndDelete(t *testing.T, f LifecycleFixture, role, tg string) provisioning.User {
	t.Helper()
	ctx, d := ctxFor(t), f.Directory
	u := create(t, f.DirectoryFixture, newUser(f.DirectoryFixture, role, tg))
	Eventually(t, f.Settle, "created user readable", func() error {
		_, err := d.GetUser(ctx, u.ID)
		return err
	})
	if err := d.DeleteUser(ctx, u.ID); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	return u
}

// A deleted user is found by employeeId among deleted items, with when it
// was deleted, and comes back under its object id and name.
func testFindAndRestoreDeleted(t *testing.T, f LifecycleFixture, du provisioning.DeletedUsers, _ provisioning.Licenses) {
	ctx, tg := ctxFor(t), tag(t)
	u := createAndDelete(t, f, "emp", tg)
	Eventually(t, f.Settle, "deleted user found", func() error {
		found, err := du.FindDeletedUsers(ctx, employeeID("emp", tg))
		if err != nil {
			return err
		}
		if len(found) != 1 || found[0].ID != u.ID || !strings.EqualFold(found[0].UserPrincipalName, u.UserPrincipalName) || found[0].DeletedAt.IsZero() {
			return fmt.Errorf("FindDeletedUsers = %+v, want %s with its deletion time", found, u.ID)
		}
		if found[0].Attributes["jobTitle"] != "Tester" {
			return fmt.Errorf("deleted user without its properties: %+v", found[0])
		}
		return nil
	})
	none, err := du.FindDeletedUsers(ctx, "nobody-"+tg)
	if err != nil || none == nil || len(none) != 0 {
		t.Errorf("FindDeletedUsers of no one = %v, %v; want an empty slice", none, err)
	}
	Eventually(t, f.Settle, "restore", func() error {
		r, err := du.RestoreDeletedUser(ctx, u.ID, provisioning.RestoreOptions{})
		if err == nil && (r.ID != u.ID || !strings.EqualFold(r.UserPrincipalName, u.UserPrincipalName)) {
			t.Fatalf("RestoreDeletedUser = %+v", r)
		}
		return err
	})
	Eventually(t, f.Settle, "restored user readable and no longer deleted", func() error {
		if _, err := f.Directory.GetUser(ctx, u.ID); err != nil {
			return err
		}
		found, err := du.FindDeletedUsers(ctx, employeeID("emp", tg))
		if err == nil && len(found) != 0 {
			err = fmt.Errorf("still among deleted items: %+v", found)
		}
		return err
	})
	_, err = du.RestoreDeletedUser(ctx, u.ID, provisioning.RestoreOptions{})
	wantKind(t, "restore of a user that is not deleted", err, provisioning.KindNotFound)
}

// A deleted user whose name an active account took meanwhile: the plain
// restore is a conflict on userPrincipalName; a restore under a new name
// (with the clashing addresses dropped) succeeds.
func testRestoreUnderNewName(t *testing.T, f LifecycleFixture, du provisioning.DeletedUsers, _ provisioning.Licenses) {
	ctx, tg := ctxFor(t), tag(t)
	u := createAndDelete(t, f, "emp", tg)
	Eventually(t, f.Settle, "deleted user found", func() error {
		found, err := du.FindDeletedUsers(ctx, employeeID("emp", tg))
		if err == nil && len(found) != 1 {
			err = fmt.Errorf("FindDeletedUsers = %+v", found)
		}
		return err
	})
	holder := ""
	if f.SeedUser != nil {
		holder = f.SeedUser(t, provisioning.User{UserPrincipalName: u.UserPrincipalName, EmployeeID: employeeID("oth", tg), AccountEnabled: true})
	} else {
		nu := newUser(f.DirectoryFixture, "oth", tg)
		nu.UserPrincipalName = u.UserPrincipalName
		holder = create(t, f.DirectoryFixture, nu).ID
	}
	Eventually(t, f.Settle, "the new holder of the name readable", func() error {
		return findOne(ctx, f.Directory, "userPrincipalName", u.UserPrincipalName, holder)
	})
	_, err := du.RestoreDeletedUser(ctx, u.ID, provisioning.RestoreOptions{})
	de := wantKind(t, "restore under a name an active account holds", err, provisioning.KindConflict)
	if !strings.EqualFold(de.Target, "userPrincipalName") {
		t.Errorf("conflict target %q, want userPrincipalName", de.Target)
	}
	newUPN := fmt.Sprintf("conformance-back-%s@%s", tg, f.Domain)
	r, err := du.RestoreDeletedUser(ctx, u.ID, provisioning.RestoreOptions{NewUserPrincipalName: newUPN, AutoReconcileProxyConflict: true})
	if err != nil {
		t.Fatalf("restore under a new name: %v", err)
	}
	if r.ID != u.ID || !strings.EqualFold(r.UserPrincipalName, newUPN) {
		t.Errorf("restored %+v, want %s as %s", r, u.ID, newUPN)
	}
	Eventually(t, f.Settle, "restored user readable under the new name", func() error {
		return findOne(ctx, f.Directory, "userPrincipalName", newUPN, u.ID)
	})
}

func holdsSKU(u provisioning.User, skuID string) bool {
	return slices.ContainsFunc(u.Licenses, func(l provisioning.LicenseAssignment) bool { return strings.EqualFold(l.SKUID, skuID) })
}

// lookupSKU finds the fixture's subscription.
func lookupSKU(t *testing.T, f LifecycleFixture, l provisioning.Licenses, seats int) provisioning.SKU {
	t.Helper()
	part := f.SKU
	if f.SeedSKU != nil {
		part = f.SeedSKU(t, seats)
	}
	if part == "" {
		t.Skip("conformance: the fixture names no SKU")
	}
	skus, err := l.SubscribedSkus(ctxFor(t))
	if err != nil {
		t.Fatalf("SubscribedSkus: %v", err)
	}
	i := slices.IndexFunc(skus, func(s provisioning.SKU) bool { return strings.EqualFold(s.PartNumber, part) })
	if i < 0 {
		t.Fatalf("SubscribedSkus lacks %s: %+v", part, skus)
	}
	if skus[i].ID == "" || skus[i].Enabled < skus[i].Consumed || len(skus[i].Plans) == 0 {
		t.Fatalf("SKU %+v: want an id, seats and service plans", skus[i])
	}
	return skus[i]
}

// A licence is assigned with a disabled plan, read back with the user,
// and removed again; only that licence changes.
func testAssignAndRemoveLicense(t *testing.T, f LifecycleFixture, _ provisioning.DeletedUsers, l provisioning.Licenses) {
	ctx, d, tg := ctxFor(t), f.Directory, tag(t)
	sku := lookupSKU(t, f, l, 5)
	u := create(t, f.DirectoryFixture, newUser(f.DirectoryFixture, "emp", tg)) // usageLocation DE
	plan := sku.Plans[0].ID
	Eventually(t, f.Settle, "assign", func() error {
		return l.AssignLicense(ctx, u.ID, []provisioning.LicenseAssignment{{SKUID: sku.ID, DisabledPlans: []string{plan}}}, nil)
	})
	Eventually(t, f.Settle, "licence read back", func() error {
		got, err := d.GetUser(ctx, u.ID)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(got.Licenses, func(x provisioning.LicenseAssignment) bool { return strings.EqualFold(x.SKUID, sku.ID) })
		if i < 0 || len(got.Licenses[i].DisabledPlans) != 1 || !strings.EqualFold(got.Licenses[i].DisabledPlans[0], plan) {
			return fmt.Errorf("licences %+v, want %s with plan %s disabled", got.Licenses, sku.ID, plan)
		}
		found, err := d.FindUsers(ctx, "employeeId", employeeID("emp", tg))
		if err != nil || len(found) != 1 || !holdsSKU(found[0], sku.ID) {
			return fmt.Errorf("FindUsers does not carry the licence: %+v %v", found, err)
		}
		return nil
	})
	if err := l.AssignLicense(ctx, u.ID, nil, []string{sku.ID}); err != nil {
		t.Fatalf("remove: %v", err)
	}
	Eventually(t, f.Settle, "licence removed", func() error {
		got, err := d.GetUser(ctx, u.ID)
		if err == nil && holdsSKU(got, sku.ID) {
			err = fmt.Errorf("still holds %s", sku.ID)
		}
		return err
	})
}

// The refusals the engine relies on: no usageLocation and no free seat
// are KindTransient and match their sentinels; an unknown SKU and the
// removal of a licence the user lacks are KindRejected.
func testLicenseRefusals(t *testing.T, f LifecycleFixture, _ provisioning.DeletedUsers, l provisioning.Licenses) {
	ctx, tg := ctxFor(t), tag(t)
	sku := lookupSKU(t, f, l, 5)
	nu := newUser(f.DirectoryFixture, "emp", tg)
	delete(nu.Attributes, "usageLocation")
	u := create(t, f.DirectoryFixture, nu)
	var err error
	Eventually(t, f.Settle, "refused without usageLocation", func() error {
		err = l.AssignLicense(ctx, u.ID, []provisioning.LicenseAssignment{{SKUID: sku.ID}}, nil)
		if errors.Is(err, provisioning.ErrNotFound) {
			return err // not replicated yet
		}
		return nil
	})
	de := wantKind(t, "licence without usageLocation", err, provisioning.KindTransient)
	if !errors.Is(de, provisioning.ErrNoUsageLocation) {
		t.Errorf("errors.Is(%v, ErrNoUsageLocation) is false", err)
	}
	err = l.AssignLicense(ctx, u.ID, nil, []string{sku.ID})
	wantKind(t, "removal of a licence the user lacks", err, provisioning.KindRejected)
	err = l.AssignLicense(ctx, u.ID, []provisioning.LicenseAssignment{{SKUID: "00000000-0000-0000-0000-00000000dead"}}, nil)
	wantKind(t, "unknown SKU", err, provisioning.KindRejected)

	if f.SeedSKU == nil {
		return
	}
	full := lookupSKU(t, LifecycleFixture{DirectoryFixture: f.DirectoryFixture, SeedSKU: f.SeedSKU}, l, 0)
	other := create(t, f.DirectoryFixture, newUser(f.DirectoryFixture, "oth", tg))
	Eventually(t, f.Settle, "refused without a seat", func() error {
		err = l.AssignLicense(ctx, other.ID, []provisioning.LicenseAssignment{{SKUID: full.ID}}, nil)
		if errors.Is(err, provisioning.ErrNotFound) {
			return err
		}
		return nil
	})
	de = wantKind(t, "licence without a free seat", err, provisioning.KindTransient)
	if !errors.Is(de, provisioning.ErrNoLicenseSeats) {
		t.Errorf("errors.Is(%v, ErrNoLicenseSeats) is false", err)
	}
}
