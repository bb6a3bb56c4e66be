package queue

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// coalesceRun is one handler run: for whom, and why.
type coalesceRun struct{ person, reason string }

// coalesceHarness runs workers whose handler records every run and blocks
// the first run for person `block` until release is called.
type coalesceHarness struct {
	q       *Queue
	started chan struct{}
	release func()

	mu   sync.Mutex
	runs []coalesceRun
}

func startCoalesceHarness(t *testing.T, s *server.Server, name, block string) *coalesceHarness {
	t.Helper()
	h := &coalesceHarness{q: openQueue(t, s, name, fastConfig()), started: make(chan struct{})}
	gate := make(chan struct{})
	var once sync.Once
	h.release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(h.release)
	var first sync.Once
	runWorkers(t, h.q, func(ctx context.Context, personID string) error {
		w, _ := WorkFrom(ctx)
		h.mu.Lock()
		h.runs = append(h.runs, coalesceRun{personID, w.Reason})
		h.mu.Unlock()
		if personID == block {
			first.Do(func() {
				close(h.started)
				<-gate
			})
		}
		return nil
	}, nil)
	return h
}

func (h *coalesceHarness) publish(t *testing.T, msgID, name, person string) bool {
	t.Helper()
	dup, err := h.q.PublishEvent(context.Background(), Event{MsgID: msgID, Name: name, PersonID: person, Body: []byte(`{"event_name":"` + name + `"}`)})
	if err != nil {
		t.Fatalf("publish %s for %s: %v", name, person, err)
	}
	return dup
}

// runsFor returns the reasons of the person's runs, in order.
func (h *coalesceHarness) runsFor(person string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, r := range h.runs {
		if r.person == person {
			out = append(out, r.reason)
		}
	}
	return out
}

func (h *coalesceHarness) waitStarted(t *testing.T) {
	t.Helper()
	select {
	case <-h.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the first run did not start")
	}
}

// settle waits until the person's last run has the given reason, then a
// little longer so that any further run would show up.
func (h *coalesceHarness) settle(t *testing.T, person, lastReason string) {
	t.Helper()
	waitFor(t, person+" to run for "+lastReason, 10*time.Second, func() bool {
		r := h.runsFor(person)
		return len(r) > 0 && r[len(r)-1] == lastReason
	})
	time.Sleep(300 * time.Millisecond)
}

// Five events for a person queued behind their running work are coalesced:
// after the running one, the handler runs once more, for the newest event.
func TestCoalesceQueuedWorkForOnePerson(t *testing.T) {
	s := startServer(t)
	h := startCoalesceHarness(t, s, "coalesce", "A")
	before := testutil.ToFloat64(supersededTotal)

	h.publish(t, "a-0", "person.created", "A")
	h.waitStarted(t)
	for i := 1; i <= 5; i++ {
		h.publish(t, fmt.Sprintf("a-%d", i), fmt.Sprintf("person.updated.%d", i), "A")
	}
	h.release()
	h.settle(t, "A", "person.updated.5")

	runs := h.runsFor("A")
	if len(runs) > 2 {
		t.Errorf("handler ran %d times for A (%v), want at most 2", len(runs), runs)
	}
	if runs[0] != "person.created" {
		t.Errorf("first run for %q, want person.created", runs[0])
	}
	if got := testutil.ToFloat64(supersededTotal) - before; got != float64(6-len(runs)) {
		t.Errorf("superseded counter moved by %v, want %d (6 messages, %d runs)", got, 6-len(runs), len(runs))
	}
	// Nothing was deleted: coalescing only acknowledges.
	st, err := h.q.js.Stream(context.Background(), EventStream)
	if err != nil {
		t.Fatal(err)
	}
	if n := st.CachedInfo().State.Msgs; n != 6 {
		t.Errorf("stream holds %d messages, want all 6", n)
	}
}

// Work that arrives while the person's handler runs is never lost: it runs
// after the running one finishes, whether it is an event or a schedule that
// fires onto the person's work subject.
func TestCoalesceKeepsWorkThatArrivesDuringARun(t *testing.T) {
	s := startServer(t)
	h := startCoalesceHarness(t, s, "inflight", "A")
	ctx := context.Background()

	h.publish(t, "a-0", "person.created", "A")
	h.waitStarted(t)
	h.publish(t, "a-1", "employment.created", "A")
	time.Sleep(200 * time.Millisecond) // the running message is still running
	h.release()
	h.settle(t, "A", "employment.created")
	if runs := h.runsFor("A"); len(runs) != 2 {
		t.Fatalf("runs for A: %v, want person.created then employment.created", runs)
	}

	// A schedule that fires while work for the person runs (a server of
	// its own: the first harness's workers would take B's work).
	h2 := startCoalesceHarness(t, startServer(t), "inflight-schedule", "B")
	h2.publish(t, "b-0", "person.created", "B")
	h2.waitStarted(t)
	if err := h2.q.Schedule(ctx, "B", time.Now(), "start date"); err != nil {
		t.Fatal(err)
	}
	k, err := partitionOf("B", h2.q.cfg.Partitions)
	if err != nil {
		t.Fatal(err)
	}
	fired := fmt.Sprintf("%s%d.person.B.%s", partitionedPrefix, k, kindSchedule)
	waitFor(t, "the schedule to fire onto B's work subject", 10*time.Second, func() bool {
		_, err := h2.q.events.GetLastMsgForSubject(ctx, fired)
		return err == nil
	})
	h2.release()
	h2.settle(t, "B", ReasonSchedule)
	if runs := h2.runsFor("B"); len(runs) != 2 || runs[0] != "person.created" {
		t.Fatalf("runs for B: %v, want person.created then schedule", runs)
	}
}

// De-duplication of webhook deliveries keeps working for deliveries whose
// work was superseded: the same delivery again is still a duplicate.
func TestCoalesceKeepsDeduplication(t *testing.T) {
	s := startServer(t)
	h := startCoalesceHarness(t, s, "dedup-coalesce", "A")

	h.publish(t, "a-0", "person.created", "A")
	h.waitStarted(t)
	if dup := h.publish(t, "a-1", "employment.created", "A"); dup {
		t.Fatal("first delivery of a-1 answered duplicate")
	}
	if dup := h.publish(t, "a-2", "person.updated", "A"); dup {
		t.Fatal("first delivery of a-2 answered duplicate")
	}
	h.release()
	h.settle(t, "A", "person.updated")
	if runs := h.runsFor("A"); len(runs) != 2 {
		t.Fatalf("runs for A: %v, want 2 (a-1 superseded by a-2)", runs)
	}
	for _, id := range []string{"a-0", "a-1", "a-2"} {
		if dup := h.publish(t, id, "person.updated", "A"); !dup {
			t.Errorf("delivery %s again: not answered duplicate", id)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if runs := h.runsFor("A"); len(runs) != 2 {
		t.Errorf("a duplicate delivery ran the handler: %v", runs)
	}
}

// Work for different people is never coalesced, not even for people in the
// same partition queued behind the same running message.
func TestCoalesceNeverAcrossPeople(t *testing.T) {
	s := startServer(t)
	h := startCoalesceHarness(t, s, "people", "A")
	parts := h.q.cfg.Partitions
	pa, err := partitionOf("A", parts)
	if err != nil {
		t.Fatal(err)
	}
	var same []string
	for i := 0; len(same) < 3; i++ {
		id := fmt.Sprintf("p%d", i)
		if p, _ := partitionOf(id, parts); p == pa {
			same = append(same, id)
		}
	}
	before := testutil.ToFloat64(supersededTotal)

	h.publish(t, "a-0", "person.created", "A")
	h.waitStarted(t)
	for _, id := range same {
		h.publish(t, id+"-0", "person.created", id)
	}
	h.publish(t, "a-1", "person.updated", "A")
	h.release()
	h.settle(t, "A", "person.updated")
	for _, id := range same {
		waitFor(t, id+" to run", 10*time.Second, func() bool { return len(h.runsFor(id)) > 0 })
		if runs := h.runsFor(id); len(runs) != 1 || runs[0] != "person.created" {
			t.Errorf("runs for %s: %v, want one person.created", id, runs)
		}
	}
	if runs := h.runsFor("A"); len(runs) != 2 {
		t.Errorf("runs for A: %v, want 2", runs)
	}
	if got := testutil.ToFloat64(supersededTotal) - before; got != 0 {
		t.Errorf("%v messages superseded, want none", got)
	}
}
