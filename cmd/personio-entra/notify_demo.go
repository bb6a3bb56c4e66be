//go:build !nosimulators

package main

import "github.com/personio-entra/personio-entra/deploy"

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
