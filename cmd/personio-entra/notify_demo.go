//go:build !nosimulators

package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/personio-entra/personio-entra/deploy"
	"github.com/personio-entra/personio-entra/provisioning/entra/entratest"
	"github.com/personio-entra/personio-entra/provisioning/personio/personiotest"
)

// demoMailbox is the simulator mailbox the demo and the tests send as.
const demoMailbox = "it-automation@example.com"

// dayOneRules is the example rules file with the day-one pass and the
// notifications switched on, as the commented sections of
// deploy/rules.example.yaml describe: the demo plays them.
var dayOneRules = append(append([]byte{}, deploy.RulesExample...), []byte(`
first_sign_in:
  lifetime_minutes: 480          # the tenant's TAP policy allows 60..480 by default
  usable_once: true
  hours_before_start: 0          # issued at 00:00 on the start date (company time zone)
  recipient: manager             # the manager's Entra mail ...
  fallback: [it-onboarding@example.com]   # ... or this, without a manager or mailbox
notifications:
  admins: [it-ops@example.com]
  events:
    joiner_created: {to: [manager]}
    start_date: {}               # the pass goes where first_sign_in says
    leaver_disabled: {to: [manager]}
    dead_lettered: {to: [admins]}
    safeguard_held: {to: [admins]}
`)...)

// seedDemoMailbox adds the mailbox the demo's notifications are sent as.
func seedDemoMailbox(es *entratest.Server) {
	es.AddUser(entratest.User{UserPrincipalName: demoMailbox, Mail: demoMailbox, DisplayName: "IT Automation", AccountEnabled: true})
}

// playDayOne hires someone who starts today: the product issues a
// Temporary Access Pass and mails it to the manager, and the demo prints
// that mail from the simulator's outbox. The pass is shown once, here: it
// is the simulator's, and it appears in no log line.
func playDayOne(ctx context.Context, s *stack, say func(string, ...any)) error {
	m, ok := s.userByEmployeeID("1001")
	if !ok {
		return fmt.Errorf("day one: the manager (person 1001) has no account")
	}
	s.entra.SetMailbox(m.ID, m.UserPrincipalName) // Exchange Online gives a licensed user a mailbox
	say("\nDay one: Tomás Ferreira starts in Finance today; first_sign_in issues a Temporary Access Pass for the manager ...")
	s.personio.UpsertPerson(personiotest.Person{
		ID: "2002", FirstName: "Tomás", LastName: "Ferreira", Email: "tomas.private@example.org", Gender: "MALE",
		Employments: []personiotest.Employment{{
			ID: "e2002", Status: "ONBOARDING", Type: "INTERNAL", Position: personiotest.Position{Title: "Accountant"},
			Supervisor: &personiotest.IDRef{ID: "1001"}, Office: &personiotest.IDRef{ID: "o1"},
			OrgUnits:    []personiotest.OrgUnitRef{{Type: "department", ID: "d1"}},
			LegalEntity: &personiotest.IDRef{ID: "le1"}, EmploymentStartDate: time.Now().In(s.app.rules.TimeZone()).Format(time.DateOnly), // today where the rules count dates
		}},
	})
	u, err := waitUser(ctx, s, "2002", func(u entratest.User) bool { return len(s.entra.IssuedTAPs(u.ID)) > 0 })
	if err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		taps := s.entra.IssuedTAPs(u.ID)
		pass := taps[len(taps)-1].Pass
		for _, mail := range s.entra.Outbox() {
			if strings.Contains(mail.Body, pass) {
				say("  %s (enabled=%t); the mail %s received from %s:", u.UserPrincipalName, u.AccountEnabled, strings.Join(mail.To, ", "), mail.FromAddress)
				say("    Subject: %s", mail.Subject)
				for _, line := range strings.Split(strings.TrimSpace(mail.Body), "\n") {
					say("    %s", line)
				}
				say("  (the simulator's pass, shown once here: it is in no log line, audit record, queue message or state)")
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("day one: no mail with the pass reached the manager within 30s")
}
