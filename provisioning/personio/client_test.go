package personio_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/provisioning/personio"
	"github.com/personio-entra/personio-entra/provisioning/personio/personiotest"
)

// clock is a settable clock for the simulator.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock          { c := &clock{}; c.ns.Store(t.UnixNano()); return c }
func (c *clock) Now() time.Time            { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Add(d time.Duration)       { c.ns.Add(int64(d)) }
func (c *clock) Set(t time.Time)           { c.ns.Store(t.UnixNano()) }
func testLogger(t *testing.T) *slog.Logger { return slog.New(slog.NewTextHandler(testWriter{t}, nil)) }

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// setup starts a simulator with the sample company and a client for it.
func setup(t *testing.T, opts personiotest.Options, cfg personio.Config) (*personiotest.Server, *personio.Client) {
	t.Helper()
	sim := personiotest.New(opts)
	t.Cleanup(sim.Close)
	company, err := personiotest.LoadSampleCompany(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sim.SetCompany(company)
	cfg.BaseURL = sim.URL()
	if cfg.ClientID == "" {
		cfg.ClientID, cfg.ClientSecret = "sim-client-id", "sim-client-secret"
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	c, err := personio.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return sim, c
}

func TestGetEmployeeMapsEveryField(t *testing.T) {
	clk := newClock(time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC))
	sim, c := setup(t, personiotest.Options{Now: clk.Now}, personio.Config{})
	company := sim.Company()
	company.CostCenters = []personiotest.CostCenter{{ID: "cc-a", Name: "Platform R&D"}, {ID: "cc-b", Name: "Identity R&D"}}
	sim.SetCompany(company)
	clk.Add(time.Hour)
	sim.UpsertPerson(personiotest.Person{
		ID: "7001", FirstName: "Zoë", LastName: "O'Brien-Müller", PreferredName: "Zo",
		Email: "zoe.obrien-mueller@example.com", Gender: "DIVERSE",
		CustomAttributes: []personiotest.CustomAttribute{
			{ID: "dynamic_9001", Label: "Work phone", Type: "STRING", Value: "+44 20 7946 0001"},
			{ID: "dynamic_9004", Label: "Birthday", Type: "DATE", Value: "1990-02-03"},
		},
		Employments: []personiotest.Employment{{
			ID: "e7001", Status: "LEAVE", Type: "EXTERNAL", Position: personiotest.Position{Title: "Staff Engineer"},
			Supervisor: &personiotest.IDRef{ID: "1001"}, Office: &personiotest.IDRef{ID: "o3"},
			OrgUnits:            []personiotest.OrgUnitRef{{Type: "department", ID: "d3"}, {Type: "team", ID: "t2"}},
			LegalEntity:         &personiotest.IDRef{ID: "le2"},
			CostCenters:         []personiotest.CostCenterRef{{ID: "cc-a", Weight: 60}, {ID: "cc-b", Weight: 40}},
			EmploymentStartDate: "2020-01-15", EmploymentEndDate: "2027-01-31",
			Termination: &personiotest.Termination{TerminationDate: "2027-01-31", LastWorkingDay: "2027-01-29",
				Type: "CONTRACT_EXPIRED", Reason: "Project end"},
		}},
	})
	got, err := c.GetEmployee(context.Background(), "7001")
	if err != nil {
		t.Fatal(err)
	}
	want := model.Employee{
		PersonID: "7001", FirstName: "Zoë", LastName: "O'Brien-Müller", PreferredName: "Zo",
		Email: "zoe.obrien-mueller@example.com", Gender: "DIVERSE", Status: "LEAVE",
		Position:        "Staff Engineer",
		Department:      model.Ref{ID: "d3", Name: "Engineering"},
		Team:            model.Ref{ID: "t2", Name: "Identity"},
		Office:          model.Ref{ID: "o3", Name: "London"},
		LegalEntity:     model.Ref{ID: "le2", Name: "Example Ltd"},
		CostCenters:     []model.CostCenter{{ID: "cc-a", Name: "Platform R&D", Weight: 60}, {ID: "cc-b", Name: "Identity R&D", Weight: 40}},
		SupervisorID:    "1001",
		EmploymentType:  "EXTERNAL",
		StartDate:       model.Date{Year: 2020, Month: time.January, Day: 15},
		TerminationDate: model.Date{Year: 2027, Month: time.January, Day: 31},
		LastWorkingDay:  model.Date{Year: 2027, Month: time.January, Day: 29},
		TerminationType: "CONTRACT_EXPIRED",
		Attributes: map[string]model.Attribute{
			"dynamic_9001": {ID: "dynamic_9001", Label: "Work phone", Type: "standard", Value: "+44 20 7946 0001"},
			"dynamic_9004": {ID: "dynamic_9004", Label: "Birthday", Type: "date", Value: "1990-02-03"},
		},
		UpdatedAt: time.Date(2026, 11, 27, 10, 30, 0, 0, time.UTC),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GetEmployee mapped\n got %+v\nwant %+v", got, want)
	}
}

func TestGetEmployeeErrors(t *testing.T) {
	_, c := setup(t, personiotest.Options{}, personio.Config{})
	tests := []struct {
		name     string
		id       string
		notFound bool
		contains []string
	}{
		{"unknown person", "999999", true, []string{"999999", "HTTP 404", "The employee was not found."}},
		{"invalid id", "../1001", false, []string{"invalid person id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.GetEmployee(context.Background(), tt.id)
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, personio.ErrNotFound) != tt.notFound {
				t.Errorf("errors.Is(err, ErrNotFound) = %v, want %v (%v)", !tt.notFound, tt.notFound, err)
			}
			for _, s := range tt.contains {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

func TestCredentialErrorsNameTheCall(t *testing.T) {
	_, c := setup(t, personiotest.Options{}, personio.Config{ClientID: "sim-client-id", ClientSecret: "wrong"})
	tests := []struct {
		name string
		call func() error
		want []string
	}{
		{"v1 auth", func() error { _, err := c.GetEmployee(context.Background(), "1001"); return err },
			[]string{"v1_auth", "HTTP 401", "Wrong credentials"}},
		{"v2 token", func() error { _, err := c.ListWebhooks(context.Background()); return err },
			[]string{"v2_auth_token", "HTTP 400", "invalid_client", "client authentication failed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if err == nil {
				t.Fatal("no error with a wrong secret")
			}
			for _, s := range tt.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			if strings.Contains(err.Error(), "wrong") {
				t.Errorf("error leaks the secret: %q", err)
			}
		})
	}
}

func TestListEmployeesPagesToTheEnd(t *testing.T) {
	for _, n := range []int{0, 1, 99, 100, 101, 250} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			sim, c := setup(t, personiotest.Options{}, personio.Config{})
			sim.SetCompany(personiotest.GenerateCompany(n))
			got, err := c.ListEmployees(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != n {
				t.Fatalf("got %d employees, want %d", len(got), n)
			}
			ids := map[string]bool{}
			for _, e := range got {
				ids[e.PersonID] = true
			}
			if len(ids) != n {
				t.Errorf("%d distinct ids among %d employees", len(ids), n)
			}
			// One token request plus one request per page of 100 (the
			// metadata's total_elements saves a request after a full last page).
			wantReq := int64(1 + max(1, (n+99)/100))
			if c.RequestCount() != wantReq || sim.Requests() != wantReq {
				t.Errorf("requests: client %d, server %d, want %d", c.RequestCount(), sim.Requests(), wantReq)
			}
		})
	}
}

func TestPagingGuardAgainstRepeatingPages(t *testing.T) {
	tests := []struct {
		name string
		call func(c *personio.Client) error
	}{
		{"v1 offset ignored", func(c *personio.Client) error { _, err := c.ListEmployees(context.Background()); return err }},
		{"v2 next link repeats", func(c *personio.Client) error {
			_, err := c.PersonIDForEmployment(context.Background(), "no-such-employment")
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, c := setup(t, personiotest.Options{}, personio.Config{})
			sim.SetCompany(personiotest.GenerateCompany(230))
			sim.SetPagingFault(true)
			err := tt.call(c)
			if err == nil || !strings.Contains(err.Error(), "repeats") {
				t.Fatalf("want a repeating-page error, got %v", err)
			}
			if sim.Requests() > 5 {
				t.Errorf("%d requests before giving up; the guard should stop at the second page", sim.Requests())
			}
		})
	}
}

func TestRateLimitThenSuccess(t *testing.T) {
	tests := []struct {
		name       string
		maxRetries int
		limited    int
		wantErr    bool
	}{
		{"retried after 429", 0, 1, false},
		{"retries disabled", -1, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, c := setup(t, personiotest.Options{}, personio.Config{MaxRetries: tt.maxRetries})
			if _, err := c.ListWebhooks(context.Background()); err != nil { // token first
				t.Fatal(err)
			}
			before := sim.Requests()
			sim.InjectRateLimit(tt.limited)
			start := time.Now()
			e, err := c.GetEmployee(context.Background(), "1001")
			if tt.wantErr {
				var ae *personio.APIError
				if !errors.As(err, &ae) || ae.Status != http.StatusTooManyRequests {
					t.Fatalf("want a 429 APIError, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.PersonID != "1001" {
				t.Errorf("got person %q", e.PersonID)
			}
			// v1 token + one 429 + the success.
			if got := sim.Requests() - before; got != 3 {
				t.Errorf("%d requests, want 3", got)
			}
			if waited := time.Since(start); waited < time.Second {
				t.Errorf("retried after %v; Personio asks for at least 1 s", waited)
			}
		})
	}
}

func TestTokenSharedAndRefreshedUnderConcurrency(t *testing.T) {
	const ttl = 2 * time.Second
	sim, c := setup(t, personiotest.Options{TokenTTL: ttl, Latency: 20 * time.Millisecond}, personio.Config{})
	round := func() {
		var wg sync.WaitGroup
		errs := make(chan error, 50)
		for range 50 {
			wg.Go(func() {
				if _, err := c.GetEmployee(context.Background(), "1001"); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
	round()
	if n := sim.TokenRequests(); n != 1 {
		t.Fatalf("50 concurrent callers made %d token requests, want 1", n)
	}
	time.Sleep(ttl) // past the expiry
	round()
	if n := sim.TokenRequests(); n != 2 {
		t.Fatalf("after expiry: %d token requests in total, want 2", n)
	}
	if n := sim.Requests(); n != 102 {
		t.Errorf("%d requests, want 100 reads and 2 token requests (no 401 retries)", n)
	}
}

func TestPersonIDForEmployment(t *testing.T) {
	sim, c := setup(t, personiotest.Options{}, personio.Config{})
	tests := []struct {
		employment string
		want       string
		notFound   bool
	}{
		{"e1037", "1037", false},
		{"e1001", "1001", false},
		{"e1054", "1054", false},
		{"e-unknown", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.employment, func(t *testing.T) {
			got, err := c.PersonIDForEmployment(context.Background(), tt.employment)
			if tt.notFound {
				if !errors.Is(err, personio.ErrNotFound) {
					t.Fatalf("want ErrNotFound, got %q, %v", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	before := sim.Requests()
	if got, err := c.PersonIDForEmployment(context.Background(), "e1020"); err != nil || got != "1020" {
		t.Fatalf("got %q, %v", got, err)
	}
	if sim.Requests() != before {
		t.Errorf("a known employment cost %d requests; want none (remembered)", sim.Requests()-before)
	}
}

func TestRegisterWebhookCreatesEnabledThenUpdates(t *testing.T) {
	sim, c := setup(t, personiotest.Options{}, personio.Config{})
	ctx := context.Background()
	const url = "https://hooks.example.com/webhooks/personio"
	first, err := c.RegisterWebhook(ctx, url, "token-one-0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.RegisterWebhook(ctx, url, "token-two-0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	hooks := sim.Webhooks()
	if len(hooks) != 1 {
		t.Fatalf("%d webhooks after two registrations, want 1", len(hooks))
	}
	h := hooks[0]
	if first.ID != h.ID || second.ID != h.ID {
		t.Errorf("ids: first %s, second %s, stored %s", first.ID, second.ID, h.ID)
	}
	if h.Status != "ENABLED" || h.AuthType != "TOKEN" || h.Token != "token-two-0123456789abcdef" || h.URL != url {
		t.Errorf("stored webhook %+v: want ENABLED, TOKEN, the second token", h)
	}
	if !slices.Equal(h.EnabledEvents, personio.WebhookEvents) {
		t.Errorf("events %v, want %v", h.EnabledEvents, personio.WebhookEvents)
	}
	listed, err := c.ListWebhooks(ctx)
	if err != nil || len(listed) != 1 || listed[0].Status != "ENABLED" {
		t.Fatalf("ListWebhooks = %+v, %v", listed, err)
	}
	if err := c.PingWebhook(ctx, h.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.PingWebhook(ctx, "00000000-0000-4000-8000-000000000000"); err == nil || !strings.Contains(err.Error(), "HTTP 404") {
		t.Errorf("ping of an unknown webhook: %v", err)
	}
}

func TestUpdatePersonEmail(t *testing.T) {
	sim, c := setup(t, personiotest.Options{}, personio.Config{})
	ctx := context.Background()
	tests := []struct {
		name, person, email string
		wantErr             string
		notFound            bool
	}{
		{"write-back", "1011", "mikolaj.ozturk@example.com", "", false},
		{"duplicate", "1011", "katharina.vogel@example.com", "already used", false},
		{"unknown person", "999999", "x@example.com", "HTTP 404", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.UpdatePersonEmail(ctx, tt.person, tt.email)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if p, _ := sim.Person(tt.person); p.Email != tt.email {
					t.Errorf("email is %q, want %q", p.Email, tt.email)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("want error with %q, got %v", tt.wantErr, err)
			}
			if errors.Is(err, personio.ErrNotFound) != tt.notFound {
				t.Errorf("ErrNotFound match wrong: %v", err)
			}
		})
	}
}

func TestListEmployeesUpdatedSince(t *testing.T) {
	clk := newClock(time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC))
	sim, c := setup(t, personiotest.Options{Now: clk.Now}, personio.Config{})
	sim.SetCompany(sim.Company()) // stamp at 08:00
	clk.Add(time.Hour)
	since := clk.Now()
	clk.Add(time.Minute)
	sim.UpdatePerson("1002", func(p *personiotest.Person) { p.LastName = "Nowak-Schmidt" })
	sim.UpdatePerson("1003", func(p *personiotest.Person) { p.Employments[0].Position.Title = "VP Sales" })
	sim.UpdatePerson("1004", func(*personiotest.Person) {}) // no change
	got, err := c.ListEmployeesUpdatedSince(context.Background(), since)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range got {
		ids = append(ids, e.PersonID)
	}
	if !slices.Equal(ids, []string{"1002", "1003"}) {
		t.Fatalf("changed since %v: %v, want [1002 1003] (person and employment edits)", since, ids)
	}
	if got[1].Position != "VP Sales" || got[0].LastName != "Nowak-Schmidt" {
		t.Errorf("stale data: %+v", got)
	}
	if _, err := c.ListEmployeesUpdatedSince(context.Background(), time.Time{}); err == nil {
		t.Error("zero time accepted")
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		secret  string
		wantErr []string
	}{
		{"sim-client-secret", nil},
		{"wrong", []string{"v1", "v2", "read persons"}},
	}
	for _, tt := range tests {
		t.Run(tt.secret, func(t *testing.T) {
			_, c := setup(t, personiotest.Options{}, personio.Config{ClientID: "sim-client-id", ClientSecret: tt.secret, MaxRetries: -1})
			err := c.Check(context.Background())
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("Check passed with a wrong secret")
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

func TestNextLinkToAnotherHostGetsNoToken(t *testing.T) {
	var leaked atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			leaked.Add(1)
		}
		w.Write([]byte(`{"_data":[]}`))
	}))
	defer other.Close()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v2/auth/token":
			w.Write([]byte(`{"access_token":"papi-test","token_type":"Bearer","expires_in":3600}`))
		case "/v2/webhooks":
			fmt.Fprintf(w, `{"_data":[{"id":"w1","url":"https://a.example/h"}],"_meta":{"links":{"next":{"href":%q}}}}`, other.URL+"/v2/webhooks?cursor=x")
		default:
			http.NotFound(w, r)
		}
	}))
	defer api.Close()
	c, err := personio.New(personio.Config{BaseURL: api.URL, ClientID: "id", ClientSecret: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ListWebhooks(context.Background())
	if err == nil || !strings.Contains(err.Error(), "refusing to send credentials") {
		t.Errorf("want a refusal, got %v", err)
	}
	if leaked.Load() != 0 {
		t.Error("the bearer token was sent to another host")
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  personio.Config
	}{
		{"ftp URL", personio.Config{BaseURL: "ftp://example.com", ClientID: "a", ClientSecret: "b"}},
		{"no secret", personio.Config{ClientID: "a"}},
		{"no id", personio.Config{ClientSecret: "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := personio.New(tt.cfg); err == nil {
				t.Error("accepted")
			}
		})
	}
}
