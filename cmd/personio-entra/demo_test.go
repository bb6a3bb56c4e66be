//go:build !nosimulators

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// demoRun is `personio-entra demo` running in this process.
type demoRun struct {
	cancel         context.CancelFunc
	exit           chan int
	stdout, stderr *syncBuf
}

func startDemo(t *testing.T, args ...string) *demoRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &demoRun{cancel: cancel, exit: make(chan int, 1), stdout: &syncBuf{}, stderr: &syncBuf{}}
	args = append([]string{"demo", "--data", t.TempDir(), "--story=false"}, args...)
	go func() { d.exit <- runMain(ctx, testEnv(nil, d.stdout, d.stderr), args) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-d.exit:
		case <-time.After(60 * time.Second):
			t.Errorf("the demo did not stop within 60s of the test's end")
		}
	})
	return d
}

// waitOutput waits until the demo printed a line matching re, and fails if
// the demo exits first.
func (d *demoRun) waitOutput(t *testing.T, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if m := re.FindStringSubmatch(d.stdout.String()); m != nil {
			return m
		}
		select {
		case code := <-d.exit:
			d.exit <- code
			t.Fatalf("the demo exited %d before printing %q\nstdout:\n%s\nstderr:\n%s", code, re, d.stdout, d.stderr)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the demo did not print %q within %s\nstdout:\n%s\nstderr:\n%s", re, timeout, d.stdout, d.stderr)
		}
	}
}

// stopWithin cancels the demo's context (what SIGTERM and Ctrl-C do) and
// returns its exit status, failing if it takes longer than limit.
func (d *demoRun) stopWithin(t *testing.T, limit time.Duration) int {
	t.Helper()
	d.cancel()
	select {
	case code := <-d.exit:
		d.exit <- code
		return code
	case <-time.After(limit):
		t.Fatalf("the demo did not stop within %s of the cancellation\nstdout:\n%s", limit, d.stdout)
		return -1
	}
}

// exitWithin waits for the demo to end on its own.
func (d *demoRun) exitWithin(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case code := <-d.exit:
		d.exit <- code
		return code
	case <-time.After(limit):
		t.Fatalf("the demo did not exit within %s\nstdout:\n%s\nstderr:\n%s", limit, d.stdout, d.stderr)
		return -1
	}
}

// holdPort listens on addr the way another program would.
func holdPort(t *testing.T, addr string) (net.Listener, error) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { ln.Close() })
	return ln, nil
}

func TestDemoPorts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the demo")
	}

	// With its default ports taken by another program the demo serves on
	// free loopback ports instead, says which, converges and stops promptly
	// on cancellation.
	t.Run("default ports busy", func(t *testing.T) {
		for _, addr := range []string{demoListen, demoMetrics} {
			if _, err := holdPort(t, addr); err != nil {
				t.Skipf("cannot hold the demo's default address %s for this test (%v): something else on this machine uses it; the explicit-address sub-tests still run", addr, err)
			}
		}
		d := startDemo(t, "--latency", "0s")
		webhook := d.waitOutput(t, regexp.MustCompile(`webhook receiver\s+http://(127\.0\.0\.1:\d+)/webhooks/personio`), 60*time.Second)[1]
		metrics := d.waitOutput(t, regexp.MustCompile(`metrics\s+http://(127\.0\.0\.1:\d+)/metrics`), 5*time.Second)[1]
		if webhook == demoListen || metrics == demoMetrics {
			t.Fatalf("the demo claims the busy defaults: webhook %s, metrics %s", webhook, metrics)
		}
		out := d.stdout.String()
		for _, want := range []string{
			"Note: " + demoListen + " is not available (address already in use): serving the webhook receiver and admin API on " + webhook,
			"Note: " + demoMetrics + " is not available (address already in use): serving the metrics on " + metrics,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + metrics + "/healthz")
		if err != nil {
			t.Fatalf("the demo's metrics listener on %s: %v", metrics, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET /healthz on %s: %d", metrics, resp.StatusCode)
		}
		d.waitOutput(t, regexp.MustCompile(`Serving until Ctrl-C`), 3*time.Minute)
		if code := d.stopWithin(t, 30*time.Second); code != 0 {
			t.Errorf("the demo exited %d after cancellation, want 0\nstderr:\n%s", code, d.stderr)
		}
	})

	// An address given on the command line that is busy is an error that
	// says why, within seconds, and nothing is left running.
	for _, flag := range []string{"listen", "metrics"} {
		t.Run("explicit --"+flag+" busy", func(t *testing.T) {
			held, err := holdPort(t, "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := held.Addr().String()
			d := startDemo(t, "--"+flag, addr)
			if code := d.exitWithin(t, 10*time.Second); code != 1 {
				t.Errorf("exit status %d, want 1", code)
			}
			want := fmt.Sprintf("--%s %s: cannot listen there: address already in use", flag, addr)
			if !strings.Contains(d.stderr.String(), want) {
				t.Errorf("stderr lacks %q:\n%s", want, d.stderr)
			}
		})
	}

	// Cancelled while it waits for the first sync, the demo stops at once.
	t.Run("cancel during start-up", func(t *testing.T) {
		d := startDemo(t, "--listen", freeAddr(t), "--metrics", freeAddr(t))
		d.waitOutput(t, regexp.MustCompile(`First full sync`), 60*time.Second)
		if code := d.stopWithin(t, 30*time.Second); code != 0 {
			t.Errorf("the demo exited %d after cancellation, want 0\nstderr:\n%s", code, d.stderr)
		}
	})
}

// Regression: the product stops on its own while waitConverged watches it;
// Close must still return promptly (it used to wait for a value on a channel
// the convergence wait had already taken, for ever).
func TestStackCloseAfterProductStopped(t *testing.T) {
	s := newTestStack(t, stackOptions{})
	// Break the receiver's listener under the running server: serve fails
	// and the product stops, as it did when the port was taken.
	s.listeners.web.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := waitConverged(ctx, s, time.Minute, nil)
	if err == nil || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "the product stopped") {
		t.Fatalf("waitConverged = %v, want the product stopped", err)
	}
	for i := 0; i < 2; i++ { // and Close may be called again (the test's clean-up does too)
		closed := make(chan error, 1)
		go func() { closed <- s.Close() }()
		select {
		case err := <-closed:
			if err == nil || !strings.Contains(err.Error(), "listener") {
				t.Errorf("Close #%d = %v, want the listener's error", i+1, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("Close #%d did not return within 30s after the convergence wait saw the product stop", i+1)
		}
	}
}

// When nothing moves any more (here Graph throttles every write after the
// first few for an hour), the convergence wait gives up after the stall time
// and names who is stuck and on what.
func TestDemoConvergenceReportsWhatIsStuck(t *testing.T) {
	s := newTestStack(t, stackOptions{writeBudget: 5, writeWindow: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var progress []string
	start := time.Now()
	err := waitConverged(ctx, s, 3*time.Second, func(format string, a ...any) { progress = append(progress, fmt.Sprintf(format, a...)) })
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waitConverged = %v after %s, want it to give up on the held changes", err, time.Since(start))
	}
	for _, re := range []string{`^no progress for 3s: \d+ people still drifting, \d+ messages queued or in flight`, `; person \d+: (create user|set manager|add to group)`} {
		if !regexp.MustCompile(re).MatchString(err.Error()) {
			t.Errorf("error does not match %q: %v", re, err)
		}
	}
	t.Logf("gave up after %s: %v; progress: %q", time.Since(start).Round(time.Second), err, progress)
}
