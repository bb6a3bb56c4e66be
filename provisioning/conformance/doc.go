// Package conformance is the contract test suite of the engine's two
// adapters, in the manner of dex's storage/conformance: every
// implementation of provisioning.Directory and provisioning.Source runs
// the same exported suite, so that the in-memory test doubles
// (provisioning/provisioningtest), the adapters against their simulators
// (entratest, personiotest) and the adapters against the real services
// are held to one behaviour.
//
//	conformance.RunDirectory(t, func(t *testing.T) conformance.DirectoryFixture { ... })
//	conformance.RunSource(t, func(t *testing.T) conformance.SourceFixture { ... })
//
// The suites create what they need with unique names and clean up after
// themselves, so that they can run against a real tenant. Checks that need
// objects the interface cannot create (guests, accounts synced from
// on-premises, unmanageable groups) use the fixture's seeding hooks and are
// skipped when a fixture has none.
package conformance
