package rules

import (
	"strings"
)

// Limits for user principal names and mail nicknames
// (docs/graph-behaviour.md#user-principal-names-and-mail-nicknames).
const (
	maxUPNLocal    = 64
	maxUPNDomain   = 48
	maxUPN         = 113
	maxMailNick    = 64
	upnPunctuation = "'.-_!#^~"
)

// upnChar reports whether c may appear in the local part of a user principal
// name: A–Z a–z 0–9 ' . - _ ! # ^ ~
// (https://learn.microsoft.com/en-us/entra/identity/authentication/concept-sspr-policy).
func upnChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte(upnPunctuation, c) >= 0
}

// nickChar reports whether c may appear in a mail nickname. Graph documents
// user aliases only as "required, ≤ 64"; for groups it forbids
// @ ( ) / [ ] ' ; : < > , space and, on another page, \ " and the dot. We
// apply the union of both lists to the UPN character set, which leaves
// A–Z a–z 0–9 - _ ! # ^ ~; which characters Graph really refuses in a user's
// nickname is undocumented
// (docs/graph-behaviour.md#user-principal-names-and-mail-nicknames).
func nickChar(c byte) bool {
	return upnChar(c) && c != '\'' && c != '.'
}

// ValidUPN reports whether upn is acceptable to Entra as a user principal
// name: one @, a local part of 1–64 characters from the UPN set without a
// leading, trailing or doubled dot, a domain of at most 48 characters that
// is a DNS name, at most 113 characters in total
// (docs/graph-behaviour.md#user-principal-names-and-mail-nicknames).
func ValidUPN(upn string) bool {
	at := strings.IndexByte(upn, '@')
	if at < 0 || strings.IndexByte(upn[at+1:], '@') >= 0 || len(upn) > maxUPN {
		return false
	}
	return validLocal(upn[:at]) && validDomain(upn[at+1:])
}

func validLocal(local string) bool {
	if local == "" || len(local) > maxUPNLocal || local[0] == '.' || local[len(local)-1] == '.' ||
		strings.Contains(local, "..") {
		return false
	}
	for i := 0; i < len(local); i++ {
		if !upnChar(local[i]) {
			return false
		}
	}
	return true
}

// validDomain accepts a DNS name of letters, digits and inner hyphens with at
// least two labels, at most 48 characters
// (docs/graph-behaviour.md#user-principal-names-and-mail-nicknames).
func validDomain(d string) bool {
	if d == "" || len(d) > maxUPNDomain {
		return false
	}
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// ValidMailNickname reports whether nick is acceptable as a user's
// mailNickname: 1–64 characters from A–Z a–z 0–9 - _ ! # ^ ~ (see nickChar).
func ValidMailNickname(nick string) bool {
	if nick == "" || len(nick) > maxMailNick {
		return false
	}
	for i := 0; i < len(nick); i++ {
		if !nickChar(nick[i]) {
			return false
		}
	}
	return true
}

// sanitizeLocal turns any string into a UPN local part or "": it
// transliterates, drops characters outside the UPN set, collapses runs of
// dots, trims dots at both ends and cuts to 64 characters.
func sanitizeLocal(s string, t Transliteration) string {
	s = t.apply(s)
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !upnChar(c) {
			continue
		}
		if c == '.' && (b.Len() == 0 || lastByte(&b) == '.') {
			continue
		}
		b.WriteByte(c)
	}
	out := strings.TrimRight(b.String(), ".")
	if len(out) > maxUPNLocal {
		out = strings.TrimRight(out[:maxUPNLocal], ".")
	}
	return out
}

func lastByte(b *strings.Builder) byte {
	s := b.String()
	return s[len(s)-1]
}

// MailNicknameFor derives the mail nickname from a user principal name the
// way Evaluate does for its first candidate: the local part with the
// characters Graph forbids in aliases removed, at most 64 characters. The
// engine calls it with the UPN it actually took. It returns "" when nothing
// usable is left.
func MailNicknameFor(upn string) string {
	local, _, _ := strings.Cut(upn, "@")
	return sanitizeNick(local, ASCII)
}

func sanitizeNick(s string, t Transliteration) string {
	s = t.apply(s)
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s) && b.Len() < maxMailNick; i++ {
		if nickChar(s[i]) {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// namePart prepares a name for a UPN template placeholder: transliterated,
// lower case, only letters, digits and inner hyphens kept (spaces,
// apostrophes and dots dropped: "Van der Berg" → "vanderberg",
// "O'Connor" → "oconnor", "Jean-Luc" → "jean-luc").
func namePart(s string, t Transliteration) string {
	s = t.apply(s)
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z':
			b.WriteByte(c + 'a' - 'A')
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9':
			b.WriteByte(c)
		case c == '-' || c == '_':
			if b.Len() > 0 && lastByte(&b) != '-' {
				b.WriteByte('-')
			}
		}
	}
	return strings.TrimRight(b.String(), "-")
}
