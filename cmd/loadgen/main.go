// Command loadgen drives a personio-entra webhook receiver with Personio
// deliveries at a fixed rate (open loop) and reports what came back:
//
//	go run ./cmd/loadgen -url http://127.0.0.1:8080/webhooks/personio -token T \
//	    -rate 500 -duration 30s -people 1000
//
// It only sends to loopback addresses, stops after -duration or
// -max-requests, whichever comes first, and prints the number sent, the
// status counts, the achieved rate and the p50/p90/p99/max latency.
//
// With -senders N it runs closed loop instead: N senders, each sending its
// next delivery when the previous one was answered, as fast as the receiver
// answers, each over a keep-alive connection of its own through a lean
// wrk-style client (lean.go; -client std uses net/http). The same load
// comes from wrk with wrk-personio.lua. With -nats URL the same senders publish the deliveries straight
// into a JetStream stream of their own on that server (synchronous,
// acknowledged publishes with a message id, as the receiver makes them):
// the raw rate the receiver is measured against.
//
//	go run ./cmd/loadgen -url http://127.0.0.1:8080/webhooks/personio -token T -senders 32 -duration 20s
//	go run ./cmd/loadgen -nats nats://127.0.0.1:4222 -senders 32 -duration 20s
//
// Deliveries look like Personio's (dataless envelope, token verbatim in
// Authorization, docs/personio-api.md#webhook-subscriptions); each body is unique, so every one is
// stored and queued.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type options struct {
	url         string
	token       string
	company     string
	rate        int
	duration    time.Duration
	people      int
	firstID     int
	maxRequests int
	concurrency int
	timeout     time.Duration
	jsonOut     bool
	senders     int    // closed loop with this many senders (0: open loop at rate)
	natsURL     string // raw JetStream publishes instead of webhooks
	client      string // closed loop: clientLean or clientStd
}

// HTTP clients of the closed loop.
const (
	clientLean = "lean"
	clientStd  = "std"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		os.Exit(1)
	}
}

func parse(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.url, "url", "http://127.0.0.1:8080/webhooks/personio", "webhook receiver URL (loopback only)")
	fs.StringVar(&o.token, "token", os.Getenv("PERSONIO_WEBHOOK_TOKEN"), "webhook token (default $PERSONIO_WEBHOOK_TOKEN)")
	fs.StringVar(&o.company, "company", "4242", "company_id in the envelope (the sample company's by default)")
	fs.IntVar(&o.rate, "rate", 100, "deliveries per second (1-20000)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to send (at most 10m)")
	fs.IntVar(&o.people, "people", 1000, "distinct person ids to spread the deliveries over")
	fs.IntVar(&o.firstID, "first-id", 100000, "first person id (the simulators' generated companies start at 100000)")
	fs.IntVar(&o.maxRequests, "max-requests", 1_000_000, "stop after this many deliveries")
	fs.IntVar(&o.concurrency, "concurrency", 256, "most deliveries in flight at once; a late one is counted as skipped, the rate stays open-loop")
	fs.DurationVar(&o.timeout, "timeout", 3*time.Second, "per-delivery timeout (Personio waits 3 s)")
	fs.BoolVar(&o.jsonOut, "json", false, "print the report as JSON")
	fs.IntVar(&o.senders, "senders", 0, "closed loop: this many senders, each sending when its previous delivery was answered (0: open loop at -rate)")
	fs.StringVar(&o.natsURL, "nats", "", "publish raw to JetStream on this NATS server (loopback only, needs -senders) instead of posting webhooks")
	fs.StringVar(&o.client, "client", clientLean, "closed loop HTTP client: lean (wrk-style, one keep-alive connection per sender, lean.go) or std (net/http)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var errs []error
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	if o.natsURL != "" {
		if err := loopbackNATS(o.natsURL); err != nil {
			errs = append(errs, err)
		}
		if o.senders < 1 {
			errs = append(errs, errors.New("-nats needs -senders (raw publishes are measured closed loop)"))
		}
	} else {
		if err := loopbackURL(o.url); err != nil {
			errs = append(errs, err)
		}
		if o.token == "" {
			errs = append(errs, errors.New("-token is empty (or set PERSONIO_WEBHOOK_TOKEN)"))
		}
	}
	if o.client != clientLean && o.client != clientStd {
		errs = append(errs, fmt.Errorf("-client %q: want lean or std", o.client))
	}
	if o.senders < 0 || o.senders > 1024 {
		errs = append(errs, fmt.Errorf("-senders %d: want 0 to 1024", o.senders))
	}
	if o.rate < 1 || o.rate > 20000 {
		errs = append(errs, fmt.Errorf("-rate %d: want 1 to 20000", o.rate))
	}
	if o.duration <= 0 || o.duration > 10*time.Minute {
		errs = append(errs, fmt.Errorf("-duration %s: want more than 0 and at most 10m", o.duration))
	}
	if o.people < 1 || o.maxRequests < 1 || o.concurrency < 1 {
		errs = append(errs, errors.New("-people, -max-requests and -concurrency must be at least 1"))
	}
	return o, errors.Join(errs...)
}

// loopbackURL refuses anything but http(s) to 127.0.0.0/8, ::1 or localhost.
func loopbackURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("-url %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("-url %q: want http or https", raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-url %q: loadgen only targets loopback addresses (127.0.0.1, ::1, localhost)", raw)
	}
	return nil
}

// report is what one run measured.
type report struct {
	Sent        int            `json:"sent"`
	Skipped     int            `json:"skipped"` // not sent: every slot was busy at its due time
	Statuses    map[string]int `json:"statuses"`
	Elapsed     time.Duration  `json:"elapsed_ns"`
	AchievedRPS float64        `json:"achieved_rps"`
	TargetRPS   int            `json:"target_rps"`
	P50         time.Duration  `json:"p50_ns"`
	P90         time.Duration  `json:"p90_ns"`
	P99         time.Duration  `json:"p99_ns"`
	Max         time.Duration  `json:"max_ns"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parse(args, stderr)
	if err != nil {
		return err
	}
	var rep report
	switch {
	case o.natsURL != "":
		if rep, err = loadJetStream(ctx, o); err != nil {
			return err
		}
	case o.senders > 0:
		rep = loadClosed(ctx, o)
	default:
		rep = load(ctx, o)
	}
	if o.jsonOut {
		return json.NewEncoder(stdout).Encode(rep)
	}
	printReport(stdout, o, rep)
	return nil
}

// load sends deliveries on a fixed schedule (open loop: a slow answer does
// not slow the sender down, so latency under overload shows).
func load(ctx context.Context, o options) report {
	client := &http.Client{
		Timeout: o.timeout,
		Transport: &http.Transport{
			MaxIdleConns: o.concurrency, MaxIdleConnsPerHost: o.concurrency,
			IdleConnTimeout: 30 * time.Second,
		},
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	env := newEnvelopes(o.company)
	slots := make(chan struct{}, o.concurrency)
	var (
		mu        sync.Mutex
		latencies []time.Duration
		statuses  = map[string]int{}
		wg        sync.WaitGroup
	)
	rep := report{TargetRPS: o.rate}
	interval := time.Second / time.Duration(o.rate)
	start := time.Now()
	end := start.Add(o.duration)
	for i := 0; i < o.maxRequests; i++ {
		due := start.Add(time.Duration(i) * interval)
		if !due.Before(end) {
			break
		}
		if d := time.Until(due); d > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		}
		if ctx.Err() != nil {
			break
		}
		select {
		case slots <- struct{}{}:
		default:
			rep.Skipped++
			continue
		}
		id := o.firstID + rng.IntN(o.people)
		body := env.append(nil, rng.IntN(len(events)), strconv.Itoa(id), time.Now().UTC().Add(time.Duration(i)))
		rep.Sent++
		wg.Go(func() {
			defer func() { <-slots }()
			t0 := time.Now()
			key := post(client, o.url, o.token, body)
			lat := time.Since(t0)
			mu.Lock()
			latencies = append(latencies, lat)
			statuses[key]++
			mu.Unlock()
		})
	}
	wg.Wait()
	rep.Elapsed = time.Since(start)
	rep.Statuses = statuses
	rep.finish(latencies)
	return rep
}

// finish fills the rate and the latency quantiles from the answered
// deliveries' latencies (sorted in place).
func (r *report) finish(latencies []time.Duration) {
	r.AchievedRPS = float64(r.Sent) / r.Elapsed.Seconds()
	slices.Sort(latencies)
	r.P50, r.P90, r.P99 = quantile(latencies, 0.50), quantile(latencies, 0.90), quantile(latencies, 0.99)
	if len(latencies) > 0 {
		r.Max = latencies[len(latencies)-1]
	}
}

// closedLoop runs o.senders senders until the duration or the request
// budget is used up; newSender gives each sender its own send function
// (its own connection), which makes one delivery and returns its status
// key.
func closedLoop(ctx context.Context, o options, newSender func() (send func(i int) string, done func())) report {
	var (
		mu        sync.Mutex
		latencies []time.Duration
		statuses  = map[string]int{}
		wg        sync.WaitGroup
		next      atomic.Int64
	)
	start := time.Now()
	end := start.Add(o.duration)
	for range o.senders {
		wg.Go(func() {
			send, done := newSender()
			defer done()
			lat := make([]time.Duration, 0, 4096)
			st := map[string]int{}
			for ctx.Err() == nil && time.Now().Before(end) {
				i := int(next.Add(1)) - 1
				if i >= o.maxRequests {
					break
				}
				t0 := time.Now()
				key := send(i)
				lat = append(lat, time.Since(t0))
				st[key]++
			}
			mu.Lock()
			latencies = append(latencies, lat...)
			for k, v := range st {
				statuses[k] += v
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	rep := report{Sent: len(latencies), Statuses: statuses, Elapsed: time.Since(start)}
	rep.finish(latencies)
	return rep
}

// loadClosed posts webhooks closed loop: with the lean client one
// keep-alive connection per sender (lean.go), with -client std through a
// shared net/http client.
func loadClosed(ctx context.Context, o options) report {
	base := time.Now().UTC()
	env := newEnvelopes(o.company)
	if o.client == clientLean && strings.HasPrefix(o.url, "http:") {
		return closedLoop(ctx, o, func() (func(int) string, func()) {
			lc, err := newLeanConn(o.url, o.token, o.timeout)
			if err != nil {
				return func(int) string { return "request error" }, func() {}
			}
			var body []byte
			return func(i int) string {
				body = env.append(body[:0], i%len(events), strconv.Itoa(o.firstID+i%o.people), base.Add(time.Duration(i)))
				return lc.post(body)
			}, lc.close
		})
	}
	client := &http.Client{
		Timeout: o.timeout,
		Transport: &http.Transport{
			MaxIdleConns: o.senders, MaxIdleConnsPerHost: o.senders,
			IdleConnTimeout: 30 * time.Second,
		},
	}
	return closedLoop(ctx, o, func() (func(int) string, func()) {
		return func(i int) string {
			body := env.append(nil, i%len(events), strconv.Itoa(o.firstID+i%o.people), base.Add(time.Duration(i)))
			return post(client, o.url, o.token, body)
		}, func() {}
	})
}

// events are the event names the deliveries cycle through.
var events = []string{"person.updated", "employment.updated", "person.created"}

func post(c *http.Client, target, token string, body []byte) string {
	req, err := http.NewRequest(http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return "request error"
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", token)
	resp, err := c.Do(req)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return "timeout"
		}
		return "transport error"
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return strconv.Itoa(resp.StatusCode)
}

// quantile of sorted durations (nearest rank).
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func printReport(w io.Writer, o options, r report) {
	switch {
	case o.natsURL != "":
		fmt.Fprintf(w, "target      raw JetStream publish on %s, %d senders for %s over %d people\n", o.natsURL, o.senders, o.duration, o.people)
	case o.senders > 0:
		fmt.Fprintf(w, "target      %s, %d senders (closed loop) for %s over %d people\n", o.url, o.senders, o.duration, o.people)
	default:
		fmt.Fprintf(w, "target      %s, %d/s for %s over %d people\n", o.url, o.rate, o.duration, o.people)
	}
	fmt.Fprintf(w, "sent        %d in %s (achieved %.1f/s)", r.Sent, r.Elapsed.Round(time.Millisecond), r.AchievedRPS)
	if r.Skipped > 0 {
		fmt.Fprintf(w, ", %d skipped: %d in flight at their due time", r.Skipped, o.concurrency)
	}
	fmt.Fprintln(w)
	keys := make([]string, 0, len(r.Statuses))
	for k := range r.Statuses {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %d", k, r.Statuses[k]))
	}
	fmt.Fprintf(w, "statuses    %s\n", strings.Join(parts, ", "))
	fmt.Fprintf(w, "latency     p50 %s  p90 %s  p99 %s  max %s\n", r.P50.Round(10*time.Microsecond),
		r.P90.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond), r.Max.Round(10*time.Microsecond))
}
