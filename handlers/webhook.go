// Package handlers holds the HTTP side of personio-entra: the Personio
// webhook receiver and the health, readiness and metrics endpoints.
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
	"mime"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/personio-entra/personio-entra/queue"
)

// WebhookPath is where Personio posts deliveries.
const WebhookPath = "/webhooks/personio"

// Outcomes (label of the webhook metrics).
const (
	OutcomeAccepted             = "accepted"
	OutcomeDuplicate            = "duplicate"
	OutcomeIgnored              = "ignored"
	OutcomePing                 = "ping"
	OutcomeUnauthorized         = "unauthorized"
	OutcomeForbidden            = "forbidden"
	OutcomeTooLarge             = "too_large"
	OutcomeUnsupportedMediaType = "unsupported_media_type"
	OutcomeBadRequest           = "bad_request"
	OutcomeUnavailable          = "unavailable"
)

var outcomes = []string{OutcomeAccepted, OutcomeDuplicate, OutcomeIgnored, OutcomePing, OutcomeUnauthorized,
	OutcomeForbidden, OutcomeTooLarge, OutcomeUnsupportedMediaType, OutcomeBadRequest, OutcomeUnavailable}

var (
	webhookRequests = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "personio_entra_webhook_requests_total",
		Help: "Personio webhook deliveries received, by outcome.",
	}, []string{"outcome"})
	webhookDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "personio_entra_webhook_request_duration_seconds",
		Help:    "Time to answer a Personio webhook delivery, by outcome (Personio waits at most 3 s).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2, 3},
	}, []string{"outcome"})
	webhookIgnored = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "personio_entra_webhook_events_ignored_total",
		Help: "Webhook events accepted but not queued because they do not concern Entra accounts, by event name (\"other\" for unknown names).",
	}, []string{"event"})
)

// outcomeMetrics holds each outcome's counter and histogram, resolved
// once instead of per delivery.
var outcomeMetrics = map[string]struct {
	requests prometheus.Counter
	duration prometheus.Observer
}{}

func init() {
	for _, o := range outcomes {
		outcomeMetrics[o] = struct {
			requests prometheus.Counter
			duration prometheus.Observer
		}{webhookRequests.WithLabelValues(o), webhookDuration.WithLabelValues(o)}
	}
}

// Publisher queues an accepted event; *queue.Queue implements it.
type Publisher interface {
	PublishEvent(ctx context.Context, ev queue.Event) (duplicate bool, err error)
}

// WebhookConfig configures the receiver.
type WebhookConfig struct {
	// Tokens are the accepted Authorization header values (Personio sends
	// the configured token verbatim,
	// https://developer.personio.de/reference/post_v2-webhooks). More than
	// one allows
	// rotation: keep the old token until its retries are over.
	Tokens []string
	// Insecure accepts deliveries without checking a token. Only honoured
	// when Tokens is empty; a warning is logged at every start.
	Insecure bool
	// CompanyID, if set, must equal the envelope's company_id (else 403).
	CompanyID string
	// MaxBodyBytes bounds the body (default 1 MiB; larger → 413).
	MaxBodyBytes int64
	// PublishTimeout bounds the wait for the JetStream acknowledgement
	// (default 2s), well inside the 3 s Personio waits for an answer
	// (docs/personio-api.md#webhook-deliveries), so a stalled NATS yields a 503 that Personio
	// retries instead of a timeout.
	PublishTimeout time.Duration
	Logger         *slog.Logger
}

// Webhook is the Personio webhook receiver.
type Webhook struct {
	digests   [][sha256.Size]byte
	insecure  bool
	companyID string
	maxBody   int64
	timeout   time.Duration
	pub       Publisher
	log       *slog.Logger
}

// NewWebhook builds the receiver. It refuses an empty token list unless
// cfg.Insecure is set.
func NewWebhook(cfg WebhookConfig, pub Publisher) (*Webhook, error) {
	if pub == nil {
		return nil, errors.New("webhook receiver: nil publisher")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With(slog.String("component", "webhook"))
	w := &Webhook{
		companyID: cfg.CompanyID,
		maxBody:   cfg.MaxBodyBytes,
		timeout:   cfg.PublishTimeout,
		pub:       pub,
		log:       log,
	}
	if w.maxBody <= 0 {
		w.maxBody = 1 << 20
	}
	if w.timeout <= 0 {
		w.timeout = 2 * time.Second
	}
	for i, t := range cfg.Tokens {
		if t == "" {
			return nil, fmt.Errorf("webhook receiver: token %d of %d is empty", i+1, len(cfg.Tokens))
		}
		// Compare digests, not the tokens: equal length inputs keep
		// ConstantTimeCompare from returning early on a length mismatch,
		// which would leak the token length.
		w.digests = append(w.digests, sha256.Sum256([]byte(t)))
	}
	if len(w.digests) == 0 {
		if !cfg.Insecure {
			return nil, errors.New("webhook receiver: no token configured; set PERSONIO_WEBHOOK_TOKEN (or explicitly allow unauthenticated deliveries)")
		}
		w.insecure = true
		log.Warn("SECURITY: the Personio webhook accepts deliveries WITHOUT authentication; anyone who can reach it can trigger syncs. Configure PERSONIO_WEBHOOK_TOKEN.")
	}
	return w, nil
}

// Routes mounts the receiver on r.
func (w *Webhook) Routes(r chi.Router) {
	r.Post(WebhookPath, w.ServeHTTP)
}

// authorized compares the header against every token, always all of them,
// in constant time, so neither timing nor early exit tells which one (if
// any) matched.
func (w *Webhook) authorized(header string) bool {
	if w.insecure {
		return true
	}
	got := sha256.Sum256([]byte(header))
	match := 0
	for i := range w.digests {
		match |= subtle.ConstantTimeCompare(got[:], w.digests[i][:])
	}
	return match == 1 && header != ""
}

// ServeHTTP handles one delivery. It answers 202 only after JetStream
// acknowledged the event; 503 when that is not possible in time, so that
// Personio retries (it retries timeouts and 5xx, never 4xx:
// docs/personio-api.md#webhook-deliveries).
func (w *Webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	outcome := w.serve(rw, r)
	m := outcomeMetrics[outcome]
	m.requests.Inc()
	m.duration.Observe(time.Since(start).Seconds())
}

func (w *Webhook) serve(rw http.ResponseWriter, r *http.Request) string {
	if !w.authorized(r.Header.Get("Authorization")) {
		w.log.Warn("webhook refused: missing or wrong Authorization token", slog.String("remote", r.RemoteAddr))
		writeJSON(rw, http.StatusUnauthorized, errorBody("missing or invalid Authorization header: it must equal the token configured for the Personio webhook"))
		return OutcomeUnauthorized
	}
	ct := r.Header.Get("Content-Type")
	if !isJSONContentType(ct) {
		writeJSON(rw, http.StatusUnsupportedMediaType, errorBody(fmt.Sprintf("Content-Type %q is not supported: send application/json", ct)))
		return OutcomeUnsupportedMediaType
	}
	if r.ContentLength > w.maxBody {
		writeJSON(rw, http.StatusRequestEntityTooLarge, errorBody(fmt.Sprintf("body of %d bytes exceeds the limit of %d bytes", r.ContentLength, w.maxBody)))
		return OutcomeTooLarge
	}
	body, err := readBody(rw, r, w.maxBody)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeJSON(rw, http.StatusRequestEntityTooLarge, errorBody(fmt.Sprintf("body exceeds the limit of %d bytes", w.maxBody)))
			return OutcomeTooLarge
		}
		writeJSON(rw, http.StatusBadRequest, errorBody("reading the body failed: "+err.Error()))
		return OutcomeBadRequest
	}
	env, err := ParseEnvelope(body)
	if err != nil {
		w.log.Info("webhook refused: invalid delivery", slog.Any("err", err))
		writeJSON(rw, http.StatusBadRequest, errorBody(err.Error()))
		return OutcomeBadRequest
	}
	if w.companyID != "" && env.CompanyID != w.companyID {
		w.log.Warn("webhook refused: delivery for another company", slog.String("company_id", truncate(env.CompanyID)))
		writeJSON(rw, http.StatusForbidden, errorBody(fmt.Sprintf("company_id %q is not the company this receiver serves", truncate(env.CompanyID))))
		return OutcomeForbidden
	}
	event := slog.String("event", env.EventName)

	switch eventKind(env.EventName) {
	case kindPing:
		w.log.Info("webhook ping received", event)
		writeStatus(rw, http.StatusOK, bodyPong)
		return OutcomePing
	case kindIgnored:
		webhookIgnored.WithLabelValues(env.EventName).Inc()
		w.log.Debug("webhook event ignored: does not concern Entra accounts", event)
		writeStatus(rw, http.StatusOK, bodyIgnored)
		return OutcomeIgnored
	case kindOther:
		webhookIgnored.WithLabelValues("other").Inc()
		w.log.Debug("webhook event ignored: unknown event name", event)
		writeStatus(rw, http.StatusOK, bodyIgnored)
		return OutcomeIgnored
	}

	ev := queue.Event{
		MsgID:        env.DeliveryID(),
		CompanyID:    env.CompanyID,
		Name:         env.EventName,
		OccurredAt:   env.OccurredAt,
		PersonID:     env.PersonID(),
		EmploymentID: env.EmploymentID(),
		Body:         env.canonicalBody(),
	}
	// The wait for the acknowledgement is bounded by w.timeout, not by
	// the sender's connection: a sender that hangs up does not unpublish
	// the event, and a context detached from the request's cancellation
	// costs no registration with it per delivery.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), w.timeout)
	defer cancel()
	dup, err := w.pub.PublishEvent(ctx, ev)
	if err != nil {
		w.log.Error("webhook not queued; answering 503 so Personio retries", event, slog.Any("err", err))
		rw.Header().Set("Retry-After", "5")
		writeJSON(rw, http.StatusServiceUnavailable, errorBody("the event queue did not confirm the delivery in time; retry later (a retry of a delivery that did arrive is recognised as a duplicate)"))
		return OutcomeUnavailable
	}
	if dup {
		w.log.Debug("webhook duplicate delivery", event, slog.String("delivery_id", ev.MsgID))
		writeStatus(rw, http.StatusOK, bodyDuplicate)
		return OutcomeDuplicate
	}
	w.log.Debug("webhook queued", event, slog.String("delivery_id", ev.MsgID))
	writeStatus(rw, http.StatusAccepted, bodyAccepted)
	return OutcomeAccepted
}

// The fixed answers, encoded once (as writeJSON would encode them).
var (
	bodyAccepted  = []byte(`{"status":"accepted"}` + "\n")
	bodyDuplicate = []byte(`{"status":"duplicate"}` + "\n")
	bodyIgnored   = []byte(`{"status":"ignored"}` + "\n")
	bodyPong      = []byte(`{"status":"pong"}` + "\n")
)

// Header values of the fixed answers, shared (net/http copies the header
// map when it writes the answer and never changes the values).
var (
	contentTypeJSON = []string{"application/json"}
	cacheNoStore    = []string{"no-store"}
)

// writeStatus writes one of the fixed answers.
func writeStatus(rw http.ResponseWriter, status int, body []byte) {
	h := rw.Header()
	h["Content-Type"] = contentTypeJSON
	h["Cache-Control"] = cacheNoStore
	rw.WriteHeader(status)
	_, _ = rw.Write(body)
}

// isJSONContentType accepts application/json with or without parameters
// (the exact value, as senders almost always write it, without parsing).
func isJSONContentType(ct string) bool {
	if ct == "application/json" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}

// readBody reads the whole body, at most limit bytes (else a
// *http.MaxBytesError), into a buffer sized by Content-Length when the
// sender gave one.
func readBody(rw http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body := http.MaxBytesReader(rw, r.Body, limit)
	if n := r.ContentLength; n >= 0 && n <= limit {
		// One more byte than announced, so that the read ends in EOF
		// without growing the buffer.
		buf := make([]byte, n+1)
		got, err := io.ReadFull(body, buf)
		switch {
		case (errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)) && int64(got) == n:
			return buf[:got], nil
		case err != nil:
			return nil, err
		}
		// Longer than announced: net/http stops at Content-Length, so
		// this is only reached through a misbehaving reader.
		rest, err := io.ReadAll(body)
		return append(buf, rest...), err
	}
	return io.ReadAll(body)
}

func errorBody(msg string) map[string]string { return map[string]string{"error": msg} }

func writeJSON(rw http.ResponseWriter, status int, v any) {
	rw.Header().Set("Content-Type", "application/json")
	rw.Header().Set("Cache-Control", "no-store")
	rw.WriteHeader(status)
	_ = json.NewEncoder(rw).Encode(v)
}
