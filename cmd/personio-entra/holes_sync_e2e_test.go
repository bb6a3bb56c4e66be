package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/entra/entratest"
)

// runSyncUntilLeased runs one sync through the app's Syncer, waiting for the lease.
func runSyncUntilLeased(t *testing.T, s *stack) (provisioning.SyncReport, error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		rep, err := s.app.syncer.Run(context.Background(), provisioning.SyncOptions{})
		if !rep.Skipped {
			return rep, err
		}
		if time.Now().After(deadline) {
			t.Fatal("the full-sync lease stayed taken for 60s")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// A complete sync that fails does not starve the incremental ones: the
// failed attempt is recorded and the next run is incremental.
func TestFailingCompleteSyncLetsIncrementalRun(t *testing.T) {
	s := newTestStack(t, stackOptions{})
	convergeE2E(t, s)
	ctx := context.Background()
	state, err := s.app.q.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The last complete sync is more than a day old: the next one is due.
	now := time.Now()
	st, _ := json.Marshal(map[string]any{"last_sync": now.Add(-time.Minute), "last_complete": now.Add(-25 * time.Hour)})
	if err := state.Put(ctx, "sync.state", st); err != nil {
		t.Fatal(err)
	}
	// Graph fails; the complete sync needs it, the incremental one does not.
	s.entra.SetFaults(entratest.Faults{ServerErrorRate: 1, RetryAfter: 10 * time.Millisecond})
	defer s.entra.SetFaults(entratest.Faults{})

	rep, err := runSyncUntilLeased(t, s)
	if rep.Kind != "complete" || err == nil {
		t.Fatalf("first run: kind %q err %v, want a failing complete sync", rep.Kind, err)
	}
	for i := 2; i <= 3; i++ {
		rep, err = runSyncUntilLeased(t, s)
		if rep.Kind != "incremental" || err != nil {
			t.Fatalf("run %d after the failed complete sync: kind %q err %v, want a successful incremental sync", i, rep.Kind, err)
		}
	}
	b, _, err := state.Get(ctx, "sync.state")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		LastComplete        time.Time `json:"last_complete"`
		LastCompleteAttempt time.Time `json:"last_complete_attempt"`
		CompleteFailures    int       `json:"complete_failures"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.CompleteFailures != 1 || got.LastCompleteAttempt.Before(now) || !got.LastComplete.Before(now.Add(-24*time.Hour)) {
		t.Errorf("sync state %s: want one recorded failed complete attempt and the old last_complete", b)
	}
}
