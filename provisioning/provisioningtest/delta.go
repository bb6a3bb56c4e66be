package provisioningtest

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/personio-entra/personio-entra/provisioning"
)

// Delta support: Directory implements provisioning.DeltaDirectory. Every
// write and every seeded user is a numbered change; a link is the number of
// the last change it has seen ("mem-users:12", "mem-groups:12"). Changes made
// with the Directory methods stand for hand edits in Entra as well as the
// engine's own writes, as in Graph.

type change struct {
	seq     int
	userID  string
	groupID string // membership change when set
}

// changed appends a change; d.mu is held.
func (d *Directory) changed(c change) {
	d.seq++
	c.seq = d.seq
	d.changes = append(d.changes, c)
}

// recordChange turns an accepted write into changes; d.mu is held.
func (d *Directory) recordChange(op, userID, groupID string) {
	if groupID == "" {
		d.changed(change{userID: userID})
		return
	}
	for _, id := range strings.Split(userID, ",") {
		d.changed(change{userID: id, groupID: groupID})
	}
}

// ExpireDeltaLinks makes every delta link handed out so far fail with
// provisioning.ErrDeltaExpired (as Graph refuses links older than seven days).
func (d *Directory) ExpireDeltaLinks() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.changed(change{}) // a marker, so that later links differ from earlier ones
	d.expiredBelow = d.seq
}

// since parses a link of the kind; "" is now. d.mu is held.
func (d *Directory) since(op, kind, link string) (int, error) {
	if link == "" {
		return d.seq, nil
	}
	n, err := strconv.Atoi(strings.TrimPrefix(link, kind+":"))
	if err != nil || !strings.HasPrefix(link, kind+":") || n < d.expiredBelow || n > d.seq {
		return 0, fmt.Errorf("%w: %w", provisioning.ErrDeltaExpired, &provisioning.DirectoryError{Kind: provisioning.KindRejected,
			Op: op, Code: "syncStateNotFound", Message: "The sync state generation is not found."})
	}
	return n, nil
}

// UsersDelta returns the users changed since link: live ones as they are
// now, deleted ones as removed.
func (d *Directory) UsersDelta(_ context.Context, link string) ([]provisioning.UserChange, string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.fault("UsersDelta"); err != nil {
		return nil, "", err
	}
	n, err := d.since("users delta", "mem-users", link)
	if err != nil {
		return nil, "", err
	}
	var out []provisioning.UserChange
	var seen []string
	for _, c := range d.changes[n:] {
		if c.userID == "" || c.groupID != "" || slices.Contains(seen, c.userID) {
			continue
		}
		seen = append(seen, c.userID)
		if u, ok := d.users[c.userID]; ok {
			out = append(out, provisioning.UserChange{User: d.copyOf(u)})
		} else {
			out = append(out, provisioning.UserChange{User: provisioning.User{ID: c.userID}, Removed: true})
		}
	}
	return out, fmt.Sprintf("mem-users:%d", d.seq), nil
}

// GroupMembersDelta returns the memberships of the groups changed since
// link, each as it is now (added or removed).
func (d *Directory) GroupMembersDelta(_ context.Context, groupIDs []string, link string) ([]provisioning.MemberChange, string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.fault("GroupMembersDelta"); err != nil {
		return nil, "", err
	}
	if len(groupIDs) > provisioning.MaxDeltaGroups {
		return nil, "", &provisioning.DirectoryError{Kind: provisioning.KindRejected, Op: "group members delta",
			Message: fmt.Sprintf("at most %d groups", provisioning.MaxDeltaGroups)}
	}
	n, err := d.since("group members delta", "mem-groups", link)
	if err != nil {
		return nil, "", err
	}
	var out []provisioning.MemberChange
	seen := map[[2]string]bool{}
	for _, c := range d.changes[n:] {
		k := [2]string{c.groupID, c.userID}
		if c.userID == "" || c.groupID == "" || seen[k] || !slices.Contains(groupIDs, c.groupID) {
			continue
		}
		seen[k] = true
		out = append(out, provisioning.MemberChange{GroupID: c.groupID, UserID: c.userID, Removed: !d.members[c.groupID][c.userID]})
	}
	return out, fmt.Sprintf("mem-groups:%d", d.seq), nil
}

var _ provisioning.DeltaDirectory = (*Directory)(nil)
