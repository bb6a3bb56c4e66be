package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/rules"
)

// RulesPreviewer is the part of the Backend behind the rules preview: the
// company-wide difference between the running rules and a candidate. It
// writes nothing.
type RulesPreviewer interface {
	PreviewRules(ctx context.Context, candidate *rules.Rules) (provisioning.RulesPreview, error)
}

// maxRulesBytes bounds a pasted or uploaded rules file.
const maxRulesBytes = 1 << 20

// maxPreviewRows bounds the people listed on the page; the totals count
// everyone.
const maxPreviewRows = 500

type rulesData struct {
	Name     string
	Text     string
	Error    string
	Problems []rules.Problem
	Preview  *provisioning.RulesPreview
	Shown    []provisioning.PersonDiff
	Hidden   int
}

func (c *Console) rulesRoutes(r chi.Router) {
	r.Get("/rules", c.rulesForm)
	r.Post("/rules", c.withDeadline(10*time.Minute, c.previewRules))
}

func (c *Console) rulesForm(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "rules", "Rules preview", rulesData{Name: "rules.yaml"})
}

// previewRules loads the candidate (pasted, or an uploaded file, which wins)
// like the service loads its rules file, shows every problem with its line
// and column, and otherwise the difference for the whole company.
func (c *Console) previewRules(w http.ResponseWriter, r *http.Request) {
	d := rulesData{Name: "rules.yaml", Text: r.FormValue("rules")}
	if f, hdr, err := r.FormFile("file"); err == nil {
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxRulesBytes+1))
		if err != nil {
			c.renderError(w, r, http.StatusBadRequest, "Reading the uploaded file failed: "+err.Error())
			return
		}
		if len(b) > 0 {
			d.Text = string(b)
			if base := filepath.Base(hdr.Filename); base != "." && base != "/" && utf8.ValidString(base) && len(base) <= 100 {
				d.Name = base
			}
		}
	} else if !errors.Is(err, http.ErrMissingFile) && !errors.Is(err, http.ErrNotMultipart) {
		c.renderError(w, r, http.StatusBadRequest, "Reading the form failed: "+err.Error())
		return
	}
	switch {
	case strings.TrimSpace(d.Text) == "":
		d.Error = "Paste a rules file or choose one to upload."
	case len(d.Text) > maxRulesBytes:
		d.Error = fmt.Sprintf("The rules file is larger than %d KiB.", maxRulesBytes>>10)
		d.Text = ""
	case !utf8.ValidString(d.Text):
		d.Error = "The rules file is not UTF-8 text."
		d.Text = ""
	}
	if d.Error != "" {
		c.render(w, r, http.StatusBadRequest, "rules", "Rules preview", d)
		return
	}
	cand, err := rules.LoadBytes(d.Name, []byte(d.Text))
	if err != nil {
		var re *rules.Error
		if errors.As(err, &re) {
			d.Problems = re.Problems
			d.Error = fmt.Sprintf("The candidate rules have %s: nothing was previewed.", plural(len(re.Problems), "problem", "problems"))
		} else {
			d.Error = "The candidate rules cannot be loaded: " + err.Error()
		}
		c.render(w, r, http.StatusUnprocessableEntity, "rules", "Rules preview: problems", d)
		return
	}
	pv, err := c.cfg.Backend.PreviewRules(r.Context(), cand)
	if err != nil {
		c.backendError(w, r, "Previewing the rules", err)
		return
	}
	d.Preview = &pv
	d.Shown = pv.People
	if len(d.Shown) > maxPreviewRows {
		d.Hidden = len(d.Shown) - maxPreviewRows
		d.Shown = d.Shown[:maxPreviewRows]
	}
	c.render(w, r, http.StatusOK, "rules", "Rules preview: result", d)
}
