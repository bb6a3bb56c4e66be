package handlers

import (
	"fmt"
	"strings"
	"testing"
)

// The payload ids are read from the one decode of the payload
// (idDecoded); they must be judged exactly as idValue judges raw JSON, so
// that a delivery is accepted or refused, with the same message, as before.
func TestIDDecodedMatchesIDValue(t *testing.T) {
	for _, raw := range []string{`null`, `""`, `" "`, `"7"`, `7`, `-7`, `7.5`, `1e3`, `true`, `{}`, `[]`,
		`"` + strings.Repeat("x", maxIDLen) + `"`, `"` + strings.Repeat("x", maxIDLen+1) + `"`} {
		_, errA := idValue([]byte(raw), "x")
		v, err := decodeExact([]byte(raw))
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		_, errB := idDecoded(v, "x")
		if fmt.Sprint(errA) != fmt.Sprint(errB) {
			t.Errorf("%s: idValue says %v, idDecoded %v", raw, errA, errB)
		}
	}
}
