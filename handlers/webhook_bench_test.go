package handlers

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/personio-entra/personio-entra/queue"
)

// latencies collects per-request durations and reports throughput and
// percentiles as custom benchmark metrics.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) { l.mu.Lock(); l.d = append(l.d, d); l.mu.Unlock() }

func (l *latencies) report(b *testing.B, elapsed time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return
	}
	slices.Sort(l.d)
	pct := func(p float64) float64 {
		return float64(l.d[min(len(l.d)-1, int(p*float64(len(l.d))))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(l.d))/elapsed.Seconds(), "req/s")
	b.ReportMetric(pct(0.50), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
}

var benchSeq atomic.Int64

func benchBody() string {
	n := benchSeq.Add(1)
	return fmt.Sprintf(`{"company_id":"123456","event_name":"person.updated","occurred_at":"2026-11-27T09:30:12.%09dZ","payload":{"person":{"id":"%d"}},"meta":{}}`,
		n%1_000_000_000, n%500)
}

// BenchmarkIntake compares, in one run and against the same embedded
// JetStream (file store), a raw synchronous JetStream publish with a webhook
// delivered through the real receiver on a loopback HTTP server (auth,
// parse, canonical form, Msg-Id, durable publish, answer after PubAck).
//
//	go test ./handlers -run '^$' -bench Intake -benchtime 3000x
func BenchmarkIntake(b *testing.B) {
	for _, sync := range []bool{true, false} {
		name := "fsync=always"
		if !sync {
			name = "fsync=default"
		}
		b.Run(name, func(b *testing.B) { benchIntake(b, sync) })
	}
}

func benchIntake(b *testing.B, syncAlways bool) {
	ns, err := queue.StartEmbedded(b.TempDir(), discard(), queue.WithSyncAlways(syncAlways))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, err := queue.ConnectEmbedded(ns, "bench", discard())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	e := newEnvOn(b, ns, nc, WebhookConfig{Tokens: []string{tokenOld}})
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}}
	post := func() error {
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+WebhookPath, strings.NewReader(benchBody()))
		req.Header.Set("Authorization", tokenOld)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	raw := func() error {
		m := nats.NewMsg("pe.in.person.42.event")
		m.Data = []byte(benchBody())
		_, err := js.PublishMsg(context.Background(), m, jetstream.WithMsgID(fmt.Sprint("raw-", benchSeq.Add(1))))
		return err
	}
	closedLoop := func(op func() error) func(b *testing.B) {
		return func(b *testing.B) {
			var lat latencies
			b.SetParallelism(8) // 16 concurrent senders on 2 cores
			start := time.Now()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					t0 := time.Now()
					if err := op(); err != nil {
						b.Error(err)
						return
					}
					lat.add(time.Since(t0))
				}
			})
			b.StopTimer()
			lat.report(b, time.Since(start))
		}
	}
	b.Run("raw_publish", closedLoop(raw))
	b.Run("webhook", closedLoop(post))
	// Open loop at a fixed 500 req/s: latency under the stated load.
	b.Run("webhook_at_500rps", func(b *testing.B) {
		var lat latencies
		var wg sync.WaitGroup
		const interval = 2 * time.Millisecond
		start := time.Now()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
				time.Sleep(d)
			}
			wg.Go(func() {
				t0 := time.Now()
				if err := post(); err != nil {
					b.Error(err)
					return
				}
				lat.add(time.Since(t0))
			})
		}
		wg.Wait()
		b.StopTimer()
		lat.report(b, time.Since(start))
	})
}
