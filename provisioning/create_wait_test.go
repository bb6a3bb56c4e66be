package provisioning

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/provisioning/model"
	"github.com/personio-entra/personio-entra/queue/work"
	"github.com/personio-entra/personio-entra/rules"
)

// An earlier create of this person that Graph stored but has not
// replicated yet holds the first UPN candidate: the retry waits for it and
// uses it instead of creating a second account with the next candidate.
func TestCreateWaitsForOwnUnreplicatedAccount(t *testing.T) {
	dir := &replDir{}
	dir.add(User{ID: "mine", UserPrincipalName: "jane.doe@example.com", EmployeeID: "4711", UserType: UserTypeMember, AccountEnabled: true},
		time.Now().Add(400*time.Millisecond))
	e := newMatchEngine(t, dir, nil)
	res, err := e.Reconcile(context.Background(), "4711", "retry")
	if err != nil {
		t.Fatal(err)
	}
	if res.Plan.UserID != "mine" || len(dir.creates) != 0 {
		t.Fatalf("want the stored account used; plan user %q, creates %v", res.Plan.UserID, dir.creates)
	}
}

// Someone else's account that is not readable yet holds the first
// candidate: once it is readable, the next candidate is used.
func TestCreateMovesOnWhenTheHiddenAccountIsSomeoneElses(t *testing.T) {
	dir := &replDir{}
	dir.add(User{ID: "other", UserPrincipalName: "jane.doe@example.com", EmployeeID: "1234", UserType: UserTypeMember},
		time.Now().Add(300*time.Millisecond))
	e := newMatchEngine(t, dir, nil)
	res, err := e.Reconcile(context.Background(), "4711", "test")
	if err != nil {
		t.Fatal(err)
	}
	if res.Plan.UPN != "j.doe@example.com" || len(dir.creates) != 1 {
		t.Fatalf("want the second candidate; plan UPN %q, creates %v", res.Plan.UPN, dir.creates)
	}
}

// The account holding the first candidate stays invisible for longer than
// the replication window: the create fails retryably and tries no other
// candidate (that could be a second account for the person).
func TestCreateStopsRetryablyWhenTheHolderStaysUnknown(t *testing.T) {
	dir := &replDir{}
	dir.add(User{ID: "hidden", UserPrincipalName: "jane.doe@example.com", EmployeeID: "4711", UserType: UserTypeMember},
		time.Now().Add(time.Hour))
	e := newMatchEngine(t, dir, nil)
	e.cfg.ReplicationWait = 300 * time.Millisecond
	start := time.Now()
	_, err := e.Reconcile(context.Background(), "4711", "retry")
	if err == nil || work.IsTerminal(err) {
		t.Fatalf("want a retryable error, got %v", err)
	}
	if len(dir.creates) != 0 {
		t.Fatalf("a candidate was created while the first one's holder was unknown: %v", dir.creates)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 5*time.Second {
		t.Errorf("waited %s, want about the replication window", d)
	}
}

// preHireRules want the account disabled until the start date.
type preHireRules struct{}

func (preHireRules) Evaluate(e model.Employee, now time.Time) (rules.Desired, error) {
	d, err := activeRules{}.Evaluate(e, now)
	d.Phase, d.Reason, d.AccountEnabled = rules.PhasePreHire, "starts later", false
	return d, err
}

// A create that finds this person's account already stored (the response
// of an earlier create was lost, or replication hid it from the match)
// takes no access away from it on the way: what would (here: disabling an
// enabled account) waits for a reconcile that passes the safeguard.
func TestCreateFoundAccountLosesNoAccessOutsideTheSafeguard(t *testing.T) {
	dir := &replDir{}
	dir.add(User{ID: "mine", UserPrincipalName: "jane.doe@example.com", EmployeeID: "4711", UserType: UserTypeMember, AccountEnabled: true},
		time.Now().Add(400*time.Millisecond))
	e, err := New(Config{Source: oneEmployee{janeDoe}, Directory: dir, Rules: preHireRules{}, Logger: slog.New(slog.DiscardHandler),
		MatchKeys: []MatchKey{{"employeeId", "person_id"}}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.Reconcile(context.Background(), "4711", "retry")
	if err != nil {
		t.Fatal(err)
	}
	if res.Plan.UserID != "mine" || len(dir.creates) != 0 {
		t.Fatalf("want the stored account used; plan user %q, creates %v", res.Plan.UserID, dir.creates)
	}
	if len(dir.enabled) != 0 {
		t.Fatalf("the found account was disabled outside the safeguard: %v", dir.enabled)
	}
	if !res.Plan.Wait {
		t.Errorf("the held change is not retried: plan %+v", res.Plan)
	}
}
