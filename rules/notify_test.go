package rules

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/provisioning/model"
)

const dayOneSection = `first_sign_in:
  lifetime_minutes: 480
  usable_once: true
  hours_before_start: 0
  recipient: manager
  fallback: [it-onboarding@example.com]
notifications:
  admins: [it-ops@example.com]
  events:
    joiner_created:
      to: [manager, person]
      webhook: true
    start_date:
      subject: "{{.Person.Name}} starts today"
      body: |
        Pass for {{.Person.Name}}:
        {{if .Pass.Issued}}{{.Pass.Value}} until {{.Pass.ExpiresAt}}{{else}}{{.Pass.Note}}{{end}}
    leaver_disabled: {to: [manager]}
    dead_lettered: {to: [admins]}
    safeguard_held: {to: [admins], webhook: true}
`

// goodRules is 13 lines long: the sections start on line 14.
func TestDayOneRulesLoad(t *testing.T) {
	r, err := LoadBytes("rules.yaml", []byte(goodRules+dayOneSection))
	if err != nil {
		t.Fatal(err)
	}
	fs := r.FirstSignIn()
	if !fs.Enabled || fs.LifetimeMinutes != 480 || !fs.UsableOnce || fs.Recipient != RecipientManager || len(fs.Fallback) != 1 {
		t.Fatalf("first_sign_in = %+v", fs)
	}
	n := r.Notifications()
	for _, ev := range Events {
		if n.Event(ev) == nil {
			t.Errorf("event %s is off", ev)
		}
	}
	if !n.UsesEmail() || !n.UsesWebhook() {
		t.Errorf("UsesEmail %t UsesWebhook %t", n.UsesEmail(), n.UsesWebhook())
	}
	subject, body, err := n.Event(EventStartDate).Render(NoticeData{Person: NoticePerson{Name: "Ada"}, Pass: NoticePass{Issued: true, Value: "PASS123", ExpiresAt: "tomorrow"}})
	if err != nil || subject != "Ada starts today" || !strings.Contains(body, "PASS123 until tomorrow") {
		t.Fatalf("render: %q %q %v", subject, body, err)
	}
	// Without first_sign_in or notifications the sections are off.
	r0, _ := LoadBytes("rules.yaml", []byte(goodRules))
	if r0.FirstSignIn().Enabled || r0.Notifications().Event(EventJoinerCreated) != nil || r0.Notifications().PassEvent() == nil {
		t.Fatal("defaults")
	}
}

// Every mistake in the new sections is reported with file:line:col.
func TestDayOneRulesErrors(t *testing.T) {
	tests := []struct {
		name      string
		from, to  string
		line, col int
		message   string
	}{
		{"lifetime below Graph's bound", "lifetime_minutes: 480", "lifetime_minutes: 5", 15, 21, "first_sign_in.lifetime_minutes must be a whole number from 10 to 43200"},
		{"lifetime above Graph's bound", "lifetime_minutes: 480", "lifetime_minutes: 43201", 15, 21, "from 10 to 43200"},
		{"unknown key", "usable_once: true", "usable_one: true", 16, 3, `unknown key "usable_one" in first_sign_in`},
		{"bad recipient", "recipient: manager", "recipient: the boss", 18, 14, `"the boss" is not an e-mail address`},
		{"bad fallback", "fallback: [it-onboarding@example.com]", "fallback: [it-onboarding]", 19, 14, `"it-onboarding" is not an e-mail address`},
		{"no fallback", "  fallback: [it-onboarding@example.com]\n", "", 15, 3, "has no fallback"},
		{"pass expires before the account is enabled", "hours_before_start: 0", "hours_before_start: 12", 15, 21, "would expire at or before 00:00 on the start date"},
		{"unknown event", "leaver_disabled:", "leaver_disbled:", 31, 5, `unknown key "leaver_disbled" in notifications.events`},
		{"unknown recipient word", "to: [manager, person]", "to: [manger, person]", 24, 12, `"manger" is neither manager, person, admins nor an address`},
		{"person where it has no meaning", "dead_lettered: {to: [admins]}", "dead_lettered: {to: [person]}", 32, 26, `"person" has no meaning for dead_lettered`},
		{"unknown template field", "{{.Person.Name}} starts today", "{{.Person.Nam}} starts today", 27, 16, "can't evaluate field Nam"},
		{"template syntax", "{{.Person.Name}} starts today", "{{.Person.Name starts today", 27, 16, "notifications.events.start_date.subject"},
		{"unknown field in a block body", "{{.Pass.Value}} until", "{{.Pass.Valu}} until", 30, 9, "can't evaluate field Valu"},
		{"pass outside start_date", "leaver_disabled: {to: [manager]}", `leaver_disabled: {to: [manager], body: "{{.Pass.Value}}"}`, 31, 44, "uses .Pass, which leaver_disabled does not have"},
		{"start_date body without the pass", "{{if .Pass.Issued}}{{.Pass.Value}} until {{.Pass.ExpiresAt}}{{else}}{{.Pass.Note}}{{end}}", "no pass here", 28, 13, "never shows the pass"},
		{"event going nowhere", "dead_lettered: {to: [admins]}", "dead_lettered: {webhook: false}", 32, 20, "goes nowhere"},
		{"admins without addresses", "  admins: [it-ops@example.com]\n", "", 31, 26, "notifications.admins is empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := goodRules + dayOneSection
			if !strings.Contains(src, tc.from) {
				t.Fatalf("test bug: %q not in the rules", tc.from)
			}
			src = strings.Replace(src, tc.from, tc.to, 1)
			_, err := LoadBytes("rules.yaml", []byte(src))
			var re *Error
			if !errors.As(err, &re) {
				t.Fatalf("want *Error, got %v", err)
			}
			for _, p := range re.Problems {
				if strings.Contains(p.Message, tc.message) {
					if p.Line != tc.line || p.Column != tc.col {
						t.Fatalf("%q at %d:%d, want %d:%d", p.Message, p.Line, p.Column, tc.line, tc.col)
					}
					if !strings.HasPrefix(p.String(), fmt.Sprintf("rules.yaml:%d:%d: ", tc.line, tc.col)) {
						t.Fatalf("String() = %q", p.String())
					}
					return
				}
			}
			t.Fatalf("no problem contains %q: %v", tc.message, err)
		})
	}
}

// The issue time is a transition; the work is due from it to the end of
// the start date, and never for people who started earlier.
func TestDayOneTransition(t *testing.T) {
	src := strings.Replace(goodRules+dayOneSection, "hours_before_start: 0", "hours_before_start: 2", 1)
	src = strings.Replace(src, "lifetime_minutes: 480", "lifetime_minutes: 600", 1)
	r, err := LoadBytes("rules.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	e := model.Employee{PersonID: "5", FirstName: "Ada", LastName: "L", Status: "ONBOARDING", StartDate: model.Date{Year: 2026, Month: 12, Day: 1}}
	at := time.Date(2026, 11, 30, 22, 0, 0, 0, berlin) // 2 h before 00:00 on the start date
	for _, tc := range []struct {
		now         time.Time
		due         bool
		next        time.Time
		hasDayOne   bool
		description string
	}{
		{time.Date(2026, 11, 25, 12, 0, 0, 0, berlin), false, at, true, "pre-hire: the next transition is the issue time"},
		{at.Add(time.Minute), true, time.Date(2026, 12, 1, 0, 0, 0, 0, berlin), true, "after the issue time: due"},
		{time.Date(2026, 12, 1, 23, 0, 0, 0, berlin), true, time.Time{}, true, "late on the start date: still due"},
		{time.Date(2026, 12, 2, 0, 30, 0, 0, berlin), false, time.Time{}, false, "the day after: never"},
	} {
		d, err := r.Evaluate(e, tc.now)
		if err != nil {
			t.Fatal(err)
		}
		if (d.DayOne != nil) != tc.hasDayOne || d.DayOne.Due(tc.now) != tc.due {
			t.Errorf("%s: DayOne %+v due %t", tc.description, d.DayOne, d.DayOne.Due(tc.now))
		}
		if !tc.next.IsZero() && !d.NextTransition.Equal(tc.next) {
			t.Errorf("%s: next transition %s, want %s", tc.description, d.NextTransition, tc.next)
		}
	}
}
