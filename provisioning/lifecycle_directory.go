package provisioning

import (
	"context"
	"errors"
	"time"
)

// DeletedUsers is implemented by directories that can find and restore
// soft-deleted users (Entra's deleted items: a deleted user stays
// restorable for 30 days, https://learn.microsoft.com/en-us/graph/api/directory-deleteditems-restore).
// The engine uses it, when the Directory has it, to give a returner their
// old account back instead of creating a second one (restore.go).
type DeletedUsers interface {
	// FindDeletedUsers returns the soft-deleted users whose employeeId
	// equals employeeID (an empty slice when there are none), with the
	// properties the engine compares and when each was deleted.
	FindDeletedUsers(ctx context.Context, employeeID string) ([]DeletedUser, error)
	// RestoreDeletedUser restores a soft-deleted user under its object id
	// and returns it. opts may give it another user principal name (when
	// an active account took the old one meanwhile) and drop the proxy
	// addresses another object now uses. A clash that opts do not resolve
	// is KindConflict with Target "userPrincipalName" or "proxyAddresses";
	// a user no longer in deleted items is KindNotFound.
	RestoreDeletedUser(ctx context.Context, id string, opts RestoreOptions) (User, error)
}

// DeletedUser is a soft-deleted user.
type DeletedUser struct {
	User
	DeletedAt time.Time `json:"deletedDateTime,omitzero"`
}

// RestoreOptions resolve clashes on restore (Graph's restore parameters
// newUserPrincipalName and autoReconcileProxyConflict).
type RestoreOptions struct {
	NewUserPrincipalName       string
	AutoReconcileProxyConflict bool
}

// Licenses is implemented by directories that can read the tenant's
// subscriptions and assign licences to users
// (https://learn.microsoft.com/en-us/graph/api/subscribedsku-list,
// https://learn.microsoft.com/en-us/graph/api/user-assignlicense). The
// engine uses it, when the Directory has it, for the rules' `licenses`
// (licenses.go); users then carry their licences in User.Licenses.
type Licenses interface {
	// SubscribedSkus lists the tenant's subscriptions with their seats.
	SubscribedSkus(ctx context.Context) ([]SKU, error)
	// AssignLicense adds (or changes the disabled plans of) and removes
	// licences of one user in one request. Graph answers a user without a
	// usageLocation with an error that matches ErrNoUsageLocation and a
	// subscription without a free seat with one that matches
	// ErrNoLicenseSeats; both are KindTransient (they can succeed later).
	AssignLicense(ctx context.Context, userID string, add []LicenseAssignment, remove []string) error
}

// SKU is one subscription of the tenant (subscribedSku).
type SKU struct {
	ID         string `json:"skuId"`
	PartNumber string `json:"skuPartNumber"` // e.g. SPE_E3
	// Enabled is prepaidUnits.enabled, Consumed is consumedUnits: the
	// seats free are Enabled - Consumed.
	Enabled   int           `json:"enabled"`
	Consumed  int           `json:"consumed"`
	AppliesTo string        `json:"appliesTo,omitempty"` // User or Company
	Plans     []ServicePlan `json:"servicePlans,omitempty"`
}

// ServicePlan is one service plan of a SKU.
type ServicePlan struct {
	ID   string `json:"servicePlanId"`
	Name string `json:"servicePlanName"` // e.g. EXCHANGE_S_ENTERPRISE
}

// LicenseAssignment is one licence a user holds or should hold
// (assignedLicense): the SKU's id and the ids of its disabled plans.
type LicenseAssignment struct {
	SKUID         string   `json:"skuId"`
	DisabledPlans []string `json:"disabledPlans,omitempty"`
}

// Sentinel errors of licence assignment; a *DirectoryError carries them in
// Err so that errors.Is finds them.
var (
	// ErrNoLicenseSeats: every seat of the subscription is taken.
	ErrNoLicenseSeats = errors.New("directory: no free licence seats")
	// ErrNoUsageLocation: Graph refuses a licence for a user without a
	// usageLocation (or one it has not replicated yet).
	ErrNoUsageLocation = errors.New("directory: the user has no usage location")
)
