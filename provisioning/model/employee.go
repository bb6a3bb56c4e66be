package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrPersonNotFound is returned (wrapped) by a source that does not know the
// person. The engine confirms it with a second read before it treats the
// person as deleted (docs/safety.md).
var ErrPersonNotFound = errors.New("person not found")

// Employee is one person with their current employment, normalised from the
// Personio API. Which API call fills which field is documented on each field
// and in the README.
type Employee struct {
	PersonID      string `json:"person_id"`
	FirstName     string `json:"first_name"`
	LastName      string `json:"last_name"`
	PreferredName string `json:"preferred_name,omitempty"`
	// Email is the person's email in Personio (unique per person). For
	// starters it is often a private address until the work account exists.
	Email string `json:"email,omitempty"`
	// Gender is upper case as Personio v2 reports it: FEMALE, MALE, DIVERSE,
	// UNSPECIFIED ("" when unknown).
	Gender string `json:"gender,omitempty"`
	// Status is the current employment's status, upper case: ONBOARDING,
	// ACTIVE, LEAVE, INACTIVE.
	Status string `json:"status"`

	EmploymentID   string       `json:"employment_id,omitempty"`
	Position       string       `json:"position,omitempty"` // job title
	Department     Ref          `json:"department"`
	Team           Ref          `json:"team"`
	Office         Ref          `json:"office"`
	LegalEntity    Ref          `json:"legal_entity"`
	CostCenters    []CostCenter `json:"cost_centers,omitempty"`
	SupervisorID   string       `json:"supervisor_id,omitempty"` // person id of the manager
	EmploymentType string       `json:"employment_type,omitempty"`

	StartDate       Date   `json:"start_date"`                 // employment_start_date / hire_date
	TerminationDate Date   `json:"termination_date"`           // contractual end
	LastWorkingDay  Date   `json:"last_working_day"`           // access ends at the end of this day
	TerminationType string `json:"termination_type,omitempty"` // e.g. EMPLOYEE, FIRED, RETIREMENT

	// Attributes holds custom attributes (phone numbers, addresses and the
	// like live there), keyed by their id ("dynamic_9001").
	Attributes map[string]Attribute `json:"attributes,omitempty"`

	UpdatedAt time.Time `json:"updated_at"`
}

// Ref is an id and a display name (department, team, office, legal entity).
type Ref struct {
	ID   string `json:"id,omitempty"`
	Name string `json:"name,omitempty"`
}

// CostCenter is one cost centre assignment with its weight in percent.
type CostCenter struct {
	ID     string  `json:"id"`
	Name   string  `json:"name,omitempty"`
	Weight float64 `json:"weight"`
}

// Attribute is a custom attribute. Value is rendered as a string (lists are
// joined with ", ").
type Attribute struct {
	ID    string `json:"id"`
	Label string `json:"label,omitempty"`
	Type  string `json:"type,omitempty"`
	Value string `json:"value"`
}

// Date is a calendar date without a time zone (Personio's YYYY-MM-DD). The
// zero Date means "not set".
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// ParseDate parses YYYY-MM-DD; an empty string is the zero Date.
func ParseDate(s string) (Date, error) {
	if s == "" {
		return Date{}, nil
	}
	if len(s) > 10 { // tolerate date-times: take the date part
		if t, err := time.Parse(time.RFC3339, s); err == nil {
			return Date{t.Year(), t.Month(), t.Day()}, nil
		}
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return Date{}, fmt.Errorf("invalid date %q: want YYYY-MM-DD", s)
	}
	return Date{t.Year(), t.Month(), t.Day()}, nil
}

// DateOf returns the calendar date of t in t's location.
func DateOf(t time.Time) Date { return Date{t.Year(), t.Month(), t.Day()} }

// IsZero reports whether the date is unset.
func (d Date) IsZero() bool { return d.Year == 0 && d.Month == 0 && d.Day == 0 }

// String renders YYYY-MM-DD, or "" for the zero Date.
func (d Date) String() string {
	if d.IsZero() {
		return ""
	}
	return fmt.Sprintf("%04d-%02d-%02d", d.Year, int(d.Month), d.Day)
}

// Start returns the first instant of the date in loc.
func (d Date) Start(loc *time.Location) time.Time {
	return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, loc)
}

// End returns the first instant of the following day in loc: the moment the
// date is over ("end of the last working day").
func (d Date) End(loc *time.Location) time.Time {
	return time.Date(d.Year, d.Month, d.Day+1, 0, 0, 0, 0, loc)
}

// AddDays returns the date n days later (n may be negative).
func (d Date) AddDays(n int) Date {
	return DateOf(time.Date(d.Year, d.Month, d.Day+n, 12, 0, 0, 0, time.UTC))
}

// Before reports whether d is strictly before e.
func (d Date) Before(e Date) bool {
	return d.Start(time.UTC).Before(e.Start(time.UTC))
}

func (d Date) MarshalJSON() ([]byte, error) {
	if d.IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(d.String())
}

func (d *Date) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*d = Date{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("date: %w", err)
	}
	p, err := ParseDate(s)
	if err != nil {
		return err
	}
	*d = p
	return nil
}
