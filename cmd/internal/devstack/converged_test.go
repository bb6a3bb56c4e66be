package devstack

import (
	"testing"

	"github.com/personio-entra/personio-entra/deploy"
	"github.com/personio-entra/personio-entra/provisioning/personio/personiotest"
	"github.com/personio-entra/personio-entra/rules"
)

// A converged start gives every person in scope one account with their
// employeeId, puts the accounts in the managed groups and links managers.
func TestStartConverged(t *testing.T) {
	rs, err := rules.LoadBytes("rules.yaml", deploy.RulesExample)
	if err != nil {
		t.Fatal(err)
	}
	sims, err := Start(Options{Rules: rs, People: personiotest.GenerateCompany(54), Converged: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sims.Close()
	users := sims.Entra.Users()
	if len(users) == 0 {
		t.Fatal("no accounts seeded")
	}
	seen, managers := map[string]bool{}, 0
	for _, u := range users {
		if u.EmployeeID == "" || seen[u.EmployeeID] {
			t.Fatalf("account %s: employeeId %q missing or repeated", u.UserPrincipalName, u.EmployeeID)
		}
		seen[u.EmployeeID] = true
		if u.ManagerID != "" {
			managers++
		}
	}
	if managers == 0 {
		t.Error("no account has a manager")
	}
	members := 0
	for _, id := range sims.Groups {
		members += len(sims.Entra.Members(id))
	}
	if members == 0 {
		t.Error("the managed groups have no members")
	}
	t.Logf("%d accounts, %d with a manager, %d memberships", len(users), managers, members)
}
