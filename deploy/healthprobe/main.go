// Command healthprobe is the container health check of the personio-entra
// image. The runtime image has no shell and no curl, so Docker and Compose
// health checks run this small static binary instead:
//
//	healthprobe [path]
//
// It sends GET http://127.0.0.1:<port><path> (path defaults to /readyz; the
// port is taken from METRICS_ADDR, default 9090) and exits 0 on a 2xx answer
// within 2 seconds, 1 otherwise. It only ever talks to the loopback address
// of its own container. Kubernetes does not need it: its probes use httpGet.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stderr))
}

func run(args []string, getenv func(string) string, stderr io.Writer) int {
	path := "/readyz"
	switch len(args) {
	case 0:
	case 1:
		path = args[0]
	default:
		fmt.Fprintln(stderr, "usage: healthprobe [path]")
		return 2
	}
	target, err := probeURL(getenv("METRICS_ADDR"), path)
	if err != nil {
		fmt.Fprintf(stderr, "healthprobe: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := probe(ctx, target); err != nil {
		fmt.Fprintf(stderr, "healthprobe: %v\n", err)
		return 1
	}
	return 0
}

// probeURL builds the loopback URL for METRICS_ADDR (host part ignored: the
// probe always targets 127.0.0.1 inside the container).
func probeURL(metricsAddr, path string) (string, error) {
	port := "9090"
	if metricsAddr != "" {
		_, p, err := net.SplitHostPort(metricsAddr)
		if err != nil || p == "" {
			return "", fmt.Errorf("METRICS_ADDR=%q: want host:port such as :9090", metricsAddr)
		}
		port = p
	}
	if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \t\r\n?#") {
		return "", fmt.Errorf("path %q: want an absolute path such as /readyz", path)
	}
	return "http://" + net.JoinHostPort("127.0.0.1", port) + path, nil
}

func probe(ctx context.Context, target string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", target, err)
	}
	client := &http.Client{
		// The probe must not follow a redirect off the loopback address.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("GET %s: status %d: %s", target, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}
