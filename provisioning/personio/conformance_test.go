package personio_test

import (
	"context"
	"errors"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"os"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/provisioning/conformance"
	"github.com/personio-entra/personio-entra/provisioning/personio"
	"github.com/personio-entra/personio-entra/provisioning/personio/personiotest"
)

// TestConformance runs the Source contract suite (provisioning/conformance)
// and the client's own read-only checks against the simulator and, with
// PERSONIO_CONFORMANCE=1 plus PERSONIO_CLIENT_ID and PERSONIO_CLIENT_SECRET
// (and optionally PERSONIO_API_URL), against a real Personio account.
// Against the real account nothing is written: the suite's check of a
// deleted person runs against the simulator only.
func TestConformance(t *testing.T) {
	t.Run("simulator", func(t *testing.T) {
		conformance.RunSource(t, func(t *testing.T) conformance.SourceFixture {
			sim, c := setup(t, personiotest.Options{}, personio.Config{})
			return conformance.SourceFixture{Source: c, Remove: func(_ *testing.T, id string) { sim.DeletePerson(id) }}
		})
		t.Run("client", func(t *testing.T) {
			_, c := setup(t, personiotest.Options{}, personio.Config{})
			clientConformance(t, c)
		})
	})
	t.Run("personio", func(t *testing.T) {
		id, secret := os.Getenv("PERSONIO_CLIENT_ID"), os.Getenv("PERSONIO_CLIENT_SECRET")
		if os.Getenv("PERSONIO_CONFORMANCE") != "1" || id == "" || secret == "" {
			t.Skip("set PERSONIO_CONFORMANCE=1, PERSONIO_CLIENT_ID and PERSONIO_CLIENT_SECRET to run against a real account")
		}
		c, err := personio.New(personio.Config{BaseURL: os.Getenv("PERSONIO_API_URL"), ClientID: id, ClientSecret: secret, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		conformance.RunSource(t, func(*testing.T) conformance.SourceFixture { return conformance.SourceFixture{Source: c} })
		t.Run("client", func(t *testing.T) { clientConformance(t, c) })
	})
}

// clientConformance checks what the client offers beyond provisioning.Source.
func clientConformance(t *testing.T, c *personio.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := c.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	all, err := c.ListEmployees(ctx)
	if err != nil {
		t.Fatalf("ListEmployees: %v", err)
	}
	if len(all) == 0 {
		t.Fatal("ListEmployees returned nobody")
	}
	byID := map[string]model.Employee{}
	for _, e := range all {
		byID[e.PersonID] = e
	}
	t.Run("updated since is a subset", func(t *testing.T) {
		changed, err := c.ListEmployeesUpdatedSince(ctx, time.Now().Add(-30*24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range changed {
			if _, ok := byID[e.PersonID]; !ok {
				t.Errorf("incremental read returned %s, which the complete read lacks", e.PersonID)
			}
		}
		none, err := c.ListEmployeesUpdatedSince(ctx, time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if len(none) != 0 {
			t.Errorf("%d employees changed in the future", len(none))
		}
	})
	t.Run("webhooks readable", func(t *testing.T) {
		if _, err := c.ListWebhooks(ctx); err != nil {
			t.Errorf("ListWebhooks (scope personio:webhooks:read): %v", err)
		}
	})
	t.Run("unknown employment", func(t *testing.T) {
		_, err := c.PersonIDForEmployment(ctx, "00000000-0000-4000-8000-000000000000")
		if !errors.Is(err, personio.ErrNotFound) {
			t.Errorf("want ErrNotFound, got %v", err)
		}
	})
}
