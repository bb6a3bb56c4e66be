package entra

import (
	"errors"
	"testing"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/entra/entratest"
)

// A token endpoint that cannot be reached (no HTTP answer at all) says
// nothing about the credential: the failure is transient and retried, not
// "forbidden", which the engine would dead-letter at once. Once the endpoint
// answers again the same call succeeds.
func TestTokenEndpointUnreachableIsTransient(t *testing.T) {
	sim, d, _ := newSimDirectory(t, entratest.Options{})
	id := sim.AddUser(entratest.User{UserPrincipalName: "ada@example.com", DisplayName: "Ada", AccountEnabled: true})

	sim.SetTokenOutage(true)
	err := d.SetAccountEnabled(ctxT(t), id, false)
	var de *provisioning.DirectoryError
	if !errors.As(err, &de) {
		t.Fatalf("want a *DirectoryError while the token endpoint is down, got %v", err)
	}
	if de.Kind != provisioning.KindTransient || errors.Is(err, provisioning.ErrForbidden) {
		t.Fatalf("token endpoint unreachable: kind %s (%v), want transient", de.Kind, err)
	}

	sim.SetTokenOutage(false)
	if err := d.SetAccountEnabled(ctxT(t), id, false); err != nil {
		t.Fatalf("after the outage: %v", err)
	}
	if u, _ := sim.User(id); u.AccountEnabled {
		t.Fatal("account still enabled after the outage")
	}
}

// An HTTP answer from the token endpoint that refuses the credential stays
// forbidden.
func TestTokenRefusedIsForbidden(t *testing.T) {
	sim, d, _ := newSimDirectory(t, entratest.Options{}, func(c *Config) { c.ClientSecret = "wrong-secret" })
	id := sim.AddUser(entratest.User{UserPrincipalName: "bob@example.com", DisplayName: "Bob", AccountEnabled: true})
	err := d.SetAccountEnabled(ctxT(t), id, false)
	if !errors.Is(err, provisioning.ErrForbidden) {
		t.Fatalf("wrong secret: want forbidden, got %v", err)
	}
}
