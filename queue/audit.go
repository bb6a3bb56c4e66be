package queue

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// auditSystemToken is the subject token of records that concern no single
// person (personID ""). encodeToken never yields a bare "~".
const auditSystemToken = "~"

func auditSubjectFor(personID string) (string, error) {
	if personID == "" {
		return auditPrefix + auditSystemToken, nil
	}
	return auditSubject(personID)
}

// AppendAudit stores one audit record (opaque bytes, typically JSON) for a
// person, or for the whole system when personID is "". The audit stream
// refuses deletes and purges; records leave only by age (AuditMaxAge).
func (q *Queue) AppendAudit(ctx context.Context, personID string, record []byte) error {
	subj, err := auditSubjectFor(personID)
	if err != nil {
		return fmt.Errorf("queue: append audit record: %w", err)
	}
	ctx, cancel := q.opContext(ctx)
	defer cancel()
	if _, err := q.js.Publish(ctx, subj, record, jetstream.WithExpectStream(AuditStream)); err != nil {
		return fmt.Errorf("queue: append audit record: %w", err)
	}
	return nil
}

// ReadAudit returns up to limit of the newest audit records, newest last:
// those of one person, or of everyone when personID is "". limit <= 0 means
// all of them.
func (q *Queue) ReadAudit(ctx context.Context, personID string, limit int) ([][]byte, error) {
	filter := ""
	var start uint64
	if personID != "" {
		subj, err := auditSubjectFor(personID)
		if err != nil {
			return nil, fmt.Errorf("queue: read audit: %w", err)
		}
		filter = subj
	} else if limit > 0 {
		// Unfiltered: start limit messages before the end (the audit stream
		// has no interior deletes, so sequences are dense).
		sctx, cancel := q.opContext(ctx)
		s, err := q.js.Stream(sctx, AuditStream)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("queue: read audit: stream %s: %w", AuditStream, err)
		}
		st := s.CachedInfo().State
		if st.LastSeq >= uint64(limit) {
			start = max(st.FirstSeq, st.LastSeq-uint64(limit)+1)
		}
	}
	var out [][]byte
	err := q.readStream(ctx, AuditStream, filter, start, func(m jetstream.Msg, _ *jetstream.MsgMetadata) {
		out = append(out, m.Data())
		if limit > 0 && len(out) > limit {
			out = out[1:]
		}
	})
	if err != nil {
		return nil, fmt.Errorf("queue: read audit: %w", err)
	}
	return out, nil
}
