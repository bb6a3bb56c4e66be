//go:build !nosimulators

package main

import (
	"context"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/personio-entra/personio-entra/cmd/internal/devstack"
	"github.com/personio-entra/personio-entra/deploy"
	"github.com/personio-entra/personio-entra/handlers/console"
	"github.com/personio-entra/personio-entra/queue"
)

// signInLink issues a one-time sign-in link valid for a minute.
func signInLink(t *testing.T, s *stack) string {
	t.Helper()
	link, err := s.app.console.SignInLink(t.Context(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return "http://" + s.cfg.ListenAddr + link
}

// consoleClient signs in with a one-time link and returns an HTTP client
// that carries the session, and the session's CSRF token.
func consoleClient(t *testing.T, s *stack) (*http.Client, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: time.Minute}
	resp, err := c.Get(signInLink(t, s))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(b)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("sign in with the link: %d\n%s", resp.StatusCode, b)
	}
	return c, string(m[1])
}

// The console runs inside the product: no page shows a secret, the admin
// API keeps its bearer token, and the overview reports the syncs.
func TestConsoleOnTheRunningProduct(t *testing.T) {
	s := newTestStack(t, stackOptions{})
	convergeE2E(t, s)
	c, csrf := consoleClient(t, s)
	base := "http://" + s.cfg.ListenAddr

	t.Run("no page shows a secret", func(t *testing.T) {
		secrets := map[string]string{
			"admin token":            s.adminToken,
			"webhook token":          s.webhookToken,
			"Personio client secret": devstack.PersonioClientSecret,
			"Graph client secret":    s.entra.ClientSecret(),
		}
		check := func(what string, resp *http.Response, err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode >= 500 {
				t.Errorf("%s: %d\n%s", what, resp.StatusCode, b)
			}
			for name, v := range secrets {
				if v == "" {
					t.Fatalf("secret %s is empty", name)
				}
				if strings.Contains(string(b), v) {
					t.Errorf("%s shows the %s", what, name)
				}
			}
		}
		n := 0
		err := chi.Walk(s.app.console.Routes(), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
			if method != http.MethodGet {
				return nil
			}
			path := console.Prefix + strings.NewReplacer("{id}", "1006", "{seq}", "1", "*", "console.css").Replace(route)
			resp, err := c.Get(base + path)
			check("GET "+path, resp, err)
			n++
			return nil
		})
		if err != nil || n < 10 {
			t.Fatalf("walked %d GET routes: %v", n, err)
		}
		for _, q := range []string{"/ui/people?q=jensen", "/ui/people/1006/preview", "/ui/signin"} {
			resp, err := c.Get(base + q)
			check("GET "+q, resp, err)
		}
		// The rules preview's answer, and a failed sign-in.
		var buf strings.Builder
		mw := multipart.NewWriter(&buf)
		_ = mw.WriteField("csrf", csrf)
		_ = mw.WriteField("rules", string(deploy.RulesExample))
		mw.Close()
		req, _ := http.NewRequest(http.MethodPost, base+"/ui/rules", strings.NewReader(buf.String()))
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.Header.Set("Origin", base)
		resp, err := c.Do(req)
		check("POST /ui/rules", resp, err)
		resp, err = http.PostForm(base+"/ui/signin", url.Values{"token": {s.adminToken + "x"}})
		check("POST /ui/signin", resp, err)
	})

	t.Run("search by name, email and person id", func(t *testing.T) {
		emp, err := s.app.source.GetEmployee(context.Background(), "1006")
		if err != nil || emp.Email == "" {
			t.Fatalf("person 1006: %+v %v", emp, err)
		}
		for _, q := range []string{"jensen", "Renée Jensen", emp.Email, "1006"} {
			resp, err := c.Get(base + "/ui/people?q=" + url.QueryEscape(q))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			onPage := resp.Request.URL.Path == "/ui/people/1006" // an exact id goes straight to the person
			if resp.StatusCode != http.StatusOK || !(onPage || strings.Contains(string(b), `/ui/people/1006"`)) {
				t.Errorf("search %q: %d, no link to person 1006", q, resp.StatusCode)
			}
		}
		resp, err := c.Get(base + "/ui/people?q=" + url.QueryEscape("nobody-by-this-name"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), "Nobody in Personio matches") {
			t.Errorf("a search without results says:\n%s", b)
		}
	})

	t.Run("the admin API keeps its bearer token", func(t *testing.T) {
		resp, err := c.Get(base + "/admin/approvals") // the console's session cookie is not for /admin
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("admin API with the console's cookie: %d, want 401", resp.StatusCode)
		}
		var aps []any
		adminCall(t, s, http.MethodGet, "/approvals", &aps)
	})

	t.Run("the overview shows the last syncs", func(t *testing.T) {
		adminCall(t, s, http.MethodPost, "/sync", nil)
		outs, err := readSyncOutcomes(context.Background(), s.app.state)
		if err != nil {
			t.Fatal(err)
		}
		if len(outs) == 0 || outs[0].Kind != "complete" || outs[0].Trigger != "admin API" || outs[0].Error != "" || outs[0].Report.Employees == 0 {
			t.Fatalf("recorded syncs: %+v", outs)
		}
		resp, err := c.Get(base + "/ui/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), "admin API") || !strings.Contains(string(b), "succeeded") {
			t.Fatalf("overview without the last sync:\n%s", b)
		}
	})
}

// Without ADMIN_TOKEN there is no console (and no admin API); with it
// there is one.
func TestConsoleOnlyWithAdminToken(t *testing.T) {
	q := &queue.Queue{} // not used while the console is built
	c, err := newConsole(&app{cfg: Config{}, q: q, log: slog.Default()})
	if err != nil || c != nil {
		t.Fatalf("newConsole without ADMIN_TOKEN = %v, %v; want none", c, err)
	}
	c, err = newConsole(&app{cfg: Config{AdminToken: strings.Repeat("t", 32)}, q: q, state: queue.StateStore{}, log: slog.Default()}) // neither is used while the console is built
	if err != nil || c == nil {
		t.Fatalf("newConsole with ADMIN_TOKEN = %v, %v; want a console", c, err)
	}
}

// The demo prints the console and a one-click sign-in link that works once
// and leaves the browser on a clean URL.
func TestConsoleDemoSignInLink(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the demo")
	}
	d := startDemo(t, "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0")
	m := d.waitOutput(t, regexp.MustCompile(`one-click sign-in (http://127\.0\.0\.1:\d+/ui/signin/link\?code=[A-Za-z0-9_-]{43}) `), 60*time.Second)
	d.waitOutput(t, regexp.MustCompile(`console +http://127\.0\.0\.1:\d+/ui/ `), time.Second)
	noRedirect := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for i, want := range []int{http.StatusSeeOther, http.StatusForbidden} {
		resp, err := noRedirect.Get(m[1])
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("use %d of the link: %d, want %d", i+1, resp.StatusCode, want)
		}
		if want == http.StatusSeeOther && resp.Header.Get("Location") != "/ui/" {
			t.Fatalf("the link redirects to %q, want the clean /ui/", resp.Header.Get("Location"))
		}
	}
}

// The console compares the admin token, session ids, CSRF tokens and
// sign-in codes in constant time only (the inspector of security_test.go).
func TestConsoleTokensComparedInConstantTime(t *testing.T) {
	for _, file := range []string{"../../handlers/console/security.go", "../../handlers/console/routes.go", "../../handlers/console/session.go"} {
		t.Run(filepath.Base(file), func(t *testing.T) {
			v, ct, err := tokenComparisons(file, nil)
			if err != nil {
				t.Fatal(err)
			}
			if file == "../../handlers/console/security.go" && !ct {
				t.Errorf("%s never calls subtle.ConstantTimeCompare", file)
			}
			for _, s := range v {
				t.Errorf("variable-time comparison: %s", s)
			}
		})
	}
}
