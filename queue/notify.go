package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/personio-entra/personio-entra/queue/work"
)

// Notifications travel on their own subjects of the work stream,
// pe.notify.<event>.<person>, consumed by one durable consumer of their own
// ("notifications") that is not partitioned and lets several messages be
// in flight: a mail server that fails and is retried with backoff holds
// only notification slots, never a person's partition, so it cannot delay a
// reconcile (docs/jetstream.md#notifications).
const (
	noticePrefix       = subjectPrefix + ".notify."
	notifyConsumer     = "notifications"
	noticeNoPersonTok  = "_"
	defaultNotifyInFly = 8
)

var noticeDeadLetters = promauto.NewCounter(prometheus.CounterOpts{
	Name: "personio_entra_notification_dead_letters_total",
	Help: "Notifications moved to the dead-letter stream after their last attempt or a permanent error.",
})

func noticeSubject(n work.Notice) (string, error) {
	if n.Event == "" || strings.ContainsAny(n.Event, ".*> \t") {
		return "", fmt.Errorf("notice event %q is not a subject token", n.Event)
	}
	tok := noticeNoPersonTok
	if n.PersonID != "" {
		t, err := encodeToken(n.PersonID)
		if err != nil {
			return "", fmt.Errorf("person id: %w", err)
		}
		tok = t
	}
	return noticePrefix + n.Event + "." + tok, nil
}

func isNoticeSubject(subj string) bool { return strings.HasPrefix(subj, noticePrefix) }

// PublishNotice queues a notification. A non-empty msgID makes a repeat
// within the de-duplication window a no-op (one notice per event and
// person, whatever retried the work that raised it).
func (q *Queue) PublishNotice(ctx context.Context, n work.Notice, msgID string) error {
	subj, err := noticeSubject(n)
	if err != nil {
		return fmt.Errorf("queue: publish notice: %w", err)
	}
	if n.Time.IsZero() {
		n.Time = time.Now().UTC()
	}
	b, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("queue: publish notice: %w", err)
	}
	msg := nats.NewMsg(subj)
	msg.Data = b
	msg.Header.Set(HeaderReason, "notify")
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID("notice-"+msgID))
	}
	if _, err := q.publish(ctx, msg, opts...); err != nil {
		return fmt.Errorf("queue: publish %s notice: %w", n.Event, err)
	}
	return nil
}

// NoticeHandler delivers one notification. A work.Terminal error
// dead-letters it at once; any other error retries it with the
// notifications' backoff until its attempts run out.
type NoticeHandler func(ctx context.Context, n work.Notice) error

// RunNotifications consumes the notifications until ctx ends, up to
// Config.NotifyInFlight at once over all workers. Like RunWorkers it lets
// running deliveries finish for up to ShutdownGrace.
func (q *Queue) RunNotifications(ctx context.Context, h NoticeHandler) error {
	if h == nil {
		return errors.New("queue: run notifications: nil handler")
	}
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	log := q.logger.With(slog.String("consumer", notifyConsumer))
	var wg sync.WaitGroup
	slots := make(chan struct{}, q.cfg.NotifyInFlight)
	for ctx.Err() == nil {
		cons, err := q.js.Consumer(ctx, EventStream, notifyConsumer)
		if err == nil {
			var it jetstream.MessagesContext
			if it, err = cons.Messages(jetstream.PullMaxMessages(1)); err == nil {
				stop := context.AfterFunc(ctx, it.Drain)
				for {
					msg, err := it.Next()
					if err != nil {
						break
					}
					if ctx.Err() != nil {
						_ = msg.Nak()
						continue
					}
					slots <- struct{}{}
					wg.Go(func() {
						defer func() { <-slots }()
						q.processNotice(workCtx, log, msg, h)
					})
				}
				stop()
				it.Stop()
			}
		}
		if err != nil && ctx.Err() == nil {
			log.Error("notifications: pulling failed, starting over", slog.Any("err", err))
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(q.cfg.ShutdownGrace):
		cancelWork()
		<-done
	}
	return nil
}

func (q *Queue) processNotice(workCtx context.Context, log *slog.Logger, msg jetstream.Msg, h NoticeHandler) {
	md, err := msg.Metadata()
	if err != nil {
		_ = msg.NakWithDelay(q.cfg.NotifyRetryBase)
		return
	}
	attempt := int(md.NumDelivered)
	log = log.With(slog.Uint64("seq", md.Sequence.Stream), slog.Int("attempt", attempt))
	var n work.Notice
	var herr error
	switch {
	case json.Unmarshal(msg.Data(), &n) != nil:
		herr = work.Terminal(fmt.Errorf("notification %q is not a notice", msg.Subject()))
	case attempt > q.cfg.NotifyMaxDeliver:
		herr = fmt.Errorf("attempt %d did not finish (worker stopped or exceeded the ack wait of %s)", attempt-1, q.cfg.AckWait)
	default:
		log = log.With(slog.String("event", n.Event), slog.String("person_id", n.PersonID))
		w := Work{PersonID: n.PersonID, Reason: n.Event, Attempt: attempt, Sequence: md.Sequence.Stream}
		_, herr = q.runHandler(workCtx, msg, w, func(ctx context.Context, _ Work) (work.Result, error) {
			return work.Result{}, h(ctx, n)
		})
	}
	opCtx, cancel := context.WithTimeout(context.WithoutCancel(workCtx), q.cfg.OpTimeout)
	defer cancel()
	switch {
	case herr == nil:
		if err := msg.DoubleAck(opCtx); err != nil {
			log.Warn("notifications: ack not confirmed; the delivery may run again", slog.Any("err", err))
		}
	case workCtx.Err() != nil && errors.Is(herr, context.Canceled):
		_ = msg.Nak()
	case work.IsTerminal(herr) || attempt >= q.cfg.NotifyMaxDeliver:
		reason := DeadLetterMaxDeliveries
		if work.IsTerminal(herr) {
			reason = DeadLetterPermanent
		}
		if err := q.deadLetter(opCtx, msg, md, reason, herr); err != nil {
			log.Error("notifications: moving to the dead letters failed; it comes back", slog.Any("err", err))
			_ = msg.NakWithDelay(q.cfg.NotifyRetryMax)
			return
		}
		_ = msg.TermWithReason(reason)
		noticeDeadLetters.Inc()
		deadLettersTotal.WithLabelValues(reason).Inc()
		log.Error("notification dead-lettered", slog.String("dead_letter_reason", reason), slog.Any("err", herr))
	default:
		delay := q.notifyBackoff(attempt)
		_ = msg.NakWithDelay(delay)
		log.Warn("notification failed, will retry", slog.Duration("retry_in", delay), slog.Any("err", herr))
	}
}

func (q *Queue) notifyBackoff(attempt int) time.Duration {
	d := q.cfg.NotifyRetryBase
	for i := 1; i < attempt && d < q.cfg.NotifyRetryMax; i++ {
		d *= 2
	}
	return min(d, q.cfg.NotifyRetryMax)
}

// setupNotifications creates the notifications consumer.
func (q *Queue) setupNotifications(ctx context.Context) error {
	return q.ensureConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       notifyConsumer,
		Description:   "notifications (mail and webhook deliveries), not partitioned",
		FilterSubject: noticePrefix + ">",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       q.cfg.AckWait,
		MaxDeliver:    q.cfg.NotifyMaxDeliver + 1,
		MaxAckPending: q.cfg.NotifyInFlight,
		Replicas:      q.cfg.Replicas,
	})
}

// noticeDeadLettered queues the dead_lettered notice for work that just
// went to the dead letters (person work only: a notification that dies
// raises no notification, or a broken mailer would feed itself).
func (q *Queue) noticeDeadLettered(ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata, reason string, cause error) {
	if !q.deadLetterNotices.Load() || isNoticeSubject(msg.Subject()) {
		return
	}
	target, _ := parseWorkSubject(msg.Subject())
	errText := cause.Error()
	if len(errText) > 500 {
		errText = errText[:500] + "…"
	}
	n := work.Notice{Event: "dead_lettered", PersonID: target.personID, Reason: reason, Error: errText, Subject: msg.Subject()}
	if err := q.PublishNotice(ctx, n, fmt.Sprintf("dlq-%s-%d", md.Stream, md.Sequence.Stream)); err != nil {
		q.logger.Warn("queue: the dead_lettered notice could not be queued", slog.Any("err", err))
	}
}

// NotifyDeadLetters turns the dead_lettered notice on or off.
func (q *Queue) NotifyDeadLetters(on bool) { q.deadLetterNotices.Store(on) }

// redriveNotice queues a dead notification again as it was.
func (q *Queue) redriveNotice(ctx context.Context, d DeadLetter) error {
	msg := nats.NewMsg(d.OriginalSubject)
	msg.Data = d.Data
	msg.Header.Set(HeaderReason, "notify")
	_, err := q.publish(ctx, msg)
	return err
}
