package provisioning

import (
	"reflect"
	"testing"

	"github.com/personio-entra/personio-entra/rules"
)

func kinds(p Plan) []ChangeKind {
	var out []ChangeKind
	for _, c := range p.Changes {
		out = append(out, c.Kind)
	}
	return out
}

func TestComputePlan(t *testing.T) {
	groups := []GroupRef{{Key: "Finance", ID: "g-fin"}, {Key: "Women", ID: "g-women"}, {Key: "Sales", ID: "g-sales"}}
	opt := PlanOptions{ManagedGroups: groups, ManageManager: true}
	active := func(mut func(*rules.Desired)) rules.Desired {
		d := rules.Desired{
			PersonID: "1001", Phase: rules.PhaseActive, Exists: true, AccountEnabled: true,
			Attributes: map[string]rules.Value{
				"displayName":   {Value: "Anna Müller", Policy: rules.Always},
				"jobTitle":      {Value: "Accountant", Policy: rules.Always},
				"mobilePhone":   {Value: "", Policy: rules.Always},
				"usageLocation": {Value: "DE", Policy: rules.OnCreate},
				"companyName":   {Value: "Example GmbH", Policy: rules.Never},
			},
			UPNCandidates:   []string{"anna.mueller@example.com", "a.mueller@example.com"},
			MailNickname:    "anna.mueller",
			ManagerPersonID: "1000",
			Groups:          []string{"Finance", "Women"},
			RevokeSessions:  true, RemoveMembership: true,
		}
		if mut != nil {
			mut(&d)
		}
		return d
	}
	user := func(mut func(*User)) *User {
		u := &User{ID: "u1", UserPrincipalName: "anna.mueller@example.com", EmployeeID: "1001", AccountEnabled: true,
			ManagerID: "u0", ManagerEmployeeID: "1000",
			Attributes: map[string]string{"displayName": "Anna Müller", "jobTitle": "Accountant", "usageLocation": "GB", "companyName": "Other"}}
		if mut != nil {
			mut(u)
		}
		return u
	}
	inGroups := func(ids ...string) map[string]bool {
		m := map[string]bool{}
		for _, id := range ids {
			m[id] = true
		}
		return m
	}
	manager := &User{ID: "u0", EmployeeID: "1000"}

	tests := []struct {
		name  string
		d     rules.Desired
		a     Actual
		want  []ChangeKind
		check func(t *testing.T, p Plan)
	}{
		{
			name: "in step: no change (idempotent)",
			d:    active(nil),
			a:    Actual{User: user(nil), Groups: inGroups("g-fin", "g-women"), Manager: manager},
			want: nil,
		},
		{
			name: "joiner without account: create only, with on_create values and without never ones",
			d:    active(nil),
			a:    Actual{},
			want: []ChangeKind{CreateUser},
			check: func(t *testing.T, p Plan) {
				c := p.Changes[0]
				if c.Properties["usageLocation"] == nil || *c.Properties["usageLocation"] != "DE" {
					t.Errorf("usageLocation on create = %v, want DE", c.Properties["usageLocation"])
				}
				if _, ok := c.Properties["companyName"]; ok {
					t.Error("policy never must not be written on create")
				}
				if _, ok := c.Properties["mobilePhone"]; ok {
					t.Error("empty values are not sent on create")
				}
				if !c.Enabled {
					t.Error("active joiner must be created enabled")
				}
			},
		},
		{
			name: "not yet due: nothing",
			d:    active(func(d *rules.Desired) { d.Phase, d.Exists = rules.PhaseNotYet, false }),
			a:    Actual{},
			want: nil,
		},
		{
			name: "out of scope: never touched even when different",
			d:    active(func(d *rules.Desired) { d.Phase = rules.PhaseOutOfScope; d.AccountEnabled = false }),
			a:    Actual{User: user(nil)},
			want: nil,
		},
		{
			name: "mover: title and department group change, unmanaged membership untouched",
			d: active(func(d *rules.Desired) {
				d.Attributes["jobTitle"] = rules.Value{Value: "Sales Lead", Policy: rules.Always}
				d.Groups = []string{"Sales", "Women"}
			}),
			a:    Actual{User: user(nil), Groups: inGroups("g-fin", "g-women", "g-unmanaged"), Manager: manager},
			want: []ChangeKind{UpdateUser, AddMember, RemoveMember},
			check: func(t *testing.T, p Plan) {
				if got := *p.Changes[0].Properties["jobTitle"]; got != "Sales Lead" {
					t.Errorf("jobTitle = %q", got)
				}
				if len(p.Changes[0].Properties) != 1 {
					t.Errorf("patch must carry only changed properties: %v", p.Changes[0].Properties)
				}
				if p.Changes[1].Group != "g-sales" || p.Changes[2].Group != "g-fin" {
					t.Errorf("groups: %+v", p.Changes[1:])
				}
			},
		},
		{
			name: "cleared property is sent as null",
			d:    active(nil),
			a:    Actual{User: user(func(u *User) { u.Attributes["mobilePhone"] = "+49 1" }), Groups: inGroups("g-fin", "g-women"), Manager: manager},
			want: []ChangeKind{UpdateUser},
			check: func(t *testing.T, p Plan) {
				v, ok := p.Changes[0].Properties["mobilePhone"]
				if !ok || v != nil {
					t.Errorf("mobilePhone = %v, %v; want explicit nil", v, ok)
				}
			},
		},
		{
			name: "leaver: disable, revoke, leave managed groups; no attribute or manager writes",
			d: active(func(d *rules.Desired) {
				d.Phase, d.AccountEnabled = rules.PhaseLeaver, false
				d.Attributes["jobTitle"] = rules.Value{Value: "changed", Policy: rules.Always}
				d.ManagerPersonID = ""
			}),
			a:    Actual{User: user(nil), Groups: inGroups("g-fin", "g-women")},
			want: []ChangeKind{DisableUser, RevokeSessions, RemoveMember, RemoveMember},
		},
		{
			name: "leaver already disabled, memberships kept when removal is off",
			d: active(func(d *rules.Desired) {
				d.Phase, d.AccountEnabled, d.RemoveMembership = rules.PhaseLeaver, false, false
			}),
			a:    Actual{User: user(func(u *User) { u.AccountEnabled = false }), Groups: inGroups("g-fin")},
			want: nil,
		},
		{
			name: "leaver never provisioned: nothing to create",
			d:    active(func(d *rules.Desired) { d.Phase, d.AccountEnabled = rules.PhaseLeaver, false }),
			a:    Actual{},
			want: nil,
		},
		{
			name: "rehire: disabled account is enabled and groups return",
			d:    active(nil),
			a:    Actual{User: user(func(u *User) { u.AccountEnabled = false }), Groups: inGroups(), Manager: manager},
			want: []ChangeKind{EnableUser, AddMember, AddMember},
		},
		{
			name: "pre-hire: disabled account until the start date",
			d:    active(func(d *rules.Desired) { d.Phase, d.AccountEnabled = rules.PhasePreHire, false }),
			a:    Actual{User: user(nil), Groups: inGroups("g-fin", "g-women"), Manager: manager},
			want: []ChangeKind{DisableUser},
		},
		{
			name: "manager changed",
			d:    active(func(d *rules.Desired) { d.ManagerPersonID = "1005" }),
			a:    Actual{User: user(nil), Groups: inGroups("g-fin", "g-women"), Manager: &User{ID: "u5", EmployeeID: "1005"}},
			want: []ChangeKind{SetManager},
		},
		{
			name: "manager has no account yet: wait, no change",
			d:    active(func(d *rules.Desired) { d.ManagerPersonID = "1005" }),
			a:    Actual{User: user(nil), Groups: inGroups("g-fin", "g-women")},
			want: nil,
			check: func(t *testing.T, p Plan) {
				if !p.Wait || len(p.Notes) == 0 {
					t.Errorf("want a wait with a note, got wait=%v notes=%v", p.Wait, p.Notes)
				}
			},
		},
		{
			name: "manager removed in Personio",
			d:    active(func(d *rules.Desired) { d.ManagerPersonID = "" }),
			a:    Actual{User: user(nil), Groups: inGroups("g-fin", "g-women")},
			want: []ChangeKind{RemoveManager},
		},
		{
			name: "deleted after retention: disable and delete",
			d:    active(func(d *rules.Desired) { d.Phase, d.AccountEnabled, d.Exists = rules.PhaseDeleted, false, false }),
			a:    Actual{User: user(nil)},
			want: []ChangeKind{DisableUser, DeleteUser},
		},
		{
			name: "hire date compared as an instant",
			d: active(func(d *rules.Desired) {
				d.Attributes["employeeHireDate"] = rules.Value{Value: "2026-12-01T00:00:00+00:00", Policy: rules.Always}
			}),
			a: Actual{User: user(func(u *User) { u.Attributes["employeeHireDate"] = "2026-12-01T00:00:00Z" }),
				Groups: inGroups("g-fin", "g-women"), Manager: manager},
			want: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ComputePlan(tt.d, tt.a, opt)
			if got := kinds(p); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("changes = %v, want %v (%+v)", got, tt.want, p.Changes)
			}
			if tt.check != nil {
				tt.check(t, p)
			}
		})
	}
}

func TestDestructiveKinds(t *testing.T) {
	for k, want := range map[ChangeKind]bool{
		CreateUser: false, UpdateUser: false, EnableUser: false, AddMember: false, SetManager: false,
		DisableUser: true, RevokeSessions: true, RemoveMember: true, DeleteUser: true, RemoveManager: true,
	} {
		if k.Destructive() != want {
			t.Errorf("%s.Destructive() = %v, want %v", k, !want, want)
		}
	}
}
