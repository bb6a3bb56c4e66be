package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/handlers"
)

func TestLoopbackURL(t *testing.T) {
	tests := []struct {
		url string
		ok  bool
	}{
		{"http://127.0.0.1:8080/webhooks/personio", true},
		{"http://127.1.2.3:80/x", true},
		{"http://[::1]:8080/x", true},
		{"http://localhost:8080/x", true},
		{"https://127.0.0.1/x", true},
		{"http://10.0.0.1:8080/x", false},
		{"http://example.com/x", false},
		{"http://127.0.0.1.example.com/x", false},
		{"ftp://127.0.0.1/x", false},
		{"http://0.0.0.0:8080/x", false},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			if err := loopbackURL(tc.url); (err == nil) != tc.ok {
				t.Errorf("loopbackURL(%q) = %v, want ok=%t", tc.url, err, tc.ok)
			}
		})
	}
}

func TestParseBounds(t *testing.T) {
	tests := []struct {
		name string
		args []string
		ok   bool
	}{
		{"defaults with a token", []string{"-token", "t"}, true},
		{"no token", []string{"-token", ""}, false},
		{"remote target", []string{"-token", "t", "-url", "http://192.0.2.1/webhooks/personio"}, false},
		{"rate too high", []string{"-token", "t", "-rate", "50000"}, false},
		{"duration too long", []string{"-token", "t", "-duration", "1h"}, false},
		{"no people", []string{"-token", "t", "-people", "0"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(tc.args, io.Discard)
			if (err == nil) != tc.ok {
				t.Errorf("parse(%v) = %v, want ok=%t", tc.args, err, tc.ok)
			}
		})
	}
}

func TestQuantile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	tests := []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.9, 90 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}}
	for _, tc := range tests {
		if got := quantile(d, tc.q); got != tc.want {
			t.Errorf("quantile(%v) = %s, want %s", tc.q, got, tc.want)
		}
	}
	if quantile(nil, 0.5) != 0 {
		t.Error("quantile of nothing is not 0")
	}
}

// Every delivery carries the token verbatim and a body the receiver's own
// envelope parser accepts; the count is bounded by -max-requests and the
// answers are tallied by status.
func TestLoadSendsValidDeliveries(t *testing.T) {
	const token = "loadgen-test-token-0123456789"
	var n atomic.Int64
	var mu sync.Mutex
	var problems []string
	seen := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		body, _ := io.ReadAll(r.Body)
		env, err := handlers.ParseEnvelope(body)
		mu.Lock()
		switch {
		case r.Header.Get("Authorization") != token:
			problems = append(problems, "wrong Authorization header")
		case err != nil:
			problems = append(problems, "unparsable envelope: "+err.Error())
		case env.PersonID() == "":
			problems = append(problems, "no person id")
		case seen[env.DeliveryID()]:
			problems = append(problems, "two deliveries with the same id")
		}
		seen[env.DeliveryID()] = true
		mu.Unlock()
		if i%10 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()

	rep := load(context.Background(), options{url: srv.URL, token: token, company: "4242", rate: 2000,
		duration: 5 * time.Second, people: 50, firstID: 100000, maxRequests: 200, concurrency: 16, timeout: 3 * time.Second})
	if rep.Sent+rep.Skipped != 200 {
		t.Errorf("sent %d + skipped %d, want 200 (the -max-requests bound)", rep.Sent, rep.Skipped)
	}
	if got := int(n.Load()); got != rep.Sent {
		t.Errorf("server saw %d deliveries, report says %d", got, rep.Sent)
	}
	if rep.Statuses["202"]+rep.Statuses["503"] != rep.Sent || rep.Statuses["503"] != rep.Sent/10 {
		t.Errorf("statuses %v for %d sent, want every 10th a 503", rep.Statuses, rep.Sent)
	}
	if rep.P50 <= 0 || rep.P50 > rep.P99 || rep.P99 > rep.Max {
		t.Errorf("latencies out of order: p50 %s p99 %s max %s", rep.P50, rep.P99, rep.Max)
	}
	for _, p := range problems {
		t.Error(p)
	}
}
