package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/personio-entra/personio-entra/handlers"
)

// The wrk script sends valid, distinct Personio deliveries with the token
// verbatim, from every wrk thread. deploy/ci-prereqs.sh installs wrk; the
// test skips where it is missing.
func TestWrkScriptSendsDistinctDeliveries(t *testing.T) {
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		t.Skip("wrk not installed (deploy/ci-prereqs.sh installs it)")
	}
	const token = "wrk-test-token-0123456789"
	var mu sync.Mutex
	var problems []string
	seen := map[string]bool{}
	events := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		env, err := handlers.ParseEnvelope(body)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.Header.Get("Authorization") != token:
			problems = append(problems, "wrong Authorization header")
		case r.Header.Get("Content-Type") != "application/json":
			problems = append(problems, "wrong Content-Type "+r.Header.Get("Content-Type"))
		case err != nil:
			problems = append(problems, "unparsable envelope: "+err.Error())
		case env.PersonID() == "" || env.CompanyID != "4242":
			problems = append(problems, "no person id or wrong company in "+string(body))
		case seen[env.DeliveryID()]:
			problems = append(problems, "two deliveries with the same id: "+string(body))
		}
		seen[env.DeliveryID()] = true
		events[env.EventName]++
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	cmd := exec.Command(wrk, "-t2", "-c4", "-d1s", "-s", "wrk-personio.lua", srv.URL+"/webhooks/personio")
	// 500 prepared requests per thread, so that a second of load also
	// sends ones built on the fly.
	cmd.Env = append(cmd.Environ(), "PERSONIO_WEBHOOK_TOKEN="+token, "WRK_PREPARE=500")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("wrk: %v\n%s", err, out)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) < 1500 {
		t.Errorf("only %d deliveries in a second:\n%s", len(seen), out)
	}
	for _, ev := range []string{"person.updated", "employment.updated", "person.created"} {
		if events[ev] == 0 {
			t.Errorf("no %s deliveries: %v", ev, events)
		}
	}
	if strings.Contains(string(out), "Non-2xx") {
		t.Errorf("wrk saw refusals:\n%s", out)
	}
	for i, p := range problems {
		if i == 5 {
			t.Errorf("... %d problems in all", len(problems))
			break
		}
		t.Error(p)
	}
}

// Without a token the script refuses to run rather than measuring 401s.
func TestWrkScriptNeedsToken(t *testing.T) {
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		t.Skip("wrk not installed (deploy/ci-prereqs.sh installs it)")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) }))
	defer srv.Close()
	cmd := exec.Command(wrk, "-t1", "-c1", "-d1s", "-s", "wrk-personio.lua", srv.URL)
	cmd.Env = append(cmd.Environ(), "PERSONIO_WEBHOOK_TOKEN=")
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), "PERSONIO_WEBHOOK_TOKEN") {
		t.Errorf("wrk without a token did not name it:\n%s", out)
	}
}
