// Package work is the contract between the queue and the code that handles
// its work, in the manner of controller-runtime's reconcile package: a
// handler returns a Result (done, or come back after a while) and an error;
// an error marked Terminal goes to the dead letters at once, any other error
// is retried with backoff. It imports nothing of the product, so the engine
// can speak it without knowing NATS.
package work

import (
	"context"
	"errors"
	"time"
)

// Result is what a handler asks of the queue besides its error. The zero
// Result means done (or, with an error, retry with the queue's backoff).
type Result struct {
	// RequeueAfter > 0 runs the work again after this long — without an
	// error: it is not finished yet (a dependency is not ready); with a
	// retryable error: instead of the queue's own backoff (Graph said
	// Retry-After).
	RequeueAfter time.Duration
}

type terminalError struct{ err error }

func (e *terminalError) Error() string { return e.err.Error() }
func (e *terminalError) Unwrap() error { return e.err }

// Terminal marks err as one no retry can fix (an invalid person id, rules
// that cannot be evaluated, Graph refusing the request for good): the work
// goes to the dead-letter stream at once, with the error as its reason.
// Terminal(nil) is nil.
func Terminal(err error) error {
	if err == nil {
		return nil
	}
	return &terminalError{err: err}
}

// IsTerminal reports whether err, or an error it wraps, was marked Terminal.
func IsTerminal(err error) bool {
	var t *terminalError
	return errors.As(err, &t)
}

// Info describes the message a handler runs for.
type Info struct {
	PersonID string
	// Reason is the event name (e.g. "person.updated"), "schedule",
	// "redrive", or what the work was enqueued with (e.g. "sync").
	Reason string
	// Detail is extra text: the reason given to a schedule, for example.
	Detail string
	// Attempt counts deliveries of this message, starting at 1.
	Attempt int
	// Sequence is the message's sequence in the event stream.
	Sequence uint64
	// ResolvedFrom is the employment id when the person was found from an
	// employment event.
	ResolvedFrom string
}

type infoKey struct{}

// WithInfo returns ctx carrying the work description.
func WithInfo(ctx context.Context, i Info) context.Context {
	return context.WithValue(ctx, infoKey{}, i)
}

// From returns the work description inside a handler.
func From(ctx context.Context) (Info, bool) {
	i, ok := ctx.Value(infoKey{}).(Info)
	return i, ok
}

// Reason returns why the handler runs ("" outside the queue).
func Reason(ctx context.Context) string {
	i, _ := From(ctx)
	return i.Reason
}
