// Package entratest is an in-process simulator of the parts of Microsoft
// Entra ID that personio-entra uses: the identity platform's token endpoint
// (client secret and certificate assertion flows, tenant discovery) and the
// Microsoft Graph v1.0 user and group routes.
//
// It is a plain net/http server on 127.0.0.1 with TLS (MSAL refuses non-https
// authorities), so tests and the demo can drive it with the real azidentity
// and msgraph-sdk-go clients without linking the Graph SDK themselves. It
// implements the documented service behaviour (docs/graph-behaviour.md): the
// error envelope, $filter/$select/$top/$count, absolute @odata.nextLink
// paging, users delta with manager@delta, groups delta with members@delta,
// delta tokens that expire, gzip request bodies, group types
// Graph refuses to write, duplicate-UPN ObjectConflict, already-a-member and
// not-a-member errors, soft delete and restore, the per-app write budget
// answered with 429 and Retry-After, replication delay after create and
// restore, latency and fault injection.
package entratest

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"maps"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Defaults from the identity & access service throttling limits
// (https://learn.microsoft.com/en-us/graph/throttling-limits).
const (
	DefaultWriteBudget = 3000
	DefaultWriteWindow = 150 * time.Second
	DefaultClientID    = "00000000-0000-0000-0000-00000000c1e7"
	DefaultSecret      = "simulator-client-secret"
	DefaultTenantID    = "00000000-0000-0000-0000-0000000000aa"
	// DefaultPageSize is Graph's page size for users and members without $top.
	DefaultPageSize = 100
	// MaxPageSize is the largest $top Graph accepts for directory objects
	// (docs/graph-behaviour.md#paging).
	MaxPageSize = 999
	// DeltaPageSize is the page size users/delta answers with (it ignores $top).
	DeltaPageSize = 200
)

// Options configure a Server. Zero values get sensible defaults.
type Options struct {
	TenantID     string
	ClientID     string // the registered application (client) id
	ClientSecret string // the accepted client secret
	// ClientCertificate, when set, is the registered certificate: client
	// assertions must carry its thumbprint and a valid signature.
	ClientCertificate *x509.Certificate
	// WriteBudget writes per WriteWindow per app before 429
	// (https://learn.microsoft.com/en-us/graph/throttling-limits).
	WriteBudget int
	WriteWindow time.Duration
	// ReplicationDelay makes a new object invisible (404) to reads, filters
	// and references for this long after its create (a user also after its
	// restore)
	// (docs/graph-behaviour.md#replication-delay).
	ReplicationDelay time.Duration
	// Latency is added to every Graph request.
	Latency time.Duration
	// RoleManagement grants the app RoleManagement.ReadWrite.Directory;
	// without it, membership writes on role-assignable groups answer 403.
	RoleManagement bool
	// Domain is the verified domain UPNs must end with ("" accepts any).
	Domain string
	// Permissions are the application permissions granted to the app
	// (the roles claim of its tokens, permissions.go); nil grants
	// DefaultPermissions. They gate the routes of deleted items, licences,
	// authentication methods and sendMail.
	Permissions []string
	Logger      *slog.Logger
}

// Faults inject failures into Graph requests (never into the token
// endpoint; SetTokenOutage takes that one down).
type Faults struct {
	// ThrottleRate answers this share of Graph requests 429 with RetryAfter.
	ThrottleRate float64
	// ServerErrorRate answers this share of Graph requests 503 with RetryAfter.
	ServerErrorRate float64
	// RetryAfter is the Retry-After sent with injected faults and with
	// write-budget 429s when shorter than the window remainder would be
	// (default 1 s). Sub-second values are sent as decimal seconds so tests
	// stay fast; real Graph sends whole seconds.
	RetryAfter time.Duration
	// DropCreateResponse commits the next N user creates and then closes the
	// connection without answering (a lost response).
	DropCreateResponse int
	// FailCreateAfterCommit commits the next N user creates and answers 504.
	FailCreateAfterCommit int
	// FailRequests answers the next N requests of a route (named as in
	// Counters.ByRoute, e.g. "GET /users/{id}/memberOf") with 500 before
	// processing them; the SDK does not retry a 500.
	FailRequests map[string]int
}

// User is a Graph user as the simulator stores it.
type User struct {
	ID                    string `json:"id"`
	UserPrincipalName     string `json:"userPrincipalName"`
	Mail                  string `json:"mail,omitempty"`
	MailNickname          string `json:"mailNickname,omitempty"`
	DisplayName           string `json:"displayName,omitempty"`
	AccountEnabled        bool   `json:"accountEnabled"`
	EmployeeID            string `json:"employeeId,omitempty"`
	OnPremisesSyncEnabled bool   `json:"onPremisesSyncEnabled,omitempty"`
	// UserType is "Member" (the default, as Graph sets it on create) or
	// "Guest" for a B2B guest.
	UserType  string `json:"userType,omitempty"`
	ManagerID string `json:"managerId,omitempty"`
	// Properties holds every other property as Graph JSON, e.g.
	// "jobTitle": "Engineer", "employeeOrgData": {"division": "R&D"},
	// "businessPhones": ["+49 30 1234"].
	Properties map[string]any `json:"properties,omitempty"`
	// ForceChangePasswordNextSignIn and PasswordSet reflect passwordProfile
	// (the password itself is never kept).
	ForceChangePasswordNextSignIn bool      `json:"forceChangePasswordNextSignIn,omitempty"`
	PasswordSet                   bool      `json:"passwordSet,omitempty"`
	Deleted                       bool      `json:"deleted,omitempty"`
	SignInSessionsValidFrom       time.Time `json:"signInSessionsValidFromDateTime,omitzero"`
}

// Group is a Graph group as the simulator stores it.
type Group struct {
	ID                    string   `json:"id"`
	DisplayName           string   `json:"displayName"`
	MailNickname          string   `json:"mailNickname,omitempty"`
	Mail                  string   `json:"mail,omitempty"`
	GroupTypes            []string `json:"groupTypes"`
	MailEnabled           bool     `json:"mailEnabled"`
	SecurityEnabled       bool     `json:"securityEnabled"`
	MembershipRule        string   `json:"membershipRule,omitempty"`
	OnPremisesSyncEnabled bool     `json:"onPremisesSyncEnabled,omitempty"`
	IsAssignableToRole    bool     `json:"isAssignableToRole,omitempty"`
	// Members seeds the member object ids on AddGroup.
	Members []string `json:"members,omitempty"`
}

// Counters count Graph requests (token requests are counted apart).
type Counters struct {
	Total     int            `json:"total"`
	Reads     int            `json:"reads"`
	Writes    int            `json:"writes"`
	Throttled int            `json:"throttled"` // 429 answers
	Errors    int            `json:"errors"`    // other 4xx/5xx answers
	Tokens    int            `json:"tokens"`    // token endpoint requests
	ByRoute   map[string]int `json:"byRoute"`   // "GET /users/{id}" → n
}

type userObj struct {
	props     map[string]any // Graph JSON properties incl. id, userPrincipalName
	managerID string
	created   time.Time
	deleted   bool
	seq       uint64 // change sequence for delta
	forcePwd  bool
	pwdSet    bool
	sessions  time.Time
}

type groupObj struct {
	g       Group
	members []string // ordered member ids
	created time.Time
}

// Server is a running simulator. Close it when done.
type Server struct {
	opts   Options
	log    *slog.Logger
	ts     *httptest.Server
	client *http.Client

	mu        sync.Mutex
	users     map[string]*userObj
	userOrder []string
	groups    map[string]*groupObj
	order     []string // group order
	tokens    map[[32]byte]time.Time
	seq       uint64
	faults    Faults
	// tokenOutage closes token requests without an answer (SetTokenOutage).
	tokenOutage bool
	writes      []time.Time // timestamps of writes inside the window
	counters    Counters
	rng         *mrand.Rand
	// memberLog records membership changes for groups/delta (delta.go);
	// deltaFloor and deltaGone describe expired delta tokens.
	memberLog  []memberEvent
	deltaFloor uint64
	deltaGone  bool
	// lc: permissions, deleted items and licences (permissions.go,
	// deleted.go, licenses.go)
	lc lifecycleSim
	// tap and outbox hold the authentication methods and the sent mail
	// (tap.go, mail.go).
	tap    tapState
	outbox []SentMail
}

// New starts a simulator on 127.0.0.1 with a random port.
func New(opts Options) *Server {
	if opts.TenantID == "" {
		opts.TenantID = DefaultTenantID
	}
	if opts.ClientID == "" {
		opts.ClientID = DefaultClientID
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = DefaultSecret
	}
	if opts.WriteBudget <= 0 {
		opts.WriteBudget = DefaultWriteBudget
	}
	if opts.WriteWindow <= 0 {
		opts.WriteWindow = DefaultWriteWindow
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		opts:     opts,
		log:      opts.Logger.With("component", "entratest"),
		users:    map[string]*userObj{},
		groups:   map[string]*groupObj{},
		tokens:   map[[32]byte]time.Time{},
		counters: Counters{ByRoute: map[string]int{}},
		rng:      mrand.New(mrand.NewPCG(1, 2)),
	}
	s.initAuthMethods()
	ts := httptest.NewUnstartedServer(http.HandlerFunc(s.serveHTTP))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("entratest: listen on 127.0.0.1: %v", err))
	}
	ts.Listener = l
	ts.EnableHTTP2 = false
	ts.StartTLS()
	s.ts = ts
	s.client = ts.Client()
	return s
}

// Close stops the server.
func (s *Server) Close() { s.ts.Close() }

// URL is the base URL, e.g. https://127.0.0.1:PORT.
func (s *Server) URL() string { return s.ts.URL }

// GraphURL is the Graph base URL, e.g. https://127.0.0.1:PORT/v1.0.
func (s *Server) GraphURL() string { return s.ts.URL + "/v1.0" }

// AuthorityHost is the identity platform base URL for azidentity
// (token endpoint {AuthorityHost}/{tenant}/oauth2/v2.0/token).
func (s *Server) AuthorityHost() string { return s.ts.URL + "/" }

// TenantID, ClientID and ClientSecret are the credentials the simulator accepts.
func (s *Server) TenantID() string     { return s.opts.TenantID }
func (s *Server) ClientID() string     { return s.opts.ClientID }
func (s *Server) ClientSecret() string { return s.opts.ClientSecret }

// Client returns an *http.Client that trusts the simulator's TLS certificate.
func (s *Server) Client() *http.Client { return s.client }

// CertificatePEM is the server's self-signed TLS certificate in PEM form,
// for a separate process to trust it (e.g. through SSL_CERT_FILE).
func (s *Server) CertificatePEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.ts.Certificate().Raw})
}

// TLSConfig returns a client TLS configuration trusting the simulator.
func (s *Server) TLSConfig() *tls.Config {
	if t, ok := s.client.Transport.(*http.Transport); ok && t.TLSClientConfig != nil {
		return t.TLSClientConfig.Clone()
	}
	return nil
}

// SetFaults replaces the fault injection settings.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f.FailRequests = maps.Clone(f.FailRequests) // counted down here, not in the caller's map
	s.faults = f
}

// Requests returns a snapshot of the request counters.
func (s *Server) Requests() Counters {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.counters
	c.ByRoute = make(map[string]int, len(s.counters.ByRoute))
	for k, v := range s.counters.ByRoute {
		c.ByRoute[k] = v
	}
	return c
}

// Reset zeroes the request counters and the write budget.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counters = Counters{ByRoute: map[string]int{}}
	s.writes = nil
}

func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func tokenKey(tok string) [32]byte { return sha256.Sum256([]byte(tok)) }

// AddUser seeds a user (visible at once, no replication delay) and returns its id.
func (s *Server) AddUser(u User) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.ID == "" {
		u.ID = newID()
	}
	o := &userObj{props: map[string]any{}, managerID: u.ManagerID, deleted: u.Deleted,
		forcePwd: u.ForceChangePasswordNextSignIn, pwdSet: u.PasswordSet}
	for k, v := range u.Properties {
		o.props[k] = normalise(v)
	}
	set := func(k, v string) {
		if v != "" {
			o.props[k] = v
		}
	}
	o.props["id"] = u.ID
	set("userPrincipalName", u.UserPrincipalName)
	set("mail", u.Mail)
	set("mailNickname", u.MailNickname)
	set("displayName", u.DisplayName)
	set("employeeId", u.EmployeeID)
	o.props["accountEnabled"] = u.AccountEnabled
	if u.OnPremisesSyncEnabled {
		o.props["onPremisesSyncEnabled"] = true
	}
	if u.UserType == "" {
		u.UserType = "Member"
	}
	o.props["userType"] = u.UserType
	s.seq++
	o.seq = s.seq
	if _, ok := s.users[u.ID]; !ok {
		s.userOrder = append(s.userOrder, u.ID)
	}
	s.users[u.ID] = o
	return u.ID
}

// normalise turns Go values into their JSON-decoded form.
func normalise(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return v
	}
	return out
}

// AddGroup seeds a group and returns its id.
func (s *Server) AddGroup(g Group) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g.ID == "" {
		g.ID = newID()
	}
	if g.GroupTypes == nil {
		g.GroupTypes = []string{}
	}
	o := &groupObj{g: g, members: slices.Clone(g.Members)}
	o.g.Members = nil
	if _, ok := s.groups[g.ID]; !ok {
		s.order = append(s.order, g.ID)
	}
	s.groups[g.ID] = o
	return g.ID
}

// DeleteGroup removes a group as an administrator deleting it in Entra
// would: its id answers 404 from then on. It reports whether it existed.
func (s *Server) DeleteGroup(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.groups[id]; !ok {
		return false
	}
	delete(s.groups, id)
	s.order = slices.DeleteFunc(s.order, func(g string) bool { return g == id })
	for _, g := range s.groups {
		g.members = slices.DeleteFunc(g.members, func(m string) bool { return m == id })
	}
	return true
}

func (o *userObj) view() User {
	str := func(k string) string { v, _ := o.props[k].(string); return v }
	u := User{
		ID: str("id"), UserPrincipalName: str("userPrincipalName"), Mail: str("mail"),
		MailNickname: str("mailNickname"), DisplayName: str("displayName"), EmployeeID: str("employeeId"),
		ManagerID: o.managerID, Deleted: o.deleted, ForceChangePasswordNextSignIn: o.forcePwd,
		PasswordSet: o.pwdSet, SignInSessionsValidFrom: o.sessions,
	}
	u.AccountEnabled, _ = o.props["accountEnabled"].(bool)
	u.OnPremisesSyncEnabled, _ = o.props["onPremisesSyncEnabled"].(bool)
	u.UserType, _ = o.props["userType"].(string)
	for k, v := range o.props {
		switch k {
		case "id", "userPrincipalName", "mail", "mailNickname", "displayName", "employeeId", "accountEnabled", "onPremisesSyncEnabled", "userType":
			continue
		}
		if u.Properties == nil {
			u.Properties = map[string]any{}
		}
		u.Properties[k] = normalise(v)
	}
	return u
}

// Users returns every user (soft-deleted ones included, flagged), in creation order.
func (s *Server) Users() []User {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]User, 0, len(s.userOrder))
	for _, id := range s.userOrder {
		out = append(out, s.users[id].view())
	}
	return out
}

// User returns one user by object id.
func (s *Server) User(id string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.users[id]
	if !ok {
		return User{}, false
	}
	return o.view(), true
}

// Groups returns every group with its members.
func (s *Server) Groups() []Group {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Group, 0, len(s.order))
	for _, id := range s.order {
		g := s.groups[id].g
		g.Members = slices.Clone(s.groups[id].members)
		out = append(out, g)
	}
	return out
}

// Members returns the member ids of a group (nil when unknown).
func (s *Server) Members(groupID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[groupID]
	if !ok {
		return nil
	}
	return slices.Clone(g.members)
}

// Dump writes the whole state as indented JSON.
func (s *Server) Dump(w io.Writer) error {
	users := s.Users()
	groups := s.Groups()
	sort.SliceStable(users, func(i, j int) bool { return users[i].UserPrincipalName < users[j].UserPrincipalName })
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(struct {
		TenantID string   `json:"tenantId"`
		Users    []User   `json:"users"`
		Groups   []Group  `json:"groups"`
		Requests Counters `json:"requests"`
	}{s.opts.TenantID, users, groups, s.Requests()}); err != nil {
		return fmt.Errorf("entratest: dump state: %w", err)
	}
	return nil
}

func lower(s string) string { return strings.ToLower(s) }
