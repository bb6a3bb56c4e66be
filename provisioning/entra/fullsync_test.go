package entra

import (
	"fmt"
	"slices"
	"testing"

	"github.com/personio-entra/personio-entra/provisioning/entra/entratest"
)

// seedCompany adds n users with employeeId (every tenth one a manager) and
// groups groups of members each.
func seedCompany(sim *entratest.Server, n, groups, members int) []string {
	ids := make([]string, 0, n)
	for i := range n {
		u := entratest.User{UserPrincipalName: fmt.Sprintf("p%05d@example.com", i), DisplayName: fmt.Sprintf("Person %d", i),
			EmployeeID: fmt.Sprint(i + 1), AccountEnabled: true,
			Properties: map[string]any{"jobTitle": "Job", "department": "Dept", "employeeOrgData": map[string]any{"costCenter": "CC"}}}
		if i >= 10 {
			u.ManagerID = ids[i/10]
		}
		ids = append(ids, sim.AddUser(u))
	}
	for g := range groups {
		m := make([]string, 0, members)
		for j := range members {
			m = append(m, ids[(g*members+j)%n])
		}
		sim.AddGroup(entratest.Group{DisplayName: fmt.Sprintf("Group %02d", g), SecurityEnabled: true, Members: m})
	}
	return ids
}

// seedGroups adds groups of the given sizes, members taken in turn from
// ids, and returns the group ids.
func seedGroups(sim *entratest.Server, ids []string, sizes []int) []string {
	var out []string
	next := 0
	for g, size := range sizes {
		m := make([]string, 0, size)
		for range size {
			m = append(m, ids[next%len(ids)])
			next++
		}
		out = append(out, sim.AddGroup(entratest.Group{DisplayName: fmt.Sprintf("Group %02d", g), SecurityEnabled: true, Members: m}))
	}
	return out
}

// The complete sync's read budget: 10,000 users with employeeId plus the
// members of 50 managed groups (every user in two) in at most 100 Graph
// requests, also when some groups have more than 999 members: 50
// users/delta pages of 200 and one groups/delta round (pages of at most
// entratest.GroupDeltaPageRefs member references), whose deltaLinks start
// the incremental sync. Reading the members per group (one page per 999
// members per group) took 106 requests for the "departments" case.
func TestFullSyncRequestCount(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 users: skipped with -short")
	}
	departments := []int{1667, 1667, 1667, 1667, 1666, 1666} // 10,000
	for range 44 {
		departments = append(departments, 227) // 9,988
	}
	for _, tc := range []struct {
		name  string
		sizes []int
	}{
		{"50 groups of 400", slices.Repeat([]int{400}, 50)},
		{"6 departments over 999 and 44 cohorts", departments},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim, d, _ := newSimDirectory(t, entratest.Options{})
			ids := seedCompany(sim, 10000, 0, 0)
			gids := seedGroups(sim, ids, tc.sizes)
			sim.Reset()
			ctx := ctxT(t)
			users, ulink, err := d.ListUsersDelta(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(users) != 10000 || ulink == "" {
				t.Fatalf("%d users and deltaLink %q, want 10000 and a link", len(users), ulink)
			}
			withManager := 0
			for _, u := range users {
				if u.ManagerID != "" {
					withManager++
				}
			}
			if withManager != 9990 {
				t.Fatalf("%d users with manager, want 9990", withManager)
			}
			userReqs := sim.Requests().Total
			members, glink, err := d.GroupMembersRound(ctx, gids)
			if err != nil {
				t.Fatal(err)
			}
			if glink == "" {
				t.Fatal("the groups round ended without a deltaLink")
			}
			byGroup := map[string]entratest.Group{}
			for _, g := range sim.Groups() {
				byGroup[g.ID] = g
			}
			for _, gid := range gids {
				got, want := slices.Sorted(slices.Values(members[gid])), slices.Sorted(slices.Values(byGroup[gid].Members))
				if !slices.Equal(got, want) {
					t.Fatalf("group %s: %d members read, want %d", byGroup[gid].DisplayName, len(got), len(want))
				}
			}
			c := sim.Requests()
			t.Logf("complete read: %d Graph requests (%d for 10,000 users, %d for the members of %d groups); by route: %v",
				c.Total, userReqs, c.Total-userReqs, len(gids), c.ByRoute)
			if c.Total > 100 {
				t.Fatalf("complete read took %d requests, budget is 100", c.Total)
			}

			// The links carry on from the read: an unchanged tenant
			// answers nothing, one change answers that change.
			sim.UpdateUser(ids[7], map[string]any{"jobTitle": "By hand"})
			sim.RemoveMember(gids[0], byGroup[gids[0]].Members[0])
			uc, _, err := d.UsersDelta(ctx, ulink)
			if err != nil {
				t.Fatal(err)
			}
			mc, _, err := d.GroupMembersDelta(ctx, gids, glink)
			if err != nil {
				t.Fatal(err)
			}
			if len(uc) != 1 || uc[0].User.ID != ids[7] || len(mc) != 1 || !mc[0].Removed || mc[0].UserID != byGroup[gids[0]].Members[0] {
				t.Fatalf("after the read: users delta %+v, members delta %+v; want the one title change and the one removal", uc, mc)
			}
		})
	}
}

// BenchmarkListUsers10k measures one full user read (10,000 users, 50 delta
// pages) through azidentity + msgraph-sdk-go against the simulator.
func BenchmarkListUsers10k(b *testing.B) {
	sim, d, _ := newSimDirectory(b, entratest.Options{})
	seedCompany(sim, 10000, 0, 0)
	ctx := ctxT(b)
	b.ResetTimer()
	for b.Loop() {
		if _, err := d.ListUsers(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreateUser measures one user create (token cached) against the simulator.
func BenchmarkCreateUser(b *testing.B) {
	_, d, _ := newSimDirectory(b, entratest.Options{})
	ctx := ctxT(b)
	i := 0
	for b.Loop() {
		i++
		if _, err := d.CreateUser(ctx, newUser(i)); err != nil {
			b.Fatal(err)
		}
	}
}
