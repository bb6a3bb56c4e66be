package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestOpsRouter(t *testing.T) {
	e := newEnv(t, WebhookConfig{Tokens: []string{tokenOld}})
	failing := func(context.Context) error { return errors.New("queue: NATS connection is RECONNECTING") }
	tests := []struct {
		name   string
		ready  ReadyFunc
		path   string
		status int
		want   string
	}{
		{"healthz", failing, "/healthz", 200, `"status":"ok"`},
		{"readyz with the real queue", e.q.Ready, "/readyz", 200, `"status":"ready"`},
		{"readyz failing", failing, "/readyz", 503, "RECONNECTING"},
		{"metrics", e.q.Ready, "/metrics", 200, "personio_entra_webhook_requests_total{outcome=\"accepted\"}"},
		{"metrics has queue gauges", e.q.Ready, "/metrics", 200, "personio_entra_queue_pending_messages 0"},
		{"unknown path", e.q.Ready, "/nope", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(OpsRouter(tt.ready, discard()))
			defer srv.Close()
			resp, err := srv.Client().Get(srv.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d (%s)", resp.StatusCode, tt.status, b)
			}
			if !strings.Contains(string(b), tt.want) {
				t.Errorf("body does not contain %q:\n%.500s", tt.want, b)
			}
			if strings.HasPrefix(tt.path, "/readyz") {
				var v map[string]string
				if err := json.Unmarshal(b, &v); err != nil {
					t.Errorf("readyz body is not JSON: %v", err)
				}
			}
		})
	}
}
