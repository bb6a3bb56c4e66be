package provisioning

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/personio-entra/personio-entra/rules"
)

var heldAdditionsTotal = promauto.NewCounter(prometheus.CounterOpts{
	Name: "personio_entra_held_group_additions_total",
	Help: "Group additions of accounts disabled until their start date that were held to fill Graph's 20-member requests instead of being waited for.",
})

// Held group additions.
//
// A reconcile of a person whose account stays disabled until the start date
// (phase pre_hire) does not wait for its group additions: it records them
// in the state bucket under "held.adds.<person id>", hands them to the
// batcher (memberBatcher.Hold), which sends them once their group's batch
// is full or the wave of joiners is over (5 s without a held addition, 60 s
// at most), and returns, so the person's partition moves on.
// Only then can a wave of joiners fill Graph's 20-member requests. Nobody
// signs in with a disabled account, so those seconds cost nothing; creates,
// manager references and every change of an account that can sign in go
// at once, and a reconcile that waits for nothing (an active person) never
// waits for these.
//
// The record is what makes holding safe:
//
//   - When the additions are written, the holder removes its entry, not at
//     once but after the wave (30 s without a held addition, or 2 minutes
//     after the first written entry, checked every minute, and when it
//     stops), so that a wave does not spend one more store write per joiner. When a request
//     failed, it queues the person (reason "held-additions"), whose
//     reconcile plans the missing memberships again, and only then removes
//     the entry; if queuing fails too, the entry stays, marked failed.
//   - A process that stops drains its batches first (Engine.DrainHeld). One
//     that dies leaves its entries behind: after their deadline (5 min,
//     longer than any batch can be held and sent, so the holder can no
//     longer write) the periodic sweep (Engine.SweepHeldAdditions, every
//     minute in every worker) queues the person, and the next reconcile of
//     the person clears the entry once it has converged.
//   - A later reconcile of the same person first settles the entries: held
//     by this process, it sends their batches at once and waits for them;
//     held by a live other process, it marks them superseded and goes on
//     (its holder queues the person again once they are written, so a
//     membership the later reconcile did not see yet is checked once more);
//     stale or failed, it re-plans from what Entra shows and clears them
//     when it succeeded.
//
// Every change to a record is a compare-and-set on its revision, a record
// is deleted only at the revision that was read empty, and the deadlines
// tolerate clock differences between processes of up to the margin between
// the longest hold (60 s, throttled or not) plus the send timeout (2 min) and
// the deadline (5 min).
const heldAddsPrefix = "held.adds."

const (
	// heldDeadline: after Queued+heldDeadline the holder never writes the
	// additions any more (the batcher sends a batch at most holdMax, 60 s,
	// after it opened, and the request ends within sendTimeout, 2 min), and
	// others take over.
	heldDeadline = 5 * time.Minute
	// heldSweeps bounds how often the sweep queues a person for the same
	// entry; after that the entry is dropped with an error, and the daily
	// complete sync repairs any membership still missing.
	heldSweeps = 3
	// ReasonHeldAdditions is the work reason of a person queued because
	// held group additions must be checked again.
	ReasonHeldAdditions = "held-additions"
)

type heldEntry struct {
	Token      string    `json:"token"`
	UserID     string    `json:"user_id"`
	Groups     []string  `json:"groups"`
	Queued     time.Time `json:"queued"`
	Deadline   time.Time `json:"deadline"`
	Failed     bool      `json:"failed,omitempty"`
	Superseded bool      `json:"superseded,omitempty"`
	Swept      int       `json:"swept,omitempty"`
	SweptAt    time.Time `json:"swept_at,omitzero"`
}

type heldRecord struct {
	Entries []heldEntry `json:"entries"`
}

func (r *heldRecord) index(token string) int {
	return slices.IndexFunc(r.Entries, func(e heldEntry) bool { return e.Token == token })
}

// revisionDeleter is the compare-and-delete the record needs
// (state.Mem and queue.StateStore have it).
type revisionDeleter interface {
	DeleteRevision(ctx context.Context, key string, rev uint64) error
}

// heldAdditions tracks this process's held entries.
type heldAdditions struct {
	prefix string
	n      atomic.Uint64

	mu       sync.Mutex
	inflight map[string]chan struct{} // token → closed once written
	// written: person → tokens written whose entries are still recorded;
	// they are removed after the wave (cleanWritten), so that a wave does
	// not spend a store write per joiner on it.
	written      map[string][]string
	writtenSince time.Time // the oldest token in written
	wg           sync.WaitGroup
}

func newHeldAdditions() *heldAdditions {
	return &heldAdditions{prefix: strconv.FormatInt(time.Now().UnixNano(), 36), inflight: map[string]chan struct{}{}, written: map[string][]string{}}
}

func (h *heldAdditions) start() (string, chan struct{}) {
	token := h.prefix + "-" + strconv.FormatUint(h.n.Add(1), 36)
	done := make(chan struct{})
	h.mu.Lock()
	h.inflight[token] = done
	h.mu.Unlock()
	return token, done
}

func (h *heldAdditions) finish(token string, done chan struct{}) {
	h.mu.Lock()
	delete(h.inflight, token)
	h.mu.Unlock()
	close(done)
}

func (h *heldAdditions) markWritten(personID, token string) {
	h.mu.Lock()
	if len(h.written) == 0 {
		h.writtenSince = time.Now()
	}
	h.written[personID] = append(h.written[personID], token)
	h.mu.Unlock()
}

// isWritten reports whether this process wrote the entry's additions.
func (h *heldAdditions) isWritten(personID, token string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Contains(h.written[personID], token)
}

func (h *heldAdditions) takeWritten() map[string][]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	w := h.written
	h.written = map[string][]string{}
	return w
}

// local returns the done channel of an entry this process holds, or nil.
func (h *heldAdditions) local(token string) chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.inflight[token]
}

// canHold says whether the additions of this plan may be held: the account
// stays disabled until the start date, and the engine can both record them
// durably and queue the person again.
func (e *Engine) canHold(p Plan) bool {
	if e.cfg.DryRun || e.cfg.Enqueuer == nil || p.PersonID == "" || !validKeyToken(p.PersonID) {
		return false
	}
	if _, ok := e.cfg.State.(revisionDeleter); !ok {
		return false
	}
	return p.Desired.Phase == rules.PhasePreHire && p.Desired.Exists && !p.Desired.AccountEnabled
}

// holdAdditions records the additions and hands them to the batcher without
// waiting. false: nothing was held (the record could not be written); the
// caller adds them the waiting way.
func (e *Engine) holdAdditions(ctx context.Context, log *slog.Logger, now time.Time, trigger string, plan Plan, userID string, adds []Change) bool {
	personID := plan.PersonID
	token, done := e.held.start()
	en := heldEntry{Token: token, UserID: userID, Queued: e.cfg.Now()}
	en.Deadline = en.Queued.Add(heldDeadline)
	for _, c := range adds {
		en.Groups = append(en.Groups, c.Group)
	}
	if err := e.updateHeld(ctx, personID, func(r *heldRecord) bool {
		r.Entries = append(r.Entries, en)
		return true
	}); err != nil {
		e.held.finish(token, done)
		log.Warn("cannot record held group additions; adding them now", "err", err)
		return false
	}
	waits := make([]func(context.Context) error, len(adds))
	for i, c := range adds {
		waits[i] = e.members.Hold(c.Group, userID)
	}
	heldAdditionsTotal.Add(float64(len(adds)))
	e.held.wg.Add(1)
	go func() {
		defer e.held.wg.Done()
		defer e.held.finish(token, done)
		bctx := context.WithoutCancel(ctx)
		failed := false
		for i, wait := range waits {
			if err := wait(bctx); err != nil {
				failed = true
				e.record(bctx, log, now, trigger, plan, adds[i], ResultFailed, "held addition; the person is reconciled again", err)
				continue
			}
			e.record(bctx, log, now, trigger, plan, adds[i], ResultApplied, "held until its group's batch filled (account disabled until the start date)", nil)
		}
		e.completeHeld(bctx, log, personID, token, failed)
	}()
	return true
}

// completeHeld settles an entry whose additions were sent. A failed or
// superseded one queues the person (the reconcile re-plans from Entra) and
// is removed; if queuing fails it stays, marked failed, for the sweep. A
// written one is removed later by cleanWritten (one read now, no write).
func (e *Engine) completeHeld(ctx context.Context, log *slog.Logger, personID, token string, failed bool) {
	if !failed {
		rec, _, err := e.readHeld(ctx, personID)
		i := rec.index(token)
		if err == nil && i >= 0 && !rec.Entries[i].Superseded {
			e.held.markWritten(personID, token)
			return
		}
	}
	e.removeHeld(ctx, log, personID, []string{token}, failed)
}

// removeHeld removes the person's entries with these tokens; any of them
// that failed (failed) or was superseded queues the person first.
func (e *Engine) removeHeld(ctx context.Context, log *slog.Logger, personID string, tokens []string, failed bool) {
	enqueued := false
	err := e.updateHeld(ctx, personID, func(r *heldRecord) bool {
		changed := false
		for _, token := range tokens {
			i := r.index(token)
			if i < 0 {
				continue // taken over after its deadline
			}
			if (failed || r.Entries[i].Superseded) && !enqueued {
				if err := e.cfg.Enqueuer.Enqueue(ctx, personID, ReasonHeldAdditions); err != nil {
					log.Error("queue the person after held group additions; the sweep retries", "err", err)
					if !r.Entries[i].Failed {
						r.Entries[i].Failed, changed = true, true
					}
					continue
				}
				enqueued = true
			}
			r.Entries = slices.Delete(r.Entries, i, i+1)
			changed = true
		}
		return changed
	})
	if err != nil {
		log.Error("update the record of held group additions; the sweep looks at it after its deadline", "err", err)
	}
}

// cleanWrittenAfterWave runs cleanWritten once no held addition came for
// 30 s, or when the oldest written entry is 2 minutes old (well before its
// deadline, after which other workers would queue the person again).
func (e *Engine) cleanWrittenAfterWave(ctx context.Context) {
	e.held.mu.Lock()
	oldest := e.held.writtenSince
	pending := len(e.held.written) > 0
	e.held.mu.Unlock()
	if pending && (e.members.quietFor() >= 30*time.Second || time.Since(oldest) >= 2*time.Minute) {
		e.cleanWritten(ctx)
	}
}

// cleanWritten removes the entries whose additions this process wrote
// (after a wave, from the sweep loop and when the process stops). A process
// that dies first leaves them to the sweep of the others: the person is
// reconciled once more, which finds the memberships and clears them.
func (e *Engine) cleanWritten(ctx context.Context) {
	for personID, tokens := range e.held.takeWritten() {
		e.removeHeld(ctx, e.log.With("person_id", personID), personID, tokens, false)
	}
}

// settleHeld runs before a reconcile reads the person's groups: entries this
// process holds are sent now and waited for, live entries of other
// processes are marked superseded, and the tokens of stale or failed ones
// are returned for clearHeld once the reconcile succeeded.
func (e *Engine) settleHeld(ctx context.Context, personID string) ([]string, error) {
	if _, ok := e.cfg.State.(revisionDeleter); !ok || e.cfg.DryRun || !validKeyToken(personID) {
		return nil, nil
	}
	rec, _, err := e.readHeld(ctx, personID)
	if err != nil || len(rec.Entries) == 0 {
		return nil, err
	}
	var users []string
	var waits []chan struct{}
	for _, en := range rec.Entries {
		if ch := e.held.local(en.Token); ch != nil {
			users = append(users, en.UserID)
			waits = append(waits, ch)
		}
	}
	if len(waits) > 0 {
		e.members.Flush(users...)
		for _, ch := range waits {
			select {
			case <-ch:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if rec, _, err = e.readHeld(ctx, personID); err != nil {
			return nil, err
		}
	}
	now := e.cfg.Now()
	var stale []string
	foreign := false
	for _, en := range rec.Entries {
		switch {
		case en.Failed || !now.Before(en.Deadline) || e.held.isWritten(personID, en.Token):
			stale = append(stale, en.Token)
		case e.held.local(en.Token) == nil && !en.Superseded:
			foreign = true
		}
	}
	if foreign {
		err := e.updateHeld(ctx, personID, func(r *heldRecord) bool {
			changed := false
			for i := range r.Entries {
				en := &r.Entries[i]
				if !en.Failed && now.Before(en.Deadline) && !en.Superseded && e.held.local(en.Token) == nil && !e.held.isWritten(personID, en.Token) {
					en.Superseded, changed = true, true
				}
			}
			return changed
		})
		if err != nil {
			return nil, fmt.Errorf("mark held group additions of another worker as superseded: %w", err)
		}
	}
	return stale, nil
}

// clearHeld removes entries a successful reconcile has made redundant.
func (e *Engine) clearHeld(ctx context.Context, log *slog.Logger, personID string, tokens []string) {
	if len(tokens) == 0 {
		return
	}
	err := e.updateHeld(ctx, personID, func(r *heldRecord) bool {
		n := len(r.Entries)
		r.Entries = slices.DeleteFunc(r.Entries, func(en heldEntry) bool { return slices.Contains(tokens, en.Token) })
		return len(r.Entries) != n
	})
	if err != nil {
		log.Warn("clear stale held group additions; the sweep comes back to them", "err", err)
	}
}

func (e *Engine) readHeld(ctx context.Context, personID string) (heldRecord, uint64, error) {
	var rec heldRecord
	b, rev, err := e.cfg.State.Get(ctx, heldAddsPrefix+personID)
	switch {
	case errors.Is(err, ErrKeyNotFound):
		return rec, 0, nil
	case err != nil:
		return rec, 0, fmt.Errorf("read held group additions of %s: %w", personID, err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, 0, fmt.Errorf("decode held group additions of %s: %w", personID, err)
	}
	return rec, rev, nil
}

// updateHeld changes the person's record with compare-and-set; fn returns
// false to leave it as it is. An empty record is deleted at the revision
// read.
func (e *Engine) updateHeld(ctx context.Context, personID string, fn func(*heldRecord) bool) error {
	del, ok := e.cfg.State.(revisionDeleter)
	if !ok {
		return errors.New("the state store cannot delete at a revision")
	}
	key := heldAddsPrefix + personID
	for range casAttempts {
		rec, rev, err := e.readHeld(ctx, personID)
		if err != nil {
			return err
		}
		if !fn(&rec) {
			return nil
		}
		switch {
		case len(rec.Entries) == 0 && rev == 0:
			return nil
		case len(rec.Entries) == 0:
			err = del.DeleteRevision(ctx, key, rev)
		default:
			b, _ := json.Marshal(rec)
			if rev == 0 {
				_, err = e.cfg.State.Create(ctx, key, b)
			} else {
				_, err = e.cfg.State.Update(ctx, key, b, rev)
			}
		}
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return fmt.Errorf("update held group additions of %s: the record is contended", personID)
}

// SweepHeldAdditions queues every person with held group additions that
// their holder can no longer write (past the deadline: the holder died) or
// that failed and could not be queued. It returns how many people it queued.
func (e *Engine) SweepHeldAdditions(ctx context.Context) (int, error) {
	if _, ok := e.cfg.State.(revisionDeleter); !ok || e.cfg.Enqueuer == nil {
		return 0, nil
	}
	keys, err := e.cfg.State.Keys(ctx, heldAddsPrefix)
	if err != nil {
		return 0, fmt.Errorf("list held group additions: %w", err)
	}
	queued := 0
	var errs []error
	for _, k := range keys {
		personID := strings.TrimPrefix(k, heldAddsPrefix)
		now := e.cfg.Now()
		enqueued := false
		err := e.updateHeld(ctx, personID, func(r *heldRecord) bool {
			changed := false
			for i := 0; i < len(r.Entries); i++ {
				en := &r.Entries[i]
				due := en.Failed || !now.Before(en.Deadline)
				if !due || e.held.local(en.Token) != nil || e.held.isWritten(personID, en.Token) || (!en.SweptAt.IsZero() && now.Sub(en.SweptAt) < heldDeadline) {
					continue
				}
				if en.Swept >= heldSweeps {
					e.log.Error("held group additions stayed unwritten after the person was queued again several times; dropping the record, the complete sync repairs what is missing",
						"person_id", personID, "user_id", en.UserID, "groups", en.Groups, "queued", en.Queued)
					r.Entries = slices.Delete(r.Entries, i, i+1)
					i--
					changed = true
					continue
				}
				if !enqueued {
					if err := e.cfg.Enqueuer.Enqueue(ctx, personID, ReasonHeldAdditions); err != nil {
						errs = append(errs, fmt.Errorf("queue %s: %w", personID, err))
						return changed
					}
					enqueued = true
				}
				en.Swept++
				en.SweptAt = now
				changed = true
			}
			return changed
		})
		if err != nil {
			errs = append(errs, err)
		}
		if enqueued {
			queued++
		}
	}
	if queued > 0 {
		e.log.Warn("queued people whose held group additions were left unwritten (a worker stopped without draining)", "people", queued)
	}
	return queued, errors.Join(errs...)
}

// RunHeldSweep runs SweepHeldAdditions every interval until ctx ends.
func (e *Engine) RunHeldSweep(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.cleanWrittenAfterWave(ctx)
			if _, err := e.SweepHeldAdditions(ctx); err != nil && ctx.Err() == nil {
				e.log.Error("sweep of held group additions", "err", err)
			}
		}
	}
}

// DrainHeld sends every held batch now and waits until their records are
// updated (or ctx ends): a process that stops leaves nothing held behind.
func (e *Engine) DrainHeld(ctx context.Context) error {
	if err := e.members.Drain(ctx); err != nil {
		return fmt.Errorf("send held group additions: %w", err)
	}
	done := make(chan struct{})
	go func() { e.held.wg.Wait(); close(done) }()
	select {
	case <-done:
		e.cleanWritten(ctx)
		return nil
	case <-ctx.Done():
		return fmt.Errorf("record held group additions: %w", ctx.Err())
	}
}
