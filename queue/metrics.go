package queue

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	redeliveriesTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "personio_entra_queue_redeliveries_total",
		Help: "Work messages delivered to a worker more than once (retries after a failure, a timeout or a crashed worker).",
	})
	heartbeatsLostTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "personio_entra_queue_heartbeats_lost_total",
		Help: "Handlers stopped because the server confirmed none of their in-progress heartbeats for two thirds of the ack wait (the work is retried; it is never run twice at once).",
	})
	supersededTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "personio_entra_queue_superseded_total",
		Help: "Person work acknowledged without running the handler because newer work for the same person was already queued behind it (docs/jetstream.md#coalescing-work-for-one-person).",
	})
	deadLettersTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "personio_entra_dead_letters_total",
		Help: "Work messages moved to the dead-letter stream, by reason (permanent, max_deliveries).",
	}, []string{"reason"})
	workDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "personio_entra_work_duration_seconds",
		Help:    "Time spent handling one work message, by outcome (success, retry, dead_letter).",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"outcome"})
	publishDuration = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "personio_entra_queue_publish_duration_seconds",
		Help:    "Time from publish to JetStream acknowledgement (PubAck).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	})
	_ = promauto.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "personio_entra_queue_pending_messages",
		Help: "Person work not yet finished: sum over the partition consumers of pending plus in-flight (ack pending) messages.",
	}, func() float64 { return currentStats().pending })
	_ = promauto.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "personio_entra_dead_letter_messages",
		Help: "Messages currently held in the dead-letter stream.",
	}, func() float64 { return currentStats().deadLetters })
	_ = promauto.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "personio_entra_schedules_pending",
		Help: "People with a pending message schedule (a future-dated wake-up).",
	}, func() float64 { return currentStats().schedules })
)

// Outcome labels of personio_entra_work_duration_seconds.
const (
	outcomeSuccess    = "success"
	outcomeRetry      = "retry"
	outcomeDeadLetter = "dead_letter"
)

// Dead-letter reasons (label of personio_entra_dead_letters_total and the
// Personio-Entra-Dlq-Reason header).
const (
	DeadLetterPermanent     = "permanent"
	DeadLetterMaxDeliveries = "max_deliveries"
)

func init() {
	for _, o := range []string{outcomeSuccess, outcomeRetry, outcomeDeadLetter} {
		workDuration.WithLabelValues(o)
	}
	for _, r := range []string{DeadLetterPermanent, DeadLetterMaxDeliveries} {
		deadLettersTotal.WithLabelValues(r)
	}
}

// The gauges ask JetStream at scrape time. A process has one Queue; the most
// recently opened one that is still open answers. Answers are cached for
// statsTTL so that frequent scrapes do not turn into JetStream API load.
const statsTTL = 5 * time.Second

type queueStats struct {
	pending, deadLetters, schedules float64
}

var (
	statsQueue atomic.Pointer[Queue]
	statsMu    sync.Mutex
	statsAt    time.Time
	statsVal   queueStats
)

func currentStats() queueStats {
	statsMu.Lock()
	defer statsMu.Unlock()
	q := statsQueue.Load()
	if q == nil {
		return queueStats{}
	}
	if time.Since(statsAt) < statsTTL {
		return statsVal
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := q.stats(ctx)
	if err != nil {
		q.logger.Warn("queue metrics: reading JetStream state failed", slog.Any("err", err))
		return statsVal
	}
	statsVal, statsAt = s, time.Now()
	return s
}

func resetStatsCache() {
	statsMu.Lock()
	statsAt = time.Time{}
	statsMu.Unlock()
}
