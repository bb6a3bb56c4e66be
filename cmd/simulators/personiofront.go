package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// unavailableGate makes the Personio front answer 503 until a moment.
type unavailableGate struct {
	mu       sync.Mutex
	until    time.Time
	rejected int64
}

func newUnavailableGate() *unavailableGate { return &unavailableGate{} }

// Set makes Personio unavailable for d from now (0 ends an outage).
func (g *unavailableGate) Set(d time.Duration) time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.until = time.Now().Add(d)
	return g.until
}

// down reports whether the request must be refused, counting refusals.
func (g *unavailableGate) down() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if time.Now().Before(g.until) {
		g.rejected++
		return true
	}
	return false
}

func (g *unavailableGate) state() (until time.Time, rejected int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.until, g.rejected
}

// newPersonioFront is the Personio API as other processes see it: a
// reverse proxy to the in-process simulator on the address given by flag,
// which can answer 503 for a while (an outage). The simulator writes
// absolute v2 next links with its own address; the front rewrites them to
// its public URL, as a load balancer in front of Personio would present
// them, so that the client's same-host link check holds.
func newPersonioFront(backend, public string, gate *unavailableGate, log *slog.Logger) (http.Handler, error) {
	target, err := url.Parse(backend)
	if err != nil {
		return nil, fmt.Errorf("personio front: backend URL %q: %w", backend, err)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = target.Host
			pr.Out.Header.Del("Accept-Encoding") // bodies are rewritten below
		},
		ModifyResponse: func(resp *http.Response) error {
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return fmt.Errorf("personio front: read the simulator's answer: %w", err)
			}
			body = bytes.ReplaceAll(body, []byte(backend), []byte(public))
			resp.Body = io.NopCloser(bytes.NewReader(body))
			resp.ContentLength = int64(len(body))
			resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			log.Warn("personio front: simulator unreachable", slog.String("path", r.URL.Path), slog.Any("err", err))
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if gate.down() {
			writeUnavailable(w, r)
			return
		}
		rp.ServeHTTP(w, r)
	}), nil
}

// writeUnavailable answers 503 in the error envelope of the API version
// the path belongs to (v1 {success:false,error}, v2
// application/problem+json; docs/personio-api.md#rate-limits-and-errors).
func writeUnavailable(w http.ResponseWriter, r *http.Request) {
	const msg = "Service temporarily unavailable"
	var body any
	ct := "application/problem+json"
	if strings.HasPrefix(r.URL.Path, "/v1/") {
		ct = "application/json"
		body = map[string]any{"success": false, "error": map[string]any{"code": 0, "message": msg}}
	} else {
		body = map[string]any{
			"timestamp": time.Now().UTC().Format(time.RFC3339),
			"errors":    []map[string]any{{"title": http.StatusText(http.StatusServiceUnavailable), "detail": msg}},
		}
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(http.StatusServiceUnavailable)
	_ = json.NewEncoder(w).Encode(body)
}
