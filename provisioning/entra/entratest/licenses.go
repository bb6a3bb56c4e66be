package entratest

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Licences. GET /subscribedSkus lists the tenant's subscriptions with
// prepaidUnits.enabled and consumedUnits
// (https://learn.microsoft.com/en-us/graph/api/subscribedsku-list);
// POST /users/{id}/assignLicense adds and removes licences in one request,
// both parameters required, and answers the user
// (https://learn.microsoft.com/en-us/graph/api/user-assignlicense). The
// user carries its licences as assignedLicenses. Graph documents that a
// licence needs a usageLocation and a free seat but not the exact
// answers; the messages here are the ones Graph sends in practice
// (docs/graph-behaviour.md#licences).
const (
	msgNoUsageLocation = "License assignment cannot be done for user with invalid usage location."
	msgNotHeld         = "User does not have a corresponding license."
)

func msgUnknownSku(id string) string {
	return fmt.Sprintf("License %s does not correspond to a valid company License.", id)
}

func msgNoSeats(id string) string {
	return fmt.Sprintf("Subscription with SKU %s does not have any available licenses.", id)
}

// SKU is a subscription of the simulated tenant.
type SKU struct {
	ID         string        `json:"skuId"`
	PartNumber string        `json:"skuPartNumber"`
	Enabled    int           `json:"enabled"`  // prepaidUnits.enabled
	Consumed   int           `json:"consumed"` // seats used outside the simulator's users
	Plans      []ServicePlan `json:"servicePlans,omitempty"`
}

// ServicePlan is one service plan of a SKU.
type ServicePlan struct {
	ID   string `json:"servicePlanId"`
	Name string `json:"servicePlanName"`
}

type skuObj struct{ sku SKU }

// AddSKU seeds a subscription (an empty ID is generated) and returns its id.
func (s *Server) AddSKU(k SKU) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k.ID == "" {
		k.ID = newID()
	}
	for i := range k.Plans {
		if k.Plans[i].ID == "" {
			k.Plans[i].ID = newID()
		}
	}
	s.lc.skus = append(s.lc.skus, &skuObj{sku: k})
	return k.ID
}

// SetSeats changes the enabled seats of a subscription (buying or
// cancelling licences).
func (s *Server) SetSeats(skuID string, enabled int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k := s.sku(skuID); k != nil {
		k.sku.Enabled = enabled
	}
}

// SetUserLicenses gives a user licences directly (a seed, no write counted).
func (s *Server) SetUserLicenses(userID string, skuIDs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o, ok := s.users[userID]; ok {
		ls := make([]any, len(skuIDs))
		for i, id := range skuIDs {
			ls[i] = map[string]any{"skuId": id, "disabledPlans": []any{}}
		}
		o.props["assignedLicenses"] = ls
		s.seq++
		o.seq = s.seq
	}
}

// UserLicenses returns the skuIds a user holds.
func (s *Server) UserLicenses(userID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.users[userID]
	if !ok {
		return nil
	}
	var out []string
	for _, l := range licensesOf(o) {
		out = append(out, l.skuID)
	}
	return out
}

type heldLicense struct {
	skuID    string
	disabled []string
}

func licensesOf(o *userObj) []heldLicense {
	arr, _ := o.props["assignedLicenses"].([]any)
	var out []heldLicense
	for _, it := range arr {
		m, _ := it.(map[string]any)
		id, _ := m["skuId"].(string)
		var dis []string
		dp, _ := m["disabledPlans"].([]any)
		for _, p := range dp {
			if ps, ok := p.(string); ok {
				dis = append(dis, ps)
			}
		}
		out = append(out, heldLicense{skuID: id, disabled: dis})
	}
	return out
}

// sku finds a subscription; caller holds s.mu.
func (s *Server) sku(id string) *skuObj {
	for _, k := range s.lc.skus {
		if strings.EqualFold(k.sku.ID, id) {
			return k
		}
	}
	return nil
}

// consumed counts the seats of a subscription in use; caller holds s.mu.
func (s *Server) consumed(k *skuObj) int {
	n := k.sku.Consumed
	for _, id := range s.userOrder {
		o := s.users[id]
		if o.deleted {
			continue
		}
		if slices.ContainsFunc(licensesOf(o), func(l heldLicense) bool { return strings.EqualFold(l.skuID, k.sku.ID) }) {
			n++
		}
	}
	return n
}

func (s *Server) listSubscribedSkus(c *reqCtx) int {
	if !c.authorize(permSubscribedSkus) {
		return http.StatusForbidden
	}
	if c.r.URL.Query().Get("$filter") != "" {
		// Query filter expressions aren't supported on subscribedSkus.
		c.graphError(http.StatusBadRequest, "Request_UnsupportedQuery", "Unsupported Query.")
		return http.StatusBadRequest
	}
	s.mu.Lock()
	items := make([]map[string]any, 0, len(s.lc.skus))
	for _, k := range s.lc.skus {
		plans := make([]map[string]any, len(k.sku.Plans))
		for i, p := range k.sku.Plans {
			plans[i] = map[string]any{"servicePlanId": p.ID, "servicePlanName": p.Name, "provisioningStatus": "Success", "appliesTo": "User"}
		}
		items = append(items, map[string]any{
			"id": s.opts.TenantID + "_" + k.sku.ID, "skuId": k.sku.ID, "skuPartNumber": k.sku.PartNumber,
			"appliesTo": "User", "capabilityStatus": "Enabled", "consumedUnits": s.consumed(k),
			"prepaidUnits":    map[string]any{"enabled": k.sku.Enabled, "suspended": 0, "warning": 0, "lockedOut": 0},
			"servicePlans":    plans,
			"accountId":       s.opts.TenantID,
			"accountName":     "Simulated tenant",
			"subscriptionIds": []string{},
		})
	}
	s.mu.Unlock()
	writeJSON(c.w, http.StatusOK, map[string]any{"@odata.context": s.ts.URL + "/v1.0/$metadata#subscribedSkus", "value": items})
	return http.StatusOK
}

// assignLicense implements POST /users/{id}/assignLicense: all or
// nothing, both parameters required.
func (s *Server) assignLicense(c *reqCtx, key string) int {
	if !c.authorize(permAssignLicense) {
		return http.StatusForbidden
	}
	var missing []string
	for _, p := range []string{"addLicenses", "removeLicenses"} {
		if _, ok := c.body[p]; !ok {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		c.graphError(http.StatusBadRequest, "Request_BadRequest", fmt.Sprintf("One or more parameters of the operation 'assignLicense' are missing from the request payload. The missing parameters are: %s.", strings.Join(missing, ", ")))
		return http.StatusBadRequest
	}
	add, _ := c.body["addLicenses"].([]any)
	remove, _ := c.body["removeLicenses"].([]any)
	s.mu.Lock()
	defer s.mu.Unlock()
	o, status := s.userOr404(c, key)
	if o == nil {
		return status
	}
	held := licensesOf(o)
	holds := func(id string) bool {
		return slices.ContainsFunc(held, func(l heldLicense) bool { return strings.EqualFold(l.skuID, id) })
	}
	bad := func(msg string) int {
		c.graphError(http.StatusBadRequest, "Request_BadRequest", msg)
		return http.StatusBadRequest
	}
	var adds []heldLicense
	for _, it := range add {
		m, _ := it.(map[string]any)
		id, _ := m["skuId"].(string)
		k := s.sku(id)
		if k == nil {
			return bad(msgUnknownSku(id))
		}
		loc, _ := o.props["usageLocation"].(string)
		if loc == "" {
			return bad(msgNoUsageLocation)
		}
		l := heldLicense{skuID: k.sku.ID}
		dp, _ := m["disabledPlans"].([]any)
		for _, p := range dp {
			ps, _ := p.(string)
			if !slices.ContainsFunc(k.sku.Plans, func(x ServicePlan) bool { return strings.EqualFold(x.ID, ps) }) {
				return bad(fmt.Sprintf("The service plan %s is not part of license %s.", ps, k.sku.ID))
			}
			l.disabled = append(l.disabled, ps)
		}
		if !holds(id) && s.consumed(k) >= k.sku.Enabled {
			return bad(msgNoSeats(k.sku.ID))
		}
		adds = append(adds, l)
	}
	var removes []string
	for _, it := range remove {
		id, _ := it.(string)
		if s.sku(id) == nil {
			return bad(msgUnknownSku(id))
		}
		if !holds(id) {
			return bad(msgNotHeld)
		}
		removes = append(removes, id)
	}
	held = slices.DeleteFunc(held, func(l heldLicense) bool {
		return slices.ContainsFunc(removes, func(r string) bool { return strings.EqualFold(r, l.skuID) })
	})
	for _, a := range adds {
		if i := slices.IndexFunc(held, func(l heldLicense) bool { return strings.EqualFold(l.skuID, a.skuID) }); i >= 0 {
			held[i] = a
		} else {
			held = append(held, a)
		}
	}
	ls := make([]any, len(held))
	for i, l := range held {
		dis := make([]any, len(l.disabled))
		for j, p := range l.disabled {
			dis[j] = p
		}
		ls[i] = map[string]any{"skuId": l.skuID, "disabledPlans": dis}
	}
	o.props["assignedLicenses"] = ls
	s.seq++
	o.seq = s.seq
	out := project(o.props, nil, defaultUserSelect)
	out["@odata.context"] = s.ts.URL + "/v1.0/$metadata#users/$entity"
	writeJSON(c.w, http.StatusOK, out)
	return http.StatusOK
}
