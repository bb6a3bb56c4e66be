// Package rules turns a Personio employee into the Entra state the company
// wants for them: attributes, user principal name candidates, manager, group
// memberships, and where they stand in the joiner/leaver lifecycle. The
// rules live in a YAML file whose expressions are CEL; see README.md.
package rules

import (
	"context"
	"fmt"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
)

// Rules is a loaded, checked rules file. It is immutable and safe for
// concurrent use.
type Rules struct {
	file     string
	loc      *time.Location
	domain   string
	translit Transliteration

	candidates []candidate
	mailNick   *expr // nil: derived from the first UPN candidate
	attrs      []attrRule
	manager    managerRule
	groups     []groupRule
	scope      *expr // nil: everyone is in scope
	lifecycle  Lifecycle
	match      []MatchKey
	origins    *origins // where each rule is written (explain.go)
}

// expr is one compiled CEL expression and where it is written.
type expr struct {
	src  string
	prog cel.Program
	pos  position
}

type position struct{ line, col int }

type candidate struct {
	tmpl *template
	expr *expr
}

type attrRule struct {
	property string
	policy   Policy
	value    *expr // nil for policy never
}

type managerRule struct {
	fromSupervisor bool
	expr           *expr
}

type groupRule struct {
	key  string
	when *expr
	pos  position
}

// Lifecycle is the joiner/leaver policy.
type Lifecycle struct {
	// CreateDaysBeforeStart opens the account this many days before the
	// start date (0: on the start date).
	CreateDaysBeforeStart int `json:"create_days_before_start"`
	// EnableOnStartDate keeps a pre-hire account disabled until the start
	// date begins; false enables it as soon as it is created.
	EnableOnStartDate bool `json:"enable_on_start_date"`
	// Leaver says what happens at the end of the last working day.
	Leaver LeaverPolicy `json:"leaver"`
	// LeaveOfAbsence applies while Personio's status is LEAVE.
	LeaveOfAbsence AbsencePolicy `json:"leave_of_absence"`
	// DeleteAfterDays deletes (soft, restorable for 30 days) the account
	// this many days after the last working day; 0 never deletes.
	DeleteAfterDays int `json:"delete_after_days"`
	// RehireWithinDays: a person who returns within this many days of the
	// leave date recorded on their account (employeeLeaveDateTime) gets the
	// disabled account enabled again; a later return stops with an error for
	// an admin to decide. 0 sets no limit: a disabled account is always
	// enabled again (the engine's Config.RehireWithin).
	RehireWithinDays int `json:"rehire_within_days"`
}

// LeaverPolicy switches the leaver actions.
type LeaverPolicy struct {
	Disable           bool `json:"disable"`
	RevokeSessions    bool `json:"revoke_sessions"`
	RemoveMemberships bool `json:"remove_memberships"`
}

// AbsencePolicy applies to status LEAVE (parental leave, sabbatical).
type AbsencePolicy struct {
	Disable bool `json:"disable"`
}

// MatchKey is one way to find an existing Entra account for an employee:
// the Entra property (employeeId, userPrincipalName, mail) that must equal
// the Personio field (person_id, email).
type MatchKey struct {
	Property string `json:"property"`
	Field    string `json:"field"`
}

// Value is the employee's value for the key ("" when the field is empty:
// skip the key).
func (k MatchKey) Value(e model.Employee) string {
	switch k.Field {
	case "person_id":
		return e.PersonID
	case "email":
		return strings.TrimSpace(e.Email)
	}
	return ""
}

// String renders "property=field".
func (k MatchKey) String() string { return k.Property + "=" + k.Field }

// TimeZone is the company time zone every date is read in.
func (r *Rules) TimeZone() *time.Location { return r.loc }

// Domain is the UPN domain.
func (r *Rules) Domain() string { return r.domain }

// Lifecycle returns the joiner/leaver policy.
func (r *Rules) Lifecycle() Lifecycle { return r.lifecycle }

// MatchKeys returns the matching keys in the order they are tried.
func (r *Rules) MatchKeys() []MatchKey { return append([]MatchKey(nil), r.match...) }

// ManagedGroups returns the group keys (object id or display name, as
// written) in file order. Only these groups are ever changed.
func (r *Rules) ManagedGroups() []string {
	keys := make([]string, len(r.groups))
	for i, g := range r.groups {
		keys[i] = g.key
	}
	return keys
}

// GroupResolver finds a group by key (object id or display name). It returns
// the object id, a reason when Graph cannot manage the group's membership
// (mail-enabled security group, distribution list, dynamic, synced from
// on-premises; "" when it can), or an error when the group cannot be found.
type GroupResolver func(ctx context.Context, key string) (id string, unmanageable string, err error)

// CheckGroups resolves every managed group and reports, in one *Error, each
// group that is unknown, ambiguous, unmanageable through Graph, or the same
// group as another entry. It returns a plain error only when ctx ends.
func (r *Rules) CheckGroups(ctx context.Context, resolve GroupResolver) error {
	var problems []Problem
	seen := map[string]groupRule{}
	for _, g := range r.groups {
		id, unmanageable, err := resolve(ctx, g.key)
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fmt.Errorf("rules: check groups in %s: %w", r.file, ctxErr)
		}
		p := Problem{File: r.file, Line: g.pos.line, Column: g.pos.col}
		switch {
		case err != nil:
			p.Message = fmt.Sprintf("group %q cannot be resolved in Entra: %v", g.key, err)
			p.Fix = "create the group, or write its exact display name or object id (display names must be unique)"
		case unmanageable != "":
			p.Message = fmt.Sprintf("group %q cannot be managed through Microsoft Graph: %s", g.key, unmanageable)
			p.Fix = "use an assigned security group, or a Microsoft 365 group for an email group: Graph cannot change the members of mail-enabled security groups, distribution lists, dynamic or on-premises-synced groups"
		case seen[id].key != "":
			first := seen[id]
			p.Message = fmt.Sprintf("group %q is the same group (%s) as %q on line %d", g.key, id, first.key, first.pos.line)
			p.Fix = "merge the two conditions into one entry with ||"
		default:
			seen[id] = g
			continue
		}
		problems = append(problems, p)
	}
	if len(problems) > 0 {
		return &Error{Problems: problems}
	}
	return nil
}

// ManagesManager reports whether the rules set the Entra manager (`manager:`
// true or an expression). When false the engine never touches managers.
func (r *Rules) ManagesManager() bool { return r.manager.fromSupervisor || r.manager.expr != nil }
