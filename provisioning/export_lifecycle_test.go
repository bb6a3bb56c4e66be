package provisioning

import (
	"context"
	"time"
)

// EngineRecordOwned records an account as created by the engine (for the
// external tests: deleted accounts seeded straight into the directory).
func EngineRecordOwned(e *Engine, ctx context.Context, userID, personID, upn string) error {
	return e.own.Record(ctx, OwnershipRecord{UserID: userID, PersonID: personID, UPN: upn, How: "created", Since: time.Now().UTC()})
}
