package provisioning

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/personio-entra/personio-entra/provisioning/model"
	"github.com/personio-entra/personio-entra/queue/work"
	"github.com/personio-entra/personio-entra/rules"
)

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// loadDayOne reads the record; rev 0 means there is none.
func (e *Engine) loadDayOne(ctx context.Context, key string) (dayOneRecord, uint64, error) {
	var rec dayOneRecord
	b, rev, err := e.cfg.State.Get(ctx, key)
	switch {
	case errors.Is(err, ErrKeyNotFound):
		return dayOneRecord{State: "queued"}, 0, nil
	case err != nil:
		return rec, 0, fmt.Errorf("read the day-one record %s: %w", key, err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, 0, work.Terminal(fmt.Errorf("day-one record %s is not JSON: %w", key, err))
	}
	return rec, rev, nil
}

// saveDayOne writes the record with compare-and-set: a second worker on
// the same notice loses and retries, it never issues a second pass.
// issuingLease is how long a worker's claim to issue and mail a pass keeps
// other workers from issuing one for the same person and start date: far
// longer than creating a pass and sending one mail take.
const issuingLease = 2 * time.Minute

func (e *Engine) saveDayOne(ctx context.Context, key string, rec dayOneRecord, rev *uint64) error {
	rec.Updated = e.cfg.Now().UTC()
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	var n uint64
	if *rev == 0 {
		n, err = e.cfg.State.Create(ctx, key, b)
	} else {
		n, err = e.cfg.State.Update(ctx, key, b, *rev)
	}
	if err != nil {
		return fmt.Errorf("write the day-one record %s: %w", key, err)
	}
	*rev = n
	return nil
}

// deliverDayOne runs the day-one work of one person and start date: the
// start_date notice to its recipients and webhook, then, under
// first_sign_in, a Temporary Access Pass created and mailed in the same
// step. The pass exists only in this function and in the mail: the queue
// message, the state record, the audit and the logs never hold it.
//
// The state record makes it run once: delivered or skipped work is done;
// a pass created by an attempt whose delivery failed is deleted before a
// fresh one is issued (a user holds one pass, and a new one replaces the
// old, but the explicit delete also covers a pass nobody will ever
// deliver), so no stale pass is ever delivered and at most one is usable.
func (e *Engine) deliverDayOne(ctx context.Context, n work.Notice) error {
	start, err := model.ParseDate(n.StartDate)
	if err != nil || !model.ValidPersonID(n.PersonID) {
		return work.Terminal(fmt.Errorf("day-one notice: person %q, start date %q: %v", n.PersonID, n.StartDate, err))
	}
	key := dayOneKey(n.PersonID, start)
	rec, rev, err := e.loadDayOne(ctx, key)
	if err != nil {
		return err
	}
	switch rec.State {
	case "delivered", "skipped", "cancelled":
		return nil
	}
	data, emp, err := e.noticeData(ctx, n)
	if err != nil {
		return err
	}
	cancel := func(why string) error {
		rec.State, rec.Note = "cancelled", why
		e.auditNotice(ctx, n, ChannelEmail, "", ResultSkipped, why, nil)
		return e.saveDayOne(ctx, key, rec, &rev)
	}
	if emp == nil {
		return cancel("the person no longer exists in Personio")
	}
	d, err := e.desired(*emp, e.cfg.Now())
	if err != nil {
		return work.Terminal(fmt.Errorf("day-one work of %s: %w", n.PersonID, err))
	}
	if d.DayOne == nil || d.DayOne.StartDate != start {
		return cancel(fmt.Sprintf("the start date is no longer %s or the person no longer starts", start))
	}
	pass := d.DayOne.Pass
	fs := e.cfg.Notify.FirstSignIn
	var passTo []recipient
	var passWhy string
	if pass {
		passTo, passWhy = e.passRecipients(data)
	}
	if ev := e.cfg.Notify.Events.Event(rules.EventStartDate); ev != nil && !rec.InfoSent {
		info := data
		if pass {
			info.Pass.Note = "it goes by e-mail to " + strings.Join(names(passTo), ", ")
		}
		if err := e.deliver(ctx, n, ev, info, e.recipients(ctx, ev.To, emp, n), ev.Webhook); err != nil {
			return err
		}
		rec.InfoSent = true
		if err := e.saveDayOne(ctx, key, rec, &rev); err != nil {
			return err
		}
	}
	if !pass {
		rec.State = "delivered"
		return e.saveDayOne(ctx, key, rec, &rev)
	}
	if len(passTo) == 0 {
		tapIssuedTotal.WithLabelValues("failed").Inc()
		return work.Terminal(fmt.Errorf("day-one pass of %s: no recipient: %s and first_sign_in.fallback is empty", n.PersonID, passWhy))
	}
	am := e.cfg.Notify.AuthMethods
	if am == nil {
		return work.Terminal(errors.New("day-one pass: first_sign_in is on but no authentication-methods client is wired"))
	}
	ev := e.cfg.Notify.Events.PassEvent()

	// An earlier attempt created a pass and could not deliver it: delete it
	// first, so that only the pass delivered below is ever usable.
	if rec.TAPID != "" {
		if err := am.DeleteTAP(ctx, n.UserID, rec.TAPID); err != nil {
			return fmt.Errorf("day-one pass of %s: delete the undelivered pass %s: %w", n.PersonID, rec.TAPID, err)
		}
		rec.TAPID, rec.State = "", "queued"
		if err := e.saveDayOne(ctx, key, rec, &rev); err != nil {
			return err
		}
	}
	// One worker at a time issues and mails the pass. Creating a pass
	// replaces the user's last one, so a second worker running the same
	// notice (a redelivery while this one still runs) would make the pass
	// this one mails useless. The claim is a compare-and-set on the record;
	// a fresh claim of another worker sends this one back to retry later,
	// and a claim older than issuingLease (its worker died) is taken over.
	if rec.State == "issuing" && e.cfg.Now().Sub(rec.Updated) < issuingLease {
		return fmt.Errorf("day-one pass of %s: another worker is issuing it; retried later", n.PersonID)
	}
	rec.State = "issuing"
	if err := e.saveDayOne(ctx, key, rec, &rev); err != nil {
		return fmt.Errorf("day-one pass of %s: claim the issue: %w", n.PersonID, err)
	}
	defer func() {
		if rec.State == "issuing" { // stopped before a pass was recorded: a retry may claim at once
			rec.State = "queued"
			if err := e.saveDayOne(context.WithoutCancel(ctx), key, rec, &rev); err != nil {
				e.log.Warn("release the claim on the day-one pass; a retry takes it over after the lease", "person_id", n.PersonID, "err", err)
			}
		}
	}()
	methods, err := am.ListAuthMethods(ctx, n.UserID)
	if err != nil {
		return e.passFailed(n, "list the authentication methods", err)
	}
	if m := usableMethod(methods); m != "" {
		return e.noPass(ctx, n, key, &rec, &rev, ev, data, passTo, "has_method",
			fmt.Sprintf("%s already has a sign-in method (%s) and signs in with it; no Temporary Access Pass is needed", data.Person.Name, m))
	}
	now := e.cfg.Now()
	tap, err := am.CreateTAP(ctx, n.UserID, TAPRequest{LifetimeMinutes: fs.LifetimeMinutes, UsableOnce: fs.UsableOnce})
	switch {
	case errors.Is(err, ErrTAPHasMethod):
		return e.noPass(ctx, n, key, &rec, &rev, ev, data, passTo, "has_method",
			fmt.Sprintf("Entra refused a Temporary Access Pass because %s already has a usable sign-in method; they sign in with it", data.Person.Name))
	case errors.Is(err, ErrTAPPolicyDisabled):
		if aerr := e.tellAdmins(ctx, n, data, err); aerr != nil {
			return aerr
		}
		return e.noPass(ctx, n, key, &rec, &rev, ev, data, passTo, "policy_refused",
			"the tenant's Temporary Access Pass policy refused it; IT was told and can issue one by hand")
	case err != nil:
		return e.passFailed(n, "create the pass", err)
	}
	rec.State, rec.TAPID = "issued", tap.ID
	if err := e.saveDayOne(ctx, key, rec, &rev); err != nil {
		if derr := am.DeleteTAP(context.WithoutCancel(ctx), n.UserID, tap.ID); derr != nil {
			e.log.Error("delete a pass whose record could not be written", "person_id", n.PersonID, "tap_id", tap.ID, "err", derr)
		}
		return err
	}
	loc := e.cfg.Notify.Location
	if loc == nil {
		loc = time.UTC
	}
	expires := tap.ExpiresAt(now).In(loc)
	pdata := data
	pdata.Pass = rules.NoticePass{Value: tap.Pass.Reveal(), Issued: true, ExpiresAt: expires.Format("2006-01-02 15:04 MST"),
		Lifetime: (time.Duration(tap.LifetimeMinutes) * time.Minute).String(), UsableOnce: tap.UsableOnce, SignInURL: data.Pass.SignInURL}
	if err := e.sendMail(ctx, n, ev, pdata, passTo); err != nil {
		tapIssuedTotal.WithLabelValues("delivery_failed").Inc()
		if derr := am.DeleteTAP(context.WithoutCancel(ctx), n.UserID, tap.ID); derr != nil {
			e.log.Error("delete the undelivered pass; the next attempt deletes it first", "person_id", n.PersonID, "tap_id", tap.ID, "err", derr)
			return err
		}
		rec.TAPID, rec.State = "", "queued"
		if serr := e.saveDayOne(context.WithoutCancel(ctx), key, rec, &rev); serr != nil {
			e.log.Error("record the deleted pass", "person_id", n.PersonID, "err", serr)
		}
		return err
	}
	rec.State, rec.TAPID = "delivered", ""
	rec.Note = fmt.Sprintf("pass %s issued, valid until %s, mailed to %s", tap.ID, expires.Format(time.RFC3339), strings.Join(names(passTo), ", "))
	if err := e.saveDayOne(ctx, key, rec, &rev); err != nil {
		// Delivered: a retry would issue a second pass. Log and finish.
		e.log.Error("record the delivered day-one pass", "person_id", n.PersonID, "err", err)
	}
	tapIssuedTotal.WithLabelValues("issued").Inc()
	once := ""
	if tap.UsableOnce {
		once = "one-time, "
	}
	e.audit(ctx, auditRecord(now, "notify", Plan{PersonID: n.PersonID, UserID: n.UserID, UPN: data.Person.UPN},
		Change{Kind: IssueTAP}, ResultApplied, fmt.Sprintf("Temporary Access Pass %s issued (%svalid until %s) and mailed to %s",
			tap.ID, once, expires.Format(time.RFC3339), strings.Join(names(passTo), ", ")), nil, false))
	return nil
}

// passRecipients is where the pass goes: the manager's mailbox, the
// configured address, or the fallback (with why).
func (e *Engine) passRecipients(data rules.NoticeData) ([]recipient, string) {
	fs := e.cfg.Notify.FirstSignIn
	if fs.Recipient != rules.RecipientManager {
		return []recipient{{who: "recipient", addr: fs.Recipient}}, ""
	}
	if data.Person.ManagerMail != "" {
		return []recipient{{who: "manager", addr: data.Person.ManagerMail}}, ""
	}
	why := "the joiner has no manager in Personio"
	if data.Person.ManagerName != "" {
		why = "the manager's account has no mailbox (no mail)"
	}
	var out []recipient
	for _, a := range fs.Fallback {
		out = append(out, recipient{who: "fallback", addr: a})
	}
	return out, why
}

func names(rs []recipient) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.String()
	}
	return out
}

// usableMethod returns the first registered method a person can sign in
// with besides a password or a pass ("" when none).
func usableMethod(types []string) string {
	for _, t := range types {
		name := strings.TrimPrefix(t, "#microsoft.graph.")
		switch name {
		case "passwordAuthenticationMethod", "temporaryAccessPassAuthenticationMethod", "emailAuthenticationMethod", "":
			continue
		}
		return strings.TrimSuffix(name, "AuthenticationMethod")
	}
	return ""
}

// passFailed classifies a failure to issue: a missing permission is
// terminal (the dead letter names it), the rest is retried.
func (e *Engine) passFailed(n work.Notice, what string, err error) error {
	if errors.Is(err, ErrForbidden) {
		tapIssuedTotal.WithLabelValues("forbidden").Inc()
		return work.Terminal(fmt.Errorf("day-one pass of %s: %s: %w: the app registration needs the application permission "+
			"UserAuthenticationMethod.ReadWrite.All (or UserAuthMethod-TAP.ReadWrite.All to create passes only) with admin consent", n.PersonID, what, err))
	}
	tapIssuedTotal.WithLabelValues("failed").Inc()
	return fmt.Errorf("day-one pass of %s: %s: %w", n.PersonID, what, err)
}

// noPass tells the pass's recipients why there is none, audits it and
// closes the work.
func (e *Engine) noPass(ctx context.Context, n work.Notice, key string, rec *dayOneRecord, rev *uint64, ev *rules.NotifyEvent,
	data rules.NoticeData, to []recipient, result, why string) error {
	data.Pass.Issued, data.Pass.Note = false, why
	if err := e.sendMail(ctx, n, ev, data, to); err != nil {
		return err
	}
	tapIssuedTotal.WithLabelValues(result).Inc()
	e.audit(ctx, auditRecord(e.cfg.Now(), "notify", Plan{PersonID: n.PersonID, UserID: n.UserID, UPN: data.Person.UPN},
		Change{Kind: IssueTAP}, ResultSkipped, "no Temporary Access Pass: "+why, nil, false))
	rec.State, rec.Note = "skipped", result+": "+why
	return e.saveDayOne(ctx, key, *rec, rev)
}

// tellAdmins mails notifications.admins (else first_sign_in.fallback) that
// the tenant's policy refused the pass, naming the Entra setting.
func (e *Engine) tellAdmins(ctx context.Context, n work.Notice, data rules.NoticeData, cause error) error {
	e.log.Error("the tenant's Temporary Access Pass policy refused the day-one pass: enable it in the Entra admin center, "+
		"Protection > Authentication methods > Policies > Temporary Access Pass (target the joiners, allow the configured lifetime and one-time setting)",
		"person_id", n.PersonID, "err", cause)
	to := e.cfg.Notify.Events.Admins
	if len(to) == 0 {
		to = e.cfg.Notify.FirstSignIn.Fallback
	}
	nc := e.cfg.Notify
	if len(to) == 0 || nc.Mailer == nil || nc.Sender == "" {
		return nil
	}
	body := fmt.Sprintf("Microsoft Entra refused the day-one Temporary Access Pass for %s (%s): %v\n\n"+
		"Enable the Temporary Access Pass method for these users in the Microsoft Entra admin center: Protection > Authentication methods > Policies > "+
		"Temporary Access Pass (Enable, target the joiners' group or all users), and allow a lifetime of %d minutes%s. "+
		"Until then, issue a pass by hand: Users > %s > Authentication methods > Add authentication method.\n",
		data.Person.Name, data.Person.UPN, cause, e.cfg.Notify.FirstSignIn.LifetimeMinutes,
		map[bool]string{true: " and one-time passes", false: " and multi-use passes"}[e.cfg.Notify.FirstSignIn.UsableOnce], data.Person.UPN)
	err := nc.Mailer.SendMail(ctx, nc.Sender, Mail{To: to, Subject: "personio-entra: Temporary Access Pass policy refused the pass for " + data.Person.Name, Body: body})
	who := "admins <" + strings.Join(to, ", ") + ">"
	if err != nil {
		e.auditNotice(ctx, n, ChannelEmail, who, ResultFailed, "TAP policy refused", err)
		return fmt.Errorf("tell the admins that the TAP policy refused: %w", err)
	}
	e.auditNotice(ctx, n, ChannelEmail, who, ResultApplied, "TAP policy refused the pass: admins told", nil)
	return nil
}
