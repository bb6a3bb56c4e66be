package main

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestFaultShort is the CI-sized fault run (the full suite is fault_test.go,
// build tag "fault"): real processes on loopback — one NATS node, the
// simulators, one receiver and two workers — 300 deliveries for 100 people
// with duplicates, Graph answering 20 % of requests 429 with Retry-After,
// and one worker SIGKILLed mid-run and started again. The work it held
// comes back after the ack wait (docs/jetstream.md#consumers-and-acknowledgements), so the run
// takes a little over a minute.
func TestFaultShort(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process fault run; skipped with -short")
	}
	bins := buildFaultBinaries(t, t.TempDir())
	r := runScenario(t, bins, scenario{
		name:   "short: worker SIGKILL once, Graph 20% 429, 1 NATS node",
		people: 100, deliveries: 300, dupShare: 0.15, rate: 25,
		env:   faultEnvOptions{natsNodes: 1, receivers: 1, workers: 2},
		setup: func(e *faultEnv) { e.setEntraFaults(0.20, 0, 500*time.Millisecond) },
		chaos: func(ctx context.Context, e *faultEnv) error {
			if !sleepCtx(ctx, 4*time.Second) {
				return fmt.Errorf("the deliveries ended before the worker was killed; lower the rate")
			}
			e.workers[0].kill()
			sleepCtx(context.WithoutCancel(ctx), time.Second)
			return e.restart(e.workers[0])
		},
		wantAllAccepted: true,
		converge:        4 * time.Minute,
	})
	if r.GraphThrottled == 0 {
		t.Error("Graph never answered 429: the throttling was not exercised")
	}
	if r.Accepted == 0 || r.Deduplicated == 0 {
		t.Errorf("accepted %d, deduplicated %d: the duplicates were not recognised", r.Accepted, r.Deduplicated)
	}
	writeResults(t, "Fault suite, short form", []faultResult{r})
}

// TestFaultShortSafeguard is the CI-sized safeguard scenario (the long form
// with 300 of 1,000 people is in fault_test.go): 30 of 100 people leave at
// once through webhooks; at most 10 are disabled, the other 20 wait in one
// approval until the admin API releases them.
func TestFaultShortSafeguard(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process fault run; skipped with -short")
	}
	bins := buildFaultBinaries(t, t.TempDir())
	r := runMassLeavers(t, bins, massLeavers{people: 100, leavers: 30, threshold: 10,
		env: faultEnvOptions{natsNodes: 1, receivers: 1, workers: 2}, converge: 4 * time.Minute})
	writeResults(t, "Fault suite, short form: safeguard", []faultResult{r})
}
