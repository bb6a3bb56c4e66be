package entra

import (
	"fmt"
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

// The full-sync read budget: 10,000 users with employeeId plus the members
// of 50 groups in at most 100 Graph requests (ListUsers: 50 delta pages of
// 200; members: one page of 999 per group).
func TestFullSyncRequestCount(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 users: skipped with -short")
	}
	sim, d, _ := newSimDirectory(t, entratest.Options{})
	seedCompany(sim, 10000, 50, 400)
	sim.Reset()
	ctx := ctxT(t)
	users, err := d.ListUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 10000 {
		t.Fatalf("%d users, want 10000", len(users))
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
	for _, g := range sim.Groups() {
		m, err := d.ListGroupMembers(ctx, g.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(m) != 400 {
			t.Fatalf("group %s: %d members, want 400", g.DisplayName, len(m))
		}
	}
	c := sim.Requests()
	t.Logf("full sync read: %d Graph requests (%d for 10,000 users, %d for the members of 50 groups); by route: %v",
		c.Total, userReqs, c.Total-userReqs, c.ByRoute)
	if c.Total > 100 {
		t.Fatalf("full sync read took %d requests, budget is 100", c.Total)
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
