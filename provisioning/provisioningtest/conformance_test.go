package provisioningtest_test

import (
	"github.com/personio-entra/personio-entra/provisioning/model"
	"testing"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/conformance"
	"github.com/personio-entra/personio-entra/provisioning/provisioningtest"
)

// The in-memory directory meets the same contract as the Entra adapter.
func TestDirectoryConformance(t *testing.T) {
	conformance.RunDirectory(t, func(t *testing.T) conformance.DirectoryFixture {
		d := provisioningtest.NewDirectory()
		return conformance.DirectoryFixture{
			Directory: d,
			Domain:    "contoso.example",
			Group:     d.AddGroup(provisioning.Group{DisplayName: "Conformance"}),
			SeedUser:  func(_ *testing.T, u provisioning.User) string { return d.AddUser(u) },
			SeedGroup: func(_ *testing.T, name string, unmanageable bool) string {
				g := provisioning.Group{DisplayName: name}
				if unmanageable {
					g.Unmanageable = "the group is a distribution list, whose membership Graph cannot change"
				}
				return d.AddGroup(g)
			},
		}
	})
}

// The in-memory source meets the same contract as the Personio client.
func TestSourceConformance(t *testing.T) {
	conformance.RunSource(t, func(t *testing.T) conformance.SourceFixture {
		s := provisioningtest.NewSource(
			model.Employee{PersonID: "1", FirstName: "Ada", LastName: "Lovelace", Email: "ada@example.com", Status: "ACTIVE"},
			model.Employee{PersonID: "2", FirstName: "Bob", LastName: "Builder", Status: "ONBOARDING", SupervisorID: "1"},
			model.Employee{PersonID: "3", FirstName: "Cy", LastName: "Gone", Status: "INACTIVE"},
		)
		return conformance.SourceFixture{Source: s, Remove: func(_ *testing.T, id string) { s.Remove(id) }}
	})
}
