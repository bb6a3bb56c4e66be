package provisioning_test

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"github.com/personio-entra/personio-entra/provisioning/provisioningtest"
)

// readCounter counts the per-person reads a reconcile makes.
type readCounter struct {
	*provisioningtest.Directory
	finds, memberOf atomic.Int64
}

func (d *readCounter) FindUsers(ctx context.Context, key, value string) ([]provisioning.User, error) {
	d.finds.Add(1)
	return d.Directory.FindUsers(ctx, key, value)
}

func (d *readCounter) ListUserGroups(ctx context.Context, userID string) ([]string, error) {
	d.memberOf.Add(1)
	return d.Directory.ListUserGroups(ctx, userID)
}

// A reconcile queued by a complete sync uses what the sync read moments ago
// (no match, no memberOf) for changes that give or keep access, and reads
// afresh when the snapshot is stale, was overtaken by another reconcile, or
// would take access away.
func TestSyncQueuedReconcileUsesFreshSnapshot(t *testing.T) {
	for _, tc := range []struct {
		name string
		// change is made in Personio before the sync; between runs after
		// the sync, before the queued reconcile.
		change    func(e *model.Employee)
		between   func(t *testing.T, env *safetyEnv, clock *time.Time)
		wantReads bool
		check     func(t *testing.T, env *safetyEnv, userID string)
	}{
		{
			name:   "title change: the sync's read is used",
			change: func(e *model.Employee) { e.Position = "Controller" },
			check: func(t *testing.T, env *safetyEnv, id string) {
				if got := env.dir.User(id).Attributes["jobTitle"]; got != "Controller" {
					t.Fatalf("jobTitle %q, want Controller", got)
				}
			},
		},
		{
			name:      "leaving a group is destructive: re-read before it is taken away",
			change:    func(e *model.Employee) { e.Department = model.Ref{ID: "2", Name: "Sales"} },
			wantReads: true,
			check: func(t *testing.T, env *safetyEnv, id string) {
				if env.dir.IsMember(env.finance, id) {
					t.Fatal("still in Finance after moving to Sales")
				}
			},
		},
		{
			name:   "older than the snapshot lifetime: read afresh",
			change: func(e *model.Employee) { e.Position = "Controller" },
			between: func(_ *testing.T, _ *safetyEnv, clock *time.Time) {
				*clock = clock.Add(3 * time.Minute)
			},
			wantReads: true,
		},
		{
			name:   "another reconcile ran in between: read afresh",
			change: func(e *model.Employee) { e.Position = "Controller" },
			between: func(t *testing.T, env *safetyEnv, _ *time.Time) {
				if _, err := env.eng.Reconcile(context.Background(), "1", model.EventEmploymentUpdated); err != nil {
					t.Fatal(err)
				}
			},
			wantReads: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newEngineEnv(t)
			env.src.Set(employee("1", "Ada", "One"))
			ids := env.converge(t, "1")
			clock := safetyNow
			dir := &readCounter{Directory: env.dir}
			var keys []provisioning.MatchKey
			for _, k := range env.rules.MatchKeys() {
				keys = append(keys, provisioning.MatchKey{Property: k.Property, Field: k.Field})
			}
			eng, err := provisioning.New(provisioning.Config{
				Source: env.src, Directory: dir, Rules: env.rules, ManagedGroups: env.rules.ManagedGroups(), ManageManager: true, MatchKeys: keys,
				State: env.state, Guard: provisioning.GuardSettings{MaxCount: 100}, Scheduler: env.q,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return clock },
			})
			if err != nil {
				t.Fatal(err)
			}
			env.eng = eng
			e := employee("1", "Ada", "One")
			tc.change(&e)
			env.src.Set(e)
			s := provisioning.NewSyncer(provisioning.SyncConfig{Engine: eng, Queue: env.q, State: env.state})
			rep, err := s.Run(context.Background(), provisioning.SyncOptions{Complete: true})
			if err != nil || rep.Enqueued != 1 {
				t.Fatalf("sync: %+v, %v; want person 1 queued", rep, err)
			}
			if tc.between != nil {
				tc.between(t, env, &clock)
			}
			dir.finds.Store(0)
			dir.memberOf.Store(0)
			res, err := eng.Reconcile(context.Background(), "1", "sync")
			if err != nil {
				t.Fatalf("queued reconcile: %v", err)
			}
			reads := dir.finds.Load() + dir.memberOf.Load()
			switch {
			case tc.wantReads && (dir.finds.Load() == 0 || dir.memberOf.Load() == 0):
				t.Fatalf("the reconcile made %d match and %d memberOf reads; want fresh reads", dir.finds.Load(), dir.memberOf.Load())
			case !tc.wantReads && reads != 0:
				t.Fatalf("the reconcile made %d match and %d memberOf reads; want the sync's snapshot used", dir.finds.Load(), dir.memberOf.Load())
			}
			if len(res.Plan.Changes) == 0 && tc.between == nil {
				t.Fatalf("the queued reconcile changed nothing: %+v", res.Plan)
			}
			if tc.check != nil {
				tc.check(t, env, ids["1"])
			}
			// Used once: a second sync-triggered reconcile reads.
			dir.finds.Store(0)
			if _, err := eng.Reconcile(context.Background(), "1", "sync"); err != nil {
				t.Fatal(err)
			}
			if dir.finds.Load() == 0 {
				t.Fatal("a second reconcile of the same work used the snapshot again")
			}
		})
	}
}
