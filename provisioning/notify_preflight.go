package provisioning

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/personio-entra/personio-entra/rules"
)

// NeededPermission is an application permission a configured feature
// needs: any one of AnyOf will do.
type NeededPermission struct {
	AnyOf []string
	For   string
}

// NeededPermissions lists the permissions the rules' day-one pass and
// e-mail notifications need beyond the base set.
func NeededPermissions(r *rules.Rules, mailbox string) []NeededPermission {
	var out []NeededPermission
	if r.FirstSignIn().Enabled {
		out = append(out, NeededPermission{AnyOf: []string{"UserAuthenticationMethod.ReadWrite.All"},
			For: "first_sign_in: list authentication methods and issue the Temporary Access Pass"})
	}
	if mailbox != "" && (r.FirstSignIn().Enabled || r.Notifications().UsesEmail()) {
		out = append(out, NeededPermission{AnyOf: []string{"Mail.Send"}, For: "e-mail notifications sent as " + mailbox})
	}
	return out
}

// checkPermissions reports each needed permission the app's token lacks.
func (p Preflight) checkPermissions(ctx context.Context) (passed, problems []string) {
	if len(p.Needed) == 0 || p.Permissions == nil {
		return nil, nil
	}
	granted, err := p.Permissions.GrantedPermissions(ctx)
	if err != nil {
		return nil, []string{"Entra: cannot read the granted application permissions: " + err.Error()}
	}
	for _, n := range p.Needed {
		if !slices.ContainsFunc(n.AnyOf, func(s string) bool { return slices.Contains(granted, s) }) {
			problems = append(problems, fmt.Sprintf("Entra: the app registration lacks the application permission %s (with admin consent), needed for %s",
				strings.Join(n.AnyOf, " or "), n.For))
			continue
		}
		passed = append(passed, fmt.Sprintf("application permission for %s granted", n.For))
	}
	return passed, problems
}
