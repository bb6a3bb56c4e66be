package entra

import (
	"context"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"sync"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/entra/entratest"
	"github.com/personio-entra/personio-entra/rules"
)

type staticSource struct{ emp model.Employee }

func (s staticSource) GetEmployee(context.Context, string) (model.Employee, error) {
	return s.emp, nil
}
func (s staticSource) ListEmployees(context.Context) ([]model.Employee, error) {
	return []model.Employee{s.emp}, nil
}
func (s staticSource) ConfirmDeleted(context.Context, string) (bool, error) { return false, nil }

// joinerRules wants an enabled account with two UPN candidates.
type joinerRules struct{}

func (joinerRules) Evaluate(e model.Employee, _ time.Time) (rules.Desired, error) {
	return rules.Desired{PersonID: e.PersonID, Phase: rules.PhaseActive, Reason: "active", Exists: true, AccountEnabled: true,
		Attributes: map[string]rules.Value{
			"displayName": {Value: e.FirstName + " " + e.LastName, Policy: rules.Always},
			"employeeId":  {Value: e.PersonID, Policy: rules.Always},
		},
		UPNCandidates: []string{"ada.lovelace@example.com", "a.lovelace@example.com"}, MailNickname: "adalovelace"}, nil
}

// A create whose outcome the caller never learns (Graph stores the user
// and answers 504; the adapter's own wait for it ends before the user is
// replicated), raced by further reconciles of the same person, through the
// real adapter against the simulator: every reconcile ends up with the one
// account that was stored, none creates a second with the next UPN.
func TestCreateWithUnknownOutcomeNeverMakesASecondAccount(t *testing.T) {
	sim, d, _ := newSimDirectory(t, entratest.Options{ReplicationDelay: 1500 * time.Millisecond},
		func(c *Config) { c.ReplicationWait = 300 * time.Millisecond })
	sim.SetFaults(entratest.Faults{FailCreateAfterCommit: 1})
	emp := model.Employee{PersonID: "5150", FirstName: "Ada", LastName: "Lovelace", Status: "ACTIVE"}
	eng, err := provisioning.New(provisioning.Config{Source: staticSource{emp}, Directory: d, Rules: joinerRules{},
		Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	const racers = 4
	var wg sync.WaitGroup
	results := make([]provisioning.Result, racers)
	errs := make([]error, racers)
	for i := range racers {
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 100 * time.Millisecond)
			results[i], errs[i] = eng.Reconcile(ctx, "5150", "webhook")
		})
	}
	wg.Wait()

	var mine []entratest.User
	for _, u := range sim.Users() {
		if u.EmployeeID == "5150" && !u.Deleted {
			mine = append(mine, u)
		}
	}
	if len(mine) != 1 {
		t.Fatalf("%d accounts carry employeeId 5150, want exactly 1: %+v", len(mine), mine)
	}
	if mine[0].UserPrincipalName != "ada.lovelace@example.com" {
		t.Errorf("account %s, want the first candidate", mine[0].UserPrincipalName)
	}
	for i := range racers {
		if errs[i] != nil {
			t.Errorf("reconcile %d: %v", i, errs[i])
			continue
		}
		if results[i].Plan.UserID != mine[0].ID {
			t.Errorf("reconcile %d ended with account %q, want %s", i, results[i].Plan.UserID, mine[0].ID)
		}
	}
	// Converged: one more reconcile changes nothing.
	res, err := eng.Reconcile(ctx, "5150", "sync")
	if err != nil || len(res.Plan.Changes) != 0 {
		t.Fatalf("after the race: %v, changes %v", err, res.Plan.Changes)
	}
}
