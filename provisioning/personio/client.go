package personio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultBaseURL is the public Personio API.
const DefaultBaseURL = "https://api.personio.de"

// DefaultAppID is sent as X-Personio-App-ID when Config.AppID is empty
// (UPPER_SNAKE_CASE identification headers on every call,
// https://developer.personio.de/reference/include-our-headers-in-your-requests).
const DefaultAppID = "PERSONIO_ENTRA"

const (
	// minRetryDelay is the first backoff step. Personio documents no
	// Retry-After header and asks for at least one second before retrying a
	// 429 (docs/personio-api.md#rate-limits-and-errors).
	minRetryDelay = time.Second
	maxRetryDelay = 30 * time.Second
	// maxRetryAfter caps a server-sent Retry-After so a bad header cannot
	// stall a worker for hours.
	maxRetryAfter     = 2 * time.Minute
	defaultMaxRetries = 4
	maxResponseBytes  = 64 << 20
	tokenFetchTimeout = 30 * time.Second
)

// Config configures a Client.
type Config struct {
	// BaseURL is the API root without version, default DefaultBaseURL.
	BaseURL      string
	ClientID     string
	ClientSecret string
	// HTTPClient defaults to a client with a 60 s timeout.
	HTTPClient *http.Client
	Logger     *slog.Logger
	// PartnerID and AppID are the identification headers Personio asks
	// every integration to send (docs/personio-api.md#identification-headers). AppID defaults to
	// DefaultAppID; PartnerID is only for marketplace partners.
	PartnerID, AppID string
	// MaxRetries is how often a request is repeated after 429 or a server
	// error; 0 means the default (4), a negative value disables retries.
	MaxRetries int
}

// Client talks to the Personio API. It is safe for concurrent use; all
// callers share one cached token per API version.
type Client struct {
	base       *url.URL
	http       *http.Client
	log        *slog.Logger
	partnerID  string
	appID      string
	maxRetries int
	id, secret string

	v1tok, v2tok *tokenSource
	requests     atomic.Int64

	mu               sync.Mutex
	employmentPerson map[string]string // employment id → person id, learnt from v2 person lists
}

// New validates cfg and returns a Client. It makes no request.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	base, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || base.Host == "" || (base.Scheme != "https" && base.Scheme != "http") {
		return nil, fmt.Errorf("personio: base URL %q: want an http(s) URL such as %s", cfg.BaseURL, DefaultBaseURL)
	}
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, errors.New("personio: client id and client secret are required")
	}
	c := &Client{
		base:             base,
		http:             cfg.HTTPClient,
		log:              cfg.Logger,
		partnerID:        cfg.PartnerID,
		appID:            cfg.AppID,
		maxRetries:       cfg.MaxRetries,
		id:               cfg.ClientID,
		secret:           cfg.ClientSecret,
		employmentPerson: map[string]string{},
	}
	if c.http == nil {
		c.http = &http.Client{Timeout: 60 * time.Second}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.appID == "" {
		c.appID = DefaultAppID
	}
	switch {
	case c.maxRetries == 0:
		c.maxRetries = defaultMaxRetries
	case c.maxRetries < 0:
		c.maxRetries = 0
	}
	c.v1tok = newTokenSource("v1", c.fetchV1Token)
	c.v2tok = newTokenSource("v2", c.fetchV2Token)
	return c, nil
}

// RequestCount returns the number of HTTP requests sent to Personio,
// including token requests and retries.
func (c *Client) RequestCount() int64 { return c.requests.Load() }

// apiVersion selects the token a request carries.
type apiVersion int

const (
	apiNone apiVersion = iota // token endpoints
	apiV1
	apiV2
)

// request describes one API call.
type request struct {
	op          string // low-cardinality name for metrics, logs and errors
	method      string
	path        string // below the base URL, or an absolute URL on the same host
	query       url.Values
	body        []byte
	contentType string
	api         apiVersion
	// idempotent requests are repeated after a server error or a broken
	// connection; all requests are repeated after 429, which Personio
	// answers before doing anything.
	idempotent bool
}

func (c *Client) tokens(v apiVersion) *tokenSource {
	if v == apiV1 {
		return c.v1tok
	}
	return c.v2tok
}

// do sends r with retries and decodes a 2xx JSON answer into out (if not nil).
func (c *Client) do(ctx context.Context, r request, out any) error {
	u, err := c.resolve(r.path)
	if err != nil {
		return fmt.Errorf("personio: %s: %w", r.op, err)
	}
	if len(r.query) > 0 {
		q := u.Query()
		for k, vs := range r.query {
			q[k] = vs
		}
		u.RawQuery = q.Encode()
	}
	refreshed := false
	for attempt := 0; ; attempt++ {
		var tok string
		if r.api != apiNone {
			var err error
			tok, err = c.tokens(r.api).get(ctx)
			if err != nil {
				return fmt.Errorf("personio: %s: %w", r.op, err)
			}
		}
		status, hdr, body, err := c.send(ctx, r, u, tok)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("personio: %s: %w", r.op, ctx.Err())
			}
			if r.idempotent && attempt < c.maxRetries {
				if werr := c.wait(ctx, r, attempt, nil, "transport", 0); werr != nil {
					return werr
				}
				continue
			}
			return fmt.Errorf("personio: %s: %w", r.op, err)
		}
		switch {
		case status >= 200 && status < 300:
			if out == nil || len(bytes.TrimSpace(body)) == 0 {
				return nil
			}
			if err := json.Unmarshal(body, out); err != nil {
				return fmt.Errorf("personio: %s: decode response: %w", r.op, err)
			}
			return nil
		case status == http.StatusUnauthorized && tok != "" && !refreshed:
			// The token was revoked or expired early: fetch a new one once.
			c.tokens(r.api).invalidate(tok)
			refreshed = true
			attempt--
			continue
		}
		retryable := status == http.StatusTooManyRequests ||
			(r.idempotent && status >= 500 && status != http.StatusNotImplemented)
		if retryable && attempt < c.maxRetries {
			if werr := c.wait(ctx, r, attempt, hdr, strconv.Itoa(status), status); werr != nil {
				return werr
			}
			continue
		}
		return newAPIError(r.op, r.method, status, body)
	}
}

// wait sleeps before retry attempt+1: Retry-After when Personio sends one,
// otherwise exponential backoff from one second with jitter.
func (c *Client) wait(ctx context.Context, r request, attempt int, hdr http.Header, reason string, status int) error {
	d := backoff(attempt)
	if ra, ok := retryAfter(hdr, time.Now()); ok {
		d = ra
	}
	retriesTotal.WithLabelValues(r.op, reason).Inc()
	c.log.LogAttrs(ctx, slog.LevelWarn, "personio request will be retried",
		slog.String("operation", r.op), slog.Int("status", status),
		slog.Int("attempt", attempt+1), slog.Duration("delay", d))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("personio: %s: waiting to retry: %w", r.op, ctx.Err())
	}
}

// backoff is min(30 s, 1 s·2^attempt) plus up to 50 % jitter, never below 1 s.
func backoff(attempt int) time.Duration {
	d := min(minRetryDelay<<min(attempt, 10), maxRetryDelay)
	return d + rand.N(d/2+1)
}

// retryAfter reads a Retry-After header (seconds or HTTP date).
func retryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if s, err := strconv.Atoi(v); err == nil {
		d = time.Duration(s) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	} else {
		return 0, false
	}
	return min(max(d, 0), maxRetryAfter), true
}

// send performs one HTTP exchange.
func (c *Client) send(ctx context.Context, r request, u *url.URL, token string) (int, http.Header, []byte, error) {
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u.String(), body)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	// Both spellings: the developer hub uses the X- prefix, the v2
	// common-components spec omits it (docs/personio-api.md#identification-headers).
	req.Header.Set("X-Personio-App-ID", c.appID)
	if r.api == apiV2 {
		req.Header.Set("Personio-App-ID", c.appID)
	}
	if c.partnerID != "" {
		req.Header.Set("X-Personio-Partner-ID", c.partnerID)
		if r.api == apiV2 {
			req.Header.Set("Personio-Partner-ID", c.partnerID)
		}
	}
	start := time.Now()
	c.requests.Add(1)
	resp, err := c.http.Do(req)
	if err != nil {
		requestsTotal.WithLabelValues(r.op, "error").Inc()
		return 0, nil, nil, fmt.Errorf("%s %s: %w", r.method, u.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	requestDuration.WithLabelValues(r.op).Observe(time.Since(start).Seconds())
	requestsTotal.WithLabelValues(r.op, strconv.Itoa(resp.StatusCode)).Inc()
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s %s: read response: %w", r.method, u.Path, err)
	}
	return resp.StatusCode, resp.Header, b, nil
}

// resolve turns a path or a next-page link into a URL. Links must stay on
// the configured host so the bearer token is never sent elsewhere.
func (c *Client) resolve(p string) (*url.URL, error) {
	if strings.HasPrefix(p, "http://") || strings.HasPrefix(p, "https://") {
		u, err := url.Parse(p)
		if err != nil {
			return nil, fmt.Errorf("invalid link %q: %w", p, err)
		}
		if u.Scheme != c.base.Scheme || u.Host != c.base.Host {
			return nil, fmt.Errorf("link %q points away from %s://%s; refusing to send credentials there", p, c.base.Scheme, c.base.Host)
		}
		return u, nil
	}
	u := *c.base
	u.Path = strings.TrimRight(c.base.Path, "/") + p
	return &u, nil
}

// APIError is a non-2xx answer from Personio. Message carries Personio's
// own explanation from either error envelope (v1 {success:false,error} or v2
// application/problem+json, or the OAuth error of the token endpoint).
type APIError struct {
	Operation string
	Method    string
	Status    int
	Code      string // v2 error type / OAuth error code / v1 numeric code
	Message   string
	TraceID   string
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "personio: %s: HTTP %d %s", e.Operation, e.Status, http.StatusText(e.Status))
	if e.Code != "" {
		fmt.Fprintf(&b, " [%s]", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.TraceID != "" {
		fmt.Fprintf(&b, " (trace %s)", e.TraceID)
	}
	return b.String()
}

func newAPIError(op, method string, status int, body []byte) *APIError {
	e := &APIError{Operation: op, Method: method, Status: status}
	var env struct {
		Error            json.RawMessage `json:"error"`
		ErrorDescription string          `json:"error_description"`
		Errors           []struct {
			Title  string `json:"title"`
			Detail string `json:"detail"`
			Type   string `json:"type"`
		} `json:"errors"`
		Title   string `json:"title"`
		Detail  string `json:"detail"`
		TraceID string `json:"personio_trace_id"`
		Trace2  string `json:"trace_id"`
	}
	if json.Unmarshal(body, &env) != nil {
		e.Message = snippet(body)
		return e
	}
	e.TraceID = env.TraceID
	if e.TraceID == "" {
		e.TraceID = env.Trace2
	}
	var msgs []string
	for _, er := range env.Errors { // v2 problem+json
		m := er.Title
		if er.Detail != "" {
			m = strings.TrimSpace(m + ": " + er.Detail)
			m = strings.TrimPrefix(m, ": ")
		}
		msgs = append(msgs, m)
		if e.Code == "" && er.Type != "" {
			e.Code = er.Type[strings.LastIndex(er.Type, "#")+1:]
		}
	}
	if len(env.Error) > 0 && env.Error[0] == '{' { // v1 envelope
		var v1 struct {
			Code            json.RawMessage `json:"code"`
			Message         string          `json:"message"`
			DetailedMessage json.RawMessage `json:"detailed_message"`
		}
		if json.Unmarshal(env.Error, &v1) == nil {
			msgs = append(msgs, v1.Message)
			if c := scalarString(v1.Code); c != "" && c != "0" {
				e.Code = c
			}
			if d := scalarString(v1.DetailedMessage); d != "" {
				msgs = append(msgs, d)
			} else if len(v1.DetailedMessage) > 2 && v1.DetailedMessage[0] != '"' {
				msgs = append(msgs, string(v1.DetailedMessage))
			}
		}
	} else if s := scalarString(env.Error); s != "" { // OAuth
		e.Code = s
		msgs = append(msgs, env.ErrorDescription)
	}
	if env.Title != "" {
		msgs = append(msgs, strings.TrimSuffix(env.Title+": "+env.Detail, ": "))
	}
	var keep []string
	for _, m := range msgs {
		if m = strings.TrimSpace(m); m != "" {
			keep = append(keep, m)
		}
	}
	e.Message = strings.Join(keep, "; ")
	if e.Message == "" {
		e.Message = snippet(body)
	}
	return e
}

func snippet(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// scalarString renders a JSON string or number as text ("" for null/absent).
func scalarString(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
		return ""
	}
	if raw[0] == '{' || raw[0] == '[' {
		return ""
	}
	return string(raw)
}

// tokenSource caches one bearer token and lets exactly one request for a
// new token be in flight; concurrent callers wait for its result.
type tokenSource struct {
	api   string
	fetch func(context.Context) (string, time.Duration, error)

	mu       sync.Mutex
	tok      string
	exp      time.Time // when to stop using tok (a little before Personio's expiry)
	inflight *tokenCall
}

type tokenCall struct {
	done chan struct{}
	tok  string
	err  error
}

func newTokenSource(api string, fetch func(context.Context) (string, time.Duration, error)) *tokenSource {
	return &tokenSource{api: api, fetch: fetch}
}

func (s *tokenSource) get(ctx context.Context) (string, error) {
	s.mu.Lock()
	if s.tok != "" && time.Now().Before(s.exp) {
		t := s.tok
		s.mu.Unlock()
		return t, nil
	}
	call := s.inflight
	if call == nil {
		call = &tokenCall{done: make(chan struct{})}
		s.inflight = call
		// Detached from the caller's context: one caller giving up must not
		// fail the others waiting for the same token.
		go s.run(call)
	}
	s.mu.Unlock()
	select {
	case <-call.done:
		return call.tok, call.err
	case <-ctx.Done():
		return "", fmt.Errorf("waiting for %s token: %w", s.api, ctx.Err())
	}
}

func (s *tokenSource) run(call *tokenCall) {
	ctx, cancel := context.WithTimeout(context.Background(), tokenFetchTimeout)
	defer cancel()
	tok, ttl, err := s.fetch(ctx)
	if err == nil && tok == "" {
		err = fmt.Errorf("%s token endpoint returned an empty token", s.api)
	}
	s.mu.Lock()
	if err == nil {
		// Refresh a little early: a tenth of the lifetime, at most 5 minutes.
		s.tok, s.exp = tok, time.Now().Add(ttl-min(ttl/10, 5*time.Minute))
	}
	s.inflight = nil
	s.mu.Unlock()
	call.tok, call.err = tok, err
	close(call.done)
}

// invalidate drops tok if it is still the cached one.
func (s *tokenSource) invalidate(tok string) {
	s.mu.Lock()
	if s.tok == tok {
		s.tok = ""
	}
	s.mu.Unlock()
}

// fetchV1Token calls POST /v1/auth (https://developer.personio.de/reference/auth).
func (c *Client) fetchV1Token(ctx context.Context) (string, time.Duration, error) {
	body, _ := json.Marshal(map[string]string{"client_id": c.id, "client_secret": c.secret})
	var out struct {
		Success bool `json:"success"`
		Data    struct {
			Token     string          `json:"token"`
			ExpiresIn json.RawMessage `json:"expires_in"`
		} `json:"data"`
	}
	err := c.do(ctx, request{op: "v1_auth", method: http.MethodPost, path: "/v1/auth",
		body: body, contentType: "application/json", idempotent: true}, &out)
	tokenRequestsTotal.WithLabelValues("v1", result(err)).Inc()
	if err != nil {
		return "", 0, fmt.Errorf("v1 token: %w", err)
	}
	return out.Data.Token, expiresIn(out.Data.ExpiresIn), nil
}

// fetchV2Token calls POST /v2/auth/token with client credentials; the body
// must be form-encoded (https://developer.personio.de/reference/post_v2-auth-token.md).
func (c *Client) fetchV2Token(ctx context.Context) (string, time.Duration, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {c.id}, "client_secret": {c.secret}}
	var out struct {
		AccessToken string          `json:"access_token"`
		TokenType   string          `json:"token_type"`
		ExpiresIn   json.RawMessage `json:"expires_in"`
	}
	err := c.do(ctx, request{op: "v2_auth_token", method: http.MethodPost, path: "/v2/auth/token",
		body: []byte(form.Encode()), contentType: "application/x-www-form-urlencoded", idempotent: true}, &out)
	tokenRequestsTotal.WithLabelValues("v2", result(err)).Inc()
	if err != nil {
		return "", 0, fmt.Errorf("v2 token: %w", err)
	}
	return out.AccessToken, expiresIn(out.ExpiresIn), nil
}

// expiresIn reads expires_in seconds; without one, assume an hour (the
// documented lifetime is a day, so this only costs an extra token request).
func expiresIn(raw json.RawMessage) time.Duration {
	if n, err := strconv.ParseFloat(scalarString(raw), 64); err == nil && n > 0 {
		return time.Duration(n * float64(time.Second))
	}
	return time.Hour
}

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

// ErrNotFound is returned (wrapped) when Personio does not know the person;
// it is the domain's model.ErrPersonNotFound, so the engine needs no
// knowledge of this package to recognise it.
var ErrNotFound = model.ErrPersonNotFound
