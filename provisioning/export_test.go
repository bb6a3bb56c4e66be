package provisioning

import "context"

// EngineOwns reports whether the engine's ownership records hold the
// account (for the external tests in package provisioning_test).
func EngineOwns(e *Engine, ctx context.Context, userID string) (bool, error) {
	return e.own.Owns(ctx, userID)
}
