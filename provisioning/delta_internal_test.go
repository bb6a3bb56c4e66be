package provisioning

import (
	"slices"
	"testing"
)

func TestChangedPeople(t *testing.T) {
	owned := map[string]string{"u1": "1", "u2": "2", "u4": "4"}
	personOf := func(id string) string { return owned[id] }
	users := []UserChange{
		{User: User{ID: "u1", Attributes: map[string]string{"jobTitle": "x"}}}, // only the changed property: by ownership
		{User: User{ID: "u9", EmployeeID: "9"}},                                // carries its employeeId
		{User: User{ID: "u2"}, Removed: true},                                  // deleted: by ownership
		{User: User{ID: "admin"}},                                              // no employeeId, not owned
	}
	members := []MemberChange{
		{GroupID: "g1", UserID: "u4", Removed: true},
		{GroupID: "g1", UserID: "stranger"},
		{GroupID: "g1", UserID: "stranger", Removed: true},
		{GroupID: "other", UserID: "u1"}, // not a managed group
		{GroupID: "other", UserID: "nobody"},
	}
	people, unresolved := changedPeople(users, members, []string{"g1", "g2"}, personOf)
	if want := []string{"1", "2", "4", "9"}; !slices.Equal(people, want) {
		t.Errorf("people %v, want %v", people, want)
	}
	if want := []string{"stranger"}; !slices.Equal(unresolved, want) {
		t.Errorf("unresolved %v, want %v", unresolved, want)
	}
}
