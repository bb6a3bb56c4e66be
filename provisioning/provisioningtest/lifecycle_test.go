package provisioningtest_test

import (
	"fmt"
	"testing"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/conformance"
	"github.com/personio-entra/personio-entra/provisioning/provisioningtest"
)

// The in-memory directory meets the returner and licence contract of the
// Entra adapter.
func TestLifecycleConformance(t *testing.T) {
	conformance.RunLifecycle(t, func(t *testing.T) conformance.LifecycleFixture {
		d := provisioningtest.NewDirectory()
		n := 0
		return conformance.LifecycleFixture{
			DirectoryFixture: conformance.DirectoryFixture{Directory: d, Domain: "contoso.example",
				SeedUser: func(_ *testing.T, u provisioning.User) string { return d.AddUser(u) }},
			SeedSKU: func(_ *testing.T, seats int) string {
				n++
				part := fmt.Sprintf("CONFORMANCE_%d", n)
				d.AddSKU(provisioning.SKU{PartNumber: part, Enabled: seats, Plans: []provisioning.ServicePlan{
					{ID: fmt.Sprintf("0000aaaa-0000-4000-8000-%012d", 2*n), Name: "PLAN_A"}, {ID: fmt.Sprintf("0000aaaa-0000-4000-8000-%012d", 2*n+1), Name: "PLAN_B"}}})
				return part
			},
		}
	})
}
