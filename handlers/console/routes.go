package console

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/personio-entra/personio-entra/handlers"
)

var (
	personIDPattern   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	approvalIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

// publicRoutes need no session: the sign-in page, the one-time link and the
// stylesheet. Every other route is behind requireSession (checked by a test
// that walks the router).
var publicRoutes = map[string]bool{
	"GET /signin":      true,
	"POST /signin":     true,
	"GET /signin/link": true,
	"GET /static/*":    true,
}

// PublicRoute reports whether method and pattern (as chi.Walk names them)
// are served without a session.
func PublicRoute(method, pattern string) bool { return publicRoutes[method+" "+pattern] }

func (c *Console) routes() chi.Router {
	r := chi.NewRouter()
	r.Use(securityHeaders, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == Prefix { // the cookies' path is /ui/
				http.Redirect(w, r, Prefix+"/", http.StatusMovedPermanently)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	static, _ := fs.Sub(assets, "static")
	r.Get("/static/*", http.StripPrefix(Prefix+"/static/", http.FileServerFS(static)).ServeHTTP)
	r.Get("/signin", c.signInPage)
	r.Post("/signin", c.signIn)
	r.Get("/signin/link", c.signInLink)
	r.Group(func(r chi.Router) {
		r.Use(c.requireSession)
		r.Post("/signout", c.signOut)
		r.Get("/", c.withDeadline(time.Minute, c.overview))
		r.Get("/people", c.withDeadline(time.Minute, c.people))
		r.Get("/people/{id}", c.withDeadline(2*time.Minute, c.person))
		r.Get("/people/{id}/preview", c.withDeadline(time.Minute, c.preview))
		r.Post("/people/{id}/sync", c.withDeadline(30*time.Second, c.syncPerson))
		r.Get("/approvals", c.withDeadline(time.Minute, c.approvals))
		r.Get("/approvals/{id}", c.withDeadline(time.Minute, c.approval))
		r.Post("/approvals/{id}/approve", c.withDeadline(time.Minute, c.approve))
		r.Get("/deadletters", c.withDeadline(time.Minute, c.deadLetters))
		r.Get("/deadletters/{seq}", c.withDeadline(time.Minute, c.deadLetter))
		r.Post("/deadletters/{seq}/redrive", c.withDeadline(time.Minute, c.redrive))
		r.Get("/deadletters/{seq}/purge", c.withDeadline(time.Minute, c.confirmPurge))
		r.Post("/deadletters/{seq}/purge", c.withDeadline(time.Minute, c.purge))
		c.rulesRoutes(r)
	})
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		c.renderError(w, r, http.StatusNotFound, "There is no console page at "+r.URL.Path+".")
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		c.renderError(w, r, http.StatusMethodNotAllowed, r.Method+" is not allowed here.")
	})
	return r
}

// SignInLink issues a one-time sign-in code valid for ttl and returns the
// path that redeems it (append it to the listener's base URL). The link
// works once, on any replica, and only over a loopback connection (client
// and listener address both loopback): it is for the local demo. The error
// says the session store could not keep the code.
func (c *Console) SignInLink(ctx context.Context, ttl time.Duration) (string, error) {
	code, err := c.codes.issue(ctx, ttl)
	if err != nil {
		return "", fmt.Errorf("console: sign-in link: %w", err)
	}
	return Prefix + "/signin/link?code=" + code, nil
}

// ---- sign-in and sign-out

type signInData struct {
	Next, Error string
	Token       string // the pre-session CSRF token of the form
}

func (c *Console) signInPage(w http.ResponseWriter, r *http.Request) {
	if ck, err := r.Cookie(sessionCookie); err == nil {
		// A store that cannot be read shows the form: sending it answers 503.
		if se, err := c.sessions.get(r.Context(), ck.Value); err == nil && se != nil {
			http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
			return
		}
	}
	c.renderSignIn(w, r, http.StatusOK, r.URL.Query().Get("next"), "")
}

func (c *Console) renderSignIn(w http.ResponseWriter, r *http.Request, status int, next, msg string) {
	tok := randomToken()
	c.setCookie(w, r, signInCookie, tok, time.Hour)
	c.render(w, r, status, "signin", "Sign in", signInData{Next: safeNext(next), Error: msg, Token: tok})
}

func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	if err := crossOrigin.Check(r); err != nil {
		c.renderError(w, r, http.StatusForbidden, "This sign-in form was sent from another site and was refused.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	next := r.FormValue("next")
	pre, err := r.Cookie(signInCookie)
	if err != nil || !sameToken(r.FormValue("csrf"), pre.Value) {
		c.renderSignIn(w, r, http.StatusForbidden, next, "The sign-in form expired or your browser did not send its cookie: try again.")
		return
	}
	client := clientKey(r)
	release, wait, ok, err := c.limiter.reserve(r.Context(), client) // counted as failed until it succeeds
	if err != nil {
		c.storeUnavailable(w, r, "sign-in", err)
		return
	}
	if !ok {
		w.Header().Set("Retry-After", retryAfter(wait))
		c.log.Warn("console: sign-in refused, too many failed attempts", "client", client)
		c.renderSignIn(w, r, http.StatusTooManyRequests, next,
			fmt.Sprintf("Too many failed sign-ins: try again in %s.", wait.Round(time.Second)))
		return
	}
	if !sameToken(r.FormValue("token"), c.cfg.AdminToken) {
		c.log.Warn("console: failed sign-in", "client", client)
		c.renderSignIn(w, r, http.StatusUnauthorized, next, "That is not the admin token (ADMIN_TOKEN).")
		return
	}
	release()
	if !c.startSession(w, r) {
		return
	}
	c.log.Info("console: signed in", "client", client)
	http.Redirect(w, r, safeNext(next), http.StatusSeeOther)
}

// startSession replaces the browser's session with a new one; when the
// store fails it answers 503 and reports false.
func (c *Console) startSession(w http.ResponseWriter, r *http.Request) bool {
	if old, err := r.Cookie(sessionCookie); err == nil {
		// A new sign-in never keeps an older id alive.
		if err := c.sessions.delete(r.Context(), old.Value); err != nil {
			c.storeUnavailable(w, r, "sign-in", err)
			return false
		}
	}
	id, err := c.sessions.create(r.Context())
	if err != nil {
		c.storeUnavailable(w, r, "sign-in", err)
		return false
	}
	c.setCookie(w, r, sessionCookie, id, 0) // a browser-session cookie; the server enforces the expiry
	c.setCookie(w, r, signInCookie, "", -1)
	return true
}

// signInLink redeems a one-time code from the demo's link and sends the
// browser on to a clean URL, so the code stays neither in the address bar
// nor in the history (a redirect replaces the entry).
func (c *Console) signInLink(w http.ResponseWriter, r *http.Request) {
	if !overLoopback(r) {
		c.renderError(w, r, http.StatusForbidden, "Sign-in links work only from this machine, over a loopback address: sign in with the admin token.")
		return
	}
	client := clientKey(r)
	release, wait, ok, err := c.limiter.reserve(r.Context(), client) // counted as failed until it succeeds
	if err != nil {
		c.storeUnavailable(w, r, "sign-in with a one-time link", err)
		return
	}
	if !ok {
		w.Header().Set("Retry-After", retryAfter(wait))
		c.renderError(w, r, http.StatusTooManyRequests, "Too many failed sign-ins: try again later.")
		return
	}
	redeemed, err := c.codes.redeem(r.Context(), r.URL.Query().Get("code"))
	if err != nil {
		c.storeUnavailable(w, r, "sign-in with a one-time link", err)
		return
	}
	if !redeemed {
		c.renderError(w, r, http.StatusForbidden, "This sign-in link was already used or has expired: sign in with the admin token.")
		return
	}
	release()
	if !c.startSession(w, r) {
		return
	}
	c.log.Info("console: signed in with a one-time link", "client", client)
	http.Redirect(w, r, Prefix+"/", http.StatusSeeOther)
}

func (c *Console) signOut(w http.ResponseWriter, r *http.Request) {
	c.setCookie(w, r, sessionCookie, "", -1)
	if ck, err := r.Cookie(sessionCookie); err == nil {
		if err := c.sessions.delete(r.Context(), ck.Value); err != nil {
			// The browser forgets the id; the stored session ends by
			// itself after the idle time.
			c.storeUnavailable(w, r, "sign-out", err)
			return
		}
	}
	http.Redirect(w, r, Prefix+"/signin", http.StatusSeeOther)
}

// ---- errors

// backendError renders a backend failure with the status its kind calls for.
func (c *Console) backendError(w http.ResponseWriter, r *http.Request, what string, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, handlers.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, handlers.ErrUnavailable):
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "30")
	case errors.Is(err, r.Context().Err()) && r.Context().Err() != nil:
		status = http.StatusGatewayTimeout
	}
	if status != http.StatusNotFound {
		c.log.Error("console: "+what+" failed", "err", err)
	}
	c.renderError(w, r, status, what+": "+err.Error())
}

func seqParam(r *http.Request) (uint64, bool) {
	seq, err := strconv.ParseUint(chi.URLParam(r, "seq"), 10, 64)
	return seq, err == nil && seq > 0
}

func trimmed(s string) string { return strings.TrimSpace(s) }
