package entra

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/microsoftgraph/msgraph-sdk-go/models"

	"github.com/personio-entra/personio-entra/provisioning"
)

var (
	_ provisioning.AuthMethods      = (*Directory)(nil)
	_ provisioning.PermissionReader = (*Directory)(nil)
)

// ListAuthMethods lists the user's registered authentication methods
// (https://learn.microsoft.com/en-us/graph/api/authentication-list-methods).
// A user has a handful, so the first page is all of them.
func (d *Directory) ListAuthMethods(ctx context.Context, userID string) ([]string, error) {
	ctx = withOp(ctx, "list authentication methods")
	resp, err := d.client.Users().ByUserId(userID).Authentication().Methods().Get(ctx, nil)
	if err != nil {
		return nil, d.fail("list authentication methods of "+userID, err)
	}
	var out []string
	for _, m := range resp.GetValue() {
		out = append(out, deref(m.GetOdataType()))
	}
	return out, nil
}

// CreateTAP issues a Temporary Access Pass
// (https://learn.microsoft.com/en-us/graph/api/authentication-post-temporaryaccesspassmethods).
// The pass is only in the answer; it never reaches a log line or an error.
func (d *Directory) CreateTAP(ctx context.Context, userID string, req provisioning.TAPRequest) (provisioning.TAP, error) {
	ctx = withOp(ctx, "create temporary access pass")
	body := models.NewTemporaryAccessPassAuthenticationMethod()
	if req.LifetimeMinutes > 0 {
		lt := int32(req.LifetimeMinutes)
		body.SetLifetimeInMinutes(&lt)
	}
	once := req.UsableOnce
	body.SetIsUsableOnce(&once)
	if !req.StartDateTime.IsZero() {
		st := req.StartDateTime.UTC()
		body.SetStartDateTime(&st)
	}
	resp, err := d.client.Users().ByUserId(userID).Authentication().TemporaryAccessPassMethods().Post(ctx, body, nil)
	if err != nil {
		return provisioning.TAP{}, classifyTAP(d.fail("create Temporary Access Pass for "+userID, err))
	}
	t := provisioning.TAP{ID: deref(resp.GetId()), Pass: provisioning.NewSecret(deref(resp.GetTemporaryAccessPass()))}
	if v := resp.GetLifetimeInMinutes(); v != nil {
		t.LifetimeMinutes = int(*v)
	}
	if v := resp.GetIsUsableOnce(); v != nil {
		t.UsableOnce = *v
	}
	if v := resp.GetStartDateTime(); v != nil {
		t.StartDateTime = *v
	}
	if t.ID == "" || t.Pass.IsZero() {
		return provisioning.TAP{}, fmt.Errorf("create Temporary Access Pass for %s: Graph answered without an id or a pass", userID)
	}
	return t, nil
}

// classifyTAP tells the documented refusals of a create apart: 400 when
// the tenant's Temporary Access Pass policy refuses (method off, lifetime
// outside its range, multi-use not allowed) and 400 when the user already
// has a usable method. Graph documents no code for either, so after the
// status the message decides (docs/graph-behaviour.md#temporary-access-pass).
func classifyTAP(err error) error {
	var de *provisioning.DirectoryError
	if !errors.As(err, &de) || de.Kind != provisioning.KindRejected {
		return err
	}
	msg := strings.ToLower(de.Message)
	switch {
	case strings.Contains(msg, "authentication method") && strings.Contains(msg, "already"):
		return fmt.Errorf("%w: %w", provisioning.ErrTAPHasMethod, err)
	case strings.Contains(msg, "policy"):
		return fmt.Errorf("%w: %w", provisioning.ErrTAPPolicyDisabled, err)
	}
	return err
}

// DeleteTAP deletes a pass
// (https://learn.microsoft.com/en-us/graph/api/temporaryaccesspassauthenticationmethod-delete);
// one that is gone already is success.
func (d *Directory) DeleteTAP(ctx context.Context, userID, methodID string) error {
	ctx = withOp(ctx, "delete temporary access pass")
	err := d.client.Users().ByUserId(userID).Authentication().TemporaryAccessPassMethods().
		ByTemporaryAccessPassAuthenticationMethodId(methodID).Delete(ctx, nil)
	if err == nil {
		return nil
	}
	if g, ok := inspect(err); ok && g.status == http.StatusNotFound {
		return nil
	}
	return d.fail("delete Temporary Access Pass "+methodID+" of "+userID, err)
}
