package main

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/entra/entratest"
)

// incrementalSync runs one incremental sync as the hourly schedule would an
// hour after the last one: the sync state says the last sync ended after the
// simulator's people were stamped, so Personio's updated_since reports only
// what changed since (the delta links in the state store are left alone).
func incrementalSync(t *testing.T, s *stack) provisioning.SyncReport {
	t.Helper()
	ctx := context.Background()
	state, err := s.app.q.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	st, _ := json.Marshal(map[string]any{"last_sync": now.Add(6 * time.Minute), "last_complete": now})
	if err := state.Put(ctx, "sync.state", st); err != nil {
		t.Fatal(err)
	}
	rep, err := runSyncUntilLeased(t, s)
	if err != nil {
		t.Fatalf("sync: %v (report %+v)", err, rep)
	}
	return rep
}

// waitQuiet waits until neither Graph nor Personio has seen a request for a
// second (the workers are idle).
func waitQuiet(t *testing.T, s *stack) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	last, lastP, still := -1, int64(-1), 0
	for still < 4 {
		if time.Now().After(deadline) {
			t.Fatal("Graph and Personio requests did not stop within 60s")
		}
		n, p := s.entra.Requests().Total, s.app.source.RequestCount()
		if n == last && p == lastP {
			still++
		} else {
			still = 0
		}
		last, lastP = n, p
		time.Sleep(250 * time.Millisecond)
	}
}

// settle lets the workers converge and runs incremental syncs until one
// finds nothing: the engine's own writes show up in the next delta once.
func settle(t *testing.T, s *stack) {
	t.Helper()
	for range 4 {
		convergeE2E(t, s)
		waitQuiet(t, s)
		if rep := incrementalSync(t, s); rep.Enqueued == 0 {
			return
		}
	}
	t.Fatal("incremental syncs kept finding changes after the stack converged")
}

// measuredSync runs one incremental sync and returns its report and the
// Graph and Personio requests it made.
func measuredSync(t *testing.T, s *stack) (provisioning.SyncReport, entratest.Counters, int64) {
	t.Helper()
	waitQuiet(t, s)
	s.entra.Reset()
	before := s.app.source.RequestCount()
	rep := incrementalSync(t, s)
	return rep, s.entra.Requests(), s.app.source.RequestCount() - before
}

// The hourly incremental sync reads Entra through delta queries: a quiet
// hour costs a handful of requests, and accounts or managed-group
// memberships changed by hand in Entra are found and put right.
func TestIncrementalSyncDelta(t *testing.T) {
	s := newTestStack(t, stackOptions{})
	settle(t, s)

	t.Run("nothing changed: at most 5 Graph and Personio requests", func(t *testing.T) {
		rep, graph, personio := measuredSync(t, s)
		t.Logf("quiet incremental sync: %d Graph requests %v, %d Personio requests; report %+v", graph.Total, graph.ByRoute, personio, rep)
		if rep.Kind != "incremental" || rep.Enqueued != 0 || len(rep.DeltaErrors) != 0 {
			t.Fatalf("report %+v: want an incremental sync that enqueues no one", rep)
		}
		if total := int64(graph.Total) + personio; total > 5 {
			t.Fatalf("%d Graph + %d Personio requests, want at most 5 in all", graph.Total, personio)
		}
	})

	t.Run("a job title edited by hand is found and put right", func(t *testing.T) {
		var victim entratest.User
		for _, u := range s.entra.Users() {
			if title, _ := u.Properties["jobTitle"].(string); u.EmployeeID != "" && !u.Deleted && u.AccountEnabled && title != "" {
				victim = u
				break
			}
		}
		if victim.ID == "" {
			t.Fatal("no enabled account with a job title")
		}
		want := victim.Properties["jobTitle"]
		s.entra.UpdateUser(victim.ID, map[string]any{"jobTitle": "Edited by hand"})
		rep := incrementalSync(t, s)
		if rep.EntraChanged != 1 || rep.Enqueued != 1 {
			t.Fatalf("report %+v: want the one person changed in Entra enqueued", rep)
		}
		eventually(t, s, victim.EmployeeID, "job title put back", func(u entratest.User, found bool) bool {
			return found && u.Properties["jobTitle"] == want
		})
	})

	t.Run("a member removed by hand from a managed group is found and added back", func(t *testing.T) {
		settle(t, s)
		var gid, member string
		for _, id := range s.groups {
			for _, m := range s.entra.Members(id) {
				if u, ok := s.entra.User(m); ok && u.EmployeeID != "" {
					gid, member = id, m
					break
				}
			}
			if member != "" {
				break
			}
		}
		if member == "" {
			t.Fatal("no managed group has a member with an employeeId")
		}
		if !s.entra.RemoveMember(gid, member) {
			t.Fatal("remove member")
		}
		rep := incrementalSync(t, s)
		if rep.EntraChanged != 1 || rep.Enqueued != 1 {
			t.Fatalf("report %+v: want the one person removed from the group enqueued", rep)
		}
		deadline := time.Now().Add(45 * time.Second)
		for !slices.Contains(s.entra.Members(gid), member) {
			if time.Now().After(deadline) {
				t.Fatalf("member %s was not added back to group %s", member, gid)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	t.Run("an expired delta link falls back to a complete sync; the next sync uses the new link", func(t *testing.T) {
		settle(t, s)
		s.entra.ExpireDeltaLinks(true)
		rep := incrementalSync(t, s)
		if rep.Kind != "complete" || !rep.DeltaReset {
			t.Fatalf("report %+v: want a complete sync marked delta_reset", rep)
		}
		settle(t, s)
		rep, graph, personio := measuredSync(t, s)
		t.Logf("incremental sync after the reset: %d Graph requests %v, %d Personio requests", graph.Total, graph.ByRoute, personio)
		if rep.Kind != "incremental" || rep.DeltaReset || graph.Errors != 0 {
			t.Fatalf("report %+v, %d Graph errors: want an incremental sync on the new links", rep, graph.Errors)
		}
		if total := int64(graph.Total) + personio; total > 5 {
			t.Fatalf("%d Graph + %d Personio requests after the reset, want at most 5", graph.Total, personio)
		}
	})
}
