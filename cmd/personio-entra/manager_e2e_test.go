package main

import (
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/provisioning/entra/entratest"
	"github.com/personio-entra/personio-entra/provisioning/personio/personiotest"
)

// A report whose manager has no account yet gets the manager as soon as the
// manager's account is created — not after the periodic retry, which is an
// hour here so that only the waiting index can do it.
func TestEndToEndReportGetsManagerWhenManagerAccountIsCreated(t *testing.T) {
	s := newTestStack(t, stackOptions{managerRetry: time.Hour})
	convergeE2E(t, s)
	s.personio.UpsertPerson(joiner("9101", "Rita", "Report", 0, func(p *personiotest.Person) {
		p.Employments[0].Supervisor = &personiotest.IDRef{ID: "9100"}
	}))
	eventually(t, s, "9101", "account created", func(u entratest.User, found bool) bool { return found })
	time.Sleep(500 * time.Millisecond) // the reconcile records that it waits
	if u, _ := s.userByEmployeeID("9101"); u.ManagerID != "" {
		t.Fatalf("manager set before the manager exists: %+v", u)
	}
	s.personio.UpsertPerson(joiner("9100", "Max", "Manager", 0, nil))
	m := eventually(t, s, "9100", "manager's account created", func(u entratest.User, found bool) bool { return found })
	start := time.Now()
	deadline := start.Add(15 * time.Second)
	for {
		u, _ := s.userByEmployeeID("9101")
		if u.ManagerID == m.ID {
			t.Logf("manager set %s after the manager's account appeared", time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("report's manager = %q, want %s (the manager's account exists)", u.ManagerID, m.ID)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
