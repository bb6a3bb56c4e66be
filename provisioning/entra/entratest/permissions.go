package entratest

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Application permissions. An app-only access token of the Microsoft
// identity platform is a JWT whose roles claim lists the application
// permissions (app roles) granted to the app in the tenant
// (https://learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference).
// The simulator issues such tokens with the permissions of Options.Permissions
// (or SetPermissions); the routes of returners and licences answer 403
// Authorization_RequestDenied without one of the permissions Microsoft
// documents for them.

// DefaultPermissions are granted when Options.Permissions is nil: every
// permission personio-entra's features use.
var DefaultPermissions = []string{
	"User.ReadWrite.All", "GroupMember.ReadWrite.All", "Group.Read.All", "User.RevokeSessions.All",
	"User-LifeCycleInfo.ReadWrite.All", "LicenseAssignment.ReadWrite.All", "LicenseAssignment.Read.All",
	PermAuthMethodReadWriteAll, PermMailSend,
}

// Documented permissions per operation, least privileged first.
var (
	// GET /directory/deletedItems/microsoft.graph.user
	// (https://learn.microsoft.com/en-us/graph/api/directory-deleteditems-list).
	permListDeletedUsers = []string{"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
	// POST /directory/deletedItems/{id}/restore of a user
	// (https://learn.microsoft.com/en-us/graph/api/directory-deleteditems-restore).
	permRestoreUser = []string{"User.DeleteRestore.All", "User.ReadWrite.All", "Directory.ReadWrite.All"}
	// GET /subscribedSkus (https://learn.microsoft.com/en-us/graph/api/subscribedsku-list).
	permSubscribedSkus = []string{"LicenseAssignment.Read.All", "Organization.Read.All", "Organization.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
	// POST /users/{id}/assignLicense (https://learn.microsoft.com/en-us/graph/api/user-assignlicense).
	permAssignLicense = []string{"LicenseAssignment.ReadWrite.All", "User.ReadWrite.All", "Directory.ReadWrite.All"}
)

// SetPermissions replaces the permissions granted to the app; tokens
// issued from now on carry them (tokens issued before keep theirs, as a
// cached token does until it expires). nil grants DefaultPermissions.
func (s *Server) SetPermissions(perms []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lc.permissions = slices.Clone(perms)
	s.lc.permissionsSet = true
}

// granted returns the permissions new tokens carry; s.mu is held.
func (s *Server) granted() []string {
	perms := s.opts.Permissions
	if s.lc.permissionsSet {
		perms = s.lc.permissions
	}
	if perms == nil {
		perms = slices.Clone(DefaultPermissions)
		if s.opts.RoleManagement {
			perms = append(perms, "RoleManagement.ReadWrite.Directory")
		}
	}
	return perms
}

// accessToken builds the JWT an app-only token request gets: the claims
// Graph and the app read (aud, iss, tid, appid, roles, iat, nbf, exp,
// idtyp) and a random signature (clients never validate a Graph token).
func (s *Server) accessToken(roles []string, now time.Time) string {
	claims, _ := json.Marshal(map[string]any{
		"aud": "https://graph.microsoft.com", "iss": "https://sts.windows.net/" + s.opts.TenantID + "/",
		"tid": s.opts.TenantID, "appid": s.opts.ClientID, "idtyp": "app", "roles": roles,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(tokenLifetime).Unix(),
	})
	return issueToken(claims) // token.go
}

// tokenRoles reads the roles claim of a token this server issued.
func tokenRoles(tok string) []string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil
	}
	var claims struct {
		Roles []string `json:"roles"`
	}
	if decodeSegment(parts[1], &claims) != nil {
		return nil
	}
	return claims.Roles
}

// hasRole reports whether the request's token carries one of the
// permissions; the caller writes the answer Graph gives for that route.
func (c *reqCtx) hasRole(anyOf ...string) bool {
	for _, r := range tokenRoles(c.token) {
		if slices.ContainsFunc(anyOf, func(p string) bool { return strings.EqualFold(p, r) }) {
			return true
		}
	}
	return false
}

// authorize answers 403 Authorization_RequestDenied, as Graph does, unless
// the request's token carries one of the permissions.
func (c *reqCtx) authorize(anyOf []string) bool {
	for _, r := range tokenRoles(c.token) {
		if slices.ContainsFunc(anyOf, func(p string) bool { return strings.EqualFold(p, r) }) {
			return true
		}
	}
	c.graphError(http.StatusForbidden, "Authorization_RequestDenied", msgInsufficient)
	return false
}
