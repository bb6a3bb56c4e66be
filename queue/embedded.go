package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// EmbeddedOption tunes StartEmbedded.
type EmbeddedOption func(*server.Options)

// WithListen makes the embedded server accept TCP clients on host:port
// (port -1 picks a free one). Without it the server only accepts in-process
// connections (ConnectEmbedded), which is what a single `run` process needs.
func WithListen(host string, port int) EmbeddedOption {
	return func(o *server.Options) {
		o.DontListen = false
		o.Host = host
		o.Port = port
	}
}

// WithSyncAlways sets whether every write is fsynced before the PubAck.
// StartEmbedded turns it on: a 202 to Personio is only safe if the event
// survives a power cut, and the default 2-minute fsync interval lost
// acknowledged writes in Jepsen's analysis
// (https://jepsen.io/analyses/nats-2.12.1, docs/jetstream.md#durability).
func WithSyncAlways(on bool) EmbeddedOption {
	return func(o *server.Options) { o.SyncAlways = on }
}

// WithServerName sets the server name (default "personio-entra").
func WithServerName(name string) EmbeddedOption {
	return func(o *server.Options) { o.ServerName = name }
}

// StartEmbedded starts a single-node JetStream server that stores its data
// under dataDir/jetstream (always an explicit store directory, never the
// shared $TMPDIR default: docs/jetstream.md#embedding-and-reconnecting).
// The caller shuts it down with Shutdown and WaitForShutdown.
func StartEmbedded(dataDir string, logger *slog.Logger, opts ...EmbeddedOption) (*server.Server, error) {
	if dataDir == "" {
		return nil, errors.New("queue: embedded NATS: empty data directory")
	}
	if logger == nil {
		logger = slog.Default()
	}
	store := filepath.Join(dataDir, "jetstream")
	if err := os.MkdirAll(store, 0o700); err != nil {
		return nil, fmt.Errorf("queue: embedded NATS: create store directory %s: %w", store, err)
	}
	unlock, err := lockStore(store)
	if err != nil {
		return nil, fmt.Errorf("queue: embedded NATS: %w", err)
	}
	o := &server.Options{
		ServerName: "personio-entra",
		JetStream:  true,
		StoreDir:   store,
		DontListen: true,
		NoSigs:     true,
		SyncAlways: true,
		// Monitoring stays off: it has no authentication
		// (https://docs.nats.io/running-a-nats-service/nats_admin/monitoring).
	}
	for _, opt := range opts {
		opt(o)
	}
	s, err := server.NewServer(o)
	if err != nil {
		unlock()
		return nil, fmt.Errorf("queue: embedded NATS: configure server: %w", err)
	}
	s.SetLoggerV2(&serverLogger{l: logger.With(slog.String("component", "nats-server"))}, false, false, false)
	go s.Start()
	go func() { s.WaitForShutdown(); unlock() }()
	if !s.ReadyForConnections(15 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("queue: embedded NATS: not ready within 15s (store %s)", store)
	}
	logger.Info("embedded NATS JetStream started", slog.String("store", store),
		slog.Bool("sync_always", o.SyncAlways), slog.Bool("listening", !o.DontListen))
	return s, nil
}

// ConnectEmbedded opens an in-process connection to an embedded server.
func ConnectEmbedded(s *server.Server, name string, logger *slog.Logger, extra ...nats.Option) (*nats.Conn, error) {
	opts := append(connOptions(name, logger), nats.InProcessServer(s))
	nc, err := nats.Connect("", append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("queue: connect to embedded NATS: %w", err)
	}
	return nc, nil
}

// Connect connects to an external NATS server or cluster. url may list
// several servers separated by commas; tls:// URLs use TLS with the system
// roots (so SSL_CERT_FILE works). credsFile, if set, is a NATS credentials
// file (JWT and nkey seed). The connection reconnects forever (the default
// gives up after about 2 minutes, docs/jetstream.md#embedding-and-reconnecting).
// While ctx allows, a failing first connect is retried every second, so a
// process may start before NATS.
func Connect(ctx context.Context, url, credsFile, name string, logger *slog.Logger, extra ...nats.Option) (*nats.Conn, error) {
	if logger == nil {
		logger = slog.Default()
	}
	opts := connOptions(name, logger)
	if credsFile != "" {
		opts = append(opts, nats.UserCredentials(credsFile))
	}
	opts = append(opts, extra...)
	for attempt := 1; ; attempt++ {
		nc, err := nats.Connect(url, opts...)
		if err == nil {
			logger.Info("connected to NATS", slog.String("server", nc.ConnectedUrlRedacted()))
			return nc, nil
		}
		logger.Warn("connecting to NATS failed", slog.Int("attempt", attempt), slog.Any("err", err))
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("queue: connect to NATS (%d attempts): %w", attempt, errors.Join(err, ctx.Err()))
		case <-time.After(time.Second):
		}
	}
}

func connOptions(name string, logger *slog.Logger) []nats.Option {
	return []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				logger.Warn("NATS disconnected", slog.Any("err", err))
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			logger.Info("NATS reconnected", slog.String("server", nc.ConnectedUrlRedacted()))
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			logger.Error("NATS asynchronous error", slog.String("subject", subj), slog.Any("err", err))
		}),
	}
}

// serverLogger routes the embedded server's log to slog.
type serverLogger struct{ l *slog.Logger }

func (s *serverLogger) Noticef(format string, v ...any) { s.l.Info(fmt.Sprintf(format, v...)) }
func (s *serverLogger) Warnf(format string, v ...any)   { s.l.Warn(fmt.Sprintf(format, v...)) }
func (s *serverLogger) Fatalf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s *serverLogger) Errorf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s *serverLogger) Debugf(format string, v ...any)  { s.l.Debug(fmt.Sprintf(format, v...)) }
func (s *serverLogger) Tracef(format string, v ...any)  { s.l.Debug(fmt.Sprintf(format, v...)) }
