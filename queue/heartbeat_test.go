package queue

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// freezeProxy forwards TCP between a client and a server on loopback
// until frozen; then it stops passing bytes either way without closing
// anything: a network path that silently stops (a partition, a stalled
// link), which neither side notices until its own timeouts.
type freezeProxy struct {
	ln     net.Listener
	target string
	frozen atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
}

func newFreezeProxy(t *testing.T, target string) *freezeProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezeProxy{ln: ln, target: target}
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *freezeProxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *freezeProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		go p.pipe(s, c)
		go p.pipe(c, s)
	}
}

// pipe copies src to dst; once frozen, what it reads is dropped.
func (p *freezeProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.frozen.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *freezeProxy) freeze() { p.frozen.Store(true) }

func (p *freezeProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// A worker whose path to the server silently stops while its handler runs
// (its heartbeats no longer arrive) stops that handler before the server
// can hand the message to another worker, AckWait after the last
// heartbeat it received: a person is never reconciled twice at once
// (docs/jetstream.md#consumers-and-acknowledgements).
func TestHandlerStopsBeforeItsWorkCanBeRedelivered(t *testing.T) {
	s := startServer(t, WithListen("127.0.0.1", -1))
	cfg := fastConfig()
	cfg.AckWait = 3 * time.Second
	cfg.MaxDeliver = 8
	proxy := newFreezeProxy(t, s.Addr().String())
	nc, err := nats.Connect(proxy.url(), connOptions("worker-a", testLogger(t))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	qa, err := Open(ctx, nc, cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(qa.Close)

	var running, overlaps atomic.Int32
	stopped := make(chan time.Time, 1)
	startedA := make(chan struct{})
	var once sync.Once
	runWorkers(t, qa, func(ctx context.Context, _ string) error {
		running.Add(1)
		once.Do(func() { close(startedA) })
		select {
		case <-time.After(10 * cfg.AckWait):
		case <-ctx.Done():
		}
		running.Add(-1)
		stopped <- time.Now()
		return ctx.Err()
	}, nil)
	producer := openQueue(t, s, "producer", cfg)
	if err := producer.Enqueue(ctx, "p1", "sync"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-startedA:
	case <-time.After(10 * time.Second):
		t.Fatal("worker A never got the work")
	}

	startedB := make(chan time.Time, 1)
	qb := openQueue(t, s, "worker-b", cfg)
	runWorkers(t, qb, func(context.Context, string) error {
		if running.Load() != 0 {
			overlaps.Add(1)
		}
		select {
		case startedB <- time.Now():
		default:
		}
		return nil
	}, nil)
	time.Sleep(cfg.AckWait / 2) // a heartbeat or two go through
	frozeAt := time.Now()
	proxy.freeze()

	select {
	case at := <-startedB:
		if overlaps.Load() != 0 {
			t.Fatalf("worker B ran the work %s after the freeze while worker A's handler still ran", at.Sub(frozeAt))
		}
	case <-time.After(5 * cfg.AckWait):
		t.Fatal("the work never reached worker B")
	}
	select {
	case at := <-stopped:
		if d := at.Sub(frozeAt); d > cfg.AckWait {
			t.Errorf("worker A's handler stopped %s after the freeze, want within AckWait (%s)", d, cfg.AckWait)
		}
	default:
		t.Error("worker A's handler is still running")
	}
}
