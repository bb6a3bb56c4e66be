package personio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// v1PageSize is the largest page v1 GET /company/employees allows since
// pagination was enforced on 31 Jan 2025
// (https://developer.personio.de/docs/pagination-adoption-guide-for-v1-get-employees-endpoint).
const v1PageSize = 100

// maxPages bounds any paging loop (10 million people at 100 a page).
const maxPages = 100_000

// GetEmployee reads one person with their current employment via v1
// GET /company/employees/{id}: one request, names of department, team,
// office and legal entity inline. An unknown person gives an error that
// matches errors.Is(err, ErrNotFound).
func (c *Client) GetEmployee(ctx context.Context, personID string) (model.Employee, error) {
	if personID == "" || strings.ContainsAny(personID, "/?#") {
		return model.Employee{}, fmt.Errorf("personio: get employee: invalid person id %q", personID)
	}
	var out struct {
		Success bool       `json:"success"`
		Data    v1Employee `json:"data"`
	}
	err := c.do(ctx, request{op: "v1_get_employee", method: http.MethodGet,
		path: "/v1/company/employees/" + url.PathEscape(personID), api: apiV1, idempotent: true}, &out)
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			return model.Employee{}, fmt.Errorf("personio: employee %s: %w: %w", personID, ErrNotFound, err)
		}
		return model.Employee{}, fmt.Errorf("personio: get employee %s: %w", personID, err)
	}
	e, err := employeeFromV1(out.Data)
	if err != nil {
		return model.Employee{}, fmt.Errorf("personio: get employee %s: %w", personID, err)
	}
	return e, nil
}

// ListEmployees reads every employee the credential can see: v1
// GET /company/employees at limit 100, one request per page
// (ceil(n/100) requests plus a token request per day).
func (c *Client) ListEmployees(ctx context.Context) ([]model.Employee, error) {
	return c.listV1(ctx, "v1_list_employees", nil)
}

// ListEmployeesUpdatedSince reads the employees whose Personio record
// changed at or after since: v1 GET /company/employees?updated_since=…,
// paged like ListEmployees, so a sync with nothing changed costs one request.
//
// The v1 employee record is flat (person and employment fields together),
// so edits of either kind move its last_modified_at, unlike v2 persons'
// updated_at which only covers person fields. It misses changes that are
// not edits of the employee: the status moving on its own on a start or
// termination date, renamed departments, offices or legal entities, and
// attributes newly whitelisted on the credential. Run ListEmployees at
// least daily as well.
func (c *Client) ListEmployeesUpdatedSince(ctx context.Context, since time.Time) ([]model.Employee, error) {
	if since.IsZero() {
		return nil, errors.New("personio: list employees updated since: zero time; use ListEmployees for a complete read")
	}
	q := url.Values{"updated_since": {since.UTC().Format(time.RFC3339)}}
	return c.listV1(ctx, "v1_list_employees_updated", q)
}

// listV1 pages through v1 GET /company/employees with offset/limit.
func (c *Client) listV1(ctx context.Context, op string, filter url.Values) ([]model.Employee, error) {
	var all []model.Employee
	err := c.listV1Pages(ctx, op, filter, func(page []model.Employee) error {
		all = append(all, page...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return all, nil
}

// listV1Pages is listV1 handing each page to yield as it arrives.
func (c *Client) listV1Pages(ctx context.Context, op string, filter url.Values, yield func([]model.Employee) error) error {
	seen := map[string]bool{}
	prevFirst := ""
	for page, offset := 0, 0; ; page++ {
		if page >= maxPages {
			return fmt.Errorf("personio: %s: more than %d pages; giving up", op, maxPages)
		}
		q := url.Values{"limit": {strconv.Itoa(v1PageSize)}, "offset": {strconv.Itoa(offset)}}
		for k, v := range filter {
			q[k] = v
		}
		var out struct {
			Success  bool `json:"success"`
			Metadata *struct {
				TotalElements int `json:"total_elements"`
				CurrentPage   int `json:"current_page"`
				TotalPages    int `json:"total_pages"`
			} `json:"metadata"`
			Data []v1Employee `json:"data"`
		}
		if err := c.do(ctx, request{op: op, method: http.MethodGet, path: "/v1/company/employees",
			query: q, api: apiV1, idempotent: true}, &out); err != nil {
			return fmt.Errorf("personio: list employees (offset %d): %w", offset, err)
		}
		if len(out.Data) == 0 {
			return nil
		}
		// Guard: a server that ignores offset would hand out page one forever.
		first := v1ID(out.Data[0])
		if page > 0 && first == prevFirst {
			return fmt.Errorf("personio: %s: page at offset %d repeats the previous page (first id %s); stopping instead of looping", op, offset, first)
		}
		prevFirst = first
		page := make([]model.Employee, 0, len(out.Data))
		for _, d := range out.Data {
			e, err := employeeFromV1(d)
			if err != nil {
				return fmt.Errorf("personio: %s (offset %d): %w", op, offset, err)
			}
			if seen[e.PersonID] {
				return fmt.Errorf("personio: %s: employee %s returned twice (offset %d); the listing shifted while paging", op, e.PersonID, offset)
			}
			seen[e.PersonID] = true
			page = append(page, e)
		}
		if err := yield(page); err != nil {
			return err
		}
		offset += len(out.Data)
		if m := out.Metadata; m != nil && m.TotalElements > 0 && offset >= m.TotalElements {
			return nil
		}
		if len(out.Data) < v1PageSize {
			return nil
		}
	}
}

// v1Employee is one item of v1 /company/employees: {type, attributes}
// where every attribute is {label, value, type, universal_id}.
type v1Employee struct {
	Type       string            `json:"type"`
	Attributes map[string]v1Attr `json:"attributes"`
}

type v1Attr struct {
	Label       string          `json:"label"`
	Value       json.RawMessage `json:"value"`
	Type        string          `json:"type"`
	UniversalID *string         `json:"universal_id"`
}

func v1ID(e v1Employee) string { return scalarString(e.Attributes["id"].Value) }

// v1Object is a nested v1 value such as a department:
// {"type": "Department", "attributes": {"id": 1, "name": "IT"}}. Nested
// attributes are either plain values or {label, value} objects.
type v1Object struct {
	Type       string                     `json:"type"`
	Attributes map[string]json.RawMessage `json:"attributes"`
}

func (o v1Object) field(name string) json.RawMessage {
	raw := bytes.TrimSpace(o.Attributes[name])
	if len(raw) > 0 && raw[0] == '{' {
		var a v1Attr
		if json.Unmarshal(raw, &a) == nil {
			return a.Value
		}
	}
	return raw
}

func decodeObject(raw json.RawMessage) (v1Object, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return v1Object{}, false
	}
	var o v1Object
	if json.Unmarshal(raw, &o) != nil || o.Attributes == nil {
		return v1Object{}, false
	}
	return o, true
}

func refFromV1(raw json.RawMessage) model.Ref {
	o, ok := decodeObject(raw)
	if !ok {
		// Some tenants render these as a bare name.
		return model.Ref{Name: scalarString(raw)}
	}
	return model.Ref{ID: scalarString(o.field("id")), Name: scalarString(o.field("name"))}
}

// employeeFromV1 normalises a v1 employee. Standard attributes map to
// fields; every dynamic_* attribute is a custom attribute.
func employeeFromV1(d v1Employee) (model.Employee, error) {
	a := d.Attributes
	str := func(k string) string { return strings.TrimSpace(scalarString(a[k].Value)) }
	e := model.Employee{
		PersonID:        str("id"),
		FirstName:       str("first_name"),
		LastName:        str("last_name"),
		PreferredName:   str("preferred_name"),
		Email:           str("email"),
		Gender:          upperEnum(str("gender")),
		Status:          upperEnum(str("status")),
		Position:        str("position"),
		Department:      refFromV1(a["department"].Value),
		Team:            refFromV1(a["team"].Value),
		Office:          refFromV1(a["office"].Value),
		LegalEntity:     refFromV1(a["subcompany"].Value),
		EmploymentType:  upperEnum(str("employment_type")),
		TerminationType: upperEnum(str("termination_type")),
	}
	if e.PersonID == "" {
		return model.Employee{}, errors.New("employee without id (is the id attribute readable for this API credential?)")
	}
	if sup, ok := decodeObject(a["supervisor"].Value); ok {
		e.SupervisorID = scalarString(sup.field("id"))
	}
	var err error
	for _, f := range []struct {
		key string
		dst *model.Date
	}{{"hire_date", &e.StartDate}, {"termination_date", &e.TerminationDate}, {"last_working_day", &e.LastWorkingDay}} {
		if *f.dst, err = model.ParseDate(str(f.key)); err != nil {
			return model.Employee{}, fmt.Errorf("employee %s: %s: %w", e.PersonID, f.key, err)
		}
	}
	if v := str("last_modified_at"); v != "" {
		if e.UpdatedAt, err = time.Parse(time.RFC3339, v); err != nil {
			return model.Employee{}, fmt.Errorf("employee %s: last_modified_at: %w", e.PersonID, err)
		}
		e.UpdatedAt = e.UpdatedAt.UTC()
	}
	if raw := bytes.TrimSpace(a["cost_centers"].Value); len(raw) > 0 && raw[0] == '[' {
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return model.Employee{}, fmt.Errorf("employee %s: cost_centers: %w", e.PersonID, err)
		}
		for _, it := range items {
			o, ok := decodeObject(it)
			if !ok {
				continue
			}
			w, _ := strconv.ParseFloat(scalarString(o.field("percentage")), 64)
			e.CostCenters = append(e.CostCenters, model.CostCenter{
				ID: scalarString(o.field("id")), Name: scalarString(o.field("name")), Weight: w})
		}
	}
	for k, v := range a {
		if !strings.HasPrefix(k, "dynamic_") {
			continue
		}
		if e.Attributes == nil {
			e.Attributes = map[string]model.Attribute{}
		}
		e.Attributes[k] = model.Attribute{ID: k, Label: v.Label, Type: v.Type, Value: renderValue(v.Type, v.Value)}
	}
	return e, nil
}

// upperEnum normalises Personio enum-like values ("active", "Fired",
// "contract expired") to the upper-case v2 spelling (ACTIVE, FIRED,
// CONTRACT_EXPIRED).
func upperEnum(s string) string {
	s = strings.ToUpper(strings.TrimSpace(s))
	return strings.NewReplacer(" ", "_", "-", "_").Replace(s)
}

// renderValue turns a custom attribute value into text: strings as they
// are, dates as YYYY-MM-DD, numbers as written, lists joined with ", ".
func renderValue(typ string, raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	switch raw[0] {
	case '[':
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil {
			return ""
		}
		parts := make([]string, 0, len(items))
		for _, it := range items {
			if o, ok := decodeObject(it); ok {
				if n := scalarString(o.field("name")); n != "" {
					parts = append(parts, n)
					continue
				}
				parts = append(parts, scalarString(o.field("value")))
				continue
			}
			if s := renderValue("", it); s != "" {
				parts = append(parts, s)
			}
		}
		return strings.Join(parts, ", ")
	case '{':
		if o, ok := decodeObject(raw); ok {
			return scalarString(o.field("name"))
		}
		return ""
	}
	s := scalarString(raw)
	if typ == "date" && len(s) > 10 {
		if d, err := model.ParseDate(s); err == nil {
			return d.String()
		}
	}
	return s
}
