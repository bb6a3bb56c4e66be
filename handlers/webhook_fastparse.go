package handlers

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The fast path of ParseEnvelope.
//
// Almost every delivery is small and plain: ids, event names and
// timestamps in printable ASCII, no escapes, no repeated keys. fastEnvelope
// parses such a body in one pass, writing the canonical payload and meta
// (keys sorted, no insignificant whitespace, numbers as sent) as it goes,
// without building maps or going through reflection. It gives up — ok is
// false — on anything else, valid or not: a string with an escape, a byte
// outside printable ASCII or one of <, >, & (json.Marshal would re-encode
// those), a key given twice, nesting deeper than maxFastDepth, or any
// delivery the general path would refuse. ParseEnvelope then takes the
// general path, which words every error. The result of the fast path is
// the general path's, byte for byte (FuzzFastEnvelopeMatchesGeneral).

// maxFastDepth bounds the nesting the fast path follows.
const maxFastDepth = 32

// fastParser walks one body; out collects canonical values, members is a
// stack of the object members being sorted.
type fastParser struct {
	src     []byte
	pos     int
	out     []byte
	members []fastMember
}

// fastMember is one object member: the key (raw bytes, which equal the
// decoded key for a simple string) and its canonical value in out.
type fastMember struct {
	key          []byte
	start, end   int
	lengthBefore int
}

func fastEnvelope(body []byte) (Envelope, bool) {
	p := fastParser{src: body, out: make([]byte, 0, len(body))}
	var (
		env                                  Envelope
		company, event, occurred             []byte
		companyNum                           bool
		payloadAt, metaAt                    [2]int
		seenCompany, seenEvent, seenOccurred bool
		seenPayload, seenMeta                bool
	)
	p.space()
	if !p.consume('{') {
		return env, false
	}
	p.space()
	if p.consume('}') {
		return env, false // no required field
	}
	for {
		p.space()
		key, ok := p.simpleString()
		if !ok {
			return env, false
		}
		p.space()
		if !p.consume(':') {
			return env, false
		}
		p.space()
		switch string(key) {
		case "company_id":
			if seenCompany {
				return env, false
			}
			seenCompany = true
			if p.peek() == '"' {
				company, ok = p.simpleString()
			} else {
				company, ok = p.integer()
				companyNum = true
			}
		case "event_name":
			if seenEvent {
				return env, false
			}
			seenEvent = true
			event, ok = p.simpleString()
		case "occurred_at":
			if seenOccurred {
				return env, false
			}
			seenOccurred = true
			occurred, ok = p.simpleString()
		case "payload":
			if seenPayload || p.peek() != '{' {
				return env, false
			}
			seenPayload = true
			payloadAt[0] = len(p.out)
			ok = p.value(0)
			payloadAt[1] = len(p.out)
		case "meta":
			if seenMeta {
				return env, false
			}
			seenMeta = true
			switch p.peek() {
			case '{':
				metaAt[0] = len(p.out)
				ok = p.value(0)
				metaAt[1] = len(p.out)
			case 'n':
				ok = p.literal("null")
			default:
				return env, false
			}
		default: // not part of the envelope: it only has to be valid JSON
			mark := len(p.out)
			ok = p.value(0)
			p.out = p.out[:mark]
		}
		if !ok {
			return env, false
		}
		p.space()
		if p.consume(',') {
			continue
		}
		if !p.consume('}') {
			return env, false
		}
		break
	}
	p.space()
	if p.pos != len(p.src) || !seenCompany || !seenEvent || !seenOccurred || !seenPayload {
		return env, false
	}
	// The general path's checks; any failure goes there for its wording.
	if len(company) > maxIDLen || strings.TrimSpace(string(company)) == "" ||
		strings.TrimSpace(string(event)) == "" {
		return env, false
	}
	if companyNum {
		if _, err := strconv.ParseInt(string(company), 10, 64); err != nil {
			return env, false
		}
	}
	at, err := time.Parse(time.RFC3339Nano, string(occurred))
	if err != nil {
		return env, false
	}
	if y := at.UTC().Year(); y < 1970 || y > 9999 {
		return env, false
	}
	env.CompanyID = string(company)
	env.EventName = string(event)
	env.OccurredAt = at
	env.Payload = p.out[payloadAt[0]:payloadAt[1]:payloadAt[1]]
	if metaAt[1] > metaAt[0] {
		env.Meta = p.out[metaAt[0]:metaAt[1]:metaAt[1]]
	}
	var ok bool
	switch eventKind(env.EventName) {
	case kindPerson:
		if env.personID, ok = fastEntityID(env.Payload, "person"); !ok || env.personID == "" {
			return env, false
		}
	case kindEmployment:
		if env.employmentID, ok = fastEntityID(env.Payload, "employment"); !ok {
			return env, false
		}
		if env.personID, ok = fastEntityID(env.Payload, "person"); !ok {
			return env, false
		}
		if env.employmentID == "" && env.personID == "" {
			return env, false
		}
	}
	return env, true
}

func (p *fastParser) peek() byte {
	if p.pos < len(p.src) {
		return p.src[p.pos]
	}
	return 0
}

func (p *fastParser) consume(c byte) bool {
	if p.pos < len(p.src) && p.src[p.pos] == c {
		p.pos++
		return true
	}
	return false
}

func (p *fastParser) space() {
	for p.pos < len(p.src) {
		switch p.src[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// simpleString reads a string of printable ASCII without escapes and
// without <, > or &, and returns its content (which is also its decoded
// value and its json.Marshal encoding without the quotes).
func (p *fastParser) simpleString() ([]byte, bool) {
	if !p.consume('"') {
		return nil, false
	}
	start := p.pos
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		switch {
		case c == '"':
			s := p.src[start:p.pos]
			p.pos++
			return s, true
		case c < 0x20 || c > 0x7e || c == '\\' || c == '<' || c == '>' || c == '&':
			return nil, false
		}
		p.pos++
	}
	return nil, false
}

// integer reads -?(0|[1-9][0-9]*) not followed by a fraction or exponent.
func (p *fastParser) integer() ([]byte, bool) {
	start := p.pos
	if !p.number() {
		return nil, false
	}
	n := p.src[start:p.pos]
	if bytes.ContainsAny(n, ".eE") {
		return nil, false
	}
	return n, true
}

// number reads a JSON number.
func (p *fastParser) number() bool {
	digits := func() int {
		n := 0
		for p.pos < len(p.src) && p.src[p.pos] >= '0' && p.src[p.pos] <= '9' {
			p.pos++
			n++
		}
		return n
	}
	p.consume('-')
	switch {
	case p.consume('0'):
	case p.peek() >= '1' && p.peek() <= '9':
		digits()
	default:
		return false
	}
	if p.consume('.') && digits() == 0 {
		return false
	}
	if p.consume('e') || p.consume('E') {
		if !p.consume('+') {
			p.consume('-')
		}
		if digits() == 0 {
			return false
		}
	}
	return true
}

func (p *fastParser) literal(lit string) bool {
	if len(p.src)-p.pos >= len(lit) && string(p.src[p.pos:p.pos+len(lit)]) == lit {
		p.pos += len(lit)
		return true
	}
	return false
}

// value reads one JSON value and appends its canonical form to out.
func (p *fastParser) value(depth int) bool {
	if depth > maxFastDepth {
		return false
	}
	switch c := p.peek(); {
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		p.pos++
		p.out = append(p.out, '[')
		p.space()
		if p.consume(']') {
			p.out = append(p.out, ']')
			return true
		}
		for {
			p.space()
			if !p.value(depth + 1) {
				return false
			}
			p.space()
			if p.consume(',') {
				p.out = append(p.out, ',')
				continue
			}
			if !p.consume(']') {
				return false
			}
			p.out = append(p.out, ']')
			return true
		}
	case c == '"':
		s, ok := p.simpleString()
		if !ok {
			return false
		}
		p.out = append(append(append(p.out, '"'), s...), '"')
		return true
	case c == '-' || (c >= '0' && c <= '9'):
		start := p.pos
		if !p.number() {
			return false
		}
		p.out = append(p.out, p.src[start:p.pos]...)
		return true
	case c == 't':
		p.out = append(p.out, "true"...)
		return p.literal("true")
	case c == 'f':
		p.out = append(p.out, "false"...)
		return p.literal("false")
	case c == 'n':
		p.out = append(p.out, "null"...)
		return p.literal("null")
	}
	return false
}

// object reads an object and appends it to out with its members sorted
// by key, as json.Marshal writes a map.
func (p *fastParser) object(depth int) bool {
	p.pos++ // '{'
	start := len(p.out)
	base := len(p.members)
	defer func() { p.members = p.members[:base] }()
	p.space()
	if !p.consume('}') {
		for {
			p.space()
			key, ok := p.simpleString()
			if !ok {
				return false
			}
			p.space()
			if !p.consume(':') {
				return false
			}
			p.space()
			m := fastMember{key: key, start: len(p.out)}
			if !p.value(depth) {
				return false
			}
			m.end = len(p.out)
			p.members = append(p.members, m)
			p.space()
			if p.consume(',') {
				continue
			}
			if !p.consume('}') {
				return false
			}
			break
		}
	}
	ms := p.members[base:]
	slices.SortFunc(ms, func(a, b fastMember) int { return bytes.Compare(a.key, b.key) })
	for i := 1; i < len(ms); i++ {
		if bytes.Equal(ms[i-1].key, ms[i].key) {
			return false // a repeated key: the general path keeps the last
		}
	}
	// Write the sorted object after the values, then move it into place.
	at := len(p.out)
	p.out = append(p.out, '{')
	for i, m := range ms {
		if i > 0 {
			p.out = append(p.out, ',')
		}
		p.out = append(append(append(p.out, '"'), m.key...), '"', ':')
		p.out = append(p.out, p.out[m.start:m.end]...)
	}
	p.out = append(p.out, '}')
	n := copy(p.out[start:], p.out[at:])
	p.out = p.out[:start+n]
	return true
}

// fastEntityID reads payload.<entity>.id from a canonical payload written
// by the fast path: "" when payload.<entity> is absent or null; ok is
// false wherever the general path would refuse the delivery.
func fastEntityID(payload []byte, entity string) (string, bool) {
	v, found := canonicalMember(payload, entity)
	if !found || string(v) == "null" {
		return "", true
	}
	if v[0] != '{' {
		return "", false
	}
	id, found := canonicalMember(v, "id")
	if !found {
		return "", false
	}
	switch c := id[0]; {
	case c == '"':
		s := string(id[1 : len(id)-1])
		if strings.TrimSpace(s) == "" || len(s) > maxIDLen {
			return "", false
		}
		return s, true
	case c == '-' || (c >= '0' && c <= '9'):
		if _, err := strconv.ParseInt(string(id), 10, 64); err != nil {
			return "", false
		}
		return string(id), true
	}
	return "", false
}

// canonicalMember returns the value of key in a canonical object written
// by the fast path (compact, simple strings).
func canonicalMember(obj []byte, key string) ([]byte, bool) {
	if len(obj) < 2 || obj[0] != '{' || obj[1] == '}' {
		return nil, false
	}
	p := fastParser{src: obj, pos: 1}
	for {
		k, ok := p.simpleString()
		if !ok || !p.consume(':') {
			return nil, false
		}
		start := p.pos
		if !p.skip() {
			return nil, false
		}
		if string(k) == key {
			return obj[start:p.pos], true
		}
		if !p.consume(',') {
			return nil, false
		}
	}
}

// skip moves past one compact canonical value.
func (p *fastParser) skip() bool {
	switch p.peek() {
	case '"':
		_, ok := p.simpleString()
		return ok
	case '{', '[':
		level := 0
		for p.pos < len(p.src) {
			switch p.src[p.pos] {
			case '"':
				if _, ok := p.simpleString(); !ok {
					return false
				}
				continue
			case '{', '[':
				level++
			case '}', ']':
				level--
			}
			p.pos++
			if level == 0 {
				return true
			}
		}
		return false
	default: // a number or a literal
		for p.pos < len(p.src) && p.src[p.pos] != ',' && p.src[p.pos] != '}' && p.src[p.pos] != ']' {
			p.pos++
		}
		return true
	}
}
