package queue

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// Concurrent webhook publishes each return only once JetStream stored the
// event (its acknowledgement names the stream and a sequence, and the
// message is in the stream), a repeated delivery is a duplicate, and with
// JetStream gone a publish fails within its deadline instead of
// acknowledging anything.
func TestPublishEventWaitsForTheAcknowledgement(t *testing.T) {
	s := startServer(t)
	q := openQueue(t, s, "async", Config{})
	ctx := context.Background()
	const n = 300
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			ev := Event{MsgID: fmt.Sprintf("delivery-%d", i), Name: "person.updated", PersonID: fmt.Sprint(1000 + i%37), Body: []byte(`{}`)}
			dup, err := q.PublishEvent(ctx, ev)
			if err != nil || dup {
				errs <- fmt.Errorf("publish %d: duplicate %t, %v", i, dup, err)
				return
			}
			// Acknowledged means stored: the message is readable now.
			if _, err := q.events.GetMsg(ctx, 1); err != nil {
				errs <- fmt.Errorf("publish %d acknowledged, but the stream has nothing: %v", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	info, err := q.events.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != n {
		t.Fatalf("%d messages stored, want %d", info.State.Msgs, n)
	}
	dup, err := q.PublishEvent(ctx, Event{MsgID: "delivery-7", Name: "person.updated", PersonID: "1007", Body: []byte(`{}`)})
	if err != nil || !dup {
		t.Fatalf("the same delivery again: duplicate %t, %v; want a duplicate", dup, err)
	}

	// JetStream gone: no acknowledgement, an error within the deadline.
	s.Shutdown()
	s.WaitForShutdown()
	pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = q.PublishEvent(pctx, Event{MsgID: "after-shutdown", Name: "person.updated", PersonID: "1", Body: []byte(`{}`)})
	if err == nil {
		t.Fatal("publish with JetStream gone: no error")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("publish with JetStream gone took %s, want about its 500 ms deadline", d)
	}
}
