package provisioning

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Directory is what the engine needs from Entra ID. provisioning/entra
// implements it with msgraph-sdk-go; nothing else in the product imports the
// Graph SDK.
//
// User properties travel as Graph property names (see rules.Properties):
// "displayName", "jobTitle", "businessPhones" (one value: Graph accepts only
// one), "employeeOrgData/division", "employeeOrgData/costCenter",
// "employeeHireDate" (RFC 3339), ... An empty string means "not set".
type Directory interface {
	// FindUsers returns every user whose property equals value. Key is one of
	// "employeeId", "userPrincipalName", "mail". No match is an empty slice,
	// not an error.
	FindUsers(ctx context.Context, key, value string) ([]User, error)
	// GetUser reads one user by object id (ErrNotFound when absent).
	GetUser(ctx context.Context, id string) (User, error)
	// ListUsers returns every user that carries an employeeId, paged to the
	// end, with only the properties the engine compares.
	ListUsers(ctx context.Context) ([]User, error)
	// CreateUser creates an account with a random strong password. A create
	// whose response was lost is retried by looking the user up, never by
	// creating twice. ErrConflict when the UPN or mail nickname is taken.
	CreateUser(ctx context.Context, u NewUser) (User, error)
	// UpdateUser patches only the given properties; a nil value clears the
	// property (sent as JSON null).
	UpdateUser(ctx context.Context, id string, changes map[string]*string) error
	// SetAccountEnabled enables or disables sign-in.
	SetAccountEnabled(ctx context.Context, id string, enabled bool) error
	// RevokeSessions invalidates refresh tokens and session cookies.
	RevokeSessions(ctx context.Context, id string) error
	// SetManager sets the user's manager; managerID "" removes it.
	SetManager(ctx context.Context, id, managerID string) error
	// DeleteUser soft-deletes (restorable for 30 days).
	DeleteUser(ctx context.Context, id string) error
	// RestoreUser restores a soft-deleted user.
	RestoreUser(ctx context.Context, id string) error

	// GetGroup reads a group by object id; ResolveGroup finds one by display
	// name (ErrNotFound for none, ErrConflict for more than one).
	GetGroup(ctx context.Context, id string) (Group, error)
	ResolveGroup(ctx context.Context, displayName string) (Group, error)
	// ListUserGroups returns the object ids of the groups the user is a
	// direct member of (memberOf, groups only, paged to the end). One
	// request for the usual case: the engine uses it instead of reading the
	// members of every managed group when it reconciles one person.
	ListUserGroups(ctx context.Context, userID string) ([]string, error)
	// ListGroupMembers returns the object ids of the group's direct user
	// members, paged to the end.
	ListGroupMembers(ctx context.Context, groupID string) ([]string, error)
	// AddGroupMembers adds users (in requests of 20); already-a-member is
	// success.
	AddGroupMembers(ctx context.Context, groupID string, userIDs []string) error
	// RemoveGroupMember removes one user; not-a-member is success.
	RemoveGroupMember(ctx context.Context, groupID, userID string) error
}

// User is the part of an Entra user the engine compares and acts on.
type User struct {
	ID                string `json:"id"`
	UserPrincipalName string `json:"userPrincipalName"`
	Mail              string `json:"mail,omitempty"`
	EmployeeID        string `json:"employeeId,omitempty"`
	AccountEnabled    bool   `json:"accountEnabled"`
	UserType          string `json:"userType,omitempty"` // UserTypeMember, UserTypeGuest; "" when Graph did not say
	// ManagerID and ManagerEmployeeID describe the current manager (both
	// "" when none). FindUsers, GetUser and ListUsers fill them (e.g. with
	// $expand=manager($select=id,employeeId)) so that the engine can tell
	// whether the manager is right without another request.
	ManagerID         string            `json:"managerId,omitempty"`
	ManagerEmployeeID string            `json:"managerEmployeeId,omitempty"`
	OnPremisesSync    bool              `json:"onPremisesSyncEnabled,omitempty"`
	Attributes        map[string]string `json:"attributes,omitempty"`
	// Licenses are the licences the user holds (assignedLicenses); read
	// when the rules manage licences (lifecycle_directory.go).
	Licenses []LicenseAssignment `json:"assignedLicenses,omitempty"`
}

// Graph's userType values: the tenant's own accounts are members, B2B
// guests are guests (https://learn.microsoft.com/en-us/graph/api/resources/user).
const (
	UserTypeMember = "Member"
	UserTypeGuest  = "Guest"
)

// NewUser is everything needed to create an account.
type NewUser struct {
	UserPrincipalName string
	MailNickname      string
	AccountEnabled    bool
	// Attributes holds the initial properties (Graph names, non-empty only).
	Attributes map[string]string
}

// Group is a group and whether the engine may manage its members.
type Group struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
	// Unmanageable explains why Graph cannot write this group's membership
	// (mail-enabled security group, distribution list, dynamic, synced from
	// on-premises) and what to use instead; "" when it can.
	Unmanageable string `json:"unmanageable,omitempty"`
}

// ErrorKind classifies a directory error so that the engine can act on it.
type ErrorKind int

const (
	KindUnknown   ErrorKind = iota
	KindNotFound            // the object does not exist (or is not yet replicated)
	KindConflict            // UPN / proxy address / mail nickname already taken
	KindThrottled           // 429 after retries; RetryAfter says how long to wait
	KindForbidden           // 403: missing permission or privileged target
	KindTransient           // 5xx, timeouts: try again later
	KindRejected            // 400 and friends: Graph refused the request as it is
)

func (k ErrorKind) String() string {
	switch k {
	case KindNotFound:
		return "not_found"
	case KindConflict:
		return "conflict"
	case KindThrottled:
		return "throttled"
	case KindForbidden:
		return "forbidden"
	case KindTransient:
		return "transient"
	case KindRejected:
		return "rejected"
	}
	return "unknown"
}

// Sentinel errors for errors.Is; a *DirectoryError matches the one of its kind.
var (
	ErrNotFound  = errors.New("directory: not found")
	ErrConflict  = errors.New("directory: conflict")
	ErrThrottled = errors.New("directory: throttled")
	ErrForbidden = errors.New("directory: forbidden")
	ErrTransient = errors.New("directory: transient failure")
	ErrRejected  = errors.New("directory: request rejected")
)

// DirectoryError is the error every Directory method returns on failure.
type DirectoryError struct {
	Kind       ErrorKind
	Op         string        // e.g. "create user", "add members"
	Code       string        // Graph error code, e.g. "Request_BadRequest"
	Message    string        // Graph error message
	Target     string        // details[].target when Graph names one (e.g. "userPrincipalName")
	RetryAfter time.Duration // for KindThrottled
	Err        error         // underlying error, if any
}

func (e *DirectoryError) Error() string {
	msg := fmt.Sprintf("%s: %s", e.Op, e.Kind)
	if e.Code != "" {
		msg += " (" + e.Code + ")"
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.Err != nil && e.Message == "" {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *DirectoryError) Unwrap() error { return e.Err }

func (e *DirectoryError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Kind == KindNotFound
	case ErrConflict:
		return e.Kind == KindConflict
	case ErrThrottled:
		return e.Kind == KindThrottled
	case ErrForbidden:
		return e.Kind == KindForbidden
	case ErrTransient:
		return e.Kind == KindTransient
	case ErrRejected:
		return e.Kind == KindRejected
	}
	return false
}

// DeltaDirectory is implemented by directories that can report what changed
// since an earlier read (Microsoft Graph delta queries,
// https://learn.microsoft.com/en-us/graph/delta-query-overview). The
// incremental sync uses it, when the Directory has it, to find the people
// whose account or managed-group membership was changed in Entra by hand
// without reading everyone (docs/graph-behaviour.md#delta-queries).
//
// A link is opaque. The empty link starts tracking from now: no objects,
// just the link for the next call (Graph's $deltatoken=latest). A link
// Graph no longer accepts answers an error that matches ErrDeltaExpired;
// the caller then reads everything again and starts over with "".
type DeltaDirectory interface {
	// UsersDelta returns the users created, changed or removed since link
	// (paged to the end) and the link for the next call. A changed user may
	// carry only the properties that changed besides its id.
	UsersDelta(ctx context.Context, link string) (changes []UserChange, next string, err error)
	// GroupMembersDelta returns the members added to or removed from the
	// given groups since link, and the link for the next call. The link
	// belongs to that set of groups: a different set starts with "".
	GroupMembersDelta(ctx context.Context, groupIDs []string, link string) (changes []MemberChange, next string, err error)
}

// UserChange is one user a delta reported: changed (or created), or
// removed (deleted, or no longer visible to the query).
type UserChange struct {
	User    User
	Removed bool
}

// MemberChange is one membership a delta reported: the user was added to
// the group, or removed from it.
type MemberChange struct {
	GroupID string
	UserID  string
	Removed bool
}

// MaxDeltaGroups is how many groups one group delta may be filtered to
// (Graph accepts at most 50 ids in the $filter of groups/delta,
// https://learn.microsoft.com/en-us/graph/api/group-delta).
const MaxDeltaGroups = 50

// ErrDeltaExpired matches (errors.Is) the error of a delta read whose link
// Graph no longer accepts: 410 Gone, or 400 with the code syncStateNotFound
// or syncStateInvalid (delta links of directory objects live seven days;
// https://learn.microsoft.com/en-us/graph/delta-query-overview#synchronization-reset).
var ErrDeltaExpired = errors.New("directory: delta link expired")
