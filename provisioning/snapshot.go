package provisioning

import (
	"context"
	"sync"
	"time"

	"github.com/personio-entra/personio-entra/rules"
)

// Snapshots of the complete sync for the reconciles it queues.
//
// A complete sync has just read every account and every managed group's
// members; re-reading them for each drifting person (match, memberOf) would
// cost two Graph requests per person for what the sync read moments ago.
// So the sync leaves, in this process, what it read of each person it
// queues, and the reconcile of that work uses it instead of reading again —
// only when the snapshot is provably fresh and only for changes that give
// or keep access:
//
//   - it was read by the complete sync at most snapshotTTL ago;
//   - no other reconcile of the person ran since: every reconcile takes the
//     person's snapshot out, whatever its trigger, so the product's own
//     writes since the read always invalidate it;
//   - it is used once, by the reconcile of work queued by the sync
//     ("sync" trigger), in apply mode;
//   - the plan it yields has no destructive change. A plan that would take
//     access away (disable, delete, revoke, leave a group, lose a manager)
//     is thrown away and the reconcile starts again from fresh reads, so
//     access is never taken away on the strength of the snapshot; such
//     changes still go through the safeguard.
//
// What a snapshot cannot see is a change made by hand in Entra in the
// seconds between the sync's read and the reconcile; the non-destructive
// writes made from it then set values the rules ask for anyway, and the next
// delta or complete sync finds anything left. A worker in another process
// has no snapshot and reads as always.

// snapshotTTL is how old a snapshot may be when its reconcile runs.
const snapshotTTL = 2 * time.Minute

// maxSnapshots bounds what a sync with massive drift leaves in memory;
// people beyond it are reconciled from fresh reads.
const maxSnapshots = 20000

// syncSnapshot is what the complete sync read for one person.
type syncSnapshot struct {
	taken time.Time
	user  User
	// groups are the managed groups the account was a member of.
	groups []string
	// managerOf is the manager person id the sync looked up; manager is
	// the one account carrying it (nil: none, or several).
	managerOf string
	manager   *User
}

type snapshotStore struct {
	mu sync.Mutex
	m  map[string]syncSnapshot
}

// put keeps snaps (by person id), dropping expired ones first.
func (s *snapshotStore) put(now time.Time, snaps map[string]syncSnapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]syncSnapshot{}
	}
	for id, sn := range s.m {
		if now.Sub(sn.taken) > snapshotTTL {
			delete(s.m, id)
		}
	}
	for id, sn := range snaps {
		if len(s.m) >= maxSnapshots {
			return
		}
		s.m[id] = sn
	}
}

// take removes the person's snapshot and returns it when it may still be
// used at now.
func (s *snapshotStore) take(personID string, now time.Time) (syncSnapshot, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sn, ok := s.m[personID]
	if !ok {
		return syncSnapshot{}, false
	}
	delete(s.m, personID)
	return sn, now.Sub(sn.taken) <= snapshotTTL && !now.Before(sn.taken)
}

// snapshotFor takes the person's snapshot out (every apply-mode reconcile
// does) and returns it when this reconcile may use it.
func (e *Engine) snapshotFor(personID, trigger string, m mode) *syncSnapshot {
	if m == modePlan {
		return nil
	}
	sn, ok := e.snaps.take(personID, e.cfg.Now())
	if !ok || trigger != "sync" {
		return nil
	}
	return &sn
}

// snapshotActual is Engine.actual from a snapshot: the memberships the sync
// read, and the manager's account when the sync looked up the same
// manager (otherwise it is read).
func (e *Engine) snapshotActual(ctx context.Context, sn *syncSnapshot, u *User, d rules.Desired) (Actual, error) {
	a := Actual{User: u, Groups: make(map[string]bool, len(sn.groups))}
	for _, g := range sn.groups {
		a.Groups[g] = true
	}
	if e.cfg.ManageManager && d.ManagerPersonID != "" && u.ManagerEmployeeID != d.ManagerPersonID {
		if sn.managerOf == d.ManagerPersonID && sn.manager != nil {
			a.Manager = sn.manager
			return a, nil
		}
		m, err := e.findByEmployeeID(ctx, d.ManagerPersonID)
		if err != nil {
			return a, err
		}
		a.Manager = m
	}
	return a, nil
}

// keepSnapshot records what the sync read for a drifting person with one
// account (taken is the start of the sync's read, so the age is never
// under-counted).
func (rep *SyncReport) keepSnapshot(taken time.Time, d rules.Desired, a Actual) {
	if rep.snaps == nil {
		rep.snaps = map[string]syncSnapshot{}
	}
	sn := syncSnapshot{taken: taken, user: *a.User, managerOf: d.ManagerPersonID, manager: a.Manager}
	for g, in := range a.Groups {
		if in {
			sn.groups = append(sn.groups, g)
		}
	}
	rep.snaps[d.PersonID] = sn
}
