package main

import (
	"encoding/json"
	"strings"
	"time"
)

// envelopes builds Personio delivery bodies (dataless envelope,
// docs/personio-api.md#webhook-deliveries) by appending to a reused
// buffer: the bytes json.Marshal would give for
//
//	{"company_id", "event_name", "meta": {}, "occurred_at", "payload": {"employment"?, "person"}}
//
// (keys sorted, as json.Marshal sorts a map's), without building maps per
// delivery, so the load generator spends its CPU on sending. occurred_at
// differs per delivery so that no two are the same delivery.
type envelopes struct {
	company []byte   // quoted company_id
	events  [][]byte // quoted event names, indexed like events
}

func newEnvelopes(company string) envelopes {
	e := envelopes{company: quote(company)}
	for _, ev := range events {
		e.events = append(e.events, quote(ev))
	}
	return e
}

func quote(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}

// append appends the body of a delivery of events[event] about personID
// (digits) that occurred at at.
func (e envelopes) append(b []byte, event int, personID string, at time.Time) []byte {
	b = append(b, `{"company_id":`...)
	b = append(b, e.company...)
	b = append(b, `,"event_name":`...)
	b = append(b, e.events[event]...)
	b = append(b, `,"meta":{},"occurred_at":"`...)
	b = at.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","payload":{`...)
	if strings.HasPrefix(events[event], "employment.") {
		b = append(b, `"employment":{"id":"e`...)
		b = append(b, personID...)
		b = append(b, `-0"},`...)
	}
	b = append(b, `"person":{"id":"`...)
	b = append(b, personID...)
	b = append(b, `"}}}`...)
	return b
}
