package provisioning

import (
	"context"
	"errors"
)

// groupCacheDirectory is the engine's view of the Directory: every call
// passes through, and when a call on a group id answers not found and a
// read of that group confirms it is gone, the engine forgets the group it
// resolved to that id. A managed group deleted and recreated under the same
// display name is then resolved again on the next reconcile instead of
// failing every run until a restart.
//
// ListUserGroups takes a user id, so its 404 is about the user; a deleted
// group simply no longer shows up in its answer, and the follow-up write to
// the stale id (AddGroupMembers) is what notices.
type groupCacheDirectory struct {
	Directory
	e *Engine
}

func (d groupCacheDirectory) ListGroupMembers(ctx context.Context, groupID string) ([]string, error) {
	ids, err := d.Directory.ListGroupMembers(ctx, groupID)
	d.checkGroup(ctx, groupID, err)
	return ids, err
}

func (d groupCacheDirectory) AddGroupMembers(ctx context.Context, groupID string, userIDs []string) error {
	err := d.Directory.AddGroupMembers(ctx, groupID, userIDs)
	d.checkGroup(ctx, groupID, err)
	return err
}

func (d groupCacheDirectory) RemoveGroupMember(ctx context.Context, groupID, userID string) error {
	err := d.Directory.RemoveGroupMember(ctx, groupID, userID)
	d.checkGroup(ctx, groupID, err)
	return err
}

// checkGroup forgets groupID when err is a not-found and the group is gone.
// A 404 on a membership call may name the member rather than the group
// (docs/graph-behaviour.md#group-membership: the 404 of a member reference does not say which object is
// missing), so the group is read before it is forgotten.
func (d groupCacheDirectory) checkGroup(ctx context.Context, groupID string, err error) {
	if !errors.Is(err, ErrNotFound) || !d.e.cachesGroupID(groupID) {
		return
	}
	if _, gerr := d.Directory.GetGroup(ctx, groupID); errors.Is(gerr, ErrNotFound) {
		d.e.forgetGroupID(groupID)
	}
}

// cachesGroupID reports whether a managed group key resolved to id.
func (e *Engine) cachesGroupID(id string) bool {
	e.groupsMu.Lock()
	defer e.groupsMu.Unlock()
	for _, st := range e.groups {
		if st.err == nil && st.ref.ID == id {
			return true
		}
	}
	return false
}

// forgetGroupID drops every managed group key resolved to id, so that the
// next managedGroups call resolves the key again.
func (e *Engine) forgetGroupID(id string) {
	e.groupsMu.Lock()
	defer e.groupsMu.Unlock()
	for key, st := range e.groups {
		if st.err == nil && st.ref.ID == id {
			delete(e.groups, key)
			e.log.Warn("managed group no longer exists; it is resolved again on the next run", "group", key, "group_id", id)
		}
	}
}
