package provisioning

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/personio-entra/personio-entra/queue/work"
)

// Webhook posts notifications as JSON to one URL: a Slack or Microsoft
// Teams incoming webhook, or any receiver that reads the documented
// payload. The URL is a secret (Slack's and Teams' URLs carry their
// credential in the path), so it never appears in a log line or an error:
// only Redacted does.
type Webhook struct {
	u      *url.URL
	client *http.Client
}

// WebhookPayload is the JSON body: Text for Slack and Teams (both show a
// message's "text"), the rest for receivers that want the fields. Post
// escapes &, < and > in Text, as Slack asks for text that must not be read
// as markup (https://api.slack.com/reference/surfaces/formatting#escaping):
// Personio fields in it cannot mention @channel or disguise a link. Subject
// and Body go as rendered.
type WebhookPayload struct {
	Text     string `json:"text"`
	Event    string `json:"event"`
	PersonID string `json:"person_id,omitempty"`
	Subject  string `json:"subject"`
	Body     string `json:"body"`
	Time     string `json:"time"`
}

// NewWebhook checks the URL: https, or http to a loopback address only.
// client may be nil (a 10 s timeout).
func NewWebhook(raw string, client *http.Client) (*Webhook, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, errors.New("NOTIFY_WEBHOOK_URL is not an absolute URL")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && loopbackHost(u.Hostname()):
	default:
		return nil, fmt.Errorf("NOTIFY_WEBHOOK_URL (%s): https is required (plain http only to a loopback address)", redactURL(u))
	}
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	return &Webhook{u: u, client: client}, nil
}

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func redactURL(u *url.URL) string { return u.Scheme + "://" + u.Host + "/…" }

// Redacted names the webhook without its secret parts.
func (w *Webhook) Redacted() string { return redactURL(w.u) }

var chatEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// Post sends the payload. A 4xx other than 408 and 429 is terminal (the
// URL is wrong or revoked: retrying cannot help); anything else is retried.
func (w *Webhook) Post(ctx context.Context, p WebhookPayload) error {
	p.Text = chatEscaper.Replace(p.Text)
	b, err := json.Marshal(p)
	if err != nil {
		return work.Terminal(fmt.Errorf("webhook payload: %w", err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.u.String(), bytes.NewReader(b))
	if err != nil {
		return work.Terminal(fmt.Errorf("webhook %s: build the request", w.Redacted()))
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.client.Do(req)
	if err != nil {
		// *url.Error prints the URL: keep only what went wrong.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("webhook %s: %w", w.Redacted(), err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode < 300:
		return nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests:
		return work.Terminal(fmt.Errorf("webhook %s answered %d: check NOTIFY_WEBHOOK_URL", w.Redacted(), resp.StatusCode))
	}
	return fmt.Errorf("webhook %s answered %d", w.Redacted(), resp.StatusCode)
}
