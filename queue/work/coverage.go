package work

import "context"

// Coverage lets a handler tell the queue which stored source events its
// outcome already accounts for (docs/jetstream.md#covered-work). A source
// event (a webhook) only says that the source changed; a handler that read
// the source after the event was stored and then succeeded has converged
// to that change, so the queue may acknowledge such an event without
// running the handler again.
type Coverage interface {
	// Mark returns a position among the work stored for the person so far:
	// every piece of work stored before the call is at or before it. ok is
	// false when the position could not be read (nothing can be covered).
	Mark(ctx context.Context) (mark uint64, ok bool)
	// Cover says the handler's outcome holds for every source event stored
	// up to mark: it read the source after taking the mark, and nothing it
	// read differs from what it acted on. The queue keeps the widest mark
	// and only once the handler succeeded.
	Cover(mark uint64)
}

type coverageKey struct{}

// WithCoverage returns ctx carrying the queue's Coverage for the work.
func WithCoverage(ctx context.Context, c Coverage) context.Context {
	return context.WithValue(ctx, coverageKey{}, c)
}

// CoverageFrom returns the Coverage inside a handler (false outside the
// queue, or for work that cannot be covered).
func CoverageFrom(ctx context.Context) (Coverage, bool) {
	c, ok := ctx.Value(coverageKey{}).(Coverage)
	return c, ok && c != nil
}
