//go:build !nosimulators

package main

// The console in a real browser: headless Chromium driven through the
// DevTools protocol (chromedp) against the product as `run` wires it
// (embedded NATS, the simulators behind the real Personio client and the
// Graph SDK). Each test starts its own browser, saves a full-page
// screenshot under t.TempDir() (and in CONSOLE_SCREENSHOTS_DIR when set)
// and fails rather than hangs when the browser stops answering.

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/personio-entra/personio-entra/deploy"
	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/entra/entratest"
	"github.com/personio-entra/personio-entra/provisioning/personio/personiotest"
)

// browserTimeout bounds one browser test: a hung browser fails the test.
const browserTimeout = 4 * time.Minute

// chromiumPath finds a Chromium binary on PATH ("" when there is none).
func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// newBrowser starts a fresh headless Chromium for the test and returns a
// tab context that ends with the test or after browserTimeout.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	bin := chromiumPath()
	if bin == "" {
		t.Skip("no Chromium binary on PATH (looked for chromium, chromium-browser, google-chrome): install it with deploy/ci-prereqs.sh")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("lang", "en-US"),
	)
	if os.Geteuid() == 0 {
		// Chromium refuses to start its sandbox as root (CI runs as root).
		opts = append(opts, chromedp.NoSandbox)
	}
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	tab, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		cancel()
	})
	if err := chromedp.Do(tab); err != nil { // starts the browser
		t.Fatalf("start Chromium %s: %v", bin, err)
	}
	return tab
}

// stepTimeout bounds one group of browser actions.
const stepTimeout = time.Minute

// run runs browser actions and fails the test with what it was doing.
func browserDo(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		t.Fatalf("%s (page %s): %v", what, loc, err)
	}
}

// get runs one browser action that returns a value.
func browserGet[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(sctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// screenshot saves a full-page PNG under t.TempDir() and, when
// CONSOLE_SCREENSHOTS_DIR is set, there too.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png := browserGet(t, ctx, "screenshot "+name, chromedp.FullScreenshot(100))
	if !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("screenshot %s is not a PNG", name)
	}
	dirs := []string{t.TempDir()}
	if d := os.Getenv("CONSOLE_SCREENSHOTS_DIR"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		p := filepath.Join(d, name+".png")
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", p)
	}
}

func consoleURL(s *stack) string { return "http://" + s.cfg.ListenAddr + "/ui/" }

// signInWithToken signs in through the sign-in form, as an administrator
// who opened the console would.
func signInWithToken(t *testing.T, ctx context.Context, s *stack) {
	t.Helper()
	browserDo(t, ctx, "sign in with the admin token",
		chromedp.Navigate(consoleURL(s)+"approvals"),
		chromedp.WaitVisible(chromedp.CSS(`#token`)),
		chromedp.SendKeys(chromedp.CSS(`#token`), s.adminToken),
		chromedp.Submit(chromedp.CSS(`#token`)),
		chromedp.WaitVisible(chromedp.CSS(`#open-h`)), // back on the page asked for
	)
	if loc := browserGet(t, ctx, "location", chromedp.Location()); !strings.HasSuffix(loc, "/ui/approvals") {
		t.Fatalf("after sign-in the browser is at %s, want the approvals page it asked for", loc)
	}
}

func textOf(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return browserGet(t, ctx, "read "+sel, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
}

// An administrator opens the one-time link, finds a person by name and
// reads why they have what they have.
func TestBrowserConsolePersonExplainWhy(t *testing.T) {
	s := newTestStack(t, stackOptions{})
	convergeE2E(t, s)
	ctx := newBrowser(t)

	// The one-time link signs in and leaves no code in the address bar or
	// the history.
	link := signInLink(t, s)
	browserDo(t, ctx, "open the one-time sign-in link",
		chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.CSS(`#backlog`)),
	)
	hist := browserGet(t, ctx, "navigation history", chromedp.NavigationEntries()).Entries
	if loc := browserGet(t, ctx, "location", chromedp.Location()); loc != consoleURL(s) {
		t.Fatalf("after the link the address bar shows %s, want %s", loc, consoleURL(s))
	}
	for _, e := range hist {
		if strings.Contains(e.URL, "code=") {
			t.Fatalf("the sign-in code stayed in the history: %s", e.URL)
		}
	}

	browserDo(t, ctx, "search for Jensen",
		chromedp.Click(chromedp.CSS(`a[href="/ui/people"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#q`)),
		chromedp.SendKeys(chromedp.CSS(`#q`), "jensen"),
		chromedp.Submit(chromedp.CSS(`#q`)),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/ui/people/1006"]`)),
		chromedp.Click(chromedp.CSS(`a[href="/ui/people/1006"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#explain-attributes`)),
	)
	if h := textOf(t, ctx, `h1`); !strings.Contains(h, "Jensen") || !strings.Contains(h, "1006") {
		t.Fatalf("person page heading %q", h)
	}
	attrs := textOf(t, ctx, `#explain-attributes`)
	for _, want := range []string{"department", "Marketing", "rules.yaml:", "attributes.department"} {
		if !strings.Contains(attrs, want) {
			t.Errorf("explain-why attributes lack %q:\n%s", want, attrs)
		}
	}
	groups := textOf(t, ctx, `#explain-groups`)
	for _, want := range []string{"Marketing", "groups[", "false:", `employee.department.name == "Sales"`} {
		if !strings.Contains(groups, want) {
			t.Errorf("explain-why groups lack %q:\n%s", want, groups)
		}
	}
	if phase := textOf(t, ctx, `#explain-phase`); !strings.Contains(phase, "lifecycle") {
		t.Errorf("the phase names no lifecycle rule: %s", phase)
	}
	if audit := textOf(t, ctx, `#audit`); !strings.Contains(audit, "applied") {
		t.Errorf("audit history without an applied change:\n%s", audit)
	}
	// Preview shows the plan (nothing to change after convergence) and
	// writes nothing; Sync now queues a reconcile.
	browserDo(t, ctx, "preview",
		chromedp.Click(chromedp.CSS(`a[href="/ui/people/1006/preview"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#plan-none`)),
	)
	browserDo(t, ctx, "back to the person",
		chromedp.Click(chromedp.CSS(`main a[href="/ui/people/1006"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#explain-attributes`)),
	)
	// Someone edits the account in Entra by hand (no webhook tells the
	// product); Sync now puts it back.
	u, _ := s.userByEmployeeID("1006")
	want := u.Properties["jobTitle"]
	if !s.entra.UpdateUser(u.ID, map[string]any{"jobTitle": "Edited by hand"}) {
		t.Fatal("could not edit the account")
	}
	browserDo(t, ctx, "sync now",
		chromedp.Click(chromedp.CSS(`form[action="/ui/people/1006/sync"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`.flash`)),
	)
	if f := textOf(t, ctx, `.flash`); !strings.Contains(f, "queued") {
		t.Fatalf("flash after Sync now: %q", f)
	}
	eventually(t, s, "1006", "job title restored by Sync now", func(u entratest.User, _ bool) bool { return u.Properties["jobTitle"] == want })
	var recs []provisioning.AuditRecord
	for _, b := range consoleAuditOf(t, s, "1006") {
		var r provisioning.AuditRecord
		if json.Unmarshal(b, &r) == nil && r.Trigger == "console" {
			recs = append(recs, r)
		}
	}
	if len(recs) == 0 {
		t.Fatal("no audit record with the trigger console")
	}
	browserDo(t, ctx, "reload the person page",
		chromedp.Navigate(consoleURL(s)+"people/1006"),
		chromedp.WaitVisible(chromedp.CSS(`#audit`)),
	)
	screenshot(t, ctx, "console-person")
}

// consoleAuditOf reads a person's audit records through the queue.
func consoleAuditOf(t *testing.T, s *stack, personID string) [][]byte {
	t.Helper()
	recs, err := s.app.q.ReadAudit(context.Background(), personID, 0)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// The safeguard holds a bulk of leavers; the administrator reviews who
// would lose what and approves in the console.
func TestBrowserConsoleApproveHeldChanges(t *testing.T) {
	const threshold = 3
	s := newTestStack(t, stackOptions{guardMax: threshold})
	convergeE2E(t, s)
	var leavers []string
	for _, u := range s.entra.Users() {
		if u.AccountEnabled && u.EmployeeID != "" && len(leavers) < 8 {
			leavers = append(leavers, u.EmployeeID)
		}
	}
	for _, id := range leavers {
		s.personio.UpdatePerson(id, func(p *personiotest.Person) {
			p.Employments[0].Termination = &personiotest.Termination{TerminationDate: date(-1), LastWorkingDay: date(-1), Type: "EMPLOYEE"}
			p.Employments[0].Status = "INACTIVE"
		})
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		aps, err := s.app.syncer.Approvals(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(aps) == 1 && len(aps[0].People) == len(leavers)-threshold {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("want one approval holding %d people, have %+v", len(leavers)-threshold, aps)
		}
		time.Sleep(200 * time.Millisecond)
	}
	ctx := newBrowser(t)
	signInWithToken(t, ctx, s)
	held := textOf(t, ctx, `main`)
	if !strings.Contains(held, "disable user") || !strings.Contains(held, "leaver") {
		t.Fatalf("the approvals page does not say what would be taken away:\n%s", held)
	}
	browserDo(t, ctx, "review the held set",
		chromedp.Click(chromedp.CSS(`a.button[href^="/ui/approvals/"]`)),
		chromedp.WaitVisible(chromedp.CSS(`button.danger`)),
	)
	screenshot(t, ctx, "console-approval")
	for _, id := range leavers {
		if u, _ := s.userByEmployeeID(id); !u.AccountEnabled {
			continue
		}
	}
	browserDo(t, ctx, "approve",
		chromedp.Click(chromedp.CSS(`button.danger`)),
		chromedp.WaitVisible(chromedp.CSS(`.flash`)),
	)
	if f := textOf(t, ctx, `.flash`); !strings.Contains(f, "Approved") {
		t.Fatalf("flash after approving: %q", f)
	}
	deadline = time.Now().Add(60 * time.Second)
	for {
		disabled := 0
		for _, id := range leavers {
			if u, ok := s.userByEmployeeID(id); ok && !u.AccountEnabled {
				disabled++
			}
		}
		if disabled == len(leavers) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d leavers disabled after the approval in the console", disabled, len(leavers))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// A person whose employeeId two accounts carry cannot be matched: the work
// dead-letters. The administrator removes the duplicate and re-drives it
// from the console.
func TestBrowserConsoleRedriveDeadLetter(t *testing.T) {
	var dup string
	s := newTestStack(t, stackOptions{seed: func(es *entratest.Server) {
		es.AddUser(entratest.User{UserPrincipalName: "dup1@example.com", EmployeeID: "1010", AccountEnabled: true})
		dup = es.AddUser(entratest.User{UserPrincipalName: "dup2@example.com", EmployeeID: "1010", AccountEnabled: true})
	}})
	convergeE2E(t, s)
	deadline := time.Now().Add(60 * time.Second)
	for {
		dl, err := s.app.q.DeadLetters(context.Background())
		if err == nil && len(dl) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no dead letter for the ambiguous person")
		}
		time.Sleep(200 * time.Millisecond)
	}
	ctx := newBrowser(t)
	signInWithToken(t, ctx, s)
	browserDo(t, ctx, "open the overview", chromedp.Navigate(consoleURL(s)), chromedp.WaitVisible(chromedp.CSS(`#deadletters`)))
	if n := textOf(t, ctx, `#deadletters`); n != "1" {
		t.Fatalf("the overview counts %q dead letters, want 1", n)
	}
	screenshot(t, ctx, "console-overview")
	browserDo(t, ctx, "open the dead letters",
		chromedp.Click(chromedp.CSS(`a[href="/ui/deadletters"]`)),
		chromedp.WaitVisible(chromedp.CSS(`table tbody th a`)),
		chromedp.Click(chromedp.CSS(`table tbody th a`)),
		chromedp.WaitVisible(chromedp.CSS(`form[action$="/redrive"] button`)),
	)
	if d := textOf(t, ctx, `main`); !strings.Contains(d, "1010") {
		t.Fatalf("the dead letter does not name the person:\n%s", d)
	}
	screenshot(t, ctx, "console-deadletter")
	if !s.entra.UpdateUser(dup, map[string]any{"employeeId": "EXT-1010"}) {
		t.Fatal("could not fix the duplicate")
	}
	browserDo(t, ctx, "re-drive",
		chromedp.Click(chromedp.CSS(`form[action$="/redrive"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`.flash`)),
	)
	if f := textOf(t, ctx, `.flash`); !strings.Contains(f, "queued again") {
		t.Fatalf("flash after re-drive: %q", f)
	}
	// The re-driven work reconciles the person: the account is adopted
	// and no dead letter comes back.
	u := eventually(t, s, "1010", "adopted and updated", func(u entratest.User, found bool) bool {
		return found && u.UserPrincipalName == "dup1@example.com" && u.Properties["department"] != nil
	})
	_ = u
	if dl, err := s.app.q.DeadLetters(context.Background()); err != nil || len(dl) != 0 {
		t.Fatalf("dead letters after the re-drive: %+v %v", dl, err)
	}
}

// The administrator uploads a candidate rules file and reads the
// company-wide difference; a broken candidate shows the loader's problems
// with line numbers.
func TestBrowserConsoleRulesPreview(t *testing.T) {
	s := newTestStack(t, stackOptions{})
	convergeE2E(t, s)
	ctx := newBrowser(t)
	signInWithToken(t, ctx, s)

	cand := strings.Replace(string(deploy.RulesExample),
		`  - group: Sales
    when: employee.department.name == "Sales"`,
		`  - group: Sales
    when: employee.department.name in ["Sales", "Customer Success"]`, 1)
	cand = strings.Replace(cand,
		`  - group: Marketing
    when: employee.department.name == "Marketing"`,
		`  - group: Marketing
    when: employee.department.name == "Marketing" && employee.office.name == "Berlin"`, 1)
	if cand == string(deploy.RulesExample) || !strings.Contains(cand, `"Customer Success"]`) || !strings.Contains(cand, `office.name == "Berlin"`) {
		t.Fatal("the example rules changed: the candidate edit no longer applies")
	}
	file := filepath.Join(t.TempDir(), "rules-candidate.yaml")
	if err := os.WriteFile(file, []byte(cand), 0o600); err != nil {
		t.Fatal(err)
	}
	browserDo(t, ctx, "upload the candidate",
		chromedp.Click(chromedp.CSS(`a[href="/ui/rules"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#rules-file`)),
		chromedp.SetUploadFiles(chromedp.CSS(`#rules-file`), []string{file}),
		chromedp.Click(chromedp.CSS(`form[action="/ui/rules"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`#totals`)),
	)
	groups := textOf(t, ctx, `#groups`)
	if !strings.Contains(groups, "Sales") || !strings.Contains(groups, "Marketing") {
		t.Fatalf("per-group summary:\n%s", groups)
	}
	people := textOf(t, ctx, `#people`)
	if !strings.Contains(people, "+ Sales") || !strings.Contains(people, "− Marketing") {
		t.Fatalf("people table lacks the gains and losses:\n%s", people)
	}
	if sg := textOf(t, ctx, `#safeguard`); !strings.Contains(sg, "Safeguard:") || !strings.Contains(sg, "lose access") {
		t.Fatalf("safeguard verdict: %q", sg)
	}
	screenshot(t, ctx, "console-preview")

	// Nothing was applied: the directory still matches the running rules.
	if err := waitConverged(context.Background(), s, 30*time.Second, nil); err != nil {
		t.Fatal(err)
	}

	// A broken candidate: the loader's problems with file:line:col.
	broken := strings.Replace(cand, `employee.department.name in ["Sales", "Customer Success"]`, `employee.departmnt.name == "Sales"`, 1)
	browserDo(t, ctx, "paste a broken candidate",
		chromedp.SetValue(chromedp.CSS(`#rules-text`), broken),
		chromedp.Click(chromedp.CSS(`form[action="/ui/rules"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`#problems`)),
	)
	if p := textOf(t, ctx, `#problems`); !strings.Contains(p, "rules.yaml:") || !strings.Contains(p, "departmnt") {
		t.Fatalf("problems table:\n%s", p)
	}
}
