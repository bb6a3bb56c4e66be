package main

// End-to-end tests of what matching must never do: adopt an account the
// company does not own as an employee account.

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/entra/entratest"
	"github.com/personio-entra/personio-entra/provisioning/personio/personiotest"
)

// A B2B guest whose mail is the joiner's Personio email and a synced
// on-premises account whose UPN is the other joiner's email are never
// adopted: each joiner gets a new member account, the two accounts stay as
// they were, and the audit log says why they were skipped.
func TestEndToEndMatchingSkipsGuestsAndSyncedAccounts(t *testing.T) {
	var guestID, syncedID string
	s := newTestStack(t, stackOptions{seed: func(es *entratest.Server) {
		guestID = es.AddUser(entratest.User{UserPrincipalName: "grace.hopper_partner.example.net#EXT#@example.com",
			Mail: "grace.hopper@partner.example.net", DisplayName: "Grace Hopper (Partner)", UserType: "Guest", AccountEnabled: true})
		syncedID = es.AddUser(entratest.User{UserPrincipalName: "linus.t@example.com", DisplayName: "Linus T (AD)",
			OnPremisesSyncEnabled: true, AccountEnabled: true})
	}})
	convergeE2E(t, s)

	s.personio.UpsertPerson(joiner("3201", "Grace", "Hopper", 3, func(p *personiotest.Person) { p.Email = "grace.hopper@partner.example.net" }))
	s.personio.UpsertPerson(joiner("3202", "Linus", "Torvalds", 3, func(p *personiotest.Person) {
		p.Email = "linus.t@example.com"
		p.Gender = "MALE"
	}))
	for _, c := range []struct{ person, skipped, upn, why string }{
		{"3201", guestID, "grace.hopper@example.com", "guests are never adopted"},
		{"3202", syncedID, "linus.torvalds@example.com", "synced from on-premises"},
	} {
		u := eventually(t, s, c.person, "a new account", func(u entratest.User, found bool) bool { return found })
		if u.ID == c.skipped || u.UserPrincipalName != c.upn || u.UserType != "Member" {
			t.Errorf("person %s: account %s (%s, %s), want a new member account %s", c.person, u.UserPrincipalName, u.ID, u.UserType, c.upn)
		}
		if n := len(usersWithEmployeeID(s, c.person)); n != 1 {
			t.Errorf("person %s: %d accounts, want 1", c.person, n)
		}
		recs, err := s.app.q.ReadAudit(context.Background(), c.person, 100)
		if err != nil {
			t.Fatal(err)
		}
		var said bool
		for _, r := range recs {
			var a provisioning.AuditRecord
			if json.Unmarshal(r, &a) == nil && a.UserID == c.skipped && a.Result == provisioning.ResultSkipped && strings.Contains(a.Note, c.why) {
				said = true
			}
		}
		if !said {
			t.Errorf("person %s: the audit log does not say that account %s was skipped (%q)", c.person, c.skipped, c.why)
		}
	}
	convergeE2E(t, s)
	if g, _ := s.entra.User(guestID); g.EmployeeID != "" || g.DisplayName != "Grace Hopper (Partner)" || !g.AccountEnabled {
		t.Errorf("the guest was changed: %+v", g)
	}
	if a, _ := s.entra.User(syncedID); a.EmployeeID != "" || a.DisplayName != "Linus T (AD)" {
		t.Errorf("the synced account was changed: %+v", a)
	}
	plan, err := s.app.engine.PlanFor(context.Background(), "3201")
	if err != nil || plan.UserID == guestID {
		t.Fatalf("plan for 3201: user %s, err %v", plan.UserID, err)
	}
}
