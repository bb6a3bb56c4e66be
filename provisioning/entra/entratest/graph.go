package entratest

import (
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Graph error messages as the service sends them
// (docs/graph-behaviour.md#group-membership, docs/graph-behaviour.md#errors-and-conflicts).
const (
	msgAlreadyMember = "One or more added object references already exist for the following modified properties: 'members'."
	msgMailEnabled   = "Cannot Update a mail-enabled security groups and or distribution list."
	msgOnPremises    = "Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration."
	// The exact body for dynamic groups is not documented
	// (docs/graph-behaviour.md#groups-graph-cannot-write);
	// this message follows the SDK's description of the restriction.
	msgDynamic        = "You can't add or remove members of groups with dynamic memberships."
	msgInsufficient   = "Insufficient privileges to complete the operation."
	msgDuplicateUPN   = "Another object with the same value for property userPrincipalName already exists."
	msgDuplicateProxy = "Another object with the same value for property proxyAddresses already exists."
	msgPasswordPolicy = "The specified password does not comply with password complexity requirements. Please provide a different password."
)

func notFoundMsg(id string) string {
	return fmt.Sprintf("Resource '%s' does not exist or one of its queried reference-property objects are not present.", id)
}

type detail struct {
	Code   string `json:"code"`
	Target string `json:"target"`
}

type reqCtx struct {
	w         http.ResponseWriter
	r         *http.Request
	requestID string
	body      map[string]any
	rawBody   []byte
	beta      bool   // the request is for /beta (deleted.go)
	token     string // the bearer token (permissions.go)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// graphError writes Graph's error envelope
// (https://learn.microsoft.com/en-us/graph/errors). error.message is always
// present: the SDK dereferences it (docs/graph-behaviour.md#sdk-errors).
func (c *reqCtx) graphError(status int, code, message string, details ...detail) {
	inner := map[string]any{
		"date":              time.Now().UTC().Format("2006-01-02T15:04:05"),
		"request-id":        c.requestID,
		"client-request-id": c.r.Header.Get("client-request-id"),
	}
	e := map[string]any{"code": code, "message": message, "innerError": inner}
	if len(details) > 0 {
		e["details"] = details
	}
	writeJSON(c.w, status, map[string]any{"error": e})
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if strings.HasPrefix(p, "/v1.0/") || p == "/v1.0" || strings.HasPrefix(p, "/beta/") {
		s.serveGraph(w, r)
		return
	}
	segs := strings.Split(strings.Trim(p, "/"), "/")
	switch {
	case len(segs) == 4 && segs[1] == "oauth2" && segs[2] == "v2.0" && segs[3] == "token":
		s.serveToken(w, r, segs[0])
	case len(segs) == 4 && segs[1] == "v2.0" && segs[2] == ".well-known" && segs[3] == "openid-configuration":
		s.serveDiscovery(w, segs[0])
	default:
		http.NotFound(w, r)
	}
}

// route classifies a Graph path into a template used for counting.
func route(method string, segs []string) (string, bool) {
	t := make([]string, len(segs))
	for i, s := range segs {
		t[i] = s
		if i > 0 && (segs[i-1] == "users" || segs[i-1] == "groups" || (segs[i-1] == "deletedItems" && !isUserCast(s)) || (segs[i-1] == "members" && s != "$ref" && !isUserCast(s))) && !isDelta(s) {
			t[i] = "{id}"
		}
	}
	write := method != http.MethodGet && method != http.MethodHead
	return method + " /" + strings.Join(t, "/"), write
}

func isDelta(s string) bool {
	return s == "delta" || s == "delta()" || s == "microsoft.graph.delta" || s == "microsoft.graph.delta()"
}
func isUserCast(s string) bool  { return s == "graph.user" || s == "microsoft.graph.user" }
func isGroupCast(s string) bool { return s == "graph.group" || s == "microsoft.graph.group" }

func (s *Server) serveGraph(w http.ResponseWriter, r *http.Request) {
	c := &reqCtx{w: w, r: r, requestID: newID()}
	w.Header().Set("request-id", c.requestID)
	if id := r.Header.Get("client-request-id"); id != "" {
		w.Header().Set("client-request-id", id)
	}
	if s.opts.Latency > 0 {
		t := time.NewTimer(s.opts.Latency)
		select {
		case <-r.Context().Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	path, beta := strings.CutPrefix(r.URL.Path, "/beta")
	c.beta = beta
	segs := strings.Split(strings.Trim(strings.TrimPrefix(path, "/v1.0"), "/"), "/")
	name, write := route(r.Method, segs)

	s.mu.Lock()
	s.counters.Total++
	s.counters.ByRoute[name]++
	if write {
		s.counters.Writes++
	} else {
		s.counters.Reads++
	}
	s.mu.Unlock()

	auth := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || tok == "" {
		s.countError(http.StatusUnauthorized)
		c.graphError(http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token is empty.")
		return
	}
	if !s.validToken(tok) {
		s.countError(http.StatusUnauthorized)
		c.graphError(http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
		return
	}
	c.token = tok
	if s.failRequest(name) {
		s.countError(http.StatusInternalServerError)
		c.graphError(http.StatusInternalServerError, "UnknownError", "An internal server error occurred (injected).")
		return
	}
	if retry, status := s.admit(write); status != 0 {
		s.countError(status)
		w.Header().Set("Retry-After", formatRetryAfter(retry))
		if status == http.StatusTooManyRequests {
			w.Header().Set("x-ms-throttle-scope", "Tenant_Application/Write/"+s.opts.TenantID+"/"+s.opts.ClientID)
			w.Header().Set("x-ms-throttle-information", "WriteLimitExceeded")
			c.graphError(status, "TooManyRequests", "Too many requests.")
		} else {
			c.graphError(status, "serviceNotAvailable", "The service is temporarily unavailable. Please retry later.")
		}
		return
	}
	if r.Body != nil && r.Method != http.MethodGet {
		var rd io.Reader = r.Body
		if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				s.countError(400)
				c.graphError(http.StatusBadRequest, "BadRequest", "Request body is not valid gzip.")
				return
			}
			defer zr.Close()
			rd = zr
		}
		raw, err := io.ReadAll(io.LimitReader(rd, 4<<20))
		if err != nil {
			s.countError(400)
			c.graphError(http.StatusBadRequest, "BadRequest", "Unable to read the request body.")
			return
		}
		c.rawBody = raw
		if len(raw) > 0 {
			if err := json.Unmarshal(raw, &c.body); err != nil {
				s.countError(400)
				c.graphError(http.StatusBadRequest, "BadRequest", "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.")
				return
			}
		}
	}
	status := s.dispatch(c, segs)
	if status >= 400 {
		s.countError(status)
	}
	s.log.Debug("graph request", "route", name, "status", status, "request_id", c.requestID)
}

func (s *Server) countError(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if status == http.StatusTooManyRequests {
		s.counters.Throttled++
	} else {
		s.counters.Errors++
	}
}

// failRequest consumes one injected failure of the route, if any is left.
func (s *Server) failRequest(route string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.faults.FailRequests[route] <= 0 {
		return false
	}
	s.faults.FailRequests[route]--
	return true
}

// admit applies fault injection and the write budget (3,000 writes per
// 150 s per app and tenant,
// https://learn.microsoft.com/en-us/graph/throttling-limits). It returns the Retry-After and
// the status to answer with, or status 0 to go on.
func (s *Server) admit(write bool) (time.Duration, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ra := s.faults.RetryAfter
	if ra <= 0 {
		ra = time.Second
	}
	if s.faults.ThrottleRate > 0 && s.rng.Float64() < s.faults.ThrottleRate {
		return ra, http.StatusTooManyRequests
	}
	if s.faults.ServerErrorRate > 0 && s.rng.Float64() < s.faults.ServerErrorRate {
		return ra, http.StatusServiceUnavailable
	}
	if !write {
		return 0, 0
	}
	now := time.Now()
	cut := now.Add(-s.opts.WriteWindow)
	i := 0
	for i < len(s.writes) && !s.writes[i].After(cut) {
		i++
	}
	s.writes = s.writes[i:]
	if len(s.writes) >= s.opts.WriteBudget {
		wait := s.writes[0].Add(s.opts.WriteWindow).Sub(now)
		return max(wait, time.Millisecond), http.StatusTooManyRequests
	}
	s.writes = append(s.writes, now)
	return 0, 0
}

// formatRetryAfter renders whole seconds (rounded up) as Graph does; waits
// under a second (only from test settings) are rendered as decimal seconds.
func formatRetryAfter(d time.Duration) string {
	if d < time.Second {
		return strconv.FormatFloat(d.Seconds(), 'f', 3, 64)
	}
	return strconv.Itoa(int(math.Ceil(d.Seconds())))
}

func (s *Server) dispatch(c *reqCtx, segs []string) int {
	m := c.r.Method
	n := len(segs)
	if c.beta && !(n == 4 && segs[0] == "directory" && segs[1] == "deletedItems" && segs[3] == "restore" && m == http.MethodPost) {
		// The simulator serves only the beta restore action (deleted.go).
		c.graphError(http.StatusBadRequest, "BadRequest", "This simulator serves only POST /beta/directory/deletedItems/{id}/restore on the beta endpoint.")
		return http.StatusBadRequest
	}
	switch {
	case n == 1 && segs[0] == "subscribedSkus" && m == http.MethodGet:
		return s.listSubscribedSkus(c)
	case n == 3 && segs[0] == "directory" && segs[1] == "deletedItems" && isUserCast(segs[2]) && m == http.MethodGet:
		return s.listDeletedUsers(c)
	case n >= 3 && segs[0] == "users" && (segs[2] == "authentication" || segs[2] == "sendMail"):
		return s.dispatchDayOne(c, segs)
	case n >= 1 && segs[0] == "users":
		switch {
		case n == 1 && m == http.MethodGet:
			return s.listUsers(c)
		case n == 1 && m == http.MethodPost:
			return s.createUser(c)
		case n == 2 && isDelta(segs[1]) && m == http.MethodGet:
			return s.deltaUsers(c)
		case n == 2 && m == http.MethodGet:
			return s.getUser(c, segs[1])
		case n == 2 && m == http.MethodPatch:
			return s.patchUser(c, segs[1])
		case n == 2 && m == http.MethodDelete:
			return s.deleteUser(c, segs[1])
		case n == 3 && segs[2] == "revokeSignInSessions" && m == http.MethodPost:
			return s.revokeSessions(c, segs[1])
		case n == 3 && segs[2] == "assignLicense" && m == http.MethodPost:
			return s.assignLicense(c, segs[1])
		case (n == 3 || (n == 4 && isGroupCast(segs[3]))) && segs[2] == "memberOf" && m == http.MethodGet:
			return s.memberOf(c, segs[1])
		case n == 3 && segs[2] == "manager" && m == http.MethodGet:
			return s.getManager(c, segs[1])
		case n == 4 && segs[2] == "manager" && segs[3] == "$ref" && m == http.MethodPut:
			return s.putManager(c, segs[1])
		case n == 4 && segs[2] == "manager" && segs[3] == "$ref" && m == http.MethodDelete:
			return s.deleteManager(c, segs[1])
		}
	case n == 4 && segs[0] == "directory" && segs[1] == "deletedItems" && segs[3] == "restore" && m == http.MethodPost:
		return s.restoreDeleted(c, segs[2])
	case n >= 1 && segs[0] == "groups":
		switch {
		case n == 1 && m == http.MethodGet:
			return s.listGroups(c)
		case n == 2 && isDelta(segs[1]) && m == http.MethodGet:
			return s.deltaGroups(c)
		case n == 2 && m == http.MethodGet:
			return s.getGroup(c, segs[1])
		case n == 2 && m == http.MethodPatch:
			return s.patchGroup(c, segs[1])
		case n == 3 && segs[2] == "members" && m == http.MethodGet:
			return s.listMembers(c, segs[1], false)
		case n == 4 && segs[2] == "members" && isUserCast(segs[3]) && m == http.MethodGet:
			return s.listMembers(c, segs[1], true)
		case n == 4 && segs[2] == "members" && segs[3] == "$ref" && m == http.MethodPost:
			return s.addMemberRef(c, segs[1])
		case n == 5 && segs[2] == "members" && segs[4] == "$ref" && m == http.MethodDelete:
			return s.removeMember(c, segs[1], segs[3])
		}
	}
	c.graphError(http.StatusBadRequest, "BadRequest", fmt.Sprintf("Resource not found for the segment '%s'.", segs[len(segs)-1]))
	return http.StatusBadRequest
}

// ---- query options ----

type query struct {
	filter   []clause
	sel      []string
	top      int
	count    bool
	skip     int
	advanced bool
	// expandManager holds the $select inside $expand=manager(...); nil when not expanded.
	expandManager []string
}

type clause struct {
	prop, op string // op: eq, ne, startswith
	value    any    // string, bool or nil
}

var userFilterable = map[string]bool{"employeeId": true, "userPrincipalName": true, "mail": true, "displayName": true,
	"accountEnabled": true, "department": true, "jobTitle": true, "id": true, "givenName": true, "surname": true, "mailNickname": true, "userType": true}
var groupFilterable = map[string]bool{"displayName": true, "mailNickname": true, "id": true, "mail": true, "securityEnabled": true, "mailEnabled": true}

func (c *reqCtx) parseQuery(resource string, filterable map[string]bool) (query, bool) {
	q := query{top: DefaultPageSize}
	v := c.r.URL.Query()
	q.advanced = strings.EqualFold(c.r.Header.Get("ConsistencyLevel"), "eventual")
	if cnt := v.Get("$count"); cnt != "" {
		q.count = cnt == "true"
		if q.count && !q.advanced {
			// Without ConsistencyLevel the service ignores or rejects $count
			// (docs/graph-behaviour.md#query-modes).
			c.graphError(http.StatusBadRequest, "Request_BadRequest", "$count is not currently supported.")
			return q, false
		}
	}
	if t := v.Get("$top"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 1 || n > MaxPageSize {
			c.graphError(http.StatusBadRequest, "Request_BadRequest", fmt.Sprintf("Invalid page size specified: '%s'. Must be between 1 and 999 inclusive.", t))
			return q, false
		}
		q.top = n
	}
	if sel := v.Get("$select"); sel != "" {
		for _, p := range strings.Split(sel, ",") {
			if p = strings.TrimSpace(p); p != "" {
				q.sel = append(q.sel, p)
			}
		}
	}
	if st := v.Get("$skiptoken"); st != "" {
		b, err := base64.RawURLEncoding.DecodeString(st)
		n, err2 := strconv.Atoi(string(b))
		if err != nil || err2 != nil || n < 0 {
			c.graphError(http.StatusBadRequest, "Directory_ExpiredPageToken", "The specified page token value has expired and can no longer be included in your request.")
			return q, false
		}
		q.skip = n
	}
	if ex := v.Get("$expand"); ex != "" {
		if q.advanced {
			// $expand cannot be combined with advanced queries
			// (docs/graph-behaviour.md#query-modes).
			c.graphError(http.StatusBadRequest, "Request_UnsupportedQuery", "Unsupported Query.")
			return q, false
		}
		rest, ok := strings.CutPrefix(ex, "manager")
		if !ok {
			c.graphError(http.StatusBadRequest, "BadRequest", fmt.Sprintf("Could not find a property named '%s' on type 'microsoft.graph.user'.", ex))
			return q, false
		}
		q.expandManager = []string{"id"}
		if inner, ok := strings.CutPrefix(rest, "($select="); ok {
			q.expandManager = strings.Split(strings.TrimSuffix(inner, ")"), ",")
		}
		// $expand on directory objects returns at most 100 objects per page.
		q.top = min(q.top, 100)
	}
	if f := v.Get("$filter"); f != "" {
		cl, err := parseFilter(f)
		if err != nil {
			c.graphError(http.StatusBadRequest, "BadRequest", "Invalid filter clause: "+err.Error())
			return q, false
		}
		for _, x := range cl {
			if !filterable[x.prop] || (x.op == "ne" && !q.advanced) || (x.value == nil && !q.advanced) {
				c.graphError(http.StatusBadRequest, "Request_UnsupportedQuery",
					fmt.Sprintf("Unsupported or invalid query filter clause specified for property '%s' of resource '%s'.", x.prop, resource))
				return q, false
			}
		}
		q.filter = cl
	}
	return q, true
}

// parseFilter understands clauses joined by "and": prop eq 'v', prop eq
// true|false|null, prop ne null, startswith(prop,'v'). Quotes inside values
// are doubled, as OData requires.
func parseFilter(f string) ([]clause, error) {
	var out []clause
	rest := strings.TrimSpace(f)
	for rest != "" {
		var cl clause
		if strings.HasPrefix(strings.ToLower(rest), "startswith(") {
			inner := rest[len("startswith("):]
			comma := strings.Index(inner, ",")
			if comma < 0 {
				return nil, fmt.Errorf("startswith needs two arguments")
			}
			cl.prop, cl.op = strings.TrimSpace(inner[:comma]), "startswith"
			val, after, err := readString(strings.TrimSpace(inner[comma+1:]))
			if err != nil {
				return nil, err
			}
			after = strings.TrimSpace(after)
			if !strings.HasPrefix(after, ")") {
				return nil, fmt.Errorf("missing ')'")
			}
			cl.value, rest = val, strings.TrimSpace(after[1:])
		} else {
			fields := strings.SplitN(rest, " ", 3)
			if len(fields) < 3 {
				return nil, fmt.Errorf("expected 'property op value'")
			}
			cl.prop, cl.op = fields[0], strings.ToLower(fields[1])
			if cl.op != "eq" && cl.op != "ne" {
				return nil, fmt.Errorf("operator %q is not supported", fields[1])
			}
			v := strings.TrimSpace(fields[2])
			switch {
			case strings.HasPrefix(v, "'"):
				val, after, err := readString(v)
				if err != nil {
					return nil, err
				}
				cl.value, rest = val, strings.TrimSpace(after)
			default:
				word, after, _ := strings.Cut(v, " ")
				switch word {
				case "true":
					cl.value = true
				case "false":
					cl.value = false
				case "null":
					cl.value = nil
				default:
					return nil, fmt.Errorf("bad literal %q", word)
				}
				rest = strings.TrimSpace(after)
			}
		}
		out = append(out, cl)
		if rest == "" {
			break
		}
		lw := strings.ToLower(rest)
		if !strings.HasPrefix(lw, "and ") {
			return nil, fmt.Errorf("only 'and' may join clauses")
		}
		rest = strings.TrimSpace(rest[4:])
	}
	return out, nil
}

func readString(s string) (string, string, error) {
	if !strings.HasPrefix(s, "'") {
		return "", "", fmt.Errorf("expected a quoted string")
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] == '\'' {
			if i+1 < len(s) && s[i+1] == '\'' {
				b.WriteByte('\'')
				i++
				continue
			}
			return b.String(), s[i+1:], nil
		}
		b.WriteByte(s[i])
	}
	return "", "", fmt.Errorf("unterminated string")
}

func matches(props map[string]any, cl []clause) bool {
	for _, c := range cl {
		v, has := props[c.prop]
		switch c.op {
		case "startswith":
			sv, _ := v.(string)
			if !strings.HasPrefix(lower(sv), lower(c.value.(string))) {
				return false
			}
		case "eq", "ne":
			var eq bool
			switch want := c.value.(type) {
			case nil:
				eq = !has || v == nil
			case bool:
				b, _ := v.(bool)
				eq = b == want
			case string:
				sv, _ := v.(string)
				eq = has && strings.EqualFold(sv, want) // eq is case-insensitive (assumed, docs/graph-behaviour.md#query-modes)
			}
			if eq != (c.op == "eq") {
				return false
			}
		}
	}
	return true
}

var defaultUserSelect = []string{"businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone",
	"officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id"}

func project(props map[string]any, sel []string, def []string) map[string]any {
	if len(sel) == 0 {
		sel = def
	}
	out := map[string]any{"id": props["id"]}
	for _, p := range sel {
		if p == "manager" {
			continue
		}
		// Values are stored in JSON-decoded form and replaced, never
		// mutated in place, so sharing them with the response is safe.
		if v, ok := props[p]; ok {
			out[p] = v
		} else {
			out[p] = nil
		}
	}
	return out
}

// page writes a collection page with an absolute @odata.nextLink that
// points back at this server (docs/graph-behaviour.md#paging).
func (s *Server) page(c *reqCtx, q query, items []map[string]any, context string) int {
	total := len(items)
	end := min(q.skip+q.top, total)
	start := min(q.skip, total)
	resp := map[string]any{
		"@odata.context": s.ts.URL + "/v1.0/$metadata#" + context,
		"value":          items[start:end],
	}
	if q.count {
		resp["@odata.count"] = total
	}
	if end < total {
		resp["@odata.nextLink"] = s.linkWith(c.r, "$skiptoken", base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(end))))
	}
	writeJSON(c.w, http.StatusOK, resp)
	return http.StatusOK
}

func (s *Server) linkWith(r *http.Request, key, val string) string {
	v := r.URL.Query()
	v.Del("$skiptoken")
	v.Del("$deltatoken")
	v.Set(key, val)
	return s.ts.URL + r.URL.Path + "?" + strings.ReplaceAll(v.Encode(), "%24", "$")
}

// ---- users ----

// visibleUser finds an active, replicated user by id or UPN. Caller holds s.mu.
// userOr404 returns the visible user, or writes Graph's 404 and returns
// nil with the status to record.
func (s *Server) userOr404(c *reqCtx, key string) (*userObj, int) {
	o, vis := s.visibleUser(key)
	if !vis {
		c.graphError(http.StatusNotFound, "Request_ResourceNotFound", notFoundMsg(key))
		return nil, http.StatusNotFound
	}
	return o, 0
}

func (s *Server) visibleUser(key string) (*userObj, bool) {
	key, _ = url.PathUnescape(key)
	if o, ok := s.users[key]; ok {
		return o, !o.deleted && s.replicated(o.created)
	}
	for _, id := range s.userOrder {
		o := s.users[id]
		if upn, _ := o.props["userPrincipalName"].(string); strings.EqualFold(upn, key) {
			return o, !o.deleted && s.replicated(o.created)
		}
	}
	return nil, false
}

func (s *Server) replicated(created time.Time) bool {
	return created.IsZero() || s.opts.ReplicationDelay <= 0 || time.Since(created) >= s.opts.ReplicationDelay
}

// withManager adds the expanded manager to a projected user. Caller holds s.mu.
func (s *Server) withManager(it map[string]any, o *userObj, q query) map[string]any {
	if q.expandManager == nil {
		return it
	}
	if m, ok := s.visibleUser(o.managerID); ok && o.managerID != "" {
		mp := project(m.props, q.expandManager, nil)
		mp["@odata.type"] = "#microsoft.graph.user"
		it["manager"] = mp
	}
	return it
}

func (s *Server) listUsers(c *reqCtx) int {
	q, ok := c.parseQuery("User", userFilterable)
	if !ok {
		return http.StatusBadRequest
	}
	s.mu.Lock()
	var hits []*userObj
	for _, id := range s.userOrder {
		o := s.users[id]
		if o.deleted || !s.replicated(o.created) || !matches(o.props, q.filter) {
			continue
		}
		hits = append(hits, o)
	}
	items := make([]map[string]any, len(hits))
	for i := min(q.skip, len(hits)); i < min(q.skip+q.top, len(hits)); i++ {
		items[i] = s.withManager(project(hits[i].props, q.sel, defaultUserSelect), hits[i], q)
	}
	s.mu.Unlock()
	return s.page(c, q, items, "users")
}

// deltaUsers implements GET /users/delta: pages of DeltaPageSize whatever
// $top says, manager@delta when "manager" is selected, and a deltaLink whose
// token returns later changes only.
func (s *Server) deltaUsers(c *reqCtx) int {
	v := c.r.URL.Query()
	q := query{top: DeltaPageSize}
	if sel := v.Get("$select"); sel != "" {
		q.sel = strings.Split(sel, ",")
	}
	since, latest, st := s.deltaToken(c, v.Get("$deltatoken"))
	if st != 0 {
		return st
	}
	if latest {
		return s.latestDeltaLink(c, "users")
	}
	var start uint64 // the change sequence the round started at (delta.go)
	if st := v.Get("$skiptoken"); st != "" {
		n, seq, ok := parseSkipToken(st)
		if !ok {
			c.graphError(http.StatusBadRequest, "Directory_ExpiredPageToken", "The specified page token value has expired and can no longer be included in your request.")
			return http.StatusBadRequest
		}
		q.skip, start = n, seq
	}
	withManager := slices.Contains(q.sel, "manager")
	s.mu.Lock()
	if start == 0 {
		start = s.seq
	}
	var hits []*userObj
	for _, id := range s.userOrder {
		o := s.users[id]
		if o.seq <= since || !s.replicated(o.created) || (o.deleted && since == 0 && o.seq <= start) {
			continue
		}
		hits = append(hits, o)
	}
	end := min(q.skip+q.top, len(hits))
	first := min(q.skip, len(hits))
	items := make([]map[string]any, len(hits))
	for i := first; i < end; i++ {
		o := hits[i]
		if o.deleted {
			items[i] = map[string]any{"id": o.props["id"], "@removed": map[string]any{"reason": "changed"}}
			continue
		}
		it := project(o.props, q.sel, defaultUserSelect)
		if withManager && o.managerID != "" {
			it["manager@delta"] = []map[string]any{{"@odata.type": "#microsoft.graph.user", "id": o.managerID}}
		}
		items[i] = it
	}
	s.mu.Unlock()
	resp := map[string]any{"@odata.context": s.ts.URL + "/v1.0/$metadata#users", "value": items[first:end]}
	s.deltaPageLink(c.r, resp, end < len(items), end, start, since)
	writeJSON(c.w, http.StatusOK, resp)
	return http.StatusOK
}

func (s *Server) getUser(c *reqCtx, key string) int {
	q, ok := c.parseQuery("User", userFilterable)
	if !ok {
		return http.StatusBadRequest
	}
	s.mu.Lock()
	o, vis := s.visibleUser(key)
	var out map[string]any
	if vis {
		out = s.withManager(project(o.props, q.sel, defaultUserSelect), o, q)
	}
	s.mu.Unlock()
	if !vis {
		c.graphError(http.StatusNotFound, "Request_ResourceNotFound", notFoundMsg(key))
		return http.StatusNotFound
	}
	out["@odata.context"] = s.ts.URL + "/v1.0/$metadata#users/$entity"
	writeJSON(c.w, http.StatusOK, out)
	return http.StatusOK
}

var upnChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'.-_!#^~"

// validUPN applies Entra's user principal name rules
// (docs/graph-behaviour.md#user-principal-names-and-mail-nicknames).
func (s *Server) validUPN(upn string) bool {
	local, domain, ok := strings.Cut(upn, "@")
	if !ok || strings.Contains(domain, "@") || local == "" || domain == "" || len(upn) > 113 || len(local) > 64 || len(domain) > 48 {
		return false
	}
	if strings.HasSuffix(local, ".") || strings.HasPrefix(local, ".") {
		return false
	}
	for _, r := range local {
		if !strings.ContainsRune(upnChars, r) {
			return false
		}
	}
	return s.opts.Domain == "" || strings.EqualFold(domain, s.opts.Domain)
}

// strongPassword applies Entra's cloud password rules
// (https://learn.microsoft.com/en-us/entra/identity/authentication/concept-sspr-policy).
func strongPassword(p string) bool {
	if len(p) < 8 || len(p) > 256 {
		return false
	}
	var lo, up, dig, sym bool
	for _, r := range p {
		switch {
		case r > 127:
			return false
		case r >= 'a' && r <= 'z':
			lo = true
		case r >= 'A' && r <= 'Z':
			up = true
		case r >= '0' && r <= '9':
			dig = true
		default:
			sym = true
		}
	}
	n := 0
	for _, b := range []bool{lo, up, dig, sym} {
		if b {
			n++
		}
	}
	return n >= 3
}

// checkUserProps validates property values on create and update.
func checkUserProps(c *reqCtx, body map[string]any) bool {
	for k, v := range body {
		switch k {
		case "displayName":
			if sv, _ := v.(string); sv == "" {
				c.graphError(http.StatusBadRequest, "Request_BadRequest", "Invalid value specified for property 'displayName' of resource 'User'.")
				return false
			}
		case "businessPhones":
			if arr, ok := v.([]any); v != nil && (!ok || len(arr) > 1) {
				c.graphError(http.StatusBadRequest, "Request_BadRequest", "Invalid value specified for property 'businessPhones' of resource 'User'.")
				return false
			}
		case "employeeId":
			if sv, _ := v.(string); len(sv) > 16 {
				c.graphError(http.StatusBadRequest, "Request_BadRequest", "Invalid value specified for property 'employeeId' of resource 'User'.")
				return false
			}
		case "employeeHireDate", "employeeLeaveDateTime":
			if sv, ok := v.(string); ok {
				if _, err := time.Parse(time.RFC3339, sv); err != nil {
					c.graphError(http.StatusBadRequest, "BadRequest", fmt.Sprintf("Cannot convert the literal '%s' to the expected type 'Edm.DateTimeOffset'.", sv))
					return false
				}
			}
		case "accountEnabled", "passwordProfile", "employeeOrgData", "@odata.type":
		default:
			// Graph rejects empty strings for string properties; clearing needs null
			// (docs/graph-behaviour.md#user-property-limits).
			if sv, ok := v.(string); ok && sv == "" {
				c.graphError(http.StatusBadRequest, "Request_BadRequest", fmt.Sprintf("Invalid value specified for property '%s' of resource 'User'.", k))
				return false
			}
		}
	}
	return true
}

func (s *Server) createUser(c *reqCtx) int {
	b := c.body
	for _, req := range []string{"accountEnabled", "displayName", "mailNickname", "userPrincipalName", "passwordProfile"} {
		if b[req] == nil {
			c.graphError(http.StatusBadRequest, "Request_BadRequest", fmt.Sprintf("Invalid value specified for property '%s' of resource 'User'.", req))
			return http.StatusBadRequest
		}
	}
	if !checkUserProps(c, b) {
		return http.StatusBadRequest
	}
	upn, _ := b["userPrincipalName"].(string)
	if !s.validUPN(upn) {
		c.graphError(http.StatusBadRequest, "Request_BadRequest", "Property userPrincipalName is invalid.", detail{Code: "InvalidValue", Target: "userPrincipalName"})
		return http.StatusBadRequest
	}
	pp, _ := b["passwordProfile"].(map[string]any)
	pw, _ := pp["password"].(string)
	if !strongPassword(pw) {
		c.graphError(http.StatusBadRequest, "Request_BadRequest", msgPasswordPolicy)
		return http.StatusBadRequest
	}
	force, _ := pp["forceChangePasswordNextSignIn"].(bool)
	mail, _ := b["mail"].(string)

	s.mu.Lock()
	for _, id := range s.userOrder {
		o := s.users[id]
		// A soft-deleted user keeps its UPN and proxy addresses reserved
		// (docs/graph-behaviour.md#deleted-users).
		if other, _ := o.props["userPrincipalName"].(string); strings.EqualFold(other, upn) {
			s.mu.Unlock()
			c.graphError(http.StatusBadRequest, "Request_BadRequest", msgDuplicateUPN, detail{Code: "ObjectConflict", Target: "userPrincipalName"})
			return http.StatusBadRequest
		}
		if other, _ := o.props["mail"].(string); mail != "" && strings.EqualFold(other, mail) {
			s.mu.Unlock()
			c.graphError(http.StatusBadRequest, "Request_BadRequest", msgDuplicateProxy, detail{Code: "ObjectConflict", Target: "proxyAddresses"})
			return http.StatusBadRequest
		}
	}
	id := newID()
	o := &userObj{props: map[string]any{}, created: time.Now(), forcePwd: force, pwdSet: true}
	for k, v := range b {
		if k == "passwordProfile" || k == "@odata.type" || v == nil {
			continue
		}
		o.props[k] = v
	}
	o.props["id"] = id
	if _, ok := o.props["userType"]; !ok {
		o.props["userType"] = "Member" // Graph's default for a created user
	}
	s.seq++
	o.seq = s.seq
	s.users[id] = o
	s.userOrder = append(s.userOrder, id)
	out := project(o.props, nil, keys(o.props))
	drop := s.faults.DropCreateResponse > 0
	fail := !drop && s.faults.FailCreateAfterCommit > 0
	if drop {
		s.faults.DropCreateResponse--
	}
	if fail {
		s.faults.FailCreateAfterCommit--
	}
	s.mu.Unlock()

	switch {
	case drop:
		// The create is committed; the answer is lost on the way back.
		if hj, ok := c.w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return 0
			}
		}
		panic(http.ErrAbortHandler)
	case fail:
		c.graphError(http.StatusGatewayTimeout, "UnknownError", "The gateway did not receive a response in time.")
		return http.StatusGatewayTimeout
	}
	out["@odata.context"] = s.ts.URL + "/v1.0/$metadata#users/$entity"
	c.w.Header().Set("Location", s.ts.URL+"/v1.0/users/"+id)
	writeJSON(c.w, http.StatusCreated, out)
	return http.StatusCreated
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (s *Server) patchUser(c *reqCtx, key string) int {
	if !checkUserProps(c, c.body) {
		return http.StatusBadRequest
	}
	if v, ok := c.body["displayName"]; ok && v == nil {
		c.graphError(http.StatusBadRequest, "Request_BadRequest", "Invalid value specified for property 'displayName' of resource 'User'.")
		return http.StatusBadRequest
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, status := s.userOr404(c, key)
	if o == nil {
		return status
	}
	if synced, _ := o.props["onPremisesSyncEnabled"].(bool); synced {
		c.graphError(http.StatusBadRequest, "Request_BadRequest", msgOnPremises)
		return http.StatusBadRequest
	}
	if upn, ok := c.body["userPrincipalName"].(string); ok {
		for _, id := range s.userOrder {
			if other, _ := s.users[id].props["userPrincipalName"].(string); id != o.props["id"] && strings.EqualFold(other, upn) {
				c.graphError(http.StatusBadRequest, "Request_BadRequest", msgDuplicateUPN, detail{Code: "ObjectConflict", Target: "userPrincipalName"})
				return http.StatusBadRequest
			}
		}
	}
	for k, v := range c.body {
		switch {
		case k == "@odata.type" || k == "id":
		case k == "passwordProfile":
			o.pwdSet = true
		case v == nil:
			delete(o.props, k)
		default:
			// Complex values (employeeOrgData) are replaced as a whole, the
			// stricter reading of OData PATCH; the adapter always sends both
			// members so it is correct under either reading.
			o.props[k] = v
		}
	}
	s.seq++
	o.seq = s.seq
	c.w.WriteHeader(http.StatusNoContent)
	return http.StatusNoContent
}

func (s *Server) deleteUser(c *reqCtx, key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, status := s.userOr404(c, key)
	if o == nil {
		return status
	}
	o.deleted = true
	s.markDeleted(o.props["id"].(string), time.Now())
	s.seq++
	o.seq = s.seq
	c.w.WriteHeader(http.StatusNoContent)
	return http.StatusNoContent
}

func (s *Server) revokeSessions(c *reqCtx, key string) int {
	s.mu.Lock()
	o, vis := s.visibleUser(key)
	if vis {
		o.sessions = time.Now().UTC()
	}
	s.mu.Unlock()
	if !vis {
		c.graphError(http.StatusNotFound, "Request_ResourceNotFound", notFoundMsg(key))
		return http.StatusNotFound
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"@odata.context": s.ts.URL + "/v1.0/$metadata#Edm.Boolean", "value": true})
	return http.StatusOK
}

func (s *Server) getManager(c *reqCtx, key string) int {
	s.mu.Lock()
	o, vis := s.visibleUser(key)
	var out map[string]any
	if vis && o.managerID != "" {
		if m, ok := s.visibleUser(o.managerID); ok {
			out = project(m.props, nil, defaultUserSelect)
		}
	}
	s.mu.Unlock()
	if !vis {
		c.graphError(http.StatusNotFound, "Request_ResourceNotFound", notFoundMsg(key))
		return http.StatusNotFound
	}
	if out == nil {
		c.graphError(http.StatusNotFound, "Request_ResourceNotFound", notFoundMsg("manager"))
		return http.StatusNotFound
	}
	out["@odata.type"] = "#microsoft.graph.user"
	writeJSON(c.w, http.StatusOK, out)
	return http.StatusOK
}

// refID takes the object id from an @odata.id reference; any host is
// accepted (callers build these strings,
// docs/graph-behaviour.md#sdk-base-url-and-token-hosts).
func refID(v any) string {
	s, _ := v.(string)
	s = strings.TrimRight(s, "/")
	if i := strings.LastIndex(s, "/"); i >= 0 {
		s = s[i+1:]
	}
	if i := strings.Index(s, "('"); i >= 0 { // directoryObjects('id') form
		s = strings.TrimSuffix(s[i+2:], "')")
	}
	return s
}

func (s *Server) putManager(c *reqCtx, key string) int {
	mid := refID(c.body["@odata.id"])
	s.mu.Lock()
	defer s.mu.Unlock()
	o, status := s.userOr404(c, key)
	if o == nil {
		return status
	}
	m, mvis := s.visibleUser(mid)
	if mid == "" || !mvis {
		c.graphError(http.StatusNotFound, "Request_ResourceNotFound", notFoundMsg(mid))
		return http.StatusNotFound
	}
	if m == o {
		c.graphError(http.StatusBadRequest, "Request_BadRequest", "A user cannot be their own manager.")
		return http.StatusBadRequest
	}
	o.managerID = m.props["id"].(string)
	s.seq++
	o.seq = s.seq
	c.w.WriteHeader(http.StatusNoContent)
	return http.StatusNoContent
}

func (s *Server) deleteManager(c *reqCtx, key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, status := s.userOr404(c, key)
	if o == nil {
		return status
	}
	if o.managerID == "" {
		c.graphError(http.StatusNotFound, "Request_ResourceNotFound", notFoundMsg("manager"))
		return http.StatusNotFound
	}
	o.managerID = ""
	s.seq++
	o.seq = s.seq
	c.w.WriteHeader(http.StatusNoContent)
	return http.StatusNoContent
}

// ---- groups ----

func groupProps(g Group) map[string]any {
	m := map[string]any{
		"id": g.ID, "displayName": g.DisplayName, "groupTypes": g.GroupTypes, "mailEnabled": g.MailEnabled,
		"securityEnabled": g.SecurityEnabled, "isAssignableToRole": g.IsAssignableToRole,
		"mailNickname": nilIfEmpty(g.MailNickname), "mail": nilIfEmpty(g.Mail),
		"membershipRule": nilIfEmpty(g.MembershipRule), "onPremisesSyncEnabled": nil,
	}
	if g.OnPremisesSyncEnabled {
		m["onPremisesSyncEnabled"] = true
	}
	if slices.Contains(g.GroupTypes, "DynamicMembership") {
		m["membershipRuleProcessingState"] = "On"
	}
	return m
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

var defaultGroupSelect = []string{"id", "displayName", "groupTypes", "mailEnabled", "securityEnabled", "mailNickname",
	"mail", "membershipRule", "onPremisesSyncEnabled", "isAssignableToRole", "description"}

func (s *Server) listGroups(c *reqCtx) int {
	q, ok := c.parseQuery("Group", groupFilterable)
	if !ok {
		return http.StatusBadRequest
	}
	s.mu.Lock()
	var items []map[string]any
	for _, id := range s.order {
		p := groupProps(s.groups[id].g)
		if matches(p, q.filter) {
			items = append(items, project(p, q.sel, defaultGroupSelect))
		}
	}
	s.mu.Unlock()
	return s.page(c, q, items, "groups")
}

func (s *Server) getGroup(c *reqCtx, id string) int {
	q, ok := c.parseQuery("Group", groupFilterable)
	if !ok {
		return http.StatusBadRequest
	}
	s.mu.Lock()
	g, found := s.groups[id]
	var out map[string]any
	if found {
		out = project(groupProps(g.g), q.sel, defaultGroupSelect)
	}
	s.mu.Unlock()
	if !found {
		c.graphError(http.StatusNotFound, "Request_ResourceNotFound", notFoundMsg(id))
		return http.StatusNotFound
	}
	writeJSON(c.w, http.StatusOK, out)
	return http.StatusOK
}

func (s *Server) listMembers(c *reqCtx, gid string, usersOnly bool) int {
	q, ok := c.parseQuery("DirectoryObject", map[string]bool{"id": true})
	if !ok {
		return http.StatusBadRequest
	}
	s.mu.Lock()
	g, found := s.groups[gid]
	var items []map[string]any
	if found {
		for _, mid := range g.members {
			if u, ok := s.users[mid]; ok {
				if u.deleted {
					continue
				}
				it := project(u.props, q.sel, defaultUserSelect)
				it["@odata.type"] = "#microsoft.graph.user"
				items = append(items, it)
			} else if ng, ok := s.groups[mid]; ok && !usersOnly {
				it := project(groupProps(ng.g), q.sel, defaultGroupSelect)
				it["@odata.type"] = "#microsoft.graph.group"
				items = append(items, it)
			}
		}
	}
	s.mu.Unlock()
	if !found {
		c.graphError(http.StatusNotFound, "Request_ResourceNotFound", notFoundMsg(gid))
		return http.StatusNotFound
	}
	return s.page(c, q, items, "directoryObjects")
}

// memberOf lists the groups the user is a direct member of.
// The simulator has no directory roles or administrative units, so the
// plain and the microsoft.graph.group forms list the same groups.
func (s *Server) memberOf(c *reqCtx, key string) int {
	q, ok := c.parseQuery("DirectoryObject", map[string]bool{"id": true})
	if !ok {
		return http.StatusBadRequest
	}
	s.mu.Lock()
	o, vis := s.visibleUser(key)
	var items []map[string]any
	if vis {
		id := o.props["id"].(string)
		for _, gid := range s.order {
			g := s.groups[gid]
			if slices.Contains(g.members, id) {
				it := project(groupProps(g.g), q.sel, defaultGroupSelect)
				it["@odata.type"] = "#microsoft.graph.group"
				items = append(items, it)
			}
		}
	}
	s.mu.Unlock()
	if !vis {
		c.graphError(http.StatusNotFound, "Request_ResourceNotFound", notFoundMsg(key))
		return http.StatusNotFound
	}
	return s.page(c, q, items, "directoryObjects")
}

// refusal says why Graph will not write this group's membership
// (docs/graph-behaviour.md#groups-graph-cannot-write).
func (s *Server) refusal(g Group) (int, string, string) {
	switch {
	case g.OnPremisesSyncEnabled:
		return http.StatusBadRequest, "Request_BadRequest", msgOnPremises
	case g.MailEnabled && !slices.Contains(g.GroupTypes, "Unified"):
		return http.StatusBadRequest, "Request_BadRequest", msgMailEnabled
	case slices.Contains(g.GroupTypes, "DynamicMembership"):
		return http.StatusBadRequest, "Request_BadRequest", msgDynamic
	case g.IsAssignableToRole && !s.opts.RoleManagement:
		return http.StatusForbidden, "Authorization_RequestDenied", msgInsufficient
	}
	return 0, "", ""
}

// addMembers is all-or-nothing, as the PATCH members@odata.bind is
// (docs/graph-behaviour.md#group-membership). Caller holds s.mu.
func (s *Server) addMembers(c *reqCtx, gid string, refs []any) int {
	g, found := s.groups[gid]
	if !found {
		c.graphError(http.StatusNotFound, "Request_ResourceNotFound", notFoundMsg(gid))
		return http.StatusNotFound
	}
	if st, code, msg := s.refusal(g.g); st != 0 {
		c.graphError(st, code, msg)
		return st
	}
	var ids []string
	for _, r := range refs {
		id := refID(r)
		u, uok := s.users[id]
		_, gok := s.groups[id]
		if !(uok && !u.deleted && s.replicated(u.created)) && !gok {
			c.graphError(http.StatusNotFound, "Request_ResourceNotFound", notFoundMsg(id))
			return http.StatusNotFound
		}
		if slices.Contains(g.members, id) || slices.Contains(ids, id) {
			c.graphError(http.StatusBadRequest, "Request_BadRequest", msgAlreadyMember)
			return http.StatusBadRequest
		}
		ids = append(ids, id)
	}
	g.members = append(g.members, ids...)
	for _, id := range ids {
		s.logMember(gid, id, false)
	}
	c.w.WriteHeader(http.StatusNoContent)
	return http.StatusNoContent
}

func (s *Server) patchGroup(c *reqCtx, gid string) int {
	refs, has := c.body["members@odata.bind"]
	arr, ok := refs.([]any)
	if has && !ok {
		c.graphError(http.StatusBadRequest, "BadRequest", "Invalid value for 'members@odata.bind'.")
		return http.StatusBadRequest
	}
	if len(arr) > 20 {
		c.graphError(http.StatusBadRequest, "Request_BadRequest", "The request contains more than 20 references; add at most 20 members per request.")
		return http.StatusBadRequest
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !has {
		if _, found := s.groups[gid]; !found {
			c.graphError(http.StatusNotFound, "Request_ResourceNotFound", notFoundMsg(gid))
			return http.StatusNotFound
		}
		c.w.WriteHeader(http.StatusNoContent)
		return http.StatusNoContent
	}
	return s.addMembers(c, gid, arr)
}

func (s *Server) addMemberRef(c *reqCtx, gid string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addMembers(c, gid, []any{c.body["@odata.id"]})
}

func (s *Server) removeMember(c *reqCtx, gid, mid string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, found := s.groups[gid]
	if !found {
		c.graphError(http.StatusNotFound, "Request_ResourceNotFound", notFoundMsg(gid))
		return http.StatusNotFound
	}
	if st, code, msg := s.refusal(g.g); st != 0 {
		c.graphError(st, code, msg)
		return st
	}
	i := slices.Index(g.members, mid)
	if i < 0 {
		// The id in this message is the group's (docs/graph-behaviour.md#group-membership).
		c.graphError(http.StatusNotFound, "Request_ResourceNotFound", notFoundMsg(gid))
		return http.StatusNotFound
	}
	g.members = slices.Delete(g.members, i, i+1)
	s.logMember(gid, mid, true)
	c.w.WriteHeader(http.StatusNoContent)
	return http.StatusNoContent
}
