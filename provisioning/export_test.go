package provisioning

import (
	"context"
	"time"
)

// EngineOwns reports whether the engine's ownership records hold the
// account (for the external tests in package provisioning_test).
func EngineOwns(e *Engine, ctx context.Context, userID string) (bool, error) {
	return e.own.Owns(ctx, userID)
}

// SetHoldMax changes how long the engine's batcher holds additions of
// disabled pre-hires, quiet or not (tests).
func SetHoldMax(e *Engine, d time.Duration) {
	e.members.mu.Lock()
	e.members.holdMax, e.members.holdQuiet = d, d
	e.members.mu.Unlock()
}

// HeldTokens lists the tokens of the person's held-addition entries.
func HeldTokens(e *Engine, ctx context.Context, personID string) ([]string, error) {
	rec, _, err := e.readHeld(ctx, personID)
	var out []string
	for _, en := range rec.Entries {
		out = append(out, en.Token)
	}
	return out, err
}

// SetEnqueuer replaces the engine's queue (tests).
func SetEnqueuer(e *Engine, q Enqueuer) { e.cfg.Enqueuer = q }
