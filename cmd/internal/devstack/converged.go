package devstack

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/personio-entra/personio-entra/provisioning/entra/entratest"
	"github.com/personio-entra/personio-entra/provisioning/personio"
	"github.com/personio-entra/personio-entra/rules"
)

// SeedConverged adds to the Entra simulator the account the rules ask for
// at now (time.Now when zero) for every employee the Personio simulator at
// personioURL holds: the first free UPN candidate, the mail nickname,
// accountEnabled, every mapped attribute with a value (policy always or
// on_create), employeeId, the leave date of leavers and the manager. The
// employees are read through the product's Personio client, so they are
// exactly the records the engine will evaluate.
//
// It returns the member object ids of each managed group (keyed as in the
// rules); the caller creates the groups with them.
func SeedConverged(personioURL string, ent *entratest.Server, rs *rules.Rules, now time.Time) (map[string][]string, error) {
	if now.IsZero() {
		now = time.Now()
	}
	client, err := personio.New(personio.Config{BaseURL: personioURL, ClientID: PersonioClientID,
		ClientSecret: PersonioClientSecret})
	if err != nil {
		return nil, fmt.Errorf("converged seed: personio client: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	emps, err := client.ListEmployees(ctx)
	if err != nil {
		return nil, fmt.Errorf("converged seed: read the company: %w", err)
	}
	type account struct {
		user    entratest.User
		person  string
		manager string // person id
		groups  []string
	}
	accounts := make([]account, 0, len(emps))
	taken := map[string]bool{}
	for _, e := range emps {
		d, err := rs.Evaluate(e, now)
		if err != nil {
			return nil, fmt.Errorf("converged seed: %w", err)
		}
		if !d.Exists {
			continue
		}
		var upn string
		for _, c := range d.UPNCandidates {
			if !taken[strings.ToLower(c)] {
				upn = c
				break
			}
		}
		if upn == "" {
			continue // the engine would dead-letter this person as well
		}
		taken[strings.ToLower(upn)] = true
		u := entratest.User{UserPrincipalName: upn, MailNickname: d.MailNickname,
			AccountEnabled: d.AccountEnabled, EmployeeID: e.PersonID, Properties: graphProperties(d)}
		accounts = append(accounts, account{user: u, person: e.PersonID, manager: d.ManagerPersonID, groups: d.Groups})
	}
	ids := make(map[string]string, len(accounts)) // person id → object id
	for i := range accounts {
		if v, ok := accounts[i].user.Properties["employeeId"].(string); ok && v != "" {
			accounts[i].user.EmployeeID = v
		}
		accounts[i].user.ID = ent.AddUser(accounts[i].user)
		ids[accounts[i].person] = accounts[i].user.ID
	}
	members := map[string][]string{}
	for _, a := range accounts {
		if m, ok := ids[a.manager]; ok && a.manager != "" {
			a.user.ManagerID = m
			ent.AddUser(a.user) // same id: replaces the object with its manager
		}
		for _, g := range a.groups {
			members[g] = append(members[g], a.user.ID)
		}
	}
	return members, nil
}

// graphProperties renders the desired attributes as Graph JSON the way the
// Entra adapter writes them: businessPhones as a one-element collection,
// employeeOrgData as one nested object, everything else as a string.
func graphProperties(d rules.Desired) map[string]any {
	props := map[string]any{}
	org := map[string]any{}
	for k, v := range d.Attributes {
		if v.Value == "" || v.Policy == rules.Never {
			continue
		}
		switch {
		case k == "businessPhones":
			props[k] = []string{v.Value}
		case strings.HasPrefix(k, "employeeOrgData/"):
			org[strings.TrimPrefix(k, "employeeOrgData/")] = v.Value
		default:
			props[k] = v.Value
		}
	}
	if len(org) > 0 {
		props["employeeOrgData"] = org
	}
	if !d.LeaveDate.IsZero() {
		props["employeeLeaveDateTime"] = d.LeaveDate.UTC().Format(time.RFC3339)
	}
	return props
}
