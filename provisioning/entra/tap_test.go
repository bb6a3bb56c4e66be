package entra

import (
	"errors"
	"slices"
	"testing"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/entra/entratest"
)

// The documented refusals of a pass reach the engine as its sentinels.
func TestCreateTAPRefusals(t *testing.T) {
	tests := []struct {
		name   string
		opts   entratest.Options
		policy entratest.TAPPolicy
		method bool
		req    provisioning.TAPRequest
		want   error
	}{
		{"policy disabled", entratest.Options{}, entratest.TAPPolicy{Disabled: true}, false, provisioning.TAPRequest{LifetimeMinutes: 60, UsableOnce: true}, provisioning.ErrTAPPolicyDisabled},
		{"lifetime outside the policy", entratest.Options{}, entratest.TAPPolicy{}, false, provisioning.TAPRequest{LifetimeMinutes: 600, UsableOnce: true}, provisioning.ErrTAPPolicyDisabled},
		{"one-time passes only", entratest.Options{}, entratest.TAPPolicy{UsableOnce: true}, false, provisioning.TAPRequest{LifetimeMinutes: 60}, provisioning.ErrTAPPolicyDisabled},
		{"user has a method", entratest.Options{}, entratest.TAPPolicy{RefuseWithMethods: true}, true, provisioning.TAPRequest{LifetimeMinutes: 60, UsableOnce: true}, provisioning.ErrTAPHasMethod},
		{"missing permission", entratest.Options{Permissions: []string{entratest.PermUserReadWriteAll}}, entratest.TAPPolicy{}, false, provisioning.TAPRequest{LifetimeMinutes: 60}, provisioning.ErrForbidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sim, d, _ := newSimDirectory(t, tc.opts)
			sim.SetTAPPolicy(tc.policy)
			id := sim.AddUser(entratest.User{UserPrincipalName: "joiner@example.com", AccountEnabled: true})
			if tc.method {
				sim.AddAuthMethod(id, entratest.MethodAuthenticator)
			}
			_, err := d.CreateTAP(ctxT(t), id, tc.req)
			if !errors.Is(err, tc.want) {
				t.Fatalf("CreateTAP: %v, want %v", err, tc.want)
			}
			if len(sim.IssuedTAPs(id)) != 0 {
				t.Fatalf("a refused create issued a pass")
			}
		})
	}
}

// GrantedPermissions reads the roles claim of the app's token.
func TestGrantedPermissions(t *testing.T) {
	_, d, _ := newSimDirectory(t, entratest.Options{Permissions: []string{entratest.PermUserReadWriteAll, entratest.PermMailSend}})
	got, err := d.GrantedPermissions(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if want := []string{entratest.PermMailSend, entratest.PermUserReadWriteAll}; !slices.Equal(got, want) {
		t.Fatalf("GrantedPermissions = %v, want %v", got, want)
	}
}

// A sender without a mailbox is ErrNoMailbox; without Mail.Send, forbidden.
func TestSendMailRefusals(t *testing.T) {
	sim, d, _ := newSimDirectory(t, entratest.Options{})
	sim.AddUser(entratest.User{UserPrincipalName: "nobox@example.com", AccountEnabled: true})
	err := d.SendMail(ctxT(t), "nobox@example.com", provisioning.Mail{To: []string{"a@example.com"}, Subject: "s", Body: "b"})
	if !errors.Is(err, provisioning.ErrNoMailbox) {
		t.Fatalf("no mailbox: %v", err)
	}
	sim2, d2, _ := newSimDirectory(t, entratest.Options{Permissions: []string{entratest.PermUserReadWriteAll}})
	sim2.AddUser(entratest.User{UserPrincipalName: "it@example.com", Mail: "it@example.com", AccountEnabled: true})
	err = d2.SendMail(ctxT(t), "it@example.com", provisioning.Mail{To: []string{"a@example.com"}, Subject: "s", Body: "b"})
	if !errors.Is(err, provisioning.ErrForbidden) {
		t.Fatalf("no Mail.Send: %v", err)
	}
}
