package provisioning

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Entra drift for the incremental sync: with a DeltaDirectory, every
// incremental sync follows two delta links kept in the state store, one for
// users and one for the members of the managed groups, and enqueues the
// people whose account or managed-group membership changed in Entra since
// the previous sync. The complete sync starts both links from "now" before it
// reads everything, so the incremental syncs that follow see whatever
// changed after that read began.

const (
	deltaUsersKey  = "delta.users"
	deltaGroupsKey = "delta.groups"
)

// deltaLink is what the state store keeps for one delta query.
type deltaLink struct {
	Link string `json:"link"`
	// Groups are the (sorted) group ids a groups link is filtered to; a
	// link for another set of groups is started again.
	Groups []string `json:"groups,omitempty"`
}

// errDeltaReset says that Graph no longer accepts a stored delta link: the
// sync falls back to a complete read, which starts the links again.
var errDeltaReset = errors.New("delta link no longer accepted")

// deltaDirectory returns the engine's directory as a DeltaDirectory, if it
// is one (the engine wraps it in its group cache).
func (e *Engine) deltaDirectory() (DeltaDirectory, bool) {
	d := e.cfg.Directory
	if gc, ok := d.(groupCacheDirectory); ok {
		d = gc.Directory
	}
	dd, ok := d.(DeltaDirectory)
	return dd, ok
}

func (s *Syncer) loadLink(ctx context.Context, key string) (deltaLink, error) {
	var l deltaLink
	b, _, err := s.cfg.State.Get(ctx, key)
	if errors.Is(err, ErrKeyNotFound) {
		return l, nil
	}
	if err != nil {
		return l, err
	}
	if err := json.Unmarshal(b, &l); err != nil {
		return deltaLink{}, nil // unreadable: start again
	}
	return l, nil
}

func (s *Syncer) saveLink(ctx context.Context, key string, l deltaLink) error {
	b, _ := json.Marshal(l)
	return s.cfg.State.Put(ctx, key, b)
}

// managedGroupIDs returns the sorted object ids of the managed groups that
// resolve, at most MaxDeltaGroups of them (ok false when there are more:
// group delta is then left to the complete sync).
func (e *Engine) managedGroupIDs(ctx context.Context) (ids []string, ok bool) {
	refs, _ := e.managedGroups(ctx)
	for _, r := range refs {
		ids = append(ids, r.ID)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	return ids, len(ids) <= MaxDeltaGroups
}

// startDelta starts both delta links from now (two requests). The complete
// sync calls it before it reads, so that nothing changed during its read is
// missed by the next incremental sync. A failure is logged, not fatal: the
// next incremental sync starts the links itself.
func (s *Syncer) startDelta(ctx context.Context) {
	e := s.cfg.Engine
	dd, ok := e.deltaDirectory()
	if !ok {
		return
	}
	if _, next, err := dd.UsersDelta(ctx, ""); err != nil {
		e.log.Warn("full sync: start the users delta link; the next incremental sync starts it", "err", err)
	} else if err := s.saveLink(ctx, deltaUsersKey, deltaLink{Link: next}); err != nil {
		e.log.Warn("full sync: save the users delta link", "err", err)
	}
	ids, ok := e.managedGroupIDs(ctx)
	if !ok || len(ids) == 0 {
		return
	}
	if _, next, err := dd.GroupMembersDelta(ctx, ids, ""); err != nil {
		e.log.Warn("full sync: start the group members delta link; the next incremental sync starts it", "err", err)
	} else if err := s.saveLink(ctx, deltaGroupsKey, deltaLink{Link: next, Groups: ids}); err != nil {
		e.log.Warn("full sync: save the group members delta link", "err", err)
	}
}

// entraDrift is what the delta links reported for one incremental sync.
type entraDrift struct {
	people []string // person ids to reconcile
	save   func(context.Context) error
}

// readEntraDrift follows both delta links and maps what changed to person
// ids. It returns errDeltaReset (wrapped) when Graph refused a link, and
// otherwise never fails the sync: an unreadable delta is logged and left for
// the next sync, whose links are then unchanged.
func (s *Syncer) readEntraDrift(ctx context.Context, rep *SyncReport) (entraDrift, error) {
	e := s.cfg.Engine
	out := entraDrift{save: func(context.Context) error { return nil }}
	dd, ok := e.deltaDirectory()
	if !ok {
		return out, nil
	}
	var saves []func(context.Context) error
	var users []UserChange
	var members []MemberChange

	ul, err := s.loadLink(ctx, deltaUsersKey)
	if err != nil {
		return out, fmt.Errorf("incremental sync: %w", err)
	}
	uc, unext, err := dd.UsersDelta(ctx, ul.Link)
	switch {
	case errors.Is(err, ErrDeltaExpired):
		return out, fmt.Errorf("users: %w: %w", errDeltaReset, err)
	case err != nil:
		rep.DeltaErrors = append(rep.DeltaErrors, "users: "+err.Error())
		e.log.Warn("incremental sync: users delta unreadable; tried again at the next sync", "err", err)
	default:
		users = uc
		saves = append(saves, func(ctx context.Context) error { return s.saveLink(ctx, deltaUsersKey, deltaLink{Link: unext}) })
	}

	ids, within := e.managedGroupIDs(ctx)
	if !within {
		e.log.Warn("incremental sync: more managed groups than one group delta can follow; their membership drift is left to the complete sync",
			"groups", len(ids), "max", MaxDeltaGroups)
	}
	if within && len(ids) > 0 {
		gl, err := s.loadLink(ctx, deltaGroupsKey)
		if err != nil {
			return out, fmt.Errorf("incremental sync: %w", err)
		}
		link := gl.Link
		if !slices.Equal(gl.Groups, ids) {
			link = "" // another set of groups: start from now
		}
		mc, gnext, err := dd.GroupMembersDelta(ctx, ids, link)
		switch {
		case errors.Is(err, ErrDeltaExpired):
			return out, fmt.Errorf("group members: %w: %w", errDeltaReset, err)
		case err != nil:
			rep.DeltaErrors = append(rep.DeltaErrors, "group members: "+err.Error())
			e.log.Warn("incremental sync: group members delta unreadable; tried again at the next sync", "err", err)
		default:
			members = mc
			saves = append(saves, func(ctx context.Context) error {
				return s.saveLink(ctx, deltaGroupsKey, deltaLink{Link: gnext, Groups: ids})
			})
		}
	}

	people, unresolved := changedPeople(users, members, ids, func(userID string) string {
		p, err := e.personOfAccount(ctx, userID)
		if err != nil {
			e.log.Warn("incremental sync: ownership record unreadable", "user_id", userID, "err", err)
		}
		return p
	})
	// Members that are not owned accounts: read the account for its
	// employeeId (one request each; only for hand-made membership changes).
	for _, id := range unresolved {
		u, err := e.cfg.Directory.GetUser(ctx, id)
		switch {
		case errors.Is(err, ErrNotFound):
			continue
		case err != nil:
			return out, fmt.Errorf("incremental sync: read changed group member %s: %w", id, err)
		}
		if u.EmployeeID != "" {
			people = append(people, u.EmployeeID)
		}
	}
	slices.Sort(people)
	out.people = slices.Compact(people)
	rep.EntraChanged = len(out.people)
	out.save = func(ctx context.Context) error {
		for _, f := range saves {
			if err := f(ctx); err != nil {
				return err
			}
		}
		return nil
	}
	return out, nil
}

// changedPeople maps what the delta links reported to person ids: a changed
// user by the employeeId it carries, else by its ownership record
// (personOf, "" when none); a removed user by its ownership record; a
// membership change in one of the managed groups by the member's ownership
// record. Members without one are returned as unresolved, for the caller to
// read. Changes to groups that are not managed are ignored.
func changedPeople(users []UserChange, members []MemberChange, managed []string, personOf func(userID string) string) (people, unresolved []string) {
	for _, c := range users {
		if c.User.ID == "" {
			continue
		}
		if !c.Removed && c.User.EmployeeID != "" {
			people = append(people, c.User.EmployeeID)
			continue
		}
		if p := personOf(c.User.ID); p != "" {
			people = append(people, p)
		}
	}
	for _, m := range members {
		if m.UserID == "" || !slices.Contains(managed, m.GroupID) {
			continue
		}
		if p := personOf(m.UserID); p != "" {
			people = append(people, p)
		} else if !slices.Contains(unresolved, m.UserID) {
			unresolved = append(unresolved, m.UserID)
		}
	}
	slices.Sort(people)
	return slices.Compact(people), unresolved
}

// personOfAccount returns the person an owned account belongs to ("" for
// an account personio-entra does not own).
func (e *Engine) personOfAccount(ctx context.Context, userID string) (string, error) {
	key, err := ownedKey(userID)
	if err != nil {
		return "", nil
	}
	b, _, err := e.cfg.State.Get(ctx, key)
	if errors.Is(err, ErrKeyNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var rec OwnershipRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return "", nil
	}
	return strings.TrimSpace(rec.PersonID), nil
}

// BulkReader is implemented by directories whose complete reads are delta
// rounds (Microsoft Graph: users/delta and groups/delta without a token).
// Such a round lists everything and ends with the delta link for what
// changes after it began, so the complete sync needs no separate request
// to start the incremental sync's links, and the members of up to
// MaxDeltaGroups groups come in one round instead of one read per group.
type BulkReader interface {
	// ListUsersDelta is ListUsers plus the users delta link.
	ListUsersDelta(ctx context.Context) (users []User, link string, err error)
	// GroupMembersRound returns the user members of the given groups (1 to
	// MaxDeltaGroups) by group id, and the group members delta link for
	// that set of groups. A group it could not read (deleted) is missing
	// from the map.
	GroupMembersRound(ctx context.Context, groupIDs []string) (members map[string][]string, link string, err error)
}

// bulkReader returns the engine's directory as a BulkReader, if it is one.
func (e *Engine) bulkReader() (BulkReader, bool) {
	d := e.cfg.Directory
	if gc, ok := d.(groupCacheDirectory); ok {
		d = gc.Directory
	}
	br, ok := d.(BulkReader)
	return br, ok
}

// bulkLinks are the delta links a complete read's rounds ended with.
type bulkLinks struct {
	users  string
	groups deltaLink // empty when the managed groups took more than one round
}

// saveBulkLinks stores the links of a complete read for the incremental
// syncs that follow. A link the read did not yield (more managed groups
// than one round holds) is left to the incremental sync, which starts it.
func (s *Syncer) saveBulkLinks(ctx context.Context, l bulkLinks) {
	e := s.cfg.Engine
	if _, ok := e.deltaDirectory(); !ok {
		return
	}
	if l.users != "" {
		if err := s.saveLink(ctx, deltaUsersKey, deltaLink{Link: l.users}); err != nil {
			e.log.Warn("full sync: save the users delta link", "err", err)
		}
	}
	if l.groups.Link != "" {
		if err := s.saveLink(ctx, deltaGroupsKey, l.groups); err != nil {
			e.log.Warn("full sync: save the group members delta link", "err", err)
		}
	}
}
