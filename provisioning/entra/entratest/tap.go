package entratest

import (
	"crypto/rand"
	"math/big"
	"net/http"
	"time"
)

// Application permissions the simulator knows
// (https://learn.microsoft.com/en-us/graph/permissions-reference).
const (
	PermUserReadWriteAll           = "User.ReadWrite.All"
	PermGroupMemberReadWriteAll    = "GroupMember.ReadWrite.All"
	PermAuthMethodReadWriteAll     = "UserAuthenticationMethod.ReadWrite.All"
	PermAuthMethodReadAll          = "UserAuthenticationMethod.Read.All"
	PermAuthMethodTAPReadWriteAll  = "UserAuthMethod-TAP.ReadWrite.All"
	PermMailSend                   = "Mail.Send"
	PermUserLifeCycleInfoReadWrite = "User-LifeCycleInfo.ReadWrite.All"
)

// passwordMethodID is the fixed id Graph gives every user's password method
// (https://learn.microsoft.com/en-us/graph/api/resources/passwordauthenticationmethod).
const passwordMethodID = "28c10230-6103-485e-b985-444c60001490"

// OData types of authentication methods.
const (
	MethodPassword      = "#microsoft.graph.passwordAuthenticationMethod"
	MethodTAP           = "#microsoft.graph.temporaryAccessPassAuthenticationMethod"
	MethodAuthenticator = "#microsoft.graph.microsoftAuthenticatorAuthenticationMethod"
	MethodFIDO2         = "#microsoft.graph.fido2AuthenticationMethod"
	MethodPhone         = "#microsoft.graph.phoneAuthenticationMethod"
)

// TAPPolicy is the tenant's Temporary Access Pass authentication method
// policy (https://learn.microsoft.com/en-us/graph/api/resources/temporaryaccesspassauthenticationmethodconfiguration).
// The zero value of a field means Microsoft's default.
type TAPPolicy struct {
	// Disabled turns the method off for everyone (state "disabled").
	Disabled bool `json:"disabled"`
	// Lifetimes in minutes: defaults 60, 60 and 480.
	DefaultLifetime int `json:"defaultLifetimeInMinutes"`
	MinLifetime     int `json:"minimumLifetimeInMinutes"`
	MaxLifetime     int `json:"maximumLifetimeInMinutes"`
	// UsableOnce restricts every pass in the tenant to one use.
	UsableOnce bool `json:"isUsableOnce"`
	// Length of a pass (8 to 48; default 8).
	Length int `json:"defaultLength"`
	// RefuseWithMethods answers a create for a user who already has a
	// usable method other than the password with 400, as Graph does for
	// such users in some tenants; without it the pass is issued.
	RefuseWithMethods bool `json:"refuseWithMethods"`
}

func (p TAPPolicy) withDefaults() TAPPolicy {
	if p.DefaultLifetime == 0 {
		p.DefaultLifetime = 60
	}
	if p.MinLifetime == 0 {
		p.MinLifetime = 60
	}
	if p.MaxLifetime == 0 {
		p.MaxLifetime = 480
	}
	if p.Length == 0 {
		p.Length = 8
	}
	return p
}

// IssuedTAP is one pass the simulator issued, kept for tests: Pass is the
// value Graph returned once; Deleted is set when it was deleted or replaced.
type IssuedTAP struct {
	ID              string    `json:"id"`
	UserID          string    `json:"userId"`
	Pass            string    `json:"temporaryAccessPass"`
	Created         time.Time `json:"createdDateTime"`
	Start           time.Time `json:"startDateTime"`
	LifetimeMinutes int       `json:"lifetimeInMinutes"`
	UsableOnce      bool      `json:"isUsableOnce"`
	Deleted         bool      `json:"deleted"`
}

type authMethod struct {
	id, odataType string
	created       time.Time
}

type tapState struct {
	policy  TAPPolicy
	methods map[string][]authMethod // user id → registered methods (password and TAP apart)
	issued  []IssuedTAP
}

func (s *Server) initAuthMethods() {
	s.tap = tapState{methods: map[string][]authMethod{}}
}

// SetTAPPolicy replaces the tenant's Temporary Access Pass policy.
func (s *Server) SetTAPPolicy(p TAPPolicy) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tap.policy = p
}

// AddAuthMethod registers a method (an OData type such as MethodAuthenticator)
// for a user, as the user would in My Security Info.
func (s *Server) AddAuthMethod(userID, odataType string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tap.methods[userID] = append(s.tap.methods[userID], authMethod{id: newID(), odataType: odataType, created: time.Now()})
}

// IssuedTAPs returns every pass issued for the user (every user for ""),
// replaced and deleted ones included, in issue order.
func (s *Server) IssuedTAPs(userID string) []IssuedTAP {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []IssuedTAP
	for _, t := range s.tap.issued {
		if userID == "" || t.UserID == userID {
			out = append(out, t)
		}
	}
	return out
}

// dispatchDayOne serves /users/{id}/authentication/... and /users/{id}/sendMail.
func (s *Server) dispatchDayOne(c *reqCtx, segs []string) int {
	m, n := c.r.Method, len(segs)
	switch {
	case n == 3 && segs[2] == "sendMail" && m == http.MethodPost:
		return s.sendMail(c, segs[1])
	case n == 4 && segs[3] == "methods" && m == http.MethodGet:
		return s.listMethods(c, segs[1])
	case n == 4 && segs[3] == "temporaryAccessPassMethods" && m == http.MethodGet:
		return s.listTAPs(c, segs[1])
	case n == 4 && segs[3] == "temporaryAccessPassMethods" && m == http.MethodPost:
		return s.createTAP(c, segs[1])
	case n == 5 && segs[3] == "temporaryAccessPassMethods" && m == http.MethodDelete:
		return s.deleteTAP(c, segs[1], segs[4])
	}
	c.graphError(http.StatusBadRequest, "BadRequest", "Resource not found for the segment '"+segs[n-1]+"'.")
	return http.StatusBadRequest
}

// Authentication-method routes answer 403 accessDenied without a permission
// (https://learn.microsoft.com/en-us/graph/errors).
// methodsUser is the start of every authentication-method route: 403 without
// one of the permissions, 404 for an unknown user, else the user's id.
// s.mu is held.
func (s *Server) methodsUser(c *reqCtx, key string, anyOf ...string) (string, int, bool) {
	if !c.hasRole(anyOf...) {
		return "", c.denied(), false
	}
	o, st := s.userOr404(c, key)
	if o == nil {
		return "", st, false
	}
	id, _ := o.props["id"].(string)
	return id, 0, true
}

func (c *reqCtx) denied() int {
	c.graphError(http.StatusForbidden, "accessDenied", "Request Authorization failed")
	return http.StatusForbidden
}

func (s *Server) currentTAP(userID string) (IssuedTAP, bool) {
	for i := len(s.tap.issued) - 1; i >= 0; i-- {
		if t := s.tap.issued[i]; t.UserID == userID && !t.Deleted {
			return t, true
		}
	}
	return IssuedTAP{}, false
}

func tapJSON(t IssuedTAP, withPass bool) map[string]any {
	start := t.Start
	if start.IsZero() {
		start = t.Created
	}
	usable, reason := true, "EnabledByPolicy"
	now := time.Now()
	switch {
	case now.Before(start):
		usable, reason = false, "NotYetValid"
	case now.After(start.Add(time.Duration(t.LifetimeMinutes) * time.Minute)):
		usable, reason = false, "Expired"
	}
	out := map[string]any{
		"@odata.type": MethodTAP, "id": t.ID, "createdDateTime": t.Created.UTC().Format(time.RFC3339Nano),
		"startDateTime": start.UTC().Format(time.RFC3339Nano), "lifetimeInMinutes": t.LifetimeMinutes,
		"isUsableOnce": t.UsableOnce, "isUsable": usable, "methodUsabilityReason": reason, "temporaryAccessPass": nil,
	}
	if withPass {
		out["temporaryAccessPass"] = t.Pass
	}
	return out
}

func (s *Server) listMethods(c *reqCtx, key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, st, ok := s.methodsUser(c, key, PermAuthMethodReadAll, PermAuthMethodReadWriteAll)
	if !ok {
		return st
	}
	items := []map[string]any{{"@odata.type": MethodPassword, "id": passwordMethodID}}
	for _, m := range s.tap.methods[id] {
		items = append(items, map[string]any{"@odata.type": m.odataType, "id": m.id, "createdDateTime": m.created.UTC().Format(time.RFC3339)})
	}
	if t, ok := s.currentTAP(id); ok {
		items = append(items, tapJSON(t, false))
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"@odata.context": s.GraphURL() + "/$metadata#users('" + id + "')/authentication/methods", "value": items})
	return http.StatusOK
}

func (s *Server) listTAPs(c *reqCtx, key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, st, ok := s.methodsUser(c, key, PermAuthMethodReadAll, PermAuthMethodReadWriteAll, PermAuthMethodTAPReadWriteAll)
	if !ok {
		return st
	}
	items := []map[string]any{}
	if t, ok := s.currentTAP(id); ok {
		items = append(items, tapJSON(t, false))
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"value": items})
	return http.StatusOK
}

// createTAP follows the create page
// (https://learn.microsoft.com/en-us/graph/api/authentication-post-temporaryaccesspassmethods):
// lifetimeInMinutes 10..43200 and inside the policy's range, isUsableOnce
// as the policy demands, and a new pass replaces the user's previous one.
func (s *Server) createTAP(c *reqCtx, key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, st, ok := s.methodsUser(c, key, PermAuthMethodReadWriteAll, PermAuthMethodTAPReadWriteAll)
	if !ok {
		return st
	}
	pol := s.tap.policy.withDefaults()
	bad := func(msg string) int {
		c.graphError(http.StatusBadRequest, "badRequest", msg)
		return http.StatusBadRequest
	}
	if pol.Disabled {
		return bad("Temporary Access Pass authentication method is not enabled for this user by the authentication methods policy.")
	}
	lifetime := pol.DefaultLifetime
	if v, ok := c.body["lifetimeInMinutes"]; ok && v != nil {
		f, ok := v.(float64)
		if !ok || f != float64(int(f)) {
			return bad("Invalid value specified for property 'lifetimeInMinutes'.")
		}
		lifetime = int(f)
	}
	if lifetime < 10 || lifetime > 43200 {
		return bad("lifetimeInMinutes must be between 10 and 43200.")
	}
	if lifetime < pol.MinLifetime || lifetime > pol.MaxLifetime {
		return bad("The lifetime is outside the range the Temporary Access Pass policy allows.")
	}
	once := false
	if v, ok := c.body["isUsableOnce"].(bool); ok {
		once = v
	}
	if pol.UsableOnce && !once {
		return bad("The Temporary Access Pass policy allows one-time passes only: set isUsableOnce to true.")
	}
	var start time.Time
	if v, ok := c.body["startDateTime"].(string); ok && v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return bad("Invalid value specified for property 'startDateTime'.")
		}
		start = t
	}
	if pol.RefuseWithMethods && len(s.tap.methods[id]) > 0 {
		return bad("The user already has a usable authentication method registered; a Temporary Access Pass cannot be created for this user.")
	}
	for i := range s.tap.issued {
		if s.tap.issued[i].UserID == id {
			s.tap.issued[i].Deleted = true // replaced: a user holds one pass
		}
	}
	t := IssuedTAP{ID: newID(), UserID: id, Pass: newPass(pol.Length), Created: time.Now().UTC(), Start: start,
		LifetimeMinutes: lifetime, UsableOnce: once}
	s.tap.issued = append(s.tap.issued, t)
	out := tapJSON(t, true)
	out["@odata.context"] = s.GraphURL() + "/$metadata#users('" + id + "')/authentication/temporaryAccessPassMethods/$entity"
	writeJSON(c.w, http.StatusCreated, out)
	return http.StatusCreated
}

func (s *Server) deleteTAP(c *reqCtx, key, methodID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, st, ok := s.methodsUser(c, key, PermAuthMethodReadWriteAll, PermAuthMethodTAPReadWriteAll)
	if !ok {
		return st
	}
	for i := range s.tap.issued {
		if t := &s.tap.issued[i]; t.UserID == id && t.ID == methodID && !t.Deleted {
			t.Deleted = true
			c.w.WriteHeader(http.StatusNoContent)
			return http.StatusNoContent
		}
	}
	c.graphError(http.StatusNotFound, "itemNotFound", notFoundMsg(methodID))
	return http.StatusNotFound
}

// passAlphabet: letters, digits and the symbols Entra's passes use.
const passAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789!#%&*+-=?@"

func newPass(n int) string {
	b := make([]byte, n)
	for i := range b {
		k, err := rand.Int(rand.Reader, big.NewInt(int64(len(passAlphabet))))
		if err != nil {
			panic(err)
		}
		b[i] = passAlphabet[k.Int64()]
	}
	return string(b)
}
