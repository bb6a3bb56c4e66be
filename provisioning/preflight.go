package provisioning

import (
	"context"
	"strings"

	"github.com/personio-entra/personio-entra/rules"
)

// Checker is an adapter that can test its own access with one harmless
// read (the Personio and Entra clients implement it).
type Checker interface {
	Check(ctx context.Context) error
}

// Preflight is what `personio-entra check` tests against the live services.
type Preflight struct {
	Personio  Checker
	Entra     Checker
	Directory Directory // resolves the managed groups
	Rules     *rules.Rules
	// Permissions and Needed check the application permissions of the
	// day-one pass and the notifications (notify_preflight.go).
	Permissions PermissionReader
	Needed      []NeededPermission
}

// Run tests access to Personio and Graph and, when Graph answers, that
// every managed group exists and its members can be managed. It returns one
// line per check that passed and every problem found, each on its own line.
func (p Preflight) Run(ctx context.Context) (passed, problems []string) {
	if err := p.Personio.Check(ctx); err != nil {
		problems = append(problems, "Personio: "+err.Error())
	} else {
		passed = append(passed, "Personio API reachable with the configured credential")
	}
	if err := p.Entra.Check(ctx); err != nil {
		return passed, append(problems, "Entra: "+err.Error())
	}
	passed = append(passed, "Microsoft Graph reachable with the configured app registration")
	pp, pr := p.checkPermissions(ctx)
	passed, problems = append(passed, pp...), append(problems, pr...)
	err := p.Rules.CheckGroups(ctx, func(ctx context.Context, key string) (string, string, error) {
		g, err := LookupGroup(ctx, p.Directory, key)
		return g.ID, g.Unmanageable, err
	})
	if err != nil {
		return passed, append(problems, strings.Split(err.Error(), "\n")...)
	}
	return append(passed, "every managed group exists and its members can be managed through Graph"), problems
}
