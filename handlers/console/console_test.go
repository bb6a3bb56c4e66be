package console

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/personio-entra/personio-entra/handlers"
	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"github.com/personio-entra/personio-entra/provisioning/state"
	"github.com/personio-entra/personio-entra/rules"
)

const testToken = "console-test-admin-token-0123456789"

// fakeBackend answers with fixed data and records the actions it was asked for.
type fakeBackend struct {
	mu      sync.Mutex
	actions []string
	preview *provisioning.RulesPreview // PreviewRules' answer (nil: an empty one)
}

func (b *fakeBackend) did(s string) {
	b.mu.Lock()
	b.actions = append(b.actions, s)
	b.mu.Unlock()
}

func (b *fakeBackend) calls() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.actions...)
}

func (b *fakeBackend) Backlog(context.Context) (int, error) { return 3, nil }
func (b *fakeBackend) DeadLetters(context.Context) ([]DeadLetter, error) {
	return []DeadLetter{{Sequence: 7, Reason: "permanent", Error: "boom", PersonID: "1001", WorkReason: "person.updated"}}, nil
}
func (b *fakeBackend) DeadLetter(_ context.Context, seq uint64) (DeadLetter, error) {
	if seq != 7 {
		return DeadLetter{}, fmt.Errorf("dead letter %d: %w", seq, handlers.ErrNotFound)
	}
	return DeadLetter{Sequence: 7, Reason: "permanent", Error: "boom", PersonID: "1001"}, nil
}
func (b *fakeBackend) Redrive(_ context.Context, seq uint64) error {
	b.did(fmt.Sprint("redrive ", seq))
	return nil
}
func (b *fakeBackend) PurgeDeadLetter(_ context.Context, seq uint64) error {
	b.did(fmt.Sprint("purge ", seq))
	return nil
}
func (b *fakeBackend) Approvals(context.Context) ([]provisioning.Approval, error) {
	return []provisioning.Approval{{ID: "ap1", People: []string{"1001"}, Destructive: 2, Threshold: 1,
		Summary: []string{"person 1001 a@example.com (leaver): disable user; revoke sessions"}, Reasons: []string{"over budget"}}}, nil
}
func (b *fakeBackend) Approve(_ context.Context, id string) (provisioning.Approval, error) {
	b.did("approve " + id)
	return provisioning.Approval{ID: id, People: []string{"1001"}}, nil
}
func (b *fakeBackend) LastSyncs(context.Context) ([]SyncOutcome, error) {
	return []SyncOutcome{{Kind: "complete", Trigger: "schedule", Started: time.Now().Add(-time.Minute)}}, nil
}
func (b *fakeBackend) GraphThrottledUntil() time.Time { return time.Time{} }
func (b *fakeBackend) Search(_ context.Context, q string, _ int) ([]PersonMatch, error) {
	return []PersonMatch{{PersonID: "1001", Name: "Ada Lovelace", Email: "ada@example.com"}}, nil
}
func (b *fakeBackend) Person(_ context.Context, id string) (Person, error) {
	if id != "1001" {
		return Person{Explained: provisioning.Explained{PersonID: id}}, nil
	}
	emp := model.Employee{PersonID: id, FirstName: "Ada", LastName: "Lovelace"}
	return Person{Explained: provisioning.Explained{PersonID: id, Employee: &emp,
		Desired: rules.Desired{PersonID: id, Phase: rules.PhaseActive}}}, nil
}
func (b *fakeBackend) Enqueue(_ context.Context, id string) error {
	b.did("enqueue " + id)
	return nil
}
func (b *fakeBackend) Preview(_ context.Context, id string) (provisioning.Plan, error) {
	return provisioning.Plan{PersonID: id}, nil
}
func (b *fakeBackend) PreviewRules(_ context.Context, r *rules.Rules) (provisioning.RulesPreview, error) {
	b.did("preview rules " + r.File())
	if b.preview != nil {
		pv := *b.preview
		pv.CandidateRules = r.File()
		return pv, nil
	}
	return provisioning.RulesPreview{CandidateRules: r.File()}, nil
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type harness struct {
	t     *testing.T
	c     *Console
	b     *fakeBackend
	clock *clock
	h     http.Handler
}

func newHarness(t *testing.T, mut func(*Config)) *harness {
	t.Helper()
	b := &fakeBackend{}
	clk := &clock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	cfg := Config{AdminToken: testToken, Backend: b, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: clk.now,
		Store: state.NewMem()}
	if mut != nil {
		mut(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Mount(Prefix, c)
	return &harness{t: t, c: c, b: b, clock: clk, h: r}
}

// do serves one request and returns the answer. A request that names no
// connection comes over loopback: a client on 127.0.0.1 to a listener on
// 127.0.0.1 (the local address the server would put in the context).
func (h *harness) do(req *http.Request) *http.Response {
	h.t.Helper()
	if req.Context().Value(http.LocalAddrContextKey) == nil {
		req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey,
			&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}))
		req.RemoteAddr = "127.0.0.1:50000"
	}
	rec := httptest.NewRecorder()
	h.h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func cookieNamed(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signIn signs in through the form and returns the session cookie and the
// session's CSRF token.
func (h *harness) signIn(tlsReq bool) (*http.Cookie, string, *http.Response) {
	h.t.Helper()
	resp := h.do(httptest.NewRequest(http.MethodGet, "/ui/signin", nil))
	pre := cookieNamed(resp, signInCookie)
	m := csrfField.FindStringSubmatch(body(h.t, resp))
	if pre == nil || m == nil {
		h.t.Fatalf("sign-in page without its form token (cookie %v)", pre)
	}
	form := url.Values{"csrf": {m[1]}, "token": {testToken}, "next": {"/ui/"}}
	req := httptest.NewRequest(http.MethodPost, "/ui/signin", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.AddCookie(pre)
	if tlsReq {
		req.TLS = &tls.ConnectionState{}
	}
	resp = h.do(req)
	if resp.StatusCode != http.StatusSeeOther {
		h.t.Fatalf("sign-in: %d %s", resp.StatusCode, body(h.t, resp))
	}
	sess := cookieNamed(resp, sessionCookie)
	if sess == nil {
		h.t.Fatal("sign-in set no session cookie")
	}
	page := h.get("/ui/", sess)
	m = csrfField.FindStringSubmatch(body(h.t, page))
	if m == nil {
		h.t.Fatal("no CSRF token on the overview")
	}
	return sess, m[1], resp
}

// link issues a one-time sign-in link.
func (h *harness) link(ttl time.Duration) string {
	h.t.Helper()
	l, err := h.c.SignInLink(context.Background(), ttl)
	if err != nil {
		h.t.Fatal(err)
	}
	return l
}

func (h *harness) get(path string, sess *http.Cookie) *http.Response {
	h.t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if sess != nil {
		req.AddCookie(sess)
	}
	return h.do(req)
}

func (h *harness) post(path string, sess *http.Cookie, form url.Values, hdr map[string]string) *http.Response {
	h.t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if sess != nil {
		req.AddCookie(sess)
	}
	return h.do(req)
}

// concrete fills a route pattern with values the fake backend knows.
func concrete(pattern string) string {
	r := strings.NewReplacer("{id}", "1001", "{seq}", "7", "*", "console.css")
	p := r.Replace(pattern)
	if strings.HasPrefix(p, "/approvals/1001") {
		p = strings.Replace(p, "1001", "ap1", 1)
	}
	return Prefix + p
}

// Every route but the sign-in page, the one-time link and the stylesheet
// needs a session: a GET without one goes to the sign-in page, anything
// else is refused. The routes come from the router itself, so a new route
// cannot be forgotten.
func TestConsoleEveryRouteNeedsSession(t *testing.T) {
	h := newHarness(t, nil)
	n := 0
	err := chi.Walk(h.c.Routes(), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		n++
		if PublicRoute(method, route) {
			return nil
		}
		path := concrete(route)
		req := httptest.NewRequest(method, path, strings.NewReader("csrf=x"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp := h.do(req)
		switch method {
		case http.MethodGet:
			if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/ui/signin?next=") {
				t.Errorf("GET %s without a session: %d Location %q, want 303 to the sign-in page", path, resp.StatusCode, resp.Header.Get("Location"))
			}
		default:
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s %s without a session: %d, want 403", method, path, resp.StatusCode)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 15 {
		t.Fatalf("walked only %d routes", n)
	}
	if got := h.b.calls(); len(got) != 0 {
		t.Fatalf("the backend acted without a session: %v", got)
	}
}

// Every POST behind the session needs the session's CSRF token and must
// come from the console's own origin.
func TestConsolePOSTNeedsCSRFToken(t *testing.T) {
	h := newHarness(t, nil)
	sess, csrf, _ := h.signIn(false)
	var posts []string
	_ = chi.Walk(h.c.Routes(), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if method == http.MethodPost && !PublicRoute(method, route) {
			posts = append(posts, concrete(route))
		}
		return nil
	})
	if len(posts) < 6 {
		t.Fatalf("only %d POST routes: %v", len(posts), posts)
	}
	for _, path := range posts {
		for _, tc := range []struct {
			name string
			form url.Values
			hdr  map[string]string
		}{
			{"no token", url.Values{"confirm": {"yes"}}, nil},
			{"wrong token", url.Values{"csrf": {csrf + "x"}, "confirm": {"yes"}}, nil},
			{"another session's token", url.Values{"csrf": {randomToken()}, "confirm": {"yes"}}, nil},
			{"cross-site", url.Values{"csrf": {csrf}, "confirm": {"yes"}}, map[string]string{"Sec-Fetch-Site": "cross-site"}},
			{"foreign origin", url.Values{"csrf": {csrf}, "confirm": {"yes"}}, map[string]string{"Origin": "https://evil.example"}},
		} {
			if resp := h.post(path, sess, tc.form, tc.hdr); resp.StatusCode != http.StatusForbidden {
				t.Errorf("POST %s with %s: %d, want 403", path, tc.name, resp.StatusCode)
			}
		}
	}
	if got := h.b.calls(); len(got) != 0 {
		t.Fatalf("the backend acted on a refused POST: %v", got)
	}
	// With the token (and same-origin) the action runs.
	for _, tc := range []struct{ path, want string }{
		{"/ui/people/1001/sync", "enqueue 1001"},
		{"/ui/deadletters/7/redrive", "redrive 7"},
		{"/ui/deadletters/7/purge", "purge 7"},
		{"/ui/approvals/ap1/approve", "approve ap1"},
	} {
		resp := h.post(tc.path, sess, url.Values{"csrf": {csrf}, "confirm": {"yes"}}, map[string]string{"Sec-Fetch-Site": "same-origin"})
		if resp.StatusCode != http.StatusSeeOther {
			t.Errorf("POST %s: %d, want 303", tc.path, resp.StatusCode)
		}
		if calls := h.b.calls(); len(calls) == 0 || calls[len(calls)-1] != tc.want {
			t.Errorf("POST %s: backend calls %v, want %q last", tc.path, calls, tc.want)
		}
	}
	// Approve and purge without the confirmation step only lead to it.
	before := len(h.b.calls())
	for _, path := range []string{"/ui/approvals/ap1/approve", "/ui/deadletters/7/purge"} {
		resp := h.post(path, sess, url.Values{"csrf": {csrf}}, nil)
		if resp.StatusCode != http.StatusSeeOther || strings.HasSuffix(resp.Header.Get("Location"), "s") {
			t.Errorf("POST %s without confirm: %d to %q", path, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	if len(h.b.calls()) != before {
		t.Fatalf("an unconfirmed approve or purge acted: %v", h.b.calls()[before:])
	}
}

func TestConsoleCookieFlags(t *testing.T) {
	for _, tc := range []struct {
		name       string
		tls        bool
		configured bool
		wantSecure bool
	}{
		{"plain HTTP", false, false, false},
		{"TLS", true, false, true},
		{"CONSOLE_SECURE_COOKIE behind a TLS proxy", false, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.SecureCookie = tc.configured })
			sess, _, _ := h.signIn(tc.tls)
			if !sess.HttpOnly || sess.SameSite != http.SameSiteStrictMode || sess.Path != "/ui/" || sess.Secure != tc.wantSecure {
				t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/ui/, Secure=%t", sess, tc.wantSecure)
			}
			if n := len(sess.Value); n < 43 { // 256 bits in base64
				t.Fatalf("session id has %d characters", n)
			}
		})
	}
}

func TestConsoleSessionExpiry(t *testing.T) {
	h := newHarness(t, nil)
	sess, _, _ := h.signIn(false)
	// Idle: 29 minutes between requests keeps it, 30 ends it.
	h.clock.add(29 * time.Minute)
	if resp := h.get("/ui/", sess); resp.StatusCode != http.StatusOK {
		t.Fatalf("after 29 idle minutes: %d", resp.StatusCode)
	}
	h.clock.add(30 * time.Minute)
	if resp := h.get("/ui/", sess); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after 30 idle minutes: %d, want the sign-in redirect", resp.StatusCode)
	}
	// Absolute: used every 20 minutes, it still ends after 8 hours.
	sess, _, _ = h.signIn(false)
	for i := 0; i < 23; i++ { // 7 h 40 min
		h.clock.add(20 * time.Minute)
		if resp := h.get("/ui/approvals", sess); resp.StatusCode != http.StatusOK {
			t.Fatalf("after %d×20 min of use: %d", i+1, resp.StatusCode)
		}
	}
	h.clock.add(20 * time.Minute)
	if resp := h.get("/ui/approvals", sess); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after 8 hours: %d, want the sign-in redirect", resp.StatusCode)
	}
	// Sign-out ends the session at once.
	sess, csrf, _ := h.signIn(false)
	if resp := h.post("/ui/signout", sess, url.Values{"csrf": {csrf}}, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", resp.StatusCode)
	}
	if resp := h.get("/ui/", sess); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after sign-out: %d", resp.StatusCode)
	}
}

func TestConsoleSignInRateLimit(t *testing.T) {
	h := newHarness(t, nil)
	try := func(token string) *http.Response {
		resp := h.do(httptest.NewRequest(http.MethodGet, "/ui/signin", nil))
		pre := cookieNamed(resp, signInCookie)
		m := csrfField.FindStringSubmatch(body(t, resp))
		req := httptest.NewRequest(http.MethodPost, "/ui/signin", strings.NewReader(url.Values{"csrf": {m[1]}, "token": {token}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(pre)
		return h.do(req)
	}
	for i := 0; i < 5; i++ {
		resp := try("wrong-token-wrong-token")
		b := body(t, resp)
		if resp.StatusCode != http.StatusUnauthorized || strings.Contains(b, "wrong-token-wrong-token") {
			t.Fatalf("wrong token %d: %d (the page must not echo the token)", i, resp.StatusCode)
		}
	}
	resp := try(testToken)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || cookieNamed(resp, sessionCookie) != nil {
		t.Fatalf("sixth attempt with the right token: %d, Retry-After %q: want 429 and no session", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	h.clock.add(15 * time.Minute)
	if resp := try(testToken); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after the window: %d", resp.StatusCode)
	}
	// The sign-in form itself needs its own token (login CSRF).
	req := httptest.NewRequest(http.MethodPost, "/ui/signin", strings.NewReader(url.Values{"token": {testToken}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp := h.do(req); resp.StatusCode != http.StatusForbidden || cookieNamed(resp, sessionCookie) != nil {
		t.Fatalf("sign-in without the form token: %d", resp.StatusCode)
	}
}

func TestConsoleOneTimeSignInLink(t *testing.T) {
	h := newHarness(t, nil)
	link := h.link(10 * time.Minute)
	resp := h.get(link, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/" || cookieNamed(resp, sessionCookie) == nil {
		t.Fatalf("first use: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp := h.get(link, nil); resp.StatusCode != http.StatusForbidden || cookieNamed(resp, sessionCookie) != nil {
		t.Fatalf("second use: %d, want 403 and no session", resp.StatusCode)
	}
	// Expired.
	link = h.link(10 * time.Minute)
	h.clock.add(10 * time.Minute)
	if resp := h.get(link, nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("expired link: %d", resp.StatusCode)
	}
	// A listener on a non-loopback address refuses the link and keeps it
	// unused (the code is not consumed by the refusal).
	link = h.link(10 * time.Minute)
	req := httptest.NewRequest(http.MethodGet, link, nil)
	req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 10), Port: 8080}))
	if resp := h.do(req); resp.StatusCode != http.StatusForbidden || cookieNamed(resp, sessionCookie) != nil {
		t.Fatalf("non-loopback listener: %d", resp.StatusCode)
	}
	if resp := h.get(link, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the link refused on a non-loopback listener does not work on loopback afterwards: %d", resp.StatusCode)
	}
	if resp := h.get("/ui/signin/link?code=", nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("empty code: %d", resp.StatusCode)
	}
}

func TestConsoleSecurityHeaders(t *testing.T) {
	h := newHarness(t, nil)
	sess, _, _ := h.signIn(false)
	for _, path := range []string{"/ui/signin", "/ui/", "/ui/people?q=ada", "/ui/people/1001", "/ui/approvals", "/ui/approvals/ap1",
		"/ui/deadletters", "/ui/deadletters/7", "/ui/deadletters/7/purge", "/ui/rules", "/ui/people/1001/preview", "/ui/nope", "/ui/static/console.css"} {
		resp := h.get(path, sess)
		if resp.StatusCode >= 500 {
			t.Errorf("%s: %d %s", path, resp.StatusCode, body(t, resp))
		}
		hd := resp.Header
		csp := hd.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		for k, want := range map[string]string{"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"} {
			if hd.Get(k) != want {
				t.Errorf("%s: %s = %q, want %q", path, k, hd.Get(k), want)
			}
		}
		if !strings.HasPrefix(path, "/ui/static/") && hd.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", path, hd.Get("Cache-Control"))
		}
	}
}

// A person id nobody knows is a 404, not an empty person page.
func TestConsoleUnknownPersonIsNotFound(t *testing.T) {
	h := newHarness(t, nil)
	sess, _, _ := h.signIn(false)
	if resp := h.get("/ui/people/4242", sess); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown person: %d", resp.StatusCode)
	}
	if resp := h.get("/ui/people/1001", sess); resp.StatusCode != http.StatusOK {
		t.Fatalf("known person: %d", resp.StatusCode)
	}
	if resp := h.get("/ui/people/bad%20id", sess); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("invalid person id: %d", resp.StatusCode)
	}
}

func TestConsoleSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/ui/people/1001":   "/ui/people/1001",
		"":                  "/ui/",
		"https://evil.test": "/ui/",
		"//evil.test/ui/":   "/ui/",
		"/ui/../admin":      "/ui/",
		"/ui/signin":        "/ui/",
		"/ui/\\evil":        "/ui/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

// The rules preview shows the loader's problems with line and column and
// previews nothing for invalid rules.
func TestConsoleRulesPreviewShowsProblems(t *testing.T) {
	h := newHarness(t, nil)
	sess, csrf, _ := h.signIn(false)
	bad := "version: 1\nattributes:\n  jobTitle: employee.nosuchfield\n"
	resp := h.post("/ui/rules", sess, url.Values{"csrf": {csrf}, "rules": {bad}}, nil)
	b := body(t, resp)
	if resp.StatusCode != http.StatusUnprocessableEntity || !regexp.MustCompile(`rules\.yaml:\d+:\d+`).MatchString(b) {
		t.Fatalf("invalid rules: %d\n%s", resp.StatusCode, b)
	}
	if calls := h.b.calls(); len(calls) != 0 {
		t.Fatalf("invalid rules were previewed: %v", calls)
	}
}

// Failures spread over many addresses slow those addresses down but do not
// lock out an admin signing in from an address that has not failed.
func TestConsoleSignInLimiterNoGlobalLockout(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	ctx := context.Background()
	newLimiter := func() *failureLimiter {
		return newFailureLimiter(state.NewMem(), slog.New(slog.NewTextHandler(io.Discard, nil)),
			func() time.Time { return now }, 5, 15*time.Minute)
	}
	reserve := func(l *failureLimiter, client string) bool {
		t.Helper()
		_, _, ok, err := l.reserve(ctx, client)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	l := newLimiter()
	for i := 0; i < 200; i++ {
		reserve(l, fmt.Sprintf("198.51.100.%d", i%250)) // wrong attempts: never released
	}
	if !reserve(l, "192.0.2.7") {
		t.Fatal("a client without failures is locked out by other addresses' failures")
	}
	if reserve(l, "198.51.100.1") {
		t.Fatal("a failing address under a wide attack is not slowed down")
	}
	l = newLimiter()
	for i := 0; i < 5; i++ {
		if !reserve(l, "192.0.2.9") {
			t.Fatalf("attempt %d of 5 refused", i+1)
		}
	}
	if reserve(l, "192.0.2.9") {
		t.Fatal("five failures of one address do not block it")
	}
}
