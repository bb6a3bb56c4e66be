package rules

import (
	"encoding/json"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// sampleCompany is testdata/sample-company.json (a copy of the product's
// demo company) turned into normalised employees.
type sampleCompany struct {
	TimeZone string `json:"time_zone"`
	OrgUnits []struct {
		ID, Type, Name string
	} `json:"org_units"`
	Offices []struct {
		ID, Name, Country, Street, City string
		PostalCode                      string `json:"postal_code"`
	} `json:"offices"`
	LegalEntities []struct {
		ID, Name string
	} `json:"legal_entities"`
	Persons []struct {
		ID            string            `json:"id"`
		FirstName     string            `json:"first_name"`
		LastName      string            `json:"last_name"`
		PreferredName string            `json:"preferred_name"`
		Email         string            `json:"email"`
		Gender        string            `json:"gender"`
		Custom        []model.Attribute `json:"custom_attributes"`
		Employments   []struct {
			ID       string `json:"id"`
			Status   string `json:"status"`
			Type     string `json:"type"`
			Position struct {
				Title string `json:"title"`
			} `json:"position"`
			Supervisor *struct {
				ID string `json:"id"`
			} `json:"supervisor"`
			Office struct {
				ID string `json:"id"`
			} `json:"office"`
			OrgUnits []struct {
				Type, ID string
			} `json:"org_units"`
			LegalEntity struct {
				ID string `json:"id"`
			} `json:"legal_entity"`
			CostCenters []model.CostCenter `json:"cost_centers"`
			StartDate   model.Date         `json:"employment_start_date"`
			Termination *struct {
				TerminationDate model.Date `json:"termination_date"`
				LastWorkingDay  model.Date `json:"last_working_day"`
				Type            string     `json:"type"`
			} `json:"termination"`
		} `json:"employments"`
	} `json:"persons"`
}

type sampleOffice struct{ Street, PostalCode, City, Country string }

func loadSample(t testing.TB) ([]model.Employee, map[string]sampleOffice) {
	t.Helper()
	data, err := os.ReadFile("testdata/sample-company.json")
	if err != nil {
		t.Fatal(err)
	}
	var c sampleCompany
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatalf("decode sample company: %v", err)
	}
	names := map[string]string{}
	for _, u := range c.OrgUnits {
		names[u.ID] = u.Name
	}
	offices := map[string]sampleOffice{}
	for _, o := range c.Offices {
		names[o.ID] = o.Name
		offices[o.Name] = sampleOffice{o.Street, o.PostalCode, o.City, o.Country}
	}
	for _, le := range c.LegalEntities {
		names[le.ID] = le.Name
	}
	var out []model.Employee
	for _, p := range c.Persons {
		m := p.Employments[0]
		e := model.Employee{
			PersonID: p.ID, FirstName: p.FirstName, LastName: p.LastName, PreferredName: p.PreferredName,
			Email: p.Email, Gender: p.Gender, Status: m.Status, EmploymentID: m.ID,
			Position: m.Position.Title, EmploymentType: m.Type,
			Office:      model.Ref{ID: m.Office.ID, Name: names[m.Office.ID]},
			LegalEntity: model.Ref{ID: m.LegalEntity.ID, Name: names[m.LegalEntity.ID]},
			CostCenters: m.CostCenters, StartDate: m.StartDate,
			Attributes: map[string]model.Attribute{},
		}
		for _, u := range m.OrgUnits {
			ref := model.Ref{ID: u.ID, Name: names[u.ID]}
			if u.Type == "department" {
				e.Department = ref
			} else {
				e.Team = ref
			}
		}
		if m.Supervisor != nil {
			e.SupervisorID = m.Supervisor.ID
		}
		if m.Termination != nil {
			e.TerminationDate, e.LastWorkingDay, e.TerminationType = m.Termination.TerminationDate, m.Termination.LastWorkingDay, m.Termination.Type
		}
		for _, a := range p.Custom {
			e.Attributes[a.ID] = a
		}
		out = append(out, e)
	}
	return out, offices
}

func loadExample(t testing.TB) *Rules {
	t.Helper()
	r, err := Load("../deploy/rules.example.yaml")
	if err != nil {
		t.Fatalf("example rules: %v", err)
	}
	return r
}

// TestExampleRulesSampleCompany evaluates the shipped example rules for the
// whole sample company on the data's reference day (data/README.md:
// starters 3, 10 and 21 days after 2026-11-27, a leaver six days after, one
// who left two days before).
func TestExampleRulesSampleCompany(t *testing.T) {
	r := loadExample(t)
	employees, offices := loadSample(t)
	berlin := r.TimeZone()
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, berlin)

	phases := map[Phase][]string{}
	for _, e := range employees {
		d, err := r.Evaluate(e, now)
		if err != nil {
			t.Fatalf("person %s: %v", e.PersonID, err)
		}
		phases[d.Phase] = append(phases[d.Phase], e.PersonID)
		if len(d.Warnings) > 0 {
			t.Errorf("person %s: unexpected warnings %q", e.PersonID, d.Warnings)
		}
		if d.Phase == PhaseNotYet {
			continue
		}
		// Mapping follows the data.
		want := map[string]string{
			"jobTitle":       e.Position,
			"department":     e.Department.Name,
			"companyName":    e.LegalEntity.Name,
			"employeeId":     e.PersonID,
			"businessPhones": e.Attributes["dynamic_9001"].Value,
			"mobilePhone":    e.Attributes["dynamic_9002"].Value,
			"streetAddress":  offices[e.Office.Name].Street,
			"postalCode":     offices[e.Office.Name].PostalCode,
			"city":           offices[e.Office.Name].City,
			"country":        offices[e.Office.Name].Country,
			"usageLocation":  offices[e.Office.Name].Country,
			"displayName":    e.FirstName + " " + e.LastName,
		}
		for prop, v := range want {
			if got := d.Attributes[prop].Value; got != v {
				t.Errorf("person %s: %s = %q, want %q", e.PersonID, prop, got, v)
			}
		}
		if d.ManagerPersonID != e.SupervisorID {
			t.Errorf("person %s: manager %q, want supervisor %q", e.PersonID, d.ManagerPersonID, e.SupervisorID)
		}
		if len(d.UPNCandidates) == 0 {
			t.Errorf("person %s: no UPN candidates", e.PersonID)
		}
		for _, u := range d.UPNCandidates {
			if !independentValidUPN(u) || !strings.HasSuffix(u, "@example.com") {
				t.Errorf("person %s: invalid UPN candidate %q", e.PersonID, u)
			}
		}
		if !independentValidNick(d.MailNickname) {
			t.Errorf("person %s: invalid mail nickname %q", e.PersonID, d.MailNickname)
		}
		if d.Phase == PhaseLeaver {
			if len(d.Groups) != 0 || !d.RemoveMembership || d.AccountEnabled {
				t.Errorf("leaver %s: groups %v, remove %v, enabled %v", e.PersonID, d.Groups, d.RemoveMembership, d.AccountEnabled)
			}
			continue
		}
		if !slices.Contains(d.Groups, e.Department.Name) {
			t.Errorf("person %s: groups %v lack department %q", e.PersonID, d.Groups, e.Department.Name)
		}
		if slices.Contains(d.Groups, "Women") != (e.Gender == "FEMALE") {
			t.Errorf("person %s (%s): groups %v", e.PersonID, e.Gender, d.Groups)
		}
		if slices.Contains(d.Groups, "Berlin Office") != (e.Office.Name == "Berlin") {
			t.Errorf("person %s (%s): groups %v", e.PersonID, e.Office.Name, d.Groups)
		}
	}
	if len(employees) != 54 {
		t.Fatalf("sample has %d people, want 54", len(employees))
	}
	want := map[Phase][]string{
		PhaseActive:  nil,              // the rest
		PhasePreHire: {"1011", "1025"}, // start in 3 and 10 days: inside the 14-day window
		PhaseNotYet:  {"1037"},         // starts in 21 days
		PhaseLeaver:  {"1031"},         // last working day two days ago
	}
	for ph, ids := range want {
		if ids != nil && !slices.Equal(phases[ph], ids) {
			t.Errorf("phase %s: %v, want %v", ph, phases[ph], ids)
		}
	}
	if n := len(phases[PhaseActive]); n != 50 {
		t.Errorf("%d active, want 50", n)
	}

	// The person leaving in six days: active now, leaving at the end of
	// 2026-12-03 in Berlin, which is also the next transition.
	byID := map[string]model.Employee{}
	for _, e := range employees {
		byID[e.PersonID] = e
	}
	d, err := r.Evaluate(byID["1019"], now)
	if err != nil {
		t.Fatal(err)
	}
	end := time.Date(2026, 12, 4, 0, 0, 0, 0, berlin)
	if d.Phase != PhaseActive || !d.LeaveDate.Equal(end) || !d.NextTransition.Equal(end) {
		t.Errorf("1019: phase %s leave %v next %v, want active, %v, %v", d.Phase, d.LeaveDate, d.NextTransition, end, end)
	}
	// The starter in 21 days: nothing now, the account is due 14 days
	// before the start date.
	d, err = r.Evaluate(byID["1037"], now)
	if err != nil {
		t.Fatal(err)
	}
	if open := time.Date(2026, 12, 4, 0, 0, 0, 0, berlin); d.Exists || !d.NextTransition.Equal(open) {
		t.Errorf("1037: exists %v next %v, want false, %v", d.Exists, d.NextTransition, open)
	}
	// Pre-hire accounts exist but stay disabled until the start date.
	d, err = r.Evaluate(byID["1011"], now)
	if err != nil {
		t.Fatal(err)
	}
	if start := time.Date(2026, 11, 30, 0, 0, 0, 0, berlin); !d.Exists || d.AccountEnabled || !d.NextTransition.Equal(start) {
		t.Errorf("1011: exists %v enabled %v next %v, want true, false, %v", d.Exists, d.AccountEnabled, d.NextTransition, start)
	}
	if d.UPNCandidates[0] != "mikolaj.ozturk@example.com" {
		t.Errorf("1011: first UPN %q", d.UPNCandidates[0])
	}
}
