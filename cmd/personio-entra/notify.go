package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"strings"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/entra"
	"github.com/personio-entra/personio-entra/queue"
	"github.com/personio-entra/personio-entra/rules"
)

// validateNotify checks NOTIFY_MAILBOX and NOTIFY_WEBHOOK_URL (Validate).
// The webhook URL is a secret: it is never printed.
func (c Config) validateNotify() []error {
	var errs []error
	if c.NotifyMailbox != "" {
		if a, err := mail.ParseAddress(c.NotifyMailbox); err != nil || a.Address != c.NotifyMailbox {
			errs = append(errs, fmt.Errorf("NOTIFY_MAILBOX=%q: want the address (user principal name) of the mailbox mail is sent from", c.NotifyMailbox))
		}
	}
	if c.NotifyWebhookURL != "" {
		if _, err := provisioning.NewWebhook(c.NotifyWebhookURL, nil); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// wireNotify gives the engine its notifications and day-one pass: the
// queue publishes and carries them, Graph sends the mail as NOTIFY_MAILBOX
// and issues the pass, NOTIFY_WEBHOOK_URL receives the webhook events. It
// refuses rules that need a mailbox or a webhook the environment does not
// name.
func wireNotify(ecfg *provisioning.Config, cfg Config, r *rules.Rules, dir *entra.Directory, q *queue.Queue, log *slog.Logger) error {
	n := r.Notifications()
	fs := r.FirstSignIn()
	var errs []error
	if (fs.Enabled || n.UsesEmail()) && cfg.NotifyMailbox == "" {
		errs = append(errs, errors.New("NOTIFY_MAILBOX is empty, but the rules mail notifications"+
			map[bool]string{true: " and the day-one pass (first_sign_in)", false: ""}[fs.Enabled]+
			": set it to the mailbox the app sends as (it needs Mail.Send; README, \"Notifications\")"))
	}
	if n.UsesWebhook() && cfg.NotifyWebhookURL == "" {
		errs = append(errs, errors.New("NOTIFY_WEBHOOK_URL is empty, but notification events in the rules ask for webhook: true"))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if q == nil || (!fs.Enabled && !n.UsesEmail() && !n.UsesWebhook()) {
		return nil
	}
	ecfg.Notify.Publisher = q
	ecfg.Notify.Mailer, ecfg.Notify.Sender, ecfg.Notify.AuthMethods = dir, cfg.NotifyMailbox, dir
	if cfg.NotifyWebhookURL != "" {
		wh, err := provisioning.NewWebhook(cfg.NotifyWebhookURL, nil)
		if err != nil {
			return err
		}
		ecfg.Notify.Webhook = wh
	}
	q.NotifyDeadLetters(n.Event(rules.EventDeadLettered) != nil)
	var events []string
	for _, e := range rules.Events {
		if n.Event(e) != nil {
			events = append(events, e)
		}
	}
	log.Info("notifications on", "events", strings.Join(events, ","), "first_sign_in", fs.Enabled,
		"mailbox", cfg.NotifyMailbox, "webhook", ecfg.Notify.Webhook != nil)
	return nil
}
