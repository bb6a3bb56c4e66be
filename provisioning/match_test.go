package provisioning

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/rules"
)

// replDir is an in-memory Directory for the matching and create paths: a
// user created (or seeded with visibleAt) is invisible to FindUsers until
// its replication instant, while its UPN is taken at once, as in Graph.
type replDir struct {
	Directory // the rest is not used by these tests

	mu      sync.Mutex
	users   []replUser
	creates []string // UPNs of creates that stored an account
	enabled []bool   // SetAccountEnabled calls
	delay   time.Duration
}

type replUser struct {
	User
	visibleAt time.Time
}

func (d *replDir) add(u User, visibleAt time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.users = append(d.users, replUser{u, visibleAt})
}

func (d *replDir) FindUsers(_ context.Context, key, value string) ([]User, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := []User{}
	for _, u := range d.users {
		if time.Now().Before(u.visibleAt) {
			continue
		}
		var v string
		switch key {
		case "employeeId":
			v = u.EmployeeID
		case "userPrincipalName":
			v = u.UserPrincipalName
		case "mail":
			v = u.Mail
		}
		if v != "" && strings.EqualFold(v, value) {
			out = append(out, u.User)
		}
	}
	return out, nil
}

func (d *replDir) CreateUser(_ context.Context, nu NewUser) (User, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, u := range d.users {
		if strings.EqualFold(u.UserPrincipalName, nu.UserPrincipalName) {
			return User{}, &DirectoryError{Kind: KindConflict, Op: "create user", Code: "Request_BadRequest", Target: "userPrincipalName"}
		}
	}
	u := User{ID: fmt.Sprintf("id-%d", len(d.users)+1), UserPrincipalName: nu.UserPrincipalName, EmployeeID: nu.Attributes["employeeId"],
		AccountEnabled: nu.AccountEnabled, UserType: UserTypeMember}
	d.users = append(d.users, replUser{u, time.Now().Add(d.delay)})
	d.creates = append(d.creates, nu.UserPrincipalName)
	return u, nil
}

// Writes to an existing account succeed without effect.
func (d *replDir) UpdateUser(context.Context, string, map[string]*string) error { return nil }
func (d *replDir) SetAccountEnabled(_ context.Context, _ string, on bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.enabled = append(d.enabled, on)
	return nil
}

func (d *replDir) withEmployeeID(id string) []User {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []User
	for _, u := range d.users {
		if u.EmployeeID == id {
			out = append(out, u.User)
		}
	}
	return out
}

type oneEmployee struct{ emp model.Employee }

func (s oneEmployee) GetEmployee(context.Context, string) (model.Employee, error) {
	return s.emp, nil
}
func (s oneEmployee) ListEmployees(context.Context) ([]model.Employee, error) {
	return []model.Employee{s.emp}, nil
}
func (s oneEmployee) ConfirmDeleted(context.Context, string) (bool, error) { return false, nil }

// activeRules wants an enabled account with two UPN candidates.
type activeRules struct{}

func (activeRules) Evaluate(e model.Employee, _ time.Time) (rules.Desired, error) {
	return rules.Desired{PersonID: e.PersonID, Phase: rules.PhaseActive, Reason: "active", Exists: true, AccountEnabled: true,
		Attributes:    map[string]rules.Value{"displayName": {Value: e.FirstName + " " + e.LastName, Policy: rules.Always}},
		UPNCandidates: []string{"jane.doe@example.com", "j.doe@example.com"}, MailNickname: "janedoe"}, nil
}

type auditLog struct {
	mu   sync.Mutex
	recs []AuditRecord
}

func (a *auditLog) AppendAudit(_ context.Context, _ string, b []byte) error {
	var r AuditRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.recs = append(a.recs, r)
	return nil
}

var janeDoe = model.Employee{PersonID: "4711", FirstName: "Jane", LastName: "Doe", Email: "jane@example.com", Status: "ACTIVE"}

func newMatchEngine(t *testing.T, dir *replDir, audit AuditSink) *Engine {
	t.Helper()
	e, err := New(Config{Source: oneEmployee{janeDoe}, Directory: dir, Rules: activeRules{}, Audit: audit, Logger: slog.New(slog.DiscardHandler),
		MatchKeys: []MatchKey{{"employeeId", "person_id"}, {"userPrincipalName", "email"}, {"mail", "email"}}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// Matching by userPrincipalName or mail adopts member accounts only: a
// guest, an account of another person and an account synced from
// on-premises are skipped, and the plan and the audit say why.
func TestMatchNeverAdoptsAccountsTheCompanyDoesNotOwn(t *testing.T) {
	tests := []struct {
		name string
		user User
		note string
	}{
		{"guest by mail", User{ID: "g1", UserPrincipalName: "jane_example.com#EXT#@tenant.onmicrosoft.com", Mail: "jane@example.com", UserType: UserTypeGuest},
			"skipped guest account jane_example.com#EXT#@tenant.onmicrosoft.com (g1) matched by mail: guests are never adopted"},
		{"another person's account by UPN", User{ID: "o1", UserPrincipalName: "jane@example.com", EmployeeID: "999", UserType: UserTypeMember},
			"carries employeeId 999"},
		{"synced account by mail", User{ID: "s1", UserPrincipalName: "jdoe@corp.example.com", Mail: "jane@example.com", UserType: UserTypeMember, OnPremisesSync: true},
			"synced from on-premises"},
		{"account of unknown type by UPN", User{ID: "u1", UserPrincipalName: "jane@example.com"},
			"only member accounts are adopted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := &replDir{}
			dir.add(tt.user, time.Time{})
			audit := &auditLog{}
			e := newMatchEngine(t, dir, audit)
			res, err := e.Reconcile(context.Background(), "4711", "test")
			if err != nil {
				t.Fatal(err)
			}
			p := res.Plan
			if p.UserID == tt.user.ID {
				t.Fatalf("account %s was adopted: plan %+v", tt.user.ID, p)
			}
			if len(p.Changes) == 0 || p.Changes[0].Kind != CreateUser {
				t.Fatalf("want a new account for the person, plan changes: %v", p.Changes)
			}
			if !containsText(p.Notes, tt.note) {
				t.Errorf("plan notes %q do not say %q", p.Notes, tt.note)
			}
			var audited bool
			for _, r := range audit.recs {
				if r.UserID == tt.user.ID && r.Result == ResultSkipped && strings.Contains(r.Note, tt.note) {
					audited = true
				}
			}
			if !audited {
				t.Errorf("no audit record for the skipped account; records: %+v", audit.recs)
			}
			if got := dir.withEmployeeID("4711"); len(got) != 1 || strings.EqualFold(got[0].UserPrincipalName, tt.user.UserPrincipalName) {
				t.Errorf("accounts with the person's employeeId: %+v", got)
			}
		})
	}
}

// A member account found by mail (no employeeId yet) is still adopted.
func TestMatchAdoptsMemberAccountByMail(t *testing.T) {
	dir := &replDir{}
	dir.add(User{ID: "m1", UserPrincipalName: "jane.doe@example.com", Mail: "jane@example.com", UserType: UserTypeMember, AccountEnabled: true}, time.Time{})
	e := newMatchEngine(t, dir, nil)
	p, err := e.PlanFor(context.Background(), "4711")
	if err != nil {
		t.Fatal(err)
	}
	if p.UserID != "m1" || len(p.Notes) != 0 {
		t.Fatalf("member account not adopted: user %q, notes %q", p.UserID, p.Notes)
	}
}

func containsText(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
