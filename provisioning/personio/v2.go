package personio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// v2PersonsPageSize is the largest page of v2 GET /persons
// (https://developer.personio.de/reference/get_v2-persons.md).
const v2PersonsPageSize = 50

// listV2 follows v2 cursor paging (_data plus _meta.links.next.href) to the
// end and calls each for every item; each may stop early. A next link that
// repeats an earlier cursor is an error, not a loop: a next link pointing
// back at the same page has been reported (docs/personio-api.md#reading-people).
func (c *Client) listV2(ctx context.Context, op, path string, q url.Values, each func(json.RawMessage) (bool, error)) error {
	seen := map[string]bool{}
	for page := 0; ; page++ {
		if page >= maxPages {
			return fmt.Errorf("personio: %s: more than %d pages; giving up", op, maxPages)
		}
		var out struct {
			Data []json.RawMessage `json:"_data"`
			Meta struct {
				Links struct {
					Self *struct {
						Href string `json:"href"`
					} `json:"self"`
					Next *struct {
						Href string `json:"href"`
					} `json:"next"`
				} `json:"links"`
			} `json:"_meta"`
		}
		if err := c.do(ctx, request{op: op, method: http.MethodGet, path: path, query: q,
			api: apiV2, idempotent: true}, &out); err != nil {
			return fmt.Errorf("personio: %s (page %d): %w", op, page+1, err)
		}
		for _, raw := range out.Data {
			stop, err := each(raw)
			if err != nil {
				return fmt.Errorf("personio: %s (page %d): %w", op, page+1, err)
			}
			if stop {
				return nil
			}
		}
		if self := out.Meta.Links.Self; self != nil && self.Href != "" {
			seen[cursorKey(self.Href)] = true
		}
		next := out.Meta.Links.Next
		if next == nil || next.Href == "" || len(out.Data) == 0 {
			return nil
		}
		key := cursorKey(next.Href)
		if seen[key] {
			return fmt.Errorf("personio: %s: next link %q repeats an earlier page; stopping instead of looping", op, next.Href)
		}
		seen[key] = true
		path, q = next.Href, nil
	}
}

// cursorKey identifies a page by its cursor, or by the whole link when it has none.
func cursorKey(href string) string {
	if u, err := url.Parse(href); err == nil {
		if cur := u.Query().Get("cursor"); cur != "" {
			return "cursor:" + cur
		}
	}
	return href
}

// v2Person is the part of a v2 person the client reads.
type v2Person struct {
	ID          string `json:"id"`
	Employments []struct {
		ID string `json:"id"`
	} `json:"employments"`
}

// PersonIDForEmployment finds the person an employment belongs to, for
// employment webhooks that carry no person id. v2 has no lookup by
// employment id, but every v2 person lists its employment ids, so this
// walks GET /v2/persons (50 a page) until the employment turns up and
// remembers every pair it saw: the first lookup costs up to n/50 requests,
// later ones for known employments none. Unknown ids match ErrNotFound.
func (c *Client) PersonIDForEmployment(ctx context.Context, employmentID string) (string, error) {
	if employmentID == "" {
		return "", errors.New("personio: person for employment: empty employment id")
	}
	c.mu.Lock()
	pid, ok := c.employmentPerson[employmentID]
	c.mu.Unlock()
	if ok {
		return pid, nil
	}
	q := url.Values{"limit": {strconv.Itoa(v2PersonsPageSize)}}
	err := c.listV2(ctx, "v2_list_persons", "/v2/persons", q, func(raw json.RawMessage) (bool, error) {
		var p v2Person
		if err := json.Unmarshal(raw, &p); err != nil {
			return false, fmt.Errorf("decode person: %w", err)
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, e := range p.Employments {
			c.employmentPerson[e.ID] = p.ID
			if e.ID == employmentID {
				pid = p.ID
			}
		}
		return pid != "", nil
	})
	if err != nil {
		return "", fmt.Errorf("personio: person for employment %s: %w", employmentID, err)
	}
	if pid == "" {
		return "", fmt.Errorf("personio: person for employment %s: %w (no person lists this employment)", employmentID, ErrNotFound)
	}
	return pid, nil
}

// UpdatePersonEmail writes the person's email through v2
// PATCH /v2/persons/{id}; v1 cannot change email
// (docs/personio-api.md#writing-the-email-back).
// Personio requires the address to be unique. The write fires a
// person.updated webhook of its own.
func (c *Client) UpdatePersonEmail(ctx context.Context, personID, email string) error {
	if personID == "" || strings.ContainsAny(personID, "/?#") {
		return fmt.Errorf("personio: update email: invalid person id %q", personID)
	}
	if !strings.Contains(email, "@") {
		return fmt.Errorf("personio: update email of %s: %q is not an email address", personID, email)
	}
	body, _ := json.Marshal(map[string]string{"email": email})
	err := c.do(ctx, request{op: "v2_patch_person", method: http.MethodPatch,
		path: "/v2/persons/" + url.PathEscape(personID), body: body,
		contentType: "application/json", api: apiV2, idempotent: true}, nil)
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			return fmt.Errorf("personio: update email of %s: %w: %w", personID, ErrNotFound, err)
		}
		return fmt.Errorf("personio: update email of %s: %w", personID, err)
	}
	return nil
}

// Check verifies the credential for both API versions the client uses:
// a v1 token plus one v1 employee (limit 1), and a v2 token plus one v2
// person (limit 1). It reports every failure at once.
func (c *Client) Check(ctx context.Context) error {
	var errs []error
	var v1 struct {
		Data []v1Employee `json:"data"`
	}
	if err := c.do(ctx, request{op: "v1_list_employees", method: http.MethodGet, path: "/v1/company/employees",
		query: url.Values{"limit": {"1"}}, api: apiV1, idempotent: true}, &v1); err != nil {
		errs = append(errs, fmt.Errorf("read employees (v1): %w", err))
	} else if len(v1.Data) > 0 {
		if _, err := employeeFromV1(v1.Data[0]); err != nil {
			errs = append(errs, fmt.Errorf("read employees (v1): %w", err))
		}
	}
	var v2 struct {
		Data []json.RawMessage `json:"_data"`
	}
	if err := c.do(ctx, request{op: "v2_list_persons", method: http.MethodGet, path: "/v2/persons",
		query: url.Values{"limit": {"1"}}, api: apiV2, idempotent: true}, &v2); err != nil {
		errs = append(errs, fmt.Errorf("read persons (v2, scope personio:persons:read): %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("personio check: %w", err)
	}
	return nil
}

// ConfirmDeleted asks Personio a second way whether a person is gone, after
// v1 GET /company/employees/{id} answered 404: v2 GET /v2/persons/{id}
// (https://developer.personio.de/reference/get_v2-persons-id) must answer
// 404 too. true means both APIs agree the person does not exist; false with
// a nil error means the v2 read found them (the v1 404 was wrong); any other
// failure is returned and confirms nothing.
func (c *Client) ConfirmDeleted(ctx context.Context, personID string) (bool, error) {
	if personID == "" || strings.ContainsAny(personID, "/?#") {
		return false, fmt.Errorf("personio: confirm deletion: invalid person id %q", personID)
	}
	var p v2Person
	err := c.do(ctx, request{op: "v2_get_person", method: http.MethodGet,
		path: "/v2/persons/" + url.PathEscape(personID), api: apiV2, idempotent: true}, &p)
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			return true, nil
		}
		return false, fmt.Errorf("personio: confirm deletion of %s (v2 person read): %w", personID, err)
	}
	if p.ID != "" && p.ID != personID {
		return false, fmt.Errorf("personio: confirm deletion of %s: v2 answered with person %q", personID, p.ID)
	}
	return false, nil
}
