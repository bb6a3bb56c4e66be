package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/personio-entra/personio-entra/provisioning/entra/entratest"
	"github.com/personio-entra/personio-entra/provisioning/personio/personiotest"
)

// control is the control API of the simulators.
type control struct {
	personio *personiotest.Server
	entra    *entratest.Server
	gate     *unavailableGate
	ready    Ready
	log      *slog.Logger
}

// EntraFaults is the body of PUT /entra/faults.
type EntraFaults struct {
	ThrottleRate    float64 `json:"throttle_rate"`
	ServerErrorRate float64 `json:"server_error_rate"`
	RetryAfter      string  `json:"retry_after"` // Go duration, e.g. "1s"
}

// PersonioRequests is the answer of GET /personio/requests: the requests
// the Personio simulator answered, and how many of them were token requests.
type PersonioRequests struct {
	Requests      int64 `json:"requests"`
	TokenRequests int64 `json:"token_requests"`
}

// Unavailable is the body of PUT /personio/unavailable and its answer.
type Unavailable struct {
	For      string    `json:"for"`
	Until    time.Time `json:"until,omitzero"`
	Rejected int64     `json:"rejected"`
}

func (c *control) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /info", func(w http.ResponseWriter, r *http.Request) { reply(w, http.StatusOK, c.ready) })
	mux.HandleFunc("GET /entra/state", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if err := c.entra.Dump(w); err != nil {
			c.log.Error("control: dump Entra state", slog.Any("err", err))
		}
	})
	mux.HandleFunc("GET /entra/outbox", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, c.entra.Outbox()) // the mail sendMail accepted, passes included: a simulator's
	})
	mux.HandleFunc("GET /entra/requests", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, c.entra.Requests())
	})
	mux.HandleFunc("GET /personio/requests", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, PersonioRequests{Requests: c.personio.Requests(), TokenRequests: c.personio.TokenRequests()})
	})
	mux.HandleFunc("PUT /entra/faults", c.putEntraFaults)
	mux.HandleFunc("PUT /personio/unavailable", c.putUnavailable)
	mux.HandleFunc("GET /personio/unavailable", func(w http.ResponseWriter, r *http.Request) {
		until, n := c.gate.state()
		reply(w, http.StatusOK, Unavailable{Until: until, Rejected: n})
	})
	mux.HandleFunc("GET /personio/persons", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, c.personio.Persons())
	})
	mux.HandleFunc("PUT /personio/persons/{id}", c.putPerson)
	mux.HandleFunc("DELETE /personio/persons/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if _, ok := c.personio.Person(id); !ok {
			replyError(w, http.StatusNotFound, fmt.Sprintf("no person %q", id))
			return
		}
		c.personio.DeletePerson(id)
		reply(w, http.StatusOK, map[string]string{"deleted": id})
	})
	return mux
}

func (c *control) putEntraFaults(w http.ResponseWriter, r *http.Request) {
	var in EntraFaults
	if err := decode(r, &in); err != nil {
		replyError(w, http.StatusBadRequest, err.Error())
		return
	}
	if in.ThrottleRate < 0 || in.ThrottleRate > 1 || in.ServerErrorRate < 0 || in.ServerErrorRate > 1 {
		replyError(w, http.StatusBadRequest, "throttle_rate and server_error_rate must be between 0 and 1")
		return
	}
	f := entratest.Faults{ThrottleRate: in.ThrottleRate, ServerErrorRate: in.ServerErrorRate}
	if in.RetryAfter != "" {
		d, err := time.ParseDuration(in.RetryAfter)
		if err != nil || d < 0 {
			replyError(w, http.StatusBadRequest, fmt.Sprintf("retry_after %q: want a duration such as 1s", in.RetryAfter))
			return
		}
		f.RetryAfter = d
	}
	c.entra.SetFaults(f)
	c.log.Info("control: Entra faults set", slog.Float64("throttle_rate", f.ThrottleRate),
		slog.Float64("server_error_rate", f.ServerErrorRate), slog.Duration("retry_after", f.RetryAfter))
	reply(w, http.StatusOK, in)
}

func (c *control) putUnavailable(w http.ResponseWriter, r *http.Request) {
	var in Unavailable
	if err := decode(r, &in); err != nil {
		replyError(w, http.StatusBadRequest, err.Error())
		return
	}
	d, err := time.ParseDuration(in.For)
	if err != nil || d < 0 || d > time.Hour {
		replyError(w, http.StatusBadRequest, fmt.Sprintf("for %q: want a duration from 0s to 1h", in.For))
		return
	}
	in.Until = c.gate.Set(d)
	c.log.Info("control: Personio unavailable", slog.Duration("for", d))
	reply(w, http.StatusOK, in)
}

func (c *control) putPerson(w http.ResponseWriter, r *http.Request) {
	var p personiotest.Person
	if err := decode(r, &p); err != nil {
		replyError(w, http.StatusBadRequest, err.Error())
		return
	}
	id := r.PathValue("id")
	if p.ID != "" && p.ID != id {
		replyError(w, http.StatusBadRequest, fmt.Sprintf("body id %q differs from path id %q", p.ID, id))
		return
	}
	p.ID = id
	c.personio.UpsertPerson(p)
	got, _ := c.personio.Person(id)
	reply(w, http.StatusOK, got)
}

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode %s %s body: %w", r.Method, r.URL.Path, err)
	}
	return nil
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func replyError(w http.ResponseWriter, status int, msg string) {
	reply(w, status, map[string]string{"error": msg})
}
