package entra

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/rules"
)

// Properties besides rules.Properties that the adapter reads and writes.
const propLeaveDate = "employeeLeaveDateTime"

// userSelect is $select for every user read: the compared properties
// (rules.Properties, nested ones by their parent) plus identity and state,
// and employeeLeaveDateTime when the app may read it (reading it without
// User-LifeCycleInfo.Read.All fails the whole request,
// docs/graph-behaviour.md#user-property-limits).
func (d *Directory) userSelect() []string {
	sel := []string{"id", "userPrincipalName", "mail", "accountEnabled", "employeeId", "onPremisesSyncEnabled", "userType"}
	if d.leaveDate {
		sel = append(sel, propLeaveDate)
	}
	if d.licenses {
		sel = append(sel, "assignedLicenses")
	}
	seen := map[string]bool{}
	for _, s := range sel {
		seen[s] = true
	}
	for _, p := range rules.Properties {
		p, _, _ = strings.Cut(p, "/")
		if !seen[p] {
			seen[p] = true
			sel = append(sel, p)
		}
	}
	return sel
}

// escapeOData doubles single quotes for a string literal in $filter.
func escapeOData(s string) string { return strings.ReplaceAll(s, "'", "''") }

// stringSetters map the plain string properties to their model setters.
var stringSetters = map[string]func(models.Userable, *string){
	"displayName":       func(u models.Userable, v *string) { u.SetDisplayName(v) },
	"givenName":         func(u models.Userable, v *string) { u.SetGivenName(v) },
	"surname":           func(u models.Userable, v *string) { u.SetSurname(v) },
	"jobTitle":          func(u models.Userable, v *string) { u.SetJobTitle(v) },
	"department":        func(u models.Userable, v *string) { u.SetDepartment(v) },
	"companyName":       func(u models.Userable, v *string) { u.SetCompanyName(v) },
	"officeLocation":    func(u models.Userable, v *string) { u.SetOfficeLocation(v) },
	"employeeId":        func(u models.Userable, v *string) { u.SetEmployeeId(v) },
	"employeeType":      func(u models.Userable, v *string) { u.SetEmployeeType(v) },
	"usageLocation":     func(u models.Userable, v *string) { u.SetUsageLocation(v) },
	"preferredLanguage": func(u models.Userable, v *string) { u.SetPreferredLanguage(v) },
	"mobilePhone":       func(u models.Userable, v *string) { u.SetMobilePhone(v) },
	"streetAddress":     func(u models.Userable, v *string) { u.SetStreetAddress(v) },
	"city":              func(u models.Userable, v *string) { u.SetCity(v) },
	"postalCode":        func(u models.Userable, v *string) { u.SetPostalCode(v) },
	"state":             func(u models.Userable, v *string) { u.SetState(v) },
	"country":           func(u models.Userable, v *string) { u.SetCountry(v) },
	"mail":              func(u models.Userable, v *string) { u.SetMail(v) },
	// A rename (provisioning/rename.go) writes both.
	"userPrincipalName": func(u models.Userable, v *string) { u.SetUserPrincipalName(v) },
	"mailNickname":      func(u models.Userable, v *string) { u.SetMailNickname(v) },
}

var stringGetters = map[string]func(models.Userable) *string{
	"displayName":       models.Userable.GetDisplayName,
	"givenName":         models.Userable.GetGivenName,
	"surname":           models.Userable.GetSurname,
	"jobTitle":          models.Userable.GetJobTitle,
	"department":        models.Userable.GetDepartment,
	"companyName":       models.Userable.GetCompanyName,
	"officeLocation":    models.Userable.GetOfficeLocation,
	"employeeId":        models.Userable.GetEmployeeId,
	"employeeType":      models.Userable.GetEmployeeType,
	"usageLocation":     models.Userable.GetUsageLocation,
	"preferredLanguage": models.Userable.GetPreferredLanguage,
	"mobilePhone":       models.Userable.GetMobilePhone,
	"streetAddress":     models.Userable.GetStreetAddress,
	"city":              models.Userable.GetCity,
	"postalCode":        models.Userable.GetPostalCode,
	"state":             models.Userable.GetState,
	"country":           models.Userable.GetCountry,
}

// parseDateTime accepts RFC 3339 or a plain date (midnight UTC).
func parseDateTime(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.DateOnly, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("want RFC 3339 date-time or YYYY-MM-DD, got %q", v)
	}
	return t, nil
}

// applyChanges sets the given properties on a fresh model. A nil value sets
// the property to nil, which the backing store serialises as JSON null
// (docs/graph-behaviour.md#sdk-clearing-a-property; proven on the wire in
// TestUpdateClearSendsNull).
// orgData carries the full employeeOrgData when one of its members changes.
func applyChanges(u models.Userable, changes map[string]*string, orgData map[string]*string) error {
	for k, v := range changes {
		switch {
		case stringSetters[k] != nil:
			stringSetters[k](u, v)
		case k == "businessPhones":
			// A collection: one value (Graph accepts only one,
			// docs/graph-behaviour.md#user-property-limits);
			// clearing is the empty collection.
			if v == nil || *v == "" {
				u.SetBusinessPhones([]string{})
			} else {
				u.SetBusinessPhones([]string{*v})
			}
		case k == "employeeHireDate" || k == propLeaveDate:
			var t *time.Time
			if v != nil && *v != "" {
				p, err := parseDateTime(*v)
				if err != nil {
					return fmt.Errorf("property %s: %w", k, err)
				}
				t = &p
			}
			if k == propLeaveDate {
				u.SetEmployeeLeaveDateTime(t)
			} else {
				u.SetEmployeeHireDate(t)
			}
		case k == "employeeOrgData/division" || k == "employeeOrgData/costCenter":
			// handled below as one nested object
		default:
			return fmt.Errorf("property %q cannot be written (see rules.Properties)", k)
		}
	}
	if orgData != nil {
		od := models.NewEmployeeOrgData()
		od.SetDivision(orgData["division"])
		od.SetCostCenter(orgData["costCenter"])
		u.SetEmployeeOrgData(od)
	}
	return nil
}

func nonEmpty(v *string) *string {
	if v == nil || *v == "" {
		return nil
	}
	return v
}

// toUser maps a Graph user to the engine's view.
func toUser(u models.Userable) provisioning.User {
	out := provisioning.User{
		ID:                deref(u.GetId()),
		UserPrincipalName: deref(u.GetUserPrincipalName()),
		Mail:              deref(u.GetMail()),
		EmployeeID:        deref(u.GetEmployeeId()),
		UserType:          deref(u.GetUserType()),
		Attributes:        map[string]string{},
	}
	if b := u.GetAccountEnabled(); b != nil {
		out.AccountEnabled = *b
	}
	if b := u.GetOnPremisesSyncEnabled(); b != nil {
		out.OnPremisesSync = *b
	}
	if m := u.GetManager(); m != nil {
		out.ManagerID = deref(m.GetId())
		if mu, ok := m.(models.Userable); ok {
			out.ManagerEmployeeID = deref(mu.GetEmployeeId())
		} else if v, ok := m.GetAdditionalData()["employeeId"].(*string); ok {
			out.ManagerEmployeeID = deref(v)
		}
	}
	for k, get := range stringGetters {
		if v := deref(get(u)); v != "" {
			out.Attributes[k] = v
		}
	}
	if p := u.GetBusinessPhones(); len(p) > 0 && p[0] != "" {
		out.Attributes["businessPhones"] = p[0]
	}
	if t := u.GetEmployeeHireDate(); t != nil {
		out.Attributes["employeeHireDate"] = t.UTC().Format(time.RFC3339)
	}
	if t := u.GetEmployeeLeaveDateTime(); t != nil {
		out.Attributes[propLeaveDate] = t.UTC().Format(time.RFC3339)
	}
	out.Licenses = assignedLicenses(u.GetAssignedLicenses())
	if od := u.GetEmployeeOrgData(); od != nil {
		if v := deref(od.GetDivision()); v != "" {
			out.Attributes["employeeOrgData/division"] = v
		}
		if v := deref(od.GetCostCenter()); v != "" {
			out.Attributes["employeeOrgData/costCenter"] = v
		}
	}
	return out
}

// managerExpand reads the manager's id and employeeId with the user.
const managerExpand = "manager($select=id,employeeId)"

// FindUsers returns every user whose key property equals value (default
// query mode: employeeId, userPrincipalName and mail support eq without
// ConsistencyLevel, docs/graph-behaviour.md#query-modes). The manager is expanded (one level,
// id only), so at most 100 users come per page.
func (d *Directory) FindUsers(ctx context.Context, key, value string) ([]provisioning.User, error) {
	op := "find users by " + key
	switch key {
	case "employeeId", "userPrincipalName", "mail":
	default:
		return nil, &provisioning.DirectoryError{Kind: provisioning.KindRejected, Op: op,
			Message: "key must be employeeId, userPrincipalName or mail"}
	}
	ctx = withOp(ctx, "find_users")
	filter := fmt.Sprintf("%s eq '%s'", key, escapeOData(value))
	top := int32(100)
	resp, err := d.client.Users().Get(ctx, &users.UsersRequestBuilderGetRequestConfiguration{
		QueryParameters: &users.UsersRequestBuilderGetQueryParameters{
			Filter: &filter, Select: d.userSelect(), Top: &top, Expand: []string{managerExpand},
		},
	})
	out := []provisioning.User{}
	for {
		if err != nil {
			return nil, d.fail(op, err)
		}
		for _, u := range resp.GetValue() {
			out = append(out, toUser(u))
		}
		next := resp.GetOdataNextLink()
		if next == nil || *next == "" {
			return out, nil
		}
		resp, err = d.client.Users().WithUrl(*next).Get(ctx, nil)
	}
}

// GetUser reads one user by object id, with the manager's id.
func (d *Directory) GetUser(ctx context.Context, id string) (provisioning.User, error) {
	ctx = withOp(ctx, "get_user")
	var u models.Userable
	err := d.replicationRetry(ctx, []string{id}, func() error {
		var err error
		u, err = d.client.Users().ByUserId(id).Get(ctx, &users.UserItemRequestBuilderGetRequestConfiguration{
			QueryParameters: &users.UserItemRequestBuilderGetQueryParameters{
				Select: d.userSelect(), Expand: []string{managerExpand},
			},
		})
		if err != nil {
			return d.fail("get user", err)
		}
		return nil
	})
	if err != nil {
		return provisioning.User{}, err
	}
	return toUser(u), nil
}

// ListUsers returns every user with an employeeId, with the manager's id
// and employeeId (looked up among all users read, no extra request).
//
// Request count: it reads the users/delta function with $select including
// "manager". Delta answers pages of up to 200 users and reports each user's
// manager as manager@delta, so 10,000 users cost 50 requests. The
// alternatives cost more: $expand=manager caps pages at 100 objects
// (100 requests) and a per-user GET /manager would be 10,000. $filter on
// employeeId ne null needs advanced query mode, which cannot be combined with
// $expand or delta (docs/graph-behaviour.md#query-modes), so users without employeeId are dropped
// here. Delta may repeat a user across pages; the last copy wins.
func (d *Directory) ListUsers(ctx context.Context) ([]provisioning.User, error) {
	users, _, err := d.listUsers(ctx)
	return users, err
}

// listUsers is ListUsers with the round's deltaLink.
func (d *Directory) listUsers(ctx context.Context) ([]provisioning.User, string, error) {
	ctx = withOp(ctx, "list_users")
	sel := append(d.userSelect(), "manager")
	if !d.licenses && provisioning.AssignedLicensesWanted(ctx) {
		sel = append(sel, "assignedLicenses") // the rules preview of a candidate with licences
	}
	resp, err := d.client.Users().Delta().GetAsDeltaGetResponse(ctx, &users.DeltaRequestBuilderGetRequestConfiguration{
		QueryParameters: &users.DeltaRequestBuilderGetQueryParameters{Select: sel},
	})
	byID := map[string]int{}
	empOf := map[string]string{} // every user's employeeId, for ManagerEmployeeID
	in := interner{}             // one copy of each repeated string (bulkread.go)
	var out []provisioning.User
	pages := 0
	for {
		if err != nil {
			return nil, "", d.fail(fmt.Sprintf("list users (page %d)", pages+1), err)
		}
		pages++
		for _, u := range resp.GetValue() {
			if _, removed := u.GetAdditionalData()["@removed"]; removed {
				continue
			}
			pu := toUser(u)
			pu.ManagerID = deltaManager(u.GetAdditionalData())
			in.user(&pu)
			if pu.ID != "" {
				empOf[pu.ID] = pu.EmployeeID
			}
			if pu.EmployeeID == "" || pu.ID == "" {
				continue
			}
			if i, ok := byID[pu.ID]; ok {
				out[i] = pu
				continue
			}
			byID[pu.ID] = len(out)
			out = append(out, pu)
		}
		next := resp.GetOdataNextLink()
		if next == nil || *next == "" {
			break
		}
		resp, err = d.client.Users().Delta().WithUrl(*next).GetAsDeltaGetResponse(ctx, nil)
	}
	for i := range out {
		out[i].ManagerEmployeeID = empOf[out[i].ManagerID]
	}
	d.log.Debug("listed users", "users", len(out), "pages", pages)
	return out, deref(resp.GetOdataDeltaLink()), nil
}

// deltaManager reads manager@delta: [{"@odata.type": ..., "id": ...}].
func deltaManager(add map[string]any) string {
	v, ok := add["manager@delta"]
	if !ok {
		return ""
	}
	list, _ := v.([]any)
	for _, item := range list {
		m, _ := item.(map[string]any)
		if _, removed := m["@removed"]; removed {
			continue
		}
		switch id := m["id"].(type) {
		case *string:
			return deref(id)
		case string:
			return id
		}
	}
	return ""
}

// CreateUser creates an account with a random strong password that must be
// changed at first sign-in. All initial properties go into the create body
// so no follow-up write is needed (docs/graph-behaviour.md#replication-delay).
//
// A create is never sent twice blindly: a 429 (refused before processing)
// is retried; after a lost response (timeout, reset, 5xx) the user is looked
// up by UPN first, and only re-sent when it is not there. An ObjectConflict
// on the UPN adopts the existing account only when it carries the same
// employeeId (it is this create's earlier, lost success, waited for through
// the replication window); otherwise it is ErrConflict.
func (d *Directory) CreateUser(ctx context.Context, nu provisioning.NewUser) (provisioning.User, error) {
	const op = "create user"
	body, err := d.newUserBody(nu)
	if err != nil {
		return provisioning.User{}, &provisioning.DirectoryError{Kind: provisioning.KindRejected, Op: op, Message: err.Error(), Err: err}
	}
	wantEmp := nu.Attributes["employeeId"]
	ctx = withOp(ctx, "create_user")
	const maxCreates = 3
	lost := false
	for attempt := 1; ; attempt++ {
		created, err := d.client.Users().Post(onlyThrottleRetries(ctx), body, nil)
		if err == nil {
			u := toUser(created)
			d.markCreated(u.ID)
			d.log.Info("user created", "user_id", u.ID, "upn", u.UserPrincipalName)
			return u, nil
		}
		g, isGraph := inspect(err)
		switch {
		case isGraph && g.isConflict() && g.target == "userPrincipalName":
			if u, ok := d.adopt(ctx, nu.UserPrincipalName, wantEmp, lost); ok {
				return u, nil
			}
			return provisioning.User{}, d.fail(op, err)
		case ctx.Err() == nil && lostResponse(err) && attempt < maxCreates:
			// One immediate look-up; if the user is not readable yet, the
			// re-sent create is still safe: UPN uniqueness is enforced at
			// write time, so a landed first create turns the second into an
			// ObjectConflict, which then waits for the user to replicate.
			lost = true
			d.log.Warn("user create response lost; looking the user up before re-sending", "upn", nu.UserPrincipalName, "attempt", attempt, "err", err)
			if u, ok := d.adopt(ctx, nu.UserPrincipalName, wantEmp, false); ok {
				return u, nil
			}
		default:
			return provisioning.User{}, d.fail(op, err)
		}
	}
}

// adopt looks the user up by UPN; with waitRepl it keeps trying for the
// replication window (a just-created user may not be readable yet).
func (d *Directory) adopt(ctx context.Context, upn, employeeID string, waitRepl bool) (provisioning.User, bool) {
	deadline := time.Now().Add(d.repl)
	delay := 250 * time.Millisecond
	for {
		found, err := d.FindUsers(ctx, "userPrincipalName", upn)
		if err == nil && len(found) == 1 && (employeeID == "" || strings.EqualFold(found[0].EmployeeID, employeeID)) {
			d.markCreated(found[0].ID)
			d.log.Info("user create adopted existing account", "user_id", found[0].ID, "upn", upn)
			return found[0], true
		}
		if err == nil && len(found) == 1 {
			return provisioning.User{}, false // someone else's account
		}
		if !waitRepl || time.Now().After(deadline) {
			return provisioning.User{}, false
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return provisioning.User{}, false
		case <-t.C:
		}
		delay = min(delay*2, 4*time.Second)
	}
}

func (d *Directory) newUserBody(nu provisioning.NewUser) (models.Userable, error) {
	if nu.UserPrincipalName == "" || nu.MailNickname == "" {
		return nil, errors.New("userPrincipalName and mailNickname are required")
	}
	if nu.Attributes["displayName"] == "" {
		return nil, errors.New("displayName is required")
	}
	pw, err := newPassword()
	if err != nil {
		return nil, err
	}
	u := models.NewUser()
	upn, nick, enabled := nu.UserPrincipalName, nu.MailNickname, nu.AccountEnabled
	u.SetUserPrincipalName(&upn)
	u.SetMailNickname(&nick)
	u.SetAccountEnabled(&enabled)
	pp := models.NewPasswordProfile()
	force := true
	pp.SetPassword(&pw)
	pp.SetForceChangePasswordNextSignIn(&force)
	u.SetPasswordProfile(pp)
	changes := map[string]*string{}
	for k, v := range nu.Attributes {
		if v != "" {
			changes[k] = &v
		}
	}
	var org map[string]*string
	if changes["employeeOrgData/division"] != nil || changes["employeeOrgData/costCenter"] != nil {
		org = map[string]*string{"division": changes["employeeOrgData/division"], "costCenter": changes["employeeOrgData/costCenter"]}
	}
	if err := applyChanges(u, changes, org); err != nil {
		return nil, err
	}
	return u, nil
}

// UpdateUser patches only the given properties; nil clears (JSON null).
// employeeOrgData is one nested object on the wire: when only one of its
// members changes, the other is read first and sent unchanged, so the
// update is right whether Graph merges or replaces complex values.
func (d *Directory) UpdateUser(ctx context.Context, id string, changes map[string]*string) error {
	const op = "update user"
	if len(changes) == 0 {
		return nil
	}
	ctx = withOp(ctx, "update_user")
	return d.replicationRetry(ctx, []string{id}, func() error {
		var org map[string]*string
		div, hasDiv := changes["employeeOrgData/division"]
		cc, hasCC := changes["employeeOrgData/costCenter"]
		if hasDiv || hasCC {
			org = map[string]*string{"division": nonEmpty(div), "costCenter": nonEmpty(cc)}
			if !hasDiv || !hasCC {
				cur, err := d.client.Users().ByUserId(id).Get(withOp(ctx, "get_user"), &users.UserItemRequestBuilderGetRequestConfiguration{
					QueryParameters: &users.UserItemRequestBuilderGetQueryParameters{Select: []string{"id", "employeeOrgData"}},
				})
				if err != nil {
					return d.fail(op+" (read employeeOrgData)", err)
				}
				if od := cur.GetEmployeeOrgData(); od != nil {
					if !hasDiv {
						org["division"] = nonEmpty(od.GetDivision())
					}
					if !hasCC {
						org["costCenter"] = nonEmpty(od.GetCostCenter())
					}
				}
			}
		}
		u := models.NewUser()
		if err := applyChanges(u, changes, org); err != nil {
			return &provisioning.DirectoryError{Kind: provisioning.KindRejected, Op: op, Message: err.Error(), Err: err}
		}
		if _, err := d.client.Users().ByUserId(id).Patch(ctx, u, nil); err != nil {
			return d.fail(op, err)
		}
		return nil
	})
}

// SetAccountEnabled enables or disables sign-in.
func (d *Directory) SetAccountEnabled(ctx context.Context, id string, enabled bool) error {
	op := "disable user"
	if enabled {
		op = "enable user"
	}
	ctx = withOp(ctx, "set_account_enabled")
	return d.replicationRetry(ctx, []string{id}, func() error {
		u := models.NewUser()
		u.SetAccountEnabled(&enabled)
		if _, err := d.client.Users().ByUserId(id).Patch(ctx, u, nil); err != nil {
			return d.fail(op, err)
		}
		return nil
	})
}

// RevokeSessions invalidates refresh tokens and session cookies
// (https://learn.microsoft.com/en-us/graph/api/user-revokesigninsessions).
func (d *Directory) RevokeSessions(ctx context.Context, id string) error {
	ctx = withOp(ctx, "revoke_sessions")
	return d.replicationRetry(ctx, []string{id}, func() error {
		if _, err := d.client.Users().ByUserId(id).RevokeSignInSessions().PostAsRevokeSignInSessionsPostResponse(ctx, nil); err != nil {
			return d.fail("revoke sessions", err)
		}
		return nil
	})
}

// SetManager sets the manager with PUT manager/$ref; "" removes it
// (DELETE manager/$ref, https://learn.microsoft.com/en-us/graph/api/user-post-manager).
// Removing an absent manager is success.
func (d *Directory) SetManager(ctx context.Context, id, managerID string) error {
	if managerID == "" {
		ctx = withOp(ctx, "remove_manager")
		err := d.client.Users().ByUserId(id).Manager().Ref().Delete(ctx, nil)
		if err == nil {
			return nil
		}
		de := classify("remove manager", err)
		if de.Kind != provisioning.KindNotFound {
			return d.fail("remove manager", err)
		}
		// 404 means "no manager" or "no such user": tell them apart.
		if _, gerr := d.GetUser(ctx, id); gerr != nil {
			return gerr
		}
		return nil
	}
	ctx = withOp(ctx, "set_manager")
	ref := models.NewReferenceUpdate()
	odataID := d.graphURL + "/users/" + managerID
	ref.SetOdataId(&odataID)
	return d.replicationRetry(ctx, []string{id, managerID}, func() error {
		if err := d.client.Users().ByUserId(id).Manager().Ref().Put(ctx, ref, nil); err != nil {
			return d.fail("set manager", err)
		}
		return nil
	})
}

// DeleteUser soft-deletes the user (restorable for 30 days,
// https://learn.microsoft.com/en-us/graph/api/user-delete).
func (d *Directory) DeleteUser(ctx context.Context, id string) error {
	ctx = withOp(ctx, "delete_user")
	return d.replicationRetry(ctx, []string{id}, func() error {
		if err := d.client.Users().ByUserId(id).Delete(ctx, nil); err != nil {
			return d.fail("delete user", err)
		}
		d.forget(id) // a 404 from now on is real, not replication
		return nil
	})
}

// RestoreUser restores a soft-deleted user (POST directory/deletedItems/{id}/restore).
func (d *Directory) RestoreUser(ctx context.Context, id string) error {
	ctx = withOp(ctx, "restore_user")
	if _, err := d.client.Directory().DeletedItems().ByDirectoryObjectId(id).Restore().Post(ctx, nil); err != nil {
		return d.fail("restore user", err)
	}
	return nil
}
