package entra

import (
	"context"
	"strings"

	"github.com/personio-entra/personio-entra/provisioning"
)

// The complete sync's bulk reads, each one delta round that also yields the
// link the incremental sync follows next
// (https://learn.microsoft.com/en-us/graph/delta-query-overview: a round
// through nextLinks ends with the deltaLink for the changes after it).

var _ provisioning.BulkReader = (*Directory)(nil)

// ListUsersDelta is ListUsers that also returns the round's deltaLink: the
// users delta link for the changes made since the read began.
func (d *Directory) ListUsersDelta(ctx context.Context) ([]provisioning.User, string, error) {
	return d.listUsers(ctx)
}

// GroupMembersRound reads the user members of up to MaxDeltaGroups groups in
// one groups delta round (GET /groups/delta?$select=members&$filter=id eq
// '…' or …, https://learn.microsoft.com/en-us/graph/api/group-delta) and
// returns them by group id with the round's deltaLink. Graph splits a big
// group's members@delta over several pages and may send the parts in any
// order among other groups
// (https://learn.microsoft.com/en-us/graph/delta-query-groups#paging-through-members-in-a-large-group),
// so the parts are merged by group id. A group missing from the answer
// (deleted meanwhile) is missing from the map.
func (d *Directory) GroupMembersRound(ctx context.Context, groupIDs []string) (map[string][]string, string, error) {
	const op = "group members round"
	filter, err := groupsFilter(op, groupIDs)
	if err != nil {
		return nil, "", err
	}
	ctx = withOp(ctx, "groups_delta_read")
	link := d.deltaURL("groups", [][2]string{{"$select", "members"}, {"$filter", filter}})
	sets := map[string]map[string]bool{}
	next, err := d.groupsDeltaPages(ctx, op, link, func(gid string, refs []deltaRef) {
		set := sets[gid]
		if set == nil {
			set = map[string]bool{}
			sets[gid] = set
		}
		for _, m := range refs {
			if m.removed {
				delete(set, m.id)
			} else {
				set[m.id] = true
			}
		}
	})
	if err != nil {
		return nil, "", err
	}
	out := make(map[string][]string, len(sets))
	for gid, set := range sets {
		ids := make([]string, 0, len(set))
		for id := range set {
			ids = append(ids, id)
		}
		out[gid] = ids
	}
	return out, next, nil
}

// interner keeps one copy of each string a complete read repeats: the
// attribute values many users share (department, company, office,
// country...) and the ids that come back as managers. The strings the SDK
// decodes are each a fresh allocation; for 50,000 users the copies add up.
type interner map[string]string

func (in interner) str(s string) string {
	if s == "" {
		return ""
	}
	if v, ok := in[s]; ok {
		return v
	}
	s = strings.Clone(s) // not a view into a larger decoded buffer
	in[s] = s
	return s
}

// shared are the properties whose values many users share; the others
// (names, mail, ids) are unique, and interning them would only cost.
var shared = map[string]bool{"jobTitle": true, "department": true, "companyName": true, "officeLocation": true,
	"employeeType": true, "usageLocation": true, "preferredLanguage": true, "city": true, "state": true,
	"country": true, "postalCode": true, "streetAddress": true, "employeeHireDate": true,
	"employeeOrgData/division": true, "employeeOrgData/costCenter": true}

// user interns the strings of u that repeat across users.
func (in interner) user(u *provisioning.User) {
	u.ManagerID = in.str(u.ManagerID)
	u.UserType = in.str(u.UserType)
	for k, v := range u.Attributes {
		if shared[k] {
			u.Attributes[k] = in.str(v)
		}
	}
}
