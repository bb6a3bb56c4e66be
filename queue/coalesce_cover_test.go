package queue

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/personio-entra/personio-entra/queue/work"
)

// coverHarness runs worker processes whose handler acts like the engine: it
// takes the mark, "reads Personio" and covers the mark once it succeeded.
// The first run for person `block` stops at two gates the test opens: before
// the mark (work published meanwhile was stored before the read) and after
// it (work published meanwhile arrived during the read).
type coverHarness struct {
	queues                          []*Queue
	atMark, afterMark               chan struct{} // closed when the first run reached the gate
	releaseBefore, releaseAfterMark func()

	mu   sync.Mutex
	runs []coalesceRun
}

func startCoverHarness(t *testing.T, s *server.Server, processes int, block string) *coverHarness {
	t.Helper()
	h := &coverHarness{atMark: make(chan struct{}), afterMark: make(chan struct{})}
	gate1, gate2 := make(chan struct{}), make(chan struct{})
	var o1, o2 sync.Once
	h.releaseBefore = func() { o1.Do(func() { close(gate1) }) }
	h.releaseAfterMark = func() { o2.Do(func() { close(gate2) }) }
	t.Cleanup(h.releaseBefore)
	t.Cleanup(h.releaseAfterMark)
	var first sync.Once
	handler := func(ctx context.Context, personID string) error {
		w, _ := WorkFrom(ctx)
		h.mu.Lock()
		h.runs = append(h.runs, coalesceRun{personID, w.Reason})
		h.mu.Unlock()
		blocking := false
		if personID == block {
			first.Do(func() { blocking = true })
		}
		if blocking {
			close(h.atMark)
			<-gate1
		}
		cov, ok := work.CoverageFrom(ctx)
		if !ok {
			t.Error("no coverage in the handler's context")
			return nil
		}
		mark, ok := cov.Mark(ctx)
		if blocking {
			close(h.afterMark)
			<-gate2
		}
		if ok {
			cov.Cover(mark)
		}
		return nil
	}
	for i := range processes {
		q := openQueue(t, s, "cover-"+string(rune('a'+i)), fastConfig())
		h.queues = append(h.queues, q)
		runWorkers(t, q, handler, nil)
	}
	return h
}

func (h *coverHarness) publish(t *testing.T, msgID, name, person string) {
	t.Helper()
	if _, err := h.queues[0].PublishEvent(context.Background(), Event{MsgID: msgID, Name: name, PersonID: person, Body: []byte(`{}`)}); err != nil {
		t.Fatalf("publish %s: %v", name, err)
	}
}

func (h *coverHarness) runsFor(person string) []string {
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

func wait(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not happen", what)
	}
}

// Webhooks stored after a run started but before it read Personio are
// acknowledged without a second run, whichever worker process takes them:
// the covered position is shared through the state bucket.
func TestCoveredWebhooksAreNotRunAgain(t *testing.T) {
	for _, processes := range []int{1, 2} {
		t.Run(map[int]string{1: "one process", 2: "two processes"}[processes], func(t *testing.T) {
			h := startCoverHarness(t, startServer(t), processes, "A")
			covered0, superseded0 := testutil.ToFloat64(coveredTotal), testutil.ToFloat64(supersededTotal)
			h.publish(t, "a-0", "employment.created", "A")
			wait(t, "the first run", h.atMark)
			h.publish(t, "a-1", "employment.updated", "A")
			h.publish(t, "a-2", "person.updated", "A")
			h.releaseBefore()
			h.releaseAfterMark()
			waitFor(t, "both webhooks acknowledged", 10*time.Second, func() bool {
				return testutil.ToFloat64(coveredTotal)-covered0+testutil.ToFloat64(supersededTotal)-superseded0 >= 2
			})
			time.Sleep(300 * time.Millisecond) // a run that should not happen would show now
			if runs := h.runsFor("A"); len(runs) != 1 {
				t.Fatalf("runs for A: %v, want only the first (the two updates were stored before its read)", runs)
			}
			// Both were stored before the read: covered (the check comes
			// before the supersession check, which needs a read of its own).
			if got := testutil.ToFloat64(coveredTotal) - covered0; got != 2 {
				t.Errorf("%v messages covered, want 2", got)
			}
		})
	}
}

// The race the rule must never lose: a webhook stored while the run reads
// (after its mark) may announce a change the read did not see, so it runs.
func TestWebhookStoredDuringTheReadRuns(t *testing.T) {
	h := startCoverHarness(t, startServer(t), 1, "A")
	covered0 := testutil.ToFloat64(coveredTotal)
	h.publish(t, "a-0", "employment.created", "A")
	h.releaseBefore()
	wait(t, "the first run's mark", h.afterMark)
	h.publish(t, "a-1", "person.updated", "A")
	h.releaseAfterMark()
	waitFor(t, "the second run", 10*time.Second, func() bool { return len(h.runsFor("A")) == 2 })
	time.Sleep(300 * time.Millisecond)
	if runs := h.runsFor("A"); len(runs) != 2 || runs[1] != "person.updated" {
		t.Fatalf("runs for A: %v, want employment.created then person.updated", runs)
	}
	if got := testutil.ToFloat64(coveredTotal) - covered0; got != 0 {
		t.Errorf("%v messages covered, want none", got)
	}
}

// Only webhook events are covered: work queued by a sync or an admin (here
// an Enqueue stored before the read) may be about Entra or the time, and runs.
func TestCoverageSkipsOnlyWebhookEvents(t *testing.T) {
	h := startCoverHarness(t, startServer(t), 1, "A")
	h.publish(t, "a-0", "employment.created", "A")
	wait(t, "the first run", h.atMark)
	if err := h.queues[0].Enqueue(context.Background(), "A", "sync"); err != nil {
		t.Fatal(err)
	}
	h.releaseBefore()
	h.releaseAfterMark()
	waitFor(t, "the sync work to run", 10*time.Second, func() bool { return len(h.runsFor("A")) == 2 })
	if runs := h.runsFor("A"); runs[1] != "sync" {
		t.Fatalf("runs for A: %v, want the sync work to run", runs)
	}
}

// A covered position left from an earlier stream (the stream was recreated
// and its sequence started again; the state bucket kept its records) covers
// nothing: the stored times tell the two streams apart.
func TestCoverageOfAnEarlierStreamCoversNothing(t *testing.T) {
	h := startCoverHarness(t, startServer(t), 1, "")
	q := h.queues[0]
	kv, err := q.KeyValue(context.Background(), StateBucket)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(coverRecord{Seq: 1 << 40, Time: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)})
	if _, err := kv.Put(context.Background(), coverKey("B"), b); err != nil {
		t.Fatal(err)
	}
	h.publish(t, "b-0", "person.updated", "B")
	waitFor(t, "B to run", 10*time.Second, func() bool { return len(h.runsFor("B")) == 1 })
}
