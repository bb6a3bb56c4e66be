package provisioning

import (
	"context"
	"fmt"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"maps"
	"slices"
	"sync"
	"time"
)

// memDirectory is an in-memory Directory for engine unit tests: no
// network, no replication delay, every write counted.
type memDirectory struct {
	mu      sync.Mutex
	next    int
	users   map[string]*User
	groups  map[string]Group
	members map[string]map[string]bool // group id → user ids
	writes  int
}

func newMemDirectory() *memDirectory {
	return &memDirectory{users: map[string]*User{}, groups: map[string]Group{}, members: map[string]map[string]bool{}}
}

func (d *memDirectory) addUser(u User) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.next++
	if u.ID == "" {
		u.ID = fmt.Sprintf("00000000-0000-0000-0000-%012d", d.next)
	}
	if u.Attributes == nil {
		u.Attributes = map[string]string{}
	}
	d.users[u.ID] = &u
	return u.ID
}

func (d *memDirectory) addGroup(name string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.next++
	id := fmt.Sprintf("11111111-0000-0000-0000-%012d", d.next)
	d.groups[id] = Group{ID: id, DisplayName: name}
	d.members[id] = map[string]bool{}
	return id
}

func (d *memDirectory) user(id string) User {
	d.mu.Lock()
	defer d.mu.Unlock()
	u := *d.users[id]
	u.Attributes = maps.Clone(u.Attributes)
	return u
}

func (d *memDirectory) isMember(groupID, userID string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.members[groupID][userID]
}

func (d *memDirectory) copyOf(u *User) User {
	c := *u
	c.Attributes = maps.Clone(u.Attributes)
	if m, ok := d.users[u.ManagerID]; ok {
		c.ManagerEmployeeID = m.EmployeeID
	}
	return c
}

func (d *memDirectory) FindUsers(_ context.Context, key, value string) ([]User, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []User
	for _, u := range d.users {
		var v string
		switch key {
		case "employeeId":
			v = u.EmployeeID
		case "userPrincipalName":
			v = u.UserPrincipalName
		case "mail":
			v = u.Mail
		default:
			return nil, &DirectoryError{Kind: KindPermanent, Op: "find users", Message: "unknown key " + key}
		}
		if v == value {
			out = append(out, d.copyOf(u))
		}
	}
	slices.SortFunc(out, func(a, b User) int { return compare(a.ID, b.ID) })
	return out, nil
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (d *memDirectory) GetUser(_ context.Context, id string) (User, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	u, ok := d.users[id]
	if !ok {
		return User{}, &DirectoryError{Kind: KindNotFound, Op: "get user"}
	}
	return d.copyOf(u), nil
}

func (d *memDirectory) ListUsers(context.Context) ([]User, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []User
	for _, u := range d.users {
		if u.EmployeeID != "" {
			out = append(out, d.copyOf(u))
		}
	}
	slices.SortFunc(out, func(a, b User) int { return compare(a.ID, b.ID) })
	return out, nil
}

func (d *memDirectory) CreateUser(_ context.Context, nu NewUser) (User, error) {
	d.mu.Lock()
	for _, u := range d.users {
		if u.UserPrincipalName == nu.UserPrincipalName {
			d.mu.Unlock()
			return User{}, &DirectoryError{Kind: KindConflict, Op: "create user"}
		}
	}
	d.writes++
	d.mu.Unlock()
	attrs := maps.Clone(nu.Attributes)
	id := d.addUser(User{UserPrincipalName: nu.UserPrincipalName, EmployeeID: attrs["employeeId"], AccountEnabled: nu.AccountEnabled, Attributes: attrs})
	return d.user(id), nil
}

func (d *memDirectory) write(id string, f func(u *User)) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	u, ok := d.users[id]
	if !ok {
		return &DirectoryError{Kind: KindNotFound, Op: "write user"}
	}
	d.writes++
	f(u)
	return nil
}

func (d *memDirectory) UpdateUser(_ context.Context, id string, changes map[string]*string) error {
	return d.write(id, func(u *User) {
		for k, v := range changes {
			if v == nil {
				delete(u.Attributes, k)
			} else {
				u.Attributes[k] = *v
			}
		}
	})
}

func (d *memDirectory) SetAccountEnabled(_ context.Context, id string, enabled bool) error {
	return d.write(id, func(u *User) { u.AccountEnabled = enabled })
}

func (d *memDirectory) RevokeSessions(_ context.Context, id string) error {
	return d.write(id, func(*User) {})
}

func (d *memDirectory) SetManager(_ context.Context, id, managerID string) error {
	return d.write(id, func(u *User) { u.ManagerID = managerID })
}

func (d *memDirectory) DeleteUser(_ context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.writes++
	delete(d.users, id)
	return nil
}

func (d *memDirectory) RestoreUser(context.Context, string) error {
	return &DirectoryError{Kind: KindPermanent, Op: "restore user", Message: "not supported by the in-memory directory"}
}

func (d *memDirectory) GetGroup(_ context.Context, id string) (Group, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	g, ok := d.groups[id]
	if !ok {
		return Group{}, &DirectoryError{Kind: KindNotFound, Op: "get group"}
	}
	return g, nil
}

func (d *memDirectory) ResolveGroup(_ context.Context, name string) (Group, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, g := range d.groups {
		if g.DisplayName == name {
			return g, nil
		}
	}
	return Group{}, &DirectoryError{Kind: KindNotFound, Op: "resolve group"}
}

func (d *memDirectory) ListUserGroups(_ context.Context, userID string) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for g, m := range d.members {
		if m[userID] {
			out = append(out, g)
		}
	}
	return out, nil
}

func (d *memDirectory) ListGroupMembers(_ context.Context, groupID string) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Sorted(maps.Keys(d.members[groupID])), nil
}

func (d *memDirectory) AddGroupMembers(_ context.Context, groupID string, userIDs []string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.writes++
	for _, u := range userIDs {
		d.members[groupID][u] = true
	}
	return nil
}

func (d *memDirectory) RemoveGroupMember(_ context.Context, groupID, userID string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.writes++
	delete(d.members[groupID], userID)
	return nil
}

// memSource is an in-memory Personio: people by id, 404 for the rest.
type memSource struct {
	mu     sync.Mutex
	people map[string]model.Employee
}

func newMemSource(emps ...model.Employee) *memSource {
	s := &memSource{people: map[string]model.Employee{}}
	for _, e := range emps {
		s.people[e.PersonID] = e
	}
	return s
}

func (s *memSource) set(e model.Employee) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.people[e.PersonID] = e
}

func (s *memSource) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.people, id)
}

func (s *memSource) GetEmployee(_ context.Context, id string) (model.Employee, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.people[id]
	if !ok {
		return model.Employee{}, fmt.Errorf("get %s: %w", id, model.ErrPersonNotFound)
	}
	return e, nil
}

// ConfirmDeleted is the second read: absent from the map means deleted.
func (s *memSource) ConfirmDeleted(_ context.Context, id string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.people[id]
	return !ok, nil
}

func (s *memSource) ListEmployees(context.Context) ([]model.Employee, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.SortedFunc(maps.Values(s.people), func(a, b model.Employee) int { return compare(a.PersonID, b.PersonID) }), nil
}

// memQueue records what the engine and the syncer enqueue and schedule.
type memQueue struct {
	mu        sync.Mutex
	enqueued  []string
	schedules map[string]time.Time
}

func (q *memQueue) Enqueue(_ context.Context, personID, _ string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.enqueued = append(q.enqueued, personID)
	return nil
}

func (q *memQueue) Schedule(_ context.Context, personID string, at time.Time, _ string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.schedules == nil {
		q.schedules = map[string]time.Time{}
	}
	q.schedules[personID] = at
	return nil
}

func (q *memQueue) CancelSchedule(_ context.Context, personID string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.schedules, personID)
	return nil
}
