package entra

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/entra/entratest"
)

// Users delta through msgraph-sdk-go: an empty link starts from now in one
// request; a hand edit comes back on the next round, and a round without
// changes is one request that reports nothing.
func TestUsersDelta(t *testing.T) {
	sim, d, wire := newSimDirectory(t, entratest.Options{})
	ids := seedCompany(sim, 450, 0, 0) // more than two delta pages
	ctx := ctxT(t)
	sim.Reset()
	changes, link, err := d.UsersDelta(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 0 || link == "" || sim.Requests().Total != 1 {
		t.Fatalf("start: %d changes, link %q, %d requests; want none, a link, 1 request", len(changes), link, sim.Requests().Total)
	}
	if q := wire.find("GET", "/users/delta"); len(q) != 1 || !strings.Contains(q[0].Query, "$deltatoken=latest") || !strings.Contains(q[0].Query, "jobTitle") {
		t.Fatalf("start request: %+v", q)
	}

	sim.UpdateUser(ids[7], map[string]any{"jobTitle": "Edited by hand"})
	changes, link2, err := d.UsersDelta(ctx, link)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || changes[0].User.ID != ids[7] || changes[0].User.Attributes["jobTitle"] != "Edited by hand" || changes[0].Removed {
		t.Fatalf("changes after a hand edit: %+v", changes)
	}
	if changes[0].User.EmployeeID != "8" {
		t.Errorf("employeeId %q, want 8", changes[0].User.EmployeeID)
	}
	sim.Reset()
	changes, _, err = d.UsersDelta(ctx, link2)
	if err != nil || len(changes) != 0 || sim.Requests().Total != 1 {
		t.Fatalf("quiet round: %d changes, err %v, %d requests; want none in 1 request", len(changes), err, sim.Requests().Total)
	}
}

// Group members delta: hand-made additions and removals in the followed
// groups, nothing from other groups.
func TestGroupMembersDelta(t *testing.T) {
	sim, d, wire := newSimDirectory(t, entratest.Options{})
	ids := seedCompany(sim, 20, 0, 0)
	ctx := ctxT(t)
	a := sim.AddGroup(entratest.Group{DisplayName: "A", SecurityEnabled: true, Members: ids[:5]})
	b := sim.AddGroup(entratest.Group{DisplayName: "B", SecurityEnabled: true, Members: ids[5:10]})
	other := sim.AddGroup(entratest.Group{DisplayName: "Other", SecurityEnabled: true})
	changes, link, err := d.GroupMembersDelta(ctx, []string{a, b}, "")
	if err != nil || len(changes) != 0 || link == "" {
		t.Fatalf("start: %+v %q %v", changes, link, err)
	}
	if q := wire.find("GET", "/groups/delta"); len(q) != 1 || !strings.Contains(q[0].Query, "$select=members") || !strings.Contains(q[0].Query, "deltatoken=latest") {
		t.Fatalf("start request: %+v", q)
	}
	sim.RemoveMember(a, ids[1])
	sim.AddMember(b, ids[15])
	sim.AddMember(other, ids[16])
	sim.Reset()
	changes, _, err = d.GroupMembersDelta(ctx, []string{a, b}, link)
	if err != nil {
		t.Fatal(err)
	}
	want := []provisioning.MemberChange{{GroupID: a, UserID: ids[1], Removed: true}, {GroupID: b, UserID: ids[15]}}
	if !slices.Equal(changes, want) {
		t.Fatalf("changes %+v, want %+v", changes, want)
	}
	if n := sim.Requests().Total; n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

// A link Graph no longer accepts, answered 410 Gone or 400
// syncStateNotFound, is provisioning.ErrDeltaExpired; a new start works.
func TestDeltaExpired(t *testing.T) {
	for _, gone := range []bool{true, false} {
		sim, d, _ := newSimDirectory(t, entratest.Options{})
		ids := seedCompany(sim, 3, 0, 0)
		g := sim.AddGroup(entratest.Group{DisplayName: "A", SecurityEnabled: true, Members: ids})
		ctx := ctxT(t)
		_, ul, err := d.UsersDelta(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		_, gl, err := d.GroupMembersDelta(ctx, []string{g}, "")
		if err != nil {
			t.Fatal(err)
		}
		sim.ExpireDeltaLinks(gone)
		if _, _, err := d.UsersDelta(ctx, ul); !errors.Is(err, provisioning.ErrDeltaExpired) {
			t.Errorf("gone=%t: users delta with an expired link: %v, want ErrDeltaExpired", gone, err)
		}
		if _, _, err := d.GroupMembersDelta(ctx, []string{g}, gl); !errors.Is(err, provisioning.ErrDeltaExpired) {
			t.Errorf("gone=%t: group delta with an expired link: %v, want ErrDeltaExpired", gone, err)
		}
		_, ul, err = d.UsersDelta(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		sim.UpdateUser(ids[0], map[string]any{"department": "X"})
		if ch, _, err := d.UsersDelta(ctx, ul); err != nil || len(ch) != 1 {
			t.Errorf("gone=%t: after a new start: %+v, %v", gone, ch, err)
		}
	}
}
