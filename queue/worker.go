package queue

import (
	"context"
	"errors"
	"fmt"
	"github.com/personio-entra/personio-entra/queue/work"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Handler converges one person. It must be idempotent: delivery is
// at-least-once and late acks are accepted
// (docs/jetstream.md#consumers-and-acknowledgements). work.From(ctx) says
// why it runs. It returns a work.Result (done, or come back after
// RequeueAfter) and an error: a work.Terminal error goes to the dead letters
// at once, any other error is retried with backoff (or after RequeueAfter
// when set).
type Handler func(ctx context.Context, personID string) (work.Result, error)

// Resolver finds the person of an employment, for employment events that
// carry no person id. A work.Terminal error dead-letters the event.
type Resolver func(ctx context.Context, employmentID string) (string, error)

// Work describes the message a Handler is running for.
type Work = work.Info

// WorkFrom returns the work description inside a Handler.
func WorkFrom(ctx context.Context) (Work, bool) { return work.From(ctx) }

// ReasonFrom returns why the Handler runs: the webhook event name,
// "schedule", "redrive" or the reason given to Enqueue (such as "sync").
func ReasonFrom(ctx context.Context) string { return work.Reason(ctx) }

// RunWorkers consumes every partition until ctx ends; then it stops pulling,
// lets running handlers finish for up to Config.ShutdownGrace, cancels the
// rest and gives their messages back (Nak), and returns. Any number of
// processes may run it at once: each partition's consumer has MaxAckPending
// 1, so the server hands a partition's next message to exactly one of them
// after the previous one was acked (docs/jetstream.md#one-consumer-per-partition).
// People in different partitions run in parallel, up to one
// handler per partition per process.
//
// With a nil Resolver this process does not consume employment events that
// lack a person id; another process must.
func (q *Queue) RunWorkers(ctx context.Context, h Handler, r Resolver) error {
	if h == nil {
		return errors.New("queue: run workers: nil handler")
	}
	// Handlers get a context that outlives ctx by the shutdown grace, so a
	// SIGTERM does not abort a half-done reconcile.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()

	q.openCoverage(ctx)
	var wg sync.WaitGroup
	for k := 0; k < q.cfg.Partitions; k++ {
		wg.Go(func() {
			q.consumeLoop(ctx, workCtx, partitionConsumerName(k), func(wctx context.Context, w Work) (work.Result, error) {
				return h(wctx, w.PersonID)
			})
		})
	}
	if r != nil {
		wg.Go(func() {
			q.consumeLoop(ctx, workCtx, resolverConsumer, func(wctx context.Context, w Work) (work.Result, error) {
				return work.Result{}, q.resolve(wctx, r, w)
			})
		})
	} else {
		q.logger.Info("no employment resolver: employment events without a person id are left to other workers")
	}
	q.logger.Info("workers started", slog.Int("partitions", q.cfg.Partitions))

	<-ctx.Done()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(q.cfg.ShutdownGrace):
		q.logger.Warn("workers: shutdown grace over, cancelling running handlers", slog.Duration("grace", q.cfg.ShutdownGrace))
		cancelWork()
		<-done
	}
	q.logger.Info("workers stopped")
	return nil
}

// workFn runs one message; the message bookkeeping is done by process.
type workFn func(ctx context.Context, w Work) (work.Result, error)

// consumeLoop pulls one message at a time from one consumer
// (PullMaxMessages(1): nothing waits in a local buffer while its AckWait
// runs, docs/jetstream.md#consumers-and-acknowledgements) until ctx ends.
func (q *Queue) consumeLoop(ctx, workCtx context.Context, consumer string, fn workFn) {
	log := q.logger.With(slog.String("consumer", consumer))
	retry := func() bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Second):
			return true
		}
	}
	for ctx.Err() == nil {
		cons, err := q.js.Consumer(ctx, EventStream, consumer)
		if err != nil {
			if ctx.Err() == nil {
				log.Error("workers: look up consumer", slog.Any("err", err))
			}
			if !retry() {
				return
			}
			continue
		}
		it, err := cons.Messages(jetstream.PullMaxMessages(1))
		if err != nil {
			log.Error("workers: start pulling", slog.Any("err", err))
			if !retry() {
				return
			}
			continue
		}
		// Stop pulling when ctx ends; Drain hands out what is already
		// buffered, and that is given back below.
		stop := context.AfterFunc(ctx, it.Drain)
		for {
			msg, err := it.Next()
			if err != nil {
				if !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					log.Warn("workers: pulling failed, starting over", slog.Any("err", err))
				}
				break
			}
			if ctx.Err() != nil {
				if err := msg.Nak(); err != nil {
					log.Warn("workers: giving back a message at shutdown failed", slog.Any("err", err))
				}
				continue
			}
			q.process(workCtx, log, msg, fn)
		}
		stop()
		it.Stop()
		if ctx.Err() == nil && !retry() {
			return
		}
	}
}

// process runs fn for one message and acks, retries or dead-letters it.
func (q *Queue) process(workCtx context.Context, log *slog.Logger, msg jetstream.Msg, fn workFn) {
	start := time.Now()
	md, err := msg.Metadata()
	if err != nil {
		log.Error("workers: message without JetStream metadata", slog.String("subject", msg.Subject()), slog.Any("err", err))
		_ = msg.NakWithDelay(q.cfg.RetryBase)
		return
	}
	attempt := int(md.NumDelivered)
	if attempt > 1 {
		redeliveriesTotal.Inc()
	}
	hdr := msg.Headers()
	w := Work{
		Reason:       hdr.Get(HeaderReason),
		Detail:       hdr.Get(HeaderDetail),
		Attempt:      attempt,
		Sequence:     md.Sequence.Stream,
		ResolvedFrom: hdr.Get(HeaderResolvedFrom),
	}
	log = log.With(slog.Uint64("seq", w.Sequence), slog.Int("attempt", attempt), slog.String("reason", w.Reason))
	target, perr := parseWorkSubject(msg.Subject())
	w.PersonID = target.personID
	if target.employmentID != "" {
		w.Detail = target.employmentID
	}
	if target.personID != "" {
		log = log.With(slog.String("person_id", target.personID))
	}

	// Coalescing (docs/jetstream.md#coalescing-work-for-one-person): the
	// handler re-reads the source of truth, so work for a person that has
	// not started is redundant when newer work for them is already stored
	// behind it; that newer message runs instead, later in this partition.
	if perr == nil && target.personID != "" && target.kind == kindEvent && q.covered(workCtx, log, target.personID, md) {
		// Covered (docs/jetstream.md#covered-work): a run of the person
		// that succeeded read Personio after this event was stored.
		opCtx, cancel := context.WithTimeout(context.WithoutCancel(workCtx), q.cfg.OpTimeout)
		defer cancel()
		if err := msg.DoubleAck(opCtx); err != nil {
			log.Warn("workers: ack of covered work not confirmed; it comes back and is checked again", slog.Any("err", err))
		}
		coveredTotal.Inc()
		log.Debug("work covered by an earlier run of the person, not run")
		return
	}
	if perr == nil && target.personID != "" {
		if newer, ok := q.superseded(workCtx, log, msg, md); ok {
			opCtx, cancel := context.WithTimeout(context.WithoutCancel(workCtx), q.cfg.OpTimeout)
			defer cancel()
			// DoubleAck: a lost ack would hold the partition's single
			// ack-pending slot until AckWait.
			if err := msg.DoubleAck(opCtx); err != nil {
				log.Warn("workers: ack of superseded work not confirmed; it comes back and is checked again", slog.Any("err", err))
			}
			supersededTotal.Inc()
			log.Debug("work superseded by newer work for the person, not run", slog.Uint64("newer_seq", newer))
			return
		}
	}

	var herr error
	var res work.Result
	var cov *coverage
	switch {
	case perr != nil:
		herr = work.Terminal(perr)
	case attempt > q.cfg.MaxDeliver:
		// The spare delivery (see setup): the previous attempt never
		// reported back, its worker died or overran AckWait.
		herr = fmt.Errorf("attempt %d did not finish (worker stopped or exceeded the ack wait of %s)", attempt-1, q.cfg.AckWait)
	default:
		hctx := workCtx
		if target.personID != "" {
			if cov = q.newCoverage(msg.Subject(), md.Sequence.Stream); cov != nil {
				hctx = work.WithCoverage(workCtx, cov)
			}
		}
		res, herr = q.runHandler(hctx, msg, w, fn)
	}

	opCtx, cancel := context.WithTimeout(context.WithoutCancel(workCtx), q.cfg.OpTimeout)
	defer cancel()
	switch {
	case herr == nil && res.RequeueAfter > 0 && attempt < q.cfg.MaxDeliver:
		// Not finished yet (a dependency is not ready): come back later.
		// The delay keeps the partition's ack-pending slot, like a retry.
		if err := msg.NakWithDelay(res.RequeueAfter); err != nil {
			log.Warn("workers: scheduling the requeue failed; it comes back after the ack wait", "err", err)
		}
		workDuration.WithLabelValues(outcomeRetry).Observe(time.Since(start).Seconds())
		log.Debug("work requeued", "requeue_after", res.RequeueAfter)

	case herr == nil && res.RequeueAfter == 0:
		if cov != nil {
			cov.save(opCtx, log, target.personID)
		}
		// DoubleAck: a lost ack would re-run the whole reconcile
		// (docs/jetstream.md#consumers-and-acknowledgements).
		if err := msg.DoubleAck(opCtx); err != nil {
			log.Warn("workers: ack not confirmed; the work may run again", slog.Any("err", err))
		}
		workDuration.WithLabelValues(outcomeSuccess).Observe(time.Since(start).Seconds())
		log.Debug("work done", slog.Duration("took", time.Since(start)))

	case workCtx.Err() != nil && errors.Is(herr, context.Canceled):
		// Cut short by shutdown: give it back for another worker now.
		if err := msg.Nak(); err != nil {
			log.Warn("workers: giving back cancelled work failed", slog.Any("err", err))
		}
		workDuration.WithLabelValues(outcomeRetry).Observe(time.Since(start).Seconds())
		log.Warn("work cancelled by shutdown, given back", slog.Any("err", herr))

	case work.IsTerminal(herr) || attempt >= q.cfg.MaxDeliver:
		if herr == nil {
			herr = fmt.Errorf("still not finished after %d attempts", attempt)
		}
		reason := DeadLetterMaxDeliveries
		if work.IsTerminal(herr) {
			reason = DeadLetterPermanent
		}
		if err := q.deadLetter(opCtx, msg, md, reason, herr); err != nil {
			// Never drop work. A Nak would spend one of the consumer's
			// deliveries, and after the last one the server never hands
			// the message out again: the work would be gone. Keep the
			// message instead (in progress) and retry the dead-letter
			// publish with backoff until it goes through.
			log.Error("workers: moving work to the dead-letter stream failed; holding it and retrying",
				slog.Any("err", err), slog.Any("work_error", herr))
			if !q.holdForDeadLetter(workCtx, log, msg, md, reason, herr) {
				// Shutdown: give it back for the next worker.
				if err := msg.Nak(); err != nil {
					log.Warn("workers: giving back work that waits for the dead letters failed", slog.Any("err", err))
				}
				workDuration.WithLabelValues(outcomeRetry).Observe(time.Since(start).Seconds())
				return
			}
		}
		if err := msg.TermWithReason(reason); err != nil {
			log.Warn("workers: terminating dead-lettered work failed", slog.Any("err", err))
		}
		q.noticeDeadLettered(opCtx, msg, md, reason, herr)
		deadLettersTotal.WithLabelValues(reason).Inc()
		workDuration.WithLabelValues(outcomeDeadLetter).Observe(time.Since(start).Seconds())
		log.Error("work dead-lettered", slog.String("dead_letter_reason", reason), slog.Any("err", herr))

	default:
		// NakWithDelay keeps the partition's single ack-pending slot for the
		// delay, so later work for this person cannot overtake the retry
		// (docs/jetstream.md#handling-a-message; the cost is head-of-line blocking
		// for the partition, bounded by RetryMax).
		delay := q.backoff(attempt)
		if res.RequeueAfter > 0 {
			// The delay holds the partition: never longer than RetryMax.
			delay = min(res.RequeueAfter, q.cfg.RetryMax)
		}
		if err := msg.NakWithDelay(delay); err != nil {
			log.Warn("workers: scheduling the retry failed; it comes back after the ack wait", slog.Any("err", err))
		}
		workDuration.WithLabelValues(outcomeRetry).Observe(time.Since(start).Seconds())
		log.Warn("work failed, will retry", slog.Duration("retry_in", delay), slog.Any("err", herr))
	}
}

// superseded reports whether newer work for the same person is stored after
// msg, and the sequence of the newest. It is never true for the newest
// message of a person, so the last piece of work always runs; and it is only
// asked before the handler starts, so work that arrives while a handler runs
// is handled after it. Any doubt (an error, a timeout) answers false: the
// handler then runs, which is always safe.
//
// The answer comes from the stream, not the consumer: the last message on
// the person's subjects (every kind: events, schedules, syncs, re-drives)
// in the partition, read with a last-by-subject message get on
// pe.p.<k>.person.<person>.*. It is read for every delivery: the
// delivery's NumPending cannot stand in for it, because the server counts
// new messages for its consumers asynchronously after acknowledging the
// publish (signalConsumersLoop in nats-server's stream.go), so right after
// a burst a delivery can report nothing pending while newer work for the
// person is stored (TestCoalesceQueuedWorkForOnePerson failed about one run
// in eight under load while the read was skipped on NumPending 0).
func (q *Queue) superseded(ctx context.Context, log *slog.Logger, msg jetstream.Msg, md *jetstream.MsgMetadata) (uint64, bool) {
	if q.events == nil {
		return 0, false
	}
	subj := msg.Subject()
	i := strings.LastIndexByte(subj, '.')
	if i < 0 {
		return 0, false
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), q.cfg.OpTimeout)
	defer cancel()
	last, err := q.events.GetLastMsgForSubject(ctx, subj[:i]+".*")
	if err != nil {
		log.Warn("workers: checking for newer work failed; running this one", slog.Any("err", err))
		return 0, false
	}
	if last.Sequence > md.Sequence.Stream {
		return last.Sequence, true
	}
	return 0, false
}

// holdForDeadLetter keeps a message that could not be dead-lettered: it
// tells the server the work is in progress every AckWait/3 (so the message
// is neither redelivered nor given up) and retries the dead-letter publish
// after min(RetryBase·2^(n-1), RetryMax). It returns true once the dead
// letter is stored, false when ctx ends first.
func (q *Queue) holdForDeadLetter(ctx context.Context, log *slog.Logger, msg jetstream.Msg, md *jetstream.MsgMetadata, reason string, cause error) bool {
	heartbeat := time.NewTicker(q.cfg.AckWait / 3)
	defer heartbeat.Stop()
	for n := 1; ; n++ {
		retry := time.NewTimer(q.backoff(n))
	wait:
		for {
			select {
			case <-ctx.Done():
				retry.Stop()
				return false
			case <-heartbeat.C:
				if err := msg.InProgress(); err != nil {
					log.Warn("workers: in-progress heartbeat for held work failed", slog.Any("err", err))
				}
			case <-retry.C:
				break wait
			}
		}
		opCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), q.cfg.OpTimeout)
		err := q.deadLetter(opCtx, msg, md, reason, cause)
		cancel()
		if err == nil {
			log.Warn("workers: held work reached the dead-letter stream", slog.Int("tries", n+1))
			return true
		}
		if n%10 == 0 {
			log.Error("workers: dead-letter stream still refuses the work; holding it", slog.Int("tries", n+1), slog.Any("err", err))
		}
	}
}

// runHandler calls fn with InProgress heartbeats every AckWait/3
// (docs/jetstream.md#handling-a-message) and turns a panic into an error.
// When the server confirmed no heartbeat for two thirds of AckWait, fn's
// context is cancelled (heartbeat).
func (q *Queue) runHandler(workCtx context.Context, msg jetstream.Msg, w Work, fn workFn) (res work.Result, err error) {
	ctx, cancel := context.WithCancelCause(work.WithInfo(workCtx, w))
	defer cancel(nil)
	hbDone := make(chan struct{})
	defer close(hbDone)
	go q.heartbeat(msg, w.Sequence, cancel, hbDone)
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked: %v\n%s", p, debug.Stack())
		}
	}()
	return fn(ctx, w)
}

// errHeartbeatLost is the cause a handler is cancelled with when its
// heartbeats were not confirmed.
var errHeartbeatLost = errors.New("the server confirmed no in-progress heartbeat for two thirds of the ack wait: " +
	"it may hand the work to another worker, so this run stops (the work is retried)")

// heartbeat tells the server every AckWait/3 that the work is in progress
// until done is closed. Each heartbeat is a request the server answers, so
// the worker knows which ones arrived: a plain InProgress is fire and
// forget, and while the path to the server is down it is buffered and
// reports no error. The server gives a message whose ack timer ran out to
// another worker even though the first one still runs it
// (docs/jetstream.md#consumers-and-acknowledgements), and one person must
// never be reconciled twice at once. So when no heartbeat was confirmed for
// two thirds of AckWait (counted from the delivery, then from the sending
// of the last confirmed one, which the server received no earlier), the
// handler's context is cancelled: it stops before the message can be
// redelivered, and the work is retried.
func (q *Queue) heartbeat(msg jetstream.Msg, seq uint64, cancel context.CancelCauseFunc, done <-chan struct{}) {
	every, lease := q.cfg.AckWait/3, q.cfg.AckWait*2/3
	tick := time.NewTicker(every)
	defer tick.Stop()
	expire := time.NewTimer(lease)
	defer expire.Stop()
	for {
		select {
		case <-done:
			return
		case <-expire.C:
			heartbeatsLostTotal.Inc()
			q.logger.Error("workers: no in-progress heartbeat confirmed; stopping the handler before the work can go to another worker",
				slog.Uint64("seq", seq), slog.Duration("ack_wait", q.cfg.AckWait))
			cancel(errHeartbeatLost)
			return
		case <-tick.C:
			sent := time.Now()
			if _, err := q.nc.Request(msg.Reply(), ackProgress, every/2); err != nil {
				q.logger.Warn("workers: in-progress heartbeat not confirmed", slog.Uint64("seq", seq), slog.Any("err", err))
				continue
			}
			expire.Reset(lease - time.Since(sent))
		}
	}
}

// ackProgress is JetStream's in-progress acknowledgement ("+WPI"); sent
// as a request, the server confirms it.
var ackProgress = []byte("+WPI")

func (q *Queue) backoff(attempt int) time.Duration {
	d := q.cfg.RetryBase
	for i := 1; i < attempt && d < q.cfg.RetryMax; i++ {
		d *= 2
	}
	return min(d, q.cfg.RetryMax)
}

// resolve turns an employment event into person work: it asks the Resolver
// for the person, publishes the event again keyed by that person (so it joins
// the person's partition and is serialised with everything else for them) and
// lets process ack the employment message. The Msg-Id, derived from the
// employment message's sequence, keeps a re-run after a lost ack from queuing
// the person twice.
func (q *Queue) resolve(ctx context.Context, r Resolver, w Work) error {
	employmentID := w.Detail
	personID, err := r(ctx, employmentID)
	if err != nil {
		return fmt.Errorf("resolve employment %s to a person: %w", employmentID, err)
	}
	if personID == "" {
		return work.Terminal(fmt.Errorf("resolve employment %s to a person: no person found", employmentID))
	}
	hdr := nats.Header{}
	hdr.Set(HeaderResolvedFrom, employmentID)
	if err := q.enqueue(ctx, personID, w.Reason, "", kindEvent, hdr,
		jetstream.WithMsgID("resolved-"+strconv.FormatUint(w.Sequence, 10))); err != nil {
		return fmt.Errorf("resolve employment %s: queue person work: %w", employmentID, err)
	}
	return nil
}
