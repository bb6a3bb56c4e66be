package handlers

import (
	"bytes"
	"testing"
)

func FuzzParseEnvelope(f *testing.F) {
	seeds := []string{
		delivery("person.updated", `{"person":{"id":"5005"}}`),
		delivery("employment.updated", `{"employment":{"id":"e-1"},"person":{"id":77}}`),
		delivery("employment.started", `{"employment":{"id":"2306b77a-35fb-4b1d-8044-3b14f7f2ca65"}}`),
		delivery("absence_period.created", `{"absence_period":{"id":"abc"}}`),
		delivery("ping", `{}`),
		`{"company_id":1,"event_name":"person.created","occurred_at":"2026-01-01T00:00:00.123456789+02:00","payload":{"person":{"id":"x.y*>"}},"meta":null}`,
		`{"company_id":"1","event_name":"person.created","occurred_at":"2026-01-01T00:00:00Z","payload":{"person":{"id":1e400}}}`,
		`{"company_id":"","event_name":"","occurred_at":"","payload":[]}`,
		`{}`, `[]`, `null`, ``, `{"a":`, `{"payload":{"person":{"id":"1"}}} {}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		env, err := ParseEnvelope(body)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if env.CompanyID == "" || env.EventName == "" || env.OccurredAt.IsZero() || len(env.Payload) == 0 {
			t.Fatalf("accepted an envelope with an empty required field: %+v", env)
		}
		switch eventKind(env.EventName) {
		case kindPerson:
			if env.PersonID() == "" {
				t.Fatalf("person event %q accepted without a person id", env.EventName)
			}
		case kindEmployment:
			if env.PersonID() == "" && env.EmploymentID() == "" {
				t.Fatalf("employment event %q accepted without any id", env.EventName)
			}
		}
		for _, id := range []string{env.PersonID(), env.EmploymentID()} {
			if len(id) > maxIDLen {
				t.Fatalf("id of %d bytes accepted", len(id))
			}
		}
		// The stored canonical form parses to the same delivery: a retry
		// that differs only in formatting is recognised as a duplicate.
		again, err := ParseEnvelope(env.canonicalBody())
		if err != nil {
			t.Fatalf("canonical body does not parse: %v\n%s", err, env.canonicalBody())
		}
		if again.DeliveryID() != env.DeliveryID() || again.PersonID() != env.PersonID() || again.EmploymentID() != env.EmploymentID() {
			t.Fatalf("canonical round trip changed the delivery:\n%+v\n%+v", env, again)
		}
		if !bytes.Equal(again.canonicalBody(), env.canonicalBody()) {
			t.Fatalf("canonical form is not stable:\n%s\n%s", env.canonicalBody(), again.canonicalBody())
		}
	})
}
