package provisioningtest

import (
	"testing"

	"github.com/personio-entra/personio-entra/provisioning/conformance"
)

func TestDayOneConformance(t *testing.T) {
	conformance.RunDayOne(t, func(t *testing.T) conformance.DayOneFixture {
		d := NewDirectory()
		d.AddMailbox("it@contoso.example")
		return conformance.DayOneFixture{
			DirectoryFixture: conformance.DirectoryFixture{Directory: d, Domain: "contoso.example"},
			Methods:          d, Mailer: d, Sender: "it@contoso.example",
			AddMethod: func(_ *testing.T, userID, typ string) { d.AddAuthMethod(userID, typ) },
			Sent: func() []string {
				var out []string
				for _, m := range d.Outbox() {
					out = append(out, m.Subject)
				}
				return out
			},
		}
	})
}
