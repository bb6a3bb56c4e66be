package provisioning

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/personio-entra/personio-entra/provisioning/model"
	"github.com/personio-entra/personio-entra/queue/work"
	"github.com/personio-entra/personio-entra/rules"
)

// Audit-only change kinds of notifications and the day-one pass.
const (
	// Notify is one delivery of a notification (event, channel, recipient).
	Notify ChangeKind = "notify"
	// IssueTAP is a Temporary Access Pass issued and delivered (never the pass).
	IssueTAP ChangeKind = "issue_tap"
)

// Channels of a delivery (label of personio_entra_notifications_total).
const (
	ChannelEmail   = "email"
	ChannelWebhook = "webhook"
)

var (
	notificationsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "personio_entra_notifications_total",
		Help: "Notification deliveries by event, channel (email, webhook, queue) and result (delivered, failed, skipped, queued, publish_failed).",
	}, []string{"event", "channel", "result"})
	tapIssuedTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "personio_entra_tap_issued_total",
		Help: "Day-one Temporary Access Passes by result (issued, has_method, policy_refused, forbidden, failed, delivery_failed).",
	}, []string{"result"})
)

// NoticePublisher queues notifications (the queue's PublishNotice).
type NoticePublisher interface {
	PublishNotice(ctx context.Context, n work.Notice, msgID string) error
}

// NotifyConfig wires notifications and the day-one pass. Without a
// Publisher the engine raises no notices and issues no pass.
type NotifyConfig struct {
	Publisher NoticePublisher
	// Mailer sends as Sender (NOTIFY_MAILBOX); Webhook posts the events
	// that ask for it (NOTIFY_WEBHOOK_URL).
	Mailer  Mailer
	Sender  string
	Webhook *Webhook
	// AuthMethods issues the pass (first_sign_in).
	AuthMethods AuthMethods

	// From the rules (ApplyRules).
	Events      rules.Notifications
	FirstSignIn rules.FirstSignIn
	Location    *time.Location
}

func (c *NotifyConfig) applyRules(r *rules.Rules) {
	c.Events, c.FirstSignIn, c.Location = r.Notifications(), r.FirstSignIn(), r.TimeZone()
}

// Notifies reports whether the engine raises notifications (the
// notifications consumer must then run).
func (e *Engine) Notifies() bool { return e.notifying() }

// notifying reports whether the engine raises notices at all.
func (e *Engine) notifying() bool { return e.cfg.Notify.Publisher != nil && !e.cfg.DryRun }

// raise queues a notice (best effort: provisioning never waits on it).
func (e *Engine) raise(ctx context.Context, log *slog.Logger, n work.Notice, msgID string) {
	if !e.notifying() || e.cfg.Notify.Events.Event(n.Event) == nil {
		return
	}
	n.Time = e.cfg.Now().UTC()
	if err := e.cfg.Notify.Publisher.PublishNotice(ctx, n, msgID); err != nil {
		notificationsTotal.WithLabelValues(n.Event, "queue", "publish_failed").Inc()
		log.Error("queue notification", "event", n.Event, "err", err)
		return
	}
	notificationsTotal.WithLabelValues(n.Event, "queue", "queued").Inc()
}

// afterReconcile raises the notices of what the reconcile did and queues
// the day-one work when it is due. Only the day-one work can fail the
// reconcile (so that it is retried): its record in the state bucket is
// what makes it run once per start date.
func (e *Engine) afterReconcile(ctx context.Context, log *slog.Logger, now time.Time, res *Result, d rules.Desired, heldIn string) error {
	if !e.notifying() {
		return nil
	}
	p := res.Plan
	for _, c := range p.Changes {
		switch {
		case c.Kind == CreateUser && p.UserID != "":
			e.raise(ctx, log, work.Notice{Event: rules.EventJoinerCreated, PersonID: p.PersonID, UserID: p.UserID, UPN: p.UPN},
				"joiner-"+p.UserID)
		case c.Kind == DisableUser && (d.Phase == rules.PhaseLeaver || d.Phase == rules.PhaseDeleted):
			e.raise(ctx, log, work.Notice{Event: rules.EventLeaverDisabled, PersonID: p.PersonID, UserID: p.UserID, UPN: p.UPN},
				fmt.Sprintf("leaver-%s-%d", p.UserID, now.Unix()/3600))
		}
	}
	if res.Held > 0 && heldIn != "" {
		e.raise(ctx, log, work.Notice{Event: rules.EventSafeguardHeld, PersonID: p.PersonID, ApprovalID: heldIn, People: 1,
			Reason: strings.Join(p.Notes, "; ")}, "held-"+heldIn)
	}
	if d.DayOne.Due(now) && p.UserID != "" {
		return e.queueDayOne(ctx, log, p, d)
	}
	return nil
}

// dayOneRecord is the state of one person's day-one work for one start
// date, in the state bucket. It never holds the pass.
type dayOneRecord struct {
	State string `json:"state"` // queued, issued, delivered, skipped, cancelled
	// TAPID is the method id of a pass created and not (yet) delivered, so
	// that a retry deletes it before issuing a fresh one.
	TAPID    string    `json:"tap_id,omitempty"`
	InfoSent bool      `json:"info_sent,omitempty"`
	Note     string    `json:"note,omitempty"`
	Updated  time.Time `json:"updated"`
}

const dayOnePrefix = "dayone."

func dayOneKey(personID string, start model.Date) string {
	return dayOnePrefix + personID + "." + start.String()
}

// queueDayOne claims the person's day-one work for the start date in the
// state bucket (Create: exactly one reconcile wins, whatever replays,
// retries, workers or syncs run it) and queues it. A failed publish drops
// the claim again and fails the reconcile, which is retried.
func (e *Engine) queueDayOne(ctx context.Context, log *slog.Logger, p Plan, d rules.Desired) error {
	if e.cfg.Notify.Events.Event(rules.EventStartDate) == nil && !d.DayOne.Pass {
		return nil
	}
	key := dayOneKey(p.PersonID, d.DayOne.StartDate)
	rec, _ := jsonMarshal(dayOneRecord{State: "queued", Updated: e.cfg.Now().UTC()})
	if _, err := e.cfg.State.Create(ctx, key, rec); err != nil {
		if _, _, gerr := e.cfg.State.Get(ctx, key); gerr == nil {
			return nil // queued before: once per start date
		}
		return fmt.Errorf("day-one work of %s: claim it in the state bucket: %w", p.PersonID, err)
	}
	n := work.Notice{Event: rules.EventStartDate, PersonID: p.PersonID, UserID: p.UserID, UPN: p.UPN,
		StartDate: d.DayOne.StartDate.String(), Time: e.cfg.Now().UTC()}
	if err := e.cfg.Notify.Publisher.PublishNotice(ctx, n, key); err != nil {
		if derr := e.cfg.State.Delete(context.WithoutCancel(ctx), key); derr != nil {
			log.Error("drop the day-one claim after a failed publish", "err", derr)
		}
		notificationsTotal.WithLabelValues(rules.EventStartDate, "queue", "publish_failed").Inc()
		return fmt.Errorf("day-one work of %s: queue it: %w", p.PersonID, err)
	}
	notificationsTotal.WithLabelValues(rules.EventStartDate, "queue", "queued").Inc()
	log.Info("day-one work queued", "start_date", d.DayOne.StartDate.String(), "pass", d.DayOne.Pass)
	return nil
}

// HandleNotice is the queue's notification handler: it renders the event
// for its recipients and delivers it; for start_date it issues and
// delivers the day-one pass. A work.Terminal error dead-letters the notice,
// any other error retries it.
func (e *Engine) HandleNotice(ctx context.Context, n work.Notice) error {
	if n.Event == rules.EventStartDate {
		return e.deliverDayOne(ctx, n)
	}
	ev := e.cfg.Notify.Events.Event(n.Event)
	if ev == nil {
		return nil // turned off since it was queued
	}
	data, emp, err := e.noticeData(ctx, n)
	if err != nil {
		return err
	}
	return e.deliver(ctx, n, ev, data, e.recipients(ctx, ev.To, emp, n), ev.Webhook)
}

// noticeData collects what the templates show. The person may be gone
// from Personio (a deleted leaver, a dead letter): then only the ids are
// known.
func (e *Engine) noticeData(ctx context.Context, n work.Notice) (rules.NoticeData, *model.Employee, error) {
	loc := e.cfg.Notify.Location
	if loc == nil {
		loc = time.UTC
	}
	d := rules.NoticeData{Event: n.Event, ApprovalID: n.ApprovalID, People: n.People, Reason: n.Reason, Error: n.Error,
		Subject: n.Subject, Time: n.Time.In(loc).Format(time.RFC3339),
		Person: rules.NoticePerson{ID: n.PersonID, UPN: n.UPN},
		Pass:   rules.NoticePass{SignInURL: "https://aka.ms/mysecurityinfo"}}
	if n.PersonID == "" || !model.ValidPersonID(n.PersonID) {
		return d, nil, nil
	}
	emp, err := e.cfg.Source.GetEmployee(ctx, n.PersonID)
	switch {
	case errors.Is(err, model.ErrPersonNotFound):
		return d, nil, nil
	case err != nil:
		return d, nil, fmt.Errorf("notice %s for %s: read the employee: %w", n.Event, n.PersonID, err)
	}
	name := emp.PreferredName
	if name == "" {
		name = emp.FirstName
	}
	d.Person = rules.NoticePerson{ID: emp.PersonID, FirstName: emp.FirstName, LastName: emp.LastName,
		Name: strings.TrimSpace(name + " " + emp.LastName), Email: emp.Email, UPN: n.UPN,
		Department: emp.Department.Name, Position: emp.Position}
	if !emp.StartDate.IsZero() {
		d.Person.StartDate = emp.StartDate.String()
	}
	if !emp.LastWorkingDay.IsZero() {
		d.Person.LastWorkingDay = emp.LastWorkingDay.String()
	}
	if d.Person.UPN == "" && n.UserID != "" {
		if u, err := e.cfg.Directory.GetUser(ctx, n.UserID); err == nil {
			d.Person.UPN = u.UserPrincipalName
		}
	}
	if emp.SupervisorID != "" {
		if m, err := e.findByEmployeeID(ctx, emp.SupervisorID); err == nil && m != nil {
			d.Person.ManagerMail = m.Mail
			if me, err := e.cfg.Source.GetEmployee(ctx, emp.SupervisorID); err == nil {
				d.Person.ManagerName = strings.TrimSpace(me.FirstName + " " + me.LastName)
			}
		} else if err != nil {
			return d, nil, fmt.Errorf("notice %s for %s: find the manager's account: %w", n.Event, n.PersonID, err)
		}
	}
	return d, &emp, nil
}

// recipients turns the recipient words into addresses; a word without an
// address (no manager, no mailbox) is dropped.
func (e *Engine) recipients(_ context.Context, to []string, emp *model.Employee, n work.Notice) []recipient {
	var out []recipient
	add := func(r recipient) {
		if r.addr == "" {
			return
		}
		for _, o := range out {
			if strings.EqualFold(o.addr, r.addr) {
				return
			}
		}
		out = append(out, r)
	}
	for _, t := range to {
		switch t {
		case rules.ToAdmins:
			for _, a := range e.cfg.Notify.Events.Admins {
				add(recipient{who: "admins", addr: a})
			}
		case rules.ToPerson:
			if emp != nil {
				add(recipient{who: "person", addr: strings.TrimSpace(emp.Email)})
			}
		case rules.ToManager:
			// resolved by the caller into managerMail
		default:
			add(recipient{who: "address", addr: t})
		}
	}
	return out
}

type recipient struct{ who, addr string }

func (r recipient) String() string { return r.who + " <" + r.addr + ">" }

// deliver renders and sends one notice to every recipient and the webhook.
// Every delivery is audited and counted; the first failure is returned
// (retried) after the others were tried.
func (e *Engine) deliver(ctx context.Context, n work.Notice, ev *rules.NotifyEvent, data rules.NoticeData, to []recipient, webhook bool) error {
	if slices.Contains(ev.To, rules.ToManager) && data.Person.ManagerMail != "" {
		to = append([]recipient{{who: "manager", addr: data.Person.ManagerMail}}, to...)
	}
	var errs []error
	switch {
	case len(to) > 0:
		if err := e.sendMail(ctx, n, ev, data, to); err != nil {
			errs = append(errs, err)
		}
	case len(ev.To) > 0:
		e.auditNotice(ctx, n, ChannelEmail, strings.Join(ev.To, ", "), ResultSkipped,
			"no recipient has an address (no manager, a manager without a mailbox, or no email in Personio)", nil)
	}
	if webhook {
		if err := e.postWebhook(ctx, n, ev, data); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (e *Engine) sendMail(ctx context.Context, n work.Notice, ev *rules.NotifyEvent, data rules.NoticeData, to []recipient) error {
	nc := e.cfg.Notify
	if nc.Mailer == nil || nc.Sender == "" {
		e.auditNotice(ctx, n, ChannelEmail, "", ResultSkipped, "no sender mailbox configured (NOTIFY_MAILBOX)", nil)
		return nil
	}
	subject, body, err := ev.Render(data)
	if err != nil {
		e.auditNotice(ctx, n, ChannelEmail, "", ResultFailed, "", err)
		return work.Terminal(err)
	}
	addrs := make([]string, len(to))
	names := make([]string, len(to))
	for i, r := range to {
		addrs[i], names[i] = r.addr, r.String()
	}
	err = nc.Mailer.SendMail(ctx, nc.Sender, Mail{To: addrs, Subject: subject, Body: body, NoCopy: data.Pass.Value != ""})
	who := strings.Join(names, ", ")
	if err != nil {
		e.auditNotice(ctx, n, ChannelEmail, who, ResultFailed, "", err)
		if errors.Is(err, ErrNoMailbox) || errors.Is(err, ErrForbidden) {
			return work.Terminal(fmt.Errorf("send %s as %s: %w (NOTIFY_MAILBOX must be a mailbox the app may send as: Mail.Send, and any application access policy must include it)", n.Event, nc.Sender, err))
		}
		return fmt.Errorf("send %s: %w", n.Event, err)
	}
	e.auditNotice(ctx, n, ChannelEmail, who, ResultApplied, "delivered", nil)
	return nil
}

func (e *Engine) postWebhook(ctx context.Context, n work.Notice, ev *rules.NotifyEvent, data rules.NoticeData) error {
	wh := e.cfg.Notify.Webhook
	if wh == nil {
		e.auditNotice(ctx, n, ChannelWebhook, "", ResultSkipped, "no webhook configured (NOTIFY_WEBHOOK_URL)", nil)
		return nil
	}
	data.Pass.Value = "" // a pass never goes to a chat channel
	subject, body, err := ev.Render(data)
	if err != nil {
		e.auditNotice(ctx, n, ChannelWebhook, "webhook", ResultFailed, "", err)
		return work.Terminal(err)
	}
	err = wh.Post(ctx, WebhookPayload{Text: subject + "\n\n" + strings.TrimSpace(body), Event: n.Event, PersonID: n.PersonID,
		Subject: subject, Body: body, Time: n.Time.UTC().Format(time.RFC3339)})
	if err != nil {
		e.auditNotice(ctx, n, ChannelWebhook, "webhook", ResultFailed, "", err)
		return fmt.Errorf("post %s to the webhook: %w", n.Event, err)
	}
	e.auditNotice(ctx, n, ChannelWebhook, "webhook", ResultApplied, "delivered", nil)
	return nil
}

// auditNotice audits and counts one delivery: event, channel, recipient and
// outcome, never the content.
func (e *Engine) auditNotice(ctx context.Context, n work.Notice, channel, who, result, note string, err error) {
	outcome := map[string]string{ResultApplied: "delivered", ResultFailed: "failed", ResultSkipped: "skipped"}[result]
	notificationsTotal.WithLabelValues(n.Event, channel, outcome).Inc()
	msg := fmt.Sprintf("%s by %s", n.Event, channel)
	if who != "" {
		msg += " to " + who
	}
	if note != "" {
		msg += ": " + note
	}
	lvl := slog.LevelInfo
	if err != nil {
		lvl = slog.LevelWarn
	}
	e.log.Log(ctx, lvl, "notification", "event", n.Event, "channel", channel, "recipient", who, "result", outcome, "person_id", n.PersonID, "err", errString(err))
	if n.PersonID == "" {
		return // the audit log is kept per person
	}
	p := Plan{PersonID: n.PersonID, UserID: n.UserID, UPN: n.UPN}
	e.audit(ctx, auditRecord(e.cfg.Now(), "notify", p, Change{Kind: Notify}, result, msg, err, false))
}
