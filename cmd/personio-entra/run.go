package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/personio-entra/personio-entra/handlers"
	"github.com/personio-entra/personio-entra/handlers/console"
	"github.com/personio-entra/personio-entra/provisioning"
)

func init() {
	register("run", command{
		summary: "receiver, workers and periodic full sync in one process (embedded JetStream when NATS_URL is empty)",
		run: func(ctx context.Context, env *environment, args []string) error {
			return runProcess(ctx, env, "run", args, role{receiver: true, worker: true})
		},
	})
	register("work", command{
		summary: "workers and periodic full sync (scale horizontally; admin API on LISTEN_ADDR when ADMIN_TOKEN is set)",
		run: func(ctx context.Context, env *environment, args []string) error {
			return runProcess(ctx, env, "work", args, role{worker: true})
		},
	})
}

// heldDrainTimeout bounds how long a stopping worker waits for its held
// group additions to be written (one batch request with its retries).
const heldDrainTimeout = 2 * time.Minute

func runProcess(ctx context.Context, env *environment, name string, args []string, r role) error {
	fs := newFlags(name, env)
	if _, err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	cfg, err := loadFor(env, r)
	if err != nil {
		return err
	}
	log := newLogger(cfg, env.stderr)
	log.Info("personio-entra "+name+" starting", slog.Any("config", cfg))
	if cfg.DryRun {
		log.Warn("DRY_RUN is on: plans are logged and audited, nothing is written to Entra")
	}
	q, closeQueue, err := openQueue(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeQueue()
	a, err := newApp(ctx, cfg, log, q, appOptions{})
	if err != nil {
		return err
	}
	err = a.serve(ctx, r)
	log.Info("personio-entra " + name + " stopped")
	return err
}

// serve runs the metrics listener, the webhook receiver (for a receiver role),
// the admin API (when ADMIN_TOKEN is set), the workers and the periodic full
// sync until ctx ends; then it stops accepting webhooks, lets the running
// reconciles finish (or hands their messages back) and returns.
func (a *app) serve(ctx context.Context, r role) error {
	receiver := r.receiver
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	fail := func(what string, err error) {
		if err != nil {
			mu.Lock()
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
			mu.Unlock()
			cancel()
		}
	}
	var router chi.Router
	if receiver {
		r, err := webhookRouter(a.cfg, a.q, a.log)
		if err != nil {
			return err
		}
		router = r
	}
	if a.cfg.AdminToken != "" {
		if router == nil {
			router = chi.NewRouter()
			router.Use(middleware.Recoverer)
		}
		router.Mount("/admin", handlers.Admin(a.cfg.AdminToken, adminBackend{a}, a.log.With("component", "admin")))
		if a.console != nil {
			router.Mount(console.Prefix, a.console)
		}
	} else {
		a.log.Info("admin API and console off: set ADMIN_TOKEN to enable them")
	}
	listen := func(name, addr string, ln net.Listener, h http.Handler) error {
		if ln != nil {
			return serveOn(ctx, name, ln, h, a.log)
		}
		return serveHTTP(ctx, name, addr, h, a.log)
	}
	wg.Go(func() {
		fail("metrics listener", listen("metrics", a.cfg.MetricsAddr, a.listeners.metrics, opsHandler(a.q, a.log)))
	})
	if router != nil {
		wg.Go(func() { fail("listener", listen("webhooks", a.cfg.ListenAddr, a.listeners.web, router)) })
	}
	wg.Go(func() {
		fail("workers", a.q.RunWorkers(ctx, a.engine.Handle, a.engine.ResolveEmployment))
		// Held group additions of pre-hires go out before the process ends.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), heldDrainTimeout)
		defer cancel()
		if err := a.engine.DrainHeld(dctx); err != nil {
			a.log.Error("held group additions not written before stopping; another worker's sweep queues these people again", "err", err)
		}
	})
	wg.Go(func() { a.engine.RunHeldSweep(ctx, time.Minute) })
	if a.engine.Notifies() {
		wg.Go(func() { fail("notifications", a.q.RunNotifications(ctx, a.engine.HandleNotice)) })
	}
	if a.syncer != nil {
		wg.Go(func() {
			provisioning.RunEvery(ctx, a.cfg.SyncInterval, a.log, func(ctx context.Context) error {
				_, err := a.runSync(ctx, provisioning.SyncOptions{}, "schedule") // recorded for the console
				return err
			})
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
