package provisioning

import (
	"context"
	"sync"
	"time"
)

// memberBatcher coalesces group additions made by concurrent reconciles
// into Graph's bulk add (20 members per request, graph.md §4), so that a
// wave of joiners costs far fewer writes than one per membership. Each
// caller waits for the request that carries its user and gets its result.
type memberBatcher struct {
	dir    Directory
	linger time.Duration
	max    int

	mu      sync.Mutex
	pending map[string]*memberBatch // group id → open batch
}

type memberBatch struct {
	users []string
	done  chan struct{}
	err   error
}

func newMemberBatcher(d Directory) *memberBatcher {
	return &memberBatcher{dir: d, linger: 25 * time.Millisecond, max: 20, pending: map[string]*memberBatch{}}
}

// Add adds userID to groupID, possibly together with other users.
func (b *memberBatcher) Add(ctx context.Context, groupID, userID string) error {
	b.mu.Lock()
	batch := b.pending[groupID]
	if batch == nil {
		batch = &memberBatch{done: make(chan struct{})}
		b.pending[groupID] = batch
		time.AfterFunc(b.linger, func() { b.flush(groupID, batch) })
	}
	batch.users = append(batch.users, userID)
	full := len(batch.users) >= b.max
	b.mu.Unlock()
	if full {
		b.flush(groupID, batch)
	}
	select {
	case <-batch.done:
		return batch.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *memberBatcher) flush(groupID string, batch *memberBatch) {
	b.mu.Lock()
	if b.pending[groupID] != batch {
		b.mu.Unlock()
		return // already flushed
	}
	delete(b.pending, groupID)
	users := batch.users
	b.mu.Unlock()
	// The request must finish even if the first caller gives up.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	batch.err = b.dir.AddGroupMembers(ctx, groupID, users)
	close(batch.done)
}
