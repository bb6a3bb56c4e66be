package main

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestProbeURL(t *testing.T) {
	tests := []struct {
		addr, path string
		want       string
		wantErr    bool
	}{
		{addr: "", path: "/readyz", want: "http://127.0.0.1:9090/readyz"},
		{addr: ":9191", path: "/healthz", want: "http://127.0.0.1:9191/healthz"},
		{addr: "0.0.0.0:9092", path: "/readyz", want: "http://127.0.0.1:9092/readyz"},
		{addr: "example.com:80", path: "/readyz", want: "http://127.0.0.1:80/readyz"},
		{addr: "9090", path: "/readyz", wantErr: true},
		{addr: ":9090", path: "readyz", wantErr: true},
		{addr: ":9090", path: "/readyz?x=1", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.addr+tc.path, func(t *testing.T) {
			got, err := probeURL(tc.addr, tc.path)
			if (err != nil) != tc.wantErr {
				t.Fatalf("probeURL(%q, %q) error = %v, wantErr %v", tc.addr, tc.path, err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("probeURL(%q, %q) = %q, want %q", tc.addr, tc.path, got, tc.want)
			}
		})
	}
}

// TestRun drives the probe against a real HTTP server on 127.0.0.1.
func TestRun(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) })
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "queue: NATS connection is RECONNECTING", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/readyz", http.StatusFound)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	env := func(k string) string {
		if k == "METRICS_ADDR" {
			return ":" + port
		}
		return ""
	}
	tests := []struct {
		name       string
		args       []string
		want       int
		wantStderr string
	}{
		{name: "ready answers 0", args: nil, want: 0},
		{name: "503 answers 1 with the body", args: []string{"/healthz"}, want: 1, wantStderr: "RECONNECTING"},
		{name: "404 answers 1", args: []string{"/missing"}, want: 1, wantStderr: "status 404"},
		{name: "redirect is not followed", args: []string{"/moved"}, want: 1, wantStderr: "status 302"},
		{name: "bad usage answers 2", args: []string{"/a", "/b"}, want: 2, wantStderr: "usage"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if got := run(tc.args, env, &stderr); got != tc.want {
				t.Fatalf("run(%v) = %d, want %d (stderr %q)", tc.args, got, tc.want, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("stderr %q, want it to contain %q", stderr.String(), tc.wantStderr)
			}
		})
	}

	// Nothing listening: connection refused is a failure, not a hang.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, closedPort, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	var stderr bytes.Buffer
	if got := run(nil, func(string) string { return ":" + closedPort }, &stderr); got != 1 {
		t.Errorf("probe of a closed port = %d, want 1 (stderr %q)", got, stderr.String())
	}
}
