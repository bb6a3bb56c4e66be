package provisioning

import (
	"context"
	"errors"
	"sync"
	"time"
)

// memberBatcher coalesces group additions made by concurrent reconciles
// into Graph's bulk add (20 members per request, docs/graph-behaviour.md#group-membership), so that a
// wave of joiners costs far fewer writes than one per membership. Each
// caller waits for the request that carries its user and gets its result.
type memberBatcher struct {
	dir    Directory
	idle   time.Duration // flush when no one joined for this long
	maxAge time.Duration // flush a batch this old even while people keep joining
	max    int
	// throttledUntil says until when Graph asked to slow down (nil: never
	// known). While it lies ahead, batches stay open — up to maxHold — so
	// that they fill instead of spending the recovering budget one member
	// at a time, and creates and manager references go first.
	throttledUntil func() time.Time
	maxHold        time.Duration

	mu      sync.Mutex
	pending map[string]*memberBatch // group id → open batch
}

type memberBatch struct {
	users   []string
	created time.Time
	last    time.Time
	done    chan struct{}
	errs    map[string]error // per user, after the flush
}

// A single change waits idle (25 ms) before it is sent; during a wave of
// joiners, batches fill for up to maxAge (1 s) or 20 members. Graph does
// not allow a manager in the create request (the manager is its own write),
// so these batches are where a wave saves writes.
func newMemberBatcher(d Directory, throttledUntil func() time.Time) *memberBatcher {
	return &memberBatcher{dir: d, idle: 25 * time.Millisecond, maxAge: time.Second, max: 20,
		throttledUntil: throttledUntil, maxHold: 30 * time.Second, pending: map[string]*memberBatch{}}
}

// Add adds userID to groupID, possibly together with other users.
func (b *memberBatcher) Add(ctx context.Context, groupID, userID string) error {
	b.mu.Lock()
	now := time.Now()
	batch := b.pending[groupID]
	if batch == nil {
		batch = &memberBatch{done: make(chan struct{}), created: now}
		b.pending[groupID] = batch
		go b.timer(groupID, batch)
	}
	batch.last = now
	batch.users = append(batch.users, userID)
	full := len(batch.users) >= b.max
	if full {
		// Detach under the lock: the next caller starts a new batch, so no
		// request ever carries more than max members.
		delete(b.pending, groupID)
	}
	b.mu.Unlock()
	if full {
		go b.send(groupID, batch)
	}
	select {
	case <-batch.done:
		return batch.errs[userID]
	case <-ctx.Done():
		return ctx.Err()
	}
}

// timer flushes the batch once it went idle or grew old.
func (b *memberBatcher) timer(groupID string, batch *memberBatch) {
	for {
		b.mu.Lock()
		if b.pending[groupID] != batch {
			b.mu.Unlock()
			return // flushed because it was full
		}
		due := batch.last.Add(b.idle)
		if old := batch.created.Add(b.maxAge); old.Before(due) {
			due = old
		}
		if b.throttledUntil != nil {
			// Throttled: hold the batch until Graph's Retry-After has
			// passed (it fills meanwhile), but never past maxHold.
			if until := b.throttledUntil(); until.After(due) {
				due = until
				if hold := batch.created.Add(b.maxHold); hold.Before(due) {
					due = hold
				}
			}
		}
		b.mu.Unlock()
		wait := time.Until(due)
		if wait <= 0 {
			b.flush(groupID, batch)
			return
		}
		time.Sleep(wait)
	}
}

func (b *memberBatcher) flush(groupID string, batch *memberBatch) {
	b.mu.Lock()
	if b.pending[groupID] != batch {
		b.mu.Unlock()
		return // already detached because it was full
	}
	delete(b.pending, groupID)
	b.mu.Unlock()
	b.send(groupID, batch)
}

// send makes the request for a detached batch and wakes its callers.
func (b *memberBatcher) send(groupID string, batch *memberBatch) {
	users := batch.users // no one appends to a detached batch
	// The request must finish even if the first caller gives up.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
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
