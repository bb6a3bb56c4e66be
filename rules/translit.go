package rules

import (
	"strings"
	"unicode/utf8"
)

// Transliteration says how names are turned into ASCII for user principal
// names and mail nicknames: Entra accepts no accented characters there
// (docs/graph-behaviour.md#user-principal-names-and-mail-nicknames).
type Transliteration string

const (
	// ASCII strips diacritics: é→e, ü→u, ł→l, ø→o, æ→ae, ß→ss.
	ASCII Transliteration = "ascii"
	// German spells umlauts out first (ä→ae, ö→oe, ü→ue, ß→ss), then
	// applies ASCII to the rest.
	German Transliteration = "german"
)

// ascii returns s with every letter mapped to plain ASCII (asciiTable).
// Runes that have no ASCII spelling (CJK, emoji, control characters) are
// dropped; ASCII passes through unchanged.
func ascii(s string) string {
	if isASCII(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r < utf8.RuneSelf:
			b.WriteRune(r)
		default:
			if t, ok := asciiTable[r]; ok {
				b.WriteString(t)
			} else if isSpace(r) {
				b.WriteByte(' ')
			}
		}
	}
	return b.String()
}

// german spells out the German umlauts and ß, then applies ascii.
func german(s string) string {
	if isASCII(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 4)
	for _, r := range s {
		switch r {
		case 'ä':
			b.WriteString("ae")
		case 'ö':
			b.WriteString("oe")
		case 'ü':
			b.WriteString("ue")
		case 'Ä':
			b.WriteString("Ae")
		case 'Ö':
			b.WriteString("Oe")
		case 'Ü':
			b.WriteString("Ue")
		case 'ß':
			b.WriteString("ss")
		case 'ẞ':
			b.WriteString("SS")
		default:
			b.WriteRune(r)
		}
	}
	return ascii(b.String())
}

// transliterate applies the configured transliteration.
func (t Transliteration) apply(s string) string {
	if t == German {
		return german(s)
	}
	return ascii(s)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// isSpace reports the non-ASCII spaces that names pasted from documents
// carry (no-break space, thin space and friends).
func isSpace(r rune) bool {
	switch r {
	case 0x00A0, 0x1680, 0x202F, 0x205F, 0x3000:
		return true
	}
	return r >= 0x2000 && r <= 0x200A
}
