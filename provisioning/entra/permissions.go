package entra

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// GrantedPermissions returns the application permissions granted to the
// app in the tenant: the roles claim of its Graph access token
// (https://learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference).
// `personio-entra check` compares them with what the enabled features
// need. The token is read, never verified or logged: the app only looks at
// its own claims.
func (d *Directory) GrantedPermissions(ctx context.Context) ([]string, error) {
	tok, err := d.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{d.scope}})
	if err != nil {
		return nil, d.fail("get a token to read its permissions", err)
	}
	return rolesClaim(tok.Token)
}

// rolesClaim reads the roles claim of a JWT without verifying it.
func rolesClaim(jwt string) ([]string, error) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return nil, errors.New("the access token is not a JWT, so its permissions cannot be read")
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return nil, fmt.Errorf("the access token's claims are not base64url: %w", err)
	}
	var claims struct {
		Roles []string `json:"roles"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, fmt.Errorf("the access token's claims are not JSON: %w", err)
	}
	return claims.Roles, nil
}
