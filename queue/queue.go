// Package queue is the durable work queue of personio-entra on NATS
// JetStream: stream and consumer setup, publishing webhook events and other
// person work, per-person serialised workers with retries and a dead-letter
// stream, future-dated wake-ups (message schedules), the audit stream and KV
// buckets.
//
// The design (docs/jetstream.md#design-of-the-queue) is one Limits stream
// whose subjects are partitioned by person id with a subject transform, and
// one durable pull consumer per partition with MaxAckPending 1, so that any
// number of worker processes share the work while one person is never handled
// twice at the same time.
package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Stream names.
const (
	EventStream      = "PERSONIO_ENTRA_WORK"
	DeadLetterStream = "PERSONIO_ENTRA_DLQ"
	AuditStream      = "PERSONIO_ENTRA_AUDIT"

	resolverConsumer = "employment-resolver"
)

// Config tunes the queue. The zero value of every field means its default.
type Config struct {
	// Partitions is the number of person partitions P (QUEUE_PARTITIONS,
	// default 32). Throughput is about P / handler latency
	// (docs/jetstream.md#one-consumer-per-partition). Changing it on an
	// existing stream is refused: the old partitions must be drained first.
	Partitions int
	// Replicas of every stream and consumer: 1 single node, 3 in a cluster.
	Replicas int

	// MaxAge is how long work messages are kept (default 30 days): longer
	// than the worst outage, so nothing ages out before it is consumed.
	MaxAge time.Duration
	// Duplicates is the de-duplication window of webhook deliveries
	// (default 7 days). Personio retries a delivery for up to 3 days
	// according to its reference page and up to 6 days according to its
	// changelog (docs/personio-api.md#webhook-deliveries), always with the same body, so the window
	// covers the longer horizon: a retry that arrives after a slow 2xx or a
	// lost response is recognised instead of queuing work twice. The window
	// is counted from first sight and costs one small in-memory entry per
	// delivery (docs/jetstream.md#publishing-and-de-duplication), trivial at HR volumes. It must
	// not exceed MaxAge; on this Limits stream the ids are rebuilt from the
	// stored messages after a restart, so the window survives restarts
	// (docs/jetstream.md#publishing-and-de-duplication).
	Duplicates time.Duration

	// AckWait is how long a delivered message may go without an ack or an
	// InProgress heartbeat before the server gives it to another worker
	// (default 60s, docs/jetstream.md#one-consumer-per-partition). Workers send InProgress every
	// AckWait/3 while the handler runs.
	AckWait time.Duration
	// MaxDeliver is the number of attempts before a message goes to the
	// dead-letter stream (default 8).
	MaxDeliver int
	// RetryBase and RetryMax bound the retry delay: attempt n waits
	// min(RetryBase·2^(n-1), RetryMax) (defaults 2s and 2m;
	// docs/jetstream.md#handling-a-message).
	RetryBase, RetryMax time.Duration
	// ShutdownGrace is how long RunWorkers lets running handlers finish
	// after its context ends (default 20s) before cancelling them.
	ShutdownGrace time.Duration
	// OpTimeout bounds publishes and API calls made without a deadline in
	// the caller's context (default 5s).
	OpTimeout time.Duration

	// DeadLetterMaxAge (default 90 days) and AuditMaxAge (default 2 years)
	// are the retention of the dead-letter and the audit streams.
	DeadLetterMaxAge time.Duration
	AuditMaxAge      time.Duration
	// ResolverMaxAckPending is how many unresolved employment events may be
	// in flight at once over all workers (default 16). Resolving only reads
	// Personio and re-publishes, so these do not need serialising.
	ResolverMaxAckPending int

	// NotifyMaxDeliver (default 10) attempts of a notification, retried
	// after min(NotifyRetryBase·2^(n-1), NotifyRetryMax) (defaults 10s and
	// 10m), with NotifyInFlight (default 8) in flight at once (notify.go).
	NotifyMaxDeliver                int
	NotifyRetryBase, NotifyRetryMax time.Duration
	NotifyInFlight                  int
}

func (c Config) withDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.Partitions <= 0 {
		c.Partitions = 32
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	def(&c.MaxAge, 30*24*time.Hour)
	def(&c.Duplicates, 7*24*time.Hour)
	if c.Duplicates > c.MaxAge {
		c.Duplicates = c.MaxAge
	}
	def(&c.AckWait, 60*time.Second)
	if c.MaxDeliver <= 0 {
		c.MaxDeliver = 8
	}
	def(&c.RetryBase, 2*time.Second)
	def(&c.RetryMax, 2*time.Minute)
	def(&c.ShutdownGrace, 20*time.Second)
	def(&c.OpTimeout, 5*time.Second)
	def(&c.DeadLetterMaxAge, 90*24*time.Hour)
	def(&c.AuditMaxAge, 2*365*24*time.Hour)
	if c.ResolverMaxAckPending <= 0 {
		c.ResolverMaxAckPending = 16
	}
	if c.NotifyMaxDeliver <= 0 {
		c.NotifyMaxDeliver = 10
	}
	def(&c.NotifyRetryBase, 10*time.Second)
	def(&c.NotifyRetryMax, 10*time.Minute)
	if c.NotifyInFlight <= 0 {
		c.NotifyInFlight = defaultNotifyInFly
	}
	return c
}

// Queue is an opened work queue. It is safe for concurrent use.
type Queue struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	events jetstream.Stream // the work stream, for the workers' supersession check
	cfg    Config
	logger *slog.Logger
	// deadLetterNotices: raise the dead_lettered notice (notify.go).
	deadLetterNotices atomic.Bool
	async             asyncPublisher // webhook publishes (publish_async.go)
	// coverKV is the state bucket that records covered work (coalesce.go).
	coverKV atomic.Pointer[jetstream.KeyValue]
}

// Open creates or updates the streams and consumers (idempotent, so every
// process may call it at start-up) and returns the queue. It does not own nc.
func Open(ctx context.Context, nc *nats.Conn, cfg Config, logger *slog.Logger) (*Queue, error) {
	if nc == nil {
		return nil, errors.New("queue: open: nil NATS connection")
	}
	if logger == nil {
		logger = slog.Default()
	}
	cfg = cfg.withDefaults()
	if cfg.Partitions > 1024 {
		return nil, fmt.Errorf("queue: open: %d partitions, at most 1024 allowed", cfg.Partitions)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("queue: open: JetStream context: %w", err)
	}
	q := &Queue{nc: nc, js: js, cfg: cfg, logger: logger.With(slog.String("component", "queue"))}
	if err := q.setup(ctx); err != nil {
		return nil, err
	}
	statsQueue.Store(q)
	resetStatsCache()
	return q, nil
}

// Close stops answering metric scrapes for this queue. It does not close the
// NATS connection.
func (q *Queue) Close() {
	statsQueue.CompareAndSwap(q, nil)
}

// Config returns the effective configuration (defaults filled in).
func (q *Queue) Config() Config { return q.cfg }

// JetStream gives access to the underlying JetStream context (for the admin
// API and tests).
func (q *Queue) JetStream() jetstream.JetStream { return q.js }

func (q *Queue) setup(ctx context.Context) error {
	src, dst := partitionTransform(q.cfg.Partitions)
	if existing, err := q.js.Stream(ctx, EventStream); err == nil {
		if t := existing.CachedInfo().Config.SubjectTransform; t != nil && t.Destination != dst {
			return fmt.Errorf("queue: open: stream %s is partitioned as %q but QUEUE_PARTITIONS asks for %q: "+
				"changing the partition count needs a drain (stop receivers, let workers empty every partition, delete the stream)",
				EventStream, t.Destination, dst)
		}
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("queue: open: look up stream %s: %w", EventStream, err)
	}

	// Limits rather than WorkQueue retention (docs/jetstream.md#why-a-limits-stream): the
	// de-duplication ids survive restarts, the log can be replayed and
	// audited, further consumers can be added, and a dead message needs no
	// manual delete.
	events := jetstream.StreamConfig{
		Name:        EventStream,
		Description: "personio-entra person work: webhook events, schedules, syncs, re-drives",
		Subjects:    []string{ingestPersonPrefix + "*.*", ingestEmploymentPref + "*", schedulePrefix + "*", noticePrefix + ">"},
		SubjectTransform: &jetstream.SubjectTransformConfig{
			Source: src, Destination: dst,
		},
		Retention:  jetstream.LimitsPolicy,
		Storage:    jetstream.FileStorage,
		Replicas:   q.cfg.Replicas,
		MaxAge:     q.cfg.MaxAge,
		Discard:    jetstream.DiscardOld, // message schedules forbid DiscardNew (docs/jetstream.md#subjects-and-partitions)
		Duplicates: q.cfg.Duplicates,
		// Schedules need AllowMsgSchedules, and Nats-TTL: never on the
		// schedule message needs AllowMsgTTL (docs/jetstream.md#message-schedules).
		AllowMsgTTL:       true,
		AllowMsgSchedules: true,
		AllowRollup:       true,
	}
	es, err := q.js.CreateOrUpdateStream(ctx, events)
	if err != nil {
		return fmt.Errorf("queue: open: create or update stream %s: %w", EventStream, err)
	}
	q.events = es
	dlq := jetstream.StreamConfig{
		Name:        DeadLetterStream,
		Description: "personio-entra work that failed permanently or ran out of attempts",
		Subjects:    []string{dlqPrefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    q.cfg.Replicas,
		MaxAge:      q.cfg.DeadLetterMaxAge,
		Duplicates:  time.Hour, // a dead letter's Msg-Id is derived from the original sequence
	}
	if _, err := q.js.CreateOrUpdateStream(ctx, dlq); err != nil {
		return fmt.Errorf("queue: open: create or update stream %s: %w", DeadLetterStream, err)
	}
	audit := jetstream.StreamConfig{
		Name:        AuditStream,
		Description: "personio-entra audit records, one subject per person",
		Subjects:    []string{auditPrefix + "*"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    q.cfg.Replicas,
		MaxAge:      q.cfg.AuditMaxAge,
		DenyDelete:  true,
		DenyPurge:   true,
	}
	if _, err := q.js.CreateOrUpdateStream(ctx, audit); err != nil {
		return fmt.Errorf("queue: open: create or update stream %s: %w", AuditStream, err)
	}

	// One durable pull consumer per partition
	// (docs/jetstream.md#one-consumer-per-partition):
	// MaxAckPending 1 is what makes a person's work strictly one at a time
	// across every worker process; no BackOff (retries use NakWithDelay) and
	// no InactiveThreshold (an idle fleet must not lose its consumers,
	// docs/jetstream.md#consumers-and-acknowledgements). MaxDeliver is one
	// more than the configured attempts: the worker dead-letters on the last
	// attempt itself, and the spare delivery lets it dead-letter a message
	// whose last attempt died with its worker.
	for k := 0; k < q.cfg.Partitions; k++ {
		cc := jetstream.ConsumerConfig{
			Durable:       partitionConsumerName(k),
			Description:   fmt.Sprintf("person work, partition %d of %d", k, q.cfg.Partitions),
			FilterSubject: partitionFilter(k),
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       q.cfg.AckWait,
			MaxDeliver:    q.cfg.MaxDeliver + 1,
			MaxAckPending: 1,
			Replicas:      q.cfg.Replicas,
		}
		if err := q.ensureConsumer(ctx, cc); err != nil {
			return err
		}
	}
	rc := jetstream.ConsumerConfig{
		Durable:       resolverConsumer,
		Description:   "employment events without a person id, resolved to person work",
		FilterSubject: ingestEmploymentPref + ">",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       q.cfg.AckWait,
		MaxDeliver:    q.cfg.MaxDeliver + 1,
		MaxAckPending: q.cfg.ResolverMaxAckPending,
		Replicas:      q.cfg.Replicas,
	}
	if err := q.ensureConsumer(ctx, rc); err != nil {
		return err
	}
	return q.setupNotifications(ctx)
}

// ensureConsumer creates a missing consumer or updates an existing one. A
// consumer created on a stream that already holds messages starts at new
// messages: on a Limits stream DeliverAll would replay the whole retained
// history (docs/jetstream.md#consumers-and-acknowledgements).
func (q *Queue) ensureConsumer(ctx context.Context, cc jetstream.ConsumerConfig) error {
	c, err := q.js.Consumer(ctx, EventStream, cc.Durable)
	switch {
	case err == nil:
		old := c.CachedInfo().Config
		cc.DeliverPolicy, cc.OptStartSeq, cc.OptStartTime = old.DeliverPolicy, old.OptStartSeq, old.OptStartTime
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		s, err := q.js.Stream(ctx, EventStream)
		if err != nil {
			return fmt.Errorf("queue: open: look up stream %s: %w", EventStream, err)
		}
		if s.CachedInfo().State.Msgs > 0 {
			cc.DeliverPolicy = jetstream.DeliverNewPolicy
			q.logger.Warn("queue: consumer missing on a non-empty stream; it starts with new messages",
				slog.String("consumer", cc.Durable))
		}
	default:
		return fmt.Errorf("queue: open: look up consumer %s: %w", cc.Durable, err)
	}
	if _, err := q.js.CreateOrUpdateConsumer(ctx, EventStream, cc); err != nil {
		return fmt.Errorf("queue: open: create or update consumer %s: %w", cc.Durable, err)
	}
	return nil
}

// Ready reports whether the connection is up and the event stream exists.
func (q *Queue) Ready(ctx context.Context) error {
	if st := q.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("queue: NATS connection is %s", st)
	}
	ctx, cancel := q.opContext(ctx)
	defer cancel()
	if _, err := q.js.Stream(ctx, EventStream); err != nil {
		return fmt.Errorf("queue: stream %s: %w", EventStream, err)
	}
	return nil
}

// KeyValue returns the bucket, creating it on first use (file storage,
// history 1, the queue's replicas). For buckets that need other settings use
// KeyValueWith.
func (q *Queue) KeyValue(ctx context.Context, bucket string) (jetstream.KeyValue, error) {
	return q.KeyValueWith(ctx, jetstream.KeyValueConfig{Bucket: bucket})
}

// KeyValueWith is KeyValue with an explicit configuration for a bucket that
// does not exist yet; an existing bucket is returned as it is.
func (q *Queue) KeyValueWith(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	ctx, cancel := q.opContext(ctx)
	defer cancel()
	kv, err := q.js.KeyValue(ctx, cfg.Bucket)
	if err == nil {
		return kv, nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("queue: key-value bucket %q: %w", cfg.Bucket, err)
	}
	if cfg.Storage == jetstream.FileStorage && cfg.Replicas == 0 {
		cfg.Replicas = q.cfg.Replicas
	}
	kv, err = q.js.CreateKeyValue(ctx, cfg)
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = q.js.KeyValue(ctx, cfg.Bucket)
	}
	if err != nil {
		return nil, fmt.Errorf("queue: create key-value bucket %q: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// Backlog is the work not yet finished: the messages waiting on every
// consumer of the work stream (NumPending) plus those delivered and not yet
// acknowledged (NumAckPending, including retries waiting for their backoff).
// Future-dated wake-ups are not counted until they fire. It asks the server
// each time, so it is exact at the moment of the call
// (docs/jetstream.md#monitoring).
func (q *Queue) Backlog(ctx context.Context) (int, error) {
	ctx, cancel := q.opContext(ctx)
	defer cancel()
	st, err := q.js.Stream(ctx, EventStream)
	if err != nil {
		return 0, fmt.Errorf("queue: backlog: stream %s: %w", EventStream, err)
	}
	lister := st.ListConsumers(ctx)
	backlog, consumers := 0, 0
	for ci := range lister.Info() {
		backlog += int(ci.NumPending) + ci.NumAckPending
		consumers++
	}
	if err := lister.Err(); err != nil {
		return 0, fmt.Errorf("queue: backlog: list consumers of %s: %w", EventStream, err)
	}
	if consumers == 0 {
		return 0, fmt.Errorf("queue: backlog: no consumers on %s", EventStream)
	}
	return backlog, nil
}

// opContext adds the queue's operation timeout when ctx has no deadline.
func (q *Queue) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, q.cfg.OpTimeout)
}

// stats feeds the gauges in metrics.go.
func (q *Queue) stats(ctx context.Context) (queueStats, error) {
	var s queueStats
	for k := 0; k < q.cfg.Partitions; k++ {
		c, err := q.js.Consumer(ctx, EventStream, partitionConsumerName(k))
		if err != nil {
			return s, fmt.Errorf("consumer %s: %w", partitionConsumerName(k), err)
		}
		info := c.CachedInfo()
		s.pending += float64(info.NumPending) + float64(info.NumAckPending)
	}
	d, err := q.js.Stream(ctx, DeadLetterStream)
	if err != nil {
		return s, fmt.Errorf("stream %s: %w", DeadLetterStream, err)
	}
	s.deadLetters = float64(d.CachedInfo().State.Msgs)
	ev, err := q.js.Stream(ctx, EventStream)
	if err != nil {
		return s, fmt.Errorf("stream %s: %w", EventStream, err)
	}
	info, err := ev.Info(ctx, jetstream.WithSubjectFilter(schedulePrefix+"*"))
	if err != nil {
		return s, fmt.Errorf("stream %s: info: %w", EventStream, err)
	}
	s.schedules = float64(len(info.State.Subjects))
	return s, nil
}
