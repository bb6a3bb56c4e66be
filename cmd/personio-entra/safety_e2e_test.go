package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/entra/entratest"
	"github.com/personio-entra/personio-entra/provisioning/personio/personiotest"
)

// An account that carries an employeeId Personio does not know (another HR
// system, an on-premises sync, a hand edit) was never created or adopted by
// the product: the start-up sync and a reconcile report it and leave it alone.
func TestEndToEndUnownedAccountIsLeftAlone(t *testing.T) {
	var ext string
	s := newTestStack(t, stackOptions{seed: func(es *entratest.Server) {
		ext = es.AddUser(entratest.User{UserPrincipalName: "contractor@example.com", DisplayName: "External Contractor",
			EmployeeID: "EXT-1", AccountEnabled: true})
	}})
	convergeE2E(t, s)
	if err := addMember(s, s.groups["Finance"], ext); err != nil {
		t.Fatal(err)
	}
	rep, err := s.app.syncer.Run(context.Background(), provisioning.SyncOptions{Complete: true})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(rep.Unowned, "contractor@example.com") {
		t.Errorf("sync report does not list the unowned account: %+v", rep.Unowned)
	}
	// A direct reconcile (as a webhook or `sync --employee` would queue).
	if err := s.app.q.Enqueue(context.Background(), "EXT-1", "cli"); err != nil {
		t.Fatal(err)
	}
	var recs []provisioning.AuditRecord
	deadline := time.Now().Add(30 * time.Second)
	for len(recs) == 0 && time.Now().Before(deadline) {
		raw, err := s.app.q.ReadAudit(context.Background(), "EXT-1", 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range raw {
			var r provisioning.AuditRecord
			if json.Unmarshal(b, &r) == nil {
				recs = append(recs, r)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(recs) != 1 || recs[0].Result != provisioning.ResultSkipped || !strings.Contains(recs[0].Note, "no record that it created or adopted it") {
		t.Fatalf("audit for the unowned account = %+v", recs)
	}
	for _, u := range s.entra.Users() {
		if u.ID == ext && (!u.AccountEnabled || u.Deleted || !u.SignInSessionsValidFrom.IsZero()) {
			t.Fatalf("unowned account changed: %+v", u)
		}
	}
	if !slices.Contains(s.entra.Members(s.groups["Finance"]), ext) {
		t.Fatal("unowned account removed from Finance")
	}
}

// Ten people get a last working day of yesterday at once (an HR bulk
// import): the webhooks disable at most the threshold, the rest is held in
// one approval, and the admin API releases it.
func TestEndToEndSafeguardHoldsWebhookLeavers(t *testing.T) {
	const threshold = 3
	s := newTestStack(t, stackOptions{guardMax: threshold})
	convergeE2E(t, s)
	var leavers []string
	for _, u := range s.entra.Users() {
		if u.AccountEnabled && u.EmployeeID != "" && len(leavers) < 10 {
			leavers = append(leavers, u.EmployeeID)
		}
	}
	if len(leavers) < 10 {
		t.Fatalf("only %d enabled accounts", len(leavers))
	}
	for _, id := range leavers {
		s.personio.UpdatePerson(id, func(p *personiotest.Person) {
			p.Employments[0].Termination = &personiotest.Termination{TerminationDate: date(-1), LastWorkingDay: date(-1), Type: "EMPLOYEE"}
			p.Employments[0].Status = "INACTIVE"
		})
	}
	disabled := func() int {
		n := 0
		for _, id := range leavers {
			if u, ok := s.userByEmployeeID(id); ok && !u.AccountEnabled {
				n++
			}
		}
		return n
	}
	var ap provisioning.Approval
	deadline := time.Now().Add(60 * time.Second)
	for {
		var aps []provisioning.Approval
		adminCall(t, s, http.MethodGet, "/approvals", &aps)
		if len(aps) == 1 && len(aps[0].People) == len(leavers)-threshold {
			ap = aps[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("want one approval holding %d people; approvals %+v, %d disabled", len(leavers)-threshold, aps, disabled())
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second) // room for a wrong disable to land
	if got := disabled(); got != threshold {
		t.Fatalf("%d leavers disabled before approval, want exactly the threshold %d", got, threshold)
	}
	for _, id := range ap.People {
		if u, _ := s.userByEmployeeID(id); !u.AccountEnabled {
			t.Errorf("held person %s was disabled", id)
		}
	}
	adminCall(t, s, http.MethodPost, "/approvals/"+ap.ID+"/approve", nil)
	deadline = time.Now().Add(60 * time.Second)
	for disabled() != len(leavers) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d leavers disabled after approval", disabled(), len(leavers))
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The directory equals the desired state.
	if err := waitConverged(context.Background(), s, 60*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	var aps []provisioning.Approval
	adminCall(t, s, http.MethodGet, "/approvals", &aps)
	if len(aps) != 0 {
		t.Errorf("approvals left after release: %+v", aps)
	}
}

// HR corrects the start date of an ACTIVE employee into the future: the
// enabled account keeps sign-in, groups and manager.
func TestEndToEndStartDateMovedForwardKeepsAccess(t *testing.T) {
	s := newTestStack(t, stackOptions{})
	convergeE2E(t, s)
	var who entratest.User
	for _, u := range s.entra.Users() {
		if u.AccountEnabled && u.ManagerID != "" && len(groupsOf(s, u.ID)) > 0 {
			who = u
			break
		}
	}
	if who.ID == "" {
		t.Fatal("no enabled account with a manager and groups")
	}
	groups := groupsOf(s, who.ID)
	s.personio.UpdatePerson(who.EmployeeID, func(p *personiotest.Person) {
		p.Employments[0].Status = "ACTIVE"
		p.Employments[0].EmploymentStartDate = date(20)
		p.Employments[0].Position.Title = "Moved Start"
	})
	// The title proves the reconcile ran.
	u := eventually(t, s, who.EmployeeID, "title updated", func(u entratest.User, _ bool) bool { return u.Properties["jobTitle"] == "Moved Start" })
	if !u.AccountEnabled || u.ManagerID != who.ManagerID || !slices.Equal(groupsOf(s, u.ID), groups) {
		t.Fatalf("access changed: enabled=%t manager %q→%q groups %v→%v", u.AccountEnabled, who.ManagerID, u.ManagerID, groups, groupsOf(s, u.ID))
	}
	p, err := s.app.engine.PlanFor(context.Background(), who.EmployeeID)
	if err != nil {
		t.Fatal(err)
	}
	if p.Destructive() != 0 || !slices.ContainsFunc(p.Notes, func(n string) bool { return strings.Contains(n, "access is kept") }) {
		t.Fatalf("plan = %+v", p)
	}
}

// adminCall calls the admin API with the stack's token and decodes the answer.
func adminCall(t *testing.T, s *stack, method, path string, out any) {
	t.Helper()
	req, err := http.NewRequest(method, s.adminURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatal(fmt.Errorf("%s %s: %w: %s", method, path, err, b))
		}
	}
}
