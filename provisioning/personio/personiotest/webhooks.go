package personiotest

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"time"
)

// knownEvents is the event catalog the simulator accepts
// (docs/personio-api.md#webhook-events).
var knownEvents = append(slices.Clone(model.SubscribedEvents),
	"absence-period.created", "absence-period.updated.timerange", "absence-period.updated.status", "absence-period.deleted",
	"attendance-period.created", "attendance-period.updated", "attendance-period.deleted",
	"document.created", "document.updated", "document.signed", "document.deleted",
)

type webhookInput struct {
	URL           *string           `json:"url"`
	Description   *string           `json:"description"`
	Status        *string           `json:"status"`
	AuthType      *string           `json:"auth_type"`
	Token         *string           `json:"token"`
	CustomHeaders map[string]string `json:"custom_headers"`
	EnabledEvents []string          `json:"enabled_events"`
}

// validate checks the fields present; create additionally needs url,
// description and enabled_events
// (https://developer.personio.de/reference/post_v2-webhooks).
func (s *Server) validate(in *webhookInput, create bool) string {
	if create && (in.URL == nil || in.Description == nil || len(in.EnabledEvents) == 0) {
		return "url, description and enabled_events are required"
	}
	if in.URL != nil {
		u, err := url.Parse(*in.URL)
		if err != nil || u.Host == "" || (u.Scheme != "https" && !(s.opts.AllowHTTPWebhooks && u.Scheme == "http")) {
			return "url must be an absolute HTTPS URL with a valid hostname"
		}
	}
	if in.Status != nil && *in.Status != "ENABLED" && *in.Status != "DISABLED" {
		return "status must be ENABLED or DISABLED"
	}
	if in.AuthType != nil && !slices.Contains([]string{"NONE", "TOKEN", "CUSTOM"}, *in.AuthType) {
		return "auth_type must be NONE, TOKEN or CUSTOM"
	}
	if len(in.CustomHeaders) > 3 {
		return "at most 3 custom_headers are allowed"
	}
	for _, e := range in.EnabledEvents {
		if !slices.Contains(knownEvents, e) {
			return "unknown event in enabled_events: " + e
		}
	}
	return ""
}

func webhookJSON(w *Webhook) map[string]any {
	return map[string]any{
		"id": w.ID, "url": w.URL, "description": w.Description, "status": w.Status,
		"auth_type": w.AuthType, "enabled_events": slices.Clone(w.EnabledEvents),
		"created_at": w.CreatedAt.UTC().Format(time.RFC3339), "updated_at": w.UpdatedAt.UTC().Format(time.RFC3339),
	}
}

func (s *Server) decodeWebhook(w http.ResponseWriter, r *http.Request) (*webhookInput, bool) {
	var in webhookInput
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&in); err != nil {
		s.fail(w, r, http.StatusBadRequest, "common.bad_request", "invalid JSON body")
		return nil, false
	}
	return &in, true
}

// handleCreateWebhook serves POST /v2/webhooks: 201; status defaults to
// DISABLED and auth_type to TOKEN; a second subscription for the same URL
// is a 409 conflict.
func (s *Server) handleCreateWebhook(w http.ResponseWriter, r *http.Request) {
	in, ok := s.decodeWebhook(w, r)
	if !ok {
		return
	}
	if msg := s.validate(in, true); msg != "" {
		s.fail(w, r, http.StatusUnprocessableEntity, "common.unprocessable_entity", msg)
		return
	}
	now := s.now().UTC()
	hook := &Webhook{ID: newUUID(), URL: *in.URL, Description: *in.Description, Status: "DISABLED",
		AuthType: "TOKEN", EnabledEvents: slices.Clone(in.EnabledEvents), CustomHeaders: in.CustomHeaders,
		CreatedAt: now, UpdatedAt: now}
	if in.Status != nil {
		hook.Status = *in.Status
	}
	if in.AuthType != nil {
		hook.AuthType = *in.AuthType
	}
	if in.Token != nil {
		hook.Token = *in.Token
	}
	s.mu.Lock()
	for _, o := range s.webhooks {
		if o.URL == hook.URL {
			s.mu.Unlock()
			s.fail(w, r, http.StatusConflict, "common.conflict", "a webhook with this url already exists")
			return
		}
	}
	s.webhooks = append(s.webhooks, hook)
	out := webhookJSON(hook)
	s.mu.Unlock()
	writeJSON(w, "application/json", http.StatusCreated, out)
}

// handleListWebhooks serves GET /v2/webhooks (limit 1–200, default 100;
// filters status and enabled_events).
func (s *Server) handleListWebhooks(w http.ResponseWriter, r *http.Request) {
	s.page(w, r, 100, 200, func(q url.Values) ([]any, string) {
		var out []any
		for _, h := range s.webhooks {
			if st := q.Get("status"); st != "" && h.Status != st {
				continue
			}
			if ev := q.Get("enabled_events"); ev != "" && !slices.Contains(h.EnabledEvents, ev) {
				continue
			}
			out = append(out, webhookJSON(h))
		}
		return out, ""
	})
}

func (s *Server) findWebhookLocked(id string) (int, *Webhook) {
	for i, h := range s.webhooks {
		if h.ID == id {
			return i, h
		}
	}
	return -1, nil
}

func (s *Server) handleGetWebhook(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	_, h := s.findWebhookLocked(r.PathValue("id"))
	var out map[string]any
	if h != nil {
		out = webhookJSON(h)
	}
	s.mu.Unlock()
	if out == nil {
		s.fail(w, r, http.StatusNotFound, "common.resource_not_found", "webhook not found")
		return
	}
	writeJSON(w, "application/json", http.StatusOK, out)
}

// handlePatchWebhook serves PATCH /v2/webhooks/{id}: changes only the
// fields sent; 200 with the webhook.
func (s *Server) handlePatchWebhook(w http.ResponseWriter, r *http.Request) {
	in, ok := s.decodeWebhook(w, r)
	if !ok {
		return
	}
	if msg := s.validate(in, false); msg != "" {
		s.fail(w, r, http.StatusUnprocessableEntity, "common.unprocessable_entity", msg)
		return
	}
	s.mu.Lock()
	_, h := s.findWebhookLocked(r.PathValue("id"))
	if h == nil {
		s.mu.Unlock()
		s.fail(w, r, http.StatusNotFound, "common.resource_not_found", "webhook not found")
		return
	}
	if in.URL != nil && *in.URL != h.URL {
		for _, o := range s.webhooks {
			if o.URL == *in.URL {
				s.mu.Unlock()
				s.fail(w, r, http.StatusConflict, "common.conflict", "a webhook with this url already exists")
				return
			}
		}
		h.URL = *in.URL
	}
	for _, f := range []struct{ src, dst *string }{
		{in.Description, &h.Description}, {in.Status, &h.Status}, {in.AuthType, &h.AuthType}, {in.Token, &h.Token}} {
		if f.src != nil {
			*f.dst = *f.src
		}
	}
	if in.CustomHeaders != nil {
		h.CustomHeaders = in.CustomHeaders
	}
	if len(in.EnabledEvents) > 0 {
		h.EnabledEvents = slices.Clone(in.EnabledEvents)
	}
	h.UpdatedAt = s.now().UTC()
	out := webhookJSON(h)
	s.mu.Unlock()
	writeJSON(w, "application/json", http.StatusOK, out)
}

func (s *Server) handleDeleteWebhook(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	i, h := s.findWebhookLocked(r.PathValue("id"))
	if h != nil {
		s.webhooks = slices.Delete(s.webhooks, i, i+1)
	}
	s.mu.Unlock()
	if h == nil {
		s.fail(w, r, http.StatusNotFound, "common.resource_not_found", "webhook not found")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handlePingWebhook serves POST /v2/webhooks/{id}/ping: a "ping" event to
// that webhook, whatever its status.
func (s *Server) handlePingWebhook(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	_, h := s.findWebhookLocked(r.PathValue("id"))
	if h != nil {
		s.sendLocked([]*Webhook{h}, "ping", map[string]any{})
	}
	s.mu.Unlock()
	if h == nil {
		s.fail(w, r, http.StatusNotFound, "common.resource_not_found", "webhook not found")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func newUUID() string {
	h := randomHex(16)
	b := []byte(h)
	b[12] = '4'
	return string(b[0:8]) + "-" + string(b[8:12]) + "-" + string(b[12:16]) + "-" + string(b[16:20]) + "-" + string(b[20:32])
}

// event is one notification to send.
type event struct {
	name    string
	payload map[string]any
}

func personPayload(id string) map[string]any {
	return map[string]any{"person": map[string]string{"id": id}}
}

func (s *Server) employmentPayload(personID, employmentID string) map[string]any {
	p := map[string]any{"employment": map[string]string{"id": employmentID}}
	if !s.opts.OmitPersonInEmploymentEvents {
		p["person"] = map[string]string{"id": personID}
	}
	return p
}

// fireLocked sends events to every ENABLED webhook subscribed to them.
func (s *Server) fireLocked(events []event) {
	for _, ev := range events {
		var targets []*Webhook
		for _, h := range s.webhooks {
			if h.Status == "ENABLED" && slices.Contains(h.EnabledEvents, ev.name) {
				targets = append(targets, h)
			}
		}
		s.sendLocked(targets, ev.name, ev.payload)
	}
}

// sendLocked starts one delivery goroutine per target.
func (s *Server) sendLocked(targets []*Webhook, name string, payload map[string]any) {
	if s.closed {
		return
	}
	body, _ := json.Marshal(map[string]any{
		"company_id":  s.company.CompanyID,
		"event_name":  name,
		"occurred_at": s.now().UTC().Format(time.RFC3339Nano),
		"payload":     payload,
		"meta":        map[string]any{},
	})
	for _, h := range targets {
		hdr := http.Header{}
		switch h.AuthType {
		case "TOKEN":
			// Sent verbatim, no scheme added
			// (https://developer.personio.de/reference/post_v2-webhooks).
			hdr.Set("Authorization", h.Token)
		case "CUSTOM":
			for k, v := range h.CustomHeaders {
				hdr.Set(k, v)
			}
		}
		id, target := h.ID, h.URL
		s.deliverWG.Add(1)
		go func() {
			defer s.deliverWG.Done()
			s.deliver(id, target, name, body, hdr)
		}()
	}
}

// deliver posts one event with Personio's rules: 2xx within the timeout
// is success; a timeout, a transport error or a 5xx other than 501 is
// retried; anything else (4xx, 3xx, 501) is final
// (docs/personio-api.md#webhook-deliveries).
func (s *Server) deliver(webhookID, target, name string, body []byte, hdr http.Header) {
	delay := s.opts.DeliveryRetryDelay
	for attempt := 1; attempt <= 1+s.opts.DeliveryRetries; attempt++ {
		d := Delivery{WebhookID: webhookID, URL: target, EventName: name, Attempt: attempt, Body: body,
			Authorization: hdr.Get("Authorization"), At: s.now()}
		retry := false
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.DeliveryTimeout)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
		if err == nil {
			req.Header = hdr.Clone()
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("User-Agent", "personiotest-webhooks")
			var resp *http.Response
			resp, err = s.deliverer.Do(req)
			if err == nil {
				resp.Body.Close()
				d.StatusCode = resp.StatusCode
				d.Delivered = resp.StatusCode >= 200 && resp.StatusCode < 300
				retry = resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented
			}
		}
		cancel()
		if err != nil {
			d.Error = err.Error()
			retry = true // timeout or connection failure
		}
		s.mu.Lock()
		s.deliveries = append(s.deliveries, d)
		closed := s.closed
		s.mu.Unlock()
		s.log.LogAttrs(context.Background(), slog.LevelDebug, "webhook delivery",
			slog.String("webhook_id", webhookID), slog.String("event", name), slog.Int("attempt", attempt),
			slog.Int("status", d.StatusCode), slog.String("err", d.Error))
		if d.Delivered || !retry || closed {
			return
		}
		time.Sleep(delay)
		delay *= 2
	}
}

// UpsertPerson creates the person (person.created plus employment.created
// for each employment) or replaces it (the events of UpdatePerson).
func (s *Server) UpsertPerson(p Person) {
	s.mu.Lock()
	_, exists := s.persons[p.ID]
	if !exists {
		now := s.now().UTC().Truncate(time.Second)
		q := p.clone()
		q.CreatedAt, q.UpdatedAt = now, now
		events := []event{{"person.created", personPayload(q.ID)}}
		for i := range q.Employments {
			q.Employments[i].CreatedAt, q.Employments[i].UpdatedAt = now, now
			events = append(events, event{"employment.created", s.employmentPayload(q.ID, q.Employments[i].ID)})
		}
		s.persons[q.ID] = &q
		s.order = nil
		s.fireLocked(events)
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	s.UpdatePerson(p.ID, func(cur *Person) {
		created, updated := cur.CreatedAt, cur.UpdatedAt
		*cur = p.clone()
		cur.CreatedAt, cur.UpdatedAt = created, updated
	})
}

// DeletePerson removes the person: employment.deleted for each employment
// and person.deleted.
func (s *Server) DeletePerson(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.persons[id]
	if !ok {
		return
	}
	delete(s.persons, id)
	s.order = nil
	var events []event
	for _, e := range p.Employments {
		events = append(events, event{"employment.deleted", s.employmentPayload(id, e.ID)})
	}
	s.fireLocked(append(events, event{"person.deleted", personPayload(id)}))
}

// UpdatePerson changes a person through fn and fires what changed:
// person.updated for person fields, employment.created/updated/deleted per
// employment. Timestamps of changed records move; nothing changed, nothing
// fires. It reports whether the person exists.
func (s *Server) UpdatePerson(id string, fn func(*Person)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.persons[id]
	if !ok {
		return false
	}
	before := cur.clone()
	after := cur.clone()
	fn(&after)
	after.ID = id
	now := s.now().UTC().Truncate(time.Second)
	var events []event
	if !personFieldsEqual(before, after) {
		after.UpdatedAt = now
		events = append(events, event{"person.updated", personPayload(id)})
	}
	old := map[string]Employment{}
	for _, e := range before.Employments {
		old[e.ID] = e
	}
	for i := range after.Employments {
		e := &after.Employments[i]
		prev, existed := old[e.ID]
		delete(old, e.ID)
		switch {
		case !existed:
			e.CreatedAt, e.UpdatedAt = now, now
			events = append(events, event{"employment.created", s.employmentPayload(id, e.ID)})
		case !employmentEqual(prev, *e):
			e.CreatedAt, e.UpdatedAt = prev.CreatedAt, now
			events = append(events, event{"employment.updated", s.employmentPayload(id, e.ID)})
		default:
			e.CreatedAt, e.UpdatedAt = prev.CreatedAt, prev.UpdatedAt
		}
	}
	for _, e := range before.Employments {
		if _, gone := old[e.ID]; gone {
			events = append(events, event{"employment.deleted", s.employmentPayload(id, e.ID)})
		}
	}
	s.persons[id] = &after
	s.order = nil
	s.fireLocked(events)
	return true
}
