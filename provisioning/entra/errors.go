package entra

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	abstractions "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"

	"github.com/personio-entra/personio-entra/provisioning"
)

// graphErr is what we read out of a Graph failure.
type graphErr struct {
	status     int
	code, msg  string
	detailCode string
	target     string
	retryAfter time.Duration
}

func inspect(err error) (graphErr, bool) {
	var oe *odataerrors.ODataError
	if errors.As(err, &oe) {
		g := graphErr{status: oe.GetStatusCode()}
		if me := oe.GetErrorEscaped(); me != nil {
			g.code = deref(me.GetCode())
			g.msg = deref(me.GetMessage())
			g.target = deref(me.GetTarget())
			for _, dt := range me.GetDetails() {
				if c := deref(dt.GetCode()); c != "" && g.detailCode == "" {
					g.detailCode = c
					if t := deref(dt.GetTarget()); t != "" {
						g.target = t
					}
				}
			}
		}
		g.retryAfter = headerRetryAfter(oe.GetResponseHeaders())
		return g, true
	}
	var ae *abstractions.ApiError
	if errors.As(err, &ae) {
		return graphErr{status: ae.GetStatusCode(), msg: ae.Message, retryAfter: headerRetryAfter(ae.GetResponseHeaders())}, true
	}
	return graphErr{}, false
}

func headerRetryAfter(h *abstractions.ResponseHeaders) time.Duration {
	if h == nil {
		return 0
	}
	for _, k := range []string{"Retry-After", "retry-after"} {
		if v := h.Get(k); len(v) > 0 {
			if d, ok := retryAfter(v[0], time.Now()); ok {
				return d
			}
		}
	}
	return 0
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// isConflict: duplicate UPN / proxy address: match the status and
// details[].code, not the message (docs/graph-behaviour.md#errors-and-conflicts).
func (g graphErr) isConflict() bool {
	return g.status == http.StatusConflict || (g.status == http.StatusBadRequest && g.detailCode == "ObjectConflict")
}

// isAlreadyMember: 400 Request_BadRequest "...already exist..."
// (docs/graph-behaviour.md#group-membership).
// Status and code first, message second.
func (g graphErr) isAlreadyMember() bool {
	return g.status == http.StatusBadRequest && g.code == "Request_BadRequest" &&
		strings.Contains(strings.ToLower(g.msg), "already exist")
}

// classify turns any failure into a *provisioning.DirectoryError with Op.
func classify(op string, err error) *provisioning.DirectoryError {
	var de *provisioning.DirectoryError
	if errors.As(err, &de) {
		c := *de
		c.Op = op + ": " + de.Op
		return &c
	}
	out := &provisioning.DirectoryError{Op: op, Err: err}
	if g, ok := inspect(err); ok {
		out.Code, out.Message, out.Target = g.code, g.msg, g.target
		switch {
		case g.status == http.StatusNotFound:
			out.Kind = provisioning.KindNotFound
		case g.isConflict():
			out.Kind = provisioning.KindConflict
		case g.status == http.StatusTooManyRequests:
			out.Kind = provisioning.KindThrottled
			out.RetryAfter = g.retryAfter
		case g.status == http.StatusUnauthorized || g.status == http.StatusForbidden:
			out.Kind = provisioning.KindForbidden
		case g.status >= 500 || g.status == http.StatusRequestTimeout:
			out.Kind = provisioning.KindTransient
			out.RetryAfter = g.retryAfter
		case g.status >= 400:
			out.Kind = provisioning.KindRejected
		default:
			out.Kind = provisioning.KindUnknown
		}
		return out
	}
	var afe *azidentity.AuthenticationFailedError
	var ne net.Error
	switch {
	case errors.As(err, &afe):
		out.Code = "AuthenticationFailed"
		switch {
		case afe.RawResponse == nil:
			// No HTTP answer from the token endpoint (connection refused or
			// reset, DNS, timeout): azidentity reports it as an
			// AuthenticationFailedError without RawResponse, but it says
			// nothing about the credential. Try again later.
			// https://pkg.go.dev/github.com/Azure/azure-sdk-for-go/sdk/azidentity#AuthenticationFailedError
			out.Kind = provisioning.KindTransient
		case afe.RawResponse.StatusCode >= 500 || afe.RawResponse.StatusCode == http.StatusTooManyRequests ||
			afe.RawResponse.StatusCode == http.StatusRequestTimeout:
			out.Kind = provisioning.KindTransient
		default:
			// Wrong secret, unknown client, no consent: the identity
			// platform answered and refused the credential.
			out.Kind = provisioning.KindForbidden
		}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne):
		out.Kind = provisioning.KindTransient
	default:
		if credentialProblem(err) {
			out.Kind = provisioning.KindForbidden
			out.Code = "CredentialUnavailable"
		} else {
			// Connection resets and truncated responses surface as plain errors.
			out.Kind = provisioning.KindTransient
		}
	}
	return out
}

// fail wraps err for op and logs it (never with secrets: Graph errors carry
// codes and messages only).
func (d *Directory) fail(op string, err error) error {
	de := classify(op, err)
	d.log.Debug("graph call failed", "op", op, "kind", de.Kind.String(), "code", de.Code, "message", de.Message)
	return de
}

// lostResponse reports whether a create may have been applied although no
// success came back: no response (timeout, reset) or a 5xx.
func lostResponse(err error) bool {
	if g, ok := inspect(err); ok {
		return g.status >= 500
	}
	var afe *azidentity.AuthenticationFailedError
	if errors.As(err, &afe) || credentialProblem(err) {
		return false // no token: the request was never sent
	}
	return !errors.Is(err, context.Canceled)
}

// credentialProblem recognises azidentity's "credential unavailable" errors
// (no managed identity endpoint, no federated token file). Their type is
// unexported, so the credential name in the text is what identifies them.
func credentialProblem(err error) bool {
	msg := err.Error()
	for _, name := range []string{"ManagedIdentityCredential", "WorkloadIdentityCredential", "ChainedTokenCredential", "ClientSecretCredential", "ClientCertificateCredential"} {
		if strings.Contains(msg, name) {
			return true
		}
	}
	return false
}
