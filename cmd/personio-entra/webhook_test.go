package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/provisioning/personio/personiotest"
)

func TestWebhookCommand(t *testing.T) {
	var pings atomic.Int64
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			EventName string `json:"event_name"`
		}
		_ = json.NewDecoder(r.Body).Decode(&b)
		if b.EventName == "ping" && r.Header.Get("Authorization") == "first-token-0123456789abcdef" {
			pings.Add(1)
		}
	}))
	defer recv.Close()
	sim := personiotest.New(personiotest.Options{AllowHTTPWebhooks: true})
	defer sim.Close()

	vars := map[string]string{
		"PERSONIO_API_URL":       sim.URL(),
		"PERSONIO_CLIENT_ID":     "sim-client-id",
		"PERSONIO_CLIENT_SECRET": "sim-client-secret",
		"PERSONIO_WEBHOOK_TOKEN": "first-token-0123456789abcdef, older-token-0123456789abcdef",
	}
	run := func(vars map[string]string, args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		env := &environment{getenv: func(k string) string { return vars[k] }, stdout: &out, stderr: &errOut}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		code := runMain(ctx, env, append([]string{"webhook"}, args...))
		return code, out.String(), errOut.String()
	}
	hookURL := recv.URL + "/webhooks/personio"

	tests := []struct {
		name     string
		vars     map[string]string
		args     []string
		code     int
		stdout   []string
		stderr   []string
		webhooks int
	}{
		{"test before register", vars, []string{"test"}, 1, nil, []string{"no matching webhook"}, 0},
		{"register creates", vars, []string{"register", "--url", hookURL}, 0, []string{"ENABLED", hookURL, "person.updated"}, nil, 1},
		{"register again updates", vars, []string{"register", "--url", hookURL}, 0, []string{"ENABLED"}, nil, 1},
		{"list", vars, []string{"list"}, 0, []string{"ID", "ENABLED", "TOKEN", hookURL}, nil, 1},
		{"test pings the only webhook", vars, []string{"test"}, 0, []string{"ping sent"}, nil, 1},
		{"register without url", vars, []string{"register"}, 2, nil, []string{"needs --url"}, 1},
		{"unknown subcommand", vars, []string{"delete"}, 2, nil, []string{"unknown webhook command"}, 1},
		{"missing credentials and token", map[string]string{"PERSONIO_API_URL": sim.URL()}, []string{"register", "--url", hookURL}, 1, nil,
			[]string{"PERSONIO_CLIENT_ID is empty", "PERSONIO_CLIENT_SECRET is empty", "PERSONIO_WEBHOOK_TOKEN is empty"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(tt.vars, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout, stderr)
			}
			for _, s := range tt.stdout {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout %q lacks %q", stdout, s)
				}
			}
			for _, s := range tt.stderr {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr %q lacks %q", stderr, s)
				}
			}
			if strings.Contains(stdout+stderr, "sim-client-secret") || strings.Contains(stdout+stderr, "first-token") {
				t.Error("a secret was printed")
			}
			if n := len(sim.Webhooks()); n != tt.webhooks {
				t.Errorf("%d webhooks registered, want %d", n, tt.webhooks)
			}
		})
	}
	hooks := sim.Webhooks()
	if hooks[0].Token != "first-token-0123456789abcdef" || hooks[0].Status != "ENABLED" {
		t.Errorf("stored webhook %+v: want the first token, ENABLED", hooks[0])
	}
	sim.WaitDeliveries()
	if pings.Load() != 1 {
		t.Errorf("receiver got %d authenticated pings, want 1", pings.Load())
	}
}
