package handlers

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ReadyFunc reports whether the process can do its job (NATS connected and
// the stream present); *queue.Queue's Ready fits.
type ReadyFunc func(ctx context.Context) error

// OpsRouter serves the METRICS_ADDR listener: /healthz (the process is
// alive), /readyz (ready reports nil within 2 s) and /metrics (Prometheus,
// default registry).
func OpsRouter(ready ReadyFunc, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.Default()
	}
	r := chi.NewRouter()
	r.Get("/healthz", func(rw http.ResponseWriter, _ *http.Request) {
		writeJSON(rw, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.Get("/readyz", func(rw http.ResponseWriter, req *http.Request) {
		if ready == nil {
			writeJSON(rw, http.StatusOK, map[string]string{"status": "ready"})
			return
		}
		ctx, cancel := context.WithTimeout(req.Context(), 2*time.Second)
		defer cancel()
		if err := ready(ctx); err != nil {
			logger.Warn("not ready", slog.Any("err", err))
			writeJSON(rw, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "error": err.Error()})
			return
		}
		writeJSON(rw, http.StatusOK, map[string]string{"status": "ready"})
	})
	r.Method(http.MethodGet, "/metrics", promhttp.Handler())
	return r
}
