package queue

import (
	"context"
	"errors"
	"fmt"
	"github.com/personio-entra/personio-entra/queue/work"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(&tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type tWriter struct{ t testing.TB }

func (w *tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// startServer runs a real embedded JetStream server in a temp dir
// (docs/jetstream.md#embedding-and-reconnecting).
func startServer(t testing.TB, opts ...EmbeddedOption) *server.Server {
	t.Helper()
	dir := t.TempDir()
	s, err := StartEmbedded(dir, slog.New(slog.NewTextHandler(io.Discard, nil)), append([]EmbeddedOption{WithSyncAlways(false)}, opts...)...)
	if err != nil {
		t.Fatalf("start embedded NATS: %v", err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

func connect(t testing.TB, s *server.Server, name string) *nats.Conn {
	t.Helper()
	nc, err := ConnectEmbedded(s, name, testLogger(t))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func fastConfig() Config {
	return Config{
		Partitions:    8,
		AckWait:       3 * time.Second,
		MaxDeliver:    3,
		RetryBase:     20 * time.Millisecond,
		RetryMax:      100 * time.Millisecond,
		ShutdownGrace: 2 * time.Second,
	}
}

func openQueue(t testing.TB, s *server.Server, name string, cfg Config) *Queue {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	q, err := Open(ctx, connect(t, s, name), cfg, testLogger(t))
	if err != nil {
		t.Fatalf("open queue: %v", err)
	}
	t.Cleanup(q.Close)
	return q
}

// runWorkers starts RunWorkers and returns a stop function that waits for it.
func runWorkers(t testing.TB, q *Queue, f func(ctx context.Context, personID string) error, r Resolver) (stop func()) {
	t.Helper()
	h := func(ctx context.Context, personID string) (work.Result, error) {
		return work.Result{}, f(ctx, personID)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.RunWorkers(ctx, h, r) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("RunWorkers: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("RunWorkers did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTokenRoundTrip(t *testing.T) {
	tests := []struct {
		id, wantToken string
		wantErr       bool
	}{
		{id: "5005", wantToken: "5005"},
		{id: "2306b77a-35fb-4b1d-8044-3b14f7f2ca65", wantToken: "2306b77a-35fb-4b1d-8044-3b14f7f2ca65"},
		{id: "a.b", wantToken: "~612e62"},
		{id: "*", wantToken: "~2a"},
		{id: "~x", wantToken: "~7e78"},
		{id: "Zoë", wantToken: "~5a6fc3ab"},
		{id: "", wantErr: true},
		{id: strings.Repeat("1", maxIDLength+1), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			tok, err := encodeToken(tt.id)
			if (err != nil) != tt.wantErr {
				t.Fatalf("encodeToken(%q) error = %v, want error %v", tt.id, err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if tok != tt.wantToken {
				t.Errorf("encodeToken(%q) = %q, want %q", tt.id, tok, tt.wantToken)
			}
			back, err := decodeToken(tok)
			if err != nil || back != tt.id {
				t.Errorf("decodeToken(%q) = %q, %v; want %q", tok, back, err, tt.id)
			}
		})
	}
}

// The client-side partition must match the server's transform
// (docs/jetstream.md#subjects-and-partitions).
func TestPartitionMatchesServerTransform(t *testing.T) {
	s := startServer(t)
	q := openQueue(t, s, "partition", fastConfig())
	ctx := context.Background()
	stream, err := q.js.Stream(ctx, EventStream)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"1", "42", "5005", "a.b", "Zoë", "2306b77a-35fb-4b1d-8044-3b14f7f2ca65"} {
		if err := q.Enqueue(ctx, id, "sync"); err != nil {
			t.Fatalf("enqueue %q: %v", id, err)
		}
		tok, _ := encodeToken(id)
		want, _ := partitionOf(id, q.cfg.Partitions)
		m, err := stream.GetLastMsgForSubject(ctx, fmt.Sprintf("pe.p.*.person.%s.*", tok))
		if err != nil {
			t.Fatalf("stored message for %q: %v", id, err)
		}
		wantSubj := fmt.Sprintf("pe.p.%d.person.%s.enqueue", want, tok)
		if m.Subject != wantSubj {
			t.Errorf("person %q stored on %q, want %q", id, m.Subject, wantSubj)
		}
	}
}

func TestOpenIsIdempotentAndRefusesPartitionChange(t *testing.T) {
	s := startServer(t)
	cfg := fastConfig()
	openQueue(t, s, "first", cfg)
	openQueue(t, s, "second", cfg) // same config again: fine
	cfg.Partitions = 16
	_, err := Open(context.Background(), connect(t, s, "third"), cfg, testLogger(t))
	if err == nil || !strings.Contains(err.Error(), "drain") {
		t.Fatalf("Open with another partition count: err = %v, want a refusal that mentions the drain", err)
	}
}

func TestPublishEventDeduplicates(t *testing.T) {
	s := startServer(t)
	q := openQueue(t, s, "dedup", fastConfig())
	ctx := context.Background()
	ev := Event{MsgID: "delivery-1", CompanyID: "123", Name: "person.updated", OccurredAt: time.Now(), PersonID: "5005", Body: []byte(`{}`)}
	for i, wantDup := range []bool{false, true, true} {
		dup, err := q.PublishEvent(ctx, ev)
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		if dup != wantDup {
			t.Errorf("publish %d: duplicate = %v, want %v", i, dup, wantDup)
		}
	}
	ev.MsgID = "delivery-2"
	if dup, err := q.PublishEvent(ctx, ev); err != nil || dup {
		t.Fatalf("other delivery: dup=%v err=%v, want stored", dup, err)
	}
	info, err := q.js.Stream(ctx, EventStream)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.CachedInfo().State.Msgs; got != 2 {
		t.Errorf("stream holds %d messages, want 2", got)
	}
}

func TestPublishEventValidation(t *testing.T) {
	s := startServer(t)
	q := openQueue(t, s, "validation", fastConfig())
	tests := []struct {
		name string
		ev   Event
		want string
	}{
		{"no msg id", Event{Name: "person.updated", PersonID: "1"}, "empty message id"},
		{"no name", Event{MsgID: "x", PersonID: "1"}, "empty event name"},
		{"no ids", Event{MsgID: "x", Name: "person.updated"}, "neither a person id nor an employment id"},
		{"long id", Event{MsgID: "x", Name: "person.updated", PersonID: strings.Repeat("9", 300)}, "at most 256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := q.PublishEvent(context.Background(), tt.ev)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// Three worker processes (three connections), 200 events for 20 people: no
// person is ever handled twice at the same time, and every event is either
// handled or superseded by a newer one for the same person that is, so each
// person's last run sees their newest event.
func TestWorkersSerialisePerPersonAcrossProcesses(t *testing.T) {
	s := startServer(t)
	cfg := fastConfig()
	producer := openQueue(t, s, "producer", cfg)

	const people, perPerson = 20, 10
	var (
		inFlight   [people]atomic.Int32
		overlaps   atomic.Int32
		handled    atomic.Int32
		perPersonN [people]atomic.Int32
		lastReason [people]atomic.Value
		perWorker  [3]atomic.Int32
	)
	superseded := func() int { return int(testutil.ToFloat64(supersededTotal)) }
	supersededBefore := superseded()
	handler := func(worker int) func(context.Context, string) error {
		return func(ctx context.Context, personID string) error {
			var p int
			if _, err := fmt.Sscanf(personID, "p%d", &p); err != nil || p < 0 || p >= people {
				return work.Terminal(fmt.Errorf("unexpected person %q", personID))
			}
			if inFlight[p].Add(1) != 1 {
				overlaps.Add(1)
			}
			time.Sleep(time.Duration(1+p%3) * time.Millisecond)
			inFlight[p].Add(-1)
			lastReason[p].Store(ReasonFrom(ctx))
			perPersonN[p].Add(1)
			perWorker[worker].Add(1)
			handled.Add(1)
			return nil
		}
	}
	for w := 0; w < 3; w++ {
		q := openQueue(t, s, fmt.Sprintf("worker-%d", w), cfg)
		runWorkers(t, q, handler(w), nil)
	}
	ctx := context.Background()
	for i := 0; i < people*perPerson; i++ {
		ev := Event{MsgID: fmt.Sprintf("ev-%d", i), Name: fmt.Sprintf("person.updated.%d", i/people), PersonID: fmt.Sprintf("p%d", i%people), Body: []byte("{}")}
		if _, err := producer.PublishEvent(ctx, ev); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	waitFor(t, "all 200 events handled or superseded", 60*time.Second, func() bool {
		return int(handled.Load())+superseded()-supersededBefore >= people*perPerson
	})
	time.Sleep(200 * time.Millisecond) // let any stray redelivery show up
	if n := overlaps.Load(); n != 0 {
		t.Errorf("a person was handled concurrently %d times", n)
	}
	sup := superseded() - supersededBefore
	if n := int(handled.Load()); n+sup != people*perPerson {
		t.Errorf("handled %d and superseded %d events, want exactly %d together", n, sup, people*perPerson)
	}
	newest := fmt.Sprintf("person.updated.%d", perPerson-1)
	for p := range people {
		if n := perPersonN[p].Load(); n < 1 || n > perPerson {
			t.Errorf("person p%d handled %d times, want 1 to %d", p, n, perPerson)
		}
		if r, _ := lastReason[p].Load().(string); r != newest {
			t.Errorf("person p%d: last run for %q, want the newest event %q", p, r, newest)
		}
	}
	t.Logf("handled %d, superseded %d", handled.Load(), sup)
	for w := range perWorker {
		t.Logf("worker %d handled %d", w, perWorker[w].Load())
	}
}

func TestDeadLetters(t *testing.T) {
	s := startServer(t)
	cfg := fastConfig()
	q := openQueue(t, s, "dlq", cfg)
	ctx := context.Background()

	var mu sync.Mutex
	calls := map[string][]Work{}
	var redrivenOK atomic.Bool
	h := func(ctx context.Context, personID string) error {
		w, _ := WorkFrom(ctx)
		mu.Lock()
		calls[personID] = append(calls[personID], w)
		mu.Unlock()
		switch {
		case w.Reason == ReasonRedrive:
			redrivenOK.Store(true)
			return nil
		case personID == "always-fails":
			return errors.New("graph: 503 service unavailable")
		case personID == "permanent":
			return work.Terminal(errors.New("rules: department \"X\" maps to no group"))
		}
		return nil
	}
	runWorkers(t, q, h, nil)
	permBefore := testutil.ToFloat64(deadLettersTotal.WithLabelValues(DeadLetterPermanent))
	maxBefore := testutil.ToFloat64(deadLettersTotal.WithLabelValues(DeadLetterMaxDeliveries))
	redelBefore := testutil.ToFloat64(redeliveriesTotal)
	for _, p := range []string{"always-fails", "permanent"} {
		if err := q.Enqueue(ctx, p, "sync"); err != nil {
			t.Fatal(err)
		}
	}
	var dls []DeadLetter
	waitFor(t, "two dead letters", 20*time.Second, func() bool {
		var err error
		dls, err = q.DeadLetters(ctx)
		if err != nil {
			t.Fatalf("list dead letters: %v", err)
		}
		return len(dls) == 2
	})
	byPerson := map[string]DeadLetter{}
	for _, d := range dls {
		byPerson[d.PersonID] = d
	}
	tests := []struct {
		person, reason, errPart string
		attempts                int
	}{
		{"always-fails", DeadLetterMaxDeliveries, "503 service unavailable", cfg.MaxDeliver},
		{"permanent", DeadLetterPermanent, "maps to no group", 1},
	}
	for _, tt := range tests {
		d, ok := byPerson[tt.person]
		if !ok {
			t.Fatalf("no dead letter for %s in %+v", tt.person, dls)
		}
		if d.Reason != tt.reason || d.Attempts != tt.attempts || !strings.Contains(d.Error, tt.errPart) || d.WorkReason != "sync" {
			t.Errorf("%s: dead letter = reason %q attempts %d error %q work reason %q; want %q, %d, ~%q, sync",
				tt.person, d.Reason, d.Attempts, d.Error, d.WorkReason, tt.reason, tt.attempts, tt.errPart)
		}
		if d.OriginalStream != EventStream || d.OriginalSequence == 0 || !strings.Contains(d.OriginalSubject, ".person."+tt.person+".") {
			t.Errorf("%s: original = %s/%d %q", tt.person, d.OriginalStream, d.OriginalSequence, d.OriginalSubject)
		}
		mu.Lock()
		n := len(calls[tt.person])
		mu.Unlock()
		if n != tt.attempts {
			t.Errorf("%s: handler called %d times, want %d", tt.person, n, tt.attempts)
		}
	}

	// The counters move right after the dead letter is stored.
	waitFor(t, "dead-letter counters", 5*time.Second, func() bool {
		return testutil.ToFloat64(deadLettersTotal.WithLabelValues(DeadLetterPermanent))-permBefore >= 1 &&
			testutil.ToFloat64(deadLettersTotal.WithLabelValues(DeadLetterMaxDeliveries))-maxBefore >= 1
	})
	if d := testutil.ToFloat64(deadLettersTotal.WithLabelValues(DeadLetterPermanent)) - permBefore; d != 1 {
		t.Errorf("dead_letters_total{reason=permanent} grew by %v, want 1", d)
	}
	if d := testutil.ToFloat64(deadLettersTotal.WithLabelValues(DeadLetterMaxDeliveries)) - maxBefore; d != 1 {
		t.Errorf("dead_letters_total{reason=max_deliveries} grew by %v, want 1", d)
	}
	if d := testutil.ToFloat64(redeliveriesTotal) - redelBefore; d != float64(cfg.MaxDeliver-1) {
		t.Errorf("redeliveries_total grew by %v, want %d", d, cfg.MaxDeliver-1)
	}
	resetStatsCache()
	if n := currentStats().deadLetters; n != 2 {
		t.Errorf("dead_letter_messages = %v, want 2", n)
	}

	// Show one, then re-drive it: it runs again with reason "redrive" and
	// leaves the dead-letter stream.
	one, err := q.DeadLetter(ctx, byPerson["permanent"].Sequence)
	if err != nil || one.PersonID != "permanent" {
		t.Fatalf("DeadLetter(%d) = %+v, %v", byPerson["permanent"].Sequence, one, err)
	}
	if err := q.Redrive(ctx, byPerson["permanent"].Sequence); err != nil {
		t.Fatalf("redrive: %v", err)
	}
	waitFor(t, "re-driven work handled", 10*time.Second, redrivenOK.Load)
	left, err := q.DeadLetters(ctx)
	if err != nil || len(left) != 1 || left[0].PersonID != "always-fails" {
		t.Fatalf("after redrive: %+v, %v; want only always-fails", left, err)
	}
	if err := q.PurgeDeadLetter(ctx, left[0].Sequence); err != nil {
		t.Fatalf("purge: %v", err)
	}
	if err := q.PurgeDeadLetter(ctx, left[0].Sequence); !errors.Is(err, ErrNoDeadLetter) {
		t.Errorf("second purge: err = %v, want ErrNoDeadLetter", err)
	}
	if err := q.Redrive(ctx, 9999); !errors.Is(err, ErrNoDeadLetter) {
		t.Errorf("redrive of a missing dead letter: err = %v, want ErrNoDeadLetter", err)
	}
	if left, _ := q.DeadLetters(ctx); len(left) != 0 {
		t.Errorf("after purge: %d dead letters left", len(left))
	}
}

func TestRetryThenSuccess(t *testing.T) {
	s := startServer(t)
	q := openQueue(t, s, "retry", fastConfig())
	var attempts []int
	var mu sync.Mutex
	done := make(chan struct{})
	runWorkers(t, q, func(ctx context.Context, personID string) error {
		w, _ := WorkFrom(ctx)
		mu.Lock()
		attempts = append(attempts, w.Attempt)
		mu.Unlock()
		if w.Attempt < 2 {
			return errors.New("personio: 429 too many requests")
		}
		close(done)
		return nil
	}, nil)
	if err := q.Enqueue(context.Background(), "7", "sync"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("work never succeeded")
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(attempts) != "[1 2]" {
		t.Errorf("attempts = %v, want [1 2]", attempts)
	}
	if dls, _ := q.DeadLetters(context.Background()); len(dls) != 0 {
		t.Errorf("%d dead letters, want none", len(dls))
	}
}

func TestScheduleFiresAndCancels(t *testing.T) {
	s := startServer(t)
	q := openQueue(t, s, "schedule", fastConfig())
	ctx := context.Background()
	type call struct {
		person string
		work   Work
		at     time.Time
	}
	calls := make(chan call, 10)
	runWorkers(t, q, func(ctx context.Context, personID string) error {
		w, _ := WorkFrom(ctx)
		calls <- call{personID, w, time.Now()}
		return nil
	}, nil)

	// A schedule replaced by a later one fires once, at the later time; a
	// cancelled one never fires.
	at := time.Now().Add(3 * time.Second).Truncate(time.Second)
	if err := q.Schedule(ctx, "leaver", time.Now().Add(time.Second), "first guess"); err != nil {
		t.Fatalf("schedule: %v", err)
	}
	if err := q.Schedule(ctx, "leaver", at, "last working day 2026-12-31"); err != nil {
		t.Fatalf("reschedule: %v", err)
	}
	if err := q.Schedule(ctx, "withdrawn", time.Now().Add(2*time.Second), "offer withdrawn"); err != nil {
		t.Fatalf("schedule: %v", err)
	}
	if got, ok, err := q.ScheduledAt(ctx, "leaver"); err != nil || !ok || !got.Equal(at) {
		t.Errorf("ScheduledAt = %v, %v, %v; want %v", got, ok, err, at)
	}
	resetStatsCache()
	if n := currentStats().schedules; n != 2 {
		t.Errorf("schedules pending = %v, want 2", n)
	}
	if err := q.CancelSchedule(ctx, "withdrawn"); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	if _, ok, _ := q.ScheduledAt(ctx, "withdrawn"); ok {
		t.Errorf("cancelled schedule still pending")
	}
	select {
	case c := <-calls:
		if c.person != "leaver" || c.work.Reason != ReasonSchedule || c.work.Detail != "last working day 2026-12-31" {
			t.Errorf("fired %+v, want leaver/schedule/last working day", c)
		}
		// @at has second resolution, so it may fire up to ~1s early
		// (docs/jetstream.md#message-schedules).
		if c.at.Before(at.Add(-1100 * time.Millisecond)) {
			t.Errorf("fired at %v, before %v", c.at, at)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("schedule did not fire within 10s")
	}
	select {
	case c := <-calls:
		t.Errorf("unexpected second call %+v", c)
	case <-time.After(2 * time.Second):
	}
	if _, ok, _ := q.ScheduledAt(ctx, "leaver"); ok {
		t.Errorf("fired one-shot schedule still pending")
	}
}

func TestResolverTurnsEmploymentIntoPersonWork(t *testing.T) {
	s := startServer(t)
	q := openQueue(t, s, "resolver", fastConfig())
	ctx := context.Background()
	got := make(chan Work, 4)
	resolver := func(ctx context.Context, employmentID string) (string, error) {
		switch employmentID {
		case "emp-1":
			return "5005", nil
		case "emp-gone":
			return "", nil
		}
		return "", fmt.Errorf("unexpected employment %q", employmentID)
	}
	runWorkers(t, q, func(ctx context.Context, personID string) error {
		w, _ := WorkFrom(ctx)
		got <- w
		return nil
	}, resolver)
	for _, emp := range []string{"emp-1", "emp-gone"} {
		ev := Event{MsgID: "e-" + emp, Name: "employment.updated", EmploymentID: emp, Body: []byte("{}")}
		if _, err := q.PublishEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case w := <-got:
		if w.PersonID != "5005" || w.Reason != "employment.updated" || w.ResolvedFrom != "emp-1" {
			t.Errorf("work = %+v, want person 5005 from emp-1 for employment.updated", w)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("resolved work never ran")
	}
	waitFor(t, "unresolvable employment dead-lettered", 10*time.Second, func() bool {
		dls, err := q.DeadLetters(ctx)
		return err == nil && len(dls) == 1 && dls[0].EmploymentID == "emp-gone" && dls[0].Reason == DeadLetterPermanent
	})
}

// A handler still running when the shutdown grace ends is cancelled and its
// message goes back to the stream for another worker.
func TestShutdownGivesBackUnfinishedWork(t *testing.T) {
	s := startServer(t)
	cfg := fastConfig()
	cfg.ShutdownGrace = 300 * time.Millisecond
	cfg.AckWait = 15 * time.Second // a redelivery by ack wait would come far too late
	q1 := openQueue(t, s, "w1", cfg)
	started := make(chan struct{})
	stop1 := runWorkers(t, q1, func(ctx context.Context, personID string) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	}, nil)
	if err := q1.Enqueue(context.Background(), "slow", "sync"); err != nil {
		t.Fatal(err)
	}
	<-started
	t0 := time.Now()
	stop1()
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("shutdown took %v", d)
	}
	q2 := openQueue(t, s, "w2", cfg)
	again := make(chan Work, 1)
	runWorkers(t, q2, func(ctx context.Context, personID string) error {
		w, _ := WorkFrom(ctx)
		again <- w
		return nil
	}, nil)
	select {
	case w := <-again:
		if w.PersonID != "slow" || w.Attempt != 2 {
			t.Errorf("second worker got %+v, want person slow, attempt 2", w)
		}
	case <-time.After(cfg.AckWait - time.Second): // must come back through Nak, not the ack wait
		t.Fatal("unfinished work was not given back")
	}
}

func TestAudit(t *testing.T) {
	s := startServer(t)
	q := openQueue(t, s, "audit", fastConfig())
	ctx := context.Background()
	if recs, err := q.ReadAudit(ctx, "", 10); err != nil || len(recs) != 0 {
		t.Fatalf("empty audit: %q, %v", recs, err)
	}
	for i := 1; i <= 5; i++ {
		for _, p := range []string{"1", "2"} {
			if err := q.AppendAudit(ctx, p, fmt.Appendf(nil, "%s-%d", p, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := q.AppendAudit(ctx, "", []byte("sync-summary")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		person string
		limit  int
		want   string
	}{
		{"1", 3, "[1-3 1-4 1-5]"},
		{"2", 0, "[2-1 2-2 2-3 2-4 2-5]"},
		{"", 3, "[1-5 2-5 sync-summary]"},
		{"nobody", 10, "[]"},
	}
	for _, tt := range tests {
		recs, err := q.ReadAudit(ctx, tt.person, tt.limit)
		if err != nil {
			t.Fatalf("ReadAudit(%q, %d): %v", tt.person, tt.limit, err)
		}
		var ss []string
		for _, r := range recs {
			ss = append(ss, string(r))
		}
		if got := "[" + strings.Join(ss, " ") + "]"; got != tt.want {
			t.Errorf("ReadAudit(%q, %d) = %s, want %s", tt.person, tt.limit, got, tt.want)
		}
	}
}

func TestKeyValueCreatedOnFirstUse(t *testing.T) {
	s := startServer(t)
	q := openQueue(t, s, "kv", fastConfig())
	ctx := context.Background()
	kv, err := q.KeyValue(ctx, "approvals")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "sync-1", []byte("pending")); err != nil {
		t.Fatal(err)
	}
	again, err := q.KeyValue(ctx, "approvals")
	if err != nil {
		t.Fatal(err)
	}
	e, err := again.Get(ctx, "sync-1")
	if err != nil || string(e.Value()) != "pending" {
		t.Fatalf("get from second handle: %v, %v", e, err)
	}
	if _, err := q.KeyValueWith(ctx, jetstream.KeyValueConfig{Bucket: "bad name"}); err == nil {
		t.Error("invalid bucket name accepted")
	}
}

func TestReadyAndMetrics(t *testing.T) {
	s := startServer(t)
	q := openQueue(t, s, "ready", fastConfig())
	ctx := context.Background()
	if err := q.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	for _, p := range []string{"a", "b", "c"} {
		if err := q.Enqueue(ctx, p, "sync"); err != nil {
			t.Fatal(err)
		}
	}
	// The server updates a consumer's pending count asynchronously after a
	// publish, so the gauge converges rather than being exact at once.
	waitFor(t, "pending gauge to reach 3", 5*time.Second, func() bool {
		resetStatsCache()
		return currentStats().pending == 3
	})
	s.Shutdown()
	s.WaitForShutdown()
	waitFor(t, "Ready to fail", 5*time.Second, func() bool { return q.Ready(ctx) != nil })
}

// A handler that runs longer than AckWait keeps its message thanks to the
// InProgress heartbeats: no redelivery, no second run.
func TestHeartbeatsKeepLongWork(t *testing.T) {
	s := startServer(t)
	cfg := fastConfig()
	cfg.AckWait = 1500 * time.Millisecond
	q := openQueue(t, s, "heartbeat", cfg)
	var calls atomic.Int32
	done := make(chan struct{}, 4)
	// Two worker processes, so a redelivery would have somewhere to go.
	for i := range 2 {
		qi := q
		if i == 1 {
			qi = openQueue(t, s, "heartbeat-2", cfg)
		}
		runWorkers(t, qi, func(ctx context.Context, personID string) error {
			calls.Add(1)
			select {
			case <-time.After(2*cfg.AckWait + 500*time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
			done <- struct{}{}
			return nil
		}, nil)
	}
	before := testutil.ToFloat64(redeliveriesTotal)
	if err := q.Enqueue(context.Background(), "long", "sync"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("long work never finished")
	}
	time.Sleep(cfg.AckWait + 500*time.Millisecond)
	if n := calls.Load(); n != 1 {
		t.Errorf("handler ran %d times, want 1", n)
	}
	if d := testutil.ToFloat64(redeliveriesTotal) - before; d != 0 {
		t.Errorf("redeliveries grew by %v, want 0", d)
	}
}

// Two embedded servers must never share one store (nats-server does not
// lock it); the second is refused while the first runs, and allowed after.
func TestEmbeddedStoreIsLocked(t *testing.T) {
	dir := t.TempDir()
	first, err := StartEmbedded(dir, testLogger(t), WithSyncAlways(false))
	if err != nil {
		t.Fatal(err)
	}
	if s, err := StartEmbedded(dir, testLogger(t)); err == nil {
		s.Shutdown()
		t.Fatal("a second embedded server started on the same data directory")
	} else if !strings.Contains(err.Error(), "in use by another personio-entra process") {
		t.Fatalf("second server: %v", err)
	}
	first.Shutdown()
	first.WaitForShutdown()
	again, err := StartEmbedded(dir, testLogger(t), WithSyncAlways(false))
	if err != nil {
		t.Fatalf("after the first stopped: %v", err)
	}
	again.Shutdown()
	again.WaitForShutdown()
}

// The retry contract: a Result with RequeueAfter and no error runs the work
// again after that delay, without a dead letter; a retryable error with
// RequeueAfter waits that long instead of the backoff.
func TestHandlerResultRequeueAfter(t *testing.T) {
	s := startServer(t)
	cfg := fastConfig()
	cfg.RetryBase, cfg.RetryMax = time.Minute, time.Minute // the backoff would outlast the test
	q := openQueue(t, s, "requeue", cfg)
	ctx := context.Background()
	var mu sync.Mutex
	calls := map[string][]time.Time{}
	h := func(ctx context.Context, personID string) (work.Result, error) {
		mu.Lock()
		calls[personID] = append(calls[personID], time.Now())
		n := len(calls[personID])
		mu.Unlock()
		if n > 1 {
			return work.Result{}, nil
		}
		if personID == "waiting" {
			return work.Result{RequeueAfter: 300 * time.Millisecond}, nil
		}
		return work.Result{RequeueAfter: 300 * time.Millisecond}, errors.New("graph: 429 too many requests")
	}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- q.RunWorkers(wctx, h, nil) }()
	t.Cleanup(func() { cancel(); <-done })
	for _, p := range []string{"waiting", "throttled"} {
		if err := q.Enqueue(ctx, p, "sync"); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "both handled twice", 20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(calls["waiting"]) == 2 && len(calls["throttled"]) == 2
	})
	mu.Lock()
	defer mu.Unlock()
	for p, ts := range calls {
		if gap := ts[1].Sub(ts[0]); gap < 250*time.Millisecond || gap > 30*time.Second {
			t.Errorf("%s: ran again after %s, want about 300ms (RequeueAfter, not the 1 min backoff)", p, gap)
		}
	}
	if dls, err := q.DeadLetters(ctx); err != nil || len(dls) != 0 {
		t.Errorf("dead letters = %v, %v; want none", dls, err)
	}
}

// Backlog counts queued work, keeps counting it while a handler runs (in
// flight), and reaches 0 once every message is acknowledged.
func TestBacklog(t *testing.T) {
	s := startServer(t)
	q := openQueue(t, s, "backlog", fastConfig())
	ctx := context.Background()
	backlog := func() int {
		t.Helper()
		n, err := q.Backlog(ctx)
		if err != nil {
			t.Fatalf("Backlog: %v", err)
		}
		return n
	}
	if n := backlog(); n != 0 {
		t.Fatalf("Backlog of an empty queue = %d, want 0", n)
	}
	for _, p := range []string{"a", "b", "c"} {
		if err := q.Enqueue(ctx, p, "sync"); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "backlog of 3 queued messages", 5*time.Second, func() bool { return backlog() == 3 })

	release := make(chan struct{})
	var started atomic.Int32
	stop := runWorkers(t, q, func(ctx context.Context, personID string) error {
		started.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}, nil)
	defer stop()
	// Messages of people on the same partition wait for each other; either
	// way each of the three is queued or in flight until it is acknowledged.
	waitFor(t, "a handler to start", 5*time.Second, func() bool { return started.Load() >= 1 })
	if n := backlog(); n != 3 {
		t.Errorf("Backlog with messages in flight = %d, want 3", n)
	}
	close(release)
	waitFor(t, "backlog to drain", 5*time.Second, func() bool { return backlog() == 0 })
}
