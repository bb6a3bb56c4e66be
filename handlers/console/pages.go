package console

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/personio-entra/personio-entra/provisioning"
)

// ---- overview

type overviewData struct {
	Backlog        int
	BacklogErr     string
	DeadLetters    int
	DeadErr        string
	Open           []provisioning.Approval
	HeldPeople     int
	ApprovalsErr   string
	Syncs          []SyncOutcome
	SyncErr        string
	ThrottledUntil time.Time
	Throttled      bool
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	b := c.cfg.Backend
	var d overviewData
	var err error
	if d.Backlog, err = b.Backlog(ctx); err != nil {
		d.BacklogErr = err.Error()
	}
	if dl, err := b.DeadLetters(ctx); err != nil {
		d.DeadErr = err.Error()
	} else {
		d.DeadLetters = len(dl)
	}
	if aps, err := b.Approvals(ctx); err != nil {
		d.ApprovalsErr = err.Error()
	} else {
		for _, ap := range aps {
			if !ap.Released {
				d.Open = append(d.Open, ap)
				d.HeldPeople += len(ap.People)
			}
		}
	}
	if d.Syncs, err = b.LastSyncs(ctx); err != nil {
		d.SyncErr = err.Error()
	}
	d.ThrottledUntil = b.GraphThrottledUntil()
	d.Throttled = c.cfg.Now().Before(d.ThrottledUntil)
	c.render(w, r, http.StatusOK, "overview", "Overview", d)
}

// ---- approvals

// heldRow is one person in a held change set: what would be taken away,
// and (on the confirmation page) why: the plan now, whose destructive
// changes name their rules.
type heldRow struct {
	PersonID string
	Summary  string
	Plan     *provisioning.Plan
	PlanErr  string
}

// maxExplainedHeld bounds the people whose plan the confirmation page reads
// (each is a Personio and a Graph read); the summary lists everyone.
const maxExplainedHeld = 50

type approvalView struct {
	provisioning.Approval
	Rows []heldRow
}

func viewApproval(ap provisioning.Approval) approvalView {
	v := approvalView{Approval: ap}
	for _, id := range ap.People {
		row := heldRow{PersonID: id}
		for _, s := range ap.Summary {
			if strings.HasPrefix(s, "person "+id+" ") {
				row.Summary = s
				break
			}
		}
		v.Rows = append(v.Rows, row)
	}
	return v
}

type approvalsData struct {
	Open, Released []approvalView
}

func (c *Console) approvals(w http.ResponseWriter, r *http.Request) {
	aps, err := c.cfg.Backend.Approvals(r.Context())
	if err != nil {
		c.backendError(w, r, "Reading the approvals", err)
		return
	}
	var d approvalsData
	for _, ap := range aps {
		if ap.Released {
			d.Released = append(d.Released, viewApproval(ap))
		} else {
			d.Open = append(d.Open, viewApproval(ap))
		}
	}
	c.render(w, r, http.StatusOK, "approvals", "Approvals", d)
}

func (c *Console) findApproval(w http.ResponseWriter, r *http.Request) (provisioning.Approval, bool) {
	id := chi.URLParam(r, "id")
	if !approvalIDPattern.MatchString(id) {
		c.renderError(w, r, http.StatusBadRequest, "An approval id is letters, digits, '-' or '_'.")
		return provisioning.Approval{}, false
	}
	aps, err := c.cfg.Backend.Approvals(r.Context())
	if err != nil {
		c.backendError(w, r, "Reading the approvals", err)
		return provisioning.Approval{}, false
	}
	i := slices.IndexFunc(aps, func(a provisioning.Approval) bool { return a.ID == id })
	if i < 0 {
		c.renderError(w, r, http.StatusNotFound, "There is no approval "+id+": it may have been approved already.")
		return provisioning.Approval{}, false
	}
	return aps[i], true
}

// approval is the confirmation step: who loses what and why, and the button.
func (c *Console) approval(w http.ResponseWriter, r *http.Request) {
	ap, ok := c.findApproval(w, r)
	if !ok {
		return
	}
	v := viewApproval(ap)
	if !ap.Released {
		for i := range v.Rows {
			if i == maxExplainedHeld {
				break
			}
			p, err := c.cfg.Backend.Preview(r.Context(), v.Rows[i].PersonID)
			if err != nil {
				v.Rows[i].PlanErr = err.Error()
				continue
			}
			keep := p.Changes[:0:0]
			for _, ch := range p.Changes {
				if ch.Kind.Destructive() {
					keep = append(keep, ch)
				}
			}
			p.Changes = keep
			v.Rows[i].Plan = &p
		}
	}
	c.render(w, r, http.StatusOK, "approval", "Approve "+ap.ID, v)
}

func (c *Console) approve(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if !approvalIDPattern.MatchString(id) {
		c.renderError(w, r, http.StatusBadRequest, "An approval id is letters, digits, '-' or '_'.")
		return
	}
	if r.FormValue("confirm") != "yes" {
		http.Redirect(w, r, Prefix+"/approvals/"+id, http.StatusSeeOther)
		return
	}
	ap, err := c.cfg.Backend.Approve(r.Context(), id)
	if err != nil {
		c.backendError(w, r, "Approving "+id, err)
		return
	}
	c.log.Info("console: approval released", "approval", id, "people", len(ap.People))
	c.flash(w, r, Prefix+"/approvals", fmt.Sprintf("Approved %s: the held changes of %s are being applied.",
		id, plural(len(ap.People), "person", "people")))
}

// ---- dead letters

func (c *Console) deadLetters(w http.ResponseWriter, r *http.Request) {
	dl, err := c.cfg.Backend.DeadLetters(r.Context())
	if err != nil {
		c.backendError(w, r, "Reading the dead letters", err)
		return
	}
	slices.SortFunc(dl, func(a, b DeadLetter) int { return b.Time.Compare(a.Time) })
	c.render(w, r, http.StatusOK, "deadletters", "Dead letters", dl)
}

func (c *Console) loadDeadLetter(w http.ResponseWriter, r *http.Request) (DeadLetter, bool) {
	seq, ok := seqParam(r)
	if !ok {
		c.renderError(w, r, http.StatusBadRequest, "A dead letter is named by its sequence number (a positive whole number).")
		return DeadLetter{}, false
	}
	d, err := c.cfg.Backend.DeadLetter(r.Context(), seq)
	if err != nil {
		c.backendError(w, r, fmt.Sprintf("Reading dead letter %d", seq), err)
		return DeadLetter{}, false
	}
	return d, true
}

func (c *Console) deadLetter(w http.ResponseWriter, r *http.Request) {
	if d, ok := c.loadDeadLetter(w, r); ok {
		c.render(w, r, http.StatusOK, "deadletter", fmt.Sprintf("Dead letter %d", d.Sequence), d)
	}
}

func (c *Console) confirmPurge(w http.ResponseWriter, r *http.Request) {
	if d, ok := c.loadDeadLetter(w, r); ok {
		c.render(w, r, http.StatusOK, "purge", fmt.Sprintf("Purge dead letter %d", d.Sequence), d)
	}
}

func (c *Console) redrive(w http.ResponseWriter, r *http.Request) {
	seq, ok := seqParam(r)
	if !ok {
		c.renderError(w, r, http.StatusBadRequest, "A dead letter is named by its sequence number (a positive whole number).")
		return
	}
	if err := c.cfg.Backend.Redrive(r.Context(), seq); err != nil {
		c.backendError(w, r, fmt.Sprintf("Re-driving dead letter %d", seq), err)
		return
	}
	c.log.Info("console: dead letter re-driven", "seq", seq)
	c.flash(w, r, Prefix+"/deadletters", fmt.Sprintf("Dead letter %d was queued again.", seq))
}

func (c *Console) purge(w http.ResponseWriter, r *http.Request) {
	seq, ok := seqParam(r)
	if !ok {
		c.renderError(w, r, http.StatusBadRequest, "A dead letter is named by its sequence number (a positive whole number).")
		return
	}
	if r.FormValue("confirm") != "yes" {
		http.Redirect(w, r, fmt.Sprintf("%s/deadletters/%d/purge", Prefix, seq), http.StatusSeeOther)
		return
	}
	if err := c.cfg.Backend.PurgeDeadLetter(r.Context(), seq); err != nil {
		c.backendError(w, r, fmt.Sprintf("Purging dead letter %d", seq), err)
		return
	}
	c.log.Info("console: dead letter purged", "seq", seq)
	c.flash(w, r, Prefix+"/deadletters", fmt.Sprintf("Dead letter %d was purged; its work will not run.", seq))
}
