package entra

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	khttp "github.com/microsoft/kiota-http-go"
	msgraphcore "github.com/microsoftgraph/msgraph-sdk-go-core"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	graphRequests = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "personio_entra_graph_requests_total",
		Help: "Microsoft Graph HTTP requests (every attempt), by operation and HTTP status code (\"error\" when no response arrived).",
	}, []string{"operation", "status"})
	graphThrottled = promauto.NewCounter(prometheus.CounterOpts{
		Name: "personio_entra_graph_throttled_total",
		Help: "Microsoft Graph responses with status 429 Too Many Requests.",
	})
	graphRetryWait = promauto.NewCounter(prometheus.CounterOpts{
		Name: "personio_entra_graph_retry_wait_seconds_total",
		Help: "Time spent waiting before retrying throttled or unavailable Microsoft Graph requests.",
	})
	graphDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "personio_entra_graph_request_duration_seconds",
		Help:    "Duration of one Microsoft Graph HTTP attempt, by operation.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"operation"})
)

type ctxKey int

const (
	opKey ctxKey = iota
	retryPolicyKey
)

// withOp names the operation for metrics and logs (low cardinality: never an id).
func withOp(ctx context.Context, op string) context.Context {
	return context.WithValue(ctx, opKey, op)
}

func opOf(ctx context.Context) string {
	if op, ok := ctx.Value(opKey).(string); ok {
		return op
	}
	return "other"
}

// onlyThrottleRetries marks a request that must not be re-sent after a
// 503/504: the service may have applied it (a user create). A 429 is always
// safe to re-send: the request was refused before it was processed.
func onlyThrottleRetries(ctx context.Context) context.Context {
	return context.WithValue(ctx, retryPolicyKey, true)
}

// metricsTransport counts and times every attempt that reaches the network.
type metricsTransport struct{ next http.RoundTripper }

func (t metricsTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	op := opOf(req.Context())
	start := time.Now()
	resp, err := t.next.RoundTrip(req)
	graphDuration.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil {
		graphRequests.WithLabelValues(op, "error").Inc()
		return resp, err
	}
	graphRequests.WithLabelValues(op, strconv.Itoa(resp.StatusCode)).Inc()
	if resp.StatusCode == http.StatusTooManyRequests {
		graphThrottled.Inc()
	}
	return resp, nil
}

// RetryPolicy bounds the retries of throttled (429) and unavailable
// (503/504) requests. Retry-After is honoured
// (https://learn.microsoft.com/en-us/graph/throttling); without it the
// wait grows exponentially from BaseDelay with jitter.
type RetryPolicy struct {
	MaxAttempts int           // attempts in total, first one included (default 6)
	MaxWait     time.Duration // total wait across retries of one request (default 2m)
	BaseDelay   time.Duration // first backoff without Retry-After (default 1s)
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 6
	}
	if p.MaxWait <= 0 {
		p.MaxWait = 2 * time.Minute
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = time.Second
	}
	return p
}

// retryMiddleware replaces Kiota's retry handler: it re-sends a fresh copy
// of the request (so compression is applied once per attempt,
// docs/graph-behaviour.md#sdk-middleware),
// closes the bodies of discarded responses, parses fractional Retry-After,
// bounds attempts and total wait, stops when the context ends, and feeds the
// retry metrics.
type retryMiddleware struct {
	policy   RetryPolicy
	log      *slog.Logger
	throttle *throttleSignal // may be nil
}

// throttleSignal remembers until when Graph asked this client to slow down
// (the latest 429's Retry-After), so that the engine can hold work that can
// wait (group additions fill their batches) while the budget recovers.
type throttleSignal struct{ until atomic.Int64 } // unix nanoseconds

func (s *throttleSignal) note(until time.Time) {
	for {
		cur := s.until.Load()
		if until.UnixNano() <= cur || s.until.CompareAndSwap(cur, until.UnixNano()) {
			return
		}
	}
}

func (s *throttleSignal) get() time.Time {
	if s == nil || s.until.Load() == 0 {
		return time.Time{}
	}
	return time.Unix(0, s.until.Load())
}

func (m retryMiddleware) Intercept(p khttp.Pipeline, idx int, req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
	}
	throttleOnly, _ := ctx.Value(retryPolicyKey).(bool)
	var waited time.Duration
	for attempt := 1; ; attempt++ {
		r := req.Clone(ctx)
		if body != nil {
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
			r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		}
		resp, err := p.Next(r, idx)
		if err != nil {
			return resp, err
		}
		code := resp.StatusCode
		retryable := code == http.StatusTooManyRequests ||
			(!throttleOnly && (code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout))
		if !retryable || attempt >= m.policy.MaxAttempts {
			return resp, nil
		}
		delay, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now())
		if !ok {
			delay = m.policy.BaseDelay << (attempt - 1)
			delay += time.Duration(rand.Int64N(int64(m.policy.BaseDelay)))
		}
		if code == http.StatusTooManyRequests && m.throttle != nil {
			m.throttle.note(time.Now().Add(delay))
		}
		if waited+delay > m.policy.MaxWait {
			return resp, nil
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		m.log.Debug("graph request retried", "operation", opOf(ctx), "status", code, "attempt", attempt, "wait", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		waited += delay
		graphRetryWait.Add(delay.Seconds())
	}
}

// retryAfter parses Retry-After as (possibly fractional) seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 {
		return time.Duration(f * float64(time.Second)), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// middlewares is the Graph default chain with our retry handler in place of
// Kiota's, in a fixed order (Kiota builds its own from a map,
// docs/graph-behaviour.md#sdk-middleware).
func middlewares(policy RetryPolicy, log *slog.Logger, throttle *throttleSignal) []khttp.Middleware {
	opts := msgraphcore.GraphClientOptions{}
	return []khttp.Middleware{
		msgraphcore.NewGraphTelemetryHandler(&opts),
		khttp.NewUrlReplaceHandler(true, msgraphcore.ReplacementPairs),
		retryMiddleware{policy: policy.withDefaults(), log: log, throttle: throttle},
		khttp.NewRedirectHandler(),
		khttp.NewCompressionHandler(),
		khttp.NewParametersNameDecodingHandler(),
		khttp.NewUserAgentHandler(),
		khttp.NewHeadersInspectionHandler(),
	}
}
