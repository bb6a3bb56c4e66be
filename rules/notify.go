package rules

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	texttemplate "text/template"
	"time"

	"go.yaml.in/yaml/v3"
)

// Notification events.
const (
	EventJoinerCreated  = "joiner_created"  // a joiner's account was created
	EventStartDate      = "start_date"      // the start date begins (with the pass under first_sign_in)
	EventLeaverDisabled = "leaver_disabled" // a leaver's account was disabled
	EventDeadLettered   = "dead_lettered"   // work failed for good and waits in the dead letters
	EventSafeguardHeld  = "safeguard_held"  // the safeguard held destructive changes for approval
)

// Events lists every notification event.
var Events = []string{EventJoinerCreated, EventStartDate, EventLeaverDisabled, EventDeadLettered, EventSafeguardHeld}

// Recipient words in `to:` besides addresses.
const (
	ToManager = "manager" // the person's manager's Entra mail
	ToPerson  = "person"  // the person's own email in Personio
	ToAdmins  = "admins"  // notifications.admins
)

// which events may name which recipient word.
var recipientEvents = map[string][]string{
	ToManager: {EventJoinerCreated, EventStartDate, EventLeaverDisabled},
	ToPerson:  {EventJoinerCreated},
	ToAdmins:  Events,
}

// Notifications is the notifications section: who hears about what, and
// the text they get.
type Notifications struct {
	// Admins receive the events that name `admins`, and problems with the
	// day-one pass (the tenant's policy refusing it).
	Admins []string
	events map[string]*NotifyEvent
}

// NotifyEvent is one event's delivery.
type NotifyEvent struct {
	Name    string
	Enabled bool
	// To lists recipient words (manager, person, admins) and addresses.
	To []string
	// Webhook posts the event to NOTIFY_WEBHOOK_URL as well.
	Webhook bool
	subject *texttemplate.Template
	body    *texttemplate.Template
}

// Notifications returns the notifications section.
func (r *Rules) Notifications() Notifications { return r.notify }

// Event returns the configured event (nil when it is off).
func (n Notifications) Event(name string) *NotifyEvent {
	if ev := n.events[name]; ev != nil && ev.Enabled {
		return ev
	}
	return nil
}

func (n Notifications) enabled(name string) bool { return n.Event(name) != nil }

// UsesEmail reports whether any enabled event mails someone.
func (n Notifications) UsesEmail() bool {
	for _, ev := range n.events {
		if ev.Enabled && len(ev.To) > 0 {
			return true
		}
	}
	return false
}

// UsesWebhook reports whether any enabled event posts to the webhook.
func (n Notifications) UsesWebhook() bool {
	for _, ev := range n.events {
		if ev.Enabled && ev.Webhook {
			return true
		}
	}
	return false
}

// NoticePerson describes the person a notice is about.
type NoticePerson struct {
	ID             string
	FirstName      string
	LastName       string
	Name           string // display name
	Email          string // in Personio
	UPN            string // the Entra account
	Department     string
	Position       string
	StartDate      string // YYYY-MM-DD
	LastWorkingDay string
	ManagerName    string
	ManagerMail    string
}

// NoticePass is the day-one pass in a start_date notice. Value is empty
// when no pass was issued (see Note) and in webhook deliveries.
type NoticePass struct {
	Value      string
	Issued     bool
	ExpiresAt  string // RFC 3339 in the company time zone
	Lifetime   string // e.g. "8h0m0s"
	UsableOnce bool
	SignInURL  string
	// Note says why there is no pass (the person signs in with an
	// existing method, the tenant's policy refused it).
	Note string
}

// NoticeData is what the subject and body templates see.
type NoticeData struct {
	Event  string
	Person NoticePerson
	Pass   NoticePass
	// ApprovalID and People: safeguard_held.
	ApprovalID string
	People     int
	// Reason, Error, Subject: dead_lettered (why, the last error, the
	// work's subject); Reason also for safeguard_held.
	Reason  string
	Error   string
	Subject string
	Time    string // RFC 3339 in the company time zone
}

// Render executes the event's templates.
func (ev *NotifyEvent) Render(d NoticeData) (subject, body string, err error) {
	var sb, bb bytes.Buffer
	if err := ev.subject.Execute(&sb, d); err != nil {
		return "", "", fmt.Errorf("render the subject of %s: %w", ev.Name, err)
	}
	if err := ev.body.Execute(&bb, d); err != nil {
		return "", "", fmt.Errorf("render the body of %s: %w", ev.Name, err)
	}
	return strings.TrimSpace(strings.ReplaceAll(sb.String(), "\n", " ")), bb.String(), nil
}

var defaultSubjects = map[string]string{
	EventJoinerCreated:  `New account for {{.Person.Name}}: {{.Person.UPN}}`,
	EventStartDate:      `{{.Person.Name}} starts today: {{if .Pass.Issued}}their first sign-in{{else}}account {{.Person.UPN}}{{end}}`,
	EventLeaverDisabled: `Account of {{.Person.Name}} disabled: {{.Person.UPN}}`,
	EventDeadLettered:   `personio-entra: work for person {{.Person.ID}} failed and waits in the dead letters`,
	EventSafeguardHeld:  `personio-entra: changes held for approval {{.ApprovalID}}`,
}

var defaultBodies = map[string]string{
	EventJoinerCreated: `{{.Person.Name}} ({{.Person.Position}}, {{.Person.Department}}) starts on {{.Person.StartDate}}.
Their account {{.Person.UPN}} exists and is in its groups.
{{- if .Person.ManagerName}} Manager: {{.Person.ManagerName}}.{{end}}
`,
	EventStartDate: `{{.Person.Name}} starts on {{.Person.StartDate}}. Account: {{.Person.UPN}}
{{if .Pass.Issued}}
Temporary Access Pass for the first sign-in: {{.Pass.Value}}
It works until {{.Pass.ExpiresAt}}{{if .Pass.UsableOnce}} and only once{{end}}.
Give it to {{.Person.FirstName}} in person on the first morning and do not forward this mail. {{.Person.FirstName}} signs in at {{.Pass.SignInURL}} and sets up Microsoft Authenticator or a passkey there.
{{else if .Pass.Note}}
Temporary Access Pass: {{.Pass.Note}}
{{end}}`,
	EventLeaverDisabled: `The account {{.Person.UPN}} of {{.Person.Name}} was disabled at the end of the last working day ({{.Person.LastWorkingDay}}).
`,
	EventDeadLettered: `Work for person {{.Person.ID}} ({{.Subject}}) was moved to the dead letters: {{.Reason}}.
Last error: {{.Error}}
Look at it with ` + "`personio-entra deadletters`" + ` and re-drive it once the cause is fixed.
`,
	EventSafeguardHeld: `The safeguard held destructive changes (disable, remove from groups, revoke sessions) in approval {{.ApprovalID}}: {{.Reason}}.
Review with ` + "`personio-entra approvals`" + ` and release with ` + "`personio-entra approve {{.ApprovalID}}`" + `.
`,
}

var (
	passRef      = regexp.MustCompile(`\.Pass\b`)
	passValueRef = regexp.MustCompile(`\.Pass\.Value\b`)
	tmplPos      = regexp.MustCompile(`^template: [a-z]+:(\d+):(?:(\d+):)? ?`)
)

func (l *loader) notifications(n *yaml.Node) {
	nt := Notifications{events: map[string]*NotifyEvent{}}
	defer func() { l.r.notify = nt }()
	if n == nil {
		return
	}
	f := l.mapping(n, "notifications", []string{"admins", "events"})
	if f == nil {
		return
	}
	if v := f["admins"]; v != nil {
		nt.Admins = l.addresses(v, "notifications.admins")
	}
	evs := f["events"]
	if evs == nil {
		l.problem(n, "add events: {joiner_created: {to: [manager]}}", "notifications has no events")
		return
	}
	ef := l.mapping(evs, "notifications.events", Events)
	if ef == nil {
		return
	}
	for _, name := range Events {
		v := ef[name]
		if v == nil {
			continue
		}
		if ev := l.notifyEvent(name, v, nt); ev != nil {
			nt.events[name] = ev
		}
	}
}

func (l *loader) notifyEvent(name string, n *yaml.Node, nt Notifications) *NotifyEvent {
	what := "notifications.events." + name
	ev := &NotifyEvent{Name: name, Enabled: true}
	if n.Tag == "!!null" { // `joiner_created:` alone: on, with the defaults
		n = &yaml.Node{Kind: yaml.MappingNode, Line: n.Line, Column: n.Column}
	}
	f := l.mapping(n, what, []string{"enabled", "to", "webhook", "subject", "body"})
	if f == nil {
		return nil
	}
	if v := f["enabled"]; v != nil {
		ev.Enabled, _ = l.boolean(v, what+".enabled")
	}
	if v := f["webhook"]; v != nil {
		ev.Webhook, _ = l.boolean(v, what+".webhook")
	}
	if v := f["to"]; v != nil {
		items := []*yaml.Node{v}
		if v.Kind == yaml.SequenceNode {
			items = v.Content
		}
		for _, it := range items {
			s, ok := l.str(it, what+".to")
			if !ok {
				continue
			}
			s = strings.TrimSpace(s)
			if allowed, word := recipientEvents[s]; word {
				switch {
				case !slices.Contains(allowed, name):
					l.problem(it, fmt.Sprintf("%s is for %s only; write an address or admins", s, strings.Join(allowed, ", ")),
						"%s.to: %q has no meaning for %s", what, s, name)
				case s == ToAdmins && len(nt.Admins) == 0:
					l.problem(it, "add notifications.admins: [it-ops@example.com]", "%s.to names admins but notifications.admins is empty", what)
				default:
					ev.To = append(ev.To, s)
				}
				continue
			}
			if !strings.Contains(s, "@") {
				l.problem(it, suggest(s, []string{ToManager, ToPerson, ToAdmins}), "%s.to: %q is neither manager, person, admins nor an address", what, s)
				continue
			}
			if l.address(it, s, what+".to") {
				ev.To = append(ev.To, s)
			}
		}
	}
	if name == EventStartDate && l.r.firstSignIn.Enabled && slices.Contains(ev.To, ToManager) {
		// The pass goes where first_sign_in says; manager here would mail it twice.
		ev.To = slices.DeleteFunc(ev.To, func(s string) bool { return s == ToManager })
	}
	if len(ev.To) == 0 && !ev.Webhook && ev.Enabled && !(name == EventStartDate && l.r.firstSignIn.Enabled) {
		l.problem(n, "add to: [...] or webhook: true", "%s goes nowhere: it has no recipients and no webhook", what)
	}
	ev.subject = l.noticeTemplate(f["subject"], n, name, what+".subject", defaultSubjects[name])
	ev.body = l.noticeTemplate(f["body"], n, name, what+".body", defaultBodies[name])
	if ev.subject == nil || ev.body == nil {
		return nil
	}
	if name == EventStartDate && l.r.firstSignIn.Enabled {
		if b := f["body"]; b != nil && !passValueRef.MatchString(b.Value) {
			l.problem(b, "show the pass with {{.Pass.Value}} inside {{if .Pass.Issued}} ... {{end}}",
				"%s never shows the pass although first_sign_in is on", what)
		}
	}
	return ev
}

// noticeTemplate parses a subject or body template and runs it once on
// sample data, so that an unknown field is reported now, with its place.
func (l *loader) noticeTemplate(n, parent *yaml.Node, event, what, def string) *texttemplate.Template {
	src, at := def, parent
	if n != nil {
		s, ok := l.str(n, what)
		if !ok {
			return nil
		}
		src, at = s, n
		if event != EventStartDate && passRef.MatchString(src) {
			l.problem(n, "the pass exists only in start_date notices", "%s uses .Pass, which %s does not have", what, event)
			return nil
		}
	}
	t, err := texttemplate.New(what[strings.LastIndexByte(what, '.')+1:]).Option("missingkey=error").Parse(src)
	if err == nil {
		err = t.Execute(&bytes.Buffer{}, sampleNotice(event))
	}
	if err != nil {
		pos := position{at.Line, at.Column}
		msg := err.Error()
		if m := tmplPos.FindStringSubmatch(msg); m != nil && n != nil {
			line, _ := strconv.Atoi(m[1])
			switch n.Style {
			case yaml.LiteralStyle, yaml.FoldedStyle:
				// The text starts on the line after the | or > indicator,
				// at the block's indentation.
				pos = position{n.Line + line, 1}
				if i := n.Line + line - 1; i < len(l.lines) {
					pos.col = len(l.lines[i]) - len(strings.TrimLeft(l.lines[i], " ")) + 1
				}
			default:
				if line > 1 {
					pos = position{n.Line + line - 1, 1}
				}
			}
			msg = strings.TrimSpace(tmplPos.ReplaceAllString(msg, ""))
		}
		l.problemAt(pos, "see the notification fields in rules/README.md (Go text/template: {{.Person.Name}}, {{if ...}} ... {{end}})",
			"%s: %s", what, msg)
		return nil
	}
	return t
}

func sampleNotice(event string) NoticeData {
	now := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC).Format(time.RFC3339)
	return NoticeData{Event: event, Time: now,
		Person: NoticePerson{ID: "1", FirstName: "Anna", LastName: "Schmidt", Name: "Anna Schmidt", Email: "anna@example.org",
			UPN: "anna.schmidt@example.com", Department: "Finance", Position: "Analyst", StartDate: "2026-01-05",
			LastWorkingDay: "2026-12-31", ManagerName: "Max Muster", ManagerMail: "max.muster@example.com"},
		Pass:       NoticePass{Value: "sample", Issued: true, ExpiresAt: now, Lifetime: "8h0m0s", UsableOnce: true, SignInURL: "https://aka.ms/mysecurityinfo"},
		ApprovalID: "ap-1", People: 1, Reason: "sample", Error: "sample", Subject: "sample"}
}

var defaultStartDate = func() *NotifyEvent {
	return &NotifyEvent{Name: EventStartDate, Enabled: true,
		subject: texttemplate.Must(texttemplate.New("subject").Option("missingkey=error").Parse(defaultSubjects[EventStartDate])),
		body:    texttemplate.Must(texttemplate.New("body").Option("missingkey=error").Parse(defaultBodies[EventStartDate]))}
}()

// PassEvent is the start_date event whose templates carry the day-one
// pass: the configured one, or the built-in text when notifications do not
// list start_date.
func (n Notifications) PassEvent() *NotifyEvent {
	if ev := n.Event(EventStartDate); ev != nil {
		return ev
	}
	return defaultStartDate
}
