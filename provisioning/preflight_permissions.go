package provisioning

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/personio-entra/personio-entra/rules"
)

// PermissionReader reads the application permissions granted to the app
// (the roles claim of its Graph token; provisioning/entra implements it).
type PermissionReader interface {
	GrantedPermissions(ctx context.Context) ([]string, error)
}

// PermissionNeed is what one enabled feature needs: one of AnyOf, the
// documented least privileged permission first.
type PermissionNeed struct {
	Feature string   // e.g. "licences"
	For     string   // what the permission is used for
	AnyOf   []string // application permissions, any of which suffices
}

// PermissionOptions are the settings outside the rules that enable
// features (ENTRA_RECORD_LEAVE_DATE, ENTRA_ROLE_ASSIGNABLE_GROUPS).
type PermissionOptions struct {
	LeaveDate            bool
	RoleAssignableGroups bool
	// NotifyMailbox is the mailbox notifications are sent from
	// (NOTIFY_MAILBOX); "" sends no e-mail.
	NotifyMailbox string
}

// PermissionNeeds lists the permissions of every feature the rules and
// options enable, as Microsoft documents them for the Graph calls each
// feature makes.
func PermissionNeeds(r *rules.Rules, o PermissionOptions) []PermissionNeed {
	writeUsers := []string{"User.ReadWrite.All", "Directory.ReadWrite.All"}
	needs := []PermissionNeed{
		{"accounts", "create, update, disable and delete users, set managers (https://learn.microsoft.com/en-us/graph/api/user-post-users)", writeUsers},
		{"returners", "find deleted users (https://learn.microsoft.com/en-us/graph/api/directory-deleteditems-list)",
			[]string{"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}},
		{"returners", "restore deleted users (https://learn.microsoft.com/en-us/graph/api/directory-deleteditems-restore)",
			[]string{"User.DeleteRestore.All", "User.ReadWrite.All", "Directory.ReadWrite.All"}},
	}
	if len(r.ManagedGroups()) > 0 {
		needs = append(needs,
			PermissionNeed{"managed groups", "add and remove members (https://learn.microsoft.com/en-us/graph/api/group-post-members)",
				[]string{"GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"}},
			PermissionNeed{"managed groups", "read the groups' types to refuse the ones Graph cannot manage",
				[]string{"Group.Read.All", "Group.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}})
	}
	if r.Lifecycle().Leaver.RevokeSessions {
		needs = append(needs, PermissionNeed{"leavers", "revoke sign-in sessions (https://learn.microsoft.com/en-us/graph/api/user-revokesigninsessions)",
			[]string{"User.RevokeSessions.All", "User.ReadWrite.All", "Directory.ReadWrite.All"}})
	}
	if o.LeaveDate {
		needs = append(needs, PermissionNeed{"leave date (ENTRA_RECORD_LEAVE_DATE)", "read and write employeeLeaveDateTime",
			[]string{"User-LifeCycleInfo.ReadWrite.All"}})
	}
	if o.RoleAssignableGroups {
		needs = append(needs, PermissionNeed{"role-assignable groups (ENTRA_ROLE_ASSIGNABLE_GROUPS)", "change the members of role-assignable groups",
			[]string{"RoleManagement.ReadWrite.Directory"}})
	}
	if r.OnNameChange() == rules.RenameUPN {
		needs = append(needs, PermissionNeed{"renames (upn.on_name_change: rename)", "change userPrincipalName and mailNickname (https://learn.microsoft.com/en-us/graph/api/user-update)", writeUsers})
	}
	if len(r.ManagedLicenses()) > 0 {
		needs = append(needs,
			PermissionNeed{"licences", "read the tenant's subscriptions (https://learn.microsoft.com/en-us/graph/api/subscribedsku-list)",
				[]string{"LicenseAssignment.Read.All", "Organization.Read.All", "Organization.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}},
			PermissionNeed{"licences", "assign and remove licences (https://learn.microsoft.com/en-us/graph/api/user-assignlicense)",
				[]string{"LicenseAssignment.ReadWrite.All", "User.ReadWrite.All", "Directory.ReadWrite.All"}})
	}
	if r.FirstSignIn().Enabled {
		needs = append(needs, PermissionNeed{"day-one pass (first_sign_in)", "list authentication methods and issue the Temporary Access Pass (https://learn.microsoft.com/en-us/graph/api/authentication-post-temporaryaccesspassmethods)",
			[]string{"UserAuthenticationMethod.ReadWrite.All"}})
	}
	if o.NotifyMailbox != "" && (r.FirstSignIn().Enabled || r.Notifications().UsesEmail()) {
		needs = append(needs, PermissionNeed{"e-mail notifications", "send mail as " + o.NotifyMailbox + " (https://learn.microsoft.com/en-us/graph/api/user-sendmail)",
			[]string{"Mail.Send"}})
	}
	return needs
}

// missingPermissions returns one problem per need none of whose
// permissions is granted.
func missingPermissions(needs []PermissionNeed, granted []string) []string {
	var problems []string
	for _, n := range needs {
		if slices.ContainsFunc(n.AnyOf, func(p string) bool {
			return slices.ContainsFunc(granted, func(g string) bool { return strings.EqualFold(g, p) })
		}) {
			continue
		}
		alt := ""
		if len(n.AnyOf) > 1 {
			alt = " (or one of " + strings.Join(n.AnyOf[1:], ", ") + ")"
		}
		problems = append(problems, fmt.Sprintf("permission: %s needs the Microsoft Graph application permission %s%s to %s; grant it to the app registration and grant admin consent",
			n.Feature, n.AnyOf[0], alt, n.For))
	}
	return problems
}

// checkPermissions reports each missing permission of each enabled feature.
func (p Preflight) checkPermissions(ctx context.Context) (passed, problems []string) {
	if p.Permissions == nil || len(p.Needs) == 0 {
		return nil, nil
	}
	granted, err := p.Permissions.GrantedPermissions(ctx)
	if err != nil {
		return nil, []string{"Entra: the app's permissions cannot be read from its token: " + err.Error()}
	}
	problems = missingPermissions(p.Needs, granted)
	if len(problems) == 0 {
		var features []string
		for _, n := range p.Needs {
			if !slices.Contains(features, n.Feature) {
				features = append(features, n.Feature)
			}
		}
		passed = append(passed, "the app holds the Graph permissions of every enabled feature ("+strings.Join(features, ", ")+")")
	}
	return passed, problems
}

// checkLicenses resolves the rules' licences in the tenant: every SKU part
// number must be a subscription of the tenant and every disabled plan a
// plan of its SKU (problems with file:line:col).
func (p Preflight) checkLicenses(ctx context.Context) (passed, problems []string) {
	if len(p.Rules.ManagedLicenses()) == 0 {
		return nil, nil
	}
	ld, ok := unwrapDirectory(p.Directory).(Licenses)
	if !ok {
		return nil, []string{"licences: the directory cannot read subscriptions or assign licences"}
	}
	skus, err := ld.SubscribedSkus(ctx)
	if err != nil {
		return nil, []string{"licences: read the tenant's subscriptions: " + err.Error()}
	}
	err = p.Rules.CheckLicenses(ctx, func(_ context.Context, part string) (string, []string, bool, error) {
		i := slices.IndexFunc(skus, func(s SKU) bool { return strings.EqualFold(s.PartNumber, part) })
		if i < 0 {
			return "", nil, false, nil
		}
		names := make([]string, len(skus[i].Plans))
		for j, pl := range skus[i].Plans {
			names[j] = pl.Name
		}
		return skus[i].ID, names, true, nil
	})
	var re *rules.Error
	if errors.As(err, &re) {
		for _, pr := range re.Problems {
			problems = append(problems, pr.String())
		}
		return nil, problems
	}
	if err != nil {
		return nil, []string{err.Error()}
	}
	var free []string
	for _, l := range p.Rules.ManagedLicenses() {
		for _, s := range skus {
			if strings.EqualFold(s.PartNumber, l.SKU) {
				free = append(free, fmt.Sprintf("%s %d free", s.PartNumber, s.Enabled-s.Consumed))
			}
		}
	}
	return []string{"every managed licence is a subscription of the tenant (" + strings.Join(free, ", ") + ")"}, nil
}
