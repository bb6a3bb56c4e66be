package console

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/nats-io/nats.go"

	"github.com/personio-entra/personio-entra/queue"
)

// replicas are two consoles, as two receiver replicas behind a load
// balancer run them: each with its own NATS connection to one real
// embedded JetStream server and the product's state bucket, sharing
// nothing else but the clock.
type replicas struct {
	a, b  *harness
	clock *clock
	conns []*nats.Conn
}

func newReplicas(t *testing.T) *replicas {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ns, err := queue.StartEmbedded(t.TempDir(), logger, queue.WithSyncAlways(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	clk := &clock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	rs := &replicas{clock: clk}
	for _, name := range []string{"replica-a", "replica-b"} {
		nc, err := queue.ConnectEmbedded(ns, name, logger)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		q, err := queue.Open(ctx, nc, queue.Config{Partitions: 1}, logger)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		t.Cleanup(q.Close)
		st, err := q.State(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		b := &fakeBackend{}
		c, err := New(Config{AdminToken: testToken, Backend: b, Logger: logger, Now: clk.now, Store: st})
		if err != nil {
			t.Fatal(err)
		}
		r := chi.NewRouter()
		r.Mount(Prefix, c)
		h := &harness{t: t, c: c, b: b, clock: clk, h: r}
		if rs.a == nil {
			rs.a = h
		} else {
			rs.b = h
		}
		rs.conns = append(rs.conns, nc)
	}
	return rs
}

// A session started on one replica is a session on the other: pages, the
// CSRF token of its forms, the flash message left by a POST, and the
// sign-out, whichever replica serves them.
func TestConsoleReplicasShareSessions(t *testing.T) {
	rs := newReplicas(t)
	a, b := rs.a, rs.b
	sess, csrf, _ := a.signIn(false)
	if resp := b.get("/ui/approvals", sess); resp.StatusCode != http.StatusOK {
		t.Fatalf("replica B with A's session: %d, want 200", resp.StatusCode)
	}
	// CSRF token from a page of A, form posted to B; its message shows on A.
	resp := b.post("/ui/people/1001/sync", sess, url.Values{"csrf": {csrf}}, map[string]string{"Sec-Fetch-Site": "same-origin"})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST to B with A's CSRF token: %d, want 303", resp.StatusCode)
	}
	if calls := b.b.calls(); len(calls) != 1 || calls[0] != "enqueue 1001" {
		t.Fatalf("replica B's backend calls: %v", calls)
	}
	if page := body(t, a.get("/ui/people/1001", sess)); !strings.Contains(page, "Person 1001 is queued") {
		t.Fatal("the message B left for the next page does not show on A")
	}
	if page := body(t, b.get("/ui/people/1001", sess)); strings.Contains(page, "Person 1001 is queued") {
		t.Fatal("the message showed twice: A did not take it")
	}
	// A forged token is refused on either.
	for name, h := range map[string]*harness{"A": a, "B": b} {
		if resp := h.post("/ui/people/1001/sync", sess, url.Values{"csrf": {csrf + "x"}}, nil); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("POST to %s with a wrong CSRF token: %d, want 403", name, resp.StatusCode)
		}
	}
	// Sign out on B ends the session on A.
	if resp := b.post("/ui/signout", sess, url.Values{"csrf": {csrf}}, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-out on B: %d", resp.StatusCode)
	}
	for name, h := range map[string]*harness{"A": a, "B": b} {
		if resp := h.get("/ui/", sess); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/ui/signin") {
			t.Fatalf("replica %s after sign-out on B: %d, want the sign-in redirect", name, resp.StatusCode)
		}
	}
}

// Idle and absolute expiry hold across replicas: use on one replica keeps
// the session alive on the other, and neither keeps it past its limits.
func TestConsoleReplicasSessionExpiry(t *testing.T) {
	rs := newReplicas(t)
	a, b := rs.a, rs.b
	sess, _, _ := a.signIn(false)
	// Idle: used on B after 29 minutes, then on A 29 minutes later: alive.
	rs.clock.add(29 * time.Minute)
	if resp := b.get("/ui/", sess); resp.StatusCode != http.StatusOK {
		t.Fatalf("B after 29 idle minutes: %d", resp.StatusCode)
	}
	rs.clock.add(29 * time.Minute)
	if resp := a.get("/ui/", sess); resp.StatusCode != http.StatusOK {
		t.Fatalf("A 29 minutes after its use on B: %d (B's use did not count)", resp.StatusCode)
	}
	rs.clock.add(30 * time.Minute)
	if resp := b.get("/ui/", sess); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("B after 30 idle minutes: %d, want the sign-in redirect", resp.StatusCode)
	}
	if resp := a.get("/ui/", sess); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("A after B found the session idle: %d, want the sign-in redirect", resp.StatusCode)
	}
	if _, _, err := a.c.cfg.Store.Get(context.Background(), storeKey(sessionPrefix, sess.Value)); !isNotFound(err) {
		t.Fatalf("the expired session's record is still in the bucket (%v)", err)
	}
	// Absolute: used every 20 minutes, alternately on A and B, it still
	// ends after 8 hours.
	sess, _, _ = b.signIn(false)
	for i := range 23 { // 7 h 40 min
		rs.clock.add(20 * time.Minute)
		h := []*harness{a, b}[i%2]
		if resp := h.get("/ui/approvals", sess); resp.StatusCode != http.StatusOK {
			t.Fatalf("after %d×20 min of use: %d", i+1, resp.StatusCode)
		}
	}
	rs.clock.add(20 * time.Minute)
	for name, h := range map[string]*harness{"A": a, "B": b} {
		if resp := h.get("/ui/approvals", sess); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("%s after 8 hours: %d, want the sign-in redirect", name, resp.StatusCode)
		}
	}
}

// Wrong sign-ins sent at the same time from one client, spread over both
// replicas, hit one limit: no more than SignInFailures of them are
// compared (401) and the rest are refused with 429.
func TestConsoleReplicasConcurrentWrongSignInsStopAtTheLimit(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4 * runtime.NumCPU()))
	const n = 40
	rs := newReplicas(t)
	limit := rs.a.c.cfg.SignInFailures
	reqs := make([]*http.Request, n)
	for i := range reqs {
		h := []*harness{rs.a, rs.b}[i%2]
		resp := h.do(httptest.NewRequest(http.MethodGet, "/ui/signin", nil))
		pre := cookieNamed(resp, signInCookie)
		m := csrfField.FindStringSubmatch(body(t, resp))
		if pre == nil || m == nil {
			t.Fatal("sign-in page without its form token")
		}
		req := httptest.NewRequest(http.MethodPost, "/ui/signin", http.NoBody)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(pre)
		req.PostForm = url.Values{"csrf": {m[1]}, "token": {"wrong-token-wrong-token"}}
		req.Form = req.PostForm
		reqs[i] = req
	}
	count := sendAtOnce(reqs, func(i int) *harness { return []*harness{rs.a, rs.b}[i%2] })
	if count[http.StatusUnauthorized] != limit || count[http.StatusTooManyRequests] != n-limit {
		t.Fatalf("%d concurrent wrong sign-ins over two replicas: %v by status; want %d × 401 and %d × 429",
			n, count, limit, n-limit)
	}
	// The right token is refused on both as well until the window passes.
	for name, h := range map[string]*harness{"A": rs.a, "B": rs.b} {
		if resp := tryToken(t, h, testToken); resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("right token on %s over the limit: %d, want 429", name, resp.StatusCode)
		}
	}
	rs.clock.add(15 * time.Minute)
	if resp := tryToken(t, rs.b, testToken); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("right token on B after the window: %d, want 303", resp.StatusCode)
	}
}

// tryToken posts the sign-in form with token from 127.0.0.1.
func tryToken(t *testing.T, h *harness, token string) *http.Response {
	t.Helper()
	resp := h.do(httptest.NewRequest(http.MethodGet, "/ui/signin", nil))
	pre := cookieNamed(resp, signInCookie)
	m := csrfField.FindStringSubmatch(body(t, resp))
	if pre == nil || m == nil {
		t.Fatal("sign-in page without its form token")
	}
	req := httptest.NewRequest(http.MethodPost, "/ui/signin", strings.NewReader(url.Values{"csrf": {m[1]}, "token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(pre)
	return h.do(req)
}

// A one-time sign-in code works once across replicas: used on A, it is
// refused on B; redeemed on both at the same time, one of them signs in.
func TestConsoleReplicasOneTimeCodeSingleUse(t *testing.T) {
	rs := newReplicas(t)
	link := rs.a.link(10 * time.Minute)
	if resp := rs.a.get(link, nil); resp.StatusCode != http.StatusSeeOther || cookieNamed(resp, sessionCookie) == nil {
		t.Fatalf("first use on A: %d", resp.StatusCode)
	}
	if resp := rs.b.get(link, nil); resp.StatusCode != http.StatusForbidden || cookieNamed(resp, sessionCookie) != nil {
		t.Fatalf("second use on B: %d, want 403 and no session", resp.StatusCode)
	}
	// A code issued on B works on A.
	if resp := rs.a.get(rs.b.link(10*time.Minute), nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("B's code on A: %d", resp.StatusCode)
	}
	for round := range 10 {
		link := rs.b.link(10 * time.Minute)
		start := make(chan struct{})
		var wg sync.WaitGroup
		signedIn, statuses := make([]bool, 2), make([]int, 2)
		for i, h := range []*harness{rs.a, rs.b} {
			// Each round from its own loopback address: the refused
			// attempt counts as a failed sign-in of its client.
			req := httptest.NewRequest(http.MethodGet, link, nil)
			req.RemoteAddr = fmt.Sprintf("127.0.%d.%d:50000", round, i+1)
			req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey,
				&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}))
			wg.Go(func() {
				<-start
				resp := h.do(req)
				statuses[i] = resp.StatusCode
				signedIn[i] = resp.StatusCode == http.StatusSeeOther && cookieNamed(resp, sessionCookie) != nil
			})
		}
		close(start)
		wg.Wait()
		if signedIn[0] == signedIn[1] {
			t.Fatalf("round %d: one code redeemed on A and B at once: statuses %v; want exactly one sign-in", round, statuses)
		}
	}
}

// The bucket holds no session id or code, only their digests.
func TestConsoleReplicasStoreNoSecrets(t *testing.T) {
	rs := newReplicas(t)
	sess, csrf, _ := rs.a.signIn(false)
	link := rs.b.link(10 * time.Minute)
	code := strings.TrimPrefix(link, Prefix+"/signin/link?code=")
	st := rs.a.c.cfg.Store
	ctx := context.Background()
	keys, err := st.Keys(ctx, "console.")
	if err != nil {
		t.Fatal(err)
	}
	var sessions int
	for _, k := range keys {
		v, _, err := st.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{sess.Value, code, testToken} {
			if strings.Contains(k, secret) || strings.Contains(string(v), secret) {
				t.Fatalf("the bucket's %s carries a secret: %s", k, v)
			}
		}
		if strings.HasPrefix(k, sessionPrefix) {
			sessions++
			if !strings.Contains(string(v), csrf) {
				t.Fatalf("session record %s without its CSRF token: %s", k, v)
			}
		}
	}
	if sessions != 1 {
		t.Fatalf("%d session records in %v, want 1", sessions, keys)
	}
}

// Without the bucket the console fails closed: sign-in (form or link) and
// pages answer 503 and set no session; the other replica, still connected,
// goes on serving the same session.
func TestConsoleReplicasStoreUnreachableFailsClosed(t *testing.T) {
	rs := newReplicas(t)
	sess, _, _ := rs.a.signIn(false)
	link := rs.b.link(10 * time.Minute)
	rs.conns[0].Close() // replica A loses NATS
	resp := tryToken(t, rs.a, testToken)
	b := body(t, resp)
	if resp.StatusCode != http.StatusServiceUnavailable || cookieNamed(resp, sessionCookie) != nil ||
		!strings.Contains(b, "session store") || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("sign-in on A without the bucket: %d (session cookie %t)\n%s", resp.StatusCode, cookieNamed(resp, sessionCookie) != nil, b)
	}
	if resp := rs.a.get(link, nil); resp.StatusCode != http.StatusServiceUnavailable || cookieNamed(resp, sessionCookie) != nil {
		t.Fatalf("one-time link on A without the bucket: %d, want 503", resp.StatusCode)
	}
	for _, path := range []string{"/ui/", "/ui/approvals"} {
		if resp := rs.a.get(path, sess); resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("GET %s on A without the bucket: %d, want 503", path, resp.StatusCode)
		}
	}
	if resp := rs.b.get("/ui/approvals", sess); resp.StatusCode != http.StatusOK {
		t.Fatalf("B with the session: %d, want 200", resp.StatusCode)
	}
	if resp := rs.b.get(link, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the link A could not redeem works on B: %d", resp.StatusCode)
	}
}

// Page views write the session's last use at most once a minute: views
// within the minute leave the record's revision alone, the first one after
// it writes.
func TestConsoleReplicasLastSeenWrittenAtMostOncePerMinute(t *testing.T) {
	rs := newReplicas(t)
	sess, _, _ := rs.a.signIn(false)
	key := storeKey(sessionPrefix, sess.Value)
	rev := func() uint64 {
		t.Helper()
		_, r, err := rs.a.c.cfg.Store.Get(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	before := rev()
	for i, h := range []*harness{rs.a, rs.b, rs.a, rs.b} {
		rs.clock.add(10 * time.Second)
		if resp := h.get("/ui/approvals", sess); resp.StatusCode != http.StatusOK {
			t.Fatalf("view %d: %d", i, resp.StatusCode)
		}
	}
	if after := rev(); after != before {
		t.Fatalf("four views within 40 s wrote the session (revision %d → %d)", before, after)
	}
	rs.clock.add(20 * time.Second)
	if resp := rs.b.get("/ui/approvals", sess); resp.StatusCode != http.StatusOK {
		t.Fatalf("view after a minute: %d", resp.StatusCode)
	}
	if after := rev(); after == before {
		t.Fatal("a view a minute after the last write did not record the use")
	}
}

// MaxSessions bounds the live sessions: a new sign-in over the bound ends
// the oldest session.
func TestConsoleMaxSessionsDropsTheOldest(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxSessions = 3 })
	var sessions []*http.Cookie
	for range 4 {
		sess, _, _ := h.signIn(false)
		sessions = append(sessions, sess)
		h.clock.add(time.Second)
	}
	for i, sess := range sessions {
		want := http.StatusOK
		if i == 0 {
			want = http.StatusSeeOther
		}
		if resp := h.get("/ui/", sess); resp.StatusCode != want {
			t.Fatalf("session %d of 4 with at most 3: %d, want %d", i+1, resp.StatusCode, want)
		}
	}
}
