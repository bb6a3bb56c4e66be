package conformance

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/personio-entra/personio-entra/provisioning"
)

// testBulkRead checks provisioning.BulkReader, for directories that have it
// (skipped otherwise): ListUsersDelta lists what ListUsers lists, with a
// link; GroupMembersRound lists the group's members by group id, with a
// link; and, for a DeltaDirectory, both links carry on from the read: a
// later change shows up when they are followed.
func testBulkRead(t *testing.T, f DirectoryFixture) {
	br, ok := f.Directory.(provisioning.BulkReader)
	if !ok {
		t.Skip("the directory has no BulkReader")
	}
	if f.Group == "" {
		t.Fatal("conformance: the fixture needs a Group")
	}
	ctx, d, tg := ctxFor(t), f.Directory, tag(t)
	emp := create(t, f, newUser(f, "emp", tg))
	other := create(t, f, newUser(f, "other", tg))
	t.Cleanup(func() {
		for _, id := range []string{emp.ID, other.ID} {
			_ = d.RemoveGroupMember(ctxFor(t), f.Group, id)
		}
	})
	if err := d.AddGroupMembers(ctx, f.Group, []string{emp.ID}); err != nil {
		t.Fatalf("AddGroupMembers: %v", err)
	}
	var ulink, glink string
	Eventually(t, f.Settle, "ListUsersDelta and GroupMembersRound", func() error {
		users, link, err := br.ListUsersDelta(ctx)
		if err != nil {
			return err
		}
		if link == "" {
			return errors.New("ListUsersDelta returned no link")
		}
		i := slices.IndexFunc(users, func(u provisioning.User) bool { return u.ID == emp.ID })
		if i < 0 || users[i].EmployeeID != emp.EmployeeID {
			return errors.New("ListUsersDelta lacks the created user or its employeeId")
		}
		members, gl, err := br.GroupMembersRound(ctx, []string{f.Group})
		if err != nil {
			return err
		}
		if gl == "" {
			return errors.New("GroupMembersRound returned no link")
		}
		if !slices.Contains(members[f.Group], emp.ID) || slices.Contains(members[f.Group], other.ID) {
			return fmt.Errorf("GroupMembersRound listed %d members of the group; want the added user and not the other", len(members[f.Group]))
		}
		ulink, glink = link, gl
		return nil
	})
	if _, _, err := br.GroupMembersRound(ctx, nil); err == nil {
		t.Fatal("GroupMembersRound of no group: no error")
	}

	dd, ok := d.(provisioning.DeltaDirectory)
	if !ok {
		return
	}
	if err := d.AddGroupMembers(ctx, f.Group, []string{other.ID}); err != nil {
		t.Fatalf("AddGroupMembers: %v", err)
	}
	title := "Changed after the read " + tg
	if err := d.UpdateUser(ctx, other.ID, map[string]*string{"jobTitle": &title}); err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	Eventually(t, f.Settle, "the links of the read", func() error {
		uc, _, err := dd.UsersDelta(ctx, ulink)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(uc, func(c provisioning.UserChange) bool { return c.User.ID == other.ID }) {
			return errors.New("the users link of the read does not report the user changed after it")
		}
		mc, _, err := dd.GroupMembersDelta(ctx, []string{f.Group}, glink)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(mc, func(c provisioning.MemberChange) bool { return c.UserID == other.ID && !c.Removed }) {
			return errors.New("the group link of the read does not report the member added after it")
		}
		return nil
	})
}
