package queue

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// When the dead-letter publish fails on the last delivery the work is kept
// (held in progress and moved once the dead-letter stream accepts it), not
// dropped after the consumer's deliveries ran out.
func TestDeadLetterPublishFailureKeepsWork(t *testing.T) {
	s := startServer(t)
	cfg := fastConfig()
	q := openQueue(t, s, "dlq-hold", cfg)
	ctx := context.Background()

	// Take the dead-letter stream off its subjects: publishing a dead
	// letter finds no stream and fails.
	st, err := q.js.Stream(ctx, DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	good := st.CachedInfo().Config
	broken := good
	broken.Subjects = []string{"personio-entra-test-nowhere.>"}
	if _, err := q.js.UpdateStream(ctx, broken); err != nil {
		t.Fatalf("break the dead-letter stream: %v", err)
	}

	var calls atomic.Int32
	runWorkers(t, q, func(ctx context.Context, personID string) error {
		calls.Add(1)
		return errors.New("graph: 503 service unavailable")
	}, nil)
	if err := q.Enqueue(ctx, "keep-me", "sync"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every attempt", 10*time.Second, func() bool { return calls.Load() >= int32(cfg.MaxDeliver) })
	// Long enough for the consumer's spare delivery and its publish
	// retries (a failing JetStream publish takes about half a second).
	time.Sleep(3 * time.Second)

	if _, err := q.js.UpdateStream(ctx, good); err != nil {
		t.Fatalf("repair the dead-letter stream: %v", err)
	}
	waitFor(t, "the work in the dead letters once the stream accepts it", 15*time.Second, func() bool {
		dls, err := q.DeadLetters(ctx)
		return err == nil && len(dls) == 1 && dls[0].PersonID == "keep-me"
	})
	dls, _ := q.DeadLetters(ctx)
	if dls[0].Reason != DeadLetterMaxDeliveries || dls[0].Error != "graph: 503 service unavailable" {
		t.Errorf("dead letter %+v: want reason %s and the handler's error", dls[0], DeadLetterMaxDeliveries)
	}
	if n := calls.Load(); n != int32(cfg.MaxDeliver) {
		t.Errorf("handler ran %d times, want %d", n, cfg.MaxDeliver)
	}
}
