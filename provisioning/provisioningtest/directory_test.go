package provisioningtest_test

import (
	"context"
	"errors"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"testing"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/provisioningtest"
)

// The test-only API: writes are counted and logged, faults are injected
// per method, seeding is no write.
func TestDirectoryTestAPI(t *testing.T) {
	ctx := context.Background()
	d := provisioningtest.NewDirectory()
	g := d.AddGroup(provisioning.Group{DisplayName: "G"})
	u := d.AddUser(provisioning.User{UserPrincipalName: "a@example.com", EmployeeID: "1"})
	if d.Writes() != 0 {
		t.Fatalf("seeding counted %d writes", d.Writes())
	}
	if got := d.User(u); got.UserType != provisioning.UserTypeMember || got.Attributes["employeeId"] != "1" {
		t.Errorf("seeded user %+v", got)
	}
	if err := d.AddGroupMembers(ctx, g, []string{u}); err != nil {
		t.Fatal(err)
	}
	fail := &provisioning.DirectoryError{Kind: provisioning.KindTransient, Op: "test"}
	d.Fail("SetAccountEnabled", fail)
	if err := d.SetAccountEnabled(ctx, u, true); !errors.Is(err, provisioning.ErrTransient) {
		t.Errorf("injected fault: %v", err)
	}
	d.Fail("SetAccountEnabled", nil)
	if err := d.SetAccountEnabled(ctx, u, true); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if d.Exists(u) || !d.Deleted(u) || d.IsMember(g, u) || len(d.Members(g)) != 0 {
		t.Error("a deleted user still shows")
	}
	if err := d.RestoreUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if !d.IsMember(g, u) {
		t.Error("restore lost the membership")
	}
	want := []string{"AddGroupMembers " + g + " " + u, "SetAccountEnabled " + u, "DeleteUser " + u, "RestoreUser " + u}
	log := d.WriteLog()
	if len(log) != len(want) {
		t.Fatalf("write log %v", log)
	}
	for i := range want {
		if log[i].String() != want[i] {
			t.Errorf("write %d = %q, want %q", i, log[i], want[i])
		}
	}
	ug := d.AddGroup(provisioning.Group{DisplayName: "List", Unmanageable: "a distribution list"})
	if err := d.AddGroupMembers(ctx, ug, []string{u}); !errors.Is(err, provisioning.ErrRejected) {
		t.Errorf("write to an unmanageable group: %v", err)
	}
	d.ResetWrites()
	if d.Writes() != 0 {
		t.Error("ResetWrites")
	}
}

// HideFromGet is the v1 404 that the second read contradicts.
func TestSourceHideFromGet(t *testing.T) {
	ctx := context.Background()
	s := provisioningtest.NewSource(model.Employee{PersonID: "1", Status: "ACTIVE"})
	s.HideFromGet("1", true)
	if _, err := s.GetEmployee(ctx, "1"); !errors.Is(err, model.ErrPersonNotFound) {
		t.Errorf("hidden person: %v", err)
	}
	if gone, err := s.ConfirmDeleted(ctx, "1"); gone || err != nil {
		t.Errorf("ConfirmDeleted of a hidden person = %t, %v", gone, err)
	}
	boom := errors.New("boom")
	s.Fail(boom)
	if _, err := s.ListEmployees(ctx); !errors.Is(err, boom) {
		t.Errorf("injected fault: %v", err)
	}
}
