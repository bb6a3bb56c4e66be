package handlers

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"io"
	"strings"
	"time"
)

// Envelope is a Personio webhook delivery (docs/personio-api.md#webhook-deliveries):
// {company_id, event_name, occurred_at, payload, meta}, the first four
// required.
type Envelope struct {
	CompanyID  string
	EventName  string
	OccurredAt time.Time
	// Payload is the payload object in canonical form (keys sorted, no
	// insignificant whitespace, numbers as sent).
	Payload json.RawMessage
	// Meta is the optional meta object, canonical, or nil.
	Meta json.RawMessage

	personID     string
	employmentID string
}

// maxIDLen bounds person and employment ids taken from a payload.
const maxIDLen = 256

// ParseEnvelope decodes and validates a delivery body. Its error message
// names the offending field; it is returned to the sender as is.
func ParseEnvelope(body []byte) (Envelope, error) {
	if env, ok := fastEnvelope(body); ok {
		return env, nil
	}
	return parseEnvelopeGeneral(body)
}

// parseEnvelopeGeneral is ParseEnvelope for any body, through
// encoding/json.
func parseEnvelopeGeneral(body []byte) (Envelope, error) {
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&raw); err != nil {
		return Envelope{}, fmt.Errorf("body is not a JSON object: %v", jsonErr(err))
	}
	if raw == nil {
		return Envelope{}, errors.New("body is not a JSON object: got null")
	}
	if _, err := dec.Token(); err != io.EOF {
		return Envelope{}, errors.New("body has data after the JSON object")
	}
	var env Envelope
	var err error
	if env.CompanyID, err = idField(raw, "company_id", "company_id"); err != nil {
		return Envelope{}, err
	}
	if env.EventName, err = stringField(raw, "event_name"); err != nil {
		return Envelope{}, err
	}
	occurred, err := stringField(raw, "occurred_at")
	if err != nil {
		return Envelope{}, err
	}
	if env.OccurredAt, err = time.Parse(time.RFC3339Nano, occurred); err != nil {
		return Envelope{}, fmt.Errorf("field occurred_at: %q is not an RFC 3339 date-time such as 2025-05-01T09:30:12Z", truncate(occurred))
	}
	// Normalised to UTC the instant must stay a 4-digit year, so that the
	// canonical form (and with it the delivery id) is stable.
	if y := env.OccurredAt.UTC().Year(); y < 1970 || y > 9999 {
		return Envelope{}, fmt.Errorf("field occurred_at: %q is outside the years 1970 to 9999", truncate(occurred))
	}
	p, ok := raw["payload"]
	if !ok {
		return Envelope{}, errors.New("field payload is required")
	}
	// One decode per object serves both the checks and the canonical form.
	pv, err := decodeExact(p)
	payload, isObj := pv.(map[string]any)
	if err != nil || !isObj || payload == nil {
		return Envelope{}, errors.New("field payload must be a JSON object")
	}
	if env.Payload, err = json.Marshal(payload); err != nil {
		return Envelope{}, fmt.Errorf("field payload: %v", err)
	}
	if m, ok := raw["meta"]; ok && string(m) != "null" {
		mv, err := decodeExact(m)
		if _, isObj := mv.(map[string]any); err != nil || !isObj {
			return Envelope{}, errors.New("field meta must be a JSON object when present")
		}
		if env.Meta, err = json.Marshal(mv); err != nil {
			return Envelope{}, fmt.Errorf("field meta: %v", err)
		}
	}

	// Entity ids: persons carry payload.person.id, employments
	// payload.employment.id and maybe payload.person.id (docs/personio-api.md#webhook-deliveries;
	// the inner shape is inferred, so the parse is lenient about extra keys).
	switch eventKind(env.EventName) {
	case kindPerson:
		if env.personID, err = entityID(payload, "person"); err != nil {
			return Envelope{}, fmt.Errorf("%s event: %v", env.EventName, err)
		}
		if env.personID == "" {
			return Envelope{}, fmt.Errorf("%s event: field payload.person.id is required", env.EventName)
		}
	case kindEmployment:
		if env.employmentID, err = entityID(payload, "employment"); err != nil {
			return Envelope{}, fmt.Errorf("%s event: %v", env.EventName, err)
		}
		if env.personID, err = entityID(payload, "person"); err != nil {
			return Envelope{}, fmt.Errorf("%s event: %v", env.EventName, err)
		}
		if env.employmentID == "" && env.personID == "" {
			return Envelope{}, fmt.Errorf("%s event: field payload.employment.id is required", env.EventName)
		}
	}
	return env, nil
}

// PersonID and EmploymentID are the ids the event is about ("" if none).
func (e Envelope) PersonID() string     { return e.personID }
func (e Envelope) EmploymentID() string { return e.employmentID }

// DeliveryID identifies the delivery for de-duplication. Personio sends no
// event id, and its retries resend the same body (docs/personio-api.md#webhook-deliveries), so the
// id is a SHA-256 over company_id, event_name, occurred_at (normalised to
// UTC) and the canonical payload: a retry maps to the same id even if the
// JSON formatting or key order differ, while a new event about the same
// person differs at least in occurred_at. meta is left out: it is optional
// delivery metadata, not part of what happened.
func (e Envelope) DeliveryID() string {
	h := sha256.New()
	for _, part := range []string{e.CompanyID, e.EventName, e.OccurredAt.UTC().Format(time.RFC3339Nano)} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	h.Write(e.Payload)
	return "personio-" + hex.EncodeToString(h.Sum(nil))
}

// Canonical body stored on the queue: the envelope re-encoded, so the
// stored form never depends on how the sender formatted it.
func (e Envelope) canonicalBody() []byte {
	if plainJSONString(e.CompanyID) && plainJSONString(e.EventName) {
		// What json.Marshal of the struct below writes, without reflection
		// (Payload and Meta are canonical already).
		b := make([]byte, 0, 112+len(e.CompanyID)+len(e.EventName)+len(e.Payload)+len(e.Meta))
		b = append(b, `{"company_id":"`...)
		b = append(b, e.CompanyID...)
		b = append(b, `","event_name":"`...)
		b = append(b, e.EventName...)
		b = append(b, `","occurred_at":"`...)
		b = e.OccurredAt.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, `","payload":`...)
		b = append(b, e.Payload...)
		if len(e.Meta) > 0 {
			b = append(b, `,"meta":`...)
			b = append(b, e.Meta...)
		}
		return append(b, '}')
	}
	return e.canonicalBodyMarshal()
}

// canonicalBodyMarshal is canonicalBody through json.Marshal, for any
// strings.
func (e Envelope) canonicalBodyMarshal() []byte {
	type out struct {
		CompanyID  string          `json:"company_id"`
		EventName  string          `json:"event_name"`
		OccurredAt string          `json:"occurred_at"`
		Payload    json.RawMessage `json:"payload"`
		Meta       json.RawMessage `json:"meta,omitempty"`
	}
	b, _ := json.Marshal(out{e.CompanyID, e.EventName, e.OccurredAt.UTC().Format(time.RFC3339Nano), e.Payload, e.Meta})
	return b
}

// plainJSONString reports whether json.Marshal writes s as is between
// quotes: printable ASCII without ", \, <, > and &.
func plainJSONString(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

func stringField(raw map[string]json.RawMessage, name string) (string, error) {
	v, ok := raw[name]
	if !ok {
		return "", fmt.Errorf("field %s is required", name)
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", fmt.Errorf("field %s must be a string", name)
	}
	if strings.TrimSpace(s) == "" {
		return "", fmt.Errorf("field %s must not be empty", name)
	}
	return s, nil
}

// idField accepts a non-empty string or an integer (ids are documented as
// strings, but a number must not cost an event: a 4xx is never retried).
func idField(raw map[string]json.RawMessage, key, name string) (string, error) {
	v, ok := raw[key]
	if !ok {
		return "", fmt.Errorf("field %s is required", name)
	}
	return idValue(v, name)
}

func idValue(v json.RawMessage, name string) (string, error) {
	var s string
	if err := json.Unmarshal(v, &s); err == nil {
		if strings.TrimSpace(s) == "" {
			return "", fmt.Errorf("field %s must not be empty", name)
		}
		if len(s) > maxIDLen {
			return "", fmt.Errorf("field %s is longer than %d bytes", name, maxIDLen)
		}
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(v, &n); err == nil {
		if _, err := n.Int64(); err == nil {
			return n.String(), nil
		}
	}
	return "", fmt.Errorf("field %s must be a string or a whole number", name)
}

// entityID reads payload.<entity>.id; "" when payload.<entity> is absent.
func entityID(payload map[string]any, entity string) (string, error) {
	v, ok := payload[entity]
	if !ok || v == nil {
		return "", nil
	}
	obj, isObj := v.(map[string]any)
	if !isObj {
		return "", fmt.Errorf("field payload.%s must be an object", entity)
	}
	id, ok := obj["id"]
	if !ok {
		return "", fmt.Errorf("field payload.%s.id is required", entity)
	}
	return idDecoded(id, "payload."+entity+".id")
}

// idDecoded is idValue for a value decoded by decodeExact.
func idDecoded(v any, name string) (string, error) {
	switch x := v.(type) {
	case nil: // null reads as the empty string, as in idValue
		return "", fmt.Errorf("field %s must not be empty", name)
	case string:
		if strings.TrimSpace(x) == "" {
			return "", fmt.Errorf("field %s must not be empty", name)
		}
		if len(x) > maxIDLen {
			return "", fmt.Errorf("field %s is longer than %d bytes", name, maxIDLen)
		}
		return x, nil
	case json.Number:
		if _, err := x.Int64(); err == nil {
			return x.String(), nil
		}
	}
	return "", fmt.Errorf("field %s must be a string or a whole number", name)
}

// decodeExact decodes JSON keeping numbers exactly as sent (json.Number);
// json.Marshal of the result is the canonical form: keys sorted, no
// insignificant whitespace.
func decodeExact(v json.RawMessage) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		return nil, jsonErr(err)
	}
	return x, nil
}

func jsonErr(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("%s at byte %d", se.Error(), se.Offset)
	}
	if errors.Is(err, io.EOF) {
		return errors.New("empty body")
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("unexpected end of JSON")
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("expected an object, got %s", te.Value)
	}
	return err
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// Event classes.
type kind int

const (
	kindOther kind = iota
	kindPerson
	kindEmployment
	kindPing
	kindIgnored
)

// Events that are known but do not concern Entra accounts
// (docs/personio-api.md#webhook-events). Both spellings of absence and attendance
// events occur (docs/personio-api.md#webhook-deliveries).
var ignoredEvents = map[string]bool{
	"absence-period.created": true, "absence-period.updated": true, "absence-period.deleted": true,
	"absence-period.updated.timerange": true, "absence-period.updated.status": true,
	"absence_period.created": true, "absence_period.updated": true, "absence_period.deleted": true,
	"absence_period.updated.timerange": true, "absence_period.updated.status": true,
	"attendance-period.created": true, "attendance-period.updated": true, "attendance-period.deleted": true,
	"attendance_period.created": true, "attendance_period.updated": true, "attendance_period.deleted": true,
	"document.created": true, "document.updated": true, "document.signed": true, "document.deleted": true,
}

func eventKind(name string) kind {
	switch {
	case name == "ping":
		return kindPing
	// Any person.* or employment.* event is work: the worker re-reads
	// Personio anyway, so a sub-event added later (like
	// employment.updated.cost-centers) is handled instead of lost.
	case model.IsPersonEvent(name) || strings.HasPrefix(name, "person."):
		return kindPerson
	case model.IsEmploymentEvent(name) || strings.HasPrefix(name, "employment."):
		return kindEmployment
	case ignoredEvents[name]:
		return kindIgnored
	}
	return kindOther
}
