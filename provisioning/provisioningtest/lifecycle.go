package provisioningtest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/personio-entra/personio-entra/provisioning"
)

// The in-memory directory also implements the optional interfaces of
// returners and licences (provisioning/lifecycle_directory.go), with the
// answers Graph documents: a restore whose user principal name or proxy
// address another account holds is refused unless the options resolve it;
// a licence needs a usageLocation, a known SKU and a free seat. A deleted
// user's licences are released (its seats count as free) and it comes back
// without them.
var (
	_ provisioning.DeletedUsers = (*Directory)(nil)
	_ provisioning.Licenses     = (*Directory)(nil)
)

// AddDeletedUser seeds a soft-deleted user, deleted at deletedAt, and
// returns its object id.
func (d *Directory) AddDeletedUser(u provisioning.User, deletedAt time.Time) string {
	id := d.AddUser(u)
	d.mu.Lock()
	defer d.mu.Unlock()
	x := d.users[id]
	delete(d.users, id)
	x.Licenses = nil
	d.deleted[id] = x
	d.deletedAt[id] = deletedAt.UTC()
	return id
}

// AddSKU seeds a subscription of the tenant (an empty ID is generated).
// Consumed counts seats used outside this directory's users.
func (d *Directory) AddSKU(s provisioning.SKU) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s.ID == "" {
		s.ID = d.newID("22222222")
	}
	d.skus = append(d.skus, s)
	return s.ID
}

// SetLicenses gives a live user licences directly (a seed: no write is
// counted, seats are taken).
func (d *Directory) SetLicenses(userID string, ls ...provisioning.LicenseAssignment) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if u, ok := d.users[userID]; ok {
		u.Licenses = cloneLicenses(ls)
	}
}

func cloneLicenses(ls []provisioning.LicenseAssignment) []provisioning.LicenseAssignment {
	if ls == nil {
		return nil
	}
	out := make([]provisioning.LicenseAssignment, len(ls))
	for i, l := range ls {
		out[i] = provisioning.LicenseAssignment{SKUID: l.SKUID, DisabledPlans: slices.Clone(l.DisabledPlans)}
	}
	return out
}

// upnTaken reports a live or soft-deleted user other than self holding
// upn (Entra keeps a deleted user's name reserved); d.mu is held.
func (d *Directory) upnTaken(op, upn, self string) error {
	for _, set := range []map[string]*provisioning.User{d.users, d.deleted} {
		for id, u := range set {
			if id != self && strings.EqualFold(u.UserPrincipalName, upn) {
				return &provisioning.DirectoryError{Kind: provisioning.KindConflict, Op: op, Code: "Request_BadRequest",
					Message: "Another object with the same value for property userPrincipalName already exists.", Target: "userPrincipalName"}
			}
		}
	}
	return nil
}

// FindDeletedUsers returns the soft-deleted users with the employeeId.
func (d *Directory) FindDeletedUsers(_ context.Context, employeeID string) ([]provisioning.DeletedUser, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.fault("FindDeletedUsers"); err != nil {
		return nil, err
	}
	out := []provisioning.DeletedUser{}
	for id, u := range d.deleted {
		if u.EmployeeID != "" && strings.EqualFold(u.EmployeeID, employeeID) {
			c := d.copyOf(u)
			c.ManagerID, c.ManagerEmployeeID = "", ""
			out = append(out, provisioning.DeletedUser{User: c, DeletedAt: d.deletedAt[id]})
		}
	}
	for id, at := range d.stillListedDeleted() {
		// Restored, but the listing does not show it yet (replication.go).
		if u, ok := d.users[id]; ok && u.EmployeeID != "" && strings.EqualFold(u.EmployeeID, employeeID) {
			c := d.copyOf(u)
			c.ManagerID, c.ManagerEmployeeID = "", ""
			out = append(out, provisioning.DeletedUser{User: c, DeletedAt: at})
		}
	}
	slices.SortFunc(out, func(a, b provisioning.DeletedUser) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// RestoreDeletedUser restores a soft-deleted user. Its user principal name
// held by a live user is a conflict unless opts give a new one; its mail
// held by a live user is a conflict on proxyAddresses unless
// opts.AutoReconcileProxyConflict, which drops the mail of the restored
// user.
func (d *Directory) RestoreDeletedUser(_ context.Context, id string, opts provisioning.RestoreOptions) (provisioning.User, error) {
	const op = "restore user"
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.fault("RestoreDeletedUser"); err != nil {
		return provisioning.User{}, err
	}
	u, ok := d.deleted[id]
	if !ok {
		return provisioning.User{}, notFound(op, "deleted user "+id)
	}
	upn := u.UserPrincipalName
	if opts.NewUserPrincipalName != "" {
		upn = opts.NewUserPrincipalName
	}
	for oid, o := range d.users {
		if oid != id && strings.EqualFold(o.UserPrincipalName, upn) {
			return provisioning.User{}, &provisioning.DirectoryError{Kind: provisioning.KindConflict, Op: op, Code: "Request_BadRequest",
				Message: "Another object with the same value for property userPrincipalName already exists.", Target: "userPrincipalName"}
		}
	}
	dropMail := false
	for oid, o := range d.users {
		if oid != id && u.Mail != "" && (strings.EqualFold(o.Mail, u.Mail) || strings.EqualFold(o.UserPrincipalName, u.Mail)) {
			if !opts.AutoReconcileProxyConflict {
				return provisioning.User{}, &provisioning.DirectoryError{Kind: provisioning.KindConflict, Op: op, Code: "Request_BadRequest",
					Message: "Another object with the same value for property proxyAddresses already exists.", Target: "proxyAddresses"}
			}
			dropMail = true
		}
	}
	d.wrote(id, d.deletedAt[id])
	delete(d.deleted, id)
	delete(d.deletedAt, id)
	u.UserPrincipalName = upn
	if dropMail {
		u.Mail = ""
	}
	d.users[id] = u
	d.record("RestoreUser", id, "")
	if err := d.answerLost("RestoreDeletedUser", op); err != nil {
		return provisioning.User{}, err
	}
	return d.copyOf(u), nil
}

// SubscribedSkus lists the seeded subscriptions; Consumed includes the
// seats the live users hold.
func (d *Directory) SubscribedSkus(context.Context) ([]provisioning.SKU, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.fault("SubscribedSkus"); err != nil {
		return nil, err
	}
	out := make([]provisioning.SKU, len(d.skus))
	for i, s := range d.skus {
		s.Consumed += d.held(s.ID)
		s.Plans = slices.Clone(s.Plans)
		out[i] = s
	}
	return out, nil
}

// held counts the live users holding the SKU; d.mu is held.
func (d *Directory) held(skuID string) int {
	n := 0
	for _, u := range d.users {
		if slices.ContainsFunc(u.Licenses, func(l provisioning.LicenseAssignment) bool { return strings.EqualFold(l.SKUID, skuID) }) {
			n++
		}
	}
	return n
}

// AssignLicense adds and removes licences in one all-or-nothing request.
func (d *Directory) AssignLicense(_ context.Context, userID string, add []provisioning.LicenseAssignment, remove []string) error {
	const op = "assign license"
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.fault("AssignLicense"); err != nil {
		return err
	}
	u, ok := d.users[userID]
	if !ok {
		return notFound(op, "user "+userID)
	}
	sku := func(id string) (provisioning.SKU, bool) {
		i := slices.IndexFunc(d.skus, func(s provisioning.SKU) bool { return strings.EqualFold(s.ID, id) })
		if i < 0 {
			return provisioning.SKU{}, false
		}
		return d.skus[i], true
	}
	rejected := func(msg string) error {
		return &provisioning.DirectoryError{Kind: provisioning.KindRejected, Op: op, Code: "Request_BadRequest", Message: msg}
	}
	for _, a := range add {
		s, ok := sku(a.SKUID)
		if !ok {
			return rejected(fmt.Sprintf("License %s does not correspond to a valid company License.", a.SKUID))
		}
		if u.Attributes["usageLocation"] == "" {
			return &provisioning.DirectoryError{Kind: provisioning.KindTransient, Op: op, Code: "Request_BadRequest",
				Message: "License assignment cannot be done for user with invalid usage location.", Err: provisioning.ErrNoUsageLocation}
		}
		for _, p := range a.DisabledPlans {
			if !slices.ContainsFunc(s.Plans, func(x provisioning.ServicePlan) bool { return strings.EqualFold(x.ID, p) }) {
				return rejected(fmt.Sprintf("Service plan %s is not part of license %s.", p, a.SKUID))
			}
		}
		holds := slices.ContainsFunc(u.Licenses, func(l provisioning.LicenseAssignment) bool { return strings.EqualFold(l.SKUID, a.SKUID) })
		if !holds && s.Consumed+d.held(s.ID) >= s.Enabled {
			return &provisioning.DirectoryError{Kind: provisioning.KindTransient, Op: op, Code: "Request_BadRequest",
				Message: fmt.Sprintf("Subscription with SKU %s does not have any available licenses.", a.SKUID), Err: provisioning.ErrNoLicenseSeats}
		}
	}
	for _, r := range remove {
		if _, ok := sku(r); !ok {
			return rejected(fmt.Sprintf("License %s does not correspond to a valid company License.", r))
		}
		if !slices.ContainsFunc(u.Licenses, func(l provisioning.LicenseAssignment) bool { return strings.EqualFold(l.SKUID, r) }) {
			return rejected("User does not have a corresponding license.")
		}
	}
	for _, r := range remove {
		u.Licenses = slices.DeleteFunc(u.Licenses, func(l provisioning.LicenseAssignment) bool { return strings.EqualFold(l.SKUID, r) })
	}
	for _, a := range add {
		a := provisioning.LicenseAssignment{SKUID: a.SKUID, DisabledPlans: slices.Clone(a.DisabledPlans)}
		if i := slices.IndexFunc(u.Licenses, func(l provisioning.LicenseAssignment) bool { return strings.EqualFold(l.SKUID, a.SKUID) }); i >= 0 {
			u.Licenses[i] = a
		} else {
			u.Licenses = append(u.Licenses, a)
		}
	}
	d.record("AssignLicense", userID, "")
	return nil
}
