package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Headers on dead letters (docs/jetstream.md#handling-a-message).
const (
	HeaderDLQReason      = "Personio-Entra-Dlq-Reason" // permanent | max_deliveries
	HeaderDLQError       = "Personio-Entra-Dlq-Error"
	HeaderDLQAttempts    = "Personio-Entra-Dlq-Attempts"
	HeaderDLQStream      = "Personio-Entra-Dlq-Stream"
	HeaderDLQSubject     = "Personio-Entra-Dlq-Subject"
	HeaderDLQSequence    = "Personio-Entra-Dlq-Sequence"
	HeaderDLQConsumer    = "Personio-Entra-Dlq-Consumer"
	HeaderDLQTime        = "Personio-Entra-Dlq-Time"
	HeaderDLQOrigMsgID   = "Personio-Entra-Dlq-Msg-Id"
	maxDeadLetterErrText = 2000
)

// DeadLetter is one message in the dead-letter stream.
type DeadLetter struct {
	Sequence         uint64              `json:"sequence"` // in the dead-letter stream; the handle for Redrive and PurgeDeadLetter
	Time             time.Time           `json:"time"`
	Reason           string              `json:"reason"` // permanent or max_deliveries
	Error            string              `json:"error"`
	Attempts         int                 `json:"attempts"`
	PersonID         string              `json:"person_id,omitempty"`
	EmploymentID     string              `json:"employment_id,omitempty"`
	WorkReason       string              `json:"work_reason"` // event name, schedule, sync, redrive ...
	OriginalStream   string              `json:"original_stream"`
	OriginalSubject  string              `json:"original_subject"`
	OriginalSequence uint64              `json:"original_sequence"`
	Headers          map[string][]string `json:"headers,omitempty"`
	Data             []byte              `json:"data,omitempty"`
}

// deadLetter copies a work message to the dead-letter stream with why it
// died. The Msg-Id derived from the original stream sequence makes a repeat
// (e.g. after a lost Term) a no-op.
func (q *Queue) deadLetter(ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata, reason string, cause error) error {
	dl := nats.NewMsg(dlqPrefix + msg.Subject())
	dl.Data = msg.Data()
	for k, v := range msg.Headers() {
		if strings.HasPrefix(k, "Nats-") {
			continue // server-interpreted headers (Msg-Id, TTL, schedules) must not act again
		}
		dl.Header[k] = v
	}
	if id := msg.Headers().Get(jetstream.MsgIDHeader); id != "" {
		dl.Header.Set(HeaderDLQOrigMsgID, id)
	}
	errText := cause.Error()
	if len(errText) > maxDeadLetterErrText {
		errText = errText[:maxDeadLetterErrText] + "…"
	}
	dl.Header.Set(HeaderDLQReason, reason)
	dl.Header.Set(HeaderDLQError, errText)
	dl.Header.Set(HeaderDLQAttempts, strconv.FormatUint(md.NumDelivered, 10))
	dl.Header.Set(HeaderDLQStream, md.Stream)
	dl.Header.Set(HeaderDLQSubject, msg.Subject())
	dl.Header.Set(HeaderDLQSequence, strconv.FormatUint(md.Sequence.Stream, 10))
	dl.Header.Set(HeaderDLQConsumer, md.Consumer)
	dl.Header.Set(HeaderDLQTime, time.Now().UTC().Format(time.RFC3339Nano))
	_, err := q.js.PublishMsg(ctx, dl,
		jetstream.WithMsgID(fmt.Sprintf("dlq-%s-%d", md.Stream, md.Sequence.Stream)),
		jetstream.WithExpectStream(DeadLetterStream))
	if err != nil {
		return fmt.Errorf("publish dead letter for %s seq %d: %w", md.Stream, md.Sequence.Stream, err)
	}
	resetStatsCache()
	return nil
}

func toDeadLetter(seq uint64, t time.Time, hdr nats.Header, data []byte) DeadLetter {
	d := DeadLetter{
		Sequence:        seq,
		Time:            t,
		Reason:          hdr.Get(HeaderDLQReason),
		Error:           hdr.Get(HeaderDLQError),
		WorkReason:      hdr.Get(HeaderReason),
		OriginalStream:  hdr.Get(HeaderDLQStream),
		OriginalSubject: hdr.Get(HeaderDLQSubject),
		Headers:         map[string][]string(hdr),
		Data:            data,
	}
	d.Attempts, _ = strconv.Atoi(hdr.Get(HeaderDLQAttempts))
	d.OriginalSequence, _ = strconv.ParseUint(hdr.Get(HeaderDLQSequence), 10, 64)
	if target, err := parseWorkSubject(d.OriginalSubject); err == nil {
		d.PersonID, d.EmploymentID = target.personID, target.employmentID
	}
	return d
}

// DeadLetters lists the dead-letter stream, oldest first.
func (q *Queue) DeadLetters(ctx context.Context) ([]DeadLetter, error) {
	var out []DeadLetter
	err := q.readStream(ctx, DeadLetterStream, "", 0, func(m jetstream.Msg, md *jetstream.MsgMetadata) {
		out = append(out, toDeadLetter(md.Sequence.Stream, md.Timestamp, m.Headers(), m.Data()))
	})
	if err != nil {
		return nil, fmt.Errorf("queue: list dead letters: %w", err)
	}
	return out, nil
}

// DeadLetter returns one dead letter by its sequence.
func (q *Queue) DeadLetter(ctx context.Context, seq uint64) (DeadLetter, error) {
	ctx, cancel := q.opContext(ctx)
	defer cancel()
	s, err := q.js.Stream(ctx, DeadLetterStream)
	if err != nil {
		return DeadLetter{}, fmt.Errorf("queue: dead letter %d: stream %s: %w", seq, DeadLetterStream, err)
	}
	m, err := s.GetMsg(ctx, seq)
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return DeadLetter{}, fmt.Errorf("queue: dead letter %d: %w", seq, ErrNoDeadLetter)
		}
		return DeadLetter{}, fmt.Errorf("queue: dead letter %d: %w", seq, err)
	}
	return toDeadLetter(m.Sequence, m.Time, m.Header, m.Data), nil
}

// ErrNoDeadLetter: no dead letter with that sequence.
var ErrNoDeadLetter = errors.New("no such dead letter")

// Redrive queues a dead letter again as fresh work (reason ReasonRedrive for
// person work; an unresolved employment event goes back to the Resolver) and
// then deletes it from the dead-letter stream. The attempt count starts over.
func (q *Queue) Redrive(ctx context.Context, seq uint64) error {
	d, err := q.DeadLetter(ctx, seq)
	if err != nil {
		return err
	}
	detail := fmt.Sprintf("dead letter %d (%s: %s)", seq, d.WorkReason, d.Reason)
	switch {
	case isNoticeSubject(d.OriginalSubject):
		if err := q.redriveNotice(ctx, d); err != nil {
			return fmt.Errorf("queue: redrive dead letter %d: %w", seq, err)
		}
	case d.PersonID != "":
		if err := q.enqueue(ctx, d.PersonID, ReasonRedrive, detail, kindRedrive, nil); err != nil {
			return fmt.Errorf("queue: redrive dead letter %d: %w", seq, err)
		}
	case d.EmploymentID != "":
		subj, err := employmentSubject(d.EmploymentID)
		if err != nil {
			return fmt.Errorf("queue: redrive dead letter %d: %w", seq, err)
		}
		msg := nats.NewMsg(subj)
		msg.Data = d.Data
		msg.Header.Set(HeaderReason, d.WorkReason)
		msg.Header.Set(HeaderDetail, detail)
		if _, err := q.publish(ctx, msg); err != nil {
			return fmt.Errorf("queue: redrive dead letter %d: %w", seq, err)
		}
	default:
		return fmt.Errorf("queue: redrive dead letter %d: original subject %q names no person or employment", seq, d.OriginalSubject)
	}
	if err := q.PurgeDeadLetter(ctx, seq); err != nil {
		return fmt.Errorf("queue: redrive dead letter %d: re-queued, but removing it failed: %w", seq, err)
	}
	return nil
}

// RedriveAll re-drives every dead letter and returns how many succeeded.
func (q *Queue) RedriveAll(ctx context.Context) (int, error) {
	dls, err := q.DeadLetters(ctx)
	if err != nil {
		return 0, err
	}
	var errs []error
	n := 0
	for _, d := range dls {
		if err := q.Redrive(ctx, d.Sequence); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// PurgeDeadLetter deletes one dead letter.
func (q *Queue) PurgeDeadLetter(ctx context.Context, seq uint64) error {
	ctx, cancel := q.opContext(ctx)
	defer cancel()
	s, err := q.js.Stream(ctx, DeadLetterStream)
	if err != nil {
		return fmt.Errorf("queue: purge dead letter %d: stream %s: %w", seq, DeadLetterStream, err)
	}
	if err := s.DeleteMsg(ctx, seq); err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) || strings.Contains(err.Error(), "no message found") {
			return fmt.Errorf("queue: purge dead letter %d: %w", seq, ErrNoDeadLetter)
		}
		return fmt.Errorf("queue: purge dead letter %d: %w", seq, err)
	}
	resetStatsCache()
	return nil
}

// readStream calls fn for every message of stream (optionally only those on
// filter, from startSeq on), in order, with an ordered consumer.
func (q *Queue) readStream(ctx context.Context, stream, filter string, startSeq uint64, fn func(jetstream.Msg, *jetstream.MsgMetadata)) error {
	ctx, cancel := q.opContext(ctx)
	defer cancel()
	opts := []jetstream.StreamInfoOpt{}
	if filter != "" {
		opts = append(opts, jetstream.WithSubjectFilter(filter))
	}
	s, err := q.js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx, opts...)
	if err != nil {
		return fmt.Errorf("stream %s: info: %w", stream, err)
	}
	st := info.State
	if st.Msgs == 0 || (filter != "" && len(st.Subjects) == 0) || (startSeq > st.LastSeq) {
		return nil
	}
	oc := jetstream.OrderedConsumerConfig{}
	if filter != "" {
		oc.FilterSubjects = []string{filter}
	}
	if startSeq > 0 {
		oc.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		oc.OptStartSeq = startSeq
	}
	cons, err := s.OrderedConsumer(ctx, oc)
	if err != nil {
		return fmt.Errorf("stream %s: ordered consumer: %w", stream, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("stream %s: read: %w", stream, err)
	}
	defer it.Stop()
	for {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return fmt.Errorf("stream %s: read: %w", stream, err)
		}
		md, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("stream %s: message metadata: %w", stream, err)
		}
		fn(m, md)
		if md.NumPending == 0 {
			return nil
		}
	}
}
