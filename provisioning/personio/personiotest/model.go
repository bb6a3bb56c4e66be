package personiotest

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"time"
)

// Company is the one model behind every simulated endpoint: persons with
// their employments and the lookup lists that give ids their names. Its
// JSON form is that of testdata/sample-company.json.
type Company struct {
	CompanyID     string        `json:"company_id"`
	TimeZone      string        `json:"time_zone"`
	OrgUnits      []OrgUnit     `json:"org_units"`
	Offices       []Office      `json:"offices"`
	LegalEntities []LegalEntity `json:"legal_entities"`
	CostCenters   []CostCenter  `json:"cost_centers,omitempty"`
	Persons       []Person      `json:"persons"`
}

// OrgUnit is a department or a team.
type OrgUnit struct {
	ID   string `json:"id"`
	Type string `json:"type"` // department, team
	Name string `json:"name"`
}

// Office is a workplace.
type Office struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Country    string `json:"country,omitempty"`
	Street     string `json:"street,omitempty"`
	PostalCode string `json:"postal_code,omitempty"`
	City       string `json:"city,omitempty"`
}

// LegalEntity is a company of the group (v1 calls it subcompany).
type LegalEntity struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Country string `json:"country,omitempty"`
}

// CostCenter names a cost centre id.
type CostCenter struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Person is a v2 person with its employments embedded.
type Person struct {
	ID               string            `json:"id"`
	FirstName        string            `json:"first_name"`
	LastName         string            `json:"last_name"`
	PreferredName    string            `json:"preferred_name"`
	Email            string            `json:"email"`
	Gender           string            `json:"gender"` // FEMALE, MALE, DIVERSE, UNSPECIFIED
	CustomAttributes []CustomAttribute `json:"custom_attributes"`
	Employments      []Employment      `json:"employments"`
	CreatedAt        time.Time         `json:"created_at,omitzero"`
	UpdatedAt        time.Time         `json:"updated_at,omitzero"`
}

// CustomAttribute is a v2 custom attribute ("dynamic_9001").
type CustomAttribute struct {
	ID    string `json:"id"`
	Label string `json:"label"`
	Type  string `json:"type"` // STRING, INT, DOUBLE, DATE, BOOLEAN, STRING_LIST
	Value string `json:"value"`
}

// Employment is a v2 employment.
type Employment struct {
	ID                  string          `json:"id"`
	Status              string          `json:"status"` // ONBOARDING, ACTIVE, LEAVE, INACTIVE
	Type                string          `json:"type"`   // INTERNAL, EXTERNAL
	Position            Position        `json:"position"`
	Supervisor          *IDRef          `json:"supervisor"`
	Office              *IDRef          `json:"office"`
	OrgUnits            []OrgUnitRef    `json:"org_units"`
	LegalEntity         *IDRef          `json:"legal_entity"`
	CostCenters         []CostCenterRef `json:"cost_centers"`
	EmploymentStartDate string          `json:"employment_start_date"`
	EmploymentEndDate   string          `json:"employment_end_date,omitempty"`
	Termination         *Termination    `json:"termination"`
	CreatedAt           time.Time       `json:"created_at,omitzero"`
	UpdatedAt           time.Time       `json:"updated_at,omitzero"`
}

// Position holds the job title.
type Position struct {
	Title string `json:"title"`
}

// IDRef references another object by id.
type IDRef struct {
	ID string `json:"id"`
}

// OrgUnitRef references a department or team.
type OrgUnitRef struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// CostCenterRef assigns a cost centre with a weight in percent.
type CostCenterRef struct {
	ID     string  `json:"id"`
	Weight float64 `json:"weight"`
}

// Termination is set for leavers.
type Termination struct {
	TerminationDate string `json:"termination_date"`
	LastWorkingDay  string `json:"last_working_day"`
	Type            string `json:"type"` // EMPLOYEE, FIRED, CONTRACT_EXPIRED, …
	Reason          string `json:"reason,omitempty"`
}

//go:embed testdata/sample-company.json
var sampleCompany []byte

// SampleDate is the "today" the sample company's dates are written for.
var SampleDate = time.Date(2026, time.November, 27, 0, 0, 0, 0, time.UTC)

// LoadSampleCompany returns the embedded sample company (54 people) with
// every date shifted by the days between 2026-11-27 and today, so that
// starters and leavers stay upcoming.
func LoadSampleCompany(today time.Time) (*Company, error) {
	var c Company
	if err := json.Unmarshal(sampleCompany, &c); err != nil {
		return nil, fmt.Errorf("personiotest: sample company: %w", err)
	}
	t := time.Date(today.Year(), today.Month(), today.Day(), 0, 0, 0, 0, time.UTC)
	days := int(t.Sub(SampleDate).Hours() / 24)
	shift := func(s *string) error {
		if *s == "" {
			return nil
		}
		d, err := time.Parse(time.DateOnly, *s)
		if err != nil {
			return fmt.Errorf("personiotest: sample company: date %q: %w", *s, err)
		}
		*s = d.AddDate(0, 0, days).Format(time.DateOnly)
		return nil
	}
	for i := range c.Persons {
		for j := range c.Persons[i].Employments {
			e := &c.Persons[i].Employments[j]
			for _, s := range []*string{&e.EmploymentStartDate, &e.EmploymentEndDate} {
				if err := shift(s); err != nil {
					return nil, err
				}
			}
			if e.Termination != nil {
				for _, s := range []*string{&e.Termination.TerminationDate, &e.Termination.LastWorkingDay} {
					if err := shift(s); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	return &c, nil
}

// CurrentEmployment picks the employment that describes the person today:
// the most recent one that is ONBOARDING, ACTIVE or LEAVE, otherwise the
// most recent one (docs/personio-api.md#current-employment). It returns nil without
// employments.
func CurrentEmployment(p *Person) *Employment {
	var best *Employment
	live := func(e *Employment) bool {
		return e.Status == "ACTIVE" || e.Status == "ONBOARDING" || e.Status == "LEAVE"
	}
	for i := range p.Employments {
		e := &p.Employments[i]
		switch {
		case best == nil,
			live(e) && !live(best),
			live(e) == live(best) && e.EmploymentStartDate > best.EmploymentStartDate:
			best = e
		}
	}
	return best
}

// clone deep-copies a person so callers never share memory with the server.
func (p Person) clone() Person {
	b, _ := json.Marshal(p)
	var q Person
	_ = json.Unmarshal(b, &q)
	q.CreatedAt, q.UpdatedAt = p.CreatedAt, p.UpdatedAt
	for i := range q.Employments {
		q.Employments[i].CreatedAt, q.Employments[i].UpdatedAt = p.Employments[i].CreatedAt, p.Employments[i].UpdatedAt
	}
	return q
}

// personFieldsEqual compares the person-level fields (not employments, not timestamps).
func personFieldsEqual(a, b Person) bool {
	a.Employments, b.Employments = nil, nil
	a.CreatedAt, a.UpdatedAt, b.CreatedAt, b.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

func employmentEqual(a, b Employment) bool {
	a.CreatedAt, a.UpdatedAt, b.CreatedAt, b.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

// idLess orders ids numerically when both are numbers (as Personio's are).
func idLess(a, b string) int {
	x, errA := strconv.Atoi(a)
	y, errB := strconv.Atoi(b)
	if errA == nil && errB == nil {
		return x - y
	}
	if errA == nil {
		return -1
	}
	if errB == nil {
		return 1
	}
	if a < b {
		return -1
	}
	if a > b {
		return 1
	}
	return 0
}

// GenerateCompany builds a deterministic company of n people on the sample
// company's departments, offices and legal entities, for load tests.
func GenerateCompany(n int) *Company {
	base, err := LoadSampleCompany(SampleDate)
	if err != nil {
		panic(err) // the embedded sample is part of the binary
	}
	c := &Company{CompanyID: base.CompanyID, TimeZone: base.TimeZone, OrgUnits: base.OrgUnits,
		Offices: base.Offices, LegalEntities: base.LegalEntities, CostCenters: base.CostCenters}
	tmpl := base.Persons
	for i := range n {
		src := tmpl[i%len(tmpl)].clone()
		id := strconv.Itoa(100000 + i)
		src.ID = id
		src.Email = fmt.Sprintf("person%d@example.com", 100000+i)
		for j := range src.Employments {
			src.Employments[j].ID = fmt.Sprintf("e%s-%d", id, j)
			if i > 0 {
				src.Employments[j].Supervisor = &IDRef{ID: "100000"}
			} else {
				src.Employments[j].Supervisor = nil
			}
		}
		c.Persons = append(c.Persons, src)
	}
	slices.SortFunc(c.Persons, func(a, b Person) int { return idLess(a.ID, b.ID) })
	return c
}
