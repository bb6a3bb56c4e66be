package provisioning

import (
	"context"
	"time"
)

// AdmitForTest counts a person against the safeguard's budget, as a
// reconcile that takes their access away does.
func AdmitForTest(e *Engine, ctx context.Context, personID string) (Admission, error) {
	return e.guard.Admit(ctx, HeldPerson{PersonID: personID, Changes: 1, Summary: "person " + personID})
}

// RecordOwnedForTest records an account as created by personio-entra.
func RecordOwnedForTest(e *Engine, ctx context.Context, userID, personID string) error {
	return e.own.Record(ctx, OwnershipRecord{UserID: userID, PersonID: personID, How: "created", Since: time.Unix(0, 0).UTC()})
}
