package provisioningtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/personio-entra/personio-entra/provisioning"
)

var (
	_ provisioning.AuthMethods = (*Directory)(nil)
	_ provisioning.Mailer      = (*Directory)(nil)
)

// Pass is one Temporary Access Pass the directory issued, kept for tests.
type Pass struct {
	ID, UserID, Value string
	Created           time.Time
	LifetimeMinutes   int
	UsableOnce        bool
	Deleted           bool // deleted, or replaced by a newer pass
}

// SentMail is one message SendMail accepted.
type SentMail struct {
	Sender string
	provisioning.Mail
}

type authState struct {
	methods map[string][]string // user id → registered method types besides the password
	passes  []Pass
	outbox  []SentMail
	// policyDisabled refuses every pass; refuseWithMethods refuses users
	// with a registered method (ErrTAPHasMethod).
	policyDisabled, refuseWithMethods bool
	refuseAll                         bool
	mailboxes                         map[string]bool
}

// AddAuthMethod registers a method (an OData type such as
// "#microsoft.graph.microsoftAuthenticatorAuthenticationMethod").
func (d *Directory) AddAuthMethod(userID, odataType string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.auth.methods == nil {
		d.auth.methods = map[string][]string{}
	}
	d.auth.methods[userID] = append(d.auth.methods[userID], odataType)
}

// SetTAPPolicy switches the tenant's Temporary Access Pass policy off, or
// makes it refuse users that have a registered method.
func (d *Directory) SetTAPPolicy(disabled, refuseWithMethods bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.auth.policyDisabled, d.auth.refuseWithMethods = disabled, refuseWithMethods
}

// RefuseTAPs makes every create answer as Graph does for a user who
// already has a usable method (ErrTAPHasMethod), whatever the methods
// list shows (it may lag behind).
func (d *Directory) RefuseTAPs(on bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.auth.refuseAll = on
}

// Passes returns every pass issued for the user (all users for "").
func (d *Directory) Passes(userID string) []Pass {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Pass
	for _, p := range d.auth.passes {
		if userID == "" || p.UserID == userID {
			out = append(out, p)
		}
	}
	return out
}

// Outbox returns every message sent.
func (d *Directory) Outbox() []SentMail {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.auth.outbox)
}

// AddMailbox lets SendMail send as the address; without any mailbox
// added, every sender is accepted.
func (d *Directory) AddMailbox(address string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.auth.mailboxes == nil {
		d.auth.mailboxes = map[string]bool{}
	}
	d.auth.mailboxes[address] = true
}

func (d *Directory) ListAuthMethods(_ context.Context, userID string) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.fault("ListAuthMethods"); err != nil {
		return nil, err
	}
	if _, ok := d.users[userID]; !ok {
		return nil, &provisioning.DirectoryError{Kind: provisioning.KindNotFound, Op: "list authentication methods of " + userID}
	}
	out := []string{"#microsoft.graph.passwordAuthenticationMethod"}
	out = append(out, d.auth.methods[userID]...)
	for _, p := range d.auth.passes {
		if p.UserID == userID && !p.Deleted {
			out = append(out, "#microsoft.graph.temporaryAccessPassAuthenticationMethod")
		}
	}
	return out, nil
}

func (d *Directory) CreateTAP(_ context.Context, userID string, req provisioning.TAPRequest) (provisioning.TAP, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.fault("CreateTAP"); err != nil {
		return provisioning.TAP{}, err
	}
	if _, ok := d.users[userID]; !ok {
		return provisioning.TAP{}, &provisioning.DirectoryError{Kind: provisioning.KindNotFound, Op: "create Temporary Access Pass for " + userID}
	}
	rejected := func(msg string, sentinel error) (provisioning.TAP, error) {
		return provisioning.TAP{}, fmt.Errorf("%w: %w", sentinel, &provisioning.DirectoryError{Kind: provisioning.KindRejected,
			Op: "create Temporary Access Pass for " + userID, Code: "badRequest", Message: msg})
	}
	switch {
	case d.auth.policyDisabled:
		return rejected("Temporary Access Pass authentication method is not enabled for this user by the authentication methods policy.", provisioning.ErrTAPPolicyDisabled)
	case d.auth.refuseAll || d.auth.refuseWithMethods && len(d.auth.methods[userID]) > 0:
		return rejected("The user already has a usable authentication method registered.", provisioning.ErrTAPHasMethod)
	case req.LifetimeMinutes != 0 && (req.LifetimeMinutes < 10 || req.LifetimeMinutes > 43200):
		return provisioning.TAP{}, &provisioning.DirectoryError{Kind: provisioning.KindRejected, Op: "create Temporary Access Pass",
			Message: "lifetimeInMinutes must be between 10 and 43200."}
	}
	for i := range d.auth.passes {
		if d.auth.passes[i].UserID == userID {
			d.auth.passes[i].Deleted = true // a user holds one pass
		}
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	lt := req.LifetimeMinutes
	if lt == 0 {
		lt = 60
	}
	p := Pass{ID: d.newID("7a9"), UserID: userID, Value: "TAP-" + hex.EncodeToString(b), Created: time.Now(), LifetimeMinutes: lt, UsableOnce: req.UsableOnce}
	d.auth.passes = append(d.auth.passes, p)
	d.writes = append(d.writes, Write{Op: "CreateTAP", UserID: userID})
	return provisioning.TAP{ID: p.ID, Pass: provisioning.NewSecret(p.Value), StartDateTime: req.StartDateTime,
		LifetimeMinutes: lt, UsableOnce: req.UsableOnce}, nil
}

func (d *Directory) DeleteTAP(_ context.Context, userID, methodID string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.fault("DeleteTAP"); err != nil {
		return err
	}
	for i := range d.auth.passes {
		if p := &d.auth.passes[i]; p.UserID == userID && p.ID == methodID {
			p.Deleted = true
		}
	}
	d.writes = append(d.writes, Write{Op: "DeleteTAP", UserID: userID})
	return nil
}

func (d *Directory) SendMail(_ context.Context, sender string, m provisioning.Mail) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.fault("SendMail"); err != nil {
		return err
	}
	if d.auth.mailboxes != nil && !d.auth.mailboxes[sender] {
		return fmt.Errorf("%w: %w", provisioning.ErrNoMailbox, &provisioning.DirectoryError{Kind: provisioning.KindNotFound,
			Op: "send mail as " + sender, Code: "MailboxNotEnabledForRESTAPI"})
	}
	if len(m.To) == 0 {
		return &provisioning.DirectoryError{Kind: provisioning.KindRejected, Op: "send mail", Code: "ErrorInvalidRecipients"}
	}
	m.To = slices.Clone(m.To)
	d.auth.outbox = append(d.auth.outbox, SentMail{Sender: sender, Mail: m})
	return nil
}
