// Package hr holds the employee object that rule expressions see as
// `employee`. Field names are the snake_case JSON names of
// model.Employee; dates are "YYYY-MM-DD" strings ("" when not set) so
// that `date(employee.start_date)` turns them into an instant in the
// company's time zone.
package hr

import (
	"github.com/personio-entra/personio-entra/provisioning/model"
	"time"
)

// Employee mirrors model.Employee for CEL.
type Employee struct {
	PersonID        string               `cel:"person_id"`
	FirstName       string               `cel:"first_name"`
	LastName        string               `cel:"last_name"`
	PreferredName   string               `cel:"preferred_name"`
	Email           string               `cel:"email"`
	Gender          string               `cel:"gender"`
	Status          string               `cel:"status"`
	EmploymentID    string               `cel:"employment_id"`
	Position        string               `cel:"position"`
	Department      Ref                  `cel:"department"`
	Team            Ref                  `cel:"team"`
	Office          Ref                  `cel:"office"`
	LegalEntity     Ref                  `cel:"legal_entity"`
	CostCenters     []CostCenter         `cel:"cost_centers"`
	SupervisorID    string               `cel:"supervisor_id"`
	EmploymentType  string               `cel:"employment_type"`
	StartDate       string               `cel:"start_date"`
	TerminationDate string               `cel:"termination_date"`
	LastWorkingDay  string               `cel:"last_working_day"`
	TerminationType string               `cel:"termination_type"`
	Attributes      map[string]Attribute `cel:"attributes"`
	UpdatedAt       time.Time            `cel:"updated_at"`

	// byLabel indexes Attributes by label for attr(); hidden from CEL.
	byLabel map[string]string
}

// Ref is an id and a name (department, team, office, legal entity).
type Ref struct {
	ID   string `cel:"id"`
	Name string `cel:"name"`
}

// CostCenter is one cost centre assignment.
type CostCenter struct {
	ID     string  `cel:"id"`
	Name   string  `cel:"name"`
	Weight float64 `cel:"weight"`
}

// Attribute is one custom attribute.
type Attribute struct {
	ID    string `cel:"id"`
	Label string `cel:"label"`
	Type  string `cel:"type"`
	Value string `cel:"value"`
}

// From converts the normalised Personio record.
func From(e model.Employee) *Employee {
	v := &Employee{
		PersonID:        e.PersonID,
		FirstName:       e.FirstName,
		LastName:        e.LastName,
		PreferredName:   e.PreferredName,
		Email:           e.Email,
		Gender:          e.Gender,
		Status:          e.Status,
		EmploymentID:    e.EmploymentID,
		Position:        e.Position,
		Department:      Ref(e.Department),
		Team:            Ref(e.Team),
		Office:          Ref(e.Office),
		LegalEntity:     Ref(e.LegalEntity),
		SupervisorID:    e.SupervisorID,
		EmploymentType:  e.EmploymentType,
		StartDate:       e.StartDate.String(),
		TerminationDate: e.TerminationDate.String(),
		LastWorkingDay:  e.LastWorkingDay.String(),
		TerminationType: e.TerminationType,
		UpdatedAt:       e.UpdatedAt,
	}
	v.CostCenters = make([]CostCenter, len(e.CostCenters))
	for i, c := range e.CostCenters {
		v.CostCenters[i] = CostCenter(c)
	}
	v.Attributes = make(map[string]Attribute, len(e.Attributes))
	v.byLabel = make(map[string]string, len(e.Attributes))
	for k, a := range e.Attributes {
		v.Attributes[k] = Attribute(a)
		if a.Label != "" {
			v.byLabel[a.Label] = a.Value
		}
	}
	return v
}

// Attr returns the value of the custom attribute with the given id, or else
// with the given label; "" when the employee has neither.
func (v *Employee) Attr(key string) string {
	if a, ok := v.Attributes[key]; ok {
		return a.Value
	}
	return v.byLabel[key]
}
