package console

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/personio-entra/personio-entra/rules"
)

// pageData is what the layout gets; Data is the page's own.
type pageData struct {
	Title    string
	Nav      string // the active navigation entry
	SignedIn bool
	CSRF     string
	Flash    string
	Status   int
	Data     any
}

// navOf names the navigation entry a template belongs to.
var navOf = map[string]string{
	"overview": "overview", "people": "people", "person": "people", "preview": "people",
	"approvals": "approvals", "approval": "approvals",
	"deadletters": "deadletters", "deadletter": "deadletters", "purge": "deadletters",
	"rules": "rules",
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	t, ok := c.pages[name]
	if !ok {
		c.log.Error("console: no template", "name", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	pd := pageData{Title: title, Nav: navOf[name], Status: status, Data: data}
	if se := sessionFrom(r.Context()); se != nil {
		pd.SignedIn, pd.CSRF, pd.Flash = true, se.CSRF, c.sessions.takeFlash(r.Context(), se)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", pd); err != nil {
		c.log.Error("console: rendering failed", "page", name, "err", err)
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

type errorData struct{ Message string }

func (c *Console) renderError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	c.render(w, r, status, "error", http.StatusText(status), errorData{Message: msg})
}

// flash leaves a message for the next page and redirects there (POST,
// redirect, GET: a reload does not repeat the action).
func (c *Console) flash(w http.ResponseWriter, r *http.Request, to, msg string) {
	if se := sessionFrom(r.Context()); se != nil {
		c.sessions.setFlash(r.Context(), se, msg)
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"iso": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		d := time.Since(t)
		switch {
		case d < 0:
			return "in " + roundDur(-d)
		case d < 10*time.Second:
			return "just now"
		}
		return roundDur(d) + " ago"
	},
	"join":   strings.Join,
	"plural": plural,
	"deref": func(p *string) string {
		if p == nil {
			return "(cleared)"
		}
		if *p == "" {
			return "(empty)"
		}
		return *p
	},
	"sorted": func(m map[string]string) []string {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		return keys
	},
	"inc":  func(i int) int { return i + 1 },
	"base": filepath.Base,
	// origin renders where a rule is written and what it says
	// ("rules.yaml:14:5 attributes.jobTitle: employee.position").
	"origin": func(o any) string {
		switch o := o.(type) {
		case rules.Origin:
			o.File = filepath.Base(o.File)
			return o.String()
		case *rules.Origin:
			if o != nil {
				c := *o
				c.File = filepath.Base(c.File)
				return c.String()
			}
		}
		return ""
	},
}

func roundDur(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh %dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
