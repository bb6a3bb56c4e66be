package entratest

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Deleted items. DELETE /users/{id} soft-deletes: the user leaves every
// read and group listing, keeps its user principal name and addresses
// reserved (docs/graph-behaviour.md#deleted-users), and is listed under
// GET /directory/deletedItems/microsoft.graph.user with deletedDateTime
// (https://learn.microsoft.com/en-us/graph/api/directory-deleteditems-list:
// the cast is required, and the query parameters are those of the user
// resource). POST /directory/deletedItems/{id}/restore brings it back
// under its object id; v1.0 takes no request body, the beta endpoint takes
// newUserPrincipalName and autoReconcileProxyConflict
// (https://learn.microsoft.com/en-us/graph/api/directory-deleteditems-restore?view=graph-rest-beta).
// A restore whose user principal name, or one of whose addresses, an
// active object holds is refused with ObjectConflict. The restored user
// then replicates like a new one (Options.ReplicationDelay). A deleted user's
// licences are released (its seats are free) and it comes back without
// them: this simulator's assumption, not documented.

// lifecycleSim is the state of permissions.go, deleted.go and licenses.go.
type lifecycleSim struct {
	permissions    []string
	permissionsSet bool
	deletedAt      map[string]time.Time
	refuseFilter   bool // RefuseDeletedItemsFilter
	skus           []*skuObj
}

// AddDeletedUser seeds a soft-deleted user, deleted at the given instant,
// and returns its id.
func (s *Server) AddDeletedUser(u User, at time.Time) string {
	u.Deleted = true
	id := s.AddUser(u)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.markDeleted(id, at)
	return id
}

// RefuseDeletedItemsFilter makes $filter on deleted users answer 400
// Request_UnsupportedQuery, for tenants or API versions that support fewer
// filters on deleted items than on users (the documentation leaves the
// exact set open); clients then list the deleted users and filter
// themselves.
func (s *Server) RefuseDeletedItemsFilter(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lc.refuseFilter = on
}

// markDeleted records the deletion and releases the user's licences.
// Caller holds s.mu.
func (s *Server) markDeleted(id string, at time.Time) {
	if s.lc.deletedAt == nil {
		s.lc.deletedAt = map[string]time.Time{}
	}
	s.lc.deletedAt[id] = at.UTC()
	if o, ok := s.users[id]; ok {
		delete(o.props, "assignedLicenses")
	}
}

// deletedProps are a deleted user's properties with deletedDateTime.
// Caller holds s.mu.
func (s *Server) deletedProps(o *userObj) map[string]any {
	p := make(map[string]any, len(o.props)+1)
	for k, v := range o.props {
		p[k] = v
	}
	id, _ := o.props["id"].(string)
	if at, ok := s.lc.deletedAt[id]; ok {
		p["deletedDateTime"] = at.Format(time.RFC3339)
	}
	return p
}

func (s *Server) listDeletedUsers(c *reqCtx) int {
	if !c.authorize(permListDeletedUsers) {
		return http.StatusForbidden
	}
	filterable := userFilterable
	s.mu.Lock()
	refuse := s.lc.refuseFilter
	s.mu.Unlock()
	if refuse && c.r.URL.Query().Get("$filter") != "" {
		c.graphError(http.StatusBadRequest, "Request_UnsupportedQuery", "Unsupported or invalid query filter clause specified for property 'employeeId' of resource 'User'.")
		return http.StatusBadRequest
	}
	q, ok := c.parseQuery("User", filterable)
	if !ok {
		return http.StatusBadRequest
	}
	if q.expandManager != nil {
		c.graphError(http.StatusBadRequest, "Request_UnsupportedQuery", "Unsupported Query.")
		return http.StatusBadRequest
	}
	s.mu.Lock()
	var items []map[string]any
	for _, id := range s.userOrder {
		o := s.users[id]
		if !o.deleted {
			continue
		}
		p := s.deletedProps(o)
		if matches(p, q.filter) {
			items = append(items, project(p, q.sel, defaultUserSelect))
		}
	}
	s.mu.Unlock()
	return s.page(c, q, items, "directory/deletedItems/microsoft.graph.user")
}

// restoreDeleted implements POST /directory/deletedItems/{id}/restore.
func (s *Server) restoreDeleted(c *reqCtx, id string) int {
	if !c.authorize(permRestoreUser) {
		return http.StatusForbidden
	}
	var newUPN string
	var auto bool
	for k, v := range c.body {
		switch {
		case c.beta && k == "newUserPrincipalName":
			newUPN, _ = v.(string)
		case c.beta && k == "autoReconcileProxyConflict":
			auto, _ = v.(bool)
		default:
			c.graphError(http.StatusBadRequest, "BadRequest", fmt.Sprintf("The parameter '%s' in the request payload is not a valid parameter for the operation 'restore'.", k))
			return http.StatusBadRequest
		}
	}
	if newUPN != "" && !s.validUPN(newUPN) {
		c.graphError(http.StatusBadRequest, "Request_BadRequest", "Property userPrincipalName is invalid.", detail{Code: "InvalidValue", Target: "userPrincipalName"})
		return http.StatusBadRequest
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.users[id]
	if !ok || !o.deleted {
		c.graphError(http.StatusNotFound, "Request_ResourceNotFound", notFoundMsg(id))
		return http.StatusNotFound
	}
	upn, _ := o.props["userPrincipalName"].(string)
	if newUPN != "" {
		upn = newUPN
	}
	mail, _ := o.props["mail"].(string)
	dropMail := false
	for _, other := range s.userOrder {
		u := s.users[other]
		if other == id || u.deleted {
			continue
		}
		ou, _ := u.props["userPrincipalName"].(string)
		om, _ := u.props["mail"].(string)
		if strings.EqualFold(ou, upn) {
			c.graphError(http.StatusBadRequest, "Request_BadRequest", msgDuplicateUPN, detail{Code: "ObjectConflict", Target: "userPrincipalName"})
			return http.StatusBadRequest
		}
		if mail != "" && (strings.EqualFold(om, mail) || strings.EqualFold(ou, mail)) {
			if !auto {
				c.graphError(http.StatusBadRequest, "Request_BadRequest", msgDuplicateProxy, detail{Code: "ObjectConflict", Target: "proxyAddresses"})
				return http.StatusBadRequest
			}
			dropMail = true
		}
	}
	o.deleted = false
	// A restore is a write like a create: the restored user replicates
	// with the same delay, so reads, filters and references miss it for
	// ReplicationDelay (https://learn.microsoft.com/en-us/graph/aad-advanced-queries,
	// docs/graph-behaviour.md#replication-delay).
	o.created = time.Now()
	delete(s.lc.deletedAt, id)
	o.props["userPrincipalName"] = upn
	if dropMail {
		delete(o.props, "mail")
	}
	s.seq++
	o.seq = s.seq
	out := project(o.props, nil, keys(o.props))
	out["@odata.context"] = s.ts.URL + "/v1.0/$metadata#directoryObjects/$entity"
	out["@odata.type"] = "#microsoft.graph.user"
	writeJSON(c.w, http.StatusOK, out)
	return http.StatusOK
}
