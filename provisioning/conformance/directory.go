package conformance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/provisioning"
)

// DirectoryFixture is one directory under test and the few hooks the suite
// needs to set up what the Directory interface cannot create itself.
type DirectoryFixture struct {
	Directory provisioning.Directory
	// Domain is the domain of the UPNs the suite creates (a verified domain
	// of the tenant).
	Domain string
	// Group is the object id of an assigned-membership security group whose
	// members the directory may change. The suite adds and removes only
	// the users it created.
	Group string
	// Settle bounds how long reads may lag behind writes (Entra replicates
	// with a delay). Zero means reads see every write at once.
	Settle time.Duration
	// SeedUser stores an account the way an administrator or a sync would,
	// outside CreateUser, with the given UserPrincipalName, Mail,
	// EmployeeID, UserType ("" is Member) and OnPremisesSync, and returns
	// its object id. Nil skips the checks that need it: guests, synced
	// accounts and look-up by mail.
	SeedUser func(t *testing.T, u provisioning.User) string
	// SeedGroup stores a group named name and returns its object id;
	// unmanageable asks for one whose membership Graph cannot write (a
	// distribution list, say). Nil skips the checks that need it:
	// unmanageable groups and ambiguous display names.
	SeedGroup func(t *testing.T, name string, unmanageable bool) string
}

// RunDirectory runs the Directory contract (provisioning/directory.go)
// against the directories newDir returns: one fresh fixture per sub-test.
func RunDirectory(t *testing.T, newDir func(t *testing.T) DirectoryFixture) {
	tests := []struct {
		name string
		run  func(t *testing.T, f DirectoryFixture)
	}{
		{"CreateAndRead", testCreateAndRead},
		{"FindUsers", testFindUsers},
		{"UpdateUser", testUpdateUser},
		{"EnableAndRevoke", testEnableAndRevoke},
		{"Manager", testManager},
		{"ListUsersOnlyWithEmployeeID", testListUsers},
		{"CreateConflict", testCreateConflict},
		{"NotFound", testNotFound},
		{"GroupMembership", testGroupMembership},
		{"ResolveGroup", testResolveGroup},
		{"UnmanageableGroup", testUnmanageableGroup},
		{"GuestsAndSyncedAccounts", testGuestsAndSynced},
		{"DeleteAndRestore", testDeleteAndRestore},
		{"BulkRead", testBulkRead},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newDir(t)
			if f.Directory == nil || f.Domain == "" {
				t.Fatal("conformance: the fixture needs a Directory and a Domain")
			}
			tc.run(t, f)
		})
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// tag is a random suffix that keeps the objects of one run apart.
func tag(t *testing.T) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// Eventually retries check until it passes or settle is over; it runs
// check at least once.
func Eventually(t *testing.T, settle time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(settle)
	delay := 50 * time.Millisecond
	for {
		err := check()
		if err == nil {
			return
		}
		if !time.Now().Before(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(delay)
		delay = min(delay*2, 5*time.Second)
	}
}

// newUser is the create body of a test user with every kind of property
// the engine writes.
func newUser(f DirectoryFixture, role, tg string) provisioning.NewUser {
	return provisioning.NewUser{
		UserPrincipalName: fmt.Sprintf("conformance-%s-%s@%s", role, tg, f.Domain),
		MailNickname:      fmt.Sprintf("conformance-%s-%s", role, tg),
		AccountEnabled:    false,
		Attributes: map[string]string{
			"displayName": "Conformance " + role + " " + tg, "givenName": "Conformance", "surname": role,
			"employeeId": employeeID(role, tg), "jobTitle": "Tester", "department": "QA",
			"employeeOrgData/division": "Quality", "employeeOrgData/costCenter": "CC-" + tg,
			"employeeHireDate": "2026-01-05T08:00:00Z", "businessPhones": "+49 30 1234567",
			"usageLocation": "DE", "city": "Berlin",
		},
	}
}

func employeeID(role, tg string) string { return "c" + role[:1] + tg }

// create creates a user and soft-deletes it when the test ends.
func create(t *testing.T, f DirectoryFixture, nu provisioning.NewUser) provisioning.User {
	t.Helper()
	u, err := f.Directory.CreateUser(ctxFor(t), nu)
	if err != nil {
		t.Fatalf("CreateUser %s: %v", nu.UserPrincipalName, err)
	}
	if u.ID == "" {
		t.Fatalf("CreateUser %s returned no object id: %+v", nu.UserPrincipalName, u)
	}
	t.Cleanup(func() {
		if err := f.Directory.DeleteUser(context.Background(), u.ID); err != nil && !errors.Is(err, provisioning.ErrNotFound) {
			t.Errorf("cleanup: delete %s: %v", u.ID, err)
		}
	})
	return u
}

// wantKind checks that err is a *provisioning.DirectoryError of kind and
// matches the kind's sentinel.
func wantKind(t *testing.T, what string, err error, kind provisioning.ErrorKind) *provisioning.DirectoryError {
	t.Helper()
	var de *provisioning.DirectoryError
	if !errors.As(err, &de) {
		t.Fatalf("%s: want a *provisioning.DirectoryError of kind %s, got %T %v", what, kind, err, err)
	}
	if de.Kind != kind {
		t.Fatalf("%s: kind %s, want %s (%v)", what, de.Kind, kind, err)
	}
	sentinel := map[provisioning.ErrorKind]error{
		provisioning.KindNotFound: provisioning.ErrNotFound, provisioning.KindConflict: provisioning.ErrConflict,
		provisioning.KindRejected: provisioning.ErrRejected, provisioning.KindForbidden: provisioning.ErrForbidden,
	}[kind]
	if sentinel != nil && !errors.Is(err, sentinel) {
		t.Fatalf("%s: errors.Is(err, %v) is false for %v", what, sentinel, err)
	}
	return de
}

func findOne(ctx context.Context, d provisioning.Directory, key, value, wantID string) error {
	found, err := d.FindUsers(ctx, key, value)
	if err != nil {
		return err
	}
	if len(found) != 1 || found[0].ID != wantID {
		return fmt.Errorf("FindUsers(%s, %q) = %+v, want only %s", key, value, found, wantID)
	}
	return nil
}

// CreateUser stores every property it is given; GetUser, FindUsers and
// ListUsers read them back, with userType Member.
func testCreateAndRead(t *testing.T, f DirectoryFixture) {
	ctx, d, tg := ctxFor(t), f.Directory, tag(t)
	nu := newUser(f, "emp", tg)
	u := create(t, f, nu)
	if !strings.EqualFold(u.UserPrincipalName, nu.UserPrincipalName) || u.AccountEnabled {
		t.Fatalf("CreateUser returned %+v", u)
	}
	var got provisioning.User
	Eventually(t, f.Settle, "created user readable", func() error {
		var err error
		got, err = d.GetUser(ctx, u.ID)
		return err
	})
	if got.ID != u.ID || got.EmployeeID != employeeID("emp", tg) || got.AccountEnabled {
		t.Errorf("GetUser = %+v", got)
	}
	if got.UserType != provisioning.UserTypeMember {
		t.Errorf("created user has userType %q, want %q", got.UserType, provisioning.UserTypeMember)
	}
	if got.OnPremisesSync || got.ManagerID != "" || got.ManagerEmployeeID != "" {
		t.Errorf("created user: synced=%t manager=%q/%q", got.OnPremisesSync, got.ManagerID, got.ManagerEmployeeID)
	}
	for k, v := range nu.Attributes {
		if got.Attributes[k] != v && !(k == "employeeId" && got.EmployeeID == v) {
			t.Errorf("attribute %s = %q, want %q", k, got.Attributes[k], v)
		}
	}
	Eventually(t, f.Settle, "created user listed", func() error {
		all, err := d.ListUsers(ctx)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(all, func(x provisioning.User) bool { return x.ID == u.ID })
		if i < 0 {
			return fmt.Errorf("ListUsers lacks %s", u.ID)
		}
		if all[i].EmployeeID != employeeID("emp", tg) || all[i].Attributes["jobTitle"] != "Tester" {
			return fmt.Errorf("ListUsers entry %+v", all[i])
		}
		return nil
	})
}

// FindUsers finds by employeeId and userPrincipalName (case-insensitively,
// as Graph's eq), answers no match with an empty slice and refuses other
// keys.
func testFindUsers(t *testing.T, f DirectoryFixture) {
	ctx, d, tg := ctxFor(t), f.Directory, tag(t)
	u := create(t, f, newUser(f, "emp", tg))
	Eventually(t, f.Settle, "find by employeeId and UPN", func() error {
		if err := findOne(ctx, d, "employeeId", employeeID("emp", tg), u.ID); err != nil {
			return err
		}
		if err := findOne(ctx, d, "userPrincipalName", u.UserPrincipalName, u.ID); err != nil {
			return err
		}
		return findOne(ctx, d, "userPrincipalName", strings.ToUpper(u.UserPrincipalName), u.ID)
	})
	for _, key := range []string{"employeeId", "userPrincipalName", "mail"} {
		found, err := d.FindUsers(ctx, key, "nobody-"+tg+"@"+f.Domain)
		if err != nil || found == nil || len(found) != 0 {
			t.Errorf("FindUsers(%s) without a match = %#v, %v; want an empty slice and no error", key, found, err)
		}
	}
	if _, err := d.FindUsers(ctx, "displayName", "x"); err == nil {
		t.Error("FindUsers accepted the key displayName")
	}
	if f.SeedUser == nil {
		t.Log("no SeedUser hook: look-up by mail not checked")
		return
	}
	mail := "conformance-mail-" + tg + "@" + f.Domain
	id := f.SeedUser(t, provisioning.User{UserPrincipalName: "conformance-seed-" + tg + "@" + f.Domain, Mail: mail, EmployeeID: employeeID("seed", tg)})
	Eventually(t, f.Settle, "find by mail", func() error {
		if err := findOne(ctx, d, "mail", mail, id); err != nil {
			return err
		}
		return findOne(ctx, d, "mail", strings.ToUpper(mail), id)
	})
}

// UpdateUser patches only the given properties; nil clears one; one member
// of employeeOrgData changes without losing the other.
func testUpdateUser(t *testing.T, f DirectoryFixture) {
	ctx, d, tg := ctxFor(t), f.Directory, tag(t)
	u := create(t, f, newUser(f, "emp", tg))
	lead, assurance := "Lead tester", "Assurance"
	if err := d.UpdateUser(ctx, u.ID, map[string]*string{"jobTitle": &lead, "city": nil, "employeeOrgData/division": &assurance}); err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	if err := d.UpdateUser(ctx, u.ID, nil); err != nil {
		t.Fatalf("UpdateUser without changes: %v", err)
	}
	empty := ""
	wantKind(t, "UpdateUser with an empty string (clear with nil)", d.UpdateUser(ctx, u.ID, map[string]*string{"department": &empty}), provisioning.KindRejected)
	Eventually(t, f.Settle, "update visible", func() error {
		got, err := d.GetUser(ctx, u.ID)
		if err != nil {
			return err
		}
		a := got.Attributes
		if a["jobTitle"] != lead || a["city"] != "" || a["employeeOrgData/division"] != assurance ||
			a["employeeOrgData/costCenter"] != "CC-"+tg || a["department"] != "QA" || a["displayName"] != "Conformance emp "+tg {
			return fmt.Errorf("attributes after update: %v", a)
		}
		return nil
	})
}

// SetAccountEnabled switches sign-in both ways; RevokeSessions succeeds.
func testEnableAndRevoke(t *testing.T, f DirectoryFixture) {
	ctx, d, tg := ctxFor(t), f.Directory, tag(t)
	u := create(t, f, newUser(f, "emp", tg))
	for _, enabled := range []bool{true, false} {
		if err := d.SetAccountEnabled(ctx, u.ID, enabled); err != nil {
			t.Fatalf("SetAccountEnabled(%t): %v", enabled, err)
		}
		Eventually(t, f.Settle, fmt.Sprintf("accountEnabled=%t visible", enabled), func() error {
			got, err := d.GetUser(ctx, u.ID)
			if err == nil && got.AccountEnabled != enabled {
				err = fmt.Errorf("accountEnabled=%t", got.AccountEnabled)
			}
			return err
		})
	}
	if err := d.RevokeSessions(ctx, u.ID); err != nil {
		t.Fatalf("RevokeSessions: %v", err)
	}
}

// SetManager sets the manager, which FindUsers, GetUser and ListUsers
// expand to ManagerID and ManagerEmployeeID; "" removes it, also when
// there is none.
func testManager(t *testing.T, f DirectoryFixture) {
	ctx, d, tg := ctxFor(t), f.Directory, tag(t)
	boss := create(t, f, newUser(f, "boss", tg))
	emp := create(t, f, newUser(f, "emp", tg))
	if err := d.SetManager(ctx, emp.ID, boss.ID); err != nil {
		t.Fatalf("SetManager: %v", err)
	}
	check := func(where string, u provisioning.User) error {
		if u.ManagerID != boss.ID || u.ManagerEmployeeID != employeeID("boss", tg) {
			return fmt.Errorf("%s: manager %q/%q, want %s/%s", where, u.ManagerID, u.ManagerEmployeeID, boss.ID, employeeID("boss", tg))
		}
		return nil
	}
	Eventually(t, f.Settle, "manager expanded", func() error {
		got, err := d.GetUser(ctx, emp.ID)
		if err != nil {
			return err
		}
		if err := check("GetUser", got); err != nil {
			return err
		}
		found, err := d.FindUsers(ctx, "employeeId", employeeID("emp", tg))
		if err != nil {
			return err
		}
		if len(found) != 1 {
			return fmt.Errorf("FindUsers found %d", len(found))
		}
		if err := check("FindUsers", found[0]); err != nil {
			return err
		}
		all, err := d.ListUsers(ctx)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(all, func(x provisioning.User) bool { return x.ID == emp.ID })
		if i < 0 {
			return errors.New("ListUsers lacks the employee")
		}
		return check("ListUsers", all[i])
	})
	if err := d.SetManager(ctx, emp.ID, ""); err != nil {
		t.Fatalf("remove manager: %v", err)
	}
	Eventually(t, f.Settle, "manager removed", func() error {
		got, err := d.GetUser(ctx, emp.ID)
		if err == nil && (got.ManagerID != "" || got.ManagerEmployeeID != "") {
			err = fmt.Errorf("manager still %q/%q", got.ManagerID, got.ManagerEmployeeID)
		}
		return err
	})
	if err := d.SetManager(ctx, emp.ID, ""); err != nil {
		t.Fatalf("remove an absent manager: %v", err)
	}
}

// ListUsers returns only users that carry an employeeId.
func testListUsers(t *testing.T, f DirectoryFixture) {
	ctx, d, tg := ctxFor(t), f.Directory, tag(t)
	with := create(t, f, newUser(f, "emp", tg))
	nu := newUser(f, "other", tg)
	delete(nu.Attributes, "employeeId")
	without := create(t, f, nu)
	Eventually(t, f.Settle, "ListUsers", func() error {
		all, err := d.ListUsers(ctx)
		if err != nil {
			return err
		}
		for _, u := range all {
			if u.EmployeeID == "" {
				return fmt.Errorf("ListUsers returned %s, which has no employeeId", u.UserPrincipalName)
			}
			if u.ID == without.ID {
				return errors.New("ListUsers returned the user without employeeId")
			}
		}
		if !slices.ContainsFunc(all, func(u provisioning.User) bool { return u.ID == with.ID }) {
			return errors.New("ListUsers lacks the user with employeeId")
		}
		return nil
	})
}

// A create whose UPN is taken is a KindConflict naming userPrincipalName
// (or no target): the engine then tries its next candidate.
func testCreateConflict(t *testing.T, f DirectoryFixture) {
	ctx, d, tg := ctxFor(t), f.Directory, tag(t)
	u := create(t, f, newUser(f, "emp", tg))
	dup := provisioning.NewUser{UserPrincipalName: u.UserPrincipalName, MailNickname: "conformance-dup-" + tg,
		Attributes: map[string]string{"displayName": "Duplicate " + tg, "employeeId": employeeID("dup", tg)}}
	var err error
	Eventually(t, f.Settle, "duplicate UPN refused", func() error {
		var got provisioning.User
		got, err = d.CreateUser(ctx, dup)
		if err == nil {
			// Never expected; do not leave it behind.
			_ = d.DeleteUser(context.Background(), got.ID)
			return fmt.Errorf("a second user %s was created with a taken UPN", got.ID)
		}
		return nil
	})
	de := wantKind(t, "duplicate UPN", err, provisioning.KindConflict)
	if de.Target != "" && !strings.EqualFold(de.Target, "userPrincipalName") {
		t.Errorf("UPN conflict names target %q, want userPrincipalName (or none)", de.Target)
	}
	found, ferr := d.FindUsers(ctx, "employeeId", employeeID("dup", tg))
	if ferr != nil || len(found) != 0 {
		t.Errorf("the refused create left %+v (%v)", found, ferr)
	}
}

// Reads and writes of objects that do not exist are KindNotFound.
func testNotFound(t *testing.T, f DirectoryFixture) {
	ctx, d, tg := ctxFor(t), f.Directory, tag(t)
	ghost := "0badc0de-0000-4000-8000-0000" + tg
	u := create(t, f, newUser(f, "emp", tg))
	Eventually(t, f.Settle, "created user readable", func() error {
		_, err := d.GetUser(ctx, u.ID)
		return err
	})
	_, err := d.GetUser(ctx, ghost)
	wantKind(t, "GetUser of an unknown id", err, provisioning.KindNotFound)
	wantKind(t, "SetAccountEnabled of an unknown id", d.SetAccountEnabled(ctx, ghost, false), provisioning.KindNotFound)
	wantKind(t, "UpdateUser of an unknown id", d.UpdateUser(ctx, ghost, map[string]*string{"jobTitle": nil}), provisioning.KindNotFound)
	wantKind(t, "SetManager to an unknown manager", d.SetManager(ctx, u.ID, ghost), provisioning.KindNotFound)
	wantKind(t, "RestoreUser of a user that is not deleted", d.RestoreUser(ctx, u.ID), provisioning.KindNotFound)
	wantKind(t, "RemoveGroupMember from an unknown group", d.RemoveGroupMember(ctx, ghost, u.ID), provisioning.KindNotFound)
	_, err = d.GetGroup(ctx, ghost)
	wantKind(t, "GetGroup of an unknown id", err, provisioning.KindNotFound)
	_, err = d.ResolveGroup(ctx, "conformance-no-such-group-"+tg)
	wantKind(t, "ResolveGroup of an unknown name", err, provisioning.KindNotFound)
}

// AddGroupMembers adds (already-a-member is success), ListGroupMembers and
// ListUserGroups show it, RemoveGroupMember removes (not-a-member is
// success).
func testGroupMembership(t *testing.T, f DirectoryFixture) {
	if f.Group == "" {
		t.Fatal("conformance: the fixture needs a Group")
	}
	ctx, d, tg := ctxFor(t), f.Directory, tag(t)
	g, err := d.GetGroup(ctx, f.Group)
	if err != nil || g.ID != f.Group || g.Unmanageable != "" {
		t.Fatalf("GetGroup(%s) = %+v, %v; want a manageable group", f.Group, g, err)
	}
	emp := create(t, f, newUser(f, "emp", tg))
	boss := create(t, f, newUser(f, "boss", tg))
	t.Cleanup(func() {
		for _, id := range []string{emp.ID, boss.ID} {
			_ = d.RemoveGroupMember(context.Background(), f.Group, id)
		}
	})
	for i := range 2 { // the second add is already-a-member: success
		if err := d.AddGroupMembers(ctx, f.Group, []string{emp.ID, boss.ID}); err != nil {
			t.Fatalf("AddGroupMembers (#%d): %v", i+1, err)
		}
	}
	Eventually(t, f.Settle, "membership visible", func() error {
		m, err := d.ListGroupMembers(ctx, f.Group)
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
		if !slices.Contains(ug, f.Group) {
			return fmt.Errorf("memberOf %v", ug)
		}
		return nil
	})
	for i := range 2 { // the second remove is not-a-member: success
		if err := d.RemoveGroupMember(ctx, f.Group, boss.ID); err != nil {
			t.Fatalf("RemoveGroupMember (#%d): %v", i+1, err)
		}
	}
	if err := d.RemoveGroupMember(ctx, f.Group, "0badc0de-0000-4000-8000-0000"+tg); err != nil {
		t.Fatalf("RemoveGroupMember of a user that is no member: %v", err)
	}
	Eventually(t, f.Settle, "removal visible", func() error {
		m, err := d.ListGroupMembers(ctx, f.Group)
		if err != nil {
			return err
		}
		if slices.Contains(m, boss.ID) || !slices.Contains(m, emp.ID) {
			return fmt.Errorf("members after removing %s: %v", boss.ID, m)
		}
		ug, err := d.ListUserGroups(ctx, boss.ID)
		if err != nil {
			return err
		}
		if slices.Contains(ug, f.Group) {
			return fmt.Errorf("memberOf of the removed user: %v", ug)
		}
		return nil
	})
}

// ResolveGroup finds a group by display name; two groups of one name are
// KindConflict.
func testResolveGroup(t *testing.T, f DirectoryFixture) {
	ctx, d, tg := ctxFor(t), f.Directory, tag(t)
	if f.Group != "" {
		g, err := d.GetGroup(ctx, f.Group)
		if err != nil {
			t.Fatalf("GetGroup: %v", err)
		}
		if r, err := d.ResolveGroup(ctx, g.DisplayName); err != nil {
			// Another group of the same name in a real tenant is possible.
			if !errors.Is(err, provisioning.ErrConflict) {
				t.Errorf("ResolveGroup(%q): %v", g.DisplayName, err)
			}
		} else if r.ID != g.ID {
			t.Errorf("ResolveGroup(%q) = %s, want %s", g.DisplayName, r.ID, g.ID)
		}
	}
	if f.SeedGroup == nil {
		t.Skip("no SeedGroup hook: ambiguous display names not checked")
	}
	name := "Conformance twins " + tg
	first := f.SeedGroup(t, name, false)
	Eventually(t, f.Settle, "seeded group resolvable", func() error {
		g, err := d.ResolveGroup(ctx, name)
		if err == nil && (g.ID != first || g.Unmanageable != "") {
			err = fmt.Errorf("ResolveGroup = %+v, want %s", g, first)
		}
		return err
	})
	f.SeedGroup(t, name, false)
	var err error
	Eventually(t, f.Settle, "two groups of one name", func() error {
		_, err = d.ResolveGroup(ctx, name)
		if err == nil {
			return errors.New("ResolveGroup picked one of two groups of the same name")
		}
		return nil
	})
	wantKind(t, "ResolveGroup of an ambiguous name", err, provisioning.KindConflict)
}

// A group whose membership Graph cannot write says so and why, read by id
// or by name.
func testUnmanageableGroup(t *testing.T, f DirectoryFixture) {
	if f.SeedGroup == nil {
		t.Skip("no SeedGroup hook")
	}
	ctx, d, tg := ctxFor(t), f.Directory, tag(t)
	name := "Conformance list " + tg
	id := f.SeedGroup(t, name, true)
	Eventually(t, f.Settle, "unmanageable group read", func() error {
		g, err := d.GetGroup(ctx, id)
		if err != nil {
			return err
		}
		if g.Unmanageable == "" || g.DisplayName != name {
			return fmt.Errorf("GetGroup = %+v, want a reason it cannot be managed", g)
		}
		r, err := d.ResolveGroup(ctx, name)
		if err != nil {
			return err
		}
		if r.ID != id || r.Unmanageable == "" {
			return fmt.Errorf("ResolveGroup = %+v", r)
		}
		return nil
	})
}

// Guests are read as userType Guest and synced accounts with
// OnPremisesSync, by every read: the engine never adopts them through UPN
// or mail.
func testGuestsAndSynced(t *testing.T, f DirectoryFixture) {
	if f.SeedUser == nil {
		t.Skip("no SeedUser hook")
	}
	ctx, d, tg := ctxFor(t), f.Directory, tag(t)
	guestMail := "guest-" + tg + "@partner.example"
	guest := f.SeedUser(t, provisioning.User{UserPrincipalName: "guest-" + tg + "_partner.example#EXT#@" + f.Domain, Mail: guestMail,
		EmployeeID: employeeID("guest", tg), UserType: provisioning.UserTypeGuest})
	synced := f.SeedUser(t, provisioning.User{UserPrincipalName: "conformance-ad-" + tg + "@" + f.Domain, EmployeeID: employeeID("ad", tg), OnPremisesSync: true})
	want := func(where string, u provisioning.User) error {
		switch u.ID {
		case guest:
			if u.UserType != provisioning.UserTypeGuest {
				return fmt.Errorf("%s: guest read with userType %q", where, u.UserType)
			}
		case synced:
			if u.UserType != provisioning.UserTypeMember || !u.OnPremisesSync {
				return fmt.Errorf("%s: synced member read with userType %q, synced=%t", where, u.UserType, u.OnPremisesSync)
			}
		}
		return nil
	}
	Eventually(t, f.Settle, "seeded users read", func() error {
		for _, id := range []string{guest, synced} {
			u, err := d.GetUser(ctx, id)
			if err != nil {
				return err
			}
			if err := want("GetUser", u); err != nil {
				return err
			}
		}
		found, err := d.FindUsers(ctx, "mail", guestMail)
		if err != nil {
			return err
		}
		if len(found) != 1 || found[0].ID != guest {
			return fmt.Errorf("FindUsers(mail) = %+v", found)
		}
		if err := want("FindUsers", found[0]); err != nil {
			return err
		}
		all, err := d.ListUsers(ctx)
		if err != nil {
			return err
		}
		seen := 0
		for _, u := range all {
			if u.ID == guest || u.ID == synced {
				seen++
				if err := want("ListUsers", u); err != nil {
					return err
				}
			}
		}
		if seen != 2 {
			return fmt.Errorf("ListUsers returned %d of the 2 seeded users", seen)
		}
		return nil
	})
}

// DeleteUser soft-deletes: the user disappears from every read;
// RestoreUser brings it back under the same object id.
func testDeleteAndRestore(t *testing.T, f DirectoryFixture) {
	ctx, d, tg := ctxFor(t), f.Directory, tag(t)
	u := create(t, f, newUser(f, "emp", tg))
	Eventually(t, f.Settle, "created user readable", func() error {
		_, err := d.GetUser(ctx, u.ID)
		return err
	})
	if err := d.DeleteUser(ctx, u.ID); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	Eventually(t, f.Settle, "deleted user gone", func() error {
		if _, err := d.GetUser(ctx, u.ID); !errors.Is(err, provisioning.ErrNotFound) {
			return fmt.Errorf("GetUser of a deleted user: %v", err)
		}
		found, err := d.FindUsers(ctx, "employeeId", employeeID("emp", tg))
		if err != nil {
			return err
		}
		if len(found) != 0 {
			return fmt.Errorf("FindUsers still finds %+v", found)
		}
		all, err := d.ListUsers(ctx)
		if err != nil {
			return err
		}
		if slices.ContainsFunc(all, func(x provisioning.User) bool { return x.ID == u.ID }) {
			return errors.New("ListUsers still lists the deleted user")
		}
		return nil
	})
	Eventually(t, f.Settle, "restore", func() error { return d.RestoreUser(ctx, u.ID) })
	Eventually(t, f.Settle, "restored user readable", func() error {
		got, err := d.GetUser(ctx, u.ID)
		if err == nil && (got.EmployeeID != employeeID("emp", tg) || !strings.EqualFold(got.UserPrincipalName, u.UserPrincipalName)) {
			err = fmt.Errorf("restored user %+v", got)
		}
		return err
	})
}
