package personio_test

import (
	"context"
	"fmt"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/provisioning/personio"
	"github.com/personio-entra/personio-entra/provisioning/personio/personiotest"
)

// TestRequestCost10000 measures how many Personio requests reading 10,000
// employees costs: complete, incremental with nothing changed, and
// incremental with 1 % changed. Run with -v to see the numbers.
func TestRequestCost10000(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 10,000-person company")
	}
	const n = 10_000
	clk := newClock(time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC))
	sim, c := setup(t, personiotest.Options{Now: clk.Now}, personio.Config{})
	sim.SetCompany(personiotest.GenerateCompany(n))
	ctx := context.Background()

	count := func(name string, read func() ([]model.Employee, error), wantLen int, maxReq int64) {
		t.Helper()
		before := c.RequestCount()
		got, err := read()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		req := c.RequestCount() - before
		t.Logf("%-40s %6d employees  %4d requests", name, len(got), req)
		if len(got) != wantLen {
			t.Errorf("%s: %d employees, want %d", name, len(got), wantLen)
		}
		if req > maxReq {
			t.Errorf("%s: %d requests, want at most %d", name, req, maxReq)
		}
	}
	count("complete read (first, with token)", func() ([]model.Employee, error) { return c.ListEmployees(ctx) }, n, n/100+1)
	count("complete read (token cached)", func() ([]model.Employee, error) { return c.ListEmployees(ctx) }, n, n/100)

	clk.Add(time.Hour)
	since := clk.Now()
	count("incremental, nothing changed", func() ([]model.Employee, error) { return c.ListEmployeesUpdatedSince(ctx, since) }, 0, 10)

	clk.Add(time.Minute)
	for i := range n / 100 {
		id := fmt.Sprint(100000 + i*100)
		sim.UpdatePerson(id, func(p *personiotest.Person) { p.Employments[0].Position.Title += " (changed)" })
	}
	count("incremental, 1 % changed", func() ([]model.Employee, error) { return c.ListEmployeesUpdatedSince(ctx, since) }, n/100, 10)
}

// BenchmarkListEmployees reports requests per complete read of 10,000
// employees and the client-side cost of decoding and normalising them.
func BenchmarkListEmployees(b *testing.B) {
	sim := personiotest.New(personiotest.Options{})
	defer sim.Close()
	sim.SetCompany(personiotest.GenerateCompany(10_000))
	c, err := personio.New(personio.Config{BaseURL: sim.URL(), ClientID: "sim-client-id", ClientSecret: "sim-client-secret"})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.ListEmployees(ctx); err != nil { // token
		b.Fatal(err)
	}
	before := c.RequestCount()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.ListEmployees(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(c.RequestCount()-before)/float64(b.N), "requests/op")
}
