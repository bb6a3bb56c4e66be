package conformance

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/personio-entra/personio-entra/provisioning"
)

// DayOneFixture is a directory that also issues Temporary Access Passes
// and sends mail (provisioning.AuthMethods, provisioning.Mailer).
type DayOneFixture struct {
	DirectoryFixture
	Methods provisioning.AuthMethods
	Mailer  provisioning.Mailer
	// Sender is a mailbox the app may send as.
	Sender string
	// AddMethod registers a method for a user as the user would (nil skips
	// the check that needs it).
	AddMethod func(t *testing.T, userID, odataType string)
	// Sent returns the subjects of the messages sent so far (nil skips the
	// read-back; a real tenant delivers to real mailboxes).
	Sent func() []string
}

// RunDayOne runs the contract of the day-one pass and the mailer.
func RunDayOne(t *testing.T, newFix func(t *testing.T) DayOneFixture) {
	tests := []struct {
		name string
		run  func(t *testing.T, f DayOneFixture)
	}{
		{"TAPCreateReplaceDelete", testTAPLifecycle},
		{"TAPLifetimeBounds", testTAPBounds},
		{"ListAuthMethods", testListAuthMethods},
		{"SendMail", testSendMail},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFix(t)
			if f.Directory == nil || f.Methods == nil || f.Mailer == nil || f.Domain == "" {
				t.Fatal("conformance: the fixture needs a Directory, Methods, a Mailer and a Domain")
			}
			tc.run(t, f)
		})
	}
}

// A pass comes back once, with an id; a second pass replaces the first
// (a user holds one); deleting is idempotent; the pass never prints.
func testTAPLifecycle(t *testing.T, f DayOneFixture) {
	ctx := ctxFor(t)
	u := create(t, f.DirectoryFixture, newUser(f.DirectoryFixture, "tap", tag(t)))
	var first provisioning.TAP
	Eventually(t, f.Settle, "CreateTAP", func() error {
		var err error
		first, err = f.Methods.CreateTAP(ctx, u.ID, provisioning.TAPRequest{LifetimeMinutes: 60, UsableOnce: true})
		return err
	})
	if first.ID == "" || first.Pass.IsZero() || first.LifetimeMinutes != 60 || !first.UsableOnce {
		t.Fatalf("CreateTAP = id %q, pass empty %t, lifetime %d, once %t", first.ID, first.Pass.IsZero(), first.LifetimeMinutes, first.UsableOnce)
	}
	for _, s := range []string{fmt.Sprint(first), fmt.Sprintf("%+v", first), fmt.Sprintf("%#v", first)} {
		if strings.Contains(s, first.Pass.Reveal()) {
			t.Fatalf("the pass is visible when the TAP is printed: %s", s)
		}
	}
	second, err := f.Methods.CreateTAP(ctx, u.ID, provisioning.TAPRequest{LifetimeMinutes: 60, UsableOnce: true})
	if err != nil {
		t.Fatalf("second CreateTAP: %v", err)
	}
	if second.ID == first.ID || second.Pass.Reveal() == first.Pass.Reveal() {
		t.Fatalf("a second pass must be new: ids %s %s", first.ID, second.ID)
	}
	types, err := f.Methods.ListAuthMethods(ctx, u.ID)
	if err != nil {
		t.Fatalf("ListAuthMethods: %v", err)
	}
	taps := 0
	for _, ty := range types {
		if strings.HasSuffix(ty, "temporaryAccessPassAuthenticationMethod") {
			taps++
		}
	}
	if taps != 1 {
		t.Fatalf("after two creates the user holds %d passes, want 1 (%v)", taps, types)
	}
	for i, id := range []string{first.ID, second.ID, second.ID} {
		if err := f.Methods.DeleteTAP(ctx, u.ID, id); err != nil {
			t.Fatalf("DeleteTAP #%d (%s): %v", i+1, id, err)
		}
	}
}

// lifetimeInMinutes outside Graph's 10..43200 is refused.
func testTAPBounds(t *testing.T, f DayOneFixture) {
	ctx := ctxFor(t)
	u := create(t, f.DirectoryFixture, newUser(f.DirectoryFixture, "tapb", tag(t)))
	for _, lt := range []int{5, 43201} {
		Eventually(t, f.Settle, "CreateTAP out of range", func() error {
			_, err := f.Methods.CreateTAP(ctx, u.ID, provisioning.TAPRequest{LifetimeMinutes: lt, UsableOnce: true})
			if errors.Is(err, provisioning.ErrNotFound) {
				return err // not replicated yet
			}
			if !errors.Is(err, provisioning.ErrRejected) {
				t.Fatalf("CreateTAP lifetime %d: want a rejection, got %v", lt, err)
			}
			return nil
		})
	}
}

// The password is always listed; a registered method shows up.
func testListAuthMethods(t *testing.T, f DayOneFixture) {
	ctx := ctxFor(t)
	u := create(t, f.DirectoryFixture, newUser(f.DirectoryFixture, "methods", tag(t)))
	var types []string
	Eventually(t, f.Settle, "ListAuthMethods", func() error {
		var err error
		types, err = f.Methods.ListAuthMethods(ctx, u.ID)
		return err
	})
	if len(types) == 0 || !strings.HasSuffix(types[0], "passwordAuthenticationMethod") {
		t.Fatalf("ListAuthMethods = %v, want the password method first", types)
	}
	if f.AddMethod == nil {
		return
	}
	const authenticator = "#microsoft.graph.microsoftAuthenticatorAuthenticationMethod"
	f.AddMethod(t, u.ID, authenticator)
	types, err := f.Methods.ListAuthMethods(ctx, u.ID)
	if err != nil {
		t.Fatalf("ListAuthMethods: %v", err)
	}
	if !strings.Contains(strings.Join(types, " "), authenticator) {
		t.Fatalf("ListAuthMethods = %v, want %s", types, authenticator)
	}
}

func testSendMail(t *testing.T, f DayOneFixture) {
	if f.Sender == "" {
		t.Skip("no sender mailbox in the fixture")
	}
	ctx := ctxFor(t)
	subject := "personio-entra conformance " + tag(t)
	if err := f.Mailer.SendMail(ctx, f.Sender, provisioning.Mail{To: []string{f.Sender}, Subject: subject, Body: "conformance check\n"}); err != nil {
		t.Fatalf("SendMail: %v", err)
	}
	if f.Sent != nil {
		sent := f.Sent()
		if len(sent) == 0 || sent[len(sent)-1] != subject {
			t.Fatalf("sent subjects %v, want %q last", sent, subject)
		}
	}
	err := f.Mailer.SendMail(ctx, f.Sender, provisioning.Mail{Subject: "no recipient", Body: "x"})
	if !errors.Is(err, provisioning.ErrRejected) {
		t.Fatalf("SendMail without a recipient: want a rejection, got %v", err)
	}
}
