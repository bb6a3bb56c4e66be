package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/personio-entra/personio-entra/queue"
)

const testToken = "serve-test-token-0123456789"

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func testEnv(vars map[string]string, stdout, stderr io.Writer) *environment {
	return &environment{getenv: func(k string) string { return vars[k] }, stdout: stdout, stderr: stderr}
}

// serve runs end to end: config from the environment, embedded JetStream
// under DATA_DIR, webhook accepted with 202, readiness and metrics, and a
// clean exit on cancellation (SIGTERM).
func TestServeCommand(t *testing.T) {
	listen, metrics, dataDir := freeAddr(t), freeAddr(t), t.TempDir()
	vars := map[string]string{
		"PERSONIO_WEBHOOK_TOKEN": "old-token-abcdefghijklmnop, " + testToken,
		"LISTEN_ADDR":            listen,
		"METRICS_ADDR":           metrics,
		"DATA_DIR":               dataDir,
		"QUEUE_PARTITIONS":       "4",
	}
	var stderr syncBuf
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- runMain(ctx, testEnv(vars, io.Discard, &stderr), []string{"serve"}) }()

	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get("http://" + metrics + "/readyz")
		if err == nil && resp.StatusCode == 200 {
			resp.Body.Close()
			break
		}
		if err == nil {
			resp.Body.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve never became ready; log:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	body := `{"company_id":"1","event_name":"person.created","occurred_at":"2026-11-27T08:00:00Z","payload":{"person":{"id":"5005"}}}`
	req, _ := http.NewRequest(http.MethodPost, "http://"+listen+"/webhooks/personio", strings.NewReader(body))
	req.Header.Set("Authorization", testToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("webhook: %d, want 202", resp.StatusCode)
	}
	resp, err = client.Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// Other tests in this package share the process-wide registry: the
	// counter must exist and be at least 1.
	if !regexp.MustCompile(`personio_entra_webhook_requests_total\{outcome="accepted"\} [1-9]`).Match(m) {
		t.Errorf("metrics do not count the accepted webhook")
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exited %d; log:\n%s", code, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop after cancellation")
	}
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("log line is not JSON: %s", line)
		}
	}
	if strings.Contains(stderr.String(), testToken) {
		t.Error("the webhook token appeared in the log")
	}

	// The event survived the shutdown in DATA_DIR.
	q, closeQ, err := openQueue(context.Background(), Config{DataDir: dataDir, Partitions: 4, Replicas: 1}, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer closeQ()
	s, err := q.JetStream().Stream(context.Background(), queue.EventStream)
	if err != nil || s.CachedInfo().State.Msgs != 1 {
		t.Fatalf("stream after restart: %v msgs, err %v; want 1", s.CachedInfo().State.Msgs, err)
	}
}

func TestServeRefusesBadConfig(t *testing.T) {
	var stderr bytes.Buffer
	code := runMain(context.Background(), testEnv(map[string]string{"QUEUE_PARTITIONS": "0", "QUEUE_REPLICAS": "3"}, io.Discard, &stderr), []string{"serve"})
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{"PERSONIO_WEBHOOK_TOKEN is empty", "QUEUE_PARTITIONS=0", "QUEUE_REPLICAS=3 needs NATS_URL"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("error output lacks %q:\n%s", want, stderr.String())
		}
	}
}

func TestDeadlettersCommand(t *testing.T) {
	dataDir := t.TempDir()
	vars := map[string]string{"DATA_DIR": dataDir, "QUEUE_PARTITIONS": "4", "LOG_FORMAT": "text"}
	cfg := Config{DataDir: dataDir, Partitions: 4, Replicas: 1}

	// Two dead letters, written as the workers write them.
	q, closeQ, err := openQueue(context.Background(), cfg, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	for i, person := range []string{"5005", "77"} {
		m := nats.NewMsg(fmt.Sprintf("pe.dlq.pe.p.1.person.%s.event", person))
		m.Data = []byte(`{"event_name":"person.updated"}`)
		m.Header.Set(queue.HeaderReason, "person.updated")
		m.Header.Set(queue.HeaderDLQReason, queue.DeadLetterMaxDeliveries)
		m.Header.Set(queue.HeaderDLQError, "graph: 503 service unavailable")
		m.Header.Set(queue.HeaderDLQAttempts, "8")
		m.Header.Set(queue.HeaderDLQStream, queue.EventStream)
		m.Header.Set(queue.HeaderDLQSubject, fmt.Sprintf("pe.p.1.person.%s.event", person))
		m.Header.Set(queue.HeaderDLQSequence, fmt.Sprint(i+10))
		if _, err := q.JetStream().PublishMsg(context.Background(), m, jetstream.WithExpectStream(queue.DeadLetterStream)); err != nil {
			t.Fatal(err)
		}
	}
	closeQ()

	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := runMain(context.Background(), testEnv(vars, &out, &errOut), append([]string{"deadletters"}, args...))
		return code, out.String(), errOut.String()
	}
	tests := []struct {
		args     []string
		code     int
		outParts []string
	}{
		{[]string{"list"}, 0, []string{"SEQ", "person 5005", "person 77", "max_deliveries", "503 service unavailable"}},
		{[]string{"show", "1", "--json"}, 0, []string{`"person_id": "5005"`, `"attempts": 8`, `"original_sequence": 10`}},
		{[]string{"show", "2"}, 0, []string{"person 77", "Attempts:", "8"}},
		{[]string{"redrive", "1"}, 0, []string{"re-driven dead letter 1"}},
		{[]string{"purge", "2"}, 0, []string{"purged dead letter 2"}},
		{[]string{"list", "--json"}, 0, []string{"[]"}},
		{[]string{"purge", "2"}, 1, nil},
		{[]string{"show"}, 2, nil},
		{[]string{"bogus"}, 2, nil},
		{[]string{"list", "--all"}, 2, nil},
		{[]string{"redrive", "x"}, 2, nil},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errOut := run(tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
			for _, p := range tt.outParts {
				if !strings.Contains(out, p) {
					t.Errorf("stdout lacks %q:\n%s", p, out)
				}
			}
		})
	}

	// The re-driven one is person work again, reason "redrive".
	q, closeQ, err = openQueue(context.Background(), cfg, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer closeQ()
	s, _ := q.JetStream().Stream(context.Background(), queue.EventStream)
	last, err := s.GetLastMsgForSubject(context.Background(), "pe.p.*.person.5005.redrive")
	if err != nil || last.Header.Get(queue.HeaderReason) != queue.ReasonRedrive {
		t.Fatalf("re-driven work: %v, %v", last, err)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
