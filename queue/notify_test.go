package queue

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/queue/work"
)

// runNotifications starts RunNotifications until the test ends.
func runNotifications(t *testing.T, q *Queue, h NoticeHandler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.RunNotifications(ctx, h) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("RunNotifications did not return")
		}
	})
}

// A failing delivery is retried with backoff and then dead-lettered, and
// it never holds a person's partition: the person's reconcile runs while
// the notification waits for its retry. A repeated Msg-Id queues once; a
// dead notification can be re-driven.
func TestNotificationsRetryDeadLetterAndNeverBlockWork(t *testing.T) {
	s := startServer(t)
	cfg := fastConfig()
	cfg.NotifyMaxDeliver, cfg.NotifyRetryBase, cfg.NotifyRetryMax = 3, 2*time.Second, 2*time.Second
	q := openQueue(t, s, "notify", cfg)
	ctx := context.Background()

	var mu sync.Mutex
	attempts := map[string]int{}
	var failing = true
	runNotifications(t, q, func(ctx context.Context, n work.Notice) error {
		mu.Lock()
		defer mu.Unlock()
		attempts[n.Event+"/"+n.PersonID]++
		if n.Event == "joiner_created" && failing {
			return errors.New("sendMail: 503")
		}
		return nil
	})
	reconciled := make(chan time.Time, 4)
	runWorkers(t, q, func(ctx context.Context, personID string) error {
		reconciled <- time.Now()
		return nil
	}, nil)

	for range 2 { // the same Msg-Id twice: one notice
		if err := q.PublishNotice(ctx, work.Notice{Event: "joiner_created", PersonID: "42"}, "joiner-u42"); err != nil {
			t.Fatal(err)
		}
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return attempts["joiner_created/42"]
	}
	waitFor(t, "the first failed delivery", 5*time.Second, func() bool { return count() == 1 })
	// The notification now waits 2 s for its retry; the person's work runs meanwhile.
	if err := q.Enqueue(ctx, "42", "sync"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reconciled:
		if n := count(); n != 1 {
			t.Errorf("the reconcile ran only after %d delivery attempts", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the person's work did not run while a notification failed")
	}
	var dl []DeadLetter
	waitFor(t, "the notification in the dead letters", 15*time.Second, func() bool {
		var err error
		dl, err = q.DeadLetters(ctx)
		return err == nil && len(dl) == 1
	})
	mu.Lock()
	if n := attempts["joiner_created/42"]; n != 3 {
		t.Errorf("%d attempts, want 3", n)
	}
	failing = false
	mu.Unlock()
	if dl[0].OriginalSubject != "pe.notify.joiner_created.42" || dl[0].Reason != DeadLetterMaxDeliveries {
		t.Fatalf("dead letter %+v", dl[0])
	}
	if err := q.Redrive(ctx, dl[0].Sequence); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the re-driven notification delivered", 5*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return attempts["joiner_created/42"] == 4
	})
}

// Person work that is dead-lettered raises the dead_lettered notice when
// it is on, and a dead notification raises none.
func TestDeadLetteredWorkRaisesNotice(t *testing.T) {
	s := startServer(t)
	q := openQueue(t, s, "dlnotice", fastConfig())
	q.NotifyDeadLetters(true)
	ctx := context.Background()
	got := make(chan work.Notice, 4)
	runNotifications(t, q, func(ctx context.Context, n work.Notice) error {
		got <- n
		if n.Event == "joiner_created" {
			return work.Terminal(errors.New("template broken"))
		}
		return nil
	})
	runWorkers(t, q, func(ctx context.Context, personID string) error {
		return work.Terminal(errors.New("rules cannot be evaluated"))
	}, nil)
	if err := q.Enqueue(ctx, "7", "sync"); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-got:
		if n.Event != "dead_lettered" || n.PersonID != "7" || n.Reason != DeadLetterPermanent || n.Error == "" {
			t.Fatalf("notice %+v", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no dead_lettered notice")
	}
	if err := q.PublishNotice(ctx, work.Notice{Event: "joiner_created", PersonID: "8"}, ""); err != nil {
		t.Fatal(err)
	}
	<-got // the joiner notice itself, dead-lettered at once
	select {
	case n := <-got:
		t.Fatalf("a dead notification raised %+v", n)
	case <-time.After(time.Second):
	}
}
