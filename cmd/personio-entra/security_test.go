package main

// Security checks that run with every `go test`: tokens compared in
// constant time, no secret or token in any log line, the admin API closed
// without its token, and a container that does not run as root.

import (
	"bufio"
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/personio-entra/personio-entra/handlers"
	"github.com/personio-entra/personio-entra/provisioning/entra/entratest"
	"github.com/personio-entra/personio-entra/provisioning/personio/personiotest"
)

// secretish names operands that hold a token, a secret or what is compared
// with one.
var secretish = regexp.MustCompile(`(?i)(token|secret|digest|auth|bearer|header|^got$|^want$)`)

// isSecretOperand reports whether e (after parentheses, conversions and
// slicing) is a secret-holding variable or field, or the Authorization
// header itself.
func isSecretOperand(e ast.Expr) bool {
	for {
		switch x := e.(type) {
		case *ast.ParenExpr:
			e = x.X
			continue
		case *ast.SliceExpr:
			e = x.X
			continue
		case *ast.IndexExpr:
			e = x.X
			continue
		case *ast.CallExpr:
			// string(x), []byte(x): conversions of one argument.
			if len(x.Args) == 1 {
				switch f := x.Fun.(type) {
				case *ast.Ident:
					if f.Name == "string" {
						e = x.Args[0]
						continue
					}
				case *ast.ArrayType:
					e = x.Args[0]
					continue
				case *ast.SelectorExpr:
					// r.Header.Get("Authorization")
					if lit, ok := x.Args[0].(*ast.BasicLit); ok && f.Sel.Name == "Get" && strings.EqualFold(strings.Trim(lit.Value, `"`), "Authorization") {
						return true
					}
				}
			}
			return false
		case *ast.Ident:
			return secretish.MatchString(x.Name)
		case *ast.SelectorExpr:
			return secretish.MatchString(x.Sel.Name)
		default:
			return false
		}
	}
}

// isEmptyOrLiteral: comparing a secret with "" or nil only checks presence.
func isEmptyOrLiteral(e ast.Expr) bool {
	switch x := e.(type) {
	case *ast.BasicLit:
		return true
	case *ast.Ident:
		return x.Name == "nil"
	}
	return false
}

// tokenComparisons inspects Go source: it returns the places that compare
// a secret with ==, != or a variable-time equality function, and whether
// subtle.ConstantTimeCompare is called at all.
func tokenComparisons(filename string, src any) (violations []string, constantTime bool, err error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filename, src, 0)
	if err != nil {
		return nil, false, fmt.Errorf("parse %s: %w", filename, err)
	}
	variableTime := map[string]bool{"bytes.Equal": true, "strings.EqualFold": true, "strings.Compare": true,
		"bytes.Compare": true, "reflect.DeepEqual": true, "slices.Equal": true}
	ast.Inspect(f, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.BinaryExpr:
			if x.Op != token.EQL && x.Op != token.NEQ {
				return true
			}
			if isEmptyOrLiteral(x.X) || isEmptyOrLiteral(x.Y) {
				return true
			}
			if isSecretOperand(x.X) || isSecretOperand(x.Y) {
				violations = append(violations, fmt.Sprintf("%s: %s comparison of a secret", fset.Position(x.Pos()), x.Op))
			}
		case *ast.CallExpr:
			sel, ok := x.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			pkg, ok := sel.X.(*ast.Ident)
			if !ok {
				return true
			}
			name := pkg.Name + "." + sel.Sel.Name
			if name == "subtle.ConstantTimeCompare" {
				constantTime = true
			}
			if variableTime[name] {
				for _, a := range x.Args {
					if isSecretOperand(a) {
						violations = append(violations, fmt.Sprintf("%s: %s on a secret", fset.Position(x.Pos()), name))
						break
					}
				}
			}
		}
		return true
	})
	return violations, constantTime, nil
}

// The inspection itself must catch what it is meant to catch.
func TestTokenComparisonInspector(t *testing.T) {
	tests := []struct {
		name           string
		body           string
		wantViolations int
		wantConstant   bool
	}{
		{"constant time", `if subtle.ConstantTimeCompare(got, want) != 1 { return }`, 0, true},
		{"presence check", `if token == "" || header != "" { return }`, 0, false},
		{"plain equality", `if got == want { return }`, 1, false},
		{"inequality of a field", `if r.Header.Get("X") != w.token { return }`, 1, false},
		{"header equality", `if r.Header.Get("Authorization") == expected { return }`, 1, false},
		{"converted", `if string(digest[:]) == other { return }`, 1, false},
		{"bytes.Equal", `if bytes.Equal([]byte(secret), b) { return }`, 1, false},
		{"EqualFold", `if strings.EqualFold(auth, "x") { return }`, 1, false},
		{"unrelated", `if status == 200 && name != other { return }`, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := "package p\nfunc f() {\n" + tc.body + "\n}\n"
			v, ct, err := tokenComparisons("snippet.go", src)
			if err != nil {
				t.Fatal(err)
			}
			if len(v) != tc.wantViolations || ct != tc.wantConstant {
				t.Errorf("violations %v (want %d), constant-time %t (want %t)", v, tc.wantViolations, ct, tc.wantConstant)
			}
		})
	}
}

// The webhook token and the admin token are compared with
// crypto/subtle, never with ==, bytes.Equal or strings.EqualFold.
func TestTokensComparedInConstantTime(t *testing.T) {
	for _, file := range []string{"../../handlers/webhook.go", "../../handlers/admin.go"} {
		t.Run(filepath.Base(file), func(t *testing.T) {
			v, ct, err := tokenComparisons(file, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !ct {
				t.Errorf("%s never calls subtle.ConstantTimeCompare", file)
			}
			for _, s := range v {
				t.Errorf("variable-time comparison: %s", s)
			}
		})
	}
}

// lockedBuffer collects log output from many goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// securityStack starts the local installation with a debug logger writing
// to a buffer.
func securityStack(t *testing.T) (*stack, *lockedBuffer, *slog.Logger, func()) {
	t.Helper()
	logs := &lockedBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := startStack(ctx, stackOptions{dataDir: t.TempDir(), syncInterval: time.Hour, guardMax: 100, logger: logger})
	if err != nil {
		t.Fatalf("start the stack: %v", err)
	}
	var once sync.Once
	closeStack := func() {
		once.Do(func() {
			if err := s.Close(); err != nil {
				t.Logf("stack stopped: %v", err)
			}
		})
	}
	t.Cleanup(closeStack)
	// The first full sync creates the accounts the tests build on: 1001
	// (the joiner's manager) and 1019 (the leaver).
	for _, id := range []string{"1001", "1019"} {
		if _, err := waitUser(ctx, s, id, func(u entratest.User) bool { return u.AccountEnabled }); err != nil {
			t.Fatal(err)
		}
	}
	return s, logs, logger, closeStack
}

func postWebhook(t *testing.T, url, auth, body string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// fetchToken asks a simulator's token endpoint for a token with the
// product's credential, to learn the issued tokens' form.
func fetchToken(t *testing.T, c *http.Client, endpoint string, form url.Values) string {
	t.Helper()
	resp, err := c.PostForm(endpoint, form)
	if err != nil {
		t.Fatalf("token request to %s: %v", endpoint, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`"access_token":"([^"]+)"`).FindSubmatch(b)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("token request to %s: %d %s", endpoint, resp.StatusCode, b)
	}
	return string(m[1])
}

// No secret and no token reaches a log line at any level, through a
// joiner, a leaver, a rejected webhook and a failed Entra login.
func TestNoSecretsInLogs(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole stack")
	}
	s, logs, logger, closeStack := securityStack(t)
	ctx := context.Background()

	// Joiner: a real webhook from the Personio simulator.
	s.personio.UpsertPerson(personiotest.Person{
		ID: "3001", FirstName: "Ines", LastName: "Quast", Email: "ines.private@example.org", Gender: "FEMALE",
		Employments: []personiotest.Employment{{
			ID: "e3001", Status: "ACTIVE", Type: "INTERNAL", Position: personiotest.Position{Title: "Analyst"},
			Supervisor: &personiotest.IDRef{ID: "1001"}, Office: &personiotest.IDRef{ID: "o1"},
			OrgUnits:            []personiotest.OrgUnitRef{{Type: "department", ID: "d1"}},
			LegalEntity:         &personiotest.IDRef{ID: "le1"}, // in the rules' scope
			EmploymentStartDate: time.Now().AddDate(0, 0, -3).Format(time.DateOnly),
		}},
	})
	if _, err := waitUser(ctx, s, "3001", func(u entratest.User) bool { return u.AccountEnabled }); err != nil {
		t.Fatalf("%v\nlog:\n%s", err, lastLines(logs.String(), 30))
	}
	// Leaver: last working day yesterday.
	s.personio.UpdatePerson("1019", func(p *personiotest.Person) {
		yesterday := time.Now().AddDate(0, 0, -1).Format(time.DateOnly)
		p.Employments[0].Termination = &personiotest.Termination{TerminationDate: yesterday, LastWorkingDay: yesterday, Type: "EMPLOYEE"}
		p.Employments[0].Status = "INACTIVE"
	})
	if _, err := waitUser(ctx, s, "1019", func(u entratest.User) bool { return !u.AccountEnabled }); err != nil {
		t.Fatal(err)
	}
	// Rejected webhooks: a wrong token, and the right one with a scheme added.
	wrongWebhookToken := "wrong-" + randomToken()
	body := `{"company_id":"` + s.cfg.PersonioCompanyID + `","event_name":"person.updated","occurred_at":"2026-11-27T08:00:00Z","payload":{"person":{"id":"1001"}}}`
	for _, auth := range []string{wrongWebhookToken, "Bearer " + s.webhookToken} {
		if code := postWebhook(t, s.webhookURL, auth, body); code != http.StatusUnauthorized {
			t.Fatalf("webhook with a wrong token: %d, want 401", code)
		}
	}
	// Failed Entra login: the product with a wrong client secret.
	wrongEntraSecret := "wrong-entra-secret-" + randomToken()
	bad := s.cfg
	bad.EntraClientSecret = wrongEntraSecret
	a, err := newApp(ctx, bad, logger, nil, appOptions{entraHTTP: s.entra.Client()})
	if err != nil {
		t.Fatalf("app with a wrong Entra secret: %v", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = a.dir.Check(cctx)
	cancel()
	if err == nil {
		t.Fatal("Entra check with a wrong client secret succeeded")
	}
	logger.Error("entra check failed", slog.Any("err", err)) // as `check` reports it

	// The bearer tokens the simulators issue: Personio hands out the same
	// token until it expires (docs/personio-api.md#authentication), so these are the ones the
	// product used; Entra tokens are recognised by their form.
	personioTokens := []string{
		fetchToken(t, http.DefaultClient, s.personio.URL()+"/v2/auth/token", url.Values{"grant_type": {"client_credentials"},
			"client_id": {s.cfg.PersonioClientID}, "client_secret": {s.cfg.PersonioClientSecret}}),
	}
	entraToken := fetchToken(t, s.entra.Client(), s.entra.AuthorityHost()+s.entra.TenantID()+"/oauth2/v2.0/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {s.entra.ClientID()}, "client_secret": {s.entra.ClientSecret()},
		"scope": {"https://graph.microsoft.com/.default"}})
	issued := []*regexp.Regexp{
		regexp.MustCompile(`papi-[0-9a-f]{16,}`), // Personio simulator tokens
		// Entra simulator tokens are JWT-shaped, like Entra's.
		regexp.MustCompile(`eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{40,}`),
		regexp.MustCompile(`(?i)bearer [A-Za-z0-9._~+/-]{16,}`),
	}
	for _, tok := range append(personioTokens, entraToken) {
		matched := false
		for _, re := range issued {
			matched = matched || re.MatchString(tok)
		}
		if !matched {
			t.Fatalf("an issued token %.8s… matches none of the token patterns; the log scan would miss it", tok)
		}
	}

	// Flush: stop the stack so that every log line is written.
	closeStack()
	out := logs.String()
	for _, want := range []string{`"level":"DEBUG"`, "webhook refused", "3001"} {
		if !strings.Contains(out, want) {
			t.Fatalf("the captured log lacks %q: the scan would prove nothing", want)
		}
	}
	secrets := map[string]string{
		"webhook token":           s.webhookToken,
		"admin token":             s.adminToken,
		"Entra client secret":     s.cfg.EntraClientSecret,
		"wrong Entra secret":      wrongEntraSecret,
		"Personio client secret":  s.cfg.PersonioClientSecret,
		"wrong webhook token":     wrongWebhookToken,
		"Personio bearer token":   personioTokens[0],
		"Entra bearer token (ex)": entraToken,
	}
	lines := 0
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		lines++
		for name, secret := range secrets {
			if secret != "" && strings.Contains(line, secret) {
				t.Errorf("the %s appears in a log line: %.200s", name, line)
			}
		}
		for _, re := range issued {
			if m := re.FindString(line); m != "" {
				t.Errorf("an issued bearer token (%.12s…) appears in a log line: %.200s", m, line)
			}
		}
	}
	t.Logf("scanned %d log lines (all levels, debug included)", lines)
}

// Behaviour without timing: only the exact token opens the webhook and
// the admin API; near misses (prefix, suffix, case, other scheme) do not.
func TestTokenChecks(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole stack")
	}
	s, _, logger, _ := securityStack(t)
	body := `{"company_id":"` + s.cfg.PersonioCompanyID + `","event_name":"person.updated","occurred_at":"2026-11-27T08:00:00Z","payload":{"person":{"id":"1001"}}}`

	// Rotation: two tokens accepted at once.
	oldTok, newTok := randomToken(), randomToken()
	wh, err := handlers.NewWebhook(handlers.WebhookConfig{Tokens: []string{oldTok, newTok}, Logger: logger}, s.app.q)
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	wh.Routes(r)
	srv := httptest.NewServer(r)
	defer srv.Close()
	rotURL := srv.URL + handlers.WebhookPath

	flip := func(s string) string { // same length, last character changed
		b := []byte(s)
		b[len(b)-1] ^= 1
		return string(b)
	}
	webhookCases := []struct {
		name string
		url  string
		auth string
		ok   bool
	}{
		{"exact token", s.webhookURL, s.webhookToken, true},
		{"no header", s.webhookURL, "", false},
		{"same length, last byte differs", s.webhookURL, flip(s.webhookToken), false},
		{"prefix", s.webhookURL, s.webhookToken[:len(s.webhookToken)-1], false},
		{"token plus suffix", s.webhookURL, s.webhookToken + "x", false},
		{"upper case", s.webhookURL, strings.ToUpper(s.webhookToken), false},
		{"with a Bearer scheme", s.webhookURL, "Bearer " + s.webhookToken, false},
		{"admin token on the webhook", s.webhookURL, s.adminToken, false},
		{"rotation: old token", rotURL, oldTok, true},
		{"rotation: new token", rotURL, newTok, true},
		{"rotation: neither", rotURL, flip(newTok), false},
	}
	for _, tc := range webhookCases {
		t.Run("webhook/"+tc.name, func(t *testing.T) {
			code := postWebhook(t, tc.url, tc.auth, body)
			if tc.ok != (code == http.StatusAccepted || code == http.StatusOK) || (!tc.ok && code != http.StatusUnauthorized) {
				t.Errorf("status %d, want accepted=%t (401 when refused)", code, tc.ok)
			}
		})
	}

	// Every admin endpoint needs the bearer token (401 without).
	endpoints := []struct{ method, path string }{
		{http.MethodGet, "/plan/1001"}, {http.MethodGet, "/plan"}, {http.MethodPost, "/sync/1001"},
		{http.MethodGet, "/audit?employee=1001"}, {http.MethodGet, "/approvals"}, {http.MethodPost, "/approvals/abc/approve"},
		{http.MethodGet, "/deadletters"}, {http.MethodPost, "/deadletters/1/redrive"}, {http.MethodGet, "/nonexistent"},
	}
	auths := []struct {
		name string
		auth string
		ok   bool
	}{
		{"none", "", false},
		{"token without scheme", s.adminToken, false},
		{"wrong token", "Bearer " + flip(s.adminToken), false},
		{"webhook token", "Bearer " + s.webhookToken, false},
		{"lower-case scheme", "bearer " + s.adminToken, false},
		{"correct", "Bearer " + s.adminToken, true},
	}
	client := &http.Client{Timeout: 2 * time.Minute}
	for _, ep := range endpoints {
		for _, a := range auths {
			if a.ok && ep.method != http.MethodGet {
				continue // authorised writes are tested with the admin API itself
			}
			t.Run("admin/"+ep.method+ep.path+"/"+a.name, func(t *testing.T) {
				req, _ := http.NewRequest(ep.method, s.adminURL+ep.path, nil)
				if a.auth != "" {
					req.Header.Set("Authorization", a.auth)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if got := resp.StatusCode == http.StatusUnauthorized; got == a.ok {
					t.Errorf("status %d with %s authorization", resp.StatusCode, a.name)
				}
			})
		}
	}
}

// finalStageUser returns the USER of the Dockerfile's last stage ("" when
// it has none, which means root).
func finalStageUser(dockerfile string) string {
	user := ""
	sc := bufio.NewScanner(strings.NewReader(dockerfile))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		switch strings.ToUpper(fields[0]) {
		case "FROM":
			user = "" // a new stage starts as root
		case "USER":
			if len(fields) > 1 {
				user = fields[1]
			}
		}
	}
	return user
}

// nonRootNumeric: a numeric uid (and gid) other than 0, so that Kubernetes'
// runAsNonRoot can verify it without reading /etc/passwd.
func nonRootNumeric(user string) error {
	if user == "" {
		return fmt.Errorf("no USER in the final stage: the container runs as root")
	}
	for i, part := range strings.SplitN(user, ":", 2) {
		n, err := strconv.Atoi(part)
		if err != nil {
			return fmt.Errorf("USER %q: %s %q is not numeric", user, []string{"uid", "gid"}[i], part)
		}
		if n == 0 {
			return fmt.Errorf("USER %q: %s 0 is root", user, []string{"uid", "gid"}[i])
		}
	}
	return nil
}

func TestContainerRunsAsNonRoot(t *testing.T) {
	tests := []struct {
		name       string
		dockerfile string
		wantErr    bool
	}{
		{"numeric non-root", "FROM a AS b\nRUN x\nFROM c\nUSER 65532:65532\n", false},
		{"no USER", "FROM a\nRUN x\n", true},
		{"USER only in the build stage", "FROM a AS b\nUSER 1000\nFROM c\nCOPY x y\n", true},
		{"named user", "FROM c\nUSER nonroot\n", true},
		{"root uid", "FROM c\nUSER 0\n", true},
		{"root gid", "FROM c\nUSER 1000:0\n", true},
		{"switched back to root", "FROM c\nUSER 1000\nRUN x\nUSER root\n", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := nonRootNumeric(finalStageUser(tc.dockerfile))
			if (err != nil) != tc.wantErr {
				t.Errorf("error %v, want error %t", err, tc.wantErr)
			}
		})
	}
	t.Run("deploy/Dockerfile", func(t *testing.T) {
		b, err := os.ReadFile("../../deploy/Dockerfile")
		if err != nil {
			t.Fatal(err)
		}
		if err := nonRootNumeric(finalStageUser(string(b))); err != nil {
			t.Error(err)
		}
	})
}
