package console

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// Wrong sign-ins sent at the same time from one client: the limiter counts
// each attempt before its token is compared, so no more than the limit of
// them are compared (401 for the form, 403 for the link) and the rest are
// refused with 429, however they interleave. A long guess makes the
// comparison slow, which leaves every concurrent attempt time to pass a
// check that does not count it.
func TestConsoleConcurrentWrongSignInsStopAtTheLimit(t *testing.T) {
	const n = 64
	long := strings.Repeat("x", 1<<20)
	linkReq := httptest.NewRequest(http.MethodGet, "/ui/signin/link?code="+long, nil)
	tests := []struct {
		name    string
		request func(h *harness) *http.Request
		refused int // the status of a compared, wrong attempt
	}{
		{"sign-in form", func(h *harness) *http.Request {
			resp := h.do(httptest.NewRequest(http.MethodGet, "/ui/signin", nil))
			pre := cookieNamed(resp, signInCookie)
			m := csrfField.FindStringSubmatch(body(h.t, resp))
			if pre == nil || m == nil {
				h.t.Fatal("sign-in page without its form token")
			}
			req := httptest.NewRequest(http.MethodPost, "/ui/signin", http.NoBody)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.AddCookie(pre)
			// The form as net/http parses it, ready: the attempts spend
			// their time comparing.
			req.PostForm = url.Values{"csrf": {m[1]}, "token": {long}}
			req.Form = req.PostForm
			return req
		}, http.StatusUnauthorized},
		{"one-time link", func(*harness) *http.Request {
			return linkReq.Clone(context.Background())
		}, http.StatusForbidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// More Ps than cores: the attempts run interleaved by the
			// operating system too, not one after the other.
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4 * runtime.NumCPU()))
			h := newHarness(t, nil)
			limit := h.c.cfg.SignInFailures
			reqs := make([]*http.Request, n)
			for i := range reqs {
				reqs[i] = tc.request(h)
			}
			count := sendAtOnce(reqs, func(int) *harness { return h })
			if count[tc.refused] != limit || count[http.StatusTooManyRequests] != n-limit {
				t.Fatalf("%d concurrent wrong attempts: %v by status; want %d × %d (compared) and %d × 429",
					n, count, limit, tc.refused, n-limit)
			}
		})
	}
}

// A successful sign-in gives its attempt back: an admin who signs in
// correctly while within the limit leaves no failure behind.
func TestConsoleSuccessfulSignInIsNotCountedAsFailure(t *testing.T) {
	h := newHarness(t, nil)
	limit := h.c.cfg.SignInFailures
	reserve := func() (func(), time.Duration, bool) {
		t.Helper()
		release, wait, ok, err := h.c.limiter.reserve(context.Background(), "192.0.2.7")
		if err != nil {
			t.Fatal(err)
		}
		return release, wait, ok
	}
	for range limit - 1 {
		if release, _, ok := reserve(); !ok || release == nil {
			t.Fatal("an attempt within the limit was refused")
		}
	}
	for range 3 {
		release, _, ok := reserve()
		if !ok {
			t.Fatal("a sign-in after limit-1 failures and successes was refused: a success was counted as a failure")
		}
		release()
	}
	if _, _, ok := reserve(); !ok {
		t.Fatal("the last attempt within the limit was refused")
	}
	if _, wait, ok := reserve(); ok || wait <= 0 {
		t.Fatalf("an attempt over the limit: ok=%t wait=%s; want refused with a wait", ok, wait)
	}
}

// The one-time link is accepted only over a loopback connection: the
// client (the remote address) must be on this machine, not only the
// address the request arrived at. A listener bound to 0.0.0.0 that gets a
// request for 127.0.0.1 forwarded to it from elsewhere (port forwarding,
// NAT to the loopback address) sees a loopback local address and a remote
// client; it must refuse, and keep the code unused.
func TestConsoleSignInLinkOnlyFromLoopbackClients(t *testing.T) {
	tests := []struct {
		name         string
		local        net.IP
		remote       string
		wantAccepted bool
	}{
		{"loopback connection", net.IPv4(127, 0, 0, 1), "127.0.0.1:50123", true},
		{"IPv6 loopback connection", net.IPv6loopback, "[::1]:50123", true},
		{"remote client to a loopback local address", net.IPv4(127, 0, 0, 1), "192.0.2.7:50123", false},
		{"remote client to a wildcard listener", net.IPv4(192, 0, 2, 10), "192.0.2.7:50123", false},
		{"loopback client to a non-loopback address", net.IPv4(192, 0, 2, 10), "127.0.0.1:50123", false},
		{"remote address that is no address", net.IPv4(127, 0, 0, 1), "pipe", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			link := h.link(10 * time.Minute)
			req := httptest.NewRequest(http.MethodGet, link, nil)
			req.RemoteAddr = tc.remote
			req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, &net.TCPAddr{IP: tc.local, Port: 8080}))
			resp := h.do(req)
			accepted := resp.StatusCode == http.StatusSeeOther && cookieNamed(resp, sessionCookie) != nil
			if accepted != tc.wantAccepted {
				t.Fatalf("local %s, remote %s: %d (session cookie %t), want accepted=%t",
					tc.local, tc.remote, resp.StatusCode, cookieNamed(resp, sessionCookie) != nil, tc.wantAccepted)
			}
			if !tc.wantAccepted {
				// Refused before the code is looked at: it still works over loopback.
				if resp := h.get(link, nil); resp.StatusCode != http.StatusSeeOther {
					t.Fatalf("the refused link does not work over loopback afterwards: %d", resp.StatusCode)
				}
			}
		})
	}
}

// sendAtOnce sends every request at the same moment, request i through
// harness(i), and counts the answers by status.
func sendAtOnce(reqs []*http.Request, harness func(i int) *harness) map[int]int {
	start := make(chan struct{})
	statuses := make([]int, len(reqs))
	var wg sync.WaitGroup
	for i, req := range reqs {
		h := harness(i)
		wg.Go(func() {
			<-start
			statuses[i] = h.do(req).StatusCode
		})
	}
	close(start)
	wg.Wait()
	count := map[int]int{}
	for _, s := range statuses {
		count[s]++
	}
	return count
}
