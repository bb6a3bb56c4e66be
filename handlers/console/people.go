package console

import (
	"fmt"
	"net/http"
	"slices"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/personio-entra/personio-entra/provisioning"
)

// searchLimit bounds the result list; a longer list asks for a narrower query.
const searchLimit = 50

type peopleData struct {
	Query   string
	Results []PersonMatch
	Limit   int
	Error   string
}

func (c *Console) people(w http.ResponseWriter, r *http.Request) {
	q := trimmed(r.URL.Query().Get("q"))
	d := peopleData{Query: q, Limit: searchLimit}
	if q == "" {
		c.render(w, r, http.StatusOK, "people", "People", d)
		return
	}
	if utf8.RuneCountInString(q) > 200 {
		d.Error = "The search is too long: type at most 200 characters of a name, an email or a person id."
		c.render(w, r, http.StatusBadRequest, "people", "People", d)
		return
	}
	res, err := c.cfg.Backend.Search(r.Context(), q, searchLimit+1)
	if err != nil {
		c.backendError(w, r, "Searching Personio", err)
		return
	}
	// One exact person id goes straight to the person page.
	if len(res) == 1 && res[0].PersonID == q {
		http.Redirect(w, r, Prefix+"/people/"+q, http.StatusSeeOther)
		return
	}
	d.Results = res
	c.render(w, r, http.StatusOK, "people", "People: "+q, d)
}

func (c *Console) personID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := chi.URLParam(r, "id")
	if !personIDPattern.MatchString(id) {
		c.renderError(w, r, http.StatusBadRequest, "A person id is 1 to 64 letters, digits, '-' or '_'.")
		return "", false
	}
	return id, true
}

func (c *Console) person(w http.ResponseWriter, r *http.Request) {
	id, ok := c.personID(w, r)
	if !ok {
		return
	}
	p, err := c.cfg.Backend.Person(r.Context(), id)
	if err != nil {
		c.backendError(w, r, "Reading person "+id, err)
		return
	}
	if p.Employee == nil && p.Account == nil && len(p.Audit) == 0 {
		c.renderError(w, r, http.StatusNotFound, "Personio has no person "+id+", no Entra account carries that id and nothing was ever audited for it: search by name or email instead.")
		return
	}
	slices.SortStableFunc(p.Audit, func(a, b provisioning.AuditRecord) int { return b.Time.Compare(a.Time) })
	c.render(w, r, http.StatusOK, "person", personTitle(p), viewPerson(p))
}

type previewData struct {
	PersonID string
	Plan     provisioning.Plan
}

func (c *Console) preview(w http.ResponseWriter, r *http.Request) {
	id, ok := c.personID(w, r)
	if !ok {
		return
	}
	p, err := c.cfg.Backend.Preview(r.Context(), id)
	if err != nil {
		c.backendError(w, r, "Planning person "+id, err)
		return
	}
	c.render(w, r, http.StatusOK, "preview", "Preview for person "+id, previewData{PersonID: id, Plan: p})
}

func (c *Console) syncPerson(w http.ResponseWriter, r *http.Request) {
	id, ok := c.personID(w, r)
	if !ok {
		return
	}
	if err := c.cfg.Backend.Enqueue(r.Context(), id); err != nil {
		c.backendError(w, r, "Queueing person "+id, err)
		return
	}
	c.log.Info("console: reconcile queued", "person", id)
	c.flash(w, r, Prefix+"/people/"+id, fmt.Sprintf("Person %s is queued: a worker reconciles them in a moment. Reload to see the audit record.", id))
}
