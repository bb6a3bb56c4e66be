package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/personio-entra/personio-entra/handlers"
	"github.com/personio-entra/personio-entra/queue"
)

func init() {
	register("serve", command{
		summary: "receive Personio webhooks into the queue (receiver only; workers run with `work`)",
		run:     runServe,
	})
}

func runServe(ctx context.Context, env *environment, args []string) error {
	fs := newFlags("serve", env)
	if _, err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	cfg, err := loadConfig(env.getenv)
	if err = errors.Join(err, cfg.Validate(role{receiver: true})); err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	logger := newLogger(cfg, env.stderr)
	logger.Info("personio-entra serve starting", slog.Any("config", cfg))
	tuneReceiverGC(env.getenv, logger)

	q, closeQueue, err := openQueue(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer closeQueue()

	var wg sync.WaitGroup
	errs := make([]error, 2)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Go(func() {
		if errs[0] = serveMetrics(ctx, cfg.MetricsAddr, q, logger); errs[0] != nil {
			cancel()
		}
	})
	wg.Go(func() {
		if errs[1] = serveWebhooks(ctx, cfg, q, logger); errs[1] != nil {
			cancel()
		}
	})
	wg.Wait()
	logger.Info("personio-entra serve stopped")
	return errors.Join(errs...)
}

// webhookRouter is the LISTEN_ADDR router with the webhook receiver; `run`
// adds the admin API to it.
func webhookRouter(cfg Config, q *queue.Queue, logger *slog.Logger) (chi.Router, error) {
	wh, err := handlers.NewWebhook(handlers.WebhookConfig{
		Tokens:    cfg.WebhookTokens,
		Insecure:  cfg.WebhookInsecure,
		CompanyID: cfg.PersonioCompanyID,
		Logger:    logger,
	}, q)
	if err != nil {
		return nil, err
	}
	r := chi.NewRouter()
	r.Use(middleware.Recoverer)
	wh.Routes(r)
	return r, nil
}

// serveWebhooks serves the webhook receiver on LISTEN_ADDR until ctx ends,
// then stops accepting and finishes the requests in flight.
func serveWebhooks(ctx context.Context, cfg Config, q *queue.Queue, logger *slog.Logger) error {
	r, err := webhookRouter(cfg, q, logger)
	if err != nil {
		return err
	}
	return serveHTTP(ctx, "webhooks", cfg.ListenAddr, http.Handler(r), logger)
}
