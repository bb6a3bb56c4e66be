package main

import (
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/provisioning/entra/entratest"
)

// The reconcile that creates a joiner's account fails right after Graph
// stored it (the next request answers 500), and the queue retries before
// Graph has replicated the new account: the retry finds the UPN taken,
// waits for the account that holds it, sees the person's employeeId on it
// and goes on with it. Exactly one account exists, with the first UPN.
func TestEndToEndRetriedCreateDoesNotDuplicate(t *testing.T) {
	const replication = 5 * time.Second
	s := newTestStack(t, stackOptions{replication: replication})
	convergeE2E(t, s)

	// The first request after the create reads the new account's groups.
	const memberOf = "GET /users/{id}/memberOf/graph.group"
	s.entra.SetFaults(entratest.Faults{FailRequests: map[string]int{memberOf: 1}})
	s.personio.UpsertPerson(joiner("3301", "Hedy", "Lamarr", 3, nil))
	u := eventually(t, s, "3301", "account with its groups", func(u entratest.User, found bool) bool {
		return found && len(groupsOf(s, u.ID)) == 2
	})
	time.Sleep(replication) // a second account would be replicated by now
	convergeE2E(t, s)
	us := usersWithEmployeeID(s, "3301")
	if len(us) != 1 {
		t.Fatalf("%d accounts carry employeeId 3301, want 1: %+v", len(us), us)
	}
	if u.UserPrincipalName != "hedy.lamarr@example.com" || us[0].ID != u.ID {
		t.Errorf("account %s (%s), want hedy.lamarr@example.com", us[0].UserPrincipalName, us[0].ID)
	}
	if c := s.entra.Requests().ByRoute[memberOf]; c < 2 {
		t.Errorf("the injected failure was not reached (%d memberOf reads)", c)
	}
}
