package entra

import (
	"context"
	"fmt"
	"slices"

	"github.com/microsoftgraph/msgraph-sdk-go/groups"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/personio-entra/personio-entra/provisioning"
)

// membersPerRequest is Graph's limit for members@odata.bind
// (https://learn.microsoft.com/en-us/graph/api/group-post-members).
const membersPerRequest = 20

var groupSelect = []string{"id", "displayName", "groupTypes", "mailEnabled", "securityEnabled",
	"membershipRule", "onPremisesSyncEnabled", "isAssignableToRole"}

// unmanageable decides whether Graph can write the group's membership
// (docs/graph-behaviour.md#groups-graph-cannot-write) and, if not, says why and what to
// use instead.
func unmanageable(g models.Groupable, roleManagement bool) string {
	types := g.GetGroupTypes()
	mail := g.GetMailEnabled() != nil && *g.GetMailEnabled()
	sec := g.GetSecurityEnabled() != nil && *g.GetSecurityEnabled()
	switch {
	case g.GetOnPremisesSyncEnabled() != nil && *g.GetOnPremisesSyncEnabled():
		return "the group is synchronised from on-premises Active Directory, and Graph cannot change the membership of synced groups; manage it in on-premises AD or use a cloud-only security group or Microsoft 365 group"
	case slices.Contains(types, "DynamicMembership") || deref(g.GetMembershipRule()) != "":
		return fmt.Sprintf("the group has dynamic membership (rule %q), so its members come from the rule and cannot be added or removed; use an assigned-membership group, or express the condition in the dynamic rule and drop the group from the rules file", deref(g.GetMembershipRule()))
	case mail && !slices.Contains(types, "Unified") && sec:
		return "the group is a mail-enabled security group, whose membership Graph cannot change (it is managed in Exchange Online); use a Microsoft 365 group for an email group, or a security group that is not mail-enabled for access"
	case mail && !slices.Contains(types, "Unified"):
		return "the group is a distribution list, whose membership Graph cannot change (it is managed in Exchange Online); use a Microsoft 365 group for an email group"
	case g.GetIsAssignableToRole() != nil && *g.GetIsAssignableToRole() && !roleManagement:
		return "the group is role-assignable: changing its members needs the application permission RoleManagement.ReadWrite.Directory in addition to GroupMember.ReadWrite.All; grant it and set the role-assignable option, or use a group that is not role-assignable"
	}
	return ""
}

func (d *Directory) toGroup(g models.Groupable) provisioning.Group {
	return provisioning.Group{
		ID:           deref(g.GetId()),
		DisplayName:  deref(g.GetDisplayName()),
		Unmanageable: unmanageable(g, d.roleMgmt),
	}
}

// GetGroup reads a group and decides whether its membership can be managed.
func (d *Directory) GetGroup(ctx context.Context, id string) (provisioning.Group, error) {
	ctx = withOp(ctx, "get_group")
	g, err := d.client.Groups().ByGroupId(id).Get(ctx, &groups.GroupItemRequestBuilderGetRequestConfiguration{
		QueryParameters: &groups.GroupItemRequestBuilderGetQueryParameters{Select: groupSelect},
	})
	if err != nil {
		return provisioning.Group{}, d.fail("get group", err)
	}
	return d.toGroup(g), nil
}

// ResolveGroup finds a group by display name: none is ErrNotFound, several
// are ErrConflict (the rules must then name the group by object id).
func (d *Directory) ResolveGroup(ctx context.Context, displayName string) (provisioning.Group, error) {
	const op = "resolve group"
	ctx = withOp(ctx, "resolve_group")
	filter := fmt.Sprintf("displayName eq '%s'", escapeOData(displayName))
	top := int32(2)
	resp, err := d.client.Groups().Get(ctx, &groups.GroupsRequestBuilderGetRequestConfiguration{
		QueryParameters: &groups.GroupsRequestBuilderGetQueryParameters{Filter: &filter, Select: groupSelect, Top: &top},
	})
	if err != nil {
		return provisioning.Group{}, d.fail(op, err)
	}
	found := resp.GetValue()
	switch {
	case len(found) == 0:
		return provisioning.Group{}, &provisioning.DirectoryError{Kind: provisioning.KindNotFound, Op: op,
			Message: fmt.Sprintf("no group is named %q", displayName)}
	case len(found) > 1 || resp.GetOdataNextLink() != nil:
		return provisioning.Group{}, &provisioning.DirectoryError{Kind: provisioning.KindConflict, Op: op,
			Message: fmt.Sprintf("several groups are named %q; name the group by its object id in the rules", displayName)}
	}
	return d.toGroup(found[0]), nil
}

// ListGroupMembers returns the ids of the group's direct user members
// (GET /groups/{id}/members/microsoft.graph.user, $select=id, $top=999),
// paged to the end: one request per 999 members.
func (d *Directory) ListGroupMembers(ctx context.Context, groupID string) ([]string, error) {
	ctx = withOp(ctx, "list_group_members")
	top := int32(999)
	b := d.client.Groups().ByGroupId(groupID).Members().GraphUser()
	resp, err := b.Get(ctx, &groups.ItemMembersGraphUserRequestBuilderGetRequestConfiguration{
		QueryParameters: &groups.ItemMembersGraphUserRequestBuilderGetQueryParameters{Select: []string{"id"}, Top: &top},
	})
	out := []string{}
	for {
		if err != nil {
			return nil, d.fail("list group members", err)
		}
		for _, u := range resp.GetValue() {
			if id := deref(u.GetId()); id != "" {
				out = append(out, id)
			}
		}
		next := resp.GetOdataNextLink()
		if next == nil || *next == "" {
			return out, nil
		}
		resp, err = b.WithUrl(*next).Get(ctx, nil)
	}
}

// ListUserGroups returns the ids of the groups the user is a direct member
// of (GET /users/{id}/memberOf/microsoft.graph.group, $select=id, $top=999).
func (d *Directory) ListUserGroups(ctx context.Context, userID string) ([]string, error) {
	ctx = withOp(ctx, "list_user_groups")
	top := int32(999)
	b := d.client.Users().ByUserId(userID).MemberOf().GraphGroup()
	var resp models.GroupCollectionResponseable
	err := d.replicationRetry(ctx, []string{userID}, func() error {
		var err error
		resp, err = b.Get(ctx, &users.ItemMemberOfGraphGroupRequestBuilderGetRequestConfiguration{
			QueryParameters: &users.ItemMemberOfGraphGroupRequestBuilderGetQueryParameters{Select: []string{"id"}, Top: &top},
		})
		if err != nil {
			return d.fail("list user groups", err)
		}
		return nil
	})
	out := []string{}
	for {
		if err != nil {
			return nil, err
		}
		for _, g := range resp.GetValue() {
			if id := deref(g.GetId()); id != "" {
				out = append(out, id)
			}
		}
		next := resp.GetOdataNextLink()
		if next == nil || *next == "" {
			return out, nil
		}
		resp, err = b.WithUrl(*next).Get(ctx, nil)
		if err != nil {
			err = d.fail("list user groups", err)
		}
	}
}

// AddGroupMembers adds users 20 per PATCH (members@odata.bind). That call is
// all-or-nothing, so when a chunk fails because someone is already a member
// the chunk is re-sent one member at a time, where already-a-member counts
// as success (docs/graph-behaviour.md#group-membership).
func (d *Directory) AddGroupMembers(ctx context.Context, groupID string, userIDs []string) error {
	ctx = withOp(ctx, "add_group_members")
	for chunk := range slices.Chunk(userIDs, membersPerRequest) {
		err := d.replicationRetry(ctx, chunk, func() error { return d.bindMembers(ctx, groupID, chunk) })
		if err == nil {
			continue
		}
		if g, ok := inspect(unwrapDE(err)); !ok || !g.isAlreadyMember() {
			return err
		}
		for _, id := range chunk {
			if err := d.replicationRetry(ctx, []string{id}, func() error { return d.addOne(ctx, groupID, id) }); err != nil {
				return err
			}
		}
	}
	return nil
}

func unwrapDE(err error) error {
	if de, ok := err.(*provisioning.DirectoryError); ok && de.Err != nil {
		return de.Err
	}
	return err
}

func (d *Directory) bindMembers(ctx context.Context, groupID string, ids []string) error {
	refs := make([]string, len(ids))
	for i, id := range ids {
		refs[i] = d.graphURL + "/directoryObjects/" + id
	}
	g := models.NewGroup()
	g.SetAdditionalData(map[string]any{"members@odata.bind": refs})
	if _, err := d.client.Groups().ByGroupId(groupID).Patch(ctx, g, nil); err != nil {
		return d.fail(fmt.Sprintf("add %d members", len(ids)), err)
	}
	return nil
}

func (d *Directory) addOne(ctx context.Context, groupID, userID string) error {
	ref := models.NewReferenceCreate()
	odataID := d.graphURL + "/directoryObjects/" + userID
	ref.SetOdataId(&odataID)
	err := d.client.Groups().ByGroupId(groupID).Members().Ref().Post(ctx, ref, nil)
	if err == nil {
		return nil
	}
	if g, ok := inspect(err); ok && g.isAlreadyMember() {
		return nil
	}
	return d.fail("add member", err)
}

// RemoveGroupMember removes one user (DELETE members/{id}/$ref). A 404 is
// "not a member" only when the group exists: the 404 text may name the
// group, so the group is read to tell the two apart
// (docs/graph-behaviour.md#group-membership).
func (d *Directory) RemoveGroupMember(ctx context.Context, groupID, userID string) error {
	ctx = withOp(ctx, "remove_group_member")
	err := d.client.Groups().ByGroupId(groupID).Members().ByDirectoryObjectId(userID).Ref().Delete(ctx, nil)
	if err == nil {
		return nil
	}
	if g, ok := inspect(err); !ok || g.status != 404 {
		return d.fail("remove member", err)
	}
	if _, gerr := d.GetGroup(ctx, groupID); gerr != nil {
		return gerr
	}
	return nil
}
