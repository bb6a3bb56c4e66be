package provisioning_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/provisioningtest"
	"github.com/personio-entra/personio-entra/rules"
)

type okChecker struct{}

func (okChecker) Check(context.Context) error { return nil }

type granted struct {
	perms []string
	err   error
}

func (g granted) GrantedPermissions(context.Context) ([]string, error) { return g.perms, g.err }

// check reports each missing permission of each enabled feature, and the
// rules' licences that the tenant does not have, before anything runs.
func TestPreflightPermissions(t *testing.T) {
	r, err := rules.LoadBytes("rules.yaml", []byte(strings.Replace(lifecycleRules, "%s", "rename", 1)+licenseSection))
	if err != nil {
		t.Fatal(err)
	}
	dir := provisioningtest.NewDirectory()
	dir.AddGroup(provisioning.Group{DisplayName: "Finance"})
	dir.AddSKU(provisioning.SKU{PartNumber: "SPE_E3", Enabled: 5, Plans: []provisioning.ServicePlan{{ID: "p1", Name: "YAMMER_ENTERPRISE"}}})
	needs := provisioning.PermissionNeeds(r, provisioning.PermissionOptions{LeaveDate: true})
	all := []string{"User.ReadWrite.All", "GroupMember.ReadWrite.All", "Group.Read.All", "User.RevokeSessions.All", "User-LifeCycleInfo.ReadWrite.All", "LicenseAssignment.Read.All"}
	tests := []struct {
		name     string
		perms    granted
		problems []string // substrings, one per problem, in order
		passed   string
	}{
		{"everything granted", granted{perms: all}, nil, "(accounts, returners, managed groups, leavers, leave date (ENTRA_RECORD_LEAVE_DATE), renames (upn.on_name_change: rename), licences)"},
		{"broad Directory permissions suffice", granted{perms: []string{"Directory.ReadWrite.All", "User-LifeCycleInfo.ReadWrite.All"}}, nil, "every enabled feature"},
		{"no licence read, no leave date", granted{perms: []string{"User.ReadWrite.All", "GroupMember.ReadWrite.All", "Group.Read.All"}}, []string{
			"permission: leave date (ENTRA_RECORD_LEAVE_DATE) needs the Microsoft Graph application permission User-LifeCycleInfo.ReadWrite.All",
			"permission: licences needs the Microsoft Graph application permission LicenseAssignment.Read.All (or one of Organization.Read.All",
		}, ""},
		{"nothing but reads", granted{perms: []string{"User.Read.All", "Group.Read.All", "LicenseAssignment.Read.All", "User-LifeCycleInfo.ReadWrite.All"}}, []string{
			"permission: accounts needs the Microsoft Graph application permission User.ReadWrite.All",
			"permission: returners needs the Microsoft Graph application permission User.DeleteRestore.All",
			"permission: managed groups needs the Microsoft Graph application permission GroupMember.ReadWrite.All",
			"permission: leavers needs the Microsoft Graph application permission User.RevokeSessions.All",
			"permission: renames (upn.on_name_change: rename) needs",
			"permission: licences needs the Microsoft Graph application permission LicenseAssignment.ReadWrite.All",
		}, ""},
		{"token unreadable", granted{err: errors.New("the access token is not a JWT")}, []string{"the app's permissions cannot be read from its token: the access token is not a JWT"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			passed, problems := provisioning.Preflight{Personio: okChecker{}, Entra: okChecker{}, Directory: dir, Rules: r, Permissions: tt.perms, Needs: needs}.Run(context.Background())
			if len(problems) != len(tt.problems) {
				t.Fatalf("problems:\n%s\nwant %d", strings.Join(problems, "\n"), len(tt.problems))
			}
			for i, want := range tt.problems {
				if !strings.Contains(problems[i], want) {
					t.Errorf("problem %d:\n got %s\nwant ...%s...", i, problems[i], want)
				}
			}
			if tt.passed != "" && !strings.Contains(strings.Join(passed, "\n"), tt.passed) {
				t.Errorf("passed:\n%s\nwant ...%s...", strings.Join(passed, "\n"), tt.passed)
			}
		})
	}

	t.Run("a licence the tenant lacks, named with its line", func(t *testing.T) {
		other := provisioningtest.NewDirectory()
		other.AddGroup(provisioning.Group{DisplayName: "Finance"})
		other.AddSKU(provisioning.SKU{PartNumber: "SPE_E5", Enabled: 5})
		_, problems := provisioning.Preflight{Personio: okChecker{}, Entra: okChecker{}, Directory: other, Rules: r}.Run(context.Background())
		if len(problems) != 1 || !strings.HasPrefix(problems[0], `rules.yaml:24:12: licence "SPE_E3": the tenant has no subscription`) {
			t.Errorf("problems %q", problems)
		}
	})
}
