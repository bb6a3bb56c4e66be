package provisioning_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"github.com/personio-entra/personio-entra/queue/work"
)

func married(e *model.Employee) { e.LastName = "Byron" }

// Under keep, a surname change updates the name properties and leaves the
// sign-in name alone.
func TestNameChangeKeep(t *testing.T) {
	env := newLifecycleEnv(t, "keep", "", provisioning.GuardSettings{MaxCount: 100})
	env.src.Set(employee("7", "Ada", "Lovelace"))
	uid := env.converge(t, "7")["7"]
	env.src.Set(employee("7", "Ada", "Lovelace", married))
	env.dir.ResetWrites()
	res := env.reconcile(t, "7")
	u := env.dir.User(uid)
	if u.UserPrincipalName != "ada.lovelace@example.com" || u.Attributes["surname"] != "Byron" {
		t.Errorf("account %+v", u)
	}
	if len(env.audit.of(provisioning.RenameUser)) != 0 || slices.ContainsFunc(res.Plan.Changes, func(c provisioning.Change) bool { return c.Kind == provisioning.RenameUser }) {
		t.Error("keep renamed the account")
	}
}

// Under rename, the new name gives the first free candidate (chosen as a
// create chooses), the mail nickname follows, the plan shows it, the audit
// records old → new, and the new name is written back to Personio when
// write-back is on.
func TestNameChangeRename(t *testing.T) {
	var mu sync.Mutex
	written := map[string]string{}
	env := newLifecycleEnv(t, "rename", "", provisioning.GuardSettings{MaxCount: 100}, func(c *provisioning.Config) {
		c.WriteBackEmail = func(_ context.Context, personID, email string) error {
			mu.Lock()
			defer mu.Unlock()
			written[personID] = email
			return nil
		}
	})
	env.src.Set(employee("7", "Ada", "Lovelace"))
	uid := env.converge(t, "7")["7"]
	// Someone else holds the first candidate of the new name.
	env.dir.AddUser(provisioning.User{UserPrincipalName: "ada.byron@example.com", EmployeeID: "X1", AccountEnabled: true})
	env.src.Set(employee("7", "Ada", "Lovelace", married, func(e *model.Employee) { e.Position = "Lead" }))
	env.dir.ResetWrites()

	plan, err := env.eng.PlanFor(context.Background(), "7")
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(plan.Changes, func(c provisioning.Change) bool { return c.Kind == provisioning.RenameUser })
	if i < 0 || plan.Changes[i].String() != "rename ada.lovelace@example.com → a.byron@example.com" {
		t.Fatalf("plan %v: want the rename to a.byron@example.com", plan.Changes)
	}
	if env.dir.Writes() != 0 {
		t.Fatal("the plan wrote")
	}

	env.reconcile(t, "7")
	u := env.dir.User(uid)
	if u.UserPrincipalName != "a.byron@example.com" || u.Attributes["mailNickname"] != "abyron" || u.Attributes["surname"] != "Byron" || u.Attributes["jobTitle"] != "Lead" {
		t.Errorf("renamed account %+v", u)
	}
	if got := env.ops(); !slices.Equal(got, []string{"UpdateUser"}) {
		t.Errorf("writes %v, want the rename and the other changes in one update", got)
	}
	recs := env.audit.of(provisioning.RenameUser)
	if len(recs) != 1 || recs[0].Change.Previous["userPrincipalName"] != "ada.lovelace@example.com" ||
		*recs[0].Change.Properties["userPrincipalName"] != "a.byron@example.com" || recs[0].Result != provisioning.ResultApplied {
		t.Errorf("audit %+v", recs)
	}
	if written["7"] != "a.byron@example.com" {
		t.Errorf("written back %v", written)
	}
	// Converged: the next run renames nothing.
	env.dir.ResetWrites()
	if res := env.reconcile(t, "7"); len(res.Plan.Changes) != 0 {
		t.Errorf("second run %v", res.Plan.Changes)
	}
}

// The edges of a rename: a name Graph refuses as taken (a deleted
// account's reserved name, invisible to reads) moves on to the next
// candidate; a UPN that still fits the new name is kept; a change that is
// not a name change renames nothing; with every candidate taken, the name
// change waits and the person stops with an error after the rest applied.
func TestNameChangeRenameEdges(t *testing.T) {
	t.Run("reserved by a deleted account", func(t *testing.T) {
		env := newLifecycleEnv(t, "rename", "", provisioning.GuardSettings{MaxCount: 100})
		env.src.Set(employee("7", "Ada", "Lovelace"))
		uid := env.converge(t, "7")["7"]
		env.dir.AddDeletedUser(provisioning.User{UserPrincipalName: "ada.byron@example.com", EmployeeID: "X1"}, safetyNow)
		env.src.Set(employee("7", "Ada", "Lovelace", married))
		env.reconcile(t, "7")
		if u := env.dir.User(uid); u.UserPrincipalName != "a.byron@example.com" {
			t.Errorf("renamed to %s, want a.byron@example.com", u.UserPrincipalName)
		}
		if recs := env.audit.of(provisioning.RenameUser); len(recs) != 1 || *recs[0].Change.Properties["userPrincipalName"] != "a.byron@example.com" {
			t.Errorf("the audit does not name the name used: %+v", recs)
		}
	})
	t.Run("the name still fits", func(t *testing.T) {
		env := newLifecycleEnv(t, "rename", "", provisioning.GuardSettings{MaxCount: 100})
		env.dir.AddUser(provisioning.User{UserPrincipalName: "ada.lovelace@example.com", EmployeeID: "X1", AccountEnabled: true})
		env.src.Set(employee("7", "Ada", "Lovelace"))
		uid := env.converge(t, "7")["7"] // a.lovelace@example.com
		env.src.Set(employee("7", "Adah", "Lovelace"))
		env.reconcile(t, "7")
		if u := env.dir.User(uid); u.UserPrincipalName != "a.lovelace@example.com" || u.Attributes["givenName"] != "Adah" {
			t.Errorf("account %+v: want the name that still fits kept", u)
		}
	})
	t.Run("no name change, hand-made name", func(t *testing.T) {
		env := newLifecycleEnv(t, "rename", "", provisioning.GuardSettings{MaxCount: 100})
		uid := env.dir.AddUser(provisioning.User{UserPrincipalName: "al@example.com", EmployeeID: "7", AccountEnabled: true,
			Attributes: map[string]string{"displayName": "Ada Lovelace", "givenName": "Ada", "surname": "Lovelace"}})
		env.src.Set(employee("7", "Ada", "Lovelace", func(e *model.Employee) { e.Position = "Lead" }))
		env.reconcile(t, "7")
		if u := env.dir.User(uid); u.UserPrincipalName != "al@example.com" {
			t.Errorf("adopted account renamed to %s without a name change", u.UserPrincipalName)
		}
	})
	t.Run("every candidate taken", func(t *testing.T) {
		env := newLifecycleEnv(t, "rename", "", provisioning.GuardSettings{MaxCount: 100})
		env.src.Set(employee("7", "Ada", "Lovelace"))
		uid := env.converge(t, "7")["7"]
		d, err := env.rules.Evaluate(employee("7", "Ada", "Lovelace", married), safetyNow)
		if err != nil {
			t.Fatal(err)
		}
		for i, upn := range d.UPNCandidates {
			env.dir.AddUser(provisioning.User{UserPrincipalName: upn, EmployeeID: "X" + string(rune('a'+i)), AccountEnabled: true})
		}
		leaves := model.DateOf(safetyNow.AddDate(0, 0, 10))
		env.src.Set(employee("7", "Ada", "Lovelace", married, func(e *model.Employee) { e.Position = "Lead"; e.LastWorkingDay = leaves }))
		env.q.CancelSchedule(context.Background(), "7")
		_, err = env.eng.Reconcile(context.Background(), "7", "test")
		if err == nil || !work.IsTerminal(err) || !strings.Contains(err.Error(), "the name change waits") {
			t.Fatalf("err = %v, want a terminal error for an admin", err)
		}
		// The held rename stops only itself: the leave date's wake-up is
		// still booked, so the leaver is disabled on time.
		if _, ok := env.q.Scheduled("7"); !ok {
			t.Errorf("no schedule booked for the last working day while the rename is held")
		}
		u := env.dir.User(uid)
		if u.UserPrincipalName != "ada.lovelace@example.com" || u.Attributes["surname"] != "Lovelace" || u.Attributes["jobTitle"] != "Lead" {
			t.Errorf("account %+v: want the name change held and the job title applied", u)
		}
	})
}
