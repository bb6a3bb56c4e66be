package provisioning

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/personio-entra/personio-entra/provisioning/model"
)

// The complete read: what the complete sync (Engine.Drift) and the
// rules-change preview (PreviewRules) plan everyone against. Both read
// Entra and Personio the same way through it, so a change to how either is
// read is made here once.
//
// Memory (docs/architecture.md#memory-of-a-complete-sync): Entra is read
// first and kept — the accounts with an employeeId, looked up by employeeId
// (also as managers), and the managed groups' members as a few group
// indexes per account (memberIndex) — and Personio is then handed out a
// page at a time from a PagedSource and let go, so the whole company is
// never held twice.

// completeRead is Entra as one complete read found it, and the people
// Personio returned since.
type completeRead struct {
	e *Engine
	// accounts is the number of accounts read; byEmp holds them by
	// employeeId (several: ambiguous).
	accounts int
	byEmp    map[string][]*User
	// members are the managed groups' members.
	members *memberIndex
	// owned are the accounts personio-entra owns, by user id.
	owned map[string]bool
	// links are the delta links the read's rounds ended with (BulkReader).
	links bulkLinks

	// employees counts the people Personio returned; seen holds their ids.
	employees int
	seen      map[string]bool

	// upns holds the accounts' user principal names (lower case) → id,
	// built on first use (upnTaken, preview_lifecycle.go).
	upns map[string]string
}

// readComplete reads Entra, in this order: every account with an
// employeeId (a users delta round with a BulkReader), then the managed
// groups that groups returns (it resolves them; called once the accounts
// are read), their members (groups delta rounds of up to MaxDeltaGroups
// groups with a BulkReader, else one read per group) and the ownership
// records. It makes no per-person read. Personio is read afterwards, by
// eachEmployee.
func (e *Engine) readComplete(ctx context.Context, groups func(context.Context) []GroupRef) (*completeRead, error) {
	r := &completeRead{e: e, seen: map[string]bool{}}
	br, bulk := e.bulkReader()
	var users []User
	var err error
	if bulk {
		users, r.links.users, err = br.ListUsersDelta(ctx)
	} else {
		users, err = e.cfg.Directory.ListUsers(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("list Entra users: %w", err)
	}
	refs := groups(ctx)
	r.members = newMemberIndex(refs)
	if bulk && len(refs) > 0 {
		if err := e.readMembers(ctx, br, refs, &r.links, r.members.add); err != nil {
			return nil, err
		}
	} else {
		for _, g := range refs {
			ids, err := e.cfg.Directory.ListGroupMembers(ctx, g.ID)
			if err != nil {
				return nil, fmt.Errorf("members of %q: %w", g.Key, err)
			}
			for _, id := range ids {
				r.members.add(g.ID, id)
			}
		}
	}
	if r.owned, err = e.own.All(ctx); err != nil {
		return nil, err
	}
	r.accounts = len(users)
	r.byEmp = make(map[string][]*User, len(users))
	for i := range users {
		u := &users[i]
		r.byEmp[u.EmployeeID] = append(r.byEmp[u.EmployeeID], u)
	}
	return r, nil
}

// readMembers reads the members of the managed groups in rounds of up to
// MaxDeltaGroups groups and calls add for each (group, member). A group a
// round did not return is read on its own (ListGroupMembers), which tells a
// deleted group apart and forgets it.
func (e *Engine) readMembers(ctx context.Context, br BulkReader, groups []GroupRef, links *bulkLinks, add func(groupID, userID string)) error {
	keyOf := map[string]string{}
	var ids []string
	for _, g := range groups {
		if _, dup := keyOf[g.ID]; !dup {
			keyOf[g.ID] = g.Key
			ids = append(ids, g.ID)
		}
	}
	slices.Sort(ids)
	for chunk := range slices.Chunk(ids, MaxDeltaGroups) {
		members, link, err := br.GroupMembersRound(ctx, chunk)
		if err != nil {
			return fmt.Errorf("members of %d managed groups: %w", len(chunk), err)
		}
		if len(chunk) == len(ids) {
			links.groups = deltaLink{Link: link, Groups: slices.Clone(ids)}
		}
		for _, gid := range chunk {
			m, ok := members[gid]
			if !ok {
				if m, err = e.cfg.Directory.ListGroupMembers(ctx, gid); err != nil {
					return fmt.Errorf("members of %q: %w", keyOf[gid], err)
				}
				// Read on its own: this round's link misses the group.
				links.groups = deltaLink{}
			}
			for _, uid := range m {
				add(gid, uid)
			}
		}
	}
	return nil
}

// accountsOf returns the accounts carrying the person's employeeId.
func (r *completeRead) accountsOf(personID string) []*User { return r.byEmp[personID] }

// actual is the account u (nil: none) as the read found it: its managed
// groups and, when exactly one account carries managerPersonID, the
// manager's account.
func (r *completeRead) actual(u *User, managerPersonID string) Actual {
	if u == nil {
		return Actual{}
	}
	a := Actual{User: u, Groups: r.members.groupsOf(u.ID)}
	if m := r.byEmp[managerPersonID]; managerPersonID != "" && len(m) == 1 {
		a.Manager = m[0]
	}
	return a
}

// eachEmployee reads Personio completely and hands each person to plan,
// in Personio's order: a page at a time from a PagedSource (only the page
// being planned is held), else from one complete list. plan must not keep
// the pointer.
func (r *completeRead) eachEmployee(ctx context.Context, plan func(emp *model.Employee)) error {
	page := func(emps []model.Employee) error {
		for i := range emps {
			r.seen[emps[i].PersonID] = true
			r.employees++
			plan(&emps[i])
		}
		return nil
	}
	var err error
	if ps, ok := r.e.cfg.Source.(PagedSource); ok {
		err = ps.EachEmployeePage(ctx, page)
	} else {
		var emps []model.Employee
		if emps, err = r.e.cfg.Source.ListEmployees(ctx); err == nil {
			err = page(emps)
		}
	}
	if err != nil {
		return fmt.Errorf("read Personio: %w", err)
	}
	return nil
}

// absent returns, sorted, the employeeIds that accounts carry but that
// Personio did not return (after eachEmployee): leavers when the account
// is owned, otherwise accounts left alone.
func (r *completeRead) absent() []string {
	var ids []string
	for id := range maps.Keys(r.byEmp) {
		if id != "" && !r.seen[id] {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// PagedSource is implemented by sources that can hand out a complete read
// page by page (the Personio client: v1 /company/employees, 100 a page).
// yield's error stops the read and is returned.
type PagedSource interface {
	EachEmployeePage(ctx context.Context, yield func([]model.Employee) error) error
}

// memberIndex holds the managed groups' members as, per account, the
// indexes of its managed groups: two small integers per person instead of
// a map per person (50,000 people in 200 groups).
type memberIndex struct {
	ids   []string       // group ids by index
	index map[string]int // group id → index
	of    map[string][]uint16
}

func newMemberIndex(groups []GroupRef) *memberIndex {
	m := &memberIndex{index: map[string]int{}, of: map[string][]uint16{}}
	for _, g := range groups {
		if _, ok := m.index[g.ID]; !ok {
			m.index[g.ID] = len(m.ids)
			m.ids = append(m.ids, g.ID)
		}
	}
	return m
}

func (m *memberIndex) add(groupID, userID string) {
	i, ok := m.index[groupID]
	if !ok || i > 1<<16-1 {
		return
	}
	l := m.of[userID]
	if !slices.Contains(l, uint16(i)) {
		m.of[userID] = append(l, uint16(i))
	}
}

// groupsOf is the account's managed groups as Actual.Groups wants them.
func (m *memberIndex) groupsOf(userID string) map[string]bool {
	l := m.of[userID]
	out := make(map[string]bool, len(l))
	for _, i := range l {
		out[m.ids[i]] = true
	}
	return out
}
