package entra

import (
	"testing"

	"github.com/personio-entra/personio-entra/provisioning/conformance"
	"github.com/personio-entra/personio-entra/provisioning/entra/entratest"
)

// TestDayOneConformance runs the day-one contract (Temporary Access Pass
// and sendMail) through this adapter against the Graph simulator.
func TestDayOneConformance(t *testing.T) {
	conformance.RunDayOne(t, func(t *testing.T) conformance.DayOneFixture {
		sim, d, _ := newSimDirectory(t, entratest.Options{Domain: "contoso.example"})
		sim.SetTAPPolicy(entratest.TAPPolicy{MinLifetime: 10, MaxLifetime: 43200})
		sender := sim.AddUser(entratest.User{UserPrincipalName: "it@contoso.example", Mail: "it@contoso.example", AccountEnabled: true})
		_ = sender
		return conformance.DayOneFixture{
			DirectoryFixture: conformance.DirectoryFixture{Directory: d, Domain: "contoso.example"},
			Methods:          d, Mailer: d, Sender: "it@contoso.example",
			AddMethod: func(_ *testing.T, userID, typ string) { sim.AddAuthMethod(userID, typ) },
			Sent: func() []string {
				var out []string
				for _, m := range sim.Outbox() {
					out = append(out, m.Subject)
				}
				return out
			},
		}
	})
}
