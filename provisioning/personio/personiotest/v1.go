package personiotest

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// handleV1List serves v1 GET /company/employees: limit (default 50, at
// most 100 since the 2025 pagination enforcement), offset, email and
// updated_since (docs/personio-api.md#reading-people).
func (s *Server) handleV1List(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, offset := 50, 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			s.fail(w, r, http.StatusBadRequest, "", "limit must be a number between 1 and 100")
			return
		}
		limit = n
	}
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			s.fail(w, r, http.StatusBadRequest, "", "offset must be a non-negative number")
			return
		}
		offset = n
	}
	var since time.Time
	if v := q.Get("updated_since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			t, err = time.Parse(time.DateOnly, v)
		}
		if err != nil {
			s.fail(w, r, http.StatusBadRequest, "", "updated_since must be an ISO 8601 date or date-time")
			return
		}
		since = t
	}
	email := q.Get("email")

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pagingFault {
		offset = 0
	}
	loc := s.locationLocked()
	var match []*Person
	for _, p := range s.sortedPersonsLocked() {
		if email != "" && !strings.EqualFold(p.Email, email) {
			continue
		}
		if !since.IsZero() && lastModified(p).Before(since) {
			continue
		}
		match = append(match, p)
	}
	total := len(match)
	data := []any{}
	for i := offset; i < total && i < offset+limit; i++ {
		data = append(data, s.v1EmployeeLocked(match[i], loc))
	}
	writeJSON(w, "application/json", http.StatusOK, map[string]any{
		"success": true,
		"metadata": map[string]any{
			"total_elements": total,
			"current_page":   offset / limit,
			"total_pages":    (total + limit - 1) / limit,
		},
		"offset": offset,
		"limit":  limit,
		"data":   data,
	})
}

// handleV1Get serves v1 GET /company/employees/{id}.
func (s *Server) handleV1Get(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.persons[r.PathValue("id")]
	if !ok || s.v1Missing[r.PathValue("id")] {
		s.fail(w, r, http.StatusNotFound, "", "The employee was not found.")
		return
	}
	writeJSON(w, "application/json", http.StatusOK, map[string]any{
		"success": true,
		"data":    s.v1EmployeeLocked(p, s.locationLocked()),
	})
}

func (s *Server) locationLocked() *time.Location {
	if loc, err := time.LoadLocation(s.company.TimeZone); err == nil {
		return loc
	}
	return time.UTC
}

// lastModified is the v1 employee's last_modified_at: the v1 record is
// flat, so a change of the person or of any employment moves it.
func lastModified(p *Person) time.Time {
	t := p.UpdatedAt
	for _, e := range p.Employments {
		if e.UpdatedAt.After(t) {
			t = e.UpdatedAt
		}
	}
	return t
}

// v1Value renders an id the way v1 does: numbers for numeric ids.
func v1Value(id string) any {
	if n, err := strconv.Atoi(id); err == nil {
		return n
	}
	return id
}

func v1Attr(label string, value any, typ string, uid any) map[string]any {
	return map[string]any{"label": label, "value": value, "type": typ, "universal_id": uid}
}

// v1Date renders a date as v1 does: midnight in the company time zone.
func v1Date(s string, loc *time.Location) any {
	if s == "" {
		return nil
	}
	d, err := time.ParseInLocation(time.DateOnly, s, loc)
	if err != nil {
		return s
	}
	return d.Format(time.RFC3339)
}

func lowerOrNil(s string) any {
	if s == "" || s == "UNSPECIFIED" {
		return nil
	}
	return strings.ToLower(s)
}

// v1Label renders an enum as a v1 label: CONTRACT_EXPIRED → "Contract expired".
func v1Label(s string) any {
	if s == "" {
		return nil
	}
	l := strings.ToLower(strings.ReplaceAll(s, "_", " "))
	return strings.ToUpper(l[:1]) + l[1:]
}

func v1Object(typ string, id, name string) any {
	if id == "" {
		return nil
	}
	return map[string]any{"type": typ, "attributes": map[string]any{"id": v1Value(id), "name": name}}
}

// v1EmployeeLocked renders a person and their current employment as a v1
// Employee {type, attributes}. Custom attribute types map to v1 types.
func (s *Server) v1EmployeeLocked(p *Person, loc *time.Location) map[string]any {
	a := map[string]any{
		"id":               v1Attr("ID", v1Value(p.ID), "integer", "id"),
		"first_name":       v1Attr("First name", p.FirstName, "standard", "first_name"),
		"last_name":        v1Attr("Last name", p.LastName, "standard", "last_name"),
		"preferred_name":   v1Attr("Preferred name", p.PreferredName, "standard", "preferred_name"),
		"email":            v1Attr("Email", p.Email, "standard", "email"),
		"gender":           v1Attr("Gender", lowerOrNil(p.Gender), "standard", "gender"),
		"created_at":       v1Attr("Created at", p.CreatedAt.In(loc).Format(time.RFC3339), "date", "created_at"),
		"last_modified_at": v1Attr("Last modified", lastModified(p).In(loc).Format(time.RFC3339), "date", "last_modified_at"),
	}
	if e := CurrentEmployment(p); e != nil {
		a["status"] = v1Attr("Status", lowerOrNil(e.Status), "standard", "status")
		a["employment_type"] = v1Attr("Employment type", lowerOrNil(e.Type), "standard", "employment_type")
		a["position"] = v1Attr("Position", e.Position.Title, "standard", "position")
		a["hire_date"] = v1Attr("Hire date", v1Date(e.EmploymentStartDate, loc), "date", "hire_date")
		a["contract_end_date"] = v1Attr("Contract ends", v1Date(e.EmploymentEndDate, loc), "date", "contract_end_date")
		var term Termination
		if e.Termination != nil {
			term = *e.Termination
		}
		a["termination_date"] = v1Attr("Termination date", v1Date(term.TerminationDate, loc), "date", "termination_date")
		a["last_working_day"] = v1Attr("Last day of work", v1Date(term.LastWorkingDay, loc), "date", "last_working_day")
		a["termination_type"] = v1Attr("Termination type", v1Label(term.Type), "standard", "termination_type")
		a["termination_reason"] = v1Attr("Termination reason", term.Reason, "standard", "termination_reason")
		var sup any
		if e.Supervisor != nil && e.Supervisor.ID != "" {
			attrs := map[string]any{"id": v1Attr("ID", v1Value(e.Supervisor.ID), "integer", "id")}
			if m, ok := s.persons[e.Supervisor.ID]; ok {
				attrs["first_name"] = v1Attr("First name", m.FirstName, "standard", "first_name")
				attrs["last_name"] = v1Attr("Last name", m.LastName, "standard", "last_name")
				attrs["email"] = v1Attr("Email", m.Email, "standard", "email")
			}
			sup = map[string]any{"type": "Employee", "attributes": attrs}
		}
		a["supervisor"] = v1Attr("Supervisor", sup, "standard", "supervisor")
		var dep, team OrgUnit
		for _, ou := range e.OrgUnits {
			u := s.orgUnitLocked(ou.ID)
			switch ou.Type {
			case "department":
				dep = OrgUnit{ID: ou.ID, Name: u.Name}
			case "team":
				team = OrgUnit{ID: ou.ID, Name: u.Name}
			}
		}
		a["department"] = v1Attr("Department", v1Object("Department", dep.ID, dep.Name), "standard", "department")
		a["team"] = v1Attr("Team", v1Object("Team", team.ID, team.Name), "standard", "team")
		var office, le any
		if e.Office != nil {
			office = v1Object("Office", e.Office.ID, s.officeNameLocked(e.Office.ID))
		}
		if e.LegalEntity != nil {
			le = v1Object("Subcompany", e.LegalEntity.ID, s.legalEntityNameLocked(e.LegalEntity.ID))
		}
		a["office"] = v1Attr("Office", office, "standard", "office")
		a["subcompany"] = v1Attr("Subcompany", le, "standard", "subcompany")
		ccs := []any{}
		for _, cc := range e.CostCenters {
			ccs = append(ccs, map[string]any{"type": "CostCenter", "attributes": map[string]any{
				"id": v1Value(cc.ID), "name": s.costCenterNameLocked(cc.ID), "percentage": cc.Weight}})
		}
		a["cost_centers"] = v1Attr("Cost center", ccs, "standard", "cost_centers")
	}
	for _, ca := range p.CustomAttributes {
		var v any = ca.Value
		typ := "standard"
		switch ca.Type {
		case "DATE":
			typ, v = "date", v1Date(ca.Value, loc)
		case "INT":
			typ = "integer"
		case "DOUBLE":
			typ = "decimal"
		case "STRING_LIST":
			typ = "tags"
		}
		a[ca.ID] = v1Attr(ca.Label, v, typ, nil)
	}
	return map[string]any{"type": "Employee", "attributes": a}
}

func (s *Server) orgUnitLocked(id string) OrgUnit {
	for _, u := range s.company.OrgUnits {
		if u.ID == id {
			return u
		}
	}
	return OrgUnit{ID: id}
}

func (s *Server) officeNameLocked(id string) string {
	for _, o := range s.company.Offices {
		if o.ID == id {
			return o.Name
		}
	}
	return ""
}

func (s *Server) legalEntityNameLocked(id string) string {
	for _, l := range s.company.LegalEntities {
		if l.ID == id {
			return l.Name
		}
	}
	return ""
}

func (s *Server) costCenterNameLocked(id string) string {
	for _, c := range s.company.CostCenters {
		if c.ID == id {
			return c.Name
		}
	}
	return ""
}
