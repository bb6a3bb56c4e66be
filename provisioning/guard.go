package provisioning

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"
)

// GuardSettings configure the safeguard (GUARD_* in the README).
type GuardSettings struct {
	// MaxCount and MaxPercent: more people than max(MaxCount, MaxPercent of
	// the owned accounts) losing access within Window is held for approval.
	MaxCount   int
	MaxPercent float64
	// Window is the rolling window of the budget (default 1 h).
	Window time.Duration
	// MinSourcePercent: a complete Personio read that returns fewer people
	// than this share of the owned accounts is a collapsed source (default
	// 50); nothing destructive is applied from it.
	MinSourcePercent float64
	// GrantTTL is how long an approval lets its people lose access (default
	// 24 h): time enough for the workers to get to them.
	GrantTTL time.Duration
}

// Guard is the one safeguard for every path that takes access away
// (webhook, schedule, incremental and complete sync, `sync --employee`,
// approvals' follow-ups and re-drives): a rolling budget of people who may
// lose access, shared by all workers through the state bucket with
// compare-and-set, and one open approval set that collects what the budget
// refused. Held work survives restarts: it is all in the bucket.
type Guard struct {
	kv    KV
	cfg   GuardSettings
	own   *Ownership
	now   func() time.Time
	log   *slog.Logger
	audit func(ctx context.Context, rec AuditRecord)
	queue Enqueuer // set by the Syncer; approvals enqueue their people
}

// Approval is a set of people whose destructive changes wait for
// `personio-entra approve ID`. Holds add people to the open set until it is
// approved; the next hold opens a new one.
type Approval struct {
	ID          string    `json:"id"`
	Created     time.Time `json:"created"`
	Updated     time.Time `json:"updated"`
	Reasons     []string  `json:"reasons"`
	People      []string  `json:"people"`
	Destructive int       `json:"destructive_changes"`
	Threshold   int       `json:"threshold"`
	Summary     []string  `json:"summary"`
	Released    bool      `json:"released,omitempty"`
}

// HeldPerson is one person's destructive changes the guard holds.
type HeldPerson struct {
	PersonID string
	Summary  string // "person 17 (leaver): disable user; revoke sessions"
	Changes  int
}

// Admission is the guard's answer for one person.
type Admission struct {
	Allowed    bool
	Via        string // budget, approval, held
	ApprovalID string // the approval that released or holds the person
	Reason     string // why held
}

const (
	budgetKey     = "guard.budget"
	openKey       = "guard.open"
	heldPrefix    = "guard.held."
	grantPrefix   = "guard.grant."
	approvalsPref = "approval."
	maxSummary    = 200
	casAttempts   = 50
)

type budgetEntry struct {
	PersonID string    `json:"p"`
	At       time.Time `json:"t"`
}

type grant struct {
	ApprovalID string    `json:"approval_id"`
	Expires    time.Time `json:"expires"`
}

func newGuard(kv KV, cfg GuardSettings, own *Ownership, now func() time.Time, log *slog.Logger) *Guard {
	if cfg.Window <= 0 {
		cfg.Window = time.Hour
	}
	if cfg.MinSourcePercent <= 0 {
		cfg.MinSourcePercent = 50
	}
	if cfg.GrantTTL <= 0 {
		cfg.GrantTTL = 24 * time.Hour
	}
	return &Guard{kv: kv, cfg: cfg, own: own, now: now, log: log}
}

// Threshold is max(MaxCount, MaxPercent of the owned accounts).
func (g *Guard) Threshold(ctx context.Context) (int, error) {
	n, err := g.own.Count(ctx)
	if err != nil {
		return 0, err
	}
	return g.threshold(n), nil
}

func (g *Guard) threshold(owned int) int {
	return max(g.cfg.MaxCount, int(math.Floor(g.cfg.MaxPercent/100*float64(owned))))
}

// Collapsed reports whether a complete read of employees people is far
// fewer than the owned accounts (or none at all while accounts are owned).
func (g *Guard) Collapsed(employees, owned int) bool {
	if owned == 0 {
		return false
	}
	return employees == 0 || float64(employees) < g.cfg.MinSourcePercent/100*float64(owned)
}

// Admit asks whether the person may lose access now. It is allowed when an
// approval released them, or when the rolling budget has room (the person
// is then counted in the window); otherwise the person joins the open
// approval set. A person already held stays held until approved, even if
// the window has room again.
func (g *Guard) Admit(ctx context.Context, hp HeldPerson) (Admission, error) {
	b, _, err := g.kv.Get(ctx, grantPrefix+hp.PersonID)
	switch {
	case err == nil:
		var gr grant
		if json.Unmarshal(b, &gr) == nil && g.now().Before(gr.Expires) {
			return Admission{Allowed: true, Via: "approval", ApprovalID: gr.ApprovalID}, nil
		}
	case !errors.Is(err, ErrKeyNotFound):
		return Admission{}, fmt.Errorf("safeguard: read approval grant: %w", err)
	}
	if id, held, err := g.heldIn(ctx, hp.PersonID); err != nil {
		return Admission{}, err
	} else if held {
		return Admission{Via: "held", ApprovalID: id, Reason: "waiting for approval " + id}, nil
	}

	threshold, err := g.Threshold(ctx)
	if err != nil {
		return Admission{}, fmt.Errorf("safeguard: %w", err)
	}
	for range casAttempts {
		entries, rev, err := g.window(ctx)
		if err != nil {
			return Admission{}, err
		}
		if slices.ContainsFunc(entries, func(e budgetEntry) bool { return e.PersonID == hp.PersonID }) {
			return Admission{Allowed: true, Via: "budget"}, nil
		}
		if len(entries) >= threshold {
			reason := fmt.Sprintf("more than %d people would lose access within %s (GUARD_MAX_CHANGES / GUARD_MAX_PERCENT / GUARD_WINDOW)", threshold, g.cfg.Window)
			ap, err := g.Hold(ctx, []HeldPerson{hp}, reason, threshold)
			if err != nil {
				return Admission{}, err
			}
			return Admission{Via: "held", ApprovalID: ap.ID, Reason: reason}, nil
		}
		entries = append(entries, budgetEntry{PersonID: hp.PersonID, At: g.now().UTC()})
		if err := g.writeWindow(ctx, entries, rev); err == nil {
			budgetUsed.Set(float64(len(entries)))
			return Admission{Allowed: true, Via: "budget"}, nil
		}
	}
	return Admission{}, errors.New("safeguard: the budget is contended; try again")
}

// Remaining is how many more people may lose access in the current window.
func (g *Guard) Remaining(ctx context.Context) (int, error) {
	threshold, err := g.Threshold(ctx)
	if err != nil {
		return 0, err
	}
	entries, _, err := g.window(ctx)
	if err != nil {
		return 0, err
	}
	return max(0, threshold-len(entries)), nil
}

// window reads the budget's entries still inside the window.
func (g *Guard) window(ctx context.Context) ([]budgetEntry, uint64, error) {
	b, rev, err := g.kv.Get(ctx, budgetKey)
	if errors.Is(err, ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("safeguard: read budget: %w", err)
	}
	var all []budgetEntry
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, 0, fmt.Errorf("safeguard: decode budget: %w", err)
	}
	cut := g.now().Add(-g.cfg.Window)
	live := all[:0]
	for _, e := range all {
		if e.At.After(cut) {
			live = append(live, e)
		}
	}
	return live, rev, nil
}

func (g *Guard) writeWindow(ctx context.Context, entries []budgetEntry, rev uint64) error {
	b, _ := json.Marshal(entries)
	var err error
	if rev == 0 {
		_, err = g.kv.Create(ctx, budgetKey, b)
	} else {
		_, err = g.kv.Update(ctx, budgetKey, b, rev)
	}
	return err
}

// heldIn reports the open approval a person is held in. A marker whose
// approval is gone or released is stale and removed.
func (g *Guard) heldIn(ctx context.Context, personID string) (string, bool, error) {
	b, _, err := g.kv.Get(ctx, heldPrefix+personID)
	if errors.Is(err, ErrKeyNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("safeguard: read hold: %w", err)
	}
	id := string(b)
	ap, _, err := g.approval(ctx, id)
	if err == nil && !ap.Released && slices.Contains(ap.People, personID) {
		return id, true, nil
	}
	if err != nil && !errors.Is(err, ErrKeyNotFound) {
		return "", false, err
	}
	_ = g.kv.Delete(ctx, heldPrefix+personID)
	return "", false, nil
}

// Hold adds people to the open approval set (creating one when none is
// open), records why, and audits each held person.
func (g *Guard) Hold(ctx context.Context, people []HeldPerson, reason string, threshold int) (Approval, error) {
	var ap Approval
	var added []HeldPerson
	var err error
	for range casAttempts {
		ap, added, err = g.holdOnce(ctx, people, reason, threshold)
		if err == nil {
			break
		}
		if !errors.Is(err, errRetryCAS) {
			return ap, err
		}
	}
	if err != nil {
		return ap, fmt.Errorf("safeguard: hold: %w", err)
	}
	for _, hp := range added {
		if err := g.kv.Put(ctx, heldPrefix+hp.PersonID, []byte(ap.ID)); err != nil {
			return ap, fmt.Errorf("safeguard: mark %s held: %w", hp.PersonID, err)
		}
		guardHeldPeople.Inc()
	}
	if len(added) > 0 {
		guardTrips.Inc()
		g.log.Warn("safeguard: destructive changes held for approval", "approval_id", ap.ID, "people_added", len(added),
			"people_held", len(ap.People), "reason", reason, "approve_with", "personio-entra approve "+ap.ID)
	}
	g.refreshPending(ctx)
	return ap, nil
}

var errRetryCAS = errors.New("retry")

func (g *Guard) holdOnce(ctx context.Context, people []HeldPerson, reason string, threshold int) (Approval, []HeldPerson, error) {
	now := g.now().UTC()
	idb, openRev, err := g.kv.Get(ctx, openKey)
	var id string
	switch {
	case errors.Is(err, ErrKeyNotFound):
		id = newApprovalID(now)
		if _, err := g.kv.Create(ctx, openKey, []byte(id)); err != nil {
			return Approval{}, nil, errRetryCAS
		}
	case err != nil:
		return Approval{}, nil, fmt.Errorf("read open approval: %w", err)
	default:
		id = string(idb)
	}
	ap, rev, err := g.approval(ctx, id)
	switch {
	case errors.Is(err, ErrKeyNotFound):
		ap = Approval{ID: id, Created: now}
	case err != nil:
		return ap, nil, err
	case ap.Released:
		// Being approved right now: open a new set.
		if _, err := g.kv.Update(ctx, openKey, []byte(newApprovalID(now)), openRev); err != nil {
			return ap, nil, errRetryCAS
		}
		return ap, nil, errRetryCAS
	}
	var added []HeldPerson
	for _, hp := range people {
		if slices.Contains(ap.People, hp.PersonID) {
			continue
		}
		ap.People = append(ap.People, hp.PersonID)
		ap.Destructive += hp.Changes
		if len(ap.Summary) < maxSummary {
			ap.Summary = append(ap.Summary, hp.Summary)
		}
		added = append(added, hp)
	}
	if !slices.Contains(ap.Reasons, reason) {
		ap.Reasons = append(ap.Reasons, reason)
	}
	ap.Threshold = threshold
	if len(added) == 0 && rev != 0 && slices.Contains(ap.Reasons, reason) {
		return ap, nil, nil
	}
	ap.Updated = now
	b, _ := json.Marshal(ap)
	if rev == 0 {
		_, err = g.kv.Create(ctx, approvalsPref+id, b)
	} else {
		_, err = g.kv.Update(ctx, approvalsPref+id, b, rev)
	}
	if err != nil {
		return ap, nil, errRetryCAS
	}
	return ap, added, nil
}

func newApprovalID(now time.Time) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b)
}

func (g *Guard) approval(ctx context.Context, id string) (Approval, uint64, error) {
	var ap Approval
	if id == "" || strings.ContainsAny(id, ". *>") {
		return ap, 0, fmt.Errorf("approval %q: %w", id, ErrKeyNotFound)
	}
	b, rev, err := g.kv.Get(ctx, approvalsPref+id)
	if err != nil {
		return ap, 0, err
	}
	if err := json.Unmarshal(b, &ap); err != nil {
		return ap, 0, fmt.Errorf("decode approval %s: %w", id, err)
	}
	return ap, rev, nil
}

// Approvals lists the change sets waiting for approval, oldest first.
func (g *Guard) Approvals(ctx context.Context) ([]Approval, error) {
	keys, err := g.kv.Keys(ctx, approvalsPref)
	if err != nil {
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	var out []Approval
	for _, k := range keys {
		ap, _, err := g.approval(ctx, strings.TrimPrefix(k, approvalsPref))
		if errors.Is(err, ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read approval %s: %w", k, err)
		}
		out = append(out, ap)
	}
	slices.SortFunc(out, func(a, b Approval) int { return a.Created.Compare(b.Created) })
	return out, nil
}

// ErrNoApproval is returned by Approve for an unknown id.
var ErrNoApproval = errors.New("no pending approval")

// Approve releases a held change set: each person gets a grant (valid for
// GrantTTL) and is queued; the workers re-read Personio and apply what is
// still due. Grants do not count against the budget.
func (g *Guard) Approve(ctx context.Context, id string) (Approval, error) {
	var ap Approval
	for attempt := 0; ; attempt++ {
		var rev uint64
		var err error
		ap, rev, err = g.approval(ctx, id)
		if errors.Is(err, ErrKeyNotFound) {
			return Approval{}, fmt.Errorf("approve: %w %q (list them with `personio-entra approve --list`)", ErrNoApproval, id)
		}
		if err != nil {
			return Approval{}, fmt.Errorf("approve %s: %w", id, err)
		}
		if ap.Released {
			break // an earlier approve stopped half-way: finish it
		}
		ap.Released = true
		b, _ := json.Marshal(ap)
		if _, err := g.kv.Update(ctx, approvalsPref+id, b, rev); err == nil {
			break
		}
		if attempt >= casAttempts {
			return ap, fmt.Errorf("approve %s: approval is being changed; try again", id)
		}
	}
	if cur, rev, err := g.kv.Get(ctx, openKey); err == nil && string(cur) == id {
		_, _ = g.kv.Update(ctx, openKey, []byte(newApprovalID(g.now())), rev)
	}
	expires := g.now().Add(g.cfg.GrantTTL).UTC()
	gb, _ := json.Marshal(grant{ApprovalID: id, Expires: expires})
	for _, p := range ap.People {
		if err := g.kv.Put(ctx, grantPrefix+p, gb); err != nil {
			return ap, fmt.Errorf("approve %s: grant %s: %w", id, p, err)
		}
		if err := g.kv.Delete(ctx, heldPrefix+p); err != nil {
			return ap, fmt.Errorf("approve %s: release %s: %w", id, p, err)
		}
		if g.audit != nil {
			g.audit(ctx, AuditRecord{Time: g.now().UTC(), PersonID: p, Trigger: "approve", Change: Change{Kind: ReleaseHeld},
				Summary: "held destructive changes released by approval " + id, Result: ResultApplied})
		}
		if g.queue != nil {
			if err := g.queue.Enqueue(ctx, p, "approved:"+id); err != nil {
				return ap, fmt.Errorf("approve %s: enqueue %s: %w", id, p, err)
			}
		}
	}
	if err := g.kv.Delete(ctx, approvalsPref+id); err != nil {
		return ap, fmt.Errorf("approve %s: remove approval: %w", id, err)
	}
	g.log.Warn("approval granted: held changes released", "approval_id", id, "people", len(ap.People))
	g.refreshPending(ctx)
	return ap, nil
}

// consumeGrant removes a person's grant once their released changes applied.
func (g *Guard) consumeGrant(ctx context.Context, personID string) {
	if err := g.kv.Delete(ctx, grantPrefix+personID); err != nil {
		g.log.Warn("safeguard: remove used grant", "person_id", personID, "err", err)
	}
}

func (g *Guard) refreshPending(ctx context.Context) {
	keys, err := g.kv.Keys(ctx, approvalsPref)
	if err != nil {
		g.log.Warn("safeguard: count pending approvals", "err", err)
		return
	}
	pendingApprovals.Set(float64(len(keys)))
}

// heldPerson summarises a plan's destructive changes for an approval.
func heldPerson(p Plan) HeldPerson {
	var kinds []string
	for _, c := range p.Changes {
		if c.Kind.Destructive() {
			kinds = append(kinds, c.String())
		}
	}
	who := p.PersonID
	if p.UPN != "" {
		who += " " + p.UPN
	}
	return HeldPerson{PersonID: p.PersonID, Changes: len(kinds),
		Summary: fmt.Sprintf("person %s (%s): %s", who, p.Phase, strings.Join(kinds, "; "))}
}
