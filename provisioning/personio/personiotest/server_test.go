package personiotest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/provisioning/personio"
	"github.com/personio-entra/personio-entra/provisioning/personio/personiotest"
)

type received struct {
	auth string
	body map[string]any
}

// receiver answers every delivery with status and records what arrived.
func receiver(t *testing.T, status int) (*httptest.Server, func() []received) {
	var mu sync.Mutex
	var got []received
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b map[string]any
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			t.Errorf("delivery body: %v", err)
		}
		mu.Lock()
		got = append(got, received{r.Header.Get("Authorization"), b})
		mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []received { mu.Lock(); defer mu.Unlock(); return append([]received(nil), got...) }
}

func TestMutationDeliversWebhook(t *testing.T) {
	const token = "Bearer 0123456789abcdef0123456789abcdef"
	tests := []struct {
		name         string
		status       int
		wantAttempts int
		delivered    bool
	}{
		{"2xx accepted", http.StatusAccepted, 1, true},
		{"500 retried", http.StatusInternalServerError, 3, false},
		{"503 retried", http.StatusServiceUnavailable, 3, false},
		{"501 not retried", http.StatusNotImplemented, 1, false},
		{"400 not retried", http.StatusBadRequest, 1, false},
		{"401 not retried", http.StatusUnauthorized, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim := personiotest.New(personiotest.Options{AllowHTTPWebhooks: true, DeliveryRetries: 2, DeliveryRetryDelay: 10 * time.Millisecond})
			defer sim.Close()
			company, err := personiotest.LoadSampleCompany(time.Now())
			if err != nil {
				t.Fatal(err)
			}
			sim.SetCompany(company)
			recv, got := receiver(t, tt.status)
			c, err := personio.New(personio.Config{BaseURL: sim.URL(), ClientID: "sim-client-id", ClientSecret: "sim-client-secret"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.RegisterWebhook(context.Background(), recv.URL+"/webhooks/personio", token); err != nil {
				t.Fatal(err)
			}
			sim.UpdatePerson("1002", func(p *personiotest.Person) { p.LastName = "Nowak-Lewandowska" })
			sim.WaitDeliveries()

			rs := got()
			if len(rs) != tt.wantAttempts {
				t.Fatalf("receiver saw %d requests, want %d", len(rs), tt.wantAttempts)
			}
			for _, r := range rs {
				if r.auth != token {
					t.Errorf("Authorization %q, want the registered token verbatim", r.auth)
				}
				if r.body["event_name"] != "person.updated" || r.body["company_id"] != "4242" {
					t.Errorf("envelope %v", r.body)
				}
				payload, _ := r.body["payload"].(map[string]any)
				person, _ := payload["person"].(map[string]any)
				if person["id"] != "1002" {
					t.Errorf("payload %v, want person.id 1002", payload)
				}
				if _, ok := r.body["occurred_at"].(string); !ok {
					t.Errorf("no occurred_at in %v", r.body)
				}
			}
			log := sim.Deliveries()
			if len(log) != tt.wantAttempts || log[len(log)-1].Delivered != tt.delivered || log[len(log)-1].StatusCode != tt.status {
				t.Errorf("delivery log %+v", log)
			}
		})
	}
}

func TestEventsPerMutation(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(s *personiotest.Server)
		want   []string
	}{
		{"new person", func(s *personiotest.Server) {
			s.UpsertPerson(personiotest.Person{ID: "2001", FirstName: "Ada", LastName: "Lovelace", Email: "ada@example.com",
				Employments: []personiotest.Employment{{ID: "e2001", Status: "ONBOARDING"}}})
		}, []string{"person.created", "employment.created"}},
		{"employment change", func(s *personiotest.Server) {
			s.UpdatePerson("1003", func(p *personiotest.Person) { p.Employments[0].Position.Title = "VP Sales" })
		}, []string{"employment.updated"}},
		{"no change", func(s *personiotest.Server) { s.UpdatePerson("1003", func(*personiotest.Person) {}) }, nil},
		{"delete", func(s *personiotest.Server) { s.DeletePerson("1004") }, []string{"employment.deleted", "person.deleted"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim := personiotest.New(personiotest.Options{AllowHTTPWebhooks: true})
			defer sim.Close()
			company, _ := personiotest.LoadSampleCompany(time.Now())
			sim.SetCompany(company)
			recv, got := receiver(t, http.StatusOK)
			c, _ := personio.New(personio.Config{BaseURL: sim.URL(), ClientID: "sim-client-id", ClientSecret: "sim-client-secret"})
			if _, err := c.RegisterWebhook(context.Background(), recv.URL, "token-0123456789abcdef"); err != nil {
				t.Fatal(err)
			}
			tt.mutate(sim)
			sim.WaitDeliveries()
			names := map[string]bool{}
			for _, r := range got() {
				names[r.body["event_name"].(string)] = true
			}
			if len(names) != len(tt.want) {
				t.Errorf("events %v, want %v", names, tt.want)
			}
			for _, w := range tt.want {
				if !names[w] {
					t.Errorf("missing %s in %v", w, names)
				}
			}
		})
	}
}

func TestLoadSampleCompanyShiftsDates(t *testing.T) {
	tests := []struct {
		today time.Time
		want  string // start date of the first starter (1011), 3 days after today
	}{
		{personiotest.SampleDate, "2026-11-30"},
		{time.Date(2027, 3, 1, 15, 0, 0, 0, time.UTC), "2027-03-04"},
	}
	for _, tt := range tests {
		c, err := personiotest.LoadSampleCompany(tt.today)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Persons) != 54 {
			t.Fatalf("%d persons, want 54", len(c.Persons))
		}
		for _, p := range c.Persons {
			if p.ID == "1011" && p.Employments[0].EmploymentStartDate != tt.want {
				t.Errorf("today %v: start %s, want %s", tt.today, p.Employments[0].EmploymentStartDate, tt.want)
			}
		}
	}
}

// TestCreatedWebhookDefaultsToDisabled drives the raw API: a create
// without status stores DISABLED
// (https://developer.personio.de/reference/post_v2-webhooks) and receives
// nothing.
func TestCreatedWebhookDefaultsToDisabled(t *testing.T) {
	sim := personiotest.New(personiotest.Options{AllowHTTPWebhooks: true})
	defer sim.Close()
	company, _ := personiotest.LoadSampleCompany(time.Now())
	sim.SetCompany(company)
	recv, got := receiver(t, http.StatusOK)

	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {"sim-client-id"}, "client_secret": {"sim-client-secret"}}
	resp, err := http.PostForm(sim.URL()+"/v2/auth/token", form)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	body := `{"url":"` + recv.URL + `","description":"raw","enabled_events":["person.updated"]}`
	req, _ := http.NewRequest(http.MethodPost, sim.URL()+"/v2/webhooks", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var created struct {
		Status string `json:"status"`
	}
	json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || created.Status != "DISABLED" {
		t.Fatalf("create answered %d with status %q, want 201 DISABLED", resp.StatusCode, created.Status)
	}
	sim.UpdatePerson("1002", func(p *personiotest.Person) { p.LastName = "Changed" })
	sim.WaitDeliveries()
	if n := len(got()); n != 0 {
		t.Errorf("a DISABLED webhook received %d deliveries", n)
	}
}
