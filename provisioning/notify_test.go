package provisioning_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"github.com/personio-entra/personio-entra/provisioning/provisioningtest"
	"github.com/personio-entra/personio-entra/queue/work"
	"github.com/personio-entra/personio-entra/rules"
)

const dayOneRules = engineRules + `
first_sign_in:
  lifetime_minutes: 480
  usable_once: true
  fallback: [it-onboarding@example.com]
notifications:
  admins: [it-ops@example.com]
  events:
    joiner_created: {to: [manager], webhook: true}
    start_date: {webhook: true}
    leaver_disabled: {to: [manager]}
`

// noticeLog is the queue as the engine sees it: the notices it raised.
type noticeLog struct {
	mu  sync.Mutex
	ids map[string]bool
	all []work.Notice
}

func (l *noticeLog) PublishNotice(_ context.Context, n work.Notice, msgID string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ids == nil {
		l.ids = map[string]bool{}
	}
	if msgID != "" && l.ids[msgID] {
		return nil // the stream's de-duplication
	}
	l.ids[msgID] = true
	l.all = append(l.all, n)
	return nil
}

func (l *noticeLog) take() []work.Notice {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.all
	l.all = nil
	return out
}

type auditLog struct {
	mu   sync.Mutex
	recs [][]byte
}

func (a *auditLog) AppendAudit(_ context.Context, _ string, rec []byte) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.recs = append(a.recs, rec)
	return nil
}

type dayOneEnv struct {
	dir     *provisioningtest.Directory
	src     *provisioningtest.Source
	state   *provisioning.MemKV
	pub     *noticeLog
	audit   *auditLog
	logs    *bytes.Buffer
	hooks   *hookLog
	eng     *provisioning.Engine
	bossID  string
	now     time.Time
	webhook *httptest.Server
	// beforeCreateTAP, when set, runs before the directory creates a pass.
	beforeCreateTAP func()
}

// hookedAuth is the in-memory directory's authentication methods with a
// hook before each pass is created, to interleave deliveries.
type hookedAuth struct {
	*provisioningtest.Directory
	env *dayOneEnv
}

func (h hookedAuth) CreateTAP(ctx context.Context, userID string, req provisioning.TAPRequest) (provisioning.TAP, error) {
	if f := h.env.beforeCreateTAP; f != nil {
		f()
	}
	return h.Directory.CreateTAP(ctx, userID, req)
}

type hookLog struct {
	mu   sync.Mutex
	got  []provisioning.WebhookPayload
	fail int // answer 503 this many times
}

// dayOneNow is 09:00 in Berlin on the joiner's start date.
var dayOneNow = time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)

func newDayOneEnv(t *testing.T, rulesYAML string) *dayOneEnv {
	t.Helper()
	r, err := rules.LoadBytes("rules.yaml", []byte(rulesYAML))
	if err != nil {
		t.Fatal(err)
	}
	env := &dayOneEnv{dir: provisioningtest.NewDirectory(), src: provisioningtest.NewSource(), state: provisioning.NewMemKV(),
		pub: &noticeLog{}, audit: &auditLog{}, logs: &bytes.Buffer{}, hooks: &hookLog{}, now: dayOneNow}
	env.webhook = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		env.hooks.mu.Lock()
		defer env.hooks.mu.Unlock()
		if env.hooks.fail > 0 {
			env.hooks.fail--
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var p provisioning.WebhookPayload
		if r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&p) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		env.hooks.got = append(env.hooks.got, p)
	}))
	t.Cleanup(env.webhook.Close)
	wh, err := provisioning.NewWebhook(env.webhook.URL+"/hooks/T000/B000/secret-part", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range r.ManagedGroups() {
		env.dir.AddGroup(provisioning.Group{DisplayName: g})
	}
	env.dir.AddMailbox("it@example.com")
	cfg := provisioning.Config{Source: env.src, Directory: env.dir, State: env.state, Audit: env.audit,
		Scheduler: &provisioningtest.Queue{}, Enqueuer: &provisioningtest.Queue{},
		Logger: slog.New(slog.NewTextHandler(env.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:    func() time.Time { return env.now }, Guard: provisioning.GuardSettings{MaxCount: 100}}
	cfg.ApplyRules(r)
	cfg.Notify.Publisher, cfg.Notify.Mailer, cfg.Notify.Sender = env.pub, env.dir, "it@example.com"
	cfg.Notify.AuthMethods, cfg.Notify.Webhook = hookedAuth{env.dir, env}, wh
	if env.eng, err = provisioning.New(cfg); err != nil {
		t.Fatal(err)
	}
	// The manager, with a mailbox.
	env.bossID = env.dir.AddUser(provisioning.User{UserPrincipalName: "bea.boss@example.com", Mail: "bea.boss@example.com", EmployeeID: "1", AccountEnabled: true})
	env.src.Set(employee("1", "Bea", "Boss"))
	return env
}

func startsToday(e *model.Employee) {
	e.Status, e.StartDate, e.SupervisorID = "ONBOARDING", model.Date{Year: 2026, Month: 11, Day: 27}, "1"
}

// joinerNotices creates the joiner's account and returns what was raised.
func (env *dayOneEnv) joinerNotices(t *testing.T, mut ...func(*model.Employee)) (string, []work.Notice) {
	t.Helper()
	env.src.Set(employee("2", "Ada", "Lovelace", append([]func(*model.Employee){startsToday}, mut...)...))
	res, err := env.eng.Reconcile(context.Background(), "2", "test")
	if err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	return res.Plan.UserID, env.pub.take()
}

func dayOneNotice(t *testing.T, ns []work.Notice) work.Notice {
	t.Helper()
	for _, n := range ns {
		if n.Event == rules.EventStartDate {
			return n
		}
	}
	t.Fatalf("no start_date notice among %+v", ns)
	return work.Notice{}
}

// mailsTo returns the bodies of the mails to addr.
func (env *dayOneEnv) mailsTo(addr string) []string {
	var out []string
	for _, m := range env.dir.Outbox() {
		for _, to := range m.To {
			if to == addr {
				out = append(out, m.Subject+"\n"+m.Body)
			}
		}
	}
	return out
}

// leaks fails the test when the pass is in a log line, an audit record,
// a notice or the state bucket.
func (env *dayOneEnv) leaks(t *testing.T, pass string, notices []work.Notice) {
	t.Helper()
	if strings.Contains(env.logs.String(), pass) {
		t.Errorf("the pass is in the logs")
	}
	for _, r := range env.audit.recs {
		if strings.Contains(string(r), pass) {
			t.Errorf("the pass is in an audit record: %s", r)
		}
	}
	for _, n := range notices {
		b, _ := json.Marshal(n)
		if strings.Contains(string(b), pass) {
			t.Errorf("the pass is in a notice: %s", b)
		}
	}
	keys, _ := env.state.Keys(context.Background(), "")
	for _, k := range keys {
		v, _, _ := env.state.Get(context.Background(), k)
		if strings.Contains(string(v), pass) || strings.Contains(k, pass) {
			t.Errorf("the pass is in the state bucket under %s", k)
		}
	}
	env.hooks.mu.Lock()
	defer env.hooks.mu.Unlock()
	for _, p := range env.hooks.got {
		if b, _ := json.Marshal(p); strings.Contains(string(b), pass) {
			t.Errorf("the pass went to the webhook: %s", b)
		}
	}
	if strings.Contains(env.logs.String(), "secret-part") {
		t.Errorf("the webhook URL's secret part is in the logs")
	}
}

// The joiner's start date: the manager gets the pass by mail, the webhook
// gets the event without it, and nothing else ever holds it.
func TestDayOnePassToManager(t *testing.T) {
	env := newDayOneEnv(t, dayOneRules)
	userID, ns := env.joinerNotices(t)
	var all []work.Notice
	all = append(all, ns...)
	for _, n := range ns {
		if err := env.eng.HandleNotice(context.Background(), n); err != nil {
			t.Fatalf("HandleNotice %s: %v", n.Event, err)
		}
	}
	passes := env.dir.Passes(userID)
	if len(passes) != 1 || passes[0].LifetimeMinutes != 480 || !passes[0].UsableOnce {
		t.Fatalf("passes = %+v, want one one-time pass of 480 minutes", passes)
	}
	mails := env.mailsTo("bea.boss@example.com")
	var withPass int
	for _, m := range mails {
		if strings.Contains(m, passes[0].Value) {
			withPass++
		}
	}
	if withPass != 1 {
		t.Fatalf("the manager got %d mails with the pass, want 1: %q", withPass, mails)
	}
	env.hooks.mu.Lock()
	events := []string{}
	for _, p := range env.hooks.got {
		events = append(events, p.Event)
		if p.Text == "" || p.Subject == "" {
			t.Errorf("webhook payload without text or subject: %+v", p)
		}
	}
	env.hooks.mu.Unlock()
	if strings.Join(events, ",") != "joiner_created,start_date" {
		t.Errorf("webhook events %v, want joiner_created,start_date", events)
	}

	// Replays: the reconcile again, the same notice again (redelivery).
	env.now = env.now.Add(time.Hour)
	if _, err := env.eng.Reconcile(context.Background(), "2", "sync"); err != nil {
		t.Fatal(err)
	}
	again := env.pub.take()
	all = append(all, again...)
	for _, n := range again {
		if n.Event == rules.EventStartDate {
			t.Fatalf("the day-one work was queued twice")
		}
	}
	if err := env.eng.HandleNotice(context.Background(), dayOneNotice(t, ns)); err != nil {
		t.Fatal(err)
	}
	if n := len(env.dir.Passes(userID)); n != 1 {
		t.Fatalf("%d passes after a redelivery, want 1", n)
	}
	env.leaks(t, passes[0].Value, all)
	if !strings.Contains(env.logs.String(), "issue_tap") && !bytes.Contains(bytes.Join(env.audit.recs, nil), []byte("issue_tap")) {
		t.Errorf("the issue is not audited")
	}
}

// Concurrent deliveries of one notice (a redelivery while the first still
// runs) issue one pass between them.
func TestDayOnePassConcurrentDeliveries(t *testing.T) {
	env := newDayOneEnv(t, dayOneRules)
	userID, ns := env.joinerNotices(t)
	n := dayOneNotice(t, ns)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = env.eng.HandleNotice(context.Background(), n) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil { // the losers retry
			if err := env.eng.HandleNotice(context.Background(), n); err != nil {
				t.Fatal(err)
			}
		}
	}
	live := 0
	for _, p := range env.dir.Passes(userID) {
		if !p.Deleted {
			live++
		}
	}
	if live != 1 {
		t.Fatalf("%d usable passes, want 1: %+v", live, env.dir.Passes(userID))
	}
	// Only the usable pass was mailed: no worker mailed one that another
	// worker's pass replaced (Entra keeps one pass per user).
	mailed := 0
	for _, p := range env.dir.Passes(userID) {
		for _, m := range env.dir.Outbox() {
			if strings.Contains(m.Body, p.Value) {
				mailed++
				if p.Deleted {
					t.Errorf("a replaced or deleted pass %s was mailed", p.ID)
				}
			}
		}
	}
	if mailed != 1 {
		t.Errorf("%d mails carry a pass, want 1", mailed)
	}
}

// A redelivery of the notice that runs while the first delivery is about to
// create its pass must not leave the manager with a pass the other one
// replaced (Entra keeps one pass per user: creating one replaces the last).
func TestDayOnePassInterleavedDeliveries(t *testing.T) {
	env := newDayOneEnv(t, dayOneRules)
	userID, ns := env.joinerNotices(t)
	n := dayOneNotice(t, ns)
	var second error
	env.beforeCreateTAP = func() {
		env.beforeCreateTAP = nil
		second = env.eng.HandleNotice(context.Background(), n)
	}
	first := env.eng.HandleNotice(context.Background(), n)
	for _, err := range []error{first, second} {
		if err != nil { // the one that stepped back retries
			if err := env.eng.HandleNotice(context.Background(), n); err != nil {
				t.Fatal(err)
			}
		}
	}
	live, mailedLive, mailedDead := 0, 0, 0
	for _, p := range env.dir.Passes(userID) {
		if !p.Deleted {
			live++
		}
		for _, m := range env.dir.Outbox() {
			if strings.Contains(m.Body, p.Value) {
				if p.Deleted {
					mailedDead++
				} else {
					mailedLive++
				}
			}
		}
	}
	if live != 1 || mailedLive != 1 || mailedDead != 0 {
		t.Fatalf("usable passes %d, mails with the usable pass %d, mails with a replaced or deleted pass %d; want 1, 1, 0: %+v",
			live, mailedLive, mailedDead, env.dir.Passes(userID))
	}
}

// A delivery that fails deletes the pass it created; the retry issues a
// fresh one and delivers only that: never a stale pass, never two usable.
func TestDayOnePassRetryAfterFailedDelivery(t *testing.T) {
	env := newDayOneEnv(t, dayOneRules)
	userID, ns := env.joinerNotices(t)
	n := dayOneNotice(t, ns)
	env.dir.Fail("SendMail", &provisioning.DirectoryError{Kind: provisioning.KindTransient, Op: "send mail", Code: "ServiceUnavailable"})
	err := env.eng.HandleNotice(context.Background(), n)
	if err == nil || work.IsTerminal(err) {
		t.Fatalf("failed delivery: %v, want a retryable error", err)
	}
	first := env.dir.Passes(userID)
	if len(first) != 1 || !first[0].Deleted {
		t.Fatalf("after the failed delivery: %+v, want the one pass deleted", first)
	}
	env.dir.Fail("SendMail", nil)
	if err := env.eng.HandleNotice(context.Background(), n); err != nil {
		t.Fatalf("retry: %v", err)
	}
	passes := env.dir.Passes(userID)
	if len(passes) != 2 || !passes[0].Deleted || passes[1].Deleted {
		t.Fatalf("passes %+v, want the first deleted and the second usable", passes)
	}
	mails := strings.Join(env.mailsTo("bea.boss@example.com"), "\n")
	if strings.Contains(mails, passes[0].Value) || !strings.Contains(mails, passes[1].Value) {
		t.Fatalf("the manager's mail holds the stale pass or lacks the fresh one:\n%s", mails)
	}
	env.leaks(t, passes[0].Value, ns)
	env.leaks(t, passes[1].Value, ns)
}

// A pass created by an attempt that died before it could deliver or delete
// it is deleted by the next attempt before a new one is issued.
func TestDayOnePassDeleteFailsThenRetry(t *testing.T) {
	env := newDayOneEnv(t, dayOneRules)
	userID, ns := env.joinerNotices(t)
	n := dayOneNotice(t, ns)
	env.dir.Fail("SendMail", &provisioning.DirectoryError{Kind: provisioning.KindTransient, Op: "send mail"})
	env.dir.Fail("DeleteTAP", &provisioning.DirectoryError{Kind: provisioning.KindTransient, Op: "delete"})
	if err := env.eng.HandleNotice(context.Background(), n); err == nil {
		t.Fatal("want an error")
	}
	if p := env.dir.Passes(userID); len(p) != 1 || p[0].Deleted {
		t.Fatalf("passes %+v: the delete failed, so the pass is still there", p)
	}
	env.dir.Fail("SendMail", nil)
	env.dir.Fail("DeleteTAP", nil)
	if err := env.eng.HandleNotice(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	ops := []string{}
	for _, w := range env.dir.WriteLog() {
		if strings.HasSuffix(w.Op, "TAP") {
			ops = append(ops, w.Op)
		}
	}
	if got := strings.Join(ops, ","); got != "CreateTAP,DeleteTAP,CreateTAP" {
		t.Fatalf("TAP writes %s, want CreateTAP,DeleteTAP,CreateTAP (the stale pass deleted before the new one)", got)
	}
}

// A joiner who already has a sign-in method gets no pass: the manager is
// told they sign in with it, and it is audited.
func TestDayOneExistingMethod(t *testing.T) {
	for _, refuse := range []bool{false, true} {
		t.Run(map[bool]string{false: "found in the methods list", true: "refused by Graph"}[refuse], func(t *testing.T) {
			env := newDayOneEnv(t, dayOneRules)
			userID, ns := env.joinerNotices(t)
			if refuse {
				// The list does not show the method (yet): Graph's refusal decides.
				env.dir.RefuseTAPs(true)
			} else {
				env.dir.AddAuthMethod(userID, "#microsoft.graph.microsoftAuthenticatorAuthenticationMethod")
			}
			if err := env.eng.HandleNotice(context.Background(), dayOneNotice(t, ns)); err != nil {
				t.Fatal(err)
			}
			if p := env.dir.Passes(userID); len(p) != 0 {
				t.Fatalf("passes %+v, want none", p)
			}
			mails := strings.Join(env.mailsTo("bea.boss@example.com"), "\n")
			if !strings.Contains(mails, "already has") || !strings.Contains(mails, "sign") {
				t.Fatalf("the manager was not told:\n%s", mails)
			}
			if !bytes.Contains(bytes.Join(env.audit.recs, nil), []byte("no Temporary Access Pass")) {
				t.Errorf("not audited")
			}
		})
	}
}

// The tenant's policy refuses: the admins get a mail naming the Entra
// setting, the manager hears there is no pass.
func TestDayOnePolicyDisabled(t *testing.T) {
	env := newDayOneEnv(t, dayOneRules)
	userID, ns := env.joinerNotices(t)
	env.dir.SetTAPPolicy(true, false)
	if err := env.eng.HandleNotice(context.Background(), dayOneNotice(t, ns)); err != nil {
		t.Fatal(err)
	}
	if p := env.dir.Passes(userID); len(p) != 0 {
		t.Fatalf("passes %+v", p)
	}
	admin := strings.Join(env.mailsTo("it-ops@example.com"), "\n")
	if !strings.Contains(admin, "Authentication methods > Policies > Temporary Access Pass") {
		t.Fatalf("the admins' mail does not name the setting:\n%s", admin)
	}
	if !strings.Contains(strings.Join(env.mailsTo("bea.boss@example.com"), "\n"), "policy refused") {
		t.Fatalf("the manager was not told")
	}
	if !strings.Contains(env.logs.String(), "Temporary Access Pass policy refused") {
		t.Errorf("no error log names the policy")
	}
}

// A missing permission is terminal and names the permission.
func TestDayOneForbidden(t *testing.T) {
	env := newDayOneEnv(t, dayOneRules)
	_, ns := env.joinerNotices(t)
	env.dir.Fail("ListAuthMethods", &provisioning.DirectoryError{Kind: provisioning.KindForbidden, Op: "list", Code: "accessDenied"})
	err := env.eng.HandleNotice(context.Background(), dayOneNotice(t, ns))
	if !work.IsTerminal(err) || !strings.Contains(err.Error(), "UserAuthenticationMethod.ReadWrite.All") {
		t.Fatalf("err = %v, want terminal naming UserAuthenticationMethod.ReadWrite.All", err)
	}
}

// Without a manager (or a manager without a mailbox) the fallback gets it.
func TestDayOneFallbackRecipient(t *testing.T) {
	for name, mut := range map[string]func(*model.Employee){
		"no manager": func(e *model.Employee) { e.SupervisorID = "" },
		"no mailbox": func(e *model.Employee) { e.SupervisorID = "3" },
	} {
		t.Run(name, func(t *testing.T) {
			env := newDayOneEnv(t, dayOneRules)
			env.dir.AddUser(provisioning.User{UserPrincipalName: "no.box@example.com", EmployeeID: "3", AccountEnabled: true})
			env.src.Set(employee("3", "No", "Box"))
			userID, ns := env.joinerNotices(t, mut)
			if err := env.eng.HandleNotice(context.Background(), dayOneNotice(t, ns)); err != nil {
				t.Fatal(err)
			}
			p := env.dir.Passes(userID)
			if len(p) != 1 || !strings.Contains(strings.Join(env.mailsTo("it-onboarding@example.com"), "\n"), p[0].Value) {
				t.Fatalf("the fallback did not get the pass")
			}
		})
	}
}

// The day-one work is due from the start date's beginning only, and the
// pass's issue time is a transition the engine schedules.
func TestDayOneSchedule(t *testing.T) {
	env := newDayOneEnv(t, dayOneRules)
	env.now = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC) // a week before
	env.src.Set(employee("2", "Ada", "Lovelace", startsToday))
	if _, err := env.eng.Reconcile(context.Background(), "2", "test"); err != nil {
		t.Fatal(err)
	}
	for _, n := range env.pub.take() {
		if n.Event == rules.EventStartDate {
			t.Fatal("day-one work queued a week early")
		}
	}
	env.now = time.Date(2026, 11, 26, 23, 0, 0, 0, time.UTC) // 00:00 in Berlin on the start date
	if _, err := env.eng.Reconcile(context.Background(), "2", "schedule"); err != nil {
		t.Fatal(err)
	}
	dayOneNotice(t, env.pub.take())
}

// Webhook errors never print the URL; 4xx is terminal, 5xx retried.
func TestWebhookDelivery(t *testing.T) {
	var status int
	var got []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &m)
		got = append(got, m)
		w.WriteHeader(status)
	}))
	defer srv.Close()
	wh, err := provisioning.NewWebhook(srv.URL+"/services/T1/B2/very-secret", nil)
	if err != nil {
		t.Fatal(err)
	}
	p := provisioning.WebhookPayload{Text: "hello", Event: "joiner_created", Subject: "s", Body: "b", Time: "t"}
	for _, tc := range []struct {
		status   int
		terminal bool
		ok       bool
	}{{200, false, true}, {503, false, false}, {404, true, false}, {429, false, false}} {
		status = tc.status
		err := wh.Post(context.Background(), p)
		if (err == nil) != tc.ok || work.IsTerminal(err) != tc.terminal {
			t.Fatalf("status %d: err %v (terminal %t)", tc.status, err, work.IsTerminal(err))
		}
		if err != nil && strings.Contains(err.Error(), "very-secret") {
			t.Fatalf("the error shows the URL: %v", err)
		}
	}
	if len(got) == 0 || got[0]["text"] != "hello" || got[0]["event"] != "joiner_created" {
		t.Fatalf("payload %v", got)
	}
	// Personio fields reach the text: chat markup in them is shown, not
	// followed (no @channel, no disguised link).
	status, got = 200, nil
	if err := wh.Post(context.Background(), provisioning.WebhookPayload{Text: "<!channel> <https://phish.example|Reset password> & co", Body: "<b>"}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0]["text"] != "&lt;!channel&gt; &lt;https://phish.example|Reset password&gt; &amp; co" || got[0]["body"] != "<b>" {
		t.Fatalf("chat text not escaped: %v", got)
	}
	srv.Close()
	if err := wh.Post(context.Background(), p); err == nil || strings.Contains(err.Error(), "very-secret") {
		t.Fatalf("connection error %v must not show the URL", err)
	}
	for _, bad := range []string{"http://example.com/hook", "ftp://127.0.0.1/x", "not a url"} {
		if _, err := provisioning.NewWebhook(bad, nil); err == nil {
			t.Errorf("NewWebhook(%q) accepted", bad)
		}
	}
}

// A leaver's disable raises leaver_disabled once; the manager is mailed.
func TestLeaverDisabledNotice(t *testing.T) {
	env := newDayOneEnv(t, dayOneRules)
	env.now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	env.src.Set(employee("2", "Ada", "Lovelace", func(e *model.Employee) { e.SupervisorID = "1" }))
	if _, err := env.eng.Reconcile(context.Background(), "2", "test"); err != nil {
		t.Fatal(err)
	}
	env.pub.take()
	env.src.Set(employee("2", "Ada", "Lovelace", func(e *model.Employee) {
		e.SupervisorID = "1"
		e.LastWorkingDay = model.Date{Year: 2026, Month: 11, Day: 26}
	}))
	for range 2 {
		if _, err := env.eng.Reconcile(context.Background(), "2", "test"); err != nil {
			t.Fatal(err)
		}
	}
	var leaver []work.Notice
	for _, n := range env.pub.take() {
		if n.Event == rules.EventLeaverDisabled {
			leaver = append(leaver, n)
		}
	}
	if len(leaver) != 1 || leaver[0].UPN != "ada.lovelace@example.com" {
		t.Fatalf("leaver notices %+v, want one", leaver)
	}
	if err := env.eng.HandleNotice(context.Background(), leaver[0]); err != nil {
		t.Fatal(err)
	}
	if m := env.mailsTo("bea.boss@example.com"); len(m) != 1 || !strings.Contains(m[0], "disabled") {
		t.Fatalf("manager mails %q", m)
	}
}
