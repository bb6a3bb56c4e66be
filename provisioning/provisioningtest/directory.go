// Package provisioningtest holds in-memory implementations of the engine's
// collaborators (provisioning.Directory, provisioning.Source, a queue and
// scheduler) for tests that need no network: no Graph, no Personio, no NATS.
//
// Directory follows the contract documented on provisioning.Directory and
// passes the same conformance suite (provisioning/conformance) as the Entra
// adapter against the Graph simulator. Besides the interface it has a
// seeding and inspection API for tests (AddUser, AddGroup, User, IsMember,
// Writes, Fail...).
package provisioningtest

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/personio-entra/personio-entra/provisioning"
)

// Write is one write the directory accepted (see Directory.WriteLog).
type Write struct {
	Op      string // the Directory method: "CreateUser", "AddGroupMembers", ...
	UserID  string // the user written (for AddGroupMembers: the users, comma-separated)
	GroupID string // for group membership writes
}

func (w Write) String() string {
	if w.GroupID != "" {
		return w.Op + " " + w.GroupID + " " + w.UserID
	}
	return w.Op + " " + w.UserID
}

// Directory is an in-memory provisioning.Directory: immediately consistent
// unless a test turns the replication lag on (replication.go), every write
// counted. The zero value is not
// usable; call NewDirectory.
type Directory struct {
	mu      sync.Mutex
	next    int
	users   map[string]*provisioning.User
	deleted map[string]*provisioning.User // soft-deleted, restorable
	groups  map[string]provisioning.Group
	members map[string]map[string]bool // group id → user ids
	writes  []Write
	faults  map[string]error // method → error it fails with
	auth    authState        // authentication methods and sent mail (authmethods.go)
	// delta: every change in order (see delta.go)
	changes      []change
	seq          int
	expiredBelow int
	// lifecycle.go: deletion times, the tenant's subscriptions
	deletedAt map[string]time.Time
	skus      []provisioning.SKU
	repl      replState // replication lag and lost answers (replication.go)
}

// NewDirectory returns an empty directory.
func NewDirectory() *Directory {
	return &Directory{
		users: map[string]*provisioning.User{}, deleted: map[string]*provisioning.User{},
		groups: map[string]provisioning.Group{}, members: map[string]map[string]bool{},
		faults: map[string]error{}, deletedAt: map[string]time.Time{},
	}
}

func (d *Directory) newID(prefix string) string {
	d.next++
	return fmt.Sprintf("%s-0000-4000-8000-%012d", prefix, d.next)
}

// AddUser seeds a user (no write is counted) and returns its object id.
// An empty ID is generated; an empty UserType is Member (Graph's default);
// seed guests with UserType provisioning.UserTypeGuest and accounts synced
// from on-premises with OnPremisesSync. ManagerEmployeeID is derived from
// ManagerID when read. The employeeId is kept in Attributes too.
func (d *Directory) AddUser(u provisioning.User) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if u.ID == "" {
		u.ID = d.newID("00000000")
	}
	if u.UserType == "" {
		u.UserType = provisioning.UserTypeMember
	}
	u.Attributes = maps.Clone(u.Attributes)
	if u.Attributes == nil {
		u.Attributes = map[string]string{}
	}
	if u.EmployeeID != "" {
		u.Attributes["employeeId"] = u.EmployeeID
	} else if v := u.Attributes["employeeId"]; v != "" {
		u.EmployeeID = v
	}
	u.ManagerEmployeeID = ""
	d.users[u.ID] = &u
	d.changed(change{userID: u.ID})
	return u.ID
}

// AddGroup seeds a group (an empty ID is generated) and returns its id. A
// group with an Unmanageable reason stands for one whose membership Graph
// cannot write (distribution list, mail-enabled security, dynamic, synced):
// membership writes to it fail with KindRejected.
func (d *Directory) AddGroup(g provisioning.Group) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if g.ID == "" {
		g.ID = d.newID("11111111")
	}
	d.groups[g.ID] = g
	if d.members[g.ID] == nil {
		d.members[g.ID] = map[string]bool{}
	}
	return g.ID
}

// User returns a copy of the user as the directory holds it (the zero User
// when there is no such live user).
func (d *Directory) User(id string) provisioning.User {
	d.mu.Lock()
	defer d.mu.Unlock()
	u, ok := d.users[id]
	if !ok {
		return provisioning.User{}
	}
	return d.copyOf(u)
}

// Exists reports whether a live (not deleted) user has the id.
func (d *Directory) Exists(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.users[id]
	return ok
}

// Deleted reports whether the user is soft-deleted (restorable).
func (d *Directory) Deleted(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.deleted[id]
	return ok
}

// IsMember reports whether the live user is a direct member of the group.
func (d *Directory) IsMember(groupID, userID string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, live := d.users[userID]
	return live && d.members[groupID][userID]
}

// Members returns the group's live members, sorted.
func (d *Directory) Members(groupID string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for u := range d.members[groupID] {
		if _, live := d.users[u]; live {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return out
}

// Writes is how many writes the directory accepted.
func (d *Directory) Writes() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.writes)
}

// WriteLog returns the accepted writes in order.
func (d *Directory) WriteLog() []Write {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.writes)
}

// ResetWrites forgets the writes counted so far.
func (d *Directory) ResetWrites() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.writes = nil
}

// Fail makes every later call of the named Directory method ("UpdateUser",
// "CreateUser", "AddGroupMembers", ...) fail with err, until Fail(method,
// nil). Use a *provisioning.DirectoryError to choose the kind.
func (d *Directory) Fail(method string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err == nil {
		delete(d.faults, method)
		return
	}
	d.faults[method] = err
}

// fault returns the injected error for method; d.mu is held.
func (d *Directory) fault(method string) error { return d.faults[method] }

func (d *Directory) record(op, userID, groupID string) {
	d.writes = append(d.writes, Write{Op: op, UserID: userID, GroupID: groupID})
	d.recordChange(op, userID, groupID)
}

func notFound(op, what string) error {
	return &provisioning.DirectoryError{Kind: provisioning.KindNotFound, Op: op, Code: "Request_ResourceNotFound", Message: what + " does not exist"}
}

// copyOf returns a detached copy with the manager expanded; d.mu is held.
func (d *Directory) copyOf(u *provisioning.User) provisioning.User {
	c := *u
	c.Attributes = maps.Clone(u.Attributes)
	c.Licenses = cloneLicenses(u.Licenses)
	c.ManagerEmployeeID = ""
	if m, ok := d.users[u.ManagerID]; ok {
		c.ManagerEmployeeID = m.EmployeeID
	} else {
		c.ManagerID = "" // a deleted manager is no manager
	}
	return c
}

func byID(a, b provisioning.User) int { return cmp.Compare(a.ID, b.ID) }

// FindUsers matches like Graph's $filter eq: case-insensitively, never on
// an empty property.
func (d *Directory) FindUsers(_ context.Context, key, value string) ([]provisioning.User, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.fault("FindUsers"); err != nil {
		return nil, err
	}
	out := []provisioning.User{}
	for _, u := range d.users {
		if d.hidden(u.ID) {
			continue
		}
		var v string
		switch key {
		case "employeeId":
			v = u.EmployeeID
		case "userPrincipalName":
			v = u.UserPrincipalName
		case "mail":
			v = u.Mail
		default:
			return nil, &provisioning.DirectoryError{Kind: provisioning.KindRejected, Op: "find users by " + key,
				Message: "key must be employeeId, userPrincipalName or mail"}
		}
		if v != "" && strings.EqualFold(v, value) {
			out = append(out, d.copyOf(u))
		}
	}
	slices.SortFunc(out, byID)
	return out, nil
}

// GetUser reads a live user.
func (d *Directory) GetUser(_ context.Context, id string) (provisioning.User, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.fault("GetUser"); err != nil {
		return provisioning.User{}, err
	}
	u, ok := d.users[id]
	if !ok || d.hiddenByID(id) {
		return provisioning.User{}, notFound("get user", "user "+id)
	}
	return d.copyOf(u), nil
}

// ListUsers returns the live users that carry an employeeId.
func (d *Directory) ListUsers(context.Context) ([]provisioning.User, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.fault("ListUsers"); err != nil {
		return nil, err
	}
	out := []provisioning.User{}
	for _, u := range d.users {
		if u.EmployeeID != "" && !d.hidden(u.ID) {
			out = append(out, d.copyOf(u))
		}
	}
	slices.SortFunc(out, byID)
	return out, nil
}

// CreateUser stores a Member account. A UPN held by any user, live or
// soft-deleted (as in Entra, a deleted user keeps its UPN reserved), is a
// KindConflict with Target "userPrincipalName"; a mail nickname in use is
// a KindConflict with Target "mailNickname".
func (d *Directory) CreateUser(_ context.Context, nu provisioning.NewUser) (provisioning.User, error) {
	const op = "create user"
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.fault("CreateUser"); err != nil {
		return provisioning.User{}, err
	}
	if nu.UserPrincipalName == "" || !strings.Contains(nu.UserPrincipalName, "@") {
		return provisioning.User{}, &provisioning.DirectoryError{Kind: provisioning.KindRejected, Op: op, Code: "Request_BadRequest",
			Message: fmt.Sprintf("invalid userPrincipalName %q", nu.UserPrincipalName), Target: "userPrincipalName"}
	}
	for _, set := range []map[string]*provisioning.User{d.users, d.deleted} {
		for _, u := range set {
			if strings.EqualFold(u.UserPrincipalName, nu.UserPrincipalName) {
				return provisioning.User{}, &provisioning.DirectoryError{Kind: provisioning.KindConflict, Op: op, Code: "Request_BadRequest",
					Message: "Another object with the same value for property userPrincipalName already exists.", Target: "userPrincipalName"}
			}
			if nu.MailNickname != "" && strings.EqualFold(u.Attributes["mailNickname"], nu.MailNickname) {
				return provisioning.User{}, &provisioning.DirectoryError{Kind: provisioning.KindConflict, Op: op, Code: "Request_BadRequest",
					Message: "Another object with the same value for property mailNickname already exists.", Target: "mailNickname"}
			}
		}
	}
	attrs := map[string]string{}
	for k, v := range nu.Attributes {
		if v != "" {
			attrs[k] = v
		}
	}
	if nu.MailNickname != "" {
		attrs["mailNickname"] = nu.MailNickname
	}
	u := &provisioning.User{ID: d.newID("00000000"), UserPrincipalName: nu.UserPrincipalName, EmployeeID: attrs["employeeId"],
		AccountEnabled: nu.AccountEnabled, UserType: provisioning.UserTypeMember, Attributes: attrs}
	d.users[u.ID] = u
	d.record("CreateUser", u.ID, "")
	d.wrote(u.ID, time.Time{})
	if err := d.answerLost("CreateUser", op); err != nil {
		return provisioning.User{}, err
	}
	return d.copyOf(u), nil
}

// write applies f to a live user and counts the write.
func (d *Directory) write(method, op, id string, f func(u *provisioning.User) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.fault(method); err != nil {
		return err
	}
	u, ok := d.users[id]
	if !ok {
		return notFound(op, "user "+id)
	}
	if err := f(u); err != nil {
		return err
	}
	d.record(method, id, "")
	return nil
}

// UpdateUser patches the given properties; nil clears one. An empty
// string is refused (KindRejected) as Graph refuses it. employeeId is kept
// in step with User.EmployeeID.
func (d *Directory) UpdateUser(_ context.Context, id string, changes map[string]*string) error {
	return d.write("UpdateUser", "update user", id, func(u *provisioning.User) error {
		for k, v := range changes {
			if v != nil && *v == "" {
				return &provisioning.DirectoryError{Kind: provisioning.KindRejected, Op: "update user", Code: "Request_BadRequest",
					Message: fmt.Sprintf("Invalid value specified for property '%s': an empty string; send null to clear it", k), Target: k}
			}
		}
		if v := changes["userPrincipalName"]; v != nil {
			if err := d.upnTaken("update user", *v, u.ID); err != nil {
				return err
			}
			u.UserPrincipalName = *v
		}
		for k, v := range changes {
			if k == "userPrincipalName" {
				continue // set above
			}
			if v == nil {
				delete(u.Attributes, k)
			} else {
				u.Attributes[k] = *v
			}
			if k == "employeeId" {
				u.EmployeeID = u.Attributes[k]
			}
		}
		return nil
	})
}

// SetAccountEnabled enables or disables sign-in.
func (d *Directory) SetAccountEnabled(_ context.Context, id string, enabled bool) error {
	return d.write("SetAccountEnabled", "set account enabled", id, func(u *provisioning.User) error {
		u.AccountEnabled = enabled
		return nil
	})
}

// RevokeSessions counts a write and changes nothing visible.
func (d *Directory) RevokeSessions(_ context.Context, id string) error {
	return d.write("RevokeSessions", "revoke sessions", id, func(*provisioning.User) error { return nil })
}

// SetManager sets (or, with "", removes) the manager; the manager must be
// a live user. Removing an absent manager is success.
func (d *Directory) SetManager(_ context.Context, id, managerID string) error {
	return d.write("SetManager", "set manager", id, func(u *provisioning.User) error {
		if managerID != "" {
			if _, ok := d.users[managerID]; !ok {
				return notFound("set manager", "user "+managerID)
			}
			if managerID == id {
				return &provisioning.DirectoryError{Kind: provisioning.KindRejected, Op: "set manager", Message: "a user cannot be their own manager"}
			}
		}
		u.ManagerID = managerID
		return nil
	})
}

// DeleteUser soft-deletes: the user disappears from reads and group
// memberships until RestoreUser.
func (d *Directory) DeleteUser(_ context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.fault("DeleteUser"); err != nil {
		return err
	}
	u, ok := d.users[id]
	if !ok {
		return notFound("delete user", "user "+id)
	}
	delete(d.users, id)
	d.deleted[id] = u
	d.deletedAt[id] = time.Now().UTC()
	u.Licenses = nil // a deleted user's licences are released (lifecycle.go)
	d.record("DeleteUser", id, "")
	return nil
}

// RestoreUser brings a soft-deleted user back with its properties and its
// group memberships (as Entra does for cloud groups).
func (d *Directory) RestoreUser(_ context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.fault("RestoreUser"); err != nil {
		return err
	}
	u, ok := d.deleted[id]
	if !ok {
		return notFound("restore user", "deleted user "+id)
	}
	d.wrote(id, d.deletedAt[id])
	delete(d.deleted, id)
	delete(d.deletedAt, id)
	d.users[id] = u
	d.record("RestoreUser", id, "")
	return nil
}

// GetGroup reads a group by object id.
func (d *Directory) GetGroup(_ context.Context, id string) (provisioning.Group, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.fault("GetGroup"); err != nil {
		return provisioning.Group{}, err
	}
	g, ok := d.groups[id]
	if !ok {
		return provisioning.Group{}, notFound("get group", "group "+id)
	}
	return g, nil
}

// ResolveGroup finds a group by display name (case-insensitive, as
// Graph's eq): none is KindNotFound, several KindConflict.
func (d *Directory) ResolveGroup(_ context.Context, name string) (provisioning.Group, error) {
	const op = "resolve group"
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.fault("ResolveGroup"); err != nil {
		return provisioning.Group{}, err
	}
	var found []provisioning.Group
	for _, g := range d.groups {
		if strings.EqualFold(g.DisplayName, name) {
			found = append(found, g)
		}
	}
	switch len(found) {
	case 0:
		return provisioning.Group{}, &provisioning.DirectoryError{Kind: provisioning.KindNotFound, Op: op, Message: fmt.Sprintf("no group is named %q", name)}
	case 1:
		return found[0], nil
	}
	return provisioning.Group{}, &provisioning.DirectoryError{Kind: provisioning.KindConflict, Op: op,
		Message: fmt.Sprintf("%d groups are named %q; name the group by object id in the rules", len(found), name)}
}

// ListUserGroups returns the groups the live user is a direct member of.
func (d *Directory) ListUserGroups(_ context.Context, userID string) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.fault("ListUserGroups"); err != nil {
		return nil, err
	}
	if _, ok := d.users[userID]; !ok {
		return nil, notFound("list user groups", "user "+userID)
	}
	out := []string{}
	for g, m := range d.members {
		if m[userID] {
			out = append(out, g)
		}
	}
	slices.Sort(out)
	return out, nil
}

// ListGroupMembers returns the group's live direct members.
func (d *Directory) ListGroupMembers(_ context.Context, groupID string) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.fault("ListGroupMembers"); err != nil {
		return nil, err
	}
	m, ok := d.members[groupID]
	if !ok {
		return nil, notFound("list group members", "group "+groupID)
	}
	out := []string{}
	for u := range m {
		if _, live := d.users[u]; live {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return out, nil
}

// membershipWritable checks the group and users of a membership write; d.mu is held.
func (d *Directory) membershipWritable(op, groupID string, userIDs ...string) error {
	g, ok := d.groups[groupID]
	if !ok {
		return notFound(op, "group "+groupID)
	}
	if g.Unmanageable != "" {
		return &provisioning.DirectoryError{Kind: provisioning.KindRejected, Op: op, Code: "Request_BadRequest", Message: g.Unmanageable}
	}
	for _, u := range userIDs {
		if _, ok := d.users[u]; !ok {
			return notFound(op, "user "+u)
		}
	}
	return nil
}

// AddGroupMembers adds users; already-a-member is success. The write is
// counted even when nobody was missing (Graph is asked either way).
func (d *Directory) AddGroupMembers(_ context.Context, groupID string, userIDs []string) error {
	const op = "add members"
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.fault("AddGroupMembers"); err != nil {
		return err
	}
	if len(userIDs) == 0 {
		return nil
	}
	if err := d.membershipWritable(op, groupID, userIDs...); err != nil {
		return err
	}
	for _, u := range userIDs {
		d.members[groupID][u] = true
	}
	d.record("AddGroupMembers", strings.Join(userIDs, ","), groupID)
	return nil
}

// RemoveGroupMember removes one user; not-a-member is success.
func (d *Directory) RemoveGroupMember(_ context.Context, groupID, userID string) error {
	const op = "remove member"
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.fault("RemoveGroupMember"); err != nil {
		return err
	}
	if err := d.membershipWritable(op, groupID); err != nil {
		return err
	}
	delete(d.members[groupID], userID)
	d.record("RemoveGroupMember", userID, groupID)
	return nil
}

var _ provisioning.Directory = (*Directory)(nil)
