// Package console is the administrator's web console, served under /ui/ on
// the same listener as the admin API: server-rendered HTML (html/template)
// with its templates and one stylesheet embedded, readable without
// JavaScript. It signs an administrator in with the admin token, keeps the
// session on the server (in the replicated state bucket, so any replica
// serves it) and protects every form with a per-session CSRF
// token and a cross-origin check. What it shows comes from a Backend that
// the command wires to the engine, the full sync and the queue.
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/personio-entra/personio-entra/provisioning"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Prefix is where the console is mounted.
const Prefix = "/ui"

// Backend is what the console needs from the running product. Errors wrap
// handlers.ErrNotFound (the page answers 404) or handlers.ErrUnavailable
// (503: Personio, Graph or NATS could not be reached) to choose the status.
type Backend interface {
	// Backlog is the number of work messages queued or in flight.
	Backlog(ctx context.Context) (int, error)
	DeadLetters(ctx context.Context) ([]DeadLetter, error)
	DeadLetter(ctx context.Context, seq uint64) (DeadLetter, error)
	Redrive(ctx context.Context, seq uint64) error
	PurgeDeadLetter(ctx context.Context, seq uint64) error
	// Approvals lists the held change sets (open and released ones).
	Approvals(ctx context.Context) ([]provisioning.Approval, error)
	Approve(ctx context.Context, id string) (provisioning.Approval, error)
	// LastSyncs is the outcome of the last complete and the last
	// incremental full sync (either may be missing).
	LastSyncs(ctx context.Context) ([]SyncOutcome, error)
	// GraphThrottledUntil is when the latest 429 from Microsoft Graph asked
	// this process to slow down until (zero when never).
	GraphThrottledUntil() time.Time
	// Search finds people in Personio by name, email or person id.
	Search(ctx context.Context, query string, limit int) ([]PersonMatch, error)
	// Person is everything the person page shows.
	Person(ctx context.Context, personID string) (Person, error)
	// Enqueue queues a reconcile of the person (reason "console").
	Enqueue(ctx context.Context, personID string) error
	// Preview plans the person now without writing anything.
	Preview(ctx context.Context, personID string) (provisioning.Plan, error)
	RulesPreviewer
}

// DeadLetter is one failed piece of work (the queue's dead-letter record).
type DeadLetter struct {
	Sequence     uint64
	Time         time.Time
	Reason       string // permanent or max_deliveries
	Error        string
	Attempts     int
	PersonID     string
	EmploymentID string
	WorkReason   string // event name, schedule, sync, redrive ...
	Subject      string
	Data         string // the message body, as text
}

// SyncOutcome is how one full sync ended.
type SyncOutcome struct {
	Kind     string // complete or incremental
	Trigger  string // schedule, admin API, console ...
	Started  time.Time
	Finished time.Time
	Error    string
	Report   provisioning.SyncReport
}

// PersonMatch is one search result.
type PersonMatch struct {
	PersonID   string
	Name       string
	Email      string
	Status     string
	Department string
	Position   string
}

// Config configures the console.
type Config struct {
	// AdminToken is what an administrator types to sign in (ADMIN_TOKEN).
	AdminToken string
	Backend    Backend
	// Store keeps the sessions, the failed sign-ins and the one-time
	// sign-in codes: the product's replicated state bucket, so that every
	// replica knows them (required).
	Store  Store
	Logger *slog.Logger
	// SecureCookie marks the session cookie Secure also for requests that
	// did not arrive over TLS here: set it when a proxy in front
	// terminates TLS (CONSOLE_SECURE_COOKIE). X-Forwarded-Proto is not
	// trusted: any client can send it.
	SecureCookie bool
	// Session lifetimes; defaults 8 h absolute and 30 min idle.
	SessionMaxAge  time.Duration
	SessionIdle    time.Duration
	Now            func() time.Time
	SignInFailures int           // failed sign-ins allowed per client within FailureWindow (default 5)
	FailureWindow  time.Duration // default 15 min
	// MaxSessions bounds the sessions (default 1000): the oldest session
	// is dropped when a new one would exceed it.
	MaxSessions int
}

// Console serves the pages. Create it with New.
type Console struct {
	cfg      Config
	log      *slog.Logger
	sessions *sessionStore
	limiter  *failureLimiter
	codes    *codeStore
	pages    map[string]*template.Template
	router   chi.Router
}

// New builds the console. An empty admin token is an error: without it
// nobody could sign in, and the command does not mount the console then.
func New(cfg Config) (*Console, error) {
	if cfg.AdminToken == "" {
		return nil, errors.New("console: the admin token (ADMIN_TOKEN) is empty")
	}
	if cfg.Backend == nil {
		return nil, errors.New("console: no backend")
	}
	if cfg.Store == nil {
		return nil, errors.New("console: no session store")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SessionMaxAge <= 0 {
		cfg.SessionMaxAge = 8 * time.Hour
	}
	if cfg.SessionIdle <= 0 {
		cfg.SessionIdle = 30 * time.Minute
	}
	if cfg.SignInFailures <= 0 {
		cfg.SignInFailures = 5
	}
	if cfg.FailureWindow <= 0 {
		cfg.FailureWindow = 15 * time.Minute
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 1000
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	c := &Console{
		cfg: cfg, log: cfg.Logger, pages: pages,
		sessions: newSessionStore(cfg.Store, cfg.Logger, cfg.Now, cfg.SessionMaxAge, cfg.SessionIdle, cfg.MaxSessions),
		limiter:  newFailureLimiter(cfg.Store, cfg.Logger, cfg.Now, cfg.SignInFailures, cfg.FailureWindow),
		codes:    newCodeStore(cfg.Store, cfg.Now),
	}
	c.router = c.routes()
	return c, nil
}

// ServeHTTP serves the console; mount it at Prefix ("/ui").
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.router.ServeHTTP(w, r) }

// Routes are the console's routes (for tests that check every route).
func (c *Console) Routes() chi.Routes { return c.router }

// templates: layout.html plus one file per page.
func parsePages() (map[string]*template.Template, error) {
	files, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, f := range files {
		name := strings.TrimSuffix(strings.TrimPrefix(f, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.New(name).Funcs(funcs).ParseFS(assets, "templates/layout.html", f)
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", f, err)
		}
		pages[name] = t
	}
	return pages, nil
}
