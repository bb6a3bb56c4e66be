package queue

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/personio-entra/personio-entra/queue/work"
)

// Covered work (docs/jetstream.md#covered-work). A webhook event for a
// person that was stored before a successful run of that person read
// Personio is already accounted for: the queue acknowledges it without
// running the handler. The handler says what its read covers through
// work.Coverage: Mark before it reads (the newest message stored for the
// person then), Cover once what it read is what it acted on. When the run
// succeeds and covered messages stored after its own, the worker records
// the covered position in the state bucket under "covered.<person>" (every
// worker process reads it, whichever takes the person's next message) and
// only then acknowledges the run.
//
// A message is covered when its stream sequence is at or before the
// recorded one and its stored time not after the recorded message's: the
// sequence orders messages as the stream stored them, so such a message
// was stored before the handler's read; the time guards against a stream
// that was recreated (its sequence starts again, the state bucket keeps its
// records). Both come from the NATS server, so the workers' clocks play no
// part. Only webhook events (kind event) are ever covered: a schedule, a
// sync, a re-drive or an admin's request may be about something else than
// a Personio change (the time, a hand edit in Entra) and always runs.
const coveredPrefix = "covered."

var coveredTotal = promauto.NewCounter(prometheus.CounterOpts{
	Name: "personio_entra_queue_covered_total",
	Help: "Webhook events acknowledged without running the handler because a successful run of the same person read Personio after they were stored (docs/jetstream.md#covered-work).",
})

type coverRecord struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"` // when the message at Seq was stored (server time)
}

// coverKey is the state key of the person, "" when the person's subject
// token cannot be a key (hex-encoded ids: no coverage for them).
func coverKey(personID string) string {
	tok, err := encodeToken(personID)
	if err != nil || strings.HasPrefix(tok, "~") {
		return ""
	}
	return coveredPrefix + tok
}

// coverage is one run's work.Coverage.
type coverage struct {
	q      *Queue
	filter string // the person's work subjects in the partition
	own    uint64 // the running message

	mu    sync.Mutex
	marks map[uint64]time.Time
	best  coverRecord
}

var _ work.Coverage = (*coverage)(nil)

func (q *Queue) newCoverage(subject string, own uint64) *coverage {
	i := strings.LastIndexByte(subject, '.')
	if q.events == nil || q.stateKV() == nil || i < 0 {
		return nil
	}
	return &coverage{q: q, filter: subject[:i] + ".*", own: own, marks: map[uint64]time.Time{}}
}

func (c *coverage) Mark(ctx context.Context) (uint64, bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.q.cfg.OpTimeout)
	defer cancel()
	m, err := c.q.events.GetLastMsgForSubject(ctx, c.filter)
	if err != nil {
		return 0, false
	}
	c.mu.Lock()
	c.marks[m.Sequence] = m.Time
	c.mu.Unlock()
	return m.Sequence, true
}

func (c *coverage) Cover(mark uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.marks[mark]; ok && mark > c.best.Seq {
		c.best = coverRecord{Seq: mark, Time: t}
	}
}

// save records the covered position after the run succeeded, when it
// covers messages stored after the run's own. A failure only costs a run
// that was not needed.
func (c *coverage) save(ctx context.Context, log *slog.Logger, personID string) {
	c.mu.Lock()
	rec := c.best
	c.mu.Unlock()
	key := coverKey(personID)
	if rec.Seq <= c.own || key == "" {
		return
	}
	b, _ := json.Marshal(rec)
	if _, err := c.q.stateKV().Put(ctx, key, b); err != nil {
		log.Warn("workers: recording the work this run covered failed; those messages run again", slog.Any("err", err))
	}
}

// covered reports whether the delivered webhook event was stored before a
// successful run of the person read Personio. Any doubt answers false.
func (q *Queue) covered(ctx context.Context, log *slog.Logger, personID string, md *jetstream.MsgMetadata) bool {
	kv, key := q.stateKV(), coverKey(personID)
	if kv == nil || key == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), q.cfg.OpTimeout)
	defer cancel()
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false
	}
	if err != nil {
		log.Warn("workers: checking whether the work is covered failed; running it", slog.Any("err", err))
		return false
	}
	var rec coverRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return false
	}
	return md.Sequence.Stream <= rec.Seq && !md.Timestamp.After(rec.Time)
}

func (q *Queue) stateKV() jetstream.KeyValue {
	if p := q.coverKV.Load(); p != nil {
		return *p
	}
	return nil
}

// openCoverage opens the state bucket for covered work (RunWorkers); without
// it nothing is covered.
func (q *Queue) openCoverage(ctx context.Context) {
	kv, err := q.KeyValue(ctx, StateBucket)
	if err != nil {
		q.logger.Warn("workers: no state bucket; work covered by an earlier run is run again", slog.Any("err", err))
		return
	}
	q.coverKV.Store(&kv)
}
