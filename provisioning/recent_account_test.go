package provisioning_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"github.com/personio-entra/personio-entra/provisioning/provisioningtest"
	"github.com/personio-entra/personio-entra/queue/work"
)

var transient = &provisioning.DirectoryError{Kind: provisioning.KindTransient, Op: "test", Message: "injected"}

func startedYesterday(e *model.Employee) { e.StartDate = model.DateOf(safetyNow.AddDate(0, 0, -1)) }

// count is how many writes of the kind the directory accepted.
func (env *lifecycleEnv) count(op string) int {
	n := 0
	for _, o := range env.ops() {
		if o == op {
			n++
		}
	}
	return n
}

// A returner's account comes back from the recycle bin under a name that
// is no longer among their candidates (Ada Byron is Ada Lovelace now; the
// old name is free, so it is kept), the reconcile fails after the restore,
// and the retry runs in another worker while Graph's lookups do not show
// the restored account yet. The retry works on that account, read by its
// object id; it never creates a second one. When not even the read by id
// shows it yet, the retry fails, to be retried, and creates nothing.
func TestRestoredAccountIsNotCreatedAgainWhileGraphLags(t *testing.T) {
	tests := []struct {
		name string
		lag  provisioningtest.Lag
	}{
		{"filtered reads lag", provisioningtest.Lag{}},
		{"filtered reads lag, the deleted-items listing still shows it", provisioningtest.Lag{DeletedListing: true}},
		{"reads by id lag too", provisioningtest.Lag{ByID: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			env := newLifecycleEnv(t, "keep", "", provisioning.GuardSettings{MaxCount: 100})
			old := env.leaveAndDelete(t, "7", employee("7", "Ada", "Byron"))
			env.src.Set(employee("7", "Ada", "Lovelace", startedYesterday))
			env.dir.LagWrites(tt.lag)
			env.dir.Fail("ListUserGroups", transient) // the step after the restore
			if _, err := env.eng.Reconcile(ctx, "7", "test"); err == nil || work.IsTerminal(err) {
				t.Fatalf("first reconcile: %v, want a retryable error", err)
			}
			if env.dir.Deleted(old) {
				t.Fatal("the account was not restored")
			}
			env.dir.Fail("ListUserGroups", nil)
			env.rebuild(t) // the retry runs in another worker process

			res, err := env.eng.Reconcile(ctx, "7", "retry")
			if tt.lag.ByID {
				if err == nil || work.IsTerminal(err) {
					t.Fatalf("retry while the account cannot be read: %v, want a retryable error", err)
				}
				if n := env.count("CreateUser"); n != 0 {
					t.Fatalf("%d accounts created while the restored one could not be read", n)
				}
				env.dir.Replicate()
				res, err = env.eng.Reconcile(ctx, "7", "retry")
			}
			if err != nil {
				t.Fatalf("retry: %v", err)
			}
			if n := env.count("CreateUser"); n != 0 || res.Plan.UserID != old {
				t.Fatalf("retry created %d account(s) and went on with %q, want the restored %s; writes %v", n, res.Plan.UserID, old, env.ops())
			}
			if n := env.count("RestoreUser"); n != 1 {
				t.Errorf("%d restores, want 1", n)
			}
			env.dir.Replicate()
			users := withEmployeeID(env.dir, "7")
			if len(users) != 1 || users[0].ID != old || !users[0].AccountEnabled || !env.dir.IsMember(env.finance, old) {
				t.Fatalf("accounts with employeeId 7: %+v; want the restored %s, enabled and in its group", users, old)
			}
		})
	}
}

// A restore whose answer is lost (Graph restored the account, the
// request timed out) is retried while Graph's lookups do not show the
// account: the retry uses it instead of creating a second account.
func TestRestoreWithLostAnswerIsNotCreatedAgain(t *testing.T) {
	ctx := context.Background()
	env := newLifecycleEnv(t, "keep", "", provisioning.GuardSettings{MaxCount: 100})
	old := env.leaveAndDelete(t, "7", employee("7", "Ada", "Byron"))
	env.src.Set(employee("7", "Ada", "Lovelace", startedYesterday))
	env.dir.LagWrites(provisioningtest.Lag{})
	env.dir.LoseAnswer("RestoreDeletedUser")
	if _, err := env.eng.Reconcile(ctx, "7", "test"); err == nil || work.IsTerminal(err) {
		t.Fatalf("first reconcile: %v, want a retryable error", err)
	}
	res, err := env.eng.Reconcile(ctx, "7", "retry")
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if n := env.count("CreateUser"); n != 0 || res.Plan.UserID != old {
		t.Fatalf("retry created %d account(s) and went on with %q, want %s; writes %v", n, res.Plan.UserID, old, env.ops())
	}
	env.dir.Replicate()
	if users := withEmployeeID(env.dir, "7"); len(users) != 1 || users[0].ID != old || !users[0].AccountEnabled {
		t.Fatalf("accounts with employeeId 7: %+v", users)
	}
}

// A new account is still invisible to Graph's lookups when the person is
// reconciled again with another name (HR corrected a typo right after
// creating the person): the second reconcile must not create an account
// under the corrected name.
func TestNewAccountIsNotCreatedAgainUnderAnotherName(t *testing.T) {
	ctx := context.Background()
	env := newLifecycleEnv(t, "keep", "", provisioning.GuardSettings{MaxCount: 100})
	env.dir.LagWrites(provisioningtest.Lag{})
	env.src.Set(employee("8", "Jon", "Doe"))
	first := env.reconcile(t, "8").Plan.UserID
	env.src.Set(employee("8", "John", "Doe"))
	env.rebuild(t) // another worker process
	res, err := env.eng.Reconcile(ctx, "8", "person.updated")
	if err != nil {
		t.Fatalf("second reconcile: %v", err)
	}
	if n := env.count("CreateUser"); n != 1 || res.Plan.UserID != first {
		t.Fatalf("%d creates; the second reconcile went on with %q, want %s; writes %v", n, res.Plan.UserID, first, env.ops())
	}
	env.dir.Replicate()
	if users := withEmployeeID(env.dir, "8"); len(users) != 1 || users[0].Attributes["displayName"] != "John Doe" {
		t.Fatalf("accounts with employeeId 8: %+v", users)
	}
}

// A create whose answer is lost (Graph stored the account, the request
// timed out) is retried after the name changed, while Graph does not show
// the account yet: the retry tries the name of the lost create first, so
// it runs into that account instead of creating one under the new name.
func TestCreateWithLostAnswerIsNotCreatedAgainUnderAnotherName(t *testing.T) {
	ctx := context.Background()
	env := newLifecycleEnv(t, "keep", "", provisioning.GuardSettings{MaxCount: 100},
		func(c *provisioning.Config) { c.ReplicationWait = 50 * time.Millisecond })
	env.dir.LagWrites(provisioningtest.Lag{ByID: true})
	env.dir.LoseAnswer("CreateUser")
	env.src.Set(employee("8", "Jon", "Doe"))
	if _, err := env.eng.Reconcile(ctx, "8", "test"); err == nil || work.IsTerminal(err) {
		t.Fatalf("first reconcile: %v, want a retryable error", err)
	}
	env.src.Set(employee("8", "John", "Doe"))
	env.rebuild(t)
	if _, err := env.eng.Reconcile(ctx, "8", "retry"); err == nil || work.IsTerminal(err) {
		t.Fatalf("retry while the stored account is invisible: %v, want a retryable error", err)
	}
	if n := env.count("CreateUser"); n != 1 {
		t.Fatalf("%d creates, want the lost one only; writes %v", n, env.ops())
	}
	env.dir.Replicate()
	res := env.reconcile(t, "8")
	users := withEmployeeID(env.dir, "8")
	if len(users) != 1 || res.Plan.UserID != users[0].ID || users[0].UserPrincipalName != "jon.doe@example.com" {
		t.Fatalf("accounts with employeeId 8: %+v (plan user %s)", users, res.Plan.UserID)
	}
}

// The complete sync reads Entra before a new account shows in its
// listing: it plans a create and queues the person. The queued reconcile
// finds the account the sync missed instead of creating another.
func TestSyncQueuedReconcileFindsTheAccountTheSyncMissed(t *testing.T) {
	ctx := context.Background()
	env := newLifecycleEnv(t, "keep", "", provisioning.GuardSettings{MaxCount: 100},
		func(c *provisioning.Config) { c.ReplicationWait = 50 * time.Millisecond })
	env.dir.LagWrites(provisioningtest.Lag{})
	env.src.Set(employee("9", "Grace", "Hopper"))
	first := env.reconcile(t, "9").Plan.UserID
	rep, err := env.syncer().Run(ctx, provisioning.SyncOptions{Complete: true, WithPlans: true})
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(rep.Plans, func(p provisioning.Plan) bool { return p.PersonID == "9" })
	if i < 0 || len(rep.Plans[i].Changes) == 0 || rep.Plans[i].Changes[0].Kind != provisioning.CreateUser {
		t.Fatalf("the sync did not miss the account (plans %+v); the test needs it to", rep.Plans)
	}
	res, err := env.eng.Reconcile(ctx, "9", "sync")
	if err != nil {
		t.Fatalf("queued reconcile: %v", err)
	}
	if n := env.count("CreateUser"); n != 1 || res.Plan.UserID != first {
		t.Fatalf("%d creates; the queued reconcile went on with %q, want %s", n, res.Plan.UserID, first)
	}
}
