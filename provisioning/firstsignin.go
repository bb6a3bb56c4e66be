package provisioning

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// AuthMethods is what the day-one pass needs from Entra's authentication
// methods API (https://learn.microsoft.com/en-us/graph/api/resources/authenticationmethods-overview).
// provisioning/entra implements it; the engine uses it only when the rules
// turn first_sign_in on.
type AuthMethods interface {
	// ListAuthMethods returns the @odata.type of every method registered
	// for the user, e.g. "#microsoft.graph.passwordAuthenticationMethod"
	// (GET /users/{id}/authentication/methods).
	ListAuthMethods(ctx context.Context, userID string) ([]string, error)
	// CreateTAP issues a Temporary Access Pass
	// (POST /users/{id}/authentication/temporaryAccessPassMethods). A user
	// holds at most one: a new pass replaces the previous one. The pass is
	// returned only here and never again. ErrTAPPolicyDisabled when the
	// tenant's policy does not allow it, ErrTAPHasMethod when Graph refuses
	// because the user already has a usable method, ErrForbidden for a
	// missing permission.
	CreateTAP(ctx context.Context, userID string, req TAPRequest) (TAP, error)
	// DeleteTAP removes a pass; an absent one is success.
	DeleteTAP(ctx context.Context, userID, methodID string) error
}

// TAPRequest is what a pass is asked for with.
type TAPRequest struct {
	// StartDateTime is when the pass becomes usable; zero: at once.
	StartDateTime   time.Time
	LifetimeMinutes int
	UsableOnce      bool
}

// TAP is an issued Temporary Access Pass.
type TAP struct {
	ID              string
	Pass            Secret
	StartDateTime   time.Time
	LifetimeMinutes int
	UsableOnce      bool
}

// ExpiresAt is when the pass stops working.
func (t TAP) ExpiresAt(created time.Time) time.Time {
	from := t.StartDateTime
	if from.IsZero() {
		from = created
	}
	return from.Add(time.Duration(t.LifetimeMinutes) * time.Minute)
}

// Errors of the authentication methods API.
var (
	// ErrTAPPolicyDisabled: the Temporary Access Pass method is not enabled
	// for the user in the tenant's authentication methods policy (Entra
	// admin center: Protection > Authentication methods > Policies >
	// Temporary Access Pass), or the request falls outside the policy's
	// lifetime or one-time settings.
	ErrTAPPolicyDisabled = errors.New("the Temporary Access Pass authentication method policy refuses the pass")
	// ErrTAPHasMethod: Graph refused the pass because the user already has
	// a usable authentication method.
	ErrTAPHasMethod = errors.New("the user already has a usable authentication method")
)

// Secret holds a value that must never be logged, audited, queued or
// stored: it prints, logs and encodes as "[redacted]". Only Reveal gives
// the value, for the one message that delivers it.
type Secret struct{ v string }

// NewSecret wraps v.
func NewSecret(v string) Secret { return Secret{v: v} }

// Reveal returns the value.
func (s Secret) Reveal() string { return s.v }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.v == "" }

const redacted = "[redacted]"

func (s Secret) String() string               { return redacted }
func (s Secret) GoString() string             { return redacted }
func (s Secret) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Mail is one message sent through Graph sendMail.
type Mail struct {
	To      []string
	Subject string
	Body    string // plain text
	// NoCopy keeps no copy in the sender's Sent Items: set when the body
	// carries a credential (the day-one pass), which anyone who can read
	// that mailbox could otherwise use.
	NoCopy bool
}

// Mailer sends mail as a mailbox
// (POST /users/{sender}/sendMail, https://learn.microsoft.com/en-us/graph/api/user-sendmail).
// ErrNoMailbox when the sender has no Exchange Online mailbox, ErrForbidden
// for a missing Mail.Send permission or an application access policy that
// excludes the mailbox.
type Mailer interface {
	SendMail(ctx context.Context, sender string, m Mail) error
}

// ErrNoMailbox: the sending user has no Exchange Online mailbox.
var ErrNoMailbox = errors.New("the sender has no Exchange Online mailbox")
