package rules

import (
	"fmt"
	"strconv"
	"strings"
)

// A template builds a UPN local part from name parts, e.g.
// "{first}.{last}{n}". Placeholders:
//
//	{first} {last}   first / last name, transliterated, lower case, letters,
//	                 digits and hyphens only ("Van der Berg" → "vanderberg")
//	{preferred}      preferred name, else first name
//	{f} {l} {p}      the first letter of first / last / preferred
//	{id}             the Personio person id
//	{n}              a counter: the template yields one candidate per n = 2..9
type template struct {
	src  string
	segs []segment
	hasN bool
}

type segment struct {
	lit string // literal text, or
	ph  string // placeholder name
}

var placeholders = []string{"first", "last", "preferred", "f", "l", "p", "id", "n"}

const (
	counterFirst = 2
	counterLast  = 9
)

// parseTemplate checks a template; the error says what is wrong.
func parseTemplate(s string) (*template, error) {
	t := &template{src: s}
	rest := s
	for rest != "" {
		open := strings.IndexByte(rest, '{')
		if cl := strings.IndexByte(rest, '}'); cl >= 0 && (open < 0 || cl < open) {
			return nil, fmt.Errorf("%q has a '}' without '{'", s)
		}
		if open < 0 {
			t.segs = append(t.segs, segment{lit: rest})
			break
		}
		if open > 0 {
			t.segs = append(t.segs, segment{lit: rest[:open]})
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return nil, fmt.Errorf("%q has a '{' without '}'", s)
		}
		name := rest[open+1 : open+end]
		if !validPlaceholder(name) {
			return nil, fmt.Errorf("unknown placeholder {%s} in %q", name, s)
		}
		if name == "n" {
			if t.hasN {
				return nil, fmt.Errorf("%q uses {n} twice", s)
			}
			t.hasN = true
		}
		t.segs = append(t.segs, segment{ph: name})
		rest = rest[open+end+1:]
	}
	hasName := false
	for _, sg := range t.segs {
		if sg.ph != "" && sg.ph != "n" {
			hasName = true
		}
		for i := 0; i < len(sg.lit); i++ {
			if c := sg.lit[i]; !upnChar(c) {
				return nil, fmt.Errorf("%q contains %q, which a user principal name cannot hold (allowed: A-Z a-z 0-9 ' . - _ ! # ^ ~)", s, string(c))
			}
		}
	}
	if !hasName {
		return nil, fmt.Errorf("%q has no name placeholder, so every employee would get the same name", s)
	}
	return t, nil
}

func validPlaceholder(name string) bool {
	for _, p := range placeholders {
		if p == name {
			return true
		}
	}
	return false
}

// nameParts are the placeholder values for one employee.
type nameParts struct {
	first, last, preferred, id string
}

func (p nameParts) value(ph string) string {
	switch ph {
	case "first":
		return p.first
	case "last":
		return p.last
	case "preferred":
		return p.preferred
	case "f":
		return initial(p.first)
	case "l":
		return initial(p.last)
	case "p":
		return initial(p.preferred)
	case "id":
		return p.id
	}
	return ""
}

func initial(s string) string {
	if s == "" {
		return ""
	}
	return s[:1] // name parts are ASCII by now
}

// expand appends the local parts the template yields for p. A template whose
// placeholders are empty for this employee (no last name, say) yields
// nothing. Overlong results are shortened in the names, never in the
// literal text or the counter, so that "{first}.{last}{n}" stays unique.
func (t *template) expand(dst []string, p nameParts) []string {
	for _, sg := range t.segs {
		if sg.ph != "" && sg.ph != "n" && p.value(sg.ph) == "" {
			return dst
		}
	}
	lo, hi := 0, 0
	if t.hasN {
		lo, hi = counterFirst, counterLast
	}
	for n := lo; n <= hi; n++ {
		if local := t.render(p, n); local != "" {
			dst = append(dst, local)
		}
	}
	return dst
}

func (t *template) render(p nameParts, n int) string {
	var b strings.Builder
	build := func(p nameParts) string {
		b.Reset()
		for _, sg := range t.segs {
			switch {
			case sg.ph == "n":
				b.WriteString(strconv.Itoa(n))
			case sg.ph != "":
				b.WriteString(p.value(sg.ph))
			default:
				b.WriteString(sg.lit)
			}
		}
		return b.String()
	}
	s := build(p)
	// Shorten the longest name part until the local part fits in 64.
	for len(s) > maxUPNLocal {
		over := len(s) - maxUPNLocal
		var longest *string
		for _, sg := range t.segs {
			var f *string
			switch sg.ph {
			case "first":
				f = &p.first
			case "last":
				f = &p.last
			case "preferred":
				f = &p.preferred
			case "id":
				f = &p.id
			}
			if f != nil && (longest == nil || len(*f) > len(*longest)) {
				longest = f
			}
		}
		if longest == nil || len(*longest) <= 1 {
			break
		}
		*longest = strings.TrimRight((*longest)[:max(1, len(*longest)-over)], "-")
		s = build(p)
	}
	return sanitizeLocal(s, ASCII)
}
