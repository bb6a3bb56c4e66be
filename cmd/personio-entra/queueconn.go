package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/personio-entra/personio-entra/handlers"
	"github.com/personio-entra/personio-entra/queue"
)

// openQueue opens the queue the configuration names: the embedded
// JetStream server under DATA_DIR when NATS_URL is empty, NATS_URL otherwise.
func openQueue(ctx context.Context, cfg Config, logger *slog.Logger) (*queue.Queue, func(), error) {
	return queue.OpenWith(ctx, queue.Connection{URL: cfg.NATSURL, Creds: cfg.NATSCreds, DataDir: cfg.DataDir},
		queue.Config{Partitions: cfg.Partitions, Replicas: cfg.Replicas, NotifyRetryBase: cfg.notifyRetryBase}, logger)
}

// queueOrOpen returns q, or, when q is nil, the queue the configuration
// names; the returned function closes what it opened.
func queueOrOpen(ctx context.Context, cfg Config, logger *slog.Logger, q *queue.Queue) (*queue.Queue, func(), error) {
	if q != nil {
		return q, func() {}, nil
	}
	return openQueue(ctx, cfg, logger)
}

// serveMetrics serves /healthz, /readyz and /metrics on addr until ctx ends.
func serveMetrics(ctx context.Context, addr string, q *queue.Queue, logger *slog.Logger) error {
	return serveHTTP(ctx, "metrics", addr, opsHandler(q, logger), logger)
}

// opsHandler answers /healthz, /readyz (the queue's readiness, when there
// is a queue) and /metrics.
func opsHandler(q *queue.Queue, logger *slog.Logger) http.Handler {
	var ready handlers.ReadyFunc
	if q != nil {
		ready = q.Ready
	}
	return handlers.OpsRouter(ready, logger)
}

// listenerTimeouts bound every request on the listeners (webhooks,
// metrics): Personio waits 3 s for a webhook answer, so a webhook never
// needs more. The admin routes mounted on the webhook listener extend
// their own deadlines per request (handlers.Admin). A variable so that
// tests can shorten them.
var listenerTimeouts = struct{ readHeader, read, write, idle time.Duration }{
	readHeader: 5 * time.Second, read: 15 * time.Second, write: 15 * time.Second, idle: 60 * time.Second,
}

// serveHTTP runs an HTTP server on addr until ctx ends, then stops accepting
// connections and lets requests in flight finish (up to 10 s).
func serveHTTP(ctx context.Context, name, addr string, h http.Handler, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s listener on %s: %w", name, addr, err)
	}
	return serveOn(ctx, name, ln, h, logger)
}

// serveOn is serveHTTP on a listener the caller opened (the demo binds its
// addresses before it starts anything, so that a busy port is reported at
// once). It closes ln.
func serveOn(ctx context.Context, name string, ln net.Listener, h http.Handler, logger *slog.Logger) error {
	addr := ln.Addr().String()
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: listenerTimeouts.readHeader,
		ReadTimeout:       listenerTimeouts.read,
		WriteTimeout:      listenerTimeouts.write,
		IdleTimeout:       listenerTimeouts.idle,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("listening", slog.String("listener", name), slog.String("addr", ln.Addr().String()))
	select {
	case err := <-errc:
		return fmt.Errorf("%s listener on %s: %w", name, addr, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("%s listener: graceful shutdown: %w", name, err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s listener on %s: %w", name, addr, err)
	}
	logger.Info("listener stopped", slog.String("listener", name))
	return nil
}
