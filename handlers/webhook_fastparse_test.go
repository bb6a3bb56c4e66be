package handlers

import (
	"bytes"
	"fmt"
	"testing"
)

// sameEnvelope reports how two parses differ ("" when they do not).
func sameEnvelope(a, b Envelope) string {
	switch {
	case a.CompanyID != b.CompanyID:
		return fmt.Sprintf("company_id %q vs %q", a.CompanyID, b.CompanyID)
	case a.EventName != b.EventName:
		return fmt.Sprintf("event_name %q vs %q", a.EventName, b.EventName)
	case !a.OccurredAt.Equal(b.OccurredAt) || a.OccurredAt.String() != b.OccurredAt.String():
		return fmt.Sprintf("occurred_at %s vs %s", a.OccurredAt, b.OccurredAt)
	case !bytes.Equal(a.Payload, b.Payload):
		return fmt.Sprintf("payload %s vs %s", a.Payload, b.Payload)
	case !bytes.Equal(a.Meta, b.Meta) || (a.Meta == nil) != (b.Meta == nil):
		return fmt.Sprintf("meta %s vs %s", a.Meta, b.Meta)
	case a.personID != b.personID || a.employmentID != b.employmentID:
		return fmt.Sprintf("ids %q/%q vs %q/%q", a.personID, a.employmentID, b.personID, b.employmentID)
	case a.DeliveryID() != b.DeliveryID():
		return "delivery id"
	case !bytes.Equal(a.canonicalBody(), b.canonicalBody()):
		return fmt.Sprintf("canonical body %s vs %s", a.canonicalBody(), b.canonicalBody())
	}
	return ""
}

var fastSeeds = []string{
	delivery("person.updated", `{"person":{"id":"5005"}}`),
	delivery("person.created", `{ "person" : { "id" : 5005 , "x":[1, 2.5e3, -0, true,false,null, {"b":1,"a":[]} ] } }`),
	delivery("employment.updated", `{"person":{"id":77},"employment":{"id":"e-1"}}`),
	delivery("employment.started", `{"employment":{"id":"2306b77a-35fb-4b1d-8044-3b14f7f2ca65"}}`),
	delivery("employment.updated", `{"person":null,"employment":{"id":"e-2","z":{"y":{"x":{}}}}}`),
	delivery("absence_period.created", `{"absence_period":{"id":"abc"}}`),
	delivery("ping", `{}`),
	`{"meta":{"z":1,"a":"b"},"payload":{"person":{"id":"9"}},"occurred_at":"2026-01-01T00:00:00.123456789+02:00","event_name":"person.deleted","company_id":4242,"extra":[1,{"q":"r"}]}`,
	`{"company_id":"1","event_name":"person.created","occurred_at":"2026-01-01T00:00:00Z","payload":{"person":{"id":"1"}},"meta":null}` + "\n\t ",
	// Bodies the fast path leaves to the general one.
	`{"company_id":"1","event_name":"person.created","occurred_at":"2026-01-01T00:00:00Z","payload":{"person":{"id":1e400}}}`,
	`{"company_id":"1","event_name":"person.created","occurred_at":"2026-01-01T00:00:00Z","payload":{"person":{"id":"a<b"}}}`,
	`{"company_id":"1","event_name":"person.created","occurred_at":"2026-01-01T00:00:00Z","payload":{"person":{"id":"\u0041"}}}`,
	`{"company_id":"1","event_name":"person.created","occurred_at":"2026-01-01T00:00:00Z","payload":{"person":{"id":"1","id":"2"}}}`,
	`{"company_id":"1","company_id":"2","event_name":"person.created","occurred_at":"2026-01-01T00:00:00Z","payload":{"person":{"id":"1"}}}`,
	`{"company_id":"1","event_name":"person.created","occurred_at":"2026-01-01T00:00:00Z","payload":{"person":{"id":"Jürgen"}}}`,
	`{"company_id":" ","event_name":"person.created","occurred_at":"2026-01-01T00:00:00Z","payload":{"person":{"id":"1"}}}`,
	`{"company_id":"1","event_name":"person.created","occurred_at":"0001-01-01T00:00:00Z","payload":{"person":{"id":"1"}}}`,
	`{"company_id":"1","event_name":"person.created","occurred_at":"2026-01-01T00:00:00Z","payload":{"person":{"id":01}}}`,
	`{"company_id":1.5,"event_name":"person.created","occurred_at":"2026-01-01T00:00:00Z","payload":{"person":{"id":"1"}}}`,
	`{"company_id":"1","event_name":"person.created","occurred_at":"2026-01-01T00:00:00Z","payload":{"person":{"id":"1"}}} {}`,
	`{}`, `[]`, `null`, ``, `{"a":`, `{"payload":{"person":{"id":"1"}}}`,
	`{"company_id":"1","event_name":"person.created","occurred_at":"2026-01-01T00:00:00Z","payload":{"person":"1"}}`,
	`{"company_id":"1","event_name":"person.created","occurred_at":"2026-01-01T00:00:00Z","payload":{"person":{"id":null}}}`,
	`{"company_id":"1","event_name":"employment.created","occurred_at":"2026-01-01T00:00:00Z","payload":{}}`,
	`{"company_id":"1","event_name":"person.created","occurred_at":"2026-01-01T00:00:00Z","payload":{"person":{"id":"1"}},"meta":[]}`,
}

// Whatever the fast path accepts, the general path accepts with the same
// result, byte for byte; and the canonical body written by appends is the
// one json.Marshal writes.
func FuzzFastEnvelopeMatchesGeneral(f *testing.F) {
	for _, s := range fastSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		general, gerr := parseEnvelopeGeneral(body)
		if gerr == nil {
			if got, want := general.canonicalBody(), general.canonicalBodyMarshal(); !bytes.Equal(got, want) {
				t.Fatalf("canonical body:\n got %s\nwant %s", got, want)
			}
		}
		fast, ok := fastEnvelope(body)
		if !ok {
			return
		}
		if gerr != nil {
			t.Fatalf("the fast path accepted what the general path refuses (%v):\n%s", gerr, body)
		}
		if d := sameEnvelope(fast, general); d != "" {
			t.Fatalf("fast and general parse differ in %s:\n%s", d, body)
		}
	})
}

// The deliveries Personio sends take the fast path (else the check above
// would hold for a fast path that never answers).
func TestFastEnvelopeTakesPlainDeliveries(t *testing.T) {
	plain := fastSeeds[:9]
	for _, body := range plain {
		env, ok := fastEnvelope([]byte(body))
		if !ok {
			t.Errorf("plain delivery left to the general path:\n%s", body)
			continue
		}
		general, err := parseEnvelopeGeneral([]byte(body))
		if err != nil {
			t.Fatalf("general path refuses %s: %v", body, err)
		}
		if d := sameEnvelope(env, general); d != "" {
			t.Errorf("differ in %s:\n%s", d, body)
		}
	}
	for _, body := range fastSeeds[9:] {
		if _, ok := fastEnvelope([]byte(body)); ok {
			t.Errorf("fast path took a body it should leave to the general path:\n%s", body)
		}
	}
	// The canonical payload sorts keys at every level.
	env, _ := fastEnvelope([]byte(fastSeeds[1]))
	if want := `{"person":{"id":5005,"x":[1,2.5e3,-0,true,false,null,{"a":[],"b":1}]}}`; string(env.Payload) != want {
		t.Errorf("payload %s, want %s", env.Payload, want)
	}
	if env.personID != "5005" {
		t.Errorf("person id %q", env.personID)
	}
}

func BenchmarkParseEnvelope(b *testing.B) {
	body := []byte(delivery("employment.updated", `{"employment":{"id":"e100001-0"},"person":{"id":"100001"}}`))
	for _, tc := range []struct {
		name  string
		parse func([]byte) (Envelope, error)
	}{{"fast", ParseEnvelope}, {"general", parseEnvelopeGeneral}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				env, err := tc.parse(body)
				if err != nil {
					b.Fatal(err)
				}
				_ = env.DeliveryID()
				_ = env.canonicalBody()
			}
		})
	}
}
