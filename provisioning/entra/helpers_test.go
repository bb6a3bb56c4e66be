package entra

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/provisioning/entra/entratest"
)

// wireLog records every request that leaves the Graph client (after the
// middleware chain: compression, retries), with the body decompressed.
type wireLog struct {
	next http.RoundTripper
	mu   sync.Mutex
	reqs []wireReq
}

type wireReq struct {
	Method, Path, Query, Auth string
	Body                      string
}

func (w *wireLog) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := wireReq{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Auth: r.Header.Get("Authorization")}
	if r.Body != nil && r.Body != http.NoBody {
		raw, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(raw))
		plain := raw
		if r.Header.Get("Content-Encoding") == "gzip" {
			if zr, err := gzip.NewReader(bytes.NewReader(raw)); err == nil {
				plain, _ = io.ReadAll(zr)
			}
		}
		rec.Body = string(plain)
	}
	w.mu.Lock()
	w.reqs = append(w.reqs, rec)
	w.mu.Unlock()
	return w.next.RoundTrip(r)
}

func (w *wireLog) find(method, pathSuffix string) []wireReq {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []wireReq
	for _, r := range w.reqs {
		if r.Method == method && strings.HasSuffix(r.Path, pathSuffix) {
			out = append(out, r)
		}
	}
	return out
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("ENTRA_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

type dirOpt func(*Config)

// newSimDirectory starts a simulator and an adapter that talks to it through
// the real azidentity client-secret flow and msgraph-sdk-go.
func newSimDirectory(t testing.TB, opts entratest.Options, mods ...dirOpt) (*entratest.Server, *Directory, *wireLog) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	sim := entratest.New(opts)
	t.Cleanup(sim.Close)
	wire := &wireLog{next: sim.Client().Transport}
	cfg := Config{
		TenantID:        sim.TenantID(),
		ClientID:        sim.ClientID(),
		ClientSecret:    sim.ClientSecret(),
		AuthorityHost:   sim.AuthorityHost(),
		GraphURL:        sim.GraphURL(),
		HTTPClient:      &http.Client{Transport: wire, Timeout: 30 * time.Second},
		Logger:          testLogger(t),
		Retry:           RetryPolicy{MaxAttempts: 8, MaxWait: 20 * time.Second, BaseDelay: 20 * time.Millisecond},
		ReplicationWait: 5 * time.Second,
	}
	for _, m := range mods {
		m(&cfg)
	}
	d, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("entra.New: %v", err)
	}
	return sim, d, wire
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
