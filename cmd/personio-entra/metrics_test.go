package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/provisioning/entra/entratest"
	"github.com/personio-entra/personio-entra/provisioning/personio/personiotest"
)

// dashboardMetrics lists every personio_entra_* metric the Grafana
// dashboards and the alert rules use.
func dashboardMetrics(t *testing.T) []string {
	t.Helper()
	files, _ := filepath.Glob("../../deploy/grafana/*.json")
	files = append(files, "../../deploy/prometheus/alerts.yaml")
	seen := map[string]bool{}
	re := regexp.MustCompile(`personio_entra_[a-z0-9_]*[a-z0-9]`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllString(string(b), -1) {
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				if base, ok := strings.CutSuffix(m, suf); ok && !strings.HasSuffix(base, "_total") {
					m = base
				}
			}
			seen[m] = true
		}
	}
	var out []string
	for m := range seen {
		out = append(out, m)
	}
	slices.Sort(out)
	if len(out) < 10 {
		t.Fatalf("only %d metrics found in the dashboards and alerts: %v", len(out), out)
	}
	return out
}

// TestMetricsAfterRealTraffic drives the product through the simulators
// (sync, webhooks accepted, ignored and refused, a throttled Graph, a
// retried Personio call, a dead letter) and then scrapes /metrics: every
// metric the dashboard and the alerts use must be there.
func TestMetricsAfterRealTraffic(t *testing.T) {
	s := newTestStack(t, stackOptions{seed: func(es *entratest.Server) {
		// Two accounts claim person 1010: its reconcile stops with a
		// permanent error and goes to the dead letters.
		es.AddUser(entratest.User{UserPrincipalName: "dup1@example.com", EmployeeID: "1010", AccountEnabled: true})
		es.AddUser(entratest.User{UserPrincipalName: "dup2@example.com", EmployeeID: "1010", AccountEnabled: true})
	}})
	convergeE2E(t, s)
	post := func(body, token string) int {
		req, _ := http.NewRequest(http.MethodPost, s.webhookURL, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	cid := s.cfg.PersonioCompanyID
	if code := post(fmt.Sprintf(`{"company_id":%q,"event_name":"absence-period.created","occurred_at":"2026-11-27T08:00:00Z","payload":{"absence_period":{"id":"a1"}}}`, cid), s.webhookToken); code/100 != 2 {
		t.Errorf("absence event: %d", code)
	}
	if code := post(`{}`, "wrong-token"); code != http.StatusUnauthorized {
		t.Errorf("wrong token: %d", code)
	}
	// Graph throttles for a moment, Personio answers one 429.
	s.entra.SetFaults(entratest.Faults{ThrottleRate: 0.5, RetryAfter: 50 * time.Millisecond})
	s.personio.InjectRateLimit(1)
	s.personio.UpdatePerson("1012", func(p *personiotest.Person) { p.Employments[0].Position.Title = "Senior Designer" })
	eventually(t, s, "1012", "title updated", func(u entratest.User, _ bool) bool { return u.Properties["jobTitle"] == "Senior Designer" })
	s.entra.SetFaults(entratest.Faults{})
	// Person 1010 ends in the dead letters.
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

	resp, err := http.Get("http://" + s.cfg.MetricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	exposed := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
			exposed[strings.Fields(name)[0]] = true
		}
	}
	// Series that exist only while a feature is in use: checked by that
	// feature's own end-to-end test instead.
	onlyWithFeature := map[string]string{
		"personio_entra_license_seats_available": "TestEndToEndLicenses",
	}
	for _, m := range dashboardMetrics(t) {
		if !exposed[m] && onlyWithFeature[m] == "" {
			t.Errorf("dashboard/alert metric %s is not exposed after real traffic", m)
		}
	}
	// Spot-check values that the traffic must have moved.
	for _, re := range []string{
		`personio_entra_webhook_requests_total\{outcome="unauthorized"\} [1-9]`,
		`personio_entra_webhook_events_ignored_total\{event="[a-z_.-]+"\} [1-9]`,
		`personio_entra_changes_total\{kind="create_user",result="applied"\} [1-9]`,
		`personio_entra_graph_throttled_total [1-9]`,
		`personio_entra_full_sync_runs_total\{kind="complete",outcome="success"\} [1-9]`,
	} {
		if !regexp.MustCompile(re).Match(body) {
			t.Errorf("/metrics has no line matching %s", re)
		}
	}
}
