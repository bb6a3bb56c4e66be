package personiotest

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// page cuts items by the v2 cursor rules: limit within [1, maxLimit]
// (default def), an opaque cursor that carries the offset and the
// original filters (next links carry only the cursor,
// docs/personio-api.md#reading-people).
// It writes the response or an error and reports whether it did.
func (s *Server) page(w http.ResponseWriter, r *http.Request, def, maxLimit int, filter func(url.Values) ([]any, string)) {
	q := r.URL.Query()
	offset := 0
	if cur := q.Get("cursor"); cur != "" {
		raw, err := base64.RawURLEncoding.DecodeString(cur)
		var c struct {
			Offset int    `json:"o"`
			Query  string `json:"q"`
		}
		if err != nil || json.Unmarshal(raw, &c) != nil {
			s.fail(w, r, http.StatusBadRequest, "common.bad_request", "invalid cursor")
			return
		}
		orig, _ := url.ParseQuery(c.Query)
		q, offset = orig, c.Offset
	}
	limit := def
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			s.fail(w, r, http.StatusBadRequest, "common.bad_request", "limit must be between 1 and "+strconv.Itoa(maxLimit))
			return
		}
		limit = n
	}
	s.mu.Lock()
	items, msg := filter(q)
	fault := s.pagingFault
	s.mu.Unlock()
	if msg != "" {
		s.fail(w, r, http.StatusBadRequest, "common.bad_request", msg)
		return
	}
	end := min(offset+limit, len(items))
	data := []any{}
	if offset < len(items) {
		data = items[offset:end]
	}
	self := s.URL() + r.URL.Path + "?" + r.URL.RawQuery
	links := map[string]any{"self": map[string]string{"href": self}}
	if end < len(items) {
		next := end
		if fault {
			next = offset // the reported bug: next points at the same page
		}
		b, _ := json.Marshal(map[string]any{"o": next, "q": q.Encode()})
		links["next"] = map[string]string{"href": s.URL() + r.URL.Path + "?cursor=" + base64.RawURLEncoding.EncodeToString(b)}
		if fault && offset == 0 {
			links["self"] = links["next"]
		}
	}
	writeJSON(w, "application/json", http.StatusOK, map[string]any{"_data": data, "_meta": map[string]any{"links": links}})
}

func parseTimeFilter(q url.Values, key string) (time.Time, bool, string) {
	v := q.Get(key)
	if v == "" {
		return time.Time{}, false, ""
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, false, key + " must be an RFC 3339 date-time"
	}
	return t, true, ""
}

// handleV2Persons serves GET /v2/persons (limit 1–50, default 10) with the
// id, email, updated_at.gt/.lt and status filters, AND-ed.
func (s *Server) handleV2Persons(w http.ResponseWriter, r *http.Request) {
	s.page(w, r, 10, 50, func(q url.Values) ([]any, string) {
		gt, hasGT, msg := parseTimeFilter(q, "updated_at.gt")
		if msg != "" {
			return nil, msg
		}
		lt, hasLT, msg := parseTimeFilter(q, "updated_at.lt")
		if msg != "" {
			return nil, msg
		}
		ids := splitComma(q.Get("id"))
		emails := splitComma(q.Get("email"))
		status := q.Get("status")
		if status != "" && status != "ACTIVE" && status != "INACTIVE" {
			return nil, "status must be ACTIVE or INACTIVE"
		}
		var out []any
		for _, p := range s.sortedPersonsLocked() {
			switch {
			case len(ids) > 0 && !slices.Contains(ids, p.ID),
				len(emails) > 0 && !slices.ContainsFunc(emails, func(e string) bool { return strings.EqualFold(e, p.Email) }),
				hasGT && !p.UpdatedAt.After(gt),
				hasLT && !p.UpdatedAt.Before(lt),
				status != "" && personStatus(p) != status:
				continue
			}
			out = append(out, s.v2Person(p))
		}
		return out, ""
	})
}

func splitComma(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// personStatus is ACTIVE when the current employment is ACTIVE, LEAVE or
// ONBOARDING (docs/personio-api.md#reading-people).
func personStatus(p *Person) string {
	e := CurrentEmployment(p)
	if e == nil {
		return "UNSPECIFIED"
	}
	switch e.Status {
	case "ACTIVE", "LEAVE", "ONBOARDING":
		return "ACTIVE"
	}
	return "INACTIVE"
}

func (s *Server) v2Person(p *Person) map[string]any {
	cas := []any{}
	for _, ca := range p.CustomAttributes {
		cas = append(cas, map[string]any{"id": ca.ID, "type": ca.Type, "global_id": nil, "label": ca.Label, "value": ca.Value})
	}
	emps := []any{}
	for _, e := range sortedEmployments(p) {
		emps = append(emps, map[string]string{"id": e.ID})
	}
	return map[string]any{
		"id": p.ID, "email": p.Email, "first_name": p.FirstName, "last_name": p.LastName,
		"preferred_name": p.PreferredName, "gender": p.Gender, "status": personStatus(p),
		"created_at": p.CreatedAt.UTC().Format(time.RFC3339), "updated_at": p.UpdatedAt.UTC().Format(time.RFC3339),
		"custom_attributes": cas, "employments": emps,
		"_meta": map[string]any{"links": map[string]any{
			"employments": map[string]string{"href": s.URL() + "/v2/persons/" + p.ID + "/employments"}}},
	}
}

// sortedEmployments lists the most recent employment first.
func sortedEmployments(p *Person) []Employment {
	out := slices.Clone(p.Employments)
	slices.SortStableFunc(out, func(a, b Employment) int { return strings.Compare(b.EmploymentStartDate, a.EmploymentStartDate) })
	return out
}

func (s *Server) v2Employment(p *Person, e *Employment) map[string]any {
	ous := []any{}
	for _, ou := range e.OrgUnits {
		ous = append(ous, map[string]string{"type": ou.Type, "id": ou.ID})
	}
	ccs := []any{}
	for _, cc := range e.CostCenters {
		ccs = append(ccs, map[string]any{"id": cc.ID, "weight": cc.Weight})
	}
	ref := func(r *IDRef) any {
		if r == nil || r.ID == "" {
			return nil
		}
		return map[string]string{"id": r.ID}
	}
	var term any
	if t := e.Termination; t != nil {
		term = map[string]any{"termination_date": t.TerminationDate, "last_working_day": t.LastWorkingDay, "type": t.Type, "reason": t.Reason}
	}
	var end any
	if e.EmploymentEndDate != "" {
		end = e.EmploymentEndDate
	}
	return map[string]any{
		"id": e.ID, "status": e.Status, "type": e.Type, "position": map[string]string{"title": e.Position.Title},
		"supervisor": ref(e.Supervisor), "office": ref(e.Office), "org_units": ous, "legal_entity": ref(e.LegalEntity),
		"cost_centers": ccs, "employment_start_date": e.EmploymentStartDate, "employment_end_date": end,
		"termination": term, "person": map[string]string{"id": p.ID},
		"created_at": e.CreatedAt.UTC().Format(time.RFC3339), "updated_at": e.UpdatedAt.UTC().Format(time.RFC3339),
	}
}

func (s *Server) handleV2Person(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	p, ok := s.persons[r.PathValue("id")]
	var out map[string]any
	if ok {
		out = s.v2Person(p)
	}
	s.mu.Unlock()
	if !ok {
		s.fail(w, r, http.StatusNotFound, "common.resource_not_found", "person not found")
		return
	}
	writeJSON(w, "application/json", http.StatusOK, out)
}

// handleV2Employments serves GET /v2/persons/{id}/employments, most recent first.
func (s *Server) handleV2Employments(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	_, ok := s.persons[r.PathValue("id")]
	s.mu.Unlock()
	if !ok {
		s.fail(w, r, http.StatusNotFound, "common.resource_not_found", "person not found")
		return
	}
	s.page(w, r, 10, 50, func(url.Values) ([]any, string) {
		p, ok := s.persons[r.PathValue("id")]
		if !ok {
			return nil, "person was deleted"
		}
		var out []any
		for _, e := range sortedEmployments(p) {
			out = append(out, s.v2Employment(p, &e))
		}
		return out, ""
	})
}

func (s *Server) handleV2Employment(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.persons[r.PathValue("id")]
	if ok {
		for i := range p.Employments {
			if p.Employments[i].ID == r.PathValue("eid") {
				writeJSON(w, "application/json", http.StatusOK, s.v2Employment(p, &p.Employments[i]))
				return
			}
		}
	}
	s.fail(w, r, http.StatusNotFound, "common.resource_not_found", "employment not found")
}

// handleV2PatchPerson serves PATCH /v2/persons/{id}: email (unique),
// names and gender; 204 on success
// (https://developer.personio.de/reference/patch_v2-persons-person-id.md).
func (s *Server) handleV2PatchPerson(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Email         *string `json:"email"`
		FirstName     *string `json:"first_name"`
		LastName      *string `json:"last_name"`
		PreferredName *string `json:"preferred_name"`
		Gender        *string `json:"gender"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&in); err != nil {
		s.fail(w, r, http.StatusBadRequest, "common.bad_request", "invalid JSON body")
		return
	}
	id := r.PathValue("id")
	s.mu.Lock()
	if _, ok := s.persons[id]; !ok {
		s.mu.Unlock()
		s.fail(w, r, http.StatusNotFound, "common.resource_not_found", "person not found")
		return
	}
	if in.Email != nil {
		if !strings.Contains(*in.Email, "@") {
			s.mu.Unlock()
			s.fail(w, r, http.StatusBadRequest, "common.bad_request", "email is not a valid email address")
			return
		}
		for _, o := range s.persons {
			if o.ID != id && strings.EqualFold(o.Email, *in.Email) {
				s.mu.Unlock()
				s.fail(w, r, http.StatusBadRequest, "common.bad_request", "email is already used by another person")
				return
			}
		}
	}
	if in.Gender != nil && !slices.Contains([]string{"MALE", "FEMALE", "DIVERSE", "UNSPECIFIED"}, *in.Gender) {
		s.mu.Unlock()
		s.fail(w, r, http.StatusBadRequest, "common.bad_request", "gender must be MALE, FEMALE, DIVERSE or UNSPECIFIED")
		return
	}
	s.mu.Unlock()
	s.UpdatePerson(id, func(p *Person) {
		for _, f := range []struct{ src, dst *string }{
			{in.Email, &p.Email}, {in.FirstName, &p.FirstName}, {in.LastName, &p.LastName},
			{in.PreferredName, &p.PreferredName}, {in.Gender, &p.Gender}} {
			if f.src != nil {
				*f.dst = *f.src
			}
		}
	})
	w.WriteHeader(http.StatusNoContent)
}
