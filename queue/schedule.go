package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Schedule arranges for the person's Handler to run at `at` (reason
// ReasonSchedule, with detail as Work.Detail), replacing any earlier schedule
// for that person (a new schedule on the same subject replaces the old one,
// docs/jetstream.md#message-schedules). A time in the past fires at once.
//
// The schedule is a JetStream message schedule on pe.sched.person.<id> that
// targets the person's work subject, so the wake-up lands in the person's
// partition and is serialised with their other work
// (docs/jetstream.md#future-dated-work). It carries Nats-TTL: never because a schedule
// older than the stream's MaxAge would otherwise be deleted silently and
// never fire (docs/jetstream.md#message-schedules). No Msg-Id: a move D→D2→D
// within the de-duplication window would drop the third publish
// (docs/jetstream.md#future-dated-work).
// Handlers must re-check the source of truth when woken: overdue schedules
// fire right after an outage and a cancel can race the firing.
func (q *Queue) Schedule(ctx context.Context, personID string, at time.Time, detail string) error {
	subj, err := scheduleSubject(personID)
	if err != nil {
		return fmt.Errorf("queue: schedule: %w", err)
	}
	target, err := personSubject(personID, kindSchedule)
	if err != nil {
		return fmt.Errorf("queue: schedule: %w", err)
	}
	msg := nats.NewMsg(subj)
	msg.Header.Set(HeaderReason, ReasonSchedule)
	if detail != "" {
		msg.Header.Set(HeaderDetail, detail)
	}
	msg.Header.Set(jetstream.MsgTTLHeader, "never")
	if _, err := q.publish(ctx, msg, jetstream.WithScheduleAt(at), jetstream.WithScheduleTarget(target)); err != nil {
		return fmt.Errorf("queue: schedule work at %s: %w", at.UTC().Format(time.RFC3339), err)
	}
	resetStatsCache()
	return nil
}

// CancelSchedule removes the person's pending schedule, if any, by purging
// the schedule subject (docs/jetstream.md#message-schedules).
func (q *Queue) CancelSchedule(ctx context.Context, personID string) error {
	subj, err := scheduleSubject(personID)
	if err != nil {
		return fmt.Errorf("queue: cancel schedule: %w", err)
	}
	ctx, cancel := q.opContext(ctx)
	defer cancel()
	s, err := q.js.Stream(ctx, EventStream)
	if err != nil {
		return fmt.Errorf("queue: cancel schedule: stream %s: %w", EventStream, err)
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
		return fmt.Errorf("queue: cancel schedule: purge %s: %w", subj, err)
	}
	resetStatsCache()
	return nil
}

// ScheduledAt returns when the person's pending schedule fires, and false if
// there is none.
func (q *Queue) ScheduledAt(ctx context.Context, personID string) (time.Time, bool, error) {
	subj, err := scheduleSubject(personID)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("queue: scheduled at: %w", err)
	}
	ctx, cancel := q.opContext(ctx)
	defer cancel()
	s, err := q.js.Stream(ctx, EventStream)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("queue: scheduled at: stream %s: %w", EventStream, err)
	}
	m, err := s.GetLastMsgForSubject(ctx, subj)
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return time.Time{}, false, nil
		}
		return time.Time{}, false, fmt.Errorf("queue: scheduled at: read %s: %w", subj, err)
	}
	spec, ok := strings.CutPrefix(m.Header.Get(jetstream.ScheduleHeader), "@at ")
	if !ok {
		return time.Time{}, false, fmt.Errorf("queue: scheduled at: %s holds schedule %q, not a one-shot @at", subj, m.Header.Get(jetstream.ScheduleHeader))
	}
	t, err := time.Parse(time.RFC3339, spec)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("queue: scheduled at: parse %q: %w", spec, err)
	}
	return t, true, nil
}
