package provisioningtest

import (
	"maps"
	"time"

	"github.com/personio-entra/personio-entra/provisioning"
)

// Replication delay and lost answers.
//
// Graph is eventually consistent: right after a write, a read can miss the
// object or show it as it was (https://learn.microsoft.com/en-us/graph/aad-advanced-queries,
// https://devblogs.microsoft.com/identity/designing-for-eventual-consistency-for-microsoft-entra/).
// The directory answers every read at once unless a test turns the lag on
// (LagWrites); then a user created or restored is "unreplicated" until
// Replicate: missing from FindUsers and ListUsers (filtered and listing
// reads), optionally from GetUser (Lag.ByID), and, when restored,
// optionally still listed by FindDeletedUsers (Lag.DeletedListing). Its
// user principal name is taken at once, as in Graph. The lag is controlled
// by the test, not by the clock, so tests need not sleep.
//
// LoseAnswer makes the next create or restore happen and then answer with
// a transient error: a write whose response was lost (a timeout, a 504
// after Graph stored it).

// Lag says which reads miss an unreplicated user (see LagWrites).
type Lag struct {
	// ByID: GetUser answers 404 for it too.
	ByID bool
	// DeletedListing: a restored user is still listed by FindDeletedUsers.
	DeletedListing bool
}

// replState is the lag model; the directory's mutex guards it.
type replState struct {
	lag *Lag
	// unreplicated users by id; a restored one keeps its deletion time
	// for FindDeletedUsers.
	pending    map[string]bool
	restoredAt map[string]time.Time
	lose       map[string]bool // method → its next call loses its answer
}

// LagWrites turns the replication lag on for the users created or
// restored from now on, until Replicate.
func (d *Directory) LagWrites(l Lag) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.repl.lag = &l
}

// Replicate ends the lag: every user written so far shows in every read,
// and later writes show at once again.
func (d *Directory) Replicate() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.repl.lag, d.repl.pending, d.repl.restoredAt = nil, nil, nil
}

// LoseAnswer makes the next call of method ("CreateUser" or
// "RestoreDeletedUser") do its work and then fail with a transient error.
func (d *Directory) LoseAnswer(method string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.repl.lose == nil {
		d.repl.lose = map[string]bool{}
	}
	d.repl.lose[method] = true
}

// wrote records a create or restore of id; d.mu is held. deletedAt is the
// deletion time of a restored user (zero for a create).
func (d *Directory) wrote(id string, deletedAt time.Time) {
	if d.repl.lag == nil {
		return
	}
	if d.repl.pending == nil {
		d.repl.pending, d.repl.restoredAt = map[string]bool{}, map[string]time.Time{}
	}
	d.repl.pending[id] = true
	if !deletedAt.IsZero() {
		d.repl.restoredAt[id] = deletedAt
	}
}

// hidden reports whether filtered and listing reads miss id; d.mu is held.
func (d *Directory) hidden(id string) bool { return d.repl.pending[id] }

// hiddenByID reports whether GetUser misses id; d.mu is held.
func (d *Directory) hiddenByID(id string) bool {
	return d.repl.pending[id] && d.repl.lag != nil && d.repl.lag.ByID
}

// stillListedDeleted returns the restored users FindDeletedUsers still
// lists; d.mu is held.
func (d *Directory) stillListedDeleted() map[string]time.Time {
	if d.repl.lag == nil || !d.repl.lag.DeletedListing {
		return nil
	}
	return maps.Clone(d.repl.restoredAt)
}

// answerLost reports (once) whether the call of method loses its answer,
// and the error it answers with then; d.mu is held.
func (d *Directory) answerLost(method, op string) error {
	if !d.repl.lose[method] {
		return nil
	}
	delete(d.repl.lose, method)
	return &provisioning.DirectoryError{Kind: provisioning.KindTransient, Op: op, Code: "UnknownError",
		Message: "The gateway did not receive a response in time."}
}
