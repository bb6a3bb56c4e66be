package handlers

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
)

// AdminBackend is what the admin API needs; the command wires the engine,
// the full sync and the queue behind it. Results are rendered as JSON.
type AdminBackend interface {
	Plan(ctx context.Context, personID string) (any, error)
	PlanAll(ctx context.Context) (any, error)
	Enqueue(ctx context.Context, personID, reason string) error
	FullSync(ctx context.Context) (any, error)
	Audit(ctx context.Context, personID string, limit int) ([]json.RawMessage, error)
	Approvals(ctx context.Context) (any, error)
	Approve(ctx context.Context, id string) (any, error)
	DeadLetters(ctx context.Context) (any, error)
	Redrive(ctx context.Context, seq uint64) error
	PurgeDeadLetter(ctx context.Context, seq uint64) error
	// Explain is everything a person page shows, with the rule behind
	// every value (provisioning.Explained); nothing is applied.
	Explain(ctx context.Context, personID string) (any, error)
	// PreviewRules evaluates candidate rules (YAML; name is used in the
	// problems' file:line:col) for everyone and compares them with the
	// current ones (provisioning.RulesPreview). Invalid rules are an
	// *InvalidInput listing the problems.
	PreviewRules(ctx context.Context, name string, rulesYAML []byte) (any, error)
}

// InvalidInput is returned by a backend when the request's input is
// invalid: the API answers 400 with the message and the problems (each with
// its file:line:col for rules).
type InvalidInput struct {
	Message  string
	Problems any
}

func (e *InvalidInput) Error() string { return e.Message }

// maxPreviewBody bounds the candidate rules a preview accepts; the example
// rules are about 10 KiB.
const maxPreviewBody = 1 << 20

var previewName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// Errors a backend returns (wrapped) to choose the status: ErrNotFound →
// 404, ErrUnavailable → 503 with Retry-After (Personio, Graph or NATS could
// not be reached: try again), anything else → 500.
var (
	ErrNotFound    = errors.New("not found")
	ErrUnavailable = errors.New("a service personio-entra depends on is unavailable")
)

// adminDeadlineSlack is added to a route's timeout for the connection
// deadlines, so that the error of a timed-out request still gets written.
const adminDeadlineSlack = 10 * time.Second

var adminPersonID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Admin returns the admin API router, mounted under /admin. Every request
// needs `Authorization: Bearer <ADMIN_TOKEN>` (compared in constant time).
// An empty token disables the API (the caller does not mount it).
func Admin(token string, b AdminBackend, log *slog.Logger) http.Handler {
	r := chi.NewRouter()
	r.Use(func(next http.Handler) http.Handler {
		// Compare SHA-256 digests, not the header and the token:
		// ConstantTimeCompare returns at once on unequal lengths
		// (https://pkg.go.dev/crypto/subtle#ConstantTimeCompare), which
		// would leak the token's length; digests always have the same one.
		want := sha256.Sum256([]byte("Bearer " + token))
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			got := sha256.Sum256([]byte(req.Header.Get("Authorization")))
			if token == "" || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="personio-entra admin"`)
				writeAdminError(w, http.StatusUnauthorized, "missing or wrong bearer token: send Authorization: Bearer <ADMIN_TOKEN>")
				return
			}
			next.ServeHTTP(w, req)
		})
	})
	withTimeout := func(d time.Duration, h func(w http.ResponseWriter, r *http.Request, ctx context.Context)) http.HandlerFunc {
		return func(w http.ResponseWriter, req *http.Request) {
			// The admin API shares the webhook listener, whose read and
			// write timeouts (seconds) suit webhooks; a plan of everyone or
			// a full sync takes longer. Extend this connection's deadlines
			// to the route's own budget, or the answer would be cut off
			// (and ReadTimeout would cancel the request's context).
			// https://pkg.go.dev/net/http#ResponseController.SetWriteDeadline
			rc := http.NewResponseController(w)
			deadline := time.Now().Add(d + adminDeadlineSlack)
			if err := rc.SetReadDeadline(deadline); err != nil && !errors.Is(err, http.ErrNotSupported) {
				log.Warn("admin request: extending the read deadline failed", "err", err)
			}
			if err := rc.SetWriteDeadline(deadline); err != nil && !errors.Is(err, http.ErrNotSupported) {
				log.Warn("admin request: extending the write deadline failed", "err", err)
			}
			ctx, cancel := context.WithTimeout(req.Context(), d)
			defer cancel()
			h(w, req, ctx)
		}
	}
	person := func(w http.ResponseWriter, req *http.Request) (string, bool) {
		id := chi.URLParam(req, "id")
		if !adminPersonID.MatchString(id) {
			writeAdminError(w, http.StatusBadRequest, "person id must be 1-64 letters, digits, '-' or '_'")
			return "", false
		}
		return id, true
	}
	reply := func(w http.ResponseWriter, v any, err error) {
		if bad := (*InvalidInput)(nil); errors.As(err, &bad) {
			writeAdminJSON(w, http.StatusBadRequest, map[string]any{"error": bad.Message, "problems": bad.Problems})
			return
		}
		if err != nil {
			status := http.StatusInternalServerError
			switch {
			case errors.Is(err, ErrNotFound):
				status = http.StatusNotFound
			case errors.Is(err, ErrUnavailable):
				status = http.StatusServiceUnavailable
				w.Header().Set("Retry-After", "30")
			case errors.Is(err, context.DeadlineExceeded):
				status = http.StatusGatewayTimeout
			}
			log.Error("admin request failed", "err", err)
			writeAdminError(w, status, err.Error())
			return
		}
		writeAdminJSON(w, http.StatusOK, v)
	}

	r.Get("/plan", withTimeout(10*time.Minute, func(w http.ResponseWriter, req *http.Request, ctx context.Context) {
		v, err := b.PlanAll(ctx)
		reply(w, v, err)
	}))
	r.Get("/plan/{id}", withTimeout(time.Minute, func(w http.ResponseWriter, req *http.Request, ctx context.Context) {
		if id, ok := person(w, req); ok {
			var v any
			var err error
			if explain, _ := strconv.ParseBool(req.URL.Query().Get("explain")); explain {
				v, err = b.Explain(ctx, id)
			} else {
				v, err = b.Plan(ctx, id)
			}
			reply(w, v, err)
		}
	}))
	r.Get("/explain/{id}", withTimeout(time.Minute, func(w http.ResponseWriter, req *http.Request, ctx context.Context) {
		if id, ok := person(w, req); ok {
			v, err := b.Explain(ctx, id)
			reply(w, v, err)
		}
	}))
	r.Post("/preview", withTimeout(10*time.Minute, func(w http.ResponseWriter, req *http.Request, ctx context.Context) {
		name := req.URL.Query().Get("name")
		if name == "" {
			name = "candidate.yaml"
		}
		if !previewName.MatchString(name) {
			writeAdminError(w, http.StatusBadRequest, "name must be 1-64 letters, digits, '.', '-' or '_'")
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxPreviewBody))
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			writeAdminError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the candidate rules are larger than %d bytes", maxPreviewBody))
			return
		}
		if err != nil {
			writeAdminError(w, http.StatusBadRequest, "read the candidate rules: "+err.Error())
			return
		}
		if len(strings.TrimSpace(string(body))) == 0 {
			writeAdminError(w, http.StatusBadRequest, "send the candidate rules file (YAML) as the request body")
			return
		}
		v, err := b.PreviewRules(ctx, name, body)
		reply(w, v, err)
	}))
	r.Post("/sync/{id}", withTimeout(10*time.Second, func(w http.ResponseWriter, req *http.Request, ctx context.Context) {
		if id, ok := person(w, req); ok {
			if err := b.Enqueue(ctx, id, "admin"); err != nil {
				reply(w, nil, err)
				return
			}
			writeAdminJSON(w, http.StatusAccepted, map[string]string{"status": "queued", "person_id": id})
		}
	}))
	r.Post("/sync", withTimeout(30*time.Minute, func(w http.ResponseWriter, req *http.Request, ctx context.Context) {
		v, err := b.FullSync(ctx)
		reply(w, v, err)
	}))
	r.Get("/audit", withTimeout(time.Minute, func(w http.ResponseWriter, req *http.Request, ctx context.Context) {
		id := req.URL.Query().Get("employee")
		if id != "" && !adminPersonID.MatchString(id) {
			writeAdminError(w, http.StatusBadRequest, "employee must be a person id")
			return
		}
		limit := 100
		if l := req.URL.Query().Get("limit"); l != "" {
			n, err := strconv.Atoi(l)
			if err != nil || n < 1 || n > 10000 {
				writeAdminError(w, http.StatusBadRequest, "limit must be 1 to 10000")
				return
			}
			limit = n
		}
		recs, err := b.Audit(ctx, id, limit)
		if recs == nil {
			recs = []json.RawMessage{}
		}
		reply(w, recs, err)
	}))
	r.Get("/approvals", withTimeout(time.Minute, func(w http.ResponseWriter, req *http.Request, ctx context.Context) {
		v, err := b.Approvals(ctx)
		reply(w, v, err)
	}))
	r.Post("/approvals/{id}/approve", withTimeout(time.Minute, func(w http.ResponseWriter, req *http.Request, ctx context.Context) {
		id := chi.URLParam(req, "id")
		if !adminPersonID.MatchString(id) {
			writeAdminError(w, http.StatusBadRequest, "approval id must be letters and digits")
			return
		}
		v, err := b.Approve(ctx, id)
		reply(w, v, err)
	}))
	r.Get("/deadletters", withTimeout(time.Minute, func(w http.ResponseWriter, req *http.Request, ctx context.Context) {
		v, err := b.DeadLetters(ctx)
		reply(w, v, err)
	}))
	seqParam := func(w http.ResponseWriter, req *http.Request) (uint64, bool) {
		seq, err := strconv.ParseUint(chi.URLParam(req, "seq"), 10, 64)
		if err != nil || seq == 0 {
			writeAdminError(w, http.StatusBadRequest, "seq must be a dead-letter sequence number")
			return 0, false
		}
		return seq, true
	}
	r.Post("/deadletters/{seq}/redrive", withTimeout(time.Minute, func(w http.ResponseWriter, req *http.Request, ctx context.Context) {
		if seq, ok := seqParam(w, req); ok {
			if err := b.Redrive(ctx, seq); err != nil {
				reply(w, nil, err)
				return
			}
			writeAdminJSON(w, http.StatusAccepted, map[string]any{"status": "redriven", "seq": seq})
		}
	}))
	r.Delete("/deadletters/{seq}", withTimeout(time.Minute, func(w http.ResponseWriter, req *http.Request, ctx context.Context) {
		if seq, ok := seqParam(w, req); ok {
			if err := b.PurgeDeadLetter(ctx, seq); err != nil {
				reply(w, nil, err)
				return
			}
			writeAdminJSON(w, http.StatusOK, map[string]any{"status": "purged", "seq": seq})
		}
	}))
	r.NotFound(func(w http.ResponseWriter, req *http.Request) {
		writeAdminError(w, http.StatusNotFound, "no such admin endpoint: "+strings.TrimPrefix(req.URL.Path, "/admin"))
	})
	return r
}

func writeAdminJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeAdminError(w http.ResponseWriter, status int, msg string) {
	writeAdminJSON(w, status, map[string]string{"error": msg})
}
