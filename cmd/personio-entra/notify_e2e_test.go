package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/personio-entra/personio-entra/provisioning/entra/entratest"
	"github.com/personio-entra/personio-entra/provisioning/personio/personiotest"
)

// dayOneStack runs the product with the day-one rules, a sender mailbox
// and every log line (debug included) captured in logs.
func dayOneStack(t *testing.T, logs *lockedBuffer, rules []byte) *stack {
	t.Helper()
	if rules == nil {
		rules = dayOneRules
	}
	return newTestStack(t, stackOptions{
		rules: rules, notifyMailbox: demoMailbox, notifyRetry: 200 * time.Millisecond,
		logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		seed:   seedDemoMailbox,
	})
}

// giveManagerMailbox gives person 1001's account a mailbox, as Exchange
// Online does for a licensed user, and returns its address.
func giveManagerMailbox(t *testing.T, s *stack) string {
	t.Helper()
	m, ok := s.userByEmployeeID("1001")
	if !ok {
		t.Fatal("the manager 1001 has no account")
	}
	s.entra.SetMailbox(m.ID, m.UserPrincipalName)
	return m.UserPrincipalName
}

// mailsWith returns the sent mails to addr whose body contains needle.
func mailsWith(s *stack, addr, needle string) []entratest.SentMail {
	var out []entratest.SentMail
	for _, m := range s.entra.Outbox() {
		for _, to := range m.To {
			if strings.EqualFold(to, addr) && strings.Contains(m.Body, needle) {
				out = append(out, m)
			}
		}
	}
	return out
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within %s", what, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitIdle waits until the queue has no work and no notification left.
func waitIdle(t *testing.T, s *stack) {
	t.Helper()
	waitFor(t, "an idle queue", 45*time.Second, func() bool {
		n, err := s.app.q.Backlog(context.Background())
		return err == nil && n == 0
	})
}

// scanForSecret fails when needle is in any message of any stream (work,
// notifications, dead letters, audit, and the KV buckets' streams: the
// state bucket), in the logs, or on /metrics.
func scanForSecret(t *testing.T, s *stack, logs *lockedBuffer, needle string) {
	t.Helper()
	if strings.Contains(logs.String(), needle) {
		i := strings.Index(logs.String(), needle)
		t.Errorf("the pass is in the logs: …%s…", logs.String()[max(0, i-200):min(len(logs.String()), i+50)])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js := s.app.q.JetStream()
	names := js.StreamNames(ctx)
	streams, msgs := 0, 0
	for name := range names.Name() {
		streams++
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
			m, err := st.GetMsg(ctx, seq)
			if err != nil {
				continue // deleted
			}
			msgs++
			if bytes.Contains(m.Data, []byte(needle)) || strings.Contains(m.Subject, needle) {
				t.Errorf("the pass is in stream %s, message %d (%s)", name, seq, m.Subject)
			}
			for k, vs := range m.Header {
				for _, v := range vs {
					if strings.Contains(v, needle) {
						t.Errorf("the pass is in header %s of stream %s, message %d", k, name, seq)
					}
				}
			}
		}
	}
	if err := names.Err(); err != nil && err != jetstream.ErrEndOfData {
		t.Fatal(err)
	}
	if streams < 4 || msgs == 0 {
		t.Fatalf("scanned %d streams and %d messages: the scan saw nothing", streams, msgs)
	}
	resp, err := http.Get("http://" + s.cfg.MetricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if bytes.Contains(body, []byte(needle)) {
		t.Errorf("the pass is on /metrics")
	}
	t.Logf("scanned %d streams, %d messages, %d bytes of logs and /metrics for the pass", streams, msgs, len(logs.String()))
}

// A joiner who starts today: the reconcile that creates the account queues
// the day-one work, which issues a Temporary Access Pass through Graph and
// mails it to the manager from NOTIFY_MAILBOX. The pass is in that mail and
// nowhere else: not in a log line, an audit record, a queue message, the
// state bucket or /metrics. Replays issue no second pass.
func TestEndToEndDayOnePass(t *testing.T) {
	logs := &lockedBuffer{}
	s := dayOneStack(t, logs, nil)
	convergeE2E(t, s)
	manager := giveManagerMailbox(t, s)

	s.personio.UpsertPerson(joiner("9200", "Tara", "Pass", 0, nil))
	u := eventually(t, s, "9200", "account created", func(u entratest.User, found bool) bool { return found })
	var pass string
	waitFor(t, "the manager's mail with the pass", 60*time.Second, func() bool {
		taps := s.entra.IssuedTAPs(u.ID)
		if len(taps) == 0 {
			return false
		}
		pass = taps[len(taps)-1].Pass
		return len(mailsWith(s, manager, pass)) == 1
	})
	taps := s.entra.IssuedTAPs(u.ID)
	if len(taps) != 1 || taps[0].Deleted || taps[0].LifetimeMinutes != 480 || !taps[0].UsableOnce {
		t.Fatalf("passes %+v, want one usable one-time pass of 480 minutes", taps)
	}
	m := mailsWith(s, manager, pass)[0]
	if m.FromAddress != demoMailbox || !strings.Contains(m.Subject, "Tara Pass") {
		t.Errorf("mail from %s subject %q", m.FromAddress, m.Subject)
	}
	if m.SaveToSentItems {
		t.Errorf("the mail carrying the pass asks for a copy in the sender's Sent Items, where anyone reading that mailbox could use it")
	}
	t.Logf("the manager's mail:\nSubject: %s\n%s", m.Subject, strings.ReplaceAll(m.Body, pass, "********"))

	// Replays: a webhook for the person, a sync, a re-queue.
	s.personio.UpdatePerson("9200", func(p *personiotest.Person) { p.Employments[0].Position.Title = "Senior Analyst" })
	if err := s.app.q.Enqueue(context.Background(), "9200", "sync"); err != nil {
		t.Fatal(err)
	}
	eventually(t, s, "9200", "title updated", func(u entratest.User, found bool) bool { return u.Properties["jobTitle"] == "Senior Analyst" })
	waitIdle(t, s)
	if n := len(s.entra.IssuedTAPs(u.ID)); n != 1 {
		t.Fatalf("%d passes after replays, want 1", n)
	}
	if n := len(mailsWith(s, manager, "Temporary Access Pass for the first sign-in")); n != 1 {
		t.Fatalf("%d pass mails after replays, want 1", n)
	}
	recs, err := s.app.q.ReadAudit(context.Background(), "9200", 100)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(bytes.Join(recs, nil), []byte(`"kind":"issue_tap"`)) {
		t.Errorf("no issue_tap audit record")
	}
	scanForSecret(t, s, logs, pass)
}

// The first delivery fails (Graph answers sendMail 500, which the SDK does
// not retry): the pass it created is deleted, the notification is retried
// with backoff, and the retry issues a fresh pass and delivers only that.
func TestEndToEndDayOnePassRetryAfterFailedDelivery(t *testing.T) {
	logs := &lockedBuffer{}
	// Only the pass is mailed (no other event is on), so the one injected
	// sendMail failure hits its delivery.
	rules := dayOneRules[:bytes.Index(dayOneRules, []byte("\nnotifications:"))]
	rules = append(append([]byte{}, rules...), "\nnotifications:\n  events:\n    start_date: {}\n"...)
	s := dayOneStack(t, logs, rules)
	convergeE2E(t, s)
	manager := giveManagerMailbox(t, s)
	s.entra.SetFaults(entratest.Faults{FailRequests: map[string]int{"POST /users/{id}/sendMail": 1}})

	s.personio.UpsertPerson(joiner("9201", "Rhea", "Retry", 0, nil))
	u := eventually(t, s, "9201", "account created", func(u entratest.User, found bool) bool { return found })
	waitFor(t, "a second pass delivered", 60*time.Second, func() bool {
		taps := s.entra.IssuedTAPs(u.ID)
		return len(taps) == 2 && len(mailsWith(s, manager, taps[1].Pass)) == 1
	})
	waitIdle(t, s)
	taps := s.entra.IssuedTAPs(u.ID)
	if len(taps) != 2 || !taps[0].Deleted || taps[1].Deleted {
		t.Fatalf("passes %+v: want the undelivered one deleted and one usable", taps)
	}
	if n := len(mailsWith(s, manager, taps[0].Pass)); n != 0 {
		t.Fatalf("the stale pass was delivered %d times", n)
	}
	scanForSecret(t, s, logs, taps[0].Pass)
	scanForSecret(t, s, logs, taps[1].Pass)
}

// check reports the application permissions the day-one pass and the
// notifications need, before anything runs.
func TestCheckReportsMissingDayOnePermissions(t *testing.T) {
	s := dayOneStack(t, &lockedBuffer{}, nil)
	opts := appOptions{entraHTTP: s.entra.Client()}
	var out bytes.Buffer
	if err := check(context.Background(), s.cfg, nil, false, opts, &out); err != nil {
		t.Fatalf("check with every permission: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "day-one pass (first_sign_in), e-mail notifications)") {
		t.Errorf("the granted permissions are not reported:\n%s", out.String())
	}
	s.entra.SetPermissions([]string{entratest.PermUserReadWriteAll, entratest.PermGroupMemberReadWriteAll, "Group.Read.All"})
	out.Reset()
	if err := check(context.Background(), s.cfg, nil, false, opts, &out); err == nil {
		t.Fatalf("check passed without UserAuthenticationMethod.ReadWrite.All and Mail.Send:\n%s", out.String())
	}
	for _, want := range []string{
		"FAIL permission: day-one pass (first_sign_in) needs the Microsoft Graph application permission UserAuthenticationMethod.ReadWrite.All",
		"FAIL permission: e-mail notifications needs the Microsoft Graph application permission Mail.Send",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	cfg := s.cfg
	cfg.NotifyMailbox = ""
	out.Reset()
	if err := check(context.Background(), cfg, nil, false, opts, &out); err == nil || !strings.Contains(out.String(), "NOTIFY_MAILBOX is empty") {
		t.Errorf("check without NOTIFY_MAILBOX: %v\n%s", err, out.String())
	}
}
