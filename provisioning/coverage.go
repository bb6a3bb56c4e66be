package provisioning

import (
	"bytes"
	"context"
	"encoding/json"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/personio-entra/personio-entra/provisioning/model"
	"github.com/personio-entra/personio-entra/queue/work"
)

// Covered work (docs/jetstream.md#covered-work): a reconcile run by the
// queue tells it which webhook events its Personio read accounts for, so
// that the events Personio sends for one change while the reconcile runs
// do not cost a second reconcile.
//
// The mark is taken before the employee is read: every event stored before
// it announced a change Personio had already made, which the read sees. When
// events for the person arrived while the reconcile ran, it reads the
// employee once more (one Personio request instead of a whole reconcile): if
// nothing differs from what it acted on, the events stored before that
// second mark are covered too; otherwise they run.

var coverReadsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "personio_entra_cover_reads_total",
	Help: "Second Personio reads after a reconcile during which more webhooks for the person arrived, by result (unchanged: those webhooks need no reconcile; changed: they run).",
}, []string{"result"})

// coverRun is what one queue-driven reconcile read.
type coverRun struct {
	cov  work.Coverage
	mark uint64
	ok   bool
	emp  model.Employee
	read bool
}

type coverRunKey struct{}

func withCoverRun(ctx context.Context) (context.Context, *coverRun) {
	cov, ok := work.CoverageFrom(ctx)
	if !ok {
		return ctx, nil
	}
	r := &coverRun{cov: cov}
	return context.WithValue(ctx, coverRunKey{}, r), r
}

// beforeSourceRead takes the mark; read records what the reconcile acts on.
func beforeSourceRead(ctx context.Context) {
	if r, _ := ctx.Value(coverRunKey{}).(*coverRun); r != nil {
		r.mark, r.ok = r.cov.Mark(ctx)
	}
}

func sourceRead(ctx context.Context, emp model.Employee) {
	if r, _ := ctx.Value(coverRunKey{}).(*coverRun); r != nil {
		r.emp, r.read = emp, true
	}
}

// cover runs after a successful reconcile.
func (e *Engine) cover(ctx context.Context, personID string, r *coverRun) {
	if r == nil || !r.ok || !r.read {
		return
	}
	r.cov.Cover(r.mark)
	later, ok := r.cov.Mark(ctx)
	if !ok || later <= r.mark {
		return
	}
	emp, err := e.cfg.Source.GetEmployee(ctx, personID)
	if err != nil {
		return // the events run
	}
	a, err1 := json.Marshal(r.emp)
	b, err2 := json.Marshal(emp)
	if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
		coverReadsTotal.WithLabelValues("changed").Inc()
		return
	}
	coverReadsTotal.WithLabelValues("unchanged").Inc()
	r.cov.Cover(later)
}
