package entra

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/entra/entratest"
)

// conformanceTarget is one directory the suite runs against.
type conformanceTarget struct {
	dir     provisioning.Directory
	domain  string // verified domain for new UPNs
	groupID string // a security group the app may manage
	// settle bounds how long reads may lag behind writes (eventual consistency).
	settle time.Duration
}

// TestConformance runs the same contract checks against the simulator and,
// when ENTRA_CONFORMANCE=1 and ENTRA_TENANT_ID / ENTRA_CLIENT_ID /
// ENTRA_CLIENT_SECRET are set, against a real tenant. The tenant run also
// needs ENTRA_CONFORMANCE_DOMAIN (a verified domain for the test users) and
// ENTRA_CONFORMANCE_GROUP_ID (an assigned security group the app may manage).
// It creates two users named conformance-*, and soft-deletes them at the end
// (Entra purges them after 30 days).
func TestConformance(t *testing.T) {
	t.Run("simulator", func(t *testing.T) {
		sim, d, _ := newSimDirectory(t, entratest.Options{ReplicationDelay: 200 * time.Millisecond, Domain: "contoso.example"})
		gid := sim.AddGroup(entratest.Group{DisplayName: "Conformance", SecurityEnabled: true})
		runConformance(t, conformanceTarget{dir: d, domain: "contoso.example", groupID: gid, settle: 5 * time.Second})
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
		runConformance(t, conformanceTarget{dir: d, domain: env["ENTRA_CONFORMANCE_DOMAIN"], groupID: env["ENTRA_CONFORMANCE_GROUP_ID"], settle: 2 * time.Minute})
	})
}

// eventually retries check until it passes or the settle time is over.
func eventually(t *testing.T, settle time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(settle)
	delay := 100 * time.Millisecond
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(delay)
		delay = min(delay*2, 5*time.Second)
	}
}

func runConformance(t *testing.T, tg conformanceTarget) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	d := tg.dir
	var suffix [4]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		t.Fatal(err)
	}
	tag := hex.EncodeToString(suffix[:])
	mk := func(role string) provisioning.NewUser {
		return provisioning.NewUser{
			UserPrincipalName: fmt.Sprintf("conformance-%s-%s@%s", role, tag, tg.domain),
			MailNickname:      fmt.Sprintf("conformance-%s-%s", role, tag),
			AccountEnabled:    false,
			Attributes: map[string]string{
				"displayName": "Conformance " + role + " " + tag, "givenName": "Conformance", "surname": role,
				"employeeId": "c" + role[:1] + tag, "jobTitle": "Tester", "department": "QA",
				"employeeOrgData/division": "Quality", "employeeOrgData/costCenter": "CC-" + tag,
				"employeeHireDate": "2026-01-05T08:00:00Z", "businessPhones": "+49 30 1234567",
				"usageLocation": "DE", "city": "Berlin",
			},
		}
	}
	if err := d.(*Directory).Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	boss, err := d.CreateUser(ctx, mk("boss"))
	if err != nil {
		t.Fatalf("create boss: %v", err)
	}
	emp, err := d.CreateUser(ctx, mk("emp"))
	if err != nil {
		t.Fatalf("create employee: %v", err)
	}
	t.Cleanup(func() {
		for _, id := range []string{emp.ID, boss.ID} {
			if err := d.DeleteUser(context.Background(), id); err != nil && !errors.Is(err, provisioning.ErrNotFound) {
				t.Errorf("cleanup delete %s: %v", id, err)
			}
		}
	})
	if emp.ID == "" || emp.UserPrincipalName != mk("emp").UserPrincipalName || emp.AccountEnabled {
		t.Fatalf("create returned %+v", emp)
	}

	eventually(t, tg.settle, "find by employeeId and UPN", func() error {
		for key, val := range map[string]string{"employeeId": "ce" + tag, "userPrincipalName": emp.UserPrincipalName} {
			found, err := d.FindUsers(ctx, key, val)
			if err != nil {
				return err
			}
			if len(found) != 1 || found[0].ID != emp.ID {
				return fmt.Errorf("FindUsers(%s) = %+v", key, found)
			}
		}
		return nil
	})
	got, err := d.GetUser(ctx, emp.ID)
	if err != nil {
		t.Fatalf("GetUser: %v", err)
	}
	for k, v := range mk("emp").Attributes {
		if got.Attributes[k] != v && !(k == "employeeId" && got.EmployeeID == v) {
			t.Errorf("attribute %s = %q, want %q", k, got.Attributes[k], v)
		}
	}

	if err := d.UpdateUser(ctx, emp.ID, map[string]*string{"jobTitle": ptr("Lead tester"), "city": nil, "employeeOrgData/division": ptr("Assurance")}); err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	if err := d.SetManager(ctx, emp.ID, boss.ID); err != nil {
		t.Fatalf("SetManager: %v", err)
	}
	if err := d.SetAccountEnabled(ctx, emp.ID, true); err != nil {
		t.Fatalf("enable: %v", err)
	}
	eventually(t, tg.settle, "update, manager and enable visible", func() error {
		u, err := d.GetUser(ctx, emp.ID)
		switch {
		case err != nil:
			return err
		case u.Attributes["jobTitle"] != "Lead tester" || u.Attributes["city"] != "" || u.Attributes["employeeOrgData/division"] != "Assurance" || u.Attributes["employeeOrgData/costCenter"] != "CC-"+tag:
			return fmt.Errorf("attributes %v", u.Attributes)
		case u.ManagerID != boss.ID || u.ManagerEmployeeID != "cb"+tag:
			return fmt.Errorf("manager %q/%q, want %q", u.ManagerID, u.ManagerEmployeeID, boss.ID)
		case !u.AccountEnabled:
			return errors.New("not enabled")
		}
		return nil
	})
	if err := d.RevokeSessions(ctx, emp.ID); err != nil {
		t.Fatalf("RevokeSessions: %v", err)
	}
	if err := d.SetManager(ctx, emp.ID, ""); err != nil {
		t.Fatalf("remove manager: %v", err)
	}
	if err := d.SetManager(ctx, emp.ID, ""); err != nil {
		t.Fatalf("remove absent manager: %v", err)
	}

	g, err := d.GetGroup(ctx, tg.groupID)
	if err != nil || g.Unmanageable != "" {
		t.Fatalf("GetGroup: %+v, %v", g, err)
	}
	for range 2 { // the second add is already-a-member: success
		if err := d.AddGroupMembers(ctx, tg.groupID, []string{emp.ID, boss.ID}); err != nil {
			t.Fatalf("AddGroupMembers: %v", err)
		}
	}
	eventually(t, tg.settle, "membership visible", func() error {
		m, err := d.ListGroupMembers(ctx, tg.groupID)
		if err != nil {
			return err
		}
		if !slices.Contains(m, emp.ID) || !slices.Contains(m, boss.ID) {
			return fmt.Errorf("members %v", m)
		}
		ug, err := d.ListUserGroups(ctx, emp.ID)
		if err != nil {
			return err
		}
		if !slices.Contains(ug, tg.groupID) {
			return fmt.Errorf("memberOf %v", ug)
		}
		return nil
	})
	for range 2 { // the second remove is not-a-member: success
		if err := d.RemoveGroupMember(ctx, tg.groupID, boss.ID); err != nil {
			t.Fatalf("RemoveGroupMember: %v", err)
		}
	}

	_, err = d.CreateUser(ctx, provisioning.NewUser{UserPrincipalName: emp.UserPrincipalName, MailNickname: "dup" + tag,
		Attributes: map[string]string{"displayName": "Duplicate", "employeeId": "cd" + tag}})
	if !errors.Is(err, provisioning.ErrConflict) {
		t.Fatalf("duplicate UPN: want ErrConflict, got %v", err)
	}

	if err := d.DeleteUser(ctx, boss.ID); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	eventually(t, tg.settle, "restore", func() error { return d.RestoreUser(ctx, boss.ID) })
	eventually(t, tg.settle, "restored user readable", func() error {
		_, err := d.GetUser(ctx, boss.ID)
		return err
	})
}
