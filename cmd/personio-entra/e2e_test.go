package main

// End-to-end tests of the product as `run` wires it: embedded NATS, the
// webhook receiver on a real listener, the workers, the Personio simulator
// delivering real webhooks and the Entra simulator behind azidentity and
// msgraph-sdk-go. Each scenario changes Personio and waits for Entra.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/deploy"
	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/entra/entratest"
	"github.com/personio-entra/personio-entra/provisioning/personio/personiotest"
	"github.com/personio-entra/personio-entra/rules"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func newTestStack(t *testing.T, o stackOptions) *stack {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	o.dataDir = t.TempDir()
	if o.logger == nil {
		o.logger = testLogger(t)
	}
	if o.syncInterval == 0 {
		o.syncInterval = time.Hour // one full sync at start-up
	}
	if o.managerRetry == 0 {
		o.managerRetry = time.Second
	}
	if o.guardMax == 0 {
		o.guardMax = 10
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := startStack(ctx, o)
	if err != nil {
		cancel()
		t.Fatalf("start stack: %v", err)
	}
	t.Cleanup(func() {
		s.Close()
		cancel()
	})
	return s
}

func convergeE2E(t *testing.T, s *stack) {
	t.Helper()
	if err := waitConverged(context.Background(), s, 90*time.Second, nil); err != nil {
		t.Fatal(err)
	}
}

// eventually waits until the person's account satisfies ok.
func eventually(t *testing.T, s *stack, personID, what string, ok func(u entratest.User, found bool) bool) entratest.User {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		u, found := s.userByEmployeeID(personID)
		if ok(u, found) {
			return u
		}
		if time.Now().After(deadline) {
			t.Fatalf("person %s: %s did not happen within 45s; account: %+v (found=%t)", personID, what, u, found)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func usersWithEmployeeID(s *stack, id string) []entratest.User {
	var out []entratest.User
	for _, u := range s.entra.Users() {
		if u.EmployeeID == id && !u.Deleted {
			out = append(out, u)
		}
	}
	return out
}

// date is today plus days where the example rules read dates
// (Europe/Berlin): between 23:00 and 24:00 UTC it is already tomorrow there.
func date(days int) string {
	return time.Now().In(exampleRulesZone).AddDate(0, 0, days).Format(time.DateOnly)
}

var exampleRulesZone = func() *time.Location {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		panic(err)
	}
	return loc
}()

// joiner builds a Personio person in the Finance department of the sample company.
func joiner(id, first, last string, startInDays int, mut func(*personiotest.Person)) personiotest.Person {
	p := personiotest.Person{
		ID: id, FirstName: first, LastName: last, Email: strings.ToLower(id) + "@private.example.org", Gender: "FEMALE",
		Employments: []personiotest.Employment{{
			ID: "e" + id, Status: "ONBOARDING", Type: "INTERNAL", Position: personiotest.Position{Title: "Analyst"},
			Supervisor: &personiotest.IDRef{ID: "1001"}, Office: &personiotest.IDRef{ID: "o1"},
			OrgUnits:    []personiotest.OrgUnitRef{{Type: "department", ID: "d1"}},
			LegalEntity: &personiotest.IDRef{ID: "le1"}, EmploymentStartDate: date(startInDays),
		}},
	}
	if mut != nil {
		mut(&p)
	}
	return p
}

func TestEndToEndLifecycle(t *testing.T) {
	var (
		collisionID   string
		projectX      string
		leaverAccount string // the leaver's account, put in a managed group once it exists
	)
	s := newTestStack(t, stackOptions{seed: func(es *entratest.Server) {
		// Someone else already holds the first UPN candidate of person 3002.
		collisionID = es.AddUser(entratest.User{UserPrincipalName: "jan.kowalski@example.com", DisplayName: "Jan Kowalski (other)", AccountEnabled: true})
		// A hand-made account for person 1001 (UPN = Personio email, no employeeId).
		es.AddUser(entratest.User{UserPrincipalName: "katharina.vogel@example.com", DisplayName: "K. Vogel", AccountEnabled: true})
		// Person 1031 left two days ago but still has an enabled account in
		// a managed group: the start-up sync must take that access away.
		gone := es.AddUser(entratest.User{UserPrincipalName: "jonas.brennan@example.com", EmployeeID: "1031", DisplayName: "Jonas Brennan", AccountEnabled: true})
		leaverAccount = gone
		es.AddGroup(entratest.Group{DisplayName: "Sales", SecurityEnabled: true, GroupTypes: []string{}, Members: []string{gone}})
		// An unmanaged group the mover belongs to; it must be left alone.
		projectX = es.AddGroup(entratest.Group{DisplayName: "Project X", SecurityEnabled: true, GroupTypes: []string{}})
	}})
	convergeE2E(t, s)

	t.Run("existing account matched by UPN is adopted, not duplicated", func(t *testing.T) {
		us := usersWithEmployeeID(s, "1001")
		if len(us) != 1 || us[0].UserPrincipalName != "katharina.vogel@example.com" {
			t.Fatalf("person 1001 accounts: %+v", us)
		}
		if us[0].DisplayName != "Katharina Vogel" {
			t.Errorf("displayName not brought in step: %q", us[0].DisplayName)
		}
		n := 0
		for _, u := range s.entra.Users() {
			if strings.HasPrefix(u.UserPrincipalName, "katharina.vogel") || strings.HasPrefix(u.UserPrincipalName, "k.vogel") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d accounts for Katharina Vogel, want 1", n)
		}
	})

	t.Run("future leaver stays enabled with a schedule at the end of the last working day", func(t *testing.T) {
		u, ok := s.userByEmployeeID("1019")
		if !ok || !u.AccountEnabled {
			t.Fatalf("1019 should be enabled until its last working day: %+v", u)
		}
		at, found, err := s.app.q.ScheduledAt(context.Background(), "1019")
		if err != nil || !found {
			t.Fatalf("no schedule for 1019: found=%t err=%v", found, err)
		}
		loc, _ := time.LoadLocation("Europe/Berlin")
		lwd := s.personio.Company().Persons
		var want time.Time
		for _, p := range lwd {
			if p.ID == "1019" {
				d, _ := time.ParseInLocation(time.DateOnly, p.Employments[0].Termination.LastWorkingDay, loc)
				want = d.AddDate(0, 0, 1)
			}
		}
		if !at.Equal(want) {
			t.Errorf("schedule at %s, want end of last working day %s", at, want)
		}
	})

	t.Run("past leaver from the sample is disabled and out of managed groups", func(t *testing.T) {
		u, ok := s.userByEmployeeID("1031")
		if !ok || u.ID != leaverAccount {
			t.Fatalf("1031's existing account is gone or replaced: %+v (found=%t)", u, ok)
		}
		if u.AccountEnabled {
			t.Fatalf("1031 left two days ago but is enabled: %+v", u)
		}
		if u.SignInSessionsValidFrom.IsZero() {
			t.Error("1031's sessions were not revoked")
		}
		if g := groupsOf(s, u.ID); len(g) > 0 {
			t.Errorf("1031 still in %v", g)
		}
	})

	t.Run("joiner before the start date: disabled account, groups, manager, diacritics UPN", func(t *testing.T) {
		s.personio.UpsertPerson(joiner("3001", "Zoë", "Ångström-Łukasiewicz", 5, nil))
		u := eventually(t, s, "3001", "pre-hire account with groups and manager", func(u entratest.User, found bool) bool {
			return found && u.ManagerID != "" && len(groupsOf(s, u.ID)) == 2
		})
		if u.UserPrincipalName != "zoe.angstrom-lukasiewicz@example.com" {
			t.Errorf("UPN = %q", u.UserPrincipalName)
		}
		if !rules.ValidUPN(u.UserPrincipalName) {
			t.Errorf("UPN %q is not valid for Entra", u.UserPrincipalName)
		}
		if u.AccountEnabled {
			t.Error("pre-hire account must stay disabled until the start date")
		}
		if got := groupsOf(s, u.ID); !slices.Equal(got, []string{"Finance", "Women"}) {
			t.Errorf("groups = %v", got)
		}
		mgr, _ := s.userByEmployeeID("1001")
		if u.ManagerID != mgr.ID {
			t.Errorf("manager = %s, want %s (person 1001)", u.ManagerID, mgr.ID)
		}
		at, found, err := s.app.q.ScheduledAt(context.Background(), "3001")
		if err != nil || !found || at.Before(time.Now().AddDate(0, 0, 4)) {
			t.Errorf("enable-on-start-date schedule: at=%s found=%t err=%v", at, found, err)
		}
	})

	t.Run("UPN collision takes the next candidate", func(t *testing.T) {
		s.personio.UpsertPerson(joiner("3002", "Jan", "Kowalski", 3, func(p *personiotest.Person) { p.Gender = "MALE" }))
		u := eventually(t, s, "3002", "account", func(u entratest.User, found bool) bool { return found })
		if u.UserPrincipalName != "j.kowalski@example.com" {
			t.Errorf("UPN = %q, want the second candidate j.kowalski@example.com", u.UserPrincipalName)
		}
		other, _ := s.entra.User(collisionID)
		if other.EmployeeID != "" || other.DisplayName != "Jan Kowalski (other)" {
			t.Errorf("the other account was touched: %+v", other)
		}
	})

	t.Run("mover between departments; unmanaged membership left alone", func(t *testing.T) {
		u, _ := s.userByEmployeeID("1006")
		if err := addMember(s, projectX, u.ID); err != nil {
			t.Fatal(err)
		}
		s.personio.UpdatePerson("1006", func(p *personiotest.Person) {
			p.Employments[0].OrgUnits = []personiotest.OrgUnitRef{{Type: "department", ID: "d2"}}
			p.Employments[0].Position.Title = "Account Executive"
		})
		u = eventually(t, s, "1006", "moved to Sales", func(u entratest.User, found bool) bool {
			g := groupsOf(s, u.ID)
			return u.Properties["department"] == "Sales" && slices.Contains(g, "Sales") && !slices.Contains(g, "Marketing")
		})
		if u.Properties["jobTitle"] != "Account Executive" {
			t.Errorf("jobTitle = %v", u.Properties["jobTitle"])
		}
		if !slices.Contains(s.entra.Members(projectX), u.ID) {
			t.Error("membership of the unmanaged group Project X was removed")
		}
	})

	t.Run("name change updates the names, keeps the UPN", func(t *testing.T) {
		before, _ := s.userByEmployeeID("1002")
		s.personio.UpdatePerson("1002", func(p *personiotest.Person) { p.LastName = "Nowak-Dubois" })
		u := eventually(t, s, "1002", "surname updated", func(u entratest.User, _ bool) bool { return u.Properties["surname"] == "Nowak-Dubois" })
		if u.DisplayName != "Jean-Luc Nowak-Dubois" {
			t.Errorf("displayName = %q", u.DisplayName)
		}
		if u.UserPrincipalName != before.UserPrincipalName {
			t.Errorf("UPN changed from %q to %q", before.UserPrincipalName, u.UserPrincipalName)
		}
	})

	t.Run("leaver in the past: disabled, sessions revoked, managed groups left", func(t *testing.T) {
		s.personio.UpdatePerson("1007", func(p *personiotest.Person) {
			p.Employments[0].Termination = &personiotest.Termination{TerminationDate: date(-1), LastWorkingDay: date(-1), Type: "EMPLOYEE"}
			p.Employments[0].Status = "INACTIVE"
		})
		u := eventually(t, s, "1007", "disabled", func(u entratest.User, _ bool) bool { return !u.AccountEnabled && len(groupsOf(s, u.ID)) == 0 })
		if u.SignInSessionsValidFrom.IsZero() {
			t.Error("sessions were not revoked")
		}
	})

	t.Run("rehire reactivates the same account", func(t *testing.T) {
		before, _ := s.userByEmployeeID("1007")
		s.personio.UpdatePerson("1007", func(p *personiotest.Person) {
			p.Employments[0].Termination = nil
			p.Employments[0].Status = "ACTIVE"
		})
		u := eventually(t, s, "1007", "re-enabled with groups", func(u entratest.User, _ bool) bool { return u.AccountEnabled && len(groupsOf(s, u.ID)) > 0 })
		if u.ID != before.ID || len(usersWithEmployeeID(s, "1007")) != 1 {
			t.Errorf("rehire made a new account: %s → %s", before.ID, u.ID)
		}
	})

	t.Run("person deleted in Personio: disabled", func(t *testing.T) {
		s.personio.DeletePerson("1008")
		eventually(t, s, "1008", "disabled", func(u entratest.User, found bool) bool { return found && !u.AccountEnabled })
	})

	t.Run("manager's account created after the report's", func(t *testing.T) {
		// The report's supervisor (3004) does not exist yet in Personio.
		s.personio.UpsertPerson(joiner("3003", "Ola", "Nordmann", 2, func(p *personiotest.Person) {
			p.Employments[0].Supervisor = &personiotest.IDRef{ID: "3004"}
		}))
		eventually(t, s, "3003", "account without manager", func(u entratest.User, found bool) bool { return found })
		s.personio.UpsertPerson(joiner("3004", "Kari", "Nordmann", 2, nil))
		mgr := eventually(t, s, "3004", "manager account", func(u entratest.User, found bool) bool { return found })
		eventually(t, s, "3003", "manager set later", func(u entratest.User, _ bool) bool { return u.ManagerID == mgr.ID })
	})

	t.Run("the same webhook delivered three times makes one account and one create", func(t *testing.T) {
		// A person the simulator knows but whose webhook we deliver ourselves.
		p := joiner("3005", "Åsa", "Lindqvist", 4, nil)
		company := s.personio.Company()
		company.Persons = append(company.Persons, p)
		s.personio.SetCompany(company) // no webhook fired
		body := fmt.Sprintf(`{"company_id":%q,"event_name":"person.created","occurred_at":"2026-11-27T08:00:00Z","payload":{"person":{"id":"3005"}}}`, company.CompanyID)
		for i := 0; i < 3; i++ {
			req, _ := http.NewRequest(http.MethodPost, s.webhookURL, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", s.webhookToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode/100 != 2 {
				t.Fatalf("delivery %d: status %d", i+1, resp.StatusCode)
			}
		}
		eventually(t, s, "3005", "account", func(u entratest.User, found bool) bool { return found })
		time.Sleep(time.Second) // let any extra work run
		if n := len(usersWithEmployeeID(s, "3005")); n != 1 {
			t.Errorf("%d accounts, want 1", n)
		}
		recs, err := s.app.q.ReadAudit(context.Background(), "3005", 100)
		if err != nil {
			t.Fatal(err)
		}
		creates := 0
		for _, r := range recs {
			var a provisioning.AuditRecord
			if json.Unmarshal(r, &a) == nil && a.Change.Kind == provisioning.CreateUser && a.Result == provisioning.ResultApplied {
				creates++
			}
		}
		if creates != 1 {
			t.Errorf("%d applied creates in the audit log, want 1", creates)
		}
	})

	t.Run("idempotent: a second reconcile of everyone writes nothing", func(t *testing.T) {
		convergeE2E(t, s)
		before := s.entra.Requests().Writes
		for _, id := range []string{"1001", "1006", "3001", "3002", "1007"} {
			res, err := s.app.engine.Reconcile(context.Background(), id, "test")
			if err != nil {
				t.Fatalf("reconcile %s: %v", id, err)
			}
			if len(res.Plan.Changes) != 0 {
				t.Errorf("reconcile %s planned %v", id, res.Plan.Changes)
			}
		}
		if after := s.entra.Requests().Writes; after != before {
			t.Errorf("%d writes on a converged directory", after-before)
		}
	})
}

// addMember adds a user to a group through Graph, as an admin would by hand.
func addMember(s *stack, groupID, userID string) error {
	return s.app.dir.AddGroupMembers(context.Background(), groupID, []string{userID})
}

func TestEndToEndMailEnabledGroupRefused(t *testing.T) {
	example := string(deploy.RulesExample)
	withList := strings.Replace(example, "groups:\n", "groups:\n  - group: All Staff (mail)\n    when: 'true'\n", 1)
	s := newTestStack(t, stackOptions{rules: []byte(withList), seed: func(es *entratest.Server) {
		es.AddGroup(entratest.Group{DisplayName: "All Staff (mail)", MailEnabled: true, SecurityEnabled: true, GroupTypes: []string{}, Mail: "all@example.com"})
	}})
	_, err := s.app.engine.ResolveGroups(context.Background())
	if err == nil || !strings.Contains(err.Error(), "All Staff (mail)") || !strings.Contains(strings.ToLower(err.Error()), "mail-enabled") {
		t.Fatalf("ResolveGroups error = %v, want the mail-enabled group refused with its reason", err)
	}
	// The other groups are still managed.
	convergeE2E(t, s)
	u, _ := s.userByEmployeeID("1001")
	if !slices.Contains(groupsOf(s, u.ID), "Finance") {
		t.Errorf("Finance membership missing: %v", groupsOf(s, u.ID))
	}
}

func TestEndToEndGuardHoldsMassDisable(t *testing.T) {
	s := newTestStack(t, stackOptions{guardMax: 5})
	convergeE2E(t, s)
	enabledBefore := countEnabled(s)
	// Personio suddenly returns nobody (a broken credential scope, an outage
	// answering empty lists): every account would look like a leaver.
	empty := s.personio.Company()
	empty.Persons = nil
	s.personio.SetCompany(empty)

	rep, err := s.app.syncer.Run(context.Background(), provisioning.SyncOptions{Complete: true})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Guarded || rep.ApprovalID == "" {
		t.Fatalf("guard did not trip: %+v", rep)
	}
	time.Sleep(2 * time.Second) // give the workers time to (wrongly) act
	if got := countEnabled(s); got != enabledBefore {
		t.Fatalf("%d accounts enabled after the guarded sync, want %d (nothing disabled)", got, enabledBefore)
	}
	aps, err := s.app.syncer.Approvals(context.Background())
	if err != nil || len(aps) != 1 || aps[0].ID != rep.ApprovalID || len(aps[0].People) != rep.Accounts {
		t.Fatalf("approvals = %+v, %v", aps, err)
	}
	// A second sync with the same situation reuses the pending approval.
	rep2, err := s.app.syncer.Run(context.Background(), provisioning.SyncOptions{Complete: true})
	if err != nil || rep2.ApprovalID != rep.ApprovalID {
		t.Fatalf("second sync: %+v %v", rep2, err)
	}
	// Approving releases the change set.
	if _, err := s.app.syncer.Approve(context.Background(), rep.ApprovalID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for countEnabled(s) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d accounts still enabled after approval", countEnabled(s))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func countEnabled(s *stack) int {
	n := 0
	for _, u := range s.entra.Users() {
		if u.EmployeeID != "" && u.AccountEnabled && !u.Deleted {
			n++
		}
	}
	return n
}

func TestEndToEndDryRunWritesNothing(t *testing.T) {
	s := newTestStack(t, stackOptions{dryRun: true})
	// The start-up sync queues everyone; the workers plan and audit only.
	deadline := time.Now().Add(60 * time.Second)
	for {
		recs, err := s.app.q.ReadAudit(context.Background(), "1001", 10)
		if err == nil && len(recs) > 0 {
			var a provisioning.AuditRecord
			if err := json.Unmarshal(recs[0], &a); err != nil {
				t.Fatal(err)
			}
			if a.Result != provisioning.ResultPlanned || !a.DryRun {
				t.Errorf("dry-run audit record = %+v", a)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no dry-run audit record for 1001")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if w := s.entra.Requests().Writes; w != 0 {
		t.Errorf("%d Graph writes in dry run", w)
	}
	for _, u := range s.entra.Users() {
		if u.EmployeeID != "" {
			t.Errorf("dry run created %s", u.UserPrincipalName)
		}
	}
}

func TestEndToEndLeaveDateAndEmailWriteBack(t *testing.T) {
	s := newTestStack(t, stackOptions{leaveDate: true, writeBack: true})
	convergeE2E(t, s)
	// The future leaver carries the end of the last working day in Entra.
	u, _ := s.userByEmployeeID("1019")
	loc, _ := time.LoadLocation("Europe/Berlin")
	var lwd string
	for _, p := range s.personio.Company().Persons {
		if p.ID == "1019" {
			lwd = p.Employments[0].Termination.LastWorkingDay
		}
	}
	d, _ := time.ParseInLocation(time.DateOnly, lwd, loc)
	want := d.AddDate(0, 0, 1).UTC().Format(time.RFC3339)
	if got := fmt.Sprint(u.Properties["employeeLeaveDateTime"]); got != want {
		t.Errorf("employeeLeaveDateTime = %s, want %s", got, want)
	}
	// A joiner's new UPN is written back to Personio as the email; the
	// person.updated echo reconciles to no change.
	s.personio.UpsertPerson(joiner("3101", "Maja", "Berg", 3, nil))
	acct := eventually(t, s, "3101", "account", func(u entratest.User, found bool) bool { return found })
	deadline := time.Now().Add(30 * time.Second)
	for {
		p, _ := s.personio.Person("3101")
		if p.Email == acct.UserPrincipalName {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Personio email = %q, want %q", p.Email, acct.UserPrincipalName)
		}
		time.Sleep(100 * time.Millisecond)
	}
	convergeE2E(t, s)
	if n := len(usersWithEmployeeID(s, "3101")); n != 1 {
		t.Errorf("%d accounts after the echo, want 1", n)
	}
}
