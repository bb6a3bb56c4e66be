package rules

import (
	"github.com/personio-entra/personio-entra/provisioning/model"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The checks below restate Entra's name rules
// (docs/graph-behaviour.md#user-principal-names-and-mail-nicknames)
// independently of names.go, so that
// a bug in ValidUPN cannot hide a bug in the generator.
var (
	upnRe  = regexp.MustCompile(`^[A-Za-z0-9'._!#^~-]{1,64}@[A-Za-z0-9.-]{1,48}$`)
	nickRe = regexp.MustCompile(`^[A-Za-z0-9_!#^~-]{1,64}$`)
)

func independentValidUPN(u string) bool {
	local, _, _ := strings.Cut(u, "@")
	return upnRe.MatchString(u) && len(u) <= 113 && !strings.HasPrefix(local, ".") &&
		!strings.HasSuffix(local, ".") && !strings.Contains(local, "..")
}

func independentValidNick(n string) bool {
	return nickRe.MatchString(n) && !strings.ContainsAny(n, `@()/[]';:<>,\". `)
}

const fuzzRules = `
time_zone: Europe/Berlin
domain: example.com
upn:
  candidates: ["{first}.{last}", "{f}.{last}", "{preferred}.{last}", "{first}.{last}{n}", "{l}{id}", {expr: 'employee.first_name + "." + employee.last_name'}]
  transliteration: %s
attributes:
  displayName: 'employee.first_name + " " + employee.last_name'
  employeeId: employee.person_id
`

// FuzzUPN: whatever the names, every generated user principal name and mail
// nickname is valid for Entra, candidates are unique, and a mail nickname
// exists whenever a candidate does.
func FuzzUPN(f *testing.F) {
	var rs []*Rules
	for _, tr := range []string{"german", "ascii"} {
		r, err := LoadBytes("fuzz.yaml", []byte(strings.Replace(fuzzRules, "%s", tr, 1)))
		if err != nil {
			f.Fatal(err)
		}
		rs = append(rs, r)
	}
	for _, s := range [][4]string{
		{"Jürgen", "Weiß", "", "1026"}, {"Björn", "O'Connor", "", "1035"},
		{"Máire-Siobhán", "Ní Bhriain-Fitzgerald-Hohenzollern", "", "1054"},
		{"王", "伟", "", "9"}, {".", "..", "...", "."}, {"a\x00b", "c\u200bd", "🙂", "x@y"},
		{strings.Repeat("Ærø", 40), strings.Repeat("-Łódź ", 30), "Ångström", strings.Repeat("9", 70)},
		{"", "", "", ""}, {"Anne Marie", "van 't Hoff", "Annie", "42"},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, first, last, preferred, id string) {
		if id == "" {
			id = "1"
		}
		e := model.Employee{PersonID: id, FirstName: first, LastName: last, PreferredName: preferred, Status: "ACTIVE"}
		for _, r := range rs {
			d, err := r.Evaluate(e, now)
			if err != nil {
				t.Fatalf("evaluate: %v", err)
			}
			seen := map[string]bool{}
			for _, u := range d.UPNCandidates {
				if !independentValidUPN(u) || !ValidUPN(u) {
					t.Fatalf("invalid UPN %q from %q %q", u, first, last)
				}
				if seen[strings.ToLower(u)] {
					t.Fatalf("duplicate UPN %q", u)
				}
				seen[strings.ToLower(u)] = true
				if n := MailNicknameFor(u); n != "" && (!independentValidNick(n) || !ValidMailNickname(n)) {
					t.Fatalf("invalid nickname %q for %q", n, u)
				}
			}
			if len(d.UPNCandidates) > 0 && !independentValidNick(d.MailNickname) {
				t.Fatalf("invalid mail nickname %q (candidates %q)", d.MailNickname, d.UPNCandidates)
			}
			if d.MailNickname != "" && !independentValidNick(d.MailNickname) {
				t.Fatalf("invalid mail nickname %q", d.MailNickname)
			}
		}
	})
}
