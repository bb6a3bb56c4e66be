package provisioning_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"github.com/personio-entra/personio-entra/provisioning/provisioningtest"
)

// incSource is the in-memory Personio with an updated_since list: it
// reports the people in updated as changed.
type incSource struct {
	*provisioningtest.Source
	updated []string
	calls   int
}

func (s *incSource) ListEmployeesUpdatedSince(ctx context.Context, _ time.Time) ([]model.Employee, error) {
	s.calls++
	var out []model.Employee
	for _, id := range s.updated {
		e, err := s.GetEmployee(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// deltaEnv: three Finance people with owned accounts, and a complete sync
// run, so that the delta links start after everything converged.
func newDeltaEnv(t *testing.T) (*safetyEnv, *incSource, *provisioning.Syncer, map[string]string) {
	t.Helper()
	env := newEngineEnv(t)
	src := &incSource{Source: env.src}
	for _, p := range []model.Employee{employee("1", "Ada", "One"), employee("2", "Bea", "Two"), employee("3", "Cem", "Three")} {
		env.src.Set(p)
	}
	ids := env.converge(t, "1", "2", "3")
	env.eng = env.engineWithSource(t, src)
	s := provisioning.NewSyncer(provisioning.SyncConfig{Engine: env.eng, Queue: env.q, State: env.state})
	rep := runSync(t, s)
	if rep.Kind != "complete" || rep.Drifting != 0 {
		t.Fatalf("first sync: %+v, want a complete sync without drift", rep)
	}
	return env, src, s, ids
}

// engineWithSource is env's engine over another Personio.
func (env *safetyEnv) engineWithSource(t *testing.T, src provisioning.Source) *provisioning.Engine {
	t.Helper()
	return env.engineWith(t, src, env.dir, provisioning.GuardSettings{MaxCount: 100})
}

// engineWith is the env's engine over another source and directory.
func (env *safetyEnv) engineWith(t *testing.T, src provisioning.Source, dir provisioning.Directory, guard provisioning.GuardSettings) *provisioning.Engine {
	t.Helper()
	var keys []provisioning.MatchKey
	for _, k := range env.rules.MatchKeys() {
		keys = append(keys, provisioning.MatchKey{Property: k.Property, Field: k.Field})
	}
	eng, err := provisioning.New(provisioning.Config{
		Source: src, Directory: dir, Rules: env.rules, ManagedGroups: env.rules.ManagedGroups(), ManageManager: true, MatchKeys: keys,
		OnDeleted: provisioning.LeaverActions{RevokeSessions: true, RemoveMemberships: true},
		State:     env.state, Guard: guard, Scheduler: env.q,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return safetyNow },
	})
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

func runSync(t *testing.T, s *provisioning.Syncer) provisioning.SyncReport {
	t.Helper()
	rep, err := s.Run(context.Background(), provisioning.SyncOptions{})
	if err != nil {
		t.Fatalf("sync: %v (report %+v)", err, rep)
	}
	return rep
}

// enqueuedSince returns what was enqueued after the first n entries, sorted.
func enqueuedSince(q *provisioningtest.Queue, n int) []string {
	out := q.Enqueued()[n:]
	slices.Sort(out)
	return out
}

func TestIncrementalSyncFindsEntraDrift(t *testing.T) {
	env, src, s, ids := newDeltaEnv(t)
	ctx := context.Background()
	n := len(env.q.Enqueued())

	// Nothing changed anywhere: nobody is enqueued.
	rep := runSync(t, s)
	if rep.Kind != "incremental" || rep.Enqueued != 0 || rep.EntraChanged != 0 || len(rep.DeltaErrors) != 0 {
		t.Fatalf("quiet incremental sync: %+v", rep)
	}
	if src.calls != 1 {
		t.Fatalf("Personio updated_since read %d times, want 1", src.calls)
	}

	// By hand in Entra: 1's job title, 2 out of Finance. Personio reports 3.
	title := "Chief Everything"
	if err := env.dir.UpdateUser(ctx, ids["1"], map[string]*string{"jobTitle": &title}); err != nil {
		t.Fatal(err)
	}
	if err := env.dir.RemoveGroupMember(ctx, env.finance, ids["2"]); err != nil {
		t.Fatal(err)
	}
	src.updated = []string{"3"}
	rep = runSync(t, s)
	if got, want := enqueuedSince(env.q, n), []string{"1", "2", "3"}; !slices.Equal(got, want) {
		t.Fatalf("enqueued %v, want %v (report %+v)", got, want, rep)
	}
	if rep.EntraChanged != 2 || rep.Enqueued != 3 {
		t.Errorf("report %+v: want 2 people changed in Entra, 3 enqueued", rep)
	}

	// The links moved on: the same changes are not reported twice.
	src.updated = nil
	n = len(env.q.Enqueued())
	if rep = runSync(t, s); rep.Enqueued != 0 {
		t.Fatalf("second incremental sync enqueued %v again", enqueuedSince(env.q, n))
	}
}

// A deleted account is found through its ownership record; an account that
// is not owned but was put into a managed group by hand is read for its
// employeeId; a change to a group that is not managed is ignored.
func TestIncrementalSyncMapsRemovedAndUnownedAccounts(t *testing.T) {
	env, _, s, ids := newDeltaEnv(t)
	ctx := context.Background()
	other := env.dir.AddGroup(provisioning.Group{DisplayName: "Project X"})
	stranger := env.dir.AddUser(provisioning.User{UserPrincipalName: "x@example.com", EmployeeID: "X9", AccountEnabled: true})
	// Seeding the user is a change too; only the membership below is of interest.
	runSync(t, s)
	n := len(env.q.Enqueued())

	if err := env.dir.DeleteUser(ctx, ids["1"]); err != nil {
		t.Fatal(err)
	}
	if err := env.dir.AddGroupMembers(ctx, env.groups["Sales"], []string{stranger}); err != nil {
		t.Fatal(err)
	}
	if err := env.dir.AddGroupMembers(ctx, other, []string{ids["3"]}); err != nil {
		t.Fatal(err)
	}
	rep := runSync(t, s)
	if got, want := enqueuedSince(env.q, n), []string{"1", "X9"}; !slices.Equal(got, want) {
		t.Fatalf("enqueued %v, want %v (report %+v)", got, want, rep)
	}
}

// A delta link Graph no longer accepts turns the run into a complete sync,
// which succeeds and starts new links; the next incremental sync uses them.
func TestExpiredDeltaLinkFallsBackToCompleteSync(t *testing.T) {
	env, _, s, ids := newDeltaEnv(t)
	ctx := context.Background()
	env.dir.ExpireDeltaLinks()
	rep := runSync(t, s)
	if rep.Kind != "complete" || !rep.DeltaReset {
		t.Fatalf("sync with an expired link: %+v, want a complete sync marked delta_reset", rep)
	}
	title := "Edited"
	if err := env.dir.UpdateUser(ctx, ids["2"], map[string]*string{"jobTitle": &title}); err != nil {
		t.Fatal(err)
	}
	n := len(env.q.Enqueued())
	rep = runSync(t, s)
	if rep.Kind != "incremental" || rep.DeltaReset {
		t.Fatalf("sync after the reset: %+v, want an incremental one", rep)
	}
	if got := enqueuedSince(env.q, n); !slices.Equal(got, []string{"2"}) {
		t.Fatalf("enqueued %v after the reset, want [2]", got)
	}
}

// A delta read that fails (Graph down) does not fail the incremental sync:
// Personio's changes are still enqueued, and the link stays where it was, so
// the next sync reports what the failed one missed.
func TestFailedDeltaReadKeepsTheLink(t *testing.T) {
	env, src, s, ids := newDeltaEnv(t)
	ctx := context.Background()
	title := "Edited"
	if err := env.dir.UpdateUser(ctx, ids["1"], map[string]*string{"jobTitle": &title}); err != nil {
		t.Fatal(err)
	}
	env.dir.Fail("UsersDelta", &provisioning.DirectoryError{Kind: provisioning.KindTransient, Op: "users delta"})
	src.updated = []string{"3"}
	n := len(env.q.Enqueued())
	rep := runSync(t, s)
	if rep.Kind != "incremental" || len(rep.DeltaErrors) != 1 {
		t.Fatalf("report %+v: want an incremental sync with one delta error", rep)
	}
	if got := enqueuedSince(env.q, n); !slices.Equal(got, []string{"3"}) {
		t.Fatalf("enqueued %v, want Personio's [3]", got)
	}
	env.dir.Fail("UsersDelta", nil)
	src.updated = nil
	n = len(env.q.Enqueued())
	runSync(t, s)
	if got := enqueuedSince(env.q, n); !slices.Equal(got, []string{"1"}) {
		t.Fatalf("enqueued %v once the delta read works again, want [1]", got)
	}
}

// Without stored links (an installation from before delta support), the
// first incremental sync starts them and the next one follows them.
func TestIncrementalSyncStartsMissingLinks(t *testing.T) {
	env, _, s, ids := newDeltaEnv(t)
	ctx := context.Background()
	for _, k := range []string{"delta.users", "delta.groups"} {
		if err := env.state.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if rep := runSync(t, s); rep.Kind != "incremental" || rep.Enqueued != 0 {
		t.Fatalf("first incremental sync without links: %+v", rep)
	}
	if err := env.dir.RemoveGroupMember(ctx, env.finance, ids["3"]); err != nil {
		t.Fatal(err)
	}
	n := len(env.q.Enqueued())
	runSync(t, s)
	if got := enqueuedSince(env.q, n); !slices.Equal(got, []string{"3"}) {
		t.Fatalf("enqueued %v, want [3]", got)
	}
}
