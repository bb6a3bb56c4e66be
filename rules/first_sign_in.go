package rules

import (
	"fmt"
	"net/mail"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/personio-entra/personio-entra/provisioning/model"
)

// FirstSignIn is the day-one sign-in policy: a Temporary Access Pass
// (https://learn.microsoft.com/en-us/graph/api/authentication-post-temporaryaccesspassmethods)
// issued when the start date begins (or HoursBeforeStart earlier) and
// mailed to the manager, or to Fallback.
type FirstSignIn struct {
	Enabled bool `json:"enabled"`
	// LifetimeMinutes: 10 to 43,200 (Graph's bounds); the tenant's TAP
	// policy narrows it (its default range is 60 to 480).
	LifetimeMinutes int  `json:"lifetime_minutes"`
	UsableOnce      bool `json:"usable_once"`
	// HoursBeforeStart moves the issue before the start date's beginning in
	// the company time zone (0: at 00:00 on the start date).
	HoursBeforeStart int `json:"hours_before_start"`
	// Recipient is RecipientManager or a fixed address.
	Recipient string `json:"recipient"`
	// Fallback receives the pass when the joiner has no manager or the
	// manager's account has no mailbox (no mail).
	Fallback []string `json:"fallback,omitempty"`
}

// RecipientManager sends to the manager's Entra mail.
const RecipientManager = "manager"

// Graph's bounds for lifetimeInMinutes.
const (
	MinTAPLifetime = 10
	MaxTAPLifetime = 43200
)

// FirstSignIn returns the day-one sign-in policy.
func (r *Rules) FirstSignIn() FirstSignIn { return r.firstSignIn }

// DayOne is the day-one work of a joiner: at At (the start date's beginning,
// or the pass's issue time before it) the start-date notice goes out, with
// a Temporary Access Pass when Pass is set. It stays due until Until, the
// end of the start date: a joiner entered late still gets it that day, and
// switching the feature on never issues passes to people who started
// earlier.
type DayOne struct {
	StartDate model.Date `json:"start_date"`
	At        time.Time  `json:"at"`
	Until     time.Time  `json:"until"`
	Pass      bool       `json:"pass"`
}

// Due reports whether the day-one work should run at now.
func (d *DayOne) Due(now time.Time) bool {
	return d != nil && !now.Before(d.At) && now.Before(d.Until)
}

// dayOne fills d.DayOne for a joiner whose start date has not ended.
func (r *Rules) dayOne(d *Desired, e model.Employee, now time.Time) {
	if e.StartDate.IsZero() || (d.Phase != PhasePreHire && d.Phase != PhaseActive) {
		return
	}
	pass := r.firstSignIn.Enabled
	if !pass && !r.notify.enabled(EventStartDate) {
		return
	}
	start := e.StartDate.Start(r.loc)
	until := e.StartDate.End(r.loc)
	if !now.Before(until) {
		return
	}
	at := start
	if pass {
		at = start.Add(-time.Duration(r.firstSignIn.HoursBeforeStart) * time.Hour)
	}
	d.DayOne = &DayOne{StartDate: e.StartDate, At: at, Until: until, Pass: pass}
}

func (l *loader) firstSignIn(n *yaml.Node) {
	fs := FirstSignIn{LifetimeMinutes: 480, UsableOnce: true, Recipient: RecipientManager}
	defer func() { l.r.firstSignIn = fs }()
	if n == nil {
		return
	}
	f := l.mapping(n, "first_sign_in", []string{"enabled", "lifetime_minutes", "usable_once", "hours_before_start", "recipient", "fallback"})
	if f == nil {
		return
	}
	fs.Enabled = true
	if v := f["enabled"]; v != nil {
		fs.Enabled, _ = l.boolean(v, "first_sign_in.enabled")
	}
	if v := f["lifetime_minutes"]; v != nil {
		fs.LifetimeMinutes, _ = l.integer(v, "first_sign_in.lifetime_minutes", MinTAPLifetime, MaxTAPLifetime)
	}
	if v := f["usable_once"]; v != nil {
		fs.UsableOnce, _ = l.boolean(v, "first_sign_in.usable_once")
	}
	if v := f["hours_before_start"]; v != nil {
		fs.HoursBeforeStart, _ = l.integer(v, "first_sign_in.hours_before_start", 0, 72)
	}
	if v := f["recipient"]; v != nil {
		if s, ok := l.str(v, "first_sign_in.recipient"); ok {
			s = strings.TrimSpace(s)
			if s != RecipientManager && !l.address(v, s, "first_sign_in.recipient") {
				s = RecipientManager
			}
			fs.Recipient = s
		}
	}
	if v := f["fallback"]; v != nil {
		fs.Fallback = l.addresses(v, "first_sign_in.fallback")
	}
	if !fs.Enabled {
		return
	}
	if fs.Recipient == RecipientManager && len(fs.Fallback) == 0 && f["fallback"] == nil {
		l.problem(n, "add fallback: [it-onboarding@example.com]",
			"first_sign_in sends the pass to the manager but has no fallback for a joiner without a manager or a manager without a mailbox")
	}
	if fs.HoursBeforeStart > 0 && l.r.lifecycle.EnableOnStartDate && fs.LifetimeMinutes <= fs.HoursBeforeStart*60 {
		at := f["lifetime_minutes"]
		if at == nil {
			at = f["hours_before_start"]
		}
		l.problem(at, fmt.Sprintf("make lifetime_minutes longer than %d (hours_before_start × 60), or issue the pass later", fs.HoursBeforeStart*60),
			"the pass would expire at or before 00:00 on the start date, when lifecycle.enable_on_start_date first lets the account sign in")
	}
}

// address checks one e-mail address written in n.
func (l *loader) address(n *yaml.Node, s, what string) bool {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || !strings.Contains(s[strings.IndexByte(s, '@')+1:], ".") {
		l.problem(n, "write a plain address such as it-onboarding@example.com", "%s: %q is not an e-mail address", what, s)
		return false
	}
	return true
}

// addresses reads one address or a list of them.
func (l *loader) addresses(n *yaml.Node, what string) []string {
	items := []*yaml.Node{n}
	if n.Kind == yaml.SequenceNode {
		items = n.Content
	}
	var out []string
	for _, it := range items {
		s, ok := l.str(it, what)
		if !ok {
			continue
		}
		s = strings.TrimSpace(s)
		if l.address(it, s, what) {
			out = append(out, s)
		}
	}
	if len(out) == 0 && n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
		l.problem(n, "list at least one address", "%s is empty", what)
	}
	return out
}
