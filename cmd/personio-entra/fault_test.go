//go:build fault

package main

// The long fault suite: go test -tags fault -run TestFault -timeout 60m ./cmd/personio-entra/
// Each scenario runs on a fresh installation of real processes on
// loopback: a 3-node JetStream cluster (QUEUE_REPLICAS=3, docs/jetstream.md#production-cluster), the
// simulators with 1,000 people, two receivers and three workers. Set
// FAULT_RESULTS=path.md to append the results table to a file.

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"
)

func TestFaultSuite(t *testing.T) {
	bins := buildFaultBinaries(t, t.TempDir())
	base := scenario{
		people: 1000, deliveries: 5000, dupShare: 0.15, rate: 80,
		env:             faultEnvOptions{natsNodes: 3, receivers: 2, workers: 3},
		wantAllAccepted: true,
		converge:        8 * time.Minute,
	}
	with := func(name string, f func(*scenario)) scenario {
		s := base
		s.name = name
		f(&s)
		return s
	}
	scenarios := []scenario{
		with("1. worker SIGKILL every 5 s, restarted", func(s *scenario) {
			s.chaos = func(ctx context.Context, e *faultEnv) error {
				return every(ctx, 5*time.Second, func(i int) error {
					w := e.workers[i%len(e.workers)]
					w.kill()
					sleepCtx(context.WithoutCancel(ctx), time.Second)
					return e.restart(w)
				})
			}
		}),
		with("2. NATS node SIGKILL mid-run, restarted 15 s later", func(s *scenario) {
			s.chaos = func(ctx context.Context, e *faultEnv) error {
				if !sleepCtx(ctx, 15*time.Second) {
					return fmt.Errorf("the deliveries ended before the node was killed")
				}
				n := e.natsNodes[0]
				n.kill()
				sleepCtx(context.WithoutCancel(ctx), 15*time.Second)
				return n.start()
			}
		}),
		with("3. Graph 30% 429 + 5% 503 (Retry-After 1 s) all run", func(s *scenario) {
			s.setup = func(e *faultEnv) { e.setEntraFaults(0.30, 0.05, time.Second) }
			// Every third Graph call waits a second, and the generated
			// company's repeated names make each create probe up to eleven
			// UPN candidates: draining takes 7-10 minutes on 2 CPUs.
			s.converge = 15 * time.Minute
		}),
		with("4. Personio 503 for 60 s, then recovers", func(s *scenario) {
			s.chaos = func(ctx context.Context, e *faultEnv) error {
				if !sleepCtx(ctx, 5*time.Second) {
					return fmt.Errorf("the deliveries ended before the outage")
				}
				return e.control(http.MethodPut, "/personio/unavailable", map[string]string{"for": time.Minute.String()}, nil)
			}
		}),
		with("5. receivers restarted while deliveries continue", func(s *scenario) {
			s.chaos = func(ctx context.Context, e *faultEnv) error {
				return every(ctx, 8*time.Second, func(i int) error {
					r := e.receivers[i%len(e.receivers)]
					if i%2 == 0 {
						r.stop() // graceful: finishes what it accepted
					} else {
						r.kill() // crash: in-flight requests see a reset, Personio retries
					}
					sleepCtx(context.WithoutCancel(ctx), 2*time.Second)
					return e.restart(r)
				})
			}
		}),
	}
	// The faults must have reached the product, or the run proves nothing.
	met := map[string]func(r faultResult) bool{
		scenarios[2].name: func(r faultResult) bool { return r.GraphThrottled > 100 && r.GraphErrors > 10 },
		scenarios[3].name: func(r faultResult) bool { return r.PersonioRejected > 0 },
	}
	var rows []faultResult
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			r := runScenario(t, bins, sc)
			if ok := met[sc.name]; ok != nil && !ok(r) {
				t.Errorf("the injected faults were not met: Graph 429 %d, Graph errors %d, Personio 503 %d",
					r.GraphThrottled, r.GraphErrors, r.PersonioRejected)
			}
			rows = append(rows, r)
		})
	}
	writeResults(t, "Fault suite (3-node JetStream cluster, 2 receivers, 3 workers)", rows)
}

// TestFaultSafeguard is the long safeguard scenario: 300 of 1,000 people
// get a last working day of yesterday through webhooks at once; at most the
// threshold (50) is disabled, the other 250 wait in one approval, the admin
// API releases it and the directory then equals the desired state.
func TestFaultSafeguard(t *testing.T) {
	bins := buildFaultBinaries(t, t.TempDir())
	r := runMassLeavers(t, bins, massLeavers{people: 1000, leavers: 300, threshold: 50,
		env: faultEnvOptions{natsNodes: 3, receivers: 2, workers: 3}, converge: 10 * time.Minute})
	writeResults(t, "Fault suite: safeguard (3-node JetStream cluster, 2 receivers, 3 workers)", []faultResult{r})
}
