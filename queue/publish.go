package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Headers on work messages.
const (
	HeaderReason       = "Personio-Entra-Reason"      // event name, "schedule", "sync", "redrive", ...
	HeaderDetail       = "Personio-Entra-Detail"      // free text, e.g. why a schedule was set
	HeaderCompanyID    = "Personio-Entra-Company-Id"  // webhook events only
	HeaderOccurredAt   = "Personio-Entra-Occurred-At" // webhook events only (RFC 3339)
	HeaderEmploymentID = "Personio-Entra-Employment-Id"
	HeaderResolvedFrom = "Personio-Entra-Resolved-From" // employment id a person message was resolved from
)

// Reasons the queue itself sets (see ReasonFrom).
const (
	ReasonSchedule = "schedule"
	ReasonRedrive  = "redrive"
)

// Event is one accepted webhook delivery, ready to be queued.
type Event struct {
	// MsgID identifies the delivery for de-duplication (required). The
	// receiver derives it from the delivery's content, since Personio sends
	// no event id (docs/personio-api.md#webhook-deliveries).
	MsgID string
	// CompanyID, Name and OccurredAt come from the envelope.
	CompanyID  string
	Name       string
	OccurredAt time.Time
	// PersonID keys the work. When it is empty, EmploymentID must be set and
	// the event is queued for the Resolver.
	PersonID     string
	EmploymentID string
	// Body is stored as the message data (the delivery as received), for
	// replay and for the dead-letter stream.
	Body []byte
}

// PublishEvent queues a webhook event and returns once JetStream has
// acknowledged it (publish_async.go: many concurrent deliveries share the
// connection's writes, each still waits for its own acknowledgement). duplicate is true when the same delivery was already
// stored within the de-duplication window; nothing new was queued then.
// Retry a failed call with the same Event: a timeout does not mean "not
// stored" (docs/jetstream.md#publishing-and-de-duplication).
func (q *Queue) PublishEvent(ctx context.Context, ev Event) (duplicate bool, err error) {
	if ev.MsgID == "" {
		return false, errors.New("queue: publish event: empty message id")
	}
	if ev.Name == "" {
		return false, errors.New("queue: publish event: empty event name")
	}
	var subj string
	switch {
	case ev.PersonID != "":
		subj, err = personSubject(ev.PersonID, kindEvent)
	case ev.EmploymentID != "":
		subj, err = employmentSubject(ev.EmploymentID)
	default:
		err = errors.New("neither a person id nor an employment id")
	}
	if err != nil {
		return false, fmt.Errorf("queue: publish event %s: %w", ev.Name, err)
	}
	msg := nats.NewMsg(subj)
	msg.Data = ev.Body
	msg.Header.Set(HeaderReason, ev.Name)
	if ev.CompanyID != "" {
		msg.Header.Set(HeaderCompanyID, ev.CompanyID)
	}
	if !ev.OccurredAt.IsZero() {
		msg.Header.Set(HeaderOccurredAt, ev.OccurredAt.UTC().Format(time.RFC3339Nano))
	}
	if ev.EmploymentID != "" {
		msg.Header.Set(HeaderEmploymentID, ev.EmploymentID)
	}
	ack, err := q.publishAcked(ctx, msg, jetstream.WithMsgID(ev.MsgID))
	if err != nil {
		return false, fmt.Errorf("queue: publish event %s: %w", ev.Name, err)
	}
	return ack.Duplicate, nil
}

// Enqueue queues work for one person (full sync, admin API, CLI). reason is
// what ReasonFrom reports to the handler, e.g. "sync".
func (q *Queue) Enqueue(ctx context.Context, personID, reason string) error {
	return q.enqueue(ctx, personID, reason, "", kindEnqueue, nil)
}

func (q *Queue) enqueue(ctx context.Context, personID, reason, detail, kind string, hdr nats.Header, opts ...jetstream.PublishOpt) error {
	if reason == "" {
		return errors.New("queue: enqueue: empty reason")
	}
	subj, err := personSubject(personID, kind)
	if err != nil {
		return fmt.Errorf("queue: enqueue (%s): %w", reason, err)
	}
	msg := nats.NewMsg(subj)
	for k, v := range hdr {
		msg.Header[k] = v
	}
	msg.Header.Set(HeaderReason, reason)
	if detail != "" {
		msg.Header.Set(HeaderDetail, detail)
	}
	if _, err := q.publish(ctx, msg, opts...); err != nil {
		return fmt.Errorf("queue: enqueue (%s) for a person: %w", reason, err)
	}
	return nil
}

// publish is a synchronous, acknowledged publish into the event stream.
func (q *Queue) publish(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	ctx, cancel := q.opContext(ctx)
	defer cancel()
	start := time.Now()
	ack, err := q.js.PublishMsg(ctx, msg, append(opts, jetstream.WithExpectStream(EventStream))...)
	if err != nil {
		return nil, err
	}
	publishDuration.Observe(time.Since(start).Seconds())
	return ack, nil
}
