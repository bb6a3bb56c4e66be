package personio

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Labels are the operation name (a fixed set such as "v1_list_employees")
// and the HTTP status; never a person id.
var (
	requestsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "personio_entra_personio_requests_total",
		Help: "HTTP requests sent to the Personio API, by operation and HTTP status code (\"error\" for transport failures).",
	}, []string{"operation", "code"})
	requestDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "personio_entra_personio_request_duration_seconds",
		Help:    "Duration of Personio API requests, by operation.",
		Buckets: prometheus.ExponentialBuckets(0.025, 2, 10),
	}, []string{"operation"})
	retriesTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "personio_entra_personio_retries_total",
		Help: "Personio API requests repeated after a 429, a server error or a transport failure.",
	}, []string{"operation", "reason"})
	tokenRequestsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "personio_entra_personio_token_requests_total",
		Help: "Bearer token requests to Personio, by API version and result.",
	}, []string{"api", "result"})
)
