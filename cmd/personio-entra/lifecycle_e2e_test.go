package main

// End-to-end tests of returners, renames and licences through the real
// wiring: embedded NATS, the workers, the Personio simulator's webhooks and
// the Entra simulator behind azidentity and msgraph-sdk-go.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/deploy"
	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/entra/entratest"
	"github.com/personio-entra/personio-entra/provisioning/personio/personiotest"
)

// exampleRulesWith is deploy/rules.example.yaml with replacements.
func exampleRulesWith(t *testing.T, pairs ...string) []byte {
	t.Helper()
	src := string(deploy.RulesExample)
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(src, pairs[i]) {
			t.Fatalf("rules example lacks %q", pairs[i])
		}
		src = strings.Replace(src, pairs[i], pairs[i+1], 1)
	}
	return []byte(src)
}

// auditOf reads the person's audit records of one change kind.
func auditOf(t *testing.T, s *stack, personID string, kind provisioning.ChangeKind) []provisioning.AuditRecord {
	t.Helper()
	recs, err := s.app.q.ReadAudit(context.Background(), personID, 500)
	if err != nil {
		t.Fatal(err)
	}
	var out []provisioning.AuditRecord
	for _, r := range recs {
		var a provisioning.AuditRecord
		if json.Unmarshal(r, &a) == nil && a.Change.Kind == kind {
			out = append(out, a)
		}
	}
	return out
}

// allWithEmployeeID counts the accounts carrying the id, deleted ones
// included.
func allWithEmployeeID(s *stack, id string) (live, deleted int) {
	for _, u := range s.entra.Users() {
		if u.EmployeeID != id {
			continue
		}
		if u.Deleted {
			deleted++
		} else {
			live++
		}
	}
	return live, deleted
}

func active(startInDays int) func(*personiotest.Person) {
	return func(p *personiotest.Person) {
		p.Employments[0].Status = "ACTIVE"
		p.Employments[0].EmploymentStartDate = date(startInDays)
	}
}

func leftOn(day int) func(*personiotest.Person) {
	return func(p *personiotest.Person) {
		p.Employments[0].Termination = &personiotest.Termination{TerminationDate: date(day), LastWorkingDay: date(day), Type: "EMPLOYEE"}
	}
}

// rehired is what HR does for a returner: the termination goes, the
// person is ACTIVE again with a new hire date.
func rehired(p *personiotest.Person) {
	p.Employments[0].Termination = nil
	p.Employments[0].Status = "ACTIVE"
	p.Employments[0].EmploymentStartDate = date(0)
}

// A returner whose account the product deleted gets that account back
// from the recycle bin: restored, enabled, in its groups, never a second
// one; also when another account took the old name meanwhile.
func TestEndToEndReturnerRestored(t *testing.T) {
	s := newTestStack(t, stackOptions{rules: exampleRulesWith(t, "delete_after_days: 0 ", "delete_after_days: 2 ")})
	convergeE2E(t, s)

	leaveAndWaitDeleted := func(t *testing.T, id string) entratest.User {
		t.Helper()
		s.personio.UpsertPerson(joiner(id, "Ines", "Rueckkehr"+id, -200, active(-200)))
		u := eventually(t, s, id, "account", func(u entratest.User, found bool) bool { return found && u.AccountEnabled })
		s.personio.UpdatePerson(id, leftOn(-5)) // deletion was due 2 days after
		deadline := time.Now().Add(45 * time.Second)
		for {
			if got, _ := s.entra.User(u.ID); got.Deleted {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("person %s: the account was not deleted", id)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	t.Run("restored, not duplicated", func(t *testing.T) {
		old := leaveAndWaitDeleted(t, "4001")
		s.personio.UpdatePerson("4001", rehired)
		u := eventually(t, s, "4001", "account back", func(u entratest.User, found bool) bool {
			return found && u.AccountEnabled && len(groupsOf(s, u.ID)) > 0
		})
		if u.ID != old.ID || u.UserPrincipalName != old.UserPrincipalName {
			t.Errorf("returner got %s (%s), want the old account %s (%s)", u.ID, u.UserPrincipalName, old.ID, old.UserPrincipalName)
		}
		time.Sleep(time.Second) // let any extra work run
		if live, deleted := allWithEmployeeID(s, "4001"); live != 1 || deleted != 0 {
			t.Errorf("accounts with employeeId 4001: %d live, %d deleted; want exactly 1", live, deleted)
		}
		recs := auditOf(t, s, "4001", provisioning.RestoreUser)
		if len(recs) != 1 || recs[0].Result != provisioning.ResultApplied || recs[0].UserID != old.ID {
			t.Errorf("restore audit %+v", recs)
		}
		if creates := auditOf(t, s, "4001", provisioning.CreateUser); len(creates) != 1 {
			t.Errorf("%d creates, want the first one only", len(creates))
		}
	})

	t.Run("name taken meanwhile: restored under the next candidate", func(t *testing.T) {
		old := leaveAndWaitDeleted(t, "4002")
		taker := s.entra.AddUser(entratest.User{UserPrincipalName: old.UserPrincipalName, DisplayName: "Someone Else", AccountEnabled: true})
		s.personio.UpdatePerson("4002", rehired)
		u := eventually(t, s, "4002", "account back", func(u entratest.User, found bool) bool { return found && u.AccountEnabled })
		if u.ID != old.ID || u.UserPrincipalName != "i.rueckkehr4002@example.com" {
			t.Errorf("returner got %s as %s, want %s as i.rueckkehr4002@example.com", u.ID, u.UserPrincipalName, old.ID)
		}
		if other, _ := s.entra.User(taker); other.UserPrincipalName != old.UserPrincipalName || other.Deleted {
			t.Errorf("the account that took the name was changed: %+v", other)
		}
		if live, deleted := allWithEmployeeID(s, "4002"); live != 1 || deleted != 0 {
			t.Errorf("accounts with employeeId 4002: %d live, %d deleted", live, deleted)
		}
		recs := auditOf(t, s, "4002", provisioning.RestoreUser)
		if len(recs) != 1 || recs[0].Change.Previous["userPrincipalName"] != old.UserPrincipalName ||
			*recs[0].Change.Properties["userPrincipalName"] != "i.rueckkehr4002@example.com" || !strings.Contains(recs[0].Note, "held by another account") {
			t.Errorf("restore audit %+v", recs)
		}
		// The taken name is seen before the restore: one request, to the
		// beta action with the new name.
		if n := s.entra.Requests().ByRoute["POST /directory/deletedItems/{id}/restore"]; n != 2 {
			t.Errorf("restore requests %d, want 2 (one per returner)", n)
		}
	})
}

// A returner's account comes back under its old name, which is no longer
// among their candidates (Ines Alt is Ines Neu now), the reconcile fails
// right after the restore (the next request answers 500), and the queue
// retries before Graph has replicated the restored account, so that
// neither the lookup by employeeId nor the deleted items find it: the
// retry reads it by its object id (the record of the restore in the state
// bucket) and never creates a second account.
func TestEndToEndReturnerRestoredUnderOldNameNotDuplicated(t *testing.T) {
	const replication = 5 * time.Second
	s := newTestStack(t, stackOptions{replication: replication, rules: exampleRulesWith(t, "delete_after_days: 0 ", "delete_after_days: 2 ")})
	convergeE2E(t, s)
	s.personio.UpsertPerson(joiner("4003", "Ines", "Alt", -200, active(-200)))
	first := eventually(t, s, "4003", "account", func(u entratest.User, found bool) bool { return found && u.AccountEnabled })
	s.personio.UpdatePerson("4003", leftOn(-5)) // deletion was due 2 days after
	for deadline := time.Now().Add(45 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if got, _ := s.entra.User(first.ID); got.Deleted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the leaver's account was not deleted")
		}
	}

	// The first request after the restore reads the account's groups.
	const memberOf = "GET /users/{id}/memberOf/graph.group"
	before := s.entra.Requests().ByRoute[memberOf]
	s.entra.SetFaults(entratest.Faults{FailRequests: map[string]int{memberOf: 1}})
	s.personio.UpdatePerson("4003", func(p *personiotest.Person) {
		rehired(p)
		p.LastName = "Neu"
	})
	var u entratest.User
	for deadline := time.Now().Add(45 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		i := slices.IndexFunc(usersWithEmployeeID(s, "4003"), func(u entratest.User) bool { return u.AccountEnabled && u.Properties["surname"] == "Neu" })
		if i >= 0 {
			u = usersWithEmployeeID(s, "4003")[i]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no enabled account with the new surname within 45s: %+v", usersWithEmployeeID(s, "4003"))
		}
	}
	time.Sleep(replication) // a second account would be replicated by now
	if live, deleted := allWithEmployeeID(s, "4003"); live != 1 || deleted != 0 {
		t.Fatalf("accounts with employeeId 4003: %d live, %d deleted; want exactly 1: %+v", live, deleted, usersWithEmployeeID(s, "4003"))
	}
	if u.ID != first.ID || u.UserPrincipalName != "ines.alt@example.com" {
		t.Errorf("returner got %s (%s), want the old account %s as ines.alt@example.com", u.ID, u.UserPrincipalName, first.ID)
	}
	if creates := auditOf(t, s, "4003", provisioning.CreateUser); len(creates) != 1 {
		t.Errorf("%d creates, want the first one only", len(creates))
	}
	if recs := auditOf(t, s, "4003", provisioning.RestoreUser); len(recs) != 1 || recs[0].Result != provisioning.ResultApplied {
		t.Errorf("restore audit %+v", recs)
	}
	if n := s.entra.Requests().ByRoute[memberOf] - before; n < 2 {
		t.Errorf("the injected failure was not reached (%d memberOf reads since the rehire)", n)
	}
}

// Under rename, a surname change moves the account to the first free
// candidate of the new name and the audit shows old → new; under keep the
// sign-in name stays.
func TestEndToEndRename(t *testing.T) {
	for _, policy := range []string{"rename", "keep"} {
		t.Run(policy, func(t *testing.T) {
			s := newTestStack(t, stackOptions{rules: exampleRulesWith(t, "  transliteration: ascii\n", "  transliteration: ascii\n  on_name_change: "+policy+"\n"),
				seed: func(es *entratest.Server) {
					// Someone already holds the first candidate of the new name.
					es.AddUser(entratest.User{UserPrincipalName: "mara.neumann@example.com", DisplayName: "Mara Neumann (other)", AccountEnabled: true})
				}})
			convergeE2E(t, s)
			s.personio.UpsertPerson(joiner("4101", "Mara", "Alt", -30, active(-30)))
			before := eventually(t, s, "4101", "account", func(u entratest.User, found bool) bool { return found && u.AccountEnabled })
			if before.UserPrincipalName != "mara.alt@example.com" {
				t.Fatalf("first UPN %s", before.UserPrincipalName)
			}
			s.personio.UpdatePerson("4101", func(p *personiotest.Person) { p.LastName = "Neumann" })
			u := eventually(t, s, "4101", "new surname", func(u entratest.User, _ bool) bool { return u.Properties["surname"] == "Neumann" })
			recs := auditOf(t, s, "4101", provisioning.RenameUser)
			if policy == "keep" {
				if u.UserPrincipalName != before.UserPrincipalName || len(recs) != 0 {
					t.Errorf("keep: UPN %s, renames %+v", u.UserPrincipalName, recs)
				}
				return
			}
			if u.ID != before.ID || u.UserPrincipalName != "m.neumann@example.com" || u.MailNickname != "mneumann" {
				t.Errorf("renamed account %s as %s (%s), want m.neumann@example.com", u.ID, u.UserPrincipalName, u.MailNickname)
			}
			if len(recs) != 1 || recs[0].Result != provisioning.ResultApplied || recs[0].Change.Previous["userPrincipalName"] != "mara.alt@example.com" ||
				*recs[0].Change.Properties["userPrincipalName"] != "m.neumann@example.com" {
				t.Errorf("rename audit %+v", recs)
			}
		})
	}
}

const licenseRules = `
licenses:
  remove_after_days: 2
  skus:
    - sku: SPE_E3
      when: employee.department.name == "Finance"
      disabled_plans: [YAMMER_ENTERPRISE]
`

// A licence follows its condition and never touches an unmanaged SKU the
// user also holds; a leaver keeps it within remove_after_days and loses it
// after, only through the safeguard.
func TestEndToEndLicenses(t *testing.T) {
	var e3, visio string
	// The safeguard lets two people lose access within the hour: the mover
	// of the first sub-test and the first leaver; the second leaver is held.
	s := newTestStack(t, stackOptions{guardMax: 2, rules: append(exampleRulesWith(t), []byte(licenseRules)...),
		seed: func(es *entratest.Server) {
			e3 = es.AddSKU(entratest.SKU{PartNumber: "SPE_E3", Enabled: 20, Plans: []entratest.ServicePlan{{Name: "YAMMER_ENTERPRISE"}, {Name: "EXCHANGE_S_ENTERPRISE"}}})
			visio = es.AddSKU(entratest.SKU{PartNumber: "VISIOCLIENT", Enabled: 5})
		}})
	convergeE2E(t, s)
	holds := func(uid, sku string) bool { return slices.Contains(s.entra.UserLicenses(uid), sku) }

	t.Run("follows the condition, leaves other licences alone", func(t *testing.T) {
		s.personio.UpsertPerson(joiner("4201", "Lea", "Lizenz", -10, active(-10)))
		u := eventually(t, s, "4201", "E3 assigned", func(u entratest.User, found bool) bool { return found && holds(u.ID, e3) })
		if u.Properties["usageLocation"] != "DE" {
			t.Errorf("usageLocation %v", u.Properties["usageLocation"])
		}
		// The free seats of each managed licence are exposed for the
		// dashboard and the seats alert.
		resp, err := http.Get("http://" + s.cfg.MetricsAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !regexp.MustCompile(`personio_entra_license_seats_available\{sku="SPE_E3"\} [0-9]+`).Match(body) {
			t.Errorf("no free-seats gauge for SPE_E3 in /metrics")
		}
		s.entra.SetUserLicenses(u.ID, e3, visio) // Visio by hand
		s.personio.UpdatePerson("4201", func(p *personiotest.Person) {
			p.Employments[0].OrgUnits = []personiotest.OrgUnitRef{{Type: "department", ID: "d2"}} // Sales
		})
		eventually(t, s, "4201", "E3 removed", func(u entratest.User, _ bool) bool { return !holds(u.ID, e3) })
		if !holds(u.ID, visio) {
			t.Error("the unmanaged Visio licence was removed")
		}
		s.personio.UpdatePerson("4201", func(p *personiotest.Person) {
			p.Employments[0].OrgUnits = []personiotest.OrgUnitRef{{Type: "department", ID: "d1"}} // Finance again
		})
		eventually(t, s, "4201", "E3 back", func(u entratest.User, _ bool) bool { return holds(u.ID, e3) })
		if !holds(u.ID, visio) {
			t.Error("the unmanaged Visio licence was removed")
		}
	})

	t.Run("leavers: kept within remove_after_days, removed after, through the safeguard", func(t *testing.T) {
		s.personio.UpsertPerson(joiner("4202", "Kim", "Behalten", -300, active(-300)))
		s.personio.UpsertPerson(joiner("4203", "Pat", "Entzug", -300, active(-300)))
		kim := eventually(t, s, "4202", "E3", func(u entratest.User, found bool) bool { return found && holds(u.ID, e3) })
		pat := eventually(t, s, "4203", "E3", func(u entratest.User, found bool) bool { return found && holds(u.ID, e3) })

		// Kim left yesterday: disabled (the one person the budget allows),
		// licence kept for two days.
		s.personio.UpdatePerson("4202", leftOn(-1))
		eventually(t, s, "4202", "disabled", func(u entratest.User, _ bool) bool { return !u.AccountEnabled })
		if !holds(kim.ID, e3) {
			t.Error("the leaver lost the licence within remove_after_days")
		}
		// Pat left three days ago: the licence is due to go, but the
		// budget is spent, so everything Pat would lose is held.
		s.personio.UpdatePerson("4203", leftOn(-3))
		var aps []provisioning.Approval
		deadline := time.Now().Add(45 * time.Second)
		for len(aps) == 0 {
			adminCall(t, s, http.MethodGet, "/approvals", &aps)
			if time.Now().After(deadline) {
				t.Fatal("no approval was opened for the licence removal")
			}
			time.Sleep(100 * time.Millisecond)
		}
		if !slices.Contains(aps[0].People, "4203") || !strings.Contains(strings.Join(aps[0].Summary, "\n"), "remove licence SPE_E3") {
			t.Fatalf("approval %+v", aps[0])
		}
		if u, _ := s.entra.User(pat.ID); !holds(pat.ID, e3) || !u.AccountEnabled {
			t.Fatalf("held leaver changed: enabled=%t licences %v", u.AccountEnabled, s.entra.UserLicenses(pat.ID))
		}
		adminCall(t, s, http.MethodPost, "/approvals/"+aps[0].ID+"/approve", nil)
		eventually(t, s, "4203", "licence removed after approval", func(u entratest.User, _ bool) bool { return !u.AccountEnabled && !holds(u.ID, e3) })
		if !holds(kim.ID, e3) {
			t.Error("the approval took the licence of the leaver still within remove_after_days")
		}
		recs := auditOf(t, s, "4203", provisioning.RemoveLicense)
		var results []string
		for _, r := range recs {
			results = append(results, r.Result)
		}
		if !slices.Contains(results, provisioning.ResultHeld) || !slices.Contains(results, provisioning.ResultApplied) {
			t.Errorf("licence removal audit results %v, want held then applied", results)
		}
	})
}

// check reports each missing permission of each enabled feature and a
// licence the tenant does not have, before anything runs.
func TestCheckPermissionsPerFeature(t *testing.T) {
	s := newTestStack(t, stackOptions{syncInterval: -1, seed: func(es *entratest.Server) {
		es.AddSKU(entratest.SKU{PartNumber: "SPE_E3", Enabled: 20, Plans: []entratest.ServicePlan{{Name: "YAMMER_ENTERPRISE"}}})
	}})
	cfg := s.cfg
	cfg.RulesFile = filepath.Join(t.TempDir(), "rules.yaml")
	rules := exampleRulesWith(t, "  transliteration: ascii\n", "  transliteration: ascii\n  on_name_change: rename\n")
	rules = append(rules, []byte(licenseRules)...)
	if err := os.WriteFile(cfg.RulesFile, rules, 0o600); err != nil {
		t.Fatal(err)
	}
	opts := appOptions{entraHTTP: s.entra.Client()}
	run := func() (string, error) {
		var out bytes.Buffer
		err := check(context.Background(), cfg, nil, false, opts, &out)
		return out.String(), err
	}

	out, err := run()
	if err != nil || !strings.Contains(out, "ok   the app holds the Graph permissions of every enabled feature (accounts, returners, managed groups, leavers, renames (upn.on_name_change: rename), licences)") ||
		!strings.Contains(out, "ok   every managed licence is a subscription of the tenant (SPE_E3 20 free)") {
		t.Fatalf("all permissions granted: %v\n%s", err, out)
	}

	s.entra.SetPermissions([]string{"User.Read.All", "GroupMember.ReadWrite.All", "Group.Read.All", "User.RevokeSessions.All"})
	out, err = run()
	if err == nil {
		t.Fatalf("check passed without permissions:\n%s", out)
	}
	for _, want := range []string{
		"FAIL permission: accounts needs the Microsoft Graph application permission User.ReadWrite.All",
		"FAIL permission: returners needs the Microsoft Graph application permission User.DeleteRestore.All",
		"FAIL permission: renames (upn.on_name_change: rename) needs the Microsoft Graph application permission User.ReadWrite.All",
		"FAIL permission: licences needs the Microsoft Graph application permission LicenseAssignment.Read.All",
		"FAIL permission: licences needs the Microsoft Graph application permission LicenseAssignment.ReadWrite.All",
		"FAIL licences: read the tenant's subscriptions: list subscribed SKUs: forbidden (Authorization_RequestDenied)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "permission: managed groups") || strings.Contains(out, "permission: leavers") {
		t.Errorf("a granted feature is reported:\n%s", out)
	}

	s.entra.SetPermissions(nil)
	if err := os.WriteFile(cfg.RulesFile, append(bytes.TrimSuffix(rules, []byte(licenseRules)), strings.Replace(licenseRules, "sku: SPE_E3", "sku: SPE_E5", 1)...), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = run()
	if err == nil || !strings.Contains(out, `FAIL `+cfg.RulesFile) || !strings.Contains(out, `licence "SPE_E5": the tenant has no subscription with this SKU part number`) {
		t.Errorf("unknown SKU: %v\n%s", err, out)
	}
}
