package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/personio-entra/personio-entra/queue"
)

const (
	tokenOld = "old-token-0123456789abcdef"
	tokenNew = "Bearer new-token-fedcba9876543210"
	company  = "123456"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

type env struct {
	srv *httptest.Server
	q   *queue.Queue
	ns  *server.Server
}

// newEnv runs the receiver on a real loopback HTTP server in front of a real
// embedded JetStream.
func newEnv(t testing.TB, cfg WebhookConfig) *env {
	t.Helper()
	ns, err := queue.StartEmbedded(t.TempDir(), discard(), queue.WithSyncAlways(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, err := queue.ConnectEmbedded(ns, "receiver-test", discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return newEnvOn(t, ns, nc, cfg)
}

func newEnvOn(t testing.TB, ns *server.Server, nc *nats.Conn, cfg WebhookConfig) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	q, err := queue.Open(ctx, nc, queue.Config{Partitions: 4}, discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(q.Close)
	if cfg.Logger == nil {
		cfg.Logger = discard()
	}
	wh, err := NewWebhook(cfg, q)
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	wh.Routes(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return &env{srv: srv, q: q, ns: ns}
}

func (e *env) post(t testing.TB, token, contentType, body string) (int, map[string]string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+WebhookPath, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	var out map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("response %d is not a JSON object: %v", resp.StatusCode, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("response Content-Type = %q", ct)
	}
	return resp.StatusCode, out
}

// streamMsgs lists what is stored on the work stream (subject → count).
func (e *env) streamMsgs(t testing.TB) map[string]int {
	t.Helper()
	ctx := context.Background()
	s, err := e.q.JetStream().Stream(ctx, queue.EventStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(">"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for subj, n := range info.State.Subjects {
		out[subj] = int(n)
	}
	return out
}

func delivery(event, payload string) string {
	return fmt.Sprintf(`{"company_id":%q,"event_name":%q,"occurred_at":"2026-11-27T09:30:12Z","payload":%s,"meta":{}}`, company, event, payload)
}

func TestWebhookRefusals(t *testing.T) {
	e := newEnv(t, WebhookConfig{Tokens: []string{tokenOld}, CompanyID: company})
	good := delivery("person.updated", `{"person":{"id":"5005"}}`)
	tests := []struct {
		name, token, ct, body string
		status                int
		errPart               string
	}{
		{"missing token", "", "application/json", good, 401, "Authorization"},
		{"wrong token", "wrong-token-0123456789", "application/json", good, 401, "Authorization"},
		{"token prefix of the real one", tokenOld[:10], "application/json", good, 401, "Authorization"},
		{"token with added prefix", "Bearer " + tokenOld, "application/json", good, 401, "Authorization"},
		{"other company", tokenOld, "application/json", strings.Replace(good, company, "999", 1), 403, `company_id "999"`},
		{"too large", tokenOld, "application/json", `{"pad":"` + strings.Repeat("x", 1<<20) + `"}`, 413, "exceeds the limit of 1048576 bytes"},
		{"text/plain", tokenOld, "text/plain", good, 415, `"text/plain"`},
		{"no content type", tokenOld, "", good, 415, "application/json"},
		{"malformed JSON", tokenOld, "application/json", `{"company_id":`, 400, "not a JSON object"},
		{"JSON array", tokenOld, "application/json", `[1]`, 400, "not a JSON object"},
		{"empty body", tokenOld, "application/json", ``, 400, "empty body"},
		{"trailing data", tokenOld, "application/json", good + `{}`, 400, "data after the JSON object"},
		{"missing company_id", tokenOld, "application/json", `{"event_name":"person.updated","occurred_at":"2026-11-27T09:30:12Z","payload":{}}`, 400, "field company_id is required"},
		{"missing event_name", tokenOld, "application/json", `{"company_id":"123456","occurred_at":"2026-11-27T09:30:12Z","payload":{}}`, 400, "field event_name is required"},
		{"numeric event_name", tokenOld, "application/json", `{"company_id":"123456","event_name":5,"occurred_at":"2026-11-27T09:30:12Z","payload":{}}`, 400, "field event_name must be a string"},
		{"missing occurred_at", tokenOld, "application/json", `{"company_id":"123456","event_name":"person.updated","payload":{}}`, 400, "field occurred_at is required"},
		{"bad occurred_at", tokenOld, "application/json", strings.Replace(good, "2026-11-27T09:30:12Z", "27.11.2026", 1), 400, "field occurred_at"},
		{"occurred_at before 1970", tokenOld, "application/json", strings.Replace(good, "2026-11-27T09:30:12Z", "0000-01-01T00:00:00+01:00", 1), 400, "outside the years 1970 to 9999"},
		{"missing payload", tokenOld, "application/json", `{"company_id":"123456","event_name":"person.updated","occurred_at":"2026-11-27T09:30:12Z"}`, 400, "field payload is required"},
		{"payload not an object", tokenOld, "application/json", delivery("person.updated", `"5005"`), 400, "field payload must be a JSON object"},
		{"meta not an object", tokenOld, "application/json", strings.Replace(good, `"meta":{}`, `"meta":[]`, 1), 400, "field meta"},
		{"person event without person", tokenOld, "application/json", delivery("person.updated", `{}`), 400, "payload.person.id is required"},
		{"person id not a string", tokenOld, "application/json", delivery("person.created", `{"person":{"id":true}}`), 400, "payload.person.id must be a string"},
		{"employment event without ids", tokenOld, "application/json", delivery("employment.updated", `{"employment":{}}`), 400, "payload.employment.id is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := testutil.ToFloat64(webhookRequests.WithLabelValues(outcomeFor(tt.status)))
			status, body := e.post(t, tt.token, tt.ct, tt.body)
			if status != tt.status {
				t.Errorf("status = %d, want %d (body %v)", status, tt.status, body)
			}
			if !strings.Contains(body["error"], tt.errPart) {
				t.Errorf("error = %q, want it to contain %q", body["error"], tt.errPart)
			}
			if got := testutil.ToFloat64(webhookRequests.WithLabelValues(outcomeFor(tt.status))) - before; got != 1 {
				t.Errorf("outcome counter moved by %v, want 1", got)
			}
		})
	}
	if msgs := e.streamMsgs(t); len(msgs) != 0 {
		t.Errorf("refused deliveries were queued: %v", msgs)
	}
}

func outcomeFor(status int) string {
	return map[int]string{401: OutcomeUnauthorized, 403: OutcomeForbidden, 413: OutcomeTooLarge,
		415: OutcomeUnsupportedMediaType, 400: OutcomeBadRequest}[status]
}

// A chunked body without Content-Length is cut at the limit as well.
func TestWebhookTooLargeChunked(t *testing.T) {
	e := newEnv(t, WebhookConfig{Tokens: []string{tokenOld}})
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte(`{"pad":"`))
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for i := 0; i < 20; i++ {
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+WebhookPath, pr)
	req.Header.Set("Authorization", tokenOld)
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status = %d, want 413", resp.StatusCode)
	}
}

func TestWebhookQueuesBeforeAnsweringAndDeduplicates(t *testing.T) {
	e := newEnv(t, WebhookConfig{Tokens: []string{tokenOld, tokenNew}, CompanyID: company})
	body := delivery("person.updated", `{"person":{"id":"5005"}}`)
	// Personio's retry of the same delivery, formatted differently.
	reformatted := `{ "payload": {"person": {"id": "5005"}}, "occurred_at": "2026-11-27T10:30:12+01:00",
		"event_name": "person.updated", "company_id": "123456" }`
	steps := []struct {
		token, body string
		status      int
		result      string
	}{
		{tokenOld, body, 202, "accepted"},
		{tokenNew, body, 200, "duplicate"},
		{tokenOld, reformatted, 200, "duplicate"},
	}
	for i, s := range steps {
		status, out := e.post(t, s.token, "application/json; charset=utf-8", s.body)
		if status != s.status || out["status"] != s.result {
			t.Fatalf("delivery %d: %d %v, want %d %s", i, status, out, s.status, s.result)
		}
		// The event is on the stream by the time the answer arrives.
		msgs := e.streamMsgs(t)
		total := 0
		for subj, n := range msgs {
			if !strings.HasSuffix(subj, ".person.5005.event") {
				t.Errorf("unexpected subject %q", subj)
			}
			total += n
		}
		if total != 1 {
			t.Fatalf("after delivery %d the stream holds %d messages, want 1 (%v)", i, total, msgs)
		}
	}
}

func TestWebhookTokenRotation(t *testing.T) {
	e := newEnv(t, WebhookConfig{Tokens: []string{tokenOld, tokenNew}})
	for i, tok := range []string{tokenOld, tokenNew} {
		body := strings.Replace(delivery("person.created", `{"person":{"id":"1"}}`), "09:30:12", fmt.Sprintf("09:30:1%d", i), 1)
		if status, out := e.post(t, tok, "application/json", body); status != 202 {
			t.Errorf("token %d: %d %v, want 202", i, status, out)
		}
	}
}

func TestWebhookEventClasses(t *testing.T) {
	e := newEnv(t, WebhookConfig{Tokens: []string{tokenOld}})
	tests := []struct {
		event, payload string
		status         int
		result         string
		subject        string // "" = nothing queued
		ignoredLabel   string
	}{
		{"ping", `{}`, 200, "pong", "", ""},
		{"absence_period.created", `{"absence_period":{"id":"abc"}}`, 200, "ignored", "", "absence_period.created"},
		{"absence-period.updated.status", `{"absence-period":{"id":"abc"}}`, 200, "ignored", "", "absence-period.updated.status"},
		{"attendance-period.created", `{"attendance_period":{"id":"1"}}`, 200, "ignored", "", "attendance-period.created"},
		{"document.signed", `{"document":{"id":"d"}}`, 200, "ignored", "", "document.signed"},
		{"compensation.changed", `{"x":{"id":"1"}}`, 200, "ignored", "", "other"},
		{"person.deleted", `{"person":{"id":42}}`, 202, "accepted", "person.42.event", ""},
		{"employment.updated", `{"employment":{"id":"e-1"},"person":{"id":"77"}}`, 202, "accepted", "person.77.event", ""},
		{"employment.terminated", `{"employment":{"id":"2306b77a-35fb-4b1d-8044-3b14f7f2ca65"}}`, 202, "accepted", "pe.in.employment.2306b77a-35fb-4b1d-8044-3b14f7f2ca65", ""},
		{"employment.updated.cost-centers", `{"employment":{"id":"e-9"},"person":{"id":"9"}}`, 202, "accepted", "person.9.event", ""},
	}
	for _, tt := range tests {
		t.Run(tt.event, func(t *testing.T) {
			var ignoredBefore float64
			if tt.ignoredLabel != "" {
				ignoredBefore = testutil.ToFloat64(webhookIgnored.WithLabelValues(tt.ignoredLabel))
			}
			before := e.streamMsgs(t)
			status, out := e.post(t, tokenOld, "application/json", delivery(tt.event, tt.payload))
			if status != tt.status || out["status"] != tt.result {
				t.Fatalf("%d %v, want %d %s", status, out, tt.status, tt.result)
			}
			after := e.streamMsgs(t)
			var added []string
			for subj, n := range after {
				if n > before[subj] {
					added = append(added, subj)
				}
			}
			switch {
			case tt.subject == "" && len(added) != 0:
				t.Errorf("queued %v, want nothing", added)
			case tt.subject != "" && (len(added) != 1 || !strings.HasSuffix(added[0], tt.subject)):
				t.Errorf("queued %v, want one message on *%s", added, tt.subject)
			}
			if tt.ignoredLabel != "" {
				if got := testutil.ToFloat64(webhookIgnored.WithLabelValues(tt.ignoredLabel)) - ignoredBefore; got != 1 {
					t.Errorf("ignored{event=%q} moved by %v, want 1", tt.ignoredLabel, got)
				}
			}
		})
	}
}

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func TestNewWebhookTokenPolicy(t *testing.T) {
	pub := publisherFunc(func(context.Context, queue.Event) (bool, error) { return false, nil })
	if _, err := NewWebhook(WebhookConfig{Logger: discard()}, pub); err == nil || !strings.Contains(err.Error(), "no token") {
		t.Errorf("empty token list: err = %v, want refusal", err)
	}
	if _, err := NewWebhook(WebhookConfig{Tokens: []string{"a-long-token-value", ""}, Logger: discard()}, pub); err == nil {
		t.Error("empty token in the list accepted")
	}
	var logs logBuf
	wh, err := NewWebhook(WebhookConfig{Insecure: true, Logger: slog.New(slog.NewJSONHandler(&logs, nil))}, pub)
	if err != nil {
		t.Fatalf("insecure: %v", err)
	}
	if !strings.Contains(logs.String(), `"level":"WARN"`) || !strings.Contains(logs.String(), "WITHOUT authentication") {
		t.Errorf("insecure mode logged no warning: %s", logs.String())
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, WebhookPath, strings.NewReader(delivery("person.updated", `{"person":{"id":"1"}}`)))
	req.Header.Set("Content-Type", "application/json")
	wh.ServeHTTP(rec, req)
	if rec.Code != http.StatusAccepted {
		t.Errorf("insecure mode without a header: %d, want 202", rec.Code)
	}
	// Tokens never reach the log.
	wh2, _ := NewWebhook(WebhookConfig{Tokens: []string{tokenOld}, Logger: slog.New(slog.NewJSONHandler(&logs, nil))}, pub)
	req = httptest.NewRequest(http.MethodPost, WebhookPath, strings.NewReader("{}"))
	req.Header.Set("Authorization", tokenOld+"x")
	wh2.ServeHTTP(httptest.NewRecorder(), req)
	if strings.Contains(logs.String(), tokenOld) {
		t.Error("a token appeared in the log")
	}
}

type publisherFunc func(context.Context, queue.Event) (bool, error)

func (f publisherFunc) PublishEvent(ctx context.Context, ev queue.Event) (bool, error) {
	return f(ctx, ev)
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// NATS down → 503 within Personio's 3 s; Personio's retry after NATS is
// back is accepted and queued.
func TestWebhookUnavailableThenRetryAccepted(t *testing.T) {
	dir, port := t.TempDir(), freePort(t)
	start := func() *server.Server {
		ns, err := queue.StartEmbedded(dir, discard(), queue.WithSyncAlways(false), queue.WithListen("127.0.0.1", port))
		if err != nil {
			t.Fatal(err)
		}
		return ns
	}
	ns := start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := queue.Connect(ctx, ns.ClientURL(), "", "receiver-test", discard(), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	e := newEnvOn(t, ns, nc, WebhookConfig{Tokens: []string{tokenOld}, PublishTimeout: 2 * time.Second})

	ns.Shutdown()
	ns.WaitForShutdown()
	body := delivery("person.updated", `{"person":{"id":"5005"}}`)
	t0 := time.Now()
	status, out := e.post(t, tokenOld, "application/json", body)
	took := time.Since(t0)
	if status != http.StatusServiceUnavailable || !strings.Contains(out["error"], "retry later") {
		t.Fatalf("with NATS down: %d %v, want 503 with a JSON error", status, out)
	}
	if took >= 3*time.Second {
		t.Errorf("503 took %v, Personio gives up after 3s", took)
	}

	ns = start()
	waitUntil(t, 10*time.Second, func() bool { return nc.IsConnected() })
	// The refused publish may still have reached the server from the
	// client's reconnect buffer: "a timeout does not mean not stored"
	// (docs/jetstream.md#publishing-and-de-duplication). Either way the retry
	// is a success and the event is on the stream exactly once, thanks to the
	// delivery id.
	status, out = e.post(t, tokenOld, "application/json", body)
	if !(status == http.StatusAccepted && out["status"] == "accepted" || status == http.StatusOK && out["status"] == "duplicate") {
		t.Fatalf("retry after NATS is back: %d %v, want 202 accepted or 200 duplicate", status, out)
	}
	t.Logf("retry answered %d %s", status, out["status"])
	if msgs := e.streamMsgs(t); msgs["pe.p.0.person.5005.event"]+msgs["pe.p.1.person.5005.event"]+msgs["pe.p.2.person.5005.event"]+msgs["pe.p.3.person.5005.event"] != 1 {
		t.Errorf("stream after retry: %v, want the event once", msgs)
	}
}

func waitUntil(t testing.TB, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
