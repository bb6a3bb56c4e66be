package provisioning

import (
	"context"
	"errors"
	"sync"
	"time"
)

// memberBatcher coalesces group additions made by concurrent reconciles
// into Graph's bulk add (20 members per request, docs/graph-behaviour.md#group-membership), so that a
// wave of joiners costs far fewer writes than one per membership.
//
// There are two kinds of additions. An urgent one (Add) is for an account
// that can sign in: its reconcile waits for the request that carries it,
// which is sent once the group saw no other addition for idle (25 ms), or
// when the batch is a second old. A held one (Hold) is for an account that
// is disabled until a start date: nobody signs in with it, so the addition
// may wait for the batch to fill, and its reconcile does not wait for it
// (the engine records it durably first, batcher_held.go). Held batches go
// when they are full, when no held addition arrived for holdQuiet (5 s: the
// wave of joiners is over), or at the latest holdMax (60 s) after they
// opened: the window grows with the wave and ends with it. A wave of joiners then costs about one request per 20
// memberships, where waiting reconciles could only ever batch the few
// additions that were in flight at the same moment. An urgent addition that
// joins a batch of held ones sends it at its own pace, carrying them along.
type memberBatcher struct {
	dir       Directory
	idle      time.Duration // urgent: flush when no one joined for this long
	maxAge    time.Duration // urgent: flush a batch this old even while people keep joining
	holdQuiet time.Duration // held only: flush once no held addition came for this long
	holdMax   time.Duration // held only: flush a batch this old
	max       int
	// throttledUntil says until when Graph asked to slow down (nil: never
	// known). While it lies ahead, batches stay open — up to maxHold — so
	// that they fill instead of spending the recovering budget one member
	// at a time, and creates and manager references go first.
	throttledUntil func() time.Time
	maxHold        time.Duration
	// sendTimeout bounds one batch's request, retries of throttled answers
	// included.
	sendTimeout time.Duration

	mu       sync.Mutex
	pending  map[string]*memberBatch // group id → open batch
	lastHeld time.Time               // the last held addition, in any group
	sending  sync.WaitGroup          // detached batches whose request runs
}

type memberBatch struct {
	users   []string
	has     map[string]bool
	urgent  bool // an urgent addition is in it: it goes at the urgent pace
	created time.Time
	last    time.Time     // the last urgent addition
	wake    chan struct{} // the timer recomputes when the batch became urgent
	done    chan struct{}
	errs    map[string]error // per user, after the flush
}

// A single change waits idle (25 ms) before it is sent; during a wave of
// joiners, batches fill for up to maxAge (1 s) or 20 members; held
// additions wait while the wave lasts (holdQuiet 5 s, holdMax 60 s). Graph does not allow a manager in the
// create request (the manager is its own write), so these batches are where
// a wave saves writes.
func newMemberBatcher(d Directory, throttledUntil func() time.Time) *memberBatcher {
	return &memberBatcher{dir: d, idle: 25 * time.Millisecond, maxAge: time.Second, holdQuiet: 5 * time.Second, holdMax: time.Minute, max: 20,
		throttledUntil: throttledUntil, maxHold: 30 * time.Second, sendTimeout: 2 * time.Minute, pending: map[string]*memberBatch{}}
}

// Add adds userID to groupID, possibly together with other users, and
// waits for the request that carries it.
func (b *memberBatcher) Add(ctx context.Context, groupID, userID string) error {
	batch := b.join(groupID, userID, true)
	select {
	case <-batch.done:
		return batch.errs[userID]
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Hold queues userID for groupID without waiting: the request goes when the
// batch is full, when held additions stopped coming for holdQuiet, holdMax
// after the batch opened, or sooner when an urgent addition or Flush sends
// it. wait returns the addition's result.
func (b *memberBatcher) Hold(groupID, userID string) (wait func(context.Context) error) {
	batch := b.join(groupID, userID, false)
	return func(ctx context.Context) error {
		select {
		case <-batch.done:
			return batch.errs[userID]
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (b *memberBatcher) join(groupID, userID string, urgent bool) *memberBatch {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	batch := b.pending[groupID]
	if batch == nil {
		batch = &memberBatch{has: map[string]bool{}, created: now, wake: make(chan struct{}, 1), done: make(chan struct{})}
		b.pending[groupID] = batch
		go b.timer(groupID, batch)
	}
	if !urgent {
		b.lastHeld = now
	}
	if urgent {
		batch.last = now
		if !batch.urgent {
			batch.urgent = true
			select {
			case batch.wake <- struct{}{}:
			default:
			}
		}
	}
	if batch.has[userID] {
		return batch // already in this request
	}
	batch.has[userID] = true
	batch.users = append(batch.users, userID)
	if len(batch.users) >= b.max {
		// Detach under the lock: the next caller starts a new batch, so no
		// request ever carries more than max members.
		b.detachLocked(groupID, batch)
	}
	return batch
}

// detachLocked takes an open batch out of pending and sends it.
func (b *memberBatcher) detachLocked(groupID string, batch *memberBatch) {
	delete(b.pending, groupID)
	b.sending.Add(1)
	go func() {
		defer b.sending.Done()
		b.send(groupID, batch)
	}()
	select {
	case batch.wake <- struct{}{}: // its timer ends
	default:
	}
}

// Flush sends now every open batch that holds one of users' additions
// (every open batch when users is empty).
func (b *memberBatcher) Flush(users ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for g, batch := range b.pending {
		hit := len(users) == 0
		for _, u := range users {
			hit = hit || batch.has[u]
		}
		if hit {
			b.detachLocked(g, batch)
		}
	}
}

// quietFor is how long ago the last held addition came (long ago when none).
func (b *memberBatcher) quietFor() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.lastHeld.IsZero() {
		return time.Duration(1<<63 - 1)
	}
	return time.Since(b.lastHeld)
}

// Drain sends every open batch now and waits until every request is done
// (or ctx ends): nothing held is left behind when the process stops.
func (b *memberBatcher) Drain(ctx context.Context) error {
	b.Flush()
	done := make(chan struct{})
	go func() { b.sending.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// timer flushes the batch once it is due.
func (b *memberBatcher) timer(groupID string, batch *memberBatch) {
	for {
		b.mu.Lock()
		if b.pending[groupID] != batch {
			b.mu.Unlock()
			return // sent because it was full or flushed
		}
		var due time.Time
		if batch.urgent {
			due = batch.last.Add(b.idle)
			if old := batch.created.Add(b.maxAge); old.Before(due) {
				due = old
			}
		} else {
			due = b.lastHeld.Add(b.holdQuiet)
			if old := batch.created.Add(b.holdMax); old.Before(due) {
				due = old
			}
		}
		if b.throttledUntil != nil {
			// Throttled: hold the batch until Graph's Retry-After has
			// passed (it fills meanwhile), but never past maxHold (or
			// past when it was due anyway).
			if until := b.throttledUntil(); until.After(due) {
				limit := batch.created.Add(b.maxHold)
				if limit.Before(due) {
					limit = due
				}
				due = until
				if limit.Before(due) {
					due = limit
				}
			}
		}
		wait := time.Until(due)
		if wait <= 0 {
			b.detachLocked(groupID, batch)
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-batch.wake:
			t.Stop()
		}
	}
}

// send makes the request for a detached batch and wakes its callers.
func (b *memberBatcher) send(groupID string, batch *memberBatch) {
	users := batch.users // no one appends to a detached batch
	// The request must finish even if the first caller gives up.
	ctx, cancel := context.WithTimeout(context.Background(), b.sendTimeout)
	defer cancel()
	batch.errs = map[string]error{}
	if err := b.dir.AddGroupMembers(ctx, groupID, users); err != nil {
		if len(users) == 1 || errors.Is(err, ErrThrottled) || errors.Is(err, ErrTransient) {
			for _, u := range users {
				batch.errs[u] = err
			}
		} else {
			// One bad member fails the whole request: retry one by one so
			// that the others are not held back by it.
			for _, u := range users {
				batch.errs[u] = b.dir.AddGroupMembers(ctx, groupID, []string{u})
			}
		}
	}
	close(batch.done)
}
