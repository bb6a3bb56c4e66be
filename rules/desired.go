package rules

import (
	"github.com/personio-entra/personio-entra/provisioning/model"
	"time"
)

// Properties lists every Entra user property the rules may map
// (model.UserProperties).
var Properties = model.UserProperties

// Policy says when a mapped property is written.
type Policy string

const (
	Always   Policy = "always"    // set on create and kept in step afterwards
	OnCreate Policy = "on_create" // set on create only; later edits in Entra win
	Never    Policy = "never"     // never written (listed to document intent)
)

// Value is one desired property value and its write policy. Value "" means
// the property should be empty (cleared with null when Policy is Always).
type Value struct {
	Value  string `json:"value"`
	Policy Policy `json:"policy"`
}

// Phase is where an employee stands in the lifecycle at a given instant.
type Phase string

const (
	PhaseOutOfScope Phase = "out_of_scope" // not managed at all: never touched
	PhaseNotYet     Phase = "not_yet"      // starter whose create window has not opened
	PhasePreHire    Phase = "pre_hire"     // account exists before the start date
	PhaseActive     Phase = "active"
	PhaseLeaver     Phase = "leaver"  // after the end of the last working day
	PhaseDeleted    Phase = "deleted" // retention after leaving has passed and deletion is on
)

// Desired is the Entra state the rules ask for one employee at one instant.
// It is a pure function of the employee, the rules and now.
type Desired struct {
	PersonID string `json:"person_id"`
	Phase    Phase  `json:"phase"`
	Reason   string `json:"reason"` // why this phase (human readable)

	// Exists: an account should exist. AccountEnabled: and sign-in is on.
	Exists         bool `json:"exists"`
	AccountEnabled bool `json:"account_enabled"`

	// Attributes maps Graph property name → value (keys from Properties).
	Attributes map[string]Value `json:"attributes"`
	// UPNCandidates are the user principal names to try, in order; the
	// engine takes the first one free in the directory.
	UPNCandidates []string `json:"upn_candidates"`
	MailNickname  string   `json:"mail_nickname"`
	// ManagerPersonID is the Personio person id of the manager ("" none).
	ManagerPersonID string `json:"manager_person_id,omitempty"`
	// Groups holds the keys (as written in the rules: object id or display
	// name) of the managed groups this employee belongs in.
	Groups []string `json:"groups"`

	// Leaver actions, each switchable in the lifecycle policy.
	RevokeSessions   bool `json:"revoke_sessions,omitempty"`
	RemoveMembership bool `json:"remove_memberships,omitempty"`
	// LeaveDate is recorded on the account (employeeLeaveDateTime) when set.
	LeaveDate time.Time `json:"leave_date,omitzero"`

	// NextTransition is the next instant at which Desired changes because of
	// time alone (create window opens, start date, end of last working day,
	// deletion due); zero when none is due.
	NextTransition time.Time `json:"next_transition,omitzero"`

	// Warnings explain values the rules could not compute or Graph would
	// refuse (too long, not a country code, ...). Such attributes are left
	// out of Attributes, so the engine leaves them as they are; the
	// warnings belong in the plan and the audit record.
	Warnings []string `json:"warnings,omitempty"`

	// Explain says which rule produced each value and decided each group
	// (Rules.Explain, AddExplanation); nil from Evaluate, which only
	// records where the values came from (see the *Origin methods).
	Explain *Explanation `json:"explain,omitempty"`

	src source // where the values came from (explain.go)
}

// Evaluator is the contract the engine relies on.
type Evaluator interface {
	Evaluate(e model.Employee, now time.Time) (Desired, error)
}
