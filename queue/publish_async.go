package queue

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Acknowledged publishes without a request per message.
//
// A synchronous JetStream publish is a request: the message goes out, is
// flushed on its own, and the caller waits for the reply. The receiver's
// webhooks publish through an asynchronous JetStream context instead: the
// connection's writer sends whatever many concurrent deliveries queued
// together, and each delivery still waits for its own acknowledgement
// before it answers 202 — a delivery is acknowledged only once JetStream
// stored it, exactly as before. At most maxInFlightPublishes publishes wait
// for their acknowledgement at once; one more waits for a free place (up to
// its deadline) instead of piling up. An acknowledgement that does not come
// within the queue's OpTimeout fails that publish (the caller answers 503
// and Personio retries; de-duplication recognises a retry of one that was
// stored after all).

// maxInFlightPublishes bounds the publishes waiting for an acknowledgement.
const maxInFlightPublishes = 1024

type asyncPublisher struct {
	once sync.Once
	js   jetstream.JetStream
	err  error
}

func (q *Queue) asyncJS() (jetstream.JetStream, error) {
	p := &q.async
	p.once.Do(func() {
		p.js, p.err = jetstream.New(q.nc,
			jetstream.WithPublishAsyncMaxPending(maxInFlightPublishes),
			jetstream.WithPublishAsyncTimeout(q.cfg.OpTimeout))
	})
	return p.js, p.err
}

// publishAcked publishes msg into the event stream and returns once
// JetStream acknowledged it (or ctx, bounded by OpTimeout, ends first).
func (q *Queue) publishAcked(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	js, err := q.asyncJS()
	if err != nil {
		return nil, fmt.Errorf("JetStream context: %w", err)
	}
	ctx, cancel := q.opContext(ctx)
	defer cancel()
	start := time.Now()
	opts = append(opts, jetstream.WithExpectStream(EventStream))
	if dl, ok := ctx.Deadline(); ok {
		// Wait for a free place no longer than the caller may wait.
		opts = append(opts, jetstream.WithStallWait(max(time.Until(dl), time.Millisecond)))
	}
	f, err := js.PublishMsgAsync(msg, opts...)
	if err != nil {
		return nil, err
	}
	select {
	case ack := <-f.Ok():
		publishDuration.Observe(time.Since(start).Seconds())
		return ack, nil
	case err := <-f.Err():
		return nil, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
