package provisioning

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// addRecorder is a Directory that only records AddGroupMembers calls.
type addRecorder struct {
	Directory // nil: any other method panics
	mu        sync.Mutex
	calls     [][]string
	bad       string // a user id the directory refuses
}

func (r *addRecorder) AddGroupMembers(_ context.Context, group string, users []string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, slices.Clone(users))
	if slices.Contains(users, r.bad) {
		return &DirectoryError{Kind: KindRejected, Op: "add members", Message: "bad reference"}
	}
	return nil
}

func TestMemberBatcher(t *testing.T) {
	t.Run("a wave of 30 joiners costs two requests", func(t *testing.T) {
		rec := &addRecorder{}
		b := newMemberBatcher(rec, nil)
		b.idle = 300 * time.Millisecond // generous: goroutines may start late on a loaded machine
		var wg sync.WaitGroup
		errs := make([]error, 30)
		for i := range 30 {
			wg.Go(func() { errs[i] = b.Add(context.Background(), "g1", fmt.Sprintf("u%02d", i)) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("u%02d: %v", i, err)
			}
		}
		var all []string
		for _, c := range rec.calls {
			if len(c) > 20 {
				t.Errorf("request with %d members; Graph allows 20", len(c))
			}
			all = append(all, c...)
		}
		slices.Sort(all)
		if len(rec.calls) != 2 || len(all) != 30 || len(slices.Compact(all)) != 30 {
			t.Errorf("%d requests carrying %v", len(rec.calls), rec.calls)
		}
	})
	t.Run("one bad member does not fail the others", func(t *testing.T) {
		rec := &addRecorder{bad: "u03"}
		b := newMemberBatcher(rec, nil)
		b.idle = 300 * time.Millisecond // generous: goroutines may start late on a loaded machine
		var wg sync.WaitGroup
		errs := make([]error, 5)
		for i := range 5 {
			wg.Go(func() { errs[i] = b.Add(context.Background(), "g1", fmt.Sprintf("u%02d", i)) })
		}
		wg.Wait()
		for i, err := range errs {
			if (err != nil) != (i == 3) {
				t.Errorf("u%02d: err = %v", i, err)
			}
		}
	})
	t.Run("groups are batched apart", func(t *testing.T) {
		rec := &addRecorder{}
		b := newMemberBatcher(rec, nil)
		b.idle = 300 * time.Millisecond // generous: goroutines may start late on a loaded machine
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Go(func() { _ = b.Add(context.Background(), fmt.Sprintf("g%d", i%2), fmt.Sprintf("u%d", i)) })
		}
		wg.Wait()
		if len(rec.calls) != 2 {
			t.Errorf("%d requests for 2 groups: %v", len(rec.calls), rec.calls)
		}
	})
}

// While Graph throttles, additions that trickle in (one every 40 ms, longer
// than the idle window) wait and fill their batch instead of going one by
// one; unthrottled, the same trickle costs a request each.
func TestMemberBatcherHoldsWhileThrottled(t *testing.T) {
	trickle := func(b *memberBatcher) {
		var wg sync.WaitGroup
		for i := range 12 {
			wg.Go(func() {
				if err := b.Add(context.Background(), "g1", fmt.Sprintf("u%02d", i)); err != nil {
					t.Errorf("u%02d: %v", i, err)
				}
			})
			time.Sleep(40 * time.Millisecond)
		}
		wg.Wait()
	}
	calm := &addRecorder{}
	trickle(newMemberBatcher(calm, nil))
	if len(calm.calls) < 6 {
		t.Fatalf("unthrottled trickle made %d requests; the test's spacing no longer exceeds the idle window", len(calm.calls))
	}

	throttled := &addRecorder{}
	until := time.Now().Add(800 * time.Millisecond)
	b := newMemberBatcher(throttled, func() time.Time { return until })
	b.maxAge = 50 * time.Millisecond // would flush early without the throttle
	trickle(b)
	if len(throttled.calls) > 2 {
		t.Errorf("throttled trickle made %d requests %v; want the batch held until the throttle ends", len(throttled.calls), throttled.calls)
	}
	for _, c := range throttled.calls {
		if len(c) > 20 {
			t.Errorf("request with %d members", len(c))
		}
	}

	// The hold is bounded even if Graph keeps throttling.
	forever := &addRecorder{}
	b = newMemberBatcher(forever, func() time.Time { return time.Now().Add(time.Hour) })
	b.maxHold = 200 * time.Millisecond
	start := time.Now()
	if err := b.Add(context.Background(), "g1", "u1"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("held %s, want about maxHold (200ms)", d)
	}
}

// Held additions fill requests of at most 20 members, each user once; an
// urgent addition that joins a held batch sends it at the urgent pace,
// held members included; a held batch is sent when it is holdMax old.
func TestMemberBatcherHold(t *testing.T) {
	t.Run("45 held additions: 20 + 20 + 5, none over 20", func(t *testing.T) {
		rec := &addRecorder{}
		b := newMemberBatcher(rec, nil)
		b.holdMax, b.holdQuiet = 300*time.Millisecond, time.Hour
		var waits []func(context.Context) error
		for i := range 45 {
			waits = append(waits, b.Hold("g1", fmt.Sprintf("u%02d", i)))
			if i == 7 {
				waits = append(waits, b.Hold("g1", "u07")) // the same addition again
			}
		}
		for i, w := range waits {
			if err := w(context.Background()); err != nil {
				t.Errorf("held addition %d: %v", i, err)
			}
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		var sizes []int
		var all []string
		for _, c := range rec.calls {
			sizes = append(sizes, len(c))
			all = append(all, c...)
		}
		slices.Sort(all)
		if !slices.Equal(sizes, []int{20, 20, 5}) || len(slices.Compact(all)) != 45 || len(all) != 45 {
			t.Errorf("requests of %v members, %d users in all; want 20, 20, 5 and every user once", sizes, len(all))
		}
	})
	t.Run("an urgent addition takes the held batch with it", func(t *testing.T) {
		rec := &addRecorder{}
		b := newMemberBatcher(rec, nil)
		b.holdMax, b.holdQuiet = time.Hour, time.Hour
		w1, w2 := b.Hold("g1", "held1"), b.Hold("g1", "held2")
		start := time.Now()
		if err := b.Add(context.Background(), "g1", "urgent"); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("urgent addition waited %s behind held ones", d)
		}
		if w1(context.Background()) != nil || w2(context.Background()) != nil {
			t.Error("held additions failed")
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if len(rec.calls) != 1 || len(rec.calls[0]) != 3 {
			t.Errorf("requests %v, want one carrying all three", rec.calls)
		}
	})
	t.Run("Flush sends a user's held batches now", func(t *testing.T) {
		rec := &addRecorder{}
		b := newMemberBatcher(rec, nil)
		b.holdMax, b.holdQuiet = time.Hour, time.Hour
		w := b.Hold("g1", "u1")
		b.Hold("g2", "u2")
		b.Flush("u1")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := w(ctx); err != nil {
			t.Fatal(err)
		}
		if err := b.Drain(ctx); err != nil {
			t.Fatal(err)
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if len(rec.calls) != 2 || !slices.Equal(rec.calls[0], []string{"u1"}) {
			t.Errorf("requests %v, want u1's first, then u2's at the drain", rec.calls)
		}
	})
}
