package personio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// WebhookEvents are the events the product subscribes to: every person and
// employment event, including the date-driven employment.started and
// employment.terminated (docs/personio-api.md#webhook-events).
var WebhookEvents = model.SubscribedEvents

// WebhookDescription is the description set on the subscription.
const WebhookDescription = "personio-entra: keep Microsoft Entra ID in step with Personio"

// Webhook is a v2 webhook subscription. Personio does not echo the token.
type Webhook struct {
	ID            string   `json:"id"`
	URL           string   `json:"url"`
	Description   string   `json:"description,omitempty"`
	Status        string   `json:"status,omitempty"` // ENABLED or DISABLED
	AuthType      string   `json:"auth_type,omitempty"`
	EnabledEvents []string `json:"enabled_events,omitempty"`
}

// ListWebhooks returns every webhook subscription of the company
// (v2 GET /webhooks, 200 a page; scope personio:webhooks:read).
func (c *Client) ListWebhooks(ctx context.Context) ([]Webhook, error) {
	var all []Webhook
	err := c.listV2(ctx, "v2_list_webhooks", "/v2/webhooks", url.Values{"limit": {"200"}}, func(raw json.RawMessage) (bool, error) {
		var w Webhook
		if err := json.Unmarshal(raw, &w); err != nil {
			return false, fmt.Errorf("decode webhook: %w", err)
		}
		all = append(all, w)
		return false, nil
	})
	if err != nil {
		return nil, fmt.Errorf("personio: list webhooks: %w", err)
	}
	return all, nil
}

// RegisterWebhook makes sure exactly one subscription delivers our events
// to webhookURL with token: it updates the subscription that already has
// this URL, or creates one. Either way it sets status ENABLED explicitly
// (a created webhook defaults to DISABLED,
// https://developer.personio.de/reference/post_v2-webhooks), auth type
// TOKEN and the token, which Personio sends verbatim in Authorization.
// Setting the token on every call is how the token is rotated.
func (c *Client) RegisterWebhook(ctx context.Context, webhookURL, token string) (Webhook, error) {
	u, err := url.Parse(webhookURL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return Webhook{}, fmt.Errorf("personio: register webhook: %q is not an absolute URL (Personio delivers to HTTPS only)", webhookURL)
	}
	if strings.TrimSpace(token) == "" {
		return Webhook{}, errors.New("personio: register webhook: empty token; Personio would deliver without authentication")
	}
	existing, err := c.ListWebhooks(ctx)
	if err != nil {
		return Webhook{}, fmt.Errorf("personio: register webhook: %w", err)
	}
	body := map[string]any{
		"url":            webhookURL,
		"description":    WebhookDescription,
		"status":         "ENABLED",
		"auth_type":      "TOKEN",
		"token":          token,
		"enabled_events": WebhookEvents,
	}
	b, _ := json.Marshal(body)
	var matches []Webhook
	for _, w := range existing {
		if w.URL == webhookURL {
			matches = append(matches, w)
		}
	}
	var out Webhook
	if len(matches) > 0 {
		if len(matches) > 1 {
			ids := make([]string, 0, len(matches))
			for _, m := range matches {
				ids = append(ids, m.ID)
			}
			c.log.LogAttrs(ctx, slog.LevelWarn, "several Personio webhooks share the URL; updating the first, the others deliver duplicates until deleted",
				slog.String("url", webhookURL), slog.Any("webhook_ids", ids))
		}
		id := matches[0].ID
		err = c.do(ctx, request{op: "v2_patch_webhook", method: http.MethodPatch,
			path: "/v2/webhooks/" + url.PathEscape(id), body: b, contentType: "application/json",
			api: apiV2, idempotent: true}, &out)
		if err != nil {
			return Webhook{}, fmt.Errorf("personio: register webhook: update %s: %w", id, err)
		}
		c.log.LogAttrs(ctx, slog.LevelInfo, "Personio webhook updated", slog.String("webhook_id", id), slog.String("url", webhookURL))
	} else {
		// Not idempotent: a create repeated after a lost answer would
		// subscribe twice, so only 429 (not processed) is retried.
		err = c.do(ctx, request{op: "v2_create_webhook", method: http.MethodPost, path: "/v2/webhooks",
			body: b, contentType: "application/json", api: apiV2}, &out)
		if err != nil {
			return Webhook{}, fmt.Errorf("personio: register webhook: create: %w", err)
		}
		c.log.LogAttrs(ctx, slog.LevelInfo, "Personio webhook created", slog.String("webhook_id", out.ID), slog.String("url", webhookURL))
	}
	if out.Status != "" && out.Status != "ENABLED" {
		return out, fmt.Errorf("personio: register webhook %s: status is %s after asking for ENABLED", out.ID, out.Status)
	}
	missing := slices.DeleteFunc(slices.Clone(WebhookEvents), func(e string) bool { return slices.Contains(out.EnabledEvents, e) })
	if len(out.EnabledEvents) > 0 && len(missing) > 0 {
		return out, fmt.Errorf("personio: register webhook %s: Personio did not enable %s", out.ID, strings.Join(missing, ", "))
	}
	return out, nil
}

// PingWebhook asks Personio to send a test event of type ping to the
// webhook (v2 POST /webhooks/{id}/ping).
func (c *Client) PingWebhook(ctx context.Context, id string) error {
	if id == "" || strings.ContainsAny(id, "/?#") {
		return fmt.Errorf("personio: ping webhook: invalid id %q", id)
	}
	err := c.do(ctx, request{op: "v2_ping_webhook", method: http.MethodPost,
		path: "/v2/webhooks/" + url.PathEscape(id) + "/ping", api: apiV2}, nil)
	if err != nil {
		return fmt.Errorf("personio: ping webhook %s: %w", id, err)
	}
	return nil
}
