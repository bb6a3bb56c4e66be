package provisioning_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"github.com/personio-entra/personio-entra/provisioning/provisioningtest"
)

// preHire starts a week after safetyNow: inside the rules' 14-day create
// window, so the account exists but stays disabled (phase pre_hire).
func preHire(e *model.Employee) {
	e.Status = "ONBOARDING"
	e.StartDate = model.DateOf(safetyNow.AddDate(0, 0, 7))
}

// engineAt is another worker process over the same directory, source and
// state bucket, with its own clock, queue and batcher.
func (env *safetyEnv) engineAt(t *testing.T, now time.Time, q *provisioningtest.Queue) *provisioning.Engine {
	t.Helper()
	eng, err := provisioning.New(provisioning.Config{
		Source: env.src, Directory: env.dir, Rules: env.rules, ManagedGroups: env.rules.ManagedGroups(), ManageManager: true,
		MatchKeys: []provisioning.MatchKey{{Property: "employeeId", Field: "person_id"}},
		State:     env.state, Guard: provisioning.GuardSettings{MaxCount: 100}, Scheduler: q, Enqueuer: q,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

// addRequests lists the member counts of the AddGroupMembers requests.
func (env *safetyEnv) addRequests(group string) []int {
	var out []int
	for _, w := range env.dir.WriteLog() {
		if w.Op == "AddGroupMembers" && w.GroupID == env.groups[group] {
			out = append(out, len(strings.Split(w.UserID, ",")))
		}
	}
	return out
}

func drain(t *testing.T, e *provisioning.Engine) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.DrainHeld(ctx); err != nil {
		t.Fatalf("drain held additions: %v", err)
	}
}

func heldKeys(t *testing.T, env *safetyEnv) []string {
	t.Helper()
	keys, err := env.state.Keys(context.Background(), "held.adds.")
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// Pre-hires reconciled one after another (one partition: each reconcile
// finishes before the next starts) share their group requests: the
// reconcile does not wait for its addition, which fills the group's batch.
// Before additions were held, each reconcile waited for its own request:
// 30 joiners cost 30 requests of one member.
func TestHeldAdditionsOfPreHiresFillBatches(t *testing.T) {
	env := newEngineEnv(t)
	var ids []string
	for i := range 30 {
		id := fmt.Sprint(100 + i)
		ids = append(ids, id)
		env.src.Set(employee(id, "Joiner", fmt.Sprintf("Number%d", i), preHire))
	}
	env.dir.ResetWrites()
	users := map[string]string{}
	for i, id := range ids {
		res := env.reconcile(t, id)
		users[id] = res.Plan.UserID
		if u := env.dir.User(res.Plan.UserID); u.AccountEnabled {
			t.Fatalf("pre-hire %s has an enabled account", id)
		}
		if i == 0 && env.dir.IsMember(env.finance, res.Plan.UserID) {
			t.Fatal("the first joiner's addition was written before the reconcile returned: it was not held")
		}
	}
	if keys := heldKeys(t, env); len(keys) < 10 {
		t.Errorf("%d held records while additions wait, want one per joiner still waiting: %v", len(keys), keys)
	}
	// The worker stops: it sends what it holds before it goes.
	drain(t, env.eng)
	for id, u := range users {
		if !env.dir.IsMember(env.finance, u) {
			t.Errorf("joiner %s is not in Finance after the drain", id)
		}
	}
	reqs := env.addRequests("Finance")
	if len(reqs) != 2 {
		t.Errorf("%d requests for 30 additions (%v), want 2", len(reqs), reqs)
	}
	for _, n := range reqs {
		if n > 20 {
			t.Errorf("a request carried %d members; Graph allows 20", n)
		}
	}
	if keys := heldKeys(t, env); len(keys) != 0 {
		t.Errorf("held records left after every addition was written: %v", keys)
	}
}

// An account that can sign in never waits in a held batch: its reconcile
// returns after the addition is written, and nothing is recorded.
func TestAdditionsOfActivePeopleAreNotHeld(t *testing.T) {
	env := newEngineEnv(t)
	provisioning.SetHoldMax(env.eng, time.Hour)
	env.src.Set(employee("1", "Ada", "Active"))
	res := env.reconcile(t, "1")
	if !env.dir.IsMember(env.finance, res.Plan.UserID) {
		t.Fatal("an active person's addition was not written when the reconcile returned")
	}
	if keys := heldKeys(t, env); len(keys) != 0 {
		t.Errorf("held records for an active person: %v", keys)
	}
}

// A later reconcile of the person, in the process that holds their
// additions, sends them first and plans against what Entra then shows: no
// second request for the same membership.
func TestLaterReconcileSendsHeldAdditionsFirst(t *testing.T) {
	env := newEngineEnv(t)
	provisioning.SetHoldMax(env.eng, time.Hour)
	env.src.Set(employee("1", "Pia", "Prehire", preHire))
	u := env.reconcile(t, "1").Plan.UserID
	if env.dir.IsMember(env.finance, u) {
		t.Fatal("the addition was not held")
	}
	env.reconcile(t, "1")
	if !env.dir.IsMember(env.finance, u) {
		t.Fatal("the second reconcile returned before the held addition was written")
	}
	if reqs := env.addRequests("Finance"); len(reqs) != 1 {
		t.Errorf("%d requests for one membership, want 1", len(reqs))
	}
	if keys := heldKeys(t, env); len(keys) != 0 {
		t.Errorf("held records left: %v", keys)
	}
}

// A worker that dies while it holds additions loses nothing: after the
// deadline another worker's sweep queues the person, and that reconcile
// writes the membership and clears the dead worker's record.
func TestHeldAdditionsOfADeadWorkerAreRecovered(t *testing.T) {
	env := newEngineEnv(t)
	provisioning.SetHoldMax(env.eng, time.Hour) // the dead worker never sends
	env.src.Set(employee("1", "Pia", "Prehire", preHire))
	u := env.reconcile(t, "1").Plan.UserID
	if env.dir.IsMember(env.finance, u) || len(heldKeys(t, env)) != 1 {
		t.Fatal("the addition was not held and recorded")
	}

	// Within the deadline nobody else touches it.
	q := &provisioningtest.Queue{}
	soon := env.engineAt(t, safetyNow.Add(time.Minute), q)
	if n, err := soon.SweepHeldAdditions(context.Background()); err != nil || n != 0 {
		t.Fatalf("sweep within the deadline queued %d (%v), want 0", n, err)
	}

	later := env.engineAt(t, safetyNow.Add(6*time.Minute), q)
	n, err := later.SweepHeldAdditions(context.Background())
	if err != nil || n != 1 || !slices.Equal(q.Enqueued(), []string{"1"}) {
		t.Fatalf("sweep after the deadline: queued %d, %v, queue %v; want person 1", n, err, q.Enqueued())
	}
	// A second sweep right after does not queue the person again.
	if n, err := later.SweepHeldAdditions(context.Background()); err != nil || n != 0 {
		t.Fatalf("second sweep queued %d (%v), want 0", n, err)
	}
	// The queued work: the reconcile plans the missing membership again.
	if _, err := later.Reconcile(context.Background(), "1", provisioning.ReasonHeldAdditions); err != nil {
		t.Fatal(err)
	}
	drain(t, later)
	if !env.dir.IsMember(env.finance, u) {
		t.Fatal("the membership the dead worker held was never written")
	}
	if keys := heldKeys(t, env); len(keys) != 0 {
		t.Errorf("held records left: %v", keys)
	}
}

// Held by a worker that is alive: a reconcile in another process does not
// wait; it marks the entry superseded, and the holder queues the person
// again once it wrote the additions, so the person is checked after them.
func TestHeldAdditionsOfAnotherWorkerAreSuperseded(t *testing.T) {
	env := newEngineEnv(t)
	provisioning.SetHoldMax(env.eng, time.Hour)
	env.src.Set(employee("1", "Pia", "Prehire", preHire))
	u := env.reconcile(t, "1").Plan.UserID

	other := env.engineAt(t, safetyNow.Add(10*time.Second), &provisioningtest.Queue{})
	provisioning.SetHoldMax(other, time.Hour)
	if _, err := other.Reconcile(context.Background(), "1", "employment.updated"); err != nil {
		t.Fatal(err)
	}
	if n := len(env.q.Enqueued()); n != 0 {
		t.Fatalf("person queued before the held additions were written: %v", env.q.Enqueued())
	}
	drain(t, env.eng)
	if !env.dir.IsMember(env.finance, u) {
		t.Fatal("the holder did not write its additions")
	}
	if got := env.q.Enqueued(); !slices.Equal(got, []string{"1"}) {
		t.Errorf("holder queued %v after writing superseded additions, want person 1", got)
	}
	drain(t, other)
	if keys := heldKeys(t, env); len(keys) != 0 {
		t.Errorf("held records left: %v", keys)
	}
}

// A held addition Graph refuses is not dropped: the person is queued (their
// reconcile plans it again, with the queue's retries and dead letters).
func TestFailedHeldAdditionQueuesThePerson(t *testing.T) {
	env := newEngineEnv(t)
	provisioning.SetHoldMax(env.eng, time.Hour)
	env.src.Set(employee("1", "Pia", "Prehire", preHire))
	env.dir.Fail("AddGroupMembers", &provisioning.DirectoryError{Kind: provisioning.KindTransient, Op: "add members", Message: "service unavailable"})
	env.reconcile(t, "1")
	drain(t, env.eng)
	if got := env.q.Enqueued(); !slices.Equal(got, []string{"1"}) {
		t.Fatalf("queued %v after a failed held addition, want person 1", got)
	}
	if keys := heldKeys(t, env); len(keys) != 0 {
		t.Errorf("held records left after the person was queued: %v", keys)
	}
	// Queuing fails too: the entry stays, marked failed, for the sweep.
	env.q2fail(t)
}

// q2fail: with the queue refusing, a failed held addition keeps its record
// and the sweep queues the person once the queue is back.
func (env *safetyEnv) q2fail(t *testing.T) {
	t.Helper()
	q := &failingQueue{err: errors.New("no JetStream")}
	e := env.engineAt(t, safetyNow, &provisioningtest.Queue{})
	provisioning.SetEnqueuer(e, q)
	provisioning.SetHoldMax(e, time.Hour)
	if _, err := e.Reconcile(context.Background(), "1", "test"); err != nil {
		t.Fatal(err)
	}
	drain(t, e)
	if keys := heldKeys(t, env); len(keys) != 1 {
		t.Fatalf("held records %v after the person could not be queued, want the failed entry", keys)
	}
	q.err = nil
	if n, err := e.SweepHeldAdditions(context.Background()); err != nil || n != 1 || !slices.Equal(q.enqueued, []string{"1"}) {
		t.Fatalf("sweep queued %d (%v) %v, want person 1", n, err, q.enqueued)
	}
}

type failingQueue struct {
	err      error
	enqueued []string
}

func (q *failingQueue) Enqueue(_ context.Context, personID, _ string) error {
	if q.err != nil {
		return q.err
	}
	q.enqueued = append(q.enqueued, personID)
	return nil
}

// A written addition's entry stays until the wave is over (no store write
// per joiner during it) and is removed then; a worker that dies before
// leaves it to the others' sweep, whose reconcile finds the membership.
func TestWrittenEntriesAreRemovedAfterTheWave(t *testing.T) {
	env := newEngineEnv(t)
	provisioning.SetHoldMax(env.eng, 50*time.Millisecond)
	env.src.Set(employee("1", "Pia", "Prehire", preHire))
	u := env.reconcile(t, "1").Plan.UserID
	waitUntil(t, "the held addition to be written", func() bool { return env.dir.IsMember(env.finance, u) })
	if keys := heldKeys(t, env); len(keys) != 1 {
		t.Fatalf("held records %v right after the write, want the entry kept until the wave is over", keys)
	}
	// A later reconcile in the same process treats it as done: no wait, no
	// superseded mark, and it clears it.
	env.reconcile(t, "1")
	if keys := heldKeys(t, env); len(keys) != 0 {
		t.Fatalf("held records %v after the next reconcile, want none", keys)
	}

	env.src.Set(employee("2", "Pat", "Prehire", preHire))
	u2 := env.reconcile(t, "2").Plan.UserID
	waitUntil(t, "the held addition to be written", func() bool { return env.dir.IsMember(env.finance, u2) })
	drain(t, env.eng) // waits for the holder, then cleans up as after a wave
	if keys := heldKeys(t, env); len(keys) != 0 {
		t.Fatalf("held records %v after the clean-up, want none", keys)
	}
	if n := len(env.q.Enqueued()); n != 0 {
		t.Errorf("people queued for written additions: %v", env.q.Enqueued())
	}
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
