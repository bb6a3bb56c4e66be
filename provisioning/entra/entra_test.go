package entra

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/entra/entratest"
)

func ptr(s string) *string { return &s }

func newUser(i int) provisioning.NewUser {
	return provisioning.NewUser{
		UserPrincipalName: fmt.Sprintf("user%04d@example.com", i),
		MailNickname:      fmt.Sprintf("user%04d", i),
		AccountEnabled:    true,
		Attributes: map[string]string{
			"displayName": fmt.Sprintf("User %d", i), "employeeId": fmt.Sprint(1000 + i),
			"jobTitle": "Engineer", "department": "R&D",
		},
	}
}

// Paging: 2,500 users come back complete through users/delta pages of 200,
// followed via absolute nextLinks (docs/graph-behaviour.md#paging).
func TestListUsersPages2500(t *testing.T) {
	sim, d, _ := newSimDirectory(t, entratest.Options{})
	boss := sim.AddUser(entratest.User{UserPrincipalName: "boss@example.com", DisplayName: "Boss", EmployeeID: "1", AccountEnabled: true})
	for i := range 2500 {
		u := entratest.User{UserPrincipalName: fmt.Sprintf("u%d@example.com", i), DisplayName: fmt.Sprint(i), AccountEnabled: true,
			EmployeeID: fmt.Sprint(10000 + i), Properties: map[string]any{"jobTitle": "Job", "employeeOrgData": map[string]any{"division": "D"}}}
		if i%2 == 0 {
			u.ManagerID = boss
		}
		sim.AddUser(u)
	}
	for i := range 30 { // service accounts without employeeId are not listed
		sim.AddUser(entratest.User{UserPrincipalName: fmt.Sprintf("svc%d@example.com", i), DisplayName: "svc"})
	}
	sim.Reset()
	got, err := d.ListUsers(ctxT(t))
	if err != nil {
		t.Fatalf("ListUsers: %v", err)
	}
	if len(got) != 2501 {
		t.Fatalf("ListUsers returned %d users, want 2501", len(got))
	}
	seen := map[string]bool{}
	managed := 0
	for _, u := range got {
		if seen[u.EmployeeID] {
			t.Fatalf("employeeId %s listed twice", u.EmployeeID)
		}
		seen[u.EmployeeID] = true
		if u.ManagerID == boss {
			managed++
			if u.ManagerEmployeeID != "1" {
				t.Fatalf("user %s: ManagerEmployeeID %q, want 1", u.UserPrincipalName, u.ManagerEmployeeID)
			}
		}
		if u.EmployeeID != "1" && (u.Attributes["jobTitle"] != "Job" || u.Attributes["employeeOrgData/division"] != "D") {
			t.Fatalf("user %s: attributes %v", u.UserPrincipalName, u.Attributes)
		}
	}
	if managed != 1250 {
		t.Fatalf("%d users have the manager, want 1250", managed)
	}
	total := 2500 + 30 + 1
	wantPages := (total + entratest.DeltaPageSize - 1) / entratest.DeltaPageSize
	if n := sim.Requests().Total; n != wantPages {
		t.Fatalf("ListUsers made %d requests, want %d delta pages", n, wantPages)
	}
}

// snapshot is the comparable state of the simulator: users by UPN with
// their properties, manager UPN and groups.
func snapshot(sim *entratest.Server) []string {
	upn := map[string]string{}
	for _, u := range sim.Users() {
		upn[u.ID] = u.UserPrincipalName
	}
	var out []string
	for _, u := range sim.Users() {
		keys := make([]string, 0, len(u.Properties))
		for k := range u.Properties {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var props []string
		for _, k := range keys {
			props = append(props, fmt.Sprintf("%s=%v", k, u.Properties[k]))
		}
		out = append(out, fmt.Sprintf("%s enabled=%v manager=%s deleted=%v %s", u.UserPrincipalName, u.AccountEnabled, upn[u.ManagerID], u.Deleted, strings.Join(props, ",")))
	}
	for _, g := range sim.Groups() {
		var m []string
		for _, id := range g.Members {
			m = append(m, upn[id])
		}
		sort.Strings(m)
		out = append(out, g.DisplayName+": "+strings.Join(m, ","))
	}
	sort.Strings(out)
	return out
}

// workload runs a realistic mix of writes and reads.
func workload(t *testing.T, sim *entratest.Server, d *Directory) {
	t.Helper()
	ctx := ctxT(t)
	gid := sim.AddGroup(entratest.Group{ID: "g-eng", DisplayName: "Engineering", SecurityEnabled: true})
	var ids []string
	for i := range 25 {
		u, err := d.CreateUser(ctx, newUser(i))
		if err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
		ids = append(ids, u.ID)
	}
	for i, id := range ids {
		if err := d.UpdateUser(ctx, id, map[string]*string{"jobTitle": ptr(fmt.Sprintf("Title %d", i)), "department": nil}); err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
		if i > 0 {
			if err := d.SetManager(ctx, id, ids[0]); err != nil {
				t.Fatalf("manager %d: %v", i, err)
			}
		}
	}
	if err := d.AddGroupMembers(ctx, gid, ids); err != nil {
		t.Fatalf("add members: %v", err)
	}
	if err := d.RemoveGroupMember(ctx, gid, ids[3]); err != nil {
		t.Fatalf("remove member: %v", err)
	}
	if err := d.SetAccountEnabled(ctx, ids[4], false); err != nil {
		t.Fatalf("disable: %v", err)
	}
	listed, err := d.ListUsers(ctx)
	if err != nil || len(listed) != 25 {
		t.Fatalf("list: %d users, %v", len(listed), err)
	}
	members, err := d.ListGroupMembers(ctx, gid)
	if err != nil || len(members) != 24 {
		t.Fatalf("members: %d, %v", len(members), err)
	}
}

// A 429/503 storm (30 % throttled, 10 % unavailable) ends in the same state
// as a calm run, and the throttling shows in the metrics.
func TestThrottleStormSameResult(t *testing.T) {
	calm, dCalm, _ := newSimDirectory(t, entratest.Options{})
	workload(t, calm, dCalm)

	storm, dStorm, _ := newSimDirectory(t, entratest.Options{})
	storm.SetFaults(entratest.Faults{ThrottleRate: 0.3, ServerErrorRate: 0.1, RetryAfter: 5 * time.Millisecond})
	before := testutil.ToFloat64(graphThrottled)
	waitBefore := testutil.ToFloat64(graphRetryWait)
	workload(t, storm, dStorm)

	if a, b := snapshot(calm), snapshot(storm); !slices.Equal(a, b) {
		t.Fatalf("state after storm differs:\ncalm:  %v\nstorm: %v", a, b)
	}
	c := storm.Requests()
	if c.Throttled == 0 {
		t.Fatal("the storm throttled nothing")
	}
	if got := testutil.ToFloat64(graphThrottled) - before; got != float64(c.Throttled) {
		t.Fatalf("personio_entra_graph_throttled_total grew by %v, simulator answered %d 429s", got, c.Throttled)
	}
	if testutil.ToFloat64(graphRetryWait) <= waitBefore {
		t.Fatal("personio_entra_graph_retry_wait_seconds_total did not grow")
	}
	t.Logf("storm: %d requests, %d throttled, %d other errors", c.Total, c.Throttled, c.Errors)
}

// The write budget (https://learn.microsoft.com/en-us/graph/throttling-limits)
// answers 429 with Retry-After; the
// adapter waits and finishes. With retries exhausted the error is
// KindThrottled and carries RetryAfter.
func TestWriteBudget(t *testing.T) {
	sim, d, _ := newSimDirectory(t, entratest.Options{WriteBudget: 5, WriteWindow: 400 * time.Millisecond})
	ctx := ctxT(t)
	for i := range 12 {
		if _, err := d.CreateUser(ctx, newUser(i)); err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
	}
	if n := len(sim.Users()); n != 12 {
		t.Fatalf("%d users, want 12", n)
	}
	if sim.Requests().Throttled == 0 {
		t.Fatal("the write budget never answered 429")
	}
	if !d.ThrottledUntil().After(time.Now().Add(-time.Minute)) {
		t.Errorf("ThrottledUntil = %v after 429s: the engine cannot hold group additions", d.ThrottledUntil())
	}

	sim2, d2, _ := newSimDirectory(t, entratest.Options{WriteBudget: 1, WriteWindow: time.Hour}, func(c *Config) { c.Retry.MaxAttempts = 2 })
	if !d2.ThrottledUntil().IsZero() {
		t.Errorf("a fresh client reports throttling until %v", d2.ThrottledUntil())
	}
	id := sim2.AddUser(entratest.User{UserPrincipalName: "a@example.com", DisplayName: "A"})
	if err := d2.SetAccountEnabled(ctx, id, false); err != nil {
		t.Fatalf("first write: %v", err)
	}
	err := d2.SetAccountEnabled(ctx, id, true)
	var de *provisioning.DirectoryError
	if !errors.As(err, &de) || de.Kind != provisioning.KindThrottled || de.RetryAfter < 50*time.Minute {
		t.Fatalf("want KindThrottled with RetryAfter near 1h, got %#v", err)
	}
	if !errors.Is(err, provisioning.ErrThrottled) {
		t.Fatalf("errors.Is(ErrThrottled) false for %v", err)
	}
}

// A create whose response is lost must not produce two users (see CreateUser
// and docs/graph-behaviour.md#errors-and-conflicts).
func TestCreateLostResponseCreatesOnce(t *testing.T) {
	cases := []struct {
		name   string
		faults entratest.Faults
		delay  time.Duration
	}{
		{"connection closed", entratest.Faults{DropCreateResponse: 1}, 0},
		{"504 after commit", entratest.Faults{FailCreateAfterCommit: 1}, 0},
		{"connection closed with replication delay", entratest.Faults{DropCreateResponse: 1}, 400 * time.Millisecond},
		{"two lost responses", entratest.Faults{DropCreateResponse: 1, FailCreateAfterCommit: 1}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sim, d, wire := newSimDirectory(t, entratest.Options{ReplicationDelay: tc.delay})
			sim.SetFaults(tc.faults)
			u, err := d.CreateUser(ctxT(t), newUser(7))
			if err != nil {
				t.Fatalf("CreateUser: %v", err)
			}
			all := sim.Users()
			if len(all) != 1 || all[0].ID != u.ID {
				t.Fatalf("want exactly one user %s, simulator has %+v", u.ID, all)
			}
			if posts := len(wire.find(http.MethodPost, "/v1.0/users")); posts > 2 {
				t.Fatalf("%d POST /users, want at most 2", posts)
			}
		})
	}
}

// A duplicate UPN owned by another person is ErrConflict naming the UPN;
// owned by the same employeeId (an earlier create of ours) it is adopted.
func TestCreateConflict(t *testing.T) {
	sim, d, _ := newSimDirectory(t, entratest.Options{})
	sim.AddUser(entratest.User{UserPrincipalName: "user0001@example.com", DisplayName: "Other", EmployeeID: "other"})
	_, err := d.CreateUser(ctxT(t), newUser(1))
	var de *provisioning.DirectoryError
	if !errors.As(err, &de) || de.Kind != provisioning.KindConflict || de.Target != "userPrincipalName" || de.Code != "Request_BadRequest" {
		t.Fatalf("want conflict on userPrincipalName, got %#v", err)
	}
	mine := sim.AddUser(entratest.User{UserPrincipalName: "user0002@example.com", DisplayName: "Me", EmployeeID: "1002"})
	u, err := d.CreateUser(ctxT(t), newUser(2))
	if err != nil || u.ID != mine {
		t.Fatalf("want adoption of %s, got %+v, %v", mine, u, err)
	}
}

// Eventual consistency (docs/graph-behaviour.md#replication-delay): reads and
// references right after a create succeed.
func TestReadAfterCreateWithReplicationDelay(t *testing.T) {
	sim, d, _ := newSimDirectory(t, entratest.Options{ReplicationDelay: 600 * time.Millisecond})
	gid := sim.AddGroup(entratest.Group{DisplayName: "All", SecurityEnabled: true})
	ctx := ctxT(t)
	boss, err := d.CreateUser(ctx, newUser(1))
	if err != nil {
		t.Fatal(err)
	}
	emp, err := d.CreateUser(ctx, newUser(2))
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.GetUser(ctx, emp.ID)
	if err != nil || got.UserPrincipalName != "user0002@example.com" {
		t.Fatalf("GetUser right after create: %+v, %v", got, err)
	}
	if err := d.SetManager(ctx, emp.ID, boss.ID); err != nil {
		t.Fatalf("SetManager right after create: %v", err)
	}
	if err := d.AddGroupMembers(ctx, gid, []string{emp.ID}); err != nil {
		t.Fatalf("AddGroupMembers right after create: %v", err)
	}
	if u, _ := sim.User(emp.ID); u.ManagerID != boss.ID {
		t.Fatalf("manager %q, want %q", u.ManagerID, boss.ID)
	}
	if sim.Requests().Errors == 0 {
		t.Fatal("the replication delay produced no 404 (test would prove nothing)")
	}
	// A user this process did not create is not waited for.
	start := time.Now()
	if _, err := d.GetUser(ctx, "00000000-0000-0000-0000-000000000000"); !errors.Is(err, provisioning.ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("unknown user was retried as if it were replicating")
	}
}

// Group kinds Graph cannot write are refused up front with a reason that
// says what to use instead (docs/graph-behaviour.md#groups-graph-cannot-write); writing
// anyway surfaces Graph's error.
func TestGroupManageability(t *testing.T) {
	sim, d, _ := newSimDirectory(t, entratest.Options{})
	cases := []struct {
		name string
		g    entratest.Group
		want string // substring of Unmanageable; "" = manageable
	}{
		{"microsoft 365", entratest.Group{GroupTypes: []string{"Unified"}, MailEnabled: true, SecurityEnabled: false}, ""},
		{"security", entratest.Group{SecurityEnabled: true}, ""},
		{"mail-enabled security", entratest.Group{MailEnabled: true, SecurityEnabled: true}, "use a Microsoft 365 group for an email group"},
		{"distribution list", entratest.Group{MailEnabled: true}, "distribution list"},
		{"dynamic", entratest.Group{SecurityEnabled: true, GroupTypes: []string{"DynamicMembership"}, MembershipRule: `user.department -eq "Sales"`}, "dynamic membership"},
		{"on-premises", entratest.Group{SecurityEnabled: true, OnPremisesSyncEnabled: true}, "on-premises"},
		{"role-assignable", entratest.Group{SecurityEnabled: true, IsAssignableToRole: true}, "RoleManagement.ReadWrite.Directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.g.DisplayName = "G " + tc.name
			id := sim.AddGroup(tc.g)
			g, err := d.GetGroup(ctxT(t), id)
			if err != nil {
				t.Fatal(err)
			}
			if (tc.want == "") != (g.Unmanageable == "") || !strings.Contains(g.Unmanageable, tc.want) {
				t.Fatalf("Unmanageable = %q, want containing %q", g.Unmanageable, tc.want)
			}
			r, err := d.ResolveGroup(ctxT(t), tc.g.DisplayName)
			if err != nil || r.ID != id || r.Unmanageable != g.Unmanageable {
				t.Fatalf("ResolveGroup: %+v, %v", r, err)
			}
		})
	}
	uid := sim.AddUser(entratest.User{UserPrincipalName: "m@example.com", DisplayName: "M"})
	mesg := sim.AddGroup(entratest.Group{DisplayName: "Mail sec", MailEnabled: true, SecurityEnabled: true})
	err := d.AddGroupMembers(ctxT(t), mesg, []string{uid})
	var de *provisioning.DirectoryError
	if !errors.As(err, &de) || de.Kind != provisioning.KindRejected || !strings.Contains(de.Message, "mail-enabled security") {
		t.Fatalf("adding to a mail-enabled security group: %#v", err)
	}
}

// Clearing a property sends JSON null on the wire
// (docs/graph-behaviour.md#sdk-clearing-a-property), nested
// employeeOrgData keeps its other member, businessPhones is a one-element
// array and employeeHireDate a DateTimeOffset.
func TestUpdateClearSendsNull(t *testing.T) {
	sim, d, wire := newSimDirectory(t, entratest.Options{})
	id := sim.AddUser(entratest.User{UserPrincipalName: "n@example.com", DisplayName: "N", Properties: map[string]any{
		"jobTitle": "Old", "employeeOrgData": map[string]any{"division": "Sales", "costCenter": "CC1"}}})
	err := d.UpdateUser(ctxT(t), id, map[string]*string{
		"jobTitle":                   nil,
		"employeeOrgData/costCenter": ptr("CC2"),
		"businessPhones":             ptr("+49 30 1234"),
		"employeeHireDate":           ptr("2026-03-01"),
	})
	if err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	patches := wire.find(http.MethodPatch, "/users/"+id)
	if len(patches) != 1 {
		t.Fatalf("%d PATCH requests, want 1", len(patches))
	}
	body := patches[0].Body
	for _, want := range []string{`"jobTitle":null`, `"businessPhones":["+49 30 1234"]`, `"employeeHireDate":"2026-03-01T00:00:00Z"`, `"costCenter":"CC2"`, `"division":"Sales"`} {
		if !strings.Contains(body, want) {
			t.Errorf("PATCH body %s lacks %s", body, want)
		}
	}
	if strings.Contains(body, "displayName") || strings.Contains(body, "department") {
		t.Errorf("PATCH body sends properties that were not changed: %s", body)
	}
	u, _ := sim.User(id)
	if _, ok := u.Properties["jobTitle"]; ok {
		t.Fatalf("jobTitle not cleared: %v", u.Properties)
	}
	got, err := d.GetUser(ctxT(t), id)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"employeeOrgData/division": "Sales", "employeeOrgData/costCenter": "CC2", "businessPhones": "+49 30 1234", "employeeHireDate": "2026-03-01T00:00:00Z", "displayName": "N"}
	for k, v := range want {
		if got.Attributes[k] != v {
			t.Errorf("attribute %s = %q, want %q", k, got.Attributes[k], v)
		}
	}
	// An empty string would be rejected by Graph
	// (docs/graph-behaviour.md#user-property-limits): the simulator does too.
	if err := d.UpdateUser(ctxT(t), id, map[string]*string{"department": ptr("")}); !errors.Is(err, provisioning.ErrRejected) {
		t.Fatalf("empty string: want ErrRejected, got %v", err)
	}
}

// The bearer token reaches a host that is not a Graph cloud host (the
// simulator on 127.0.0.1): the auth provider's allow-list includes the
// override host (docs/graph-behaviour.md#sdk-base-url-and-token-hosts).
func TestBearerTokenReachesOverrideHost(t *testing.T) {
	sim, d, wire := newSimDirectory(t, entratest.Options{})
	if err := d.Check(ctxT(t)); err != nil {
		t.Fatalf("Check: %v", err)
	}
	reqs := wire.find(http.MethodGet, "/v1.0/users")
	// The simulator's tokens are JWT-shaped (header.claims.random) like Entra's.
	if len(reqs) != 1 || !strings.HasPrefix(reqs[0].Auth, "Bearer ey") || strings.Count(reqs[0].Auth, ".") != 2 {
		t.Fatalf("Graph request without the simulator's token: %+v", reqs)
	}
	// Without a token the simulator refuses, as Graph does.
	resp, err := sim.Client().Get(sim.GraphURL() + "/users")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unauthenticated request: status %d, want 401", resp.StatusCode)
	}
}

func TestErrorsAreTyped(t *testing.T) {
	sim, d, _ := newSimDirectory(t, entratest.Options{})
	ctx := ctxT(t)
	uid := sim.AddUser(entratest.User{UserPrincipalName: "o'brien@example.com", DisplayName: "O'Brien", EmployeeID: "77", Mail: "o'brien@example.com"})
	gid := sim.AddGroup(entratest.Group{DisplayName: "Twice", SecurityEnabled: true, Members: []string{uid}})
	sim.AddGroup(entratest.Group{DisplayName: "Twice", SecurityEnabled: true})
	sim.AddGroup(entratest.Group{DisplayName: "Once", SecurityEnabled: true})

	kindOf := func(err error) provisioning.ErrorKind {
		var de *provisioning.DirectoryError
		if err == nil {
			return -1
		}
		if !errors.As(err, &de) {
			t.Fatalf("%v is not a *DirectoryError", err)
		}
		if de.Op == "" {
			t.Fatalf("%v has no Op", err)
		}
		return de.Kind
	}
	_, errGet := d.GetUser(ctx, "missing")
	_, errGroup := d.ResolveGroup(ctx, "Twice")
	_, errNone := d.ResolveGroup(ctx, "Nobody's group")
	cases := []struct {
		name string
		err  error
		want provisioning.ErrorKind
	}{
		{"get unknown user", errGet, provisioning.KindNotFound},
		{"two groups with one name", errGroup, provisioning.KindConflict},
		{"no group with the name", errNone, provisioning.KindNotFound},
		{"patch unknown user", d.UpdateUser(ctx, "missing", map[string]*string{"jobTitle": ptr("x")}), provisioning.KindNotFound},
		{"remove non-member", d.RemoveGroupMember(ctx, gid, "someone-else"), -1},
		{"add existing member", d.AddGroupMembers(ctx, gid, []string{uid}), -1},
		{"remove from unknown group", d.RemoveGroupMember(ctx, "no-group", uid), provisioning.KindNotFound},
		{"remove absent manager", d.SetManager(ctx, uid, ""), -1},
		{"manager that does not exist", d.SetManager(ctx, uid, "missing"), provisioning.KindNotFound},
		{"restore a user that is not deleted", d.RestoreUser(ctx, uid), provisioning.KindNotFound},
		{"unknown property", d.UpdateUser(ctx, uid, map[string]*string{"shoeSize": ptr("44")}), provisioning.KindRejected},
	}
	for _, tc := range cases {
		if got := kindOf(tc.err); got != tc.want {
			t.Errorf("%s: kind %v, want %v (err %v)", tc.name, got, tc.want, tc.err)
		}
	}
	for _, key := range []string{"employeeId", "userPrincipalName", "mail"} {
		val := map[string]string{"employeeId": "77", "userPrincipalName": "O'Brien@example.com", "mail": "o'brien@example.com"}[key]
		found, err := d.FindUsers(ctx, key, val)
		if err != nil || len(found) != 1 || found[0].ID != uid {
			t.Errorf("FindUsers(%s, %q) = %+v, %v", key, val, found, err)
		}
	}
	if found, err := d.FindUsers(ctx, "employeeId", "nobody"); err != nil || found == nil || len(found) != 0 {
		t.Errorf("FindUsers with no match = %#v, %v; want empty slice", found, err)
	}
	groups, err := d.ListUserGroups(ctx, uid)
	if err != nil || !slices.Equal(groups, []string{gid}) {
		t.Errorf("ListUserGroups = %v, %v", groups, err)
	}
}

func TestDeleteRestoreRevoke(t *testing.T) {
	sim, d, _ := newSimDirectory(t, entratest.Options{})
	ctx := ctxT(t)
	u, err := d.CreateUser(ctx, newUser(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.RevokeSessions(ctx, u.ID); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if su, _ := sim.User(u.ID); su.SignInSessionsValidFrom.IsZero() || !su.ForceChangePasswordNextSignIn || !su.PasswordSet {
		t.Fatalf("simulator user after revoke: %+v", su)
	}
	if err := d.DeleteUser(ctx, u.ID); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := d.GetUser(ctx, u.ID); !errors.Is(err, provisioning.ErrNotFound) {
		t.Fatalf("deleted user readable: %v", err)
	}
	if err := d.RestoreUser(ctx, u.ID); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if got, err := d.GetUser(ctx, u.ID); err != nil || got.UserPrincipalName != u.UserPrincipalName {
		t.Fatalf("restored user: %+v, %v", got, err)
	}
}

func TestNewRejectsInsecureAndUnknownConfig(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"plain http to a remote Graph", Config{TenantID: "t", ClientID: "c", ClientSecret: "s", GraphURL: "http://graph.example.com/v1.0"}, "https is required"},
		{"plain http authority", Config{TenantID: "t", ClientID: "c", ClientSecret: "s", AuthorityHost: "http://login.example.com/"}, "https is required"},
		{"unknown cloud", Config{TenantID: "t", ClientID: "c", ClientSecret: "s", Cloud: "mars"}, "unknown cloud"},
		{"secret and certificate", Config{TenantID: "t", ClientID: "c", ClientSecret: "s", CertificatePath: "x.pem"}, "not both"},
		{"missing certificate file", Config{TenantID: "t", ClientID: "c", CertificatePath: "/nonexistent/cert.pem"}, "read certificate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(ctxT(t), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want error containing %q", err, tc.want)
			}
		})
	}
	for _, c := range []string{"public", "usgov", "china", ""} {
		if _, err := New(ctxT(t), Config{TenantID: "t", ClientID: "c", ClientSecret: "s", Cloud: c}); err != nil {
			t.Errorf("cloud %q: %v", c, err)
		}
	}
}

func TestWrongSecretIsForbidden(t *testing.T) {
	_, d, _ := newSimDirectory(t, entratest.Options{}, func(c *Config) { c.ClientSecret = "wrong-secret-value" })
	err := d.Check(ctxT(t))
	var de *provisioning.DirectoryError
	if !errors.As(err, &de) || de.Kind != provisioning.KindForbidden {
		t.Fatalf("wrong secret: %#v", err)
	}
	if strings.Contains(err.Error(), "wrong-secret-value") {
		t.Fatal("the error text contains the secret")
	}
	if !strings.Contains(err.Error(), "AADSTS7000215") {
		t.Fatalf("error does not carry the AADSTS code: %v", err)
	}
}
