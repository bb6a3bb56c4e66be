package console

import (
	"context"
	"crypto/subtle"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const (
	sessionCookie = "personio_entra_console"
	signInCookie  = "personio_entra_signin" // pre-session CSRF token of the sign-in form
	cookiePath    = Prefix + "/"
	maxFormBytes  = 2 << 20 // a rules file upload is the largest form
)

// contentSecurityPolicy allows the console's own stylesheet and nothing
// inline: no script runs on any page.
const contentSecurityPolicy = "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; " +
	"form-action 'self'; frame-ancestors 'none'; img-src 'self'"

// securityHeaders go on every answer, assets included; pages (everything
// but the static assets) carry personal data and are never stored.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
		if !strings.HasPrefix(r.URL.Path, Prefix+"/static/") {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

type ctxKey int

const sessionKey ctxKey = 0

func sessionFrom(ctx context.Context) *session {
	se, _ := ctx.Value(sessionKey).(*session)
	return se
}

// crossOrigin refuses state-changing requests another site started: the
// browser's Sec-Fetch-Site, or else Origin against Host
// (https://pkg.go.dev/net/http#CrossOriginProtection).
var crossOrigin = http.NewCrossOriginProtection()

// requireSession lets a request through only with a live session: a GET
// without one is sent to the sign-in page, anything else gets 403. A POST
// must also come from this origin and carry the session's CSRF token.
func (c *Console) requireSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var se *session
		if ck, err := r.Cookie(sessionCookie); err == nil {
			if se, err = c.sessions.get(r.Context(), ck.Value); err != nil {
				c.storeUnavailable(w, r, "reading the session", err)
				return
			}
		}
		if se == nil {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				http.Redirect(w, r, Prefix+"/signin?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			c.renderError(w, r, http.StatusForbidden, "Your session has ended or you are not signed in: sign in again and repeat the action.")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if err := crossOrigin.Check(r); err != nil {
				c.log.Warn("console: cross-origin request refused", "method", r.Method, "path", r.URL.Path)
				c.renderError(w, r, http.StatusForbidden, "This form was sent from another site and was refused.")
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if !sameToken(r.FormValue("csrf"), se.CSRF) {
				c.log.Warn("console: POST without a valid CSRF token refused", "path", r.URL.Path)
				c.renderError(w, r, http.StatusForbidden, "The form's security token is missing or out of date: reload the page and try again.")
				return
			}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sessionKey, se)))
	})
}

// storeUnavailable answers 503 when the session store cannot be used:
// the console fails closed, it never signs in or serves a page without it.
func (c *Console) storeUnavailable(w http.ResponseWriter, r *http.Request, what string, err error) {
	c.log.Error("console: "+what+" failed", "err", err)
	w.Header().Set("Retry-After", "30")
	c.renderError(w, r, http.StatusServiceUnavailable,
		"The console cannot reach its session store (the NATS state bucket), so nobody can sign in or use a session now: try again in a moment.")
}

// sameToken compares two tokens in constant time (SHA-256 digests, so the
// length does not leak either: https://pkg.go.dev/crypto/subtle#ConstantTimeCompare).
func sameToken(got, want string) bool {
	g, w := digest(got), digest(want)
	return want != "" && subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// secure tells whether cookies must be Secure: the request came over TLS
// here, or the operator said a TLS proxy is in front (CONSOLE_SECURE_COOKIE).
func (c *Console) secure(r *http.Request) bool { return r.TLS != nil || c.cfg.SecureCookie }

func (c *Console) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge time.Duration) {
	ck := &http.Cookie{Name: name, Value: value, Path: cookiePath, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: c.secure(r)}
	switch {
	case maxAge < 0:
		ck.MaxAge = -1
	case maxAge > 0:
		ck.MaxAge = int(maxAge / time.Second)
	}
	http.SetCookie(w, ck)
}

// clientKey is who the sign-in limiter counts failures for: the peer's IP.
// Behind a proxy every client shares one address, and the global limit of
// the failureLimiter still applies.
func clientKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// overLoopback reports whether the request came over a loopback
// connection: the client's address (the TCP peer net/http puts in
// RemoteAddr; no forwarding header is trusted) and the address it reached
// (the connection's local address) are both loopback. The client's side is
// what matters: a listener bound to 0.0.0.0 can get a remote client's
// connection to its loopback address (NAT to 127.0.0.1, port forwarding),
// and such a request is refused.
func overLoopback(r *http.Request) bool {
	local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	return ok && loopbackHost(local.String()) && loopbackHost(r.RemoteAddr)
}

// loopbackHost reports whether hostport ("127.0.0.1:8080", "[::1]:8080")
// names a loopback IP.
func loopbackHost(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// safeNext keeps a post-sign-in redirect inside the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix+"/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") ||
		strings.Contains(next, "/../") || strings.Contains(next, "/./") || strings.HasSuffix(next, "/..") ||
		strings.HasPrefix(next, Prefix+"/signin") || strings.HasPrefix(next, Prefix+"/static/") {
		return Prefix + "/"
	}
	return next
}

// withDeadline gives a page its own time budget: the listener's timeouts
// suit webhooks (seconds), a person page or a rules preview takes longer.
// https://pkg.go.dev/net/http#ResponseController.SetWriteDeadline
func (c *Console) withDeadline(d time.Duration, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		deadline := time.Now().Add(d + 10*time.Second)
		for _, set := range []func(time.Time) error{rc.SetReadDeadline, rc.SetWriteDeadline} {
			if err := set(deadline); err != nil && !errors.Is(err, http.ErrNotSupported) {
				c.log.Warn("console: extending the connection deadline failed", "err", err)
			}
		}
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		h(w, r.WithContext(ctx))
	}
}

func retryAfter(d time.Duration) string {
	return strconv.Itoa(int(d.Round(time.Second)/time.Second) + 1)
}
