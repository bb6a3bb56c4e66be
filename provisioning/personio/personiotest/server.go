// Package personiotest is an in-process Personio API simulator for tests
// and the demo. It serves, on 127.0.0.1, the endpoints the personio client
// uses in their documented shapes (docs/personio-api.md): v1 /auth and
// /company/employees with offset/limit paging (limit ≤ 100) and
// updated_since; v2 /auth/token, /persons (cursor paging, updated_at
// filters), /persons/{id}/employments, PATCH /persons/{id}; and v2 webhook
// management with delivery of dataless events to enabled subscriptions.
// Errors use the v1 {success:false,error} envelope and v2
// application/problem+json. Tokens expire; 429s can be injected.
package personiotest

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a Server. Zero values take the defaults noted.
type Options struct {
	Logger *slog.Logger
	// ClientID and ClientSecret are the accepted API credential
	// (default "sim-client-id" / "sim-client-secret").
	ClientID, ClientSecret string
	// TokenTTL is the token lifetime (default 24 h, as Personio's).
	TokenTTL time.Duration
	// Latency is added to every request.
	Latency time.Duration
	// Now is the clock for timestamps and token expiry (default time.Now).
	Now func() time.Time
	// AllowHTTPWebhooks accepts http:// callback URLs; Personio itself
	// delivers to HTTPS only (docs/personio-api.md#webhook-deliveries).
	AllowHTTPWebhooks bool
	// DeliveryTimeout is how long a receiver has to answer (default 3 s).
	DeliveryTimeout time.Duration
	// DeliveryRetries is how often a delivery is repeated after a timeout
	// or a 5xx other than 501 (default 2); 4xx is never retried.
	DeliveryRetries int
	// DeliveryRetryDelay is the pause before the first repeat, doubled
	// for each further one (default 50 ms; Personio waits far longer).
	DeliveryRetryDelay time.Duration
	// OmitPersonInEmploymentEvents sends employment events with only the
	// employment id in the payload.
	OmitPersonInEmploymentEvents bool
}

// Delivery is one delivery attempt of an event to a webhook.
type Delivery struct {
	WebhookID string
	URL       string
	EventName string
	Attempt   int // 1 for the first try
	Body      []byte
	// Authorization is the header value sent (the webhook's token).
	Authorization string
	StatusCode    int    // 0 when no answer arrived
	Error         string // transport error or timeout
	Delivered     bool   // a 2xx arrived in time
	At            time.Time
}

// Webhook is a registered subscription as the simulator stores it.
type Webhook struct {
	ID            string            `json:"id"`
	URL           string            `json:"url"`
	Description   string            `json:"description"`
	Status        string            `json:"status"`
	AuthType      string            `json:"auth_type"`
	Token         string            `json:"-"`
	CustomHeaders map[string]string `json:"-"`
	EnabledEvents []string          `json:"enabled_events"`
	CreatedAt     time.Time         `json:"created_at"`
	UpdatedAt     time.Time         `json:"updated_at"`
}

// Server is a running simulator.
type Server struct {
	opts Options
	log  *slog.Logger
	hs   *httptest.Server
	now  func() time.Time

	requests      atomic.Int64
	tokenRequests atomic.Int64

	mu          sync.Mutex
	company     Company // lookups; persons live in persons
	persons     map[string]*Person
	order       []*Person // persons by id; nil when it must be rebuilt
	tokens      []issuedToken
	webhooks    []*Webhook
	deliveries  []Delivery
	rateLimited int
	pagingFault bool
	v1Missing   map[string]bool // persons v1 GET /company/employees/{id} answers 404 for
	closed      bool

	deliverWG sync.WaitGroup
	deliverer *http.Client
}

type issuedToken struct {
	api   string // v1, v2
	value string
	exp   time.Time
}

// New starts a simulator on 127.0.0.1 with an empty company.
func New(opts Options) *Server {
	if opts.ClientID == "" {
		opts.ClientID = "sim-client-id"
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = "sim-client-secret"
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = 24 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.DeliveryTimeout <= 0 {
		opts.DeliveryTimeout = 3 * time.Second
	}
	if opts.DeliveryRetries == 0 {
		opts.DeliveryRetries = 2
	} else if opts.DeliveryRetries < 0 {
		opts.DeliveryRetries = 0
	}
	if opts.DeliveryRetryDelay <= 0 {
		opts.DeliveryRetryDelay = 50 * time.Millisecond
	}
	s := &Server{
		opts:    opts,
		log:     opts.Logger,
		now:     opts.Now,
		persons: map[string]*Person{},
		company: Company{CompanyID: "4242", TimeZone: "Europe/Berlin"},
		deliverer: &http.Client{
			Timeout: opts.DeliveryTimeout,
			// Personio does not follow redirects (docs/personio-api.md#webhook-deliveries).
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.hs = httptest.NewServer(s.routes())
	return s
}

// URL is the API base URL (pass it as the client's BaseURL).
func (s *Server) URL() string { return s.hs.URL }

// Close waits for running deliveries and stops the server.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.deliverWG.Wait()
	s.hs.Close()
}

// Requests is the number of API requests served, token requests included.
func (s *Server) Requests() int64 { return s.requests.Load() }

// TokenRequests is the number of requests to the token endpoints.
func (s *Server) TokenRequests() int64 { return s.tokenRequests.Load() }

// InjectRateLimit makes the next n requests answer 429.
func (s *Server) InjectRateLimit(n int) {
	s.mu.Lock()
	s.rateLimited = n
	s.mu.Unlock()
}

// SetPagingFault makes paging misbehave as reported in the field: v1
// ignores offset (every page is the first) and v2 next links point back to
// the page just served.
func (s *Server) SetPagingFault(on bool) {
	s.mu.Lock()
	s.pagingFault = on
	s.mu.Unlock()
}

// SetV1EmployeeNotFound makes v1 GET /company/employees/{id} answer 404
// for these persons although they exist: every other read (the v1 list,
// v2 /persons and /persons/{id}) still serves them. No ids clears the fault.
func (s *Server) SetV1EmployeeNotFound(ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.v1Missing = map[string]bool{}
	for _, id := range ids {
		s.v1Missing[id] = true
	}
}

// SetCompany replaces the whole company without firing webhooks. Persons
// and employments without timestamps get the current time.
func (s *Server) SetCompany(c *Company) {
	now := s.now().UTC().Truncate(time.Second)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.company = Company{CompanyID: c.CompanyID, TimeZone: c.TimeZone, OrgUnits: slices.Clone(c.OrgUnits),
		Offices: slices.Clone(c.Offices), LegalEntities: slices.Clone(c.LegalEntities), CostCenters: slices.Clone(c.CostCenters)}
	s.persons = make(map[string]*Person, len(c.Persons))
	s.order = nil
	for _, p := range c.Persons {
		q := p.clone()
		stamp(&q.CreatedAt, now)
		stamp(&q.UpdatedAt, now)
		for i := range q.Employments {
			stamp(&q.Employments[i].CreatedAt, now)
			stamp(&q.Employments[i].UpdatedAt, now)
		}
		s.persons[q.ID] = &q
	}
}

func stamp(t *time.Time, now time.Time) {
	if t.IsZero() {
		*t = now
	}
}

// Company returns a copy of the current company.
func (s *Server) Company() *Company {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.company
	c.Persons = s.clonePersonsLocked()
	return &c
}

// Person returns a copy of one person.
func (s *Server) Person(id string) (Person, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.persons[id]
	if !ok {
		return Person{}, false
	}
	return p.clone(), true
}

// Persons returns copies of all persons ordered by id.
func (s *Server) Persons() []Person {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clonePersonsLocked()
}

// sortedPersonsLocked returns the persons ordered by id (stable offsets
// for v1 paging). The slice is cached until the next mutation; callers
// must not modify it.
func (s *Server) sortedPersonsLocked() []*Person {
	if s.order == nil {
		s.order = make([]*Person, 0, len(s.persons))
		for _, p := range s.persons {
			s.order = append(s.order, p)
		}
		slices.SortFunc(s.order, func(a, b *Person) int { return idLess(a.ID, b.ID) })
	}
	return s.order
}

func (s *Server) clonePersonsLocked() []Person {
	out := make([]Person, 0, len(s.persons))
	for _, p := range s.sortedPersonsLocked() {
		out = append(out, p.clone())
	}
	return out
}

// Webhooks returns the registered subscriptions (tokens included).
func (s *Server) Webhooks() []Webhook {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Webhook, 0, len(s.webhooks))
	for _, w := range s.webhooks {
		c := *w
		c.EnabledEvents = slices.Clone(w.EnabledEvents)
		out = append(out, c)
	}
	return out
}

// Deliveries returns the delivery log, one entry per attempt.
func (s *Server) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.deliveries)
}

// WaitDeliveries blocks until every delivery started so far has finished
// (including its retries).
func (s *Server) WaitDeliveries() { s.deliverWG.Wait() }

// routes wires every endpoint behind the common middleware.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/auth", s.handleV1Auth)
	mux.HandleFunc("POST /v2/auth/token", s.handleV2Token)
	mux.HandleFunc("GET /v1/company/employees", s.authed(s.handleV1List))
	mux.HandleFunc("GET /v1/company/employees/{id}", s.authed(s.handleV1Get))
	mux.HandleFunc("GET /v2/persons", s.authed(s.handleV2Persons))
	mux.HandleFunc("GET /v2/persons/{id}", s.authed(s.handleV2Person))
	mux.HandleFunc("PATCH /v2/persons/{id}", s.authed(s.handleV2PatchPerson))
	mux.HandleFunc("GET /v2/persons/{id}/employments", s.authed(s.handleV2Employments))
	mux.HandleFunc("GET /v2/persons/{id}/employments/{eid}", s.authed(s.handleV2Employment))
	mux.HandleFunc("POST /v2/webhooks", s.authed(s.handleCreateWebhook))
	mux.HandleFunc("GET /v2/webhooks", s.authed(s.handleListWebhooks))
	mux.HandleFunc("GET /v2/webhooks/{id}", s.authed(s.handleGetWebhook))
	mux.HandleFunc("PATCH /v2/webhooks/{id}", s.authed(s.handlePatchWebhook))
	mux.HandleFunc("DELETE /v2/webhooks/{id}", s.authed(s.handleDeleteWebhook))
	mux.HandleFunc("POST /v2/webhooks/{id}/ping", s.authed(s.handlePingWebhook))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, http.StatusNotFound, "common.resource_not_found", "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if s.opts.Latency > 0 {
			time.Sleep(s.opts.Latency)
		}
		s.mu.Lock()
		limited := s.rateLimited > 0
		if limited {
			s.rateLimited--
		}
		s.mu.Unlock()
		if limited {
			s.fail(w, r, http.StatusTooManyRequests, "common.too_many_requests", "Too many requests, please retry later.")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// fail writes an error in the envelope of the API version the path belongs to.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	if strings.HasPrefix(r.URL.Path, "/v1/") {
		writeJSON(w, "application/json", status, map[string]any{
			"success": false,
			"error":   map[string]any{"code": 0, "message": msg},
		})
		return
	}
	writeJSON(w, "application/problem+json", status, map[string]any{
		"personio_trace_id": randomHex(8),
		"timestamp":         s.now().UTC().Format(time.RFC3339),
		"errors": []map[string]any{{
			"title":  http.StatusText(status),
			"detail": msg,
			"type":   "https://developer.personio.de/reference/errors#" + code,
			"_meta":  map[string]any{},
		}},
	})
}

func writeJSON(w http.ResponseWriter, contentType string, status int, v any) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// credentialsOK compares in constant time.
func (s *Server) credentialsOK(id, secret string) bool {
	a := subtle.ConstantTimeCompare([]byte(id), []byte(s.opts.ClientID))
	b := subtle.ConstantTimeCompare([]byte(secret), []byte(s.opts.ClientSecret))
	return a&b == 1
}

// issue returns the current token of the API version, minting one when
// none is valid: Personio hands out the same token until it expires
// (docs/personio-api.md#authentication).
func (s *Server) issue(api string) (string, time.Duration) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.tokens {
		if t.api == api && now.Before(t.exp) {
			return t.value, t.exp.Sub(now)
		}
	}
	t := issuedToken{api: api, value: "papi-" + randomHex(24), exp: now.Add(s.opts.TokenTTL)}
	s.tokens = slices.DeleteFunc(s.tokens, func(o issuedToken) bool { return !now.Before(o.exp) })
	s.tokens = append(s.tokens, t)
	return t.value, s.opts.TokenTTL
}

func expiresInSeconds(d time.Duration) int { return max(1, int(d/time.Second)) }

// handleV1Auth serves POST /v1/auth (JSON or form body).
func (s *Server) handleV1Auth(w http.ResponseWriter, r *http.Request) {
	s.tokenRequests.Add(1)
	var in struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		_ = json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&in)
	} else if r.ParseForm() == nil {
		in.ClientID, in.ClientSecret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if !s.credentialsOK(in.ClientID, in.ClientSecret) {
		s.fail(w, r, http.StatusUnauthorized, "", "Wrong credentials")
		return
	}
	tok, ttl := s.issue("v1")
	writeJSON(w, "application/json", http.StatusOK, map[string]any{
		"success": true,
		"data":    map[string]any{"token": tok, "expires_in": expiresInSeconds(ttl), "scope": ""},
	})
}

// handleV2Token serves POST /v2/auth/token: form-encoded client credentials only.
func (s *Server) handleV2Token(w http.ResponseWriter, r *http.Request) {
	s.tokenRequests.Add(1)
	oauthErr := func(code, desc string) {
		writeJSON(w, "application/problem+json", http.StatusBadRequest, map[string]any{
			"error": code, "error_description": desc, "trace_id": randomHex(8),
			"timestamp": s.now().UTC().Format(time.RFC3339),
		})
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		oauthErr("invalid_request", "the request body must be application/x-www-form-urlencoded")
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthErr("invalid_request", "unreadable form body")
		return
	}
	if g := r.PostForm.Get("grant_type"); g != "client_credentials" {
		oauthErr("unsupported_grant_type", "only client_credentials is supported")
		return
	}
	if !s.credentialsOK(r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")) {
		oauthErr("invalid_client", "client authentication failed")
		return
	}
	tok, ttl := s.issue("v2")
	writeJSON(w, "application/json", http.StatusOK, map[string]any{
		"access_token": tok, "token_type": "Bearer", "expires_in": expiresInSeconds(ttl),
		"scope": "personio:persons:read personio:persons:write personio:webhooks:read personio:webhooks:write", "refresh_token": nil,
	})
}

// authed checks the bearer token. Both token kinds are papi- tokens for
// the personnel data endpoints, so either is accepted on either version.
func (s *Server) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || got == "" {
			s.fail(w, r, http.StatusUnauthorized, "common.unauthorized", "missing bearer token")
			return
		}
		now := s.now()
		valid := false
		s.mu.Lock()
		for _, t := range s.tokens {
			if subtle.ConstantTimeCompare([]byte(got), []byte(t.value)) == 1 && now.Before(t.exp) {
				valid = true
			}
		}
		s.mu.Unlock()
		if !valid {
			s.fail(w, r, http.StatusUnauthorized, "common.unauthorized", "the access token is invalid or has expired")
			return
		}
		h(w, r)
	}
}
