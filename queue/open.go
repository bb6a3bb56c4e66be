package queue

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
)

// Connection says where the queue lives: an external NATS server or
// cluster (URL, optional credentials file), or, with no URL, an embedded
// single-node JetStream server storing under DataDir.
type Connection struct {
	URL     string // comma-separated nats:// or tls:// URLs; "" for embedded
	Creds   string // NATS credentials file
	DataDir string // embedded server storage
}

// OpenWith connects as conn says and opens the queue. The returned function
// closes everything: the queue, the connection (drained), and the embedded
// server when there is one.
func OpenWith(ctx context.Context, conn Connection, cfg Config, logger *slog.Logger) (*Queue, func(), error) {
	if conn.URL == "" {
		ns, err := StartEmbedded(conn.DataDir, logger)
		if err != nil {
			return nil, nil, err
		}
		stopServer := func() { ns.Shutdown(); ns.WaitForShutdown() }
		nc, err := ConnectEmbedded(ns, "personio-entra", logger)
		if err != nil {
			stopServer()
			return nil, nil, err
		}
		q, err := Open(ctx, nc, cfg, logger)
		if err != nil {
			nc.Close()
			stopServer()
			return nil, nil, err
		}
		return q, func() {
			q.Close()
			drainConn(nc, logger)
			stopServer()
		}, nil
	}
	nc, err := Connect(ctx, conn.URL, conn.Creds, "personio-entra", logger)
	if err != nil {
		return nil, nil, err
	}
	q, err := Open(ctx, nc, cfg, logger)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return q, func() {
		q.Close()
		drainConn(nc, logger)
	}, nil
}

// drainConn flushes what is pending on the connection (acks, publishes)
// and closes it, waiting up to 5 s.
func drainConn(nc *nats.Conn, logger *slog.Logger) {
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		logger.Warn("draining the NATS connection failed", "err", err)
		nc.Close()
		return
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		logger.Warn("draining the NATS connection timed out; closing it")
		nc.Close()
	}
}
