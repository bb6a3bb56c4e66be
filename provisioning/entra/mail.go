package entra

import (
	"context"
	"errors"
	"net/http"

	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/personio-entra/personio-entra/provisioning"
)

var _ provisioning.Mailer = (*Directory)(nil)

// SendMail sends a plain-text message as the sender's mailbox
// (https://learn.microsoft.com/en-us/graph/api/user-sendmail), saved to its
// Sent Items. Graph answers 202: Exchange delivers afterwards. The message
// body may hold a pass, so neither the body nor the request reaches a log
// line or an error: only the status and Graph's code and message do.
func (d *Directory) SendMail(ctx context.Context, sender string, m provisioning.Mail) error {
	ctx = withOp(ctx, "send mail")
	msg := models.NewMessage()
	subject, content := m.Subject, m.Body
	msg.SetSubject(&subject)
	body := models.NewItemBody()
	ct := models.TEXT_BODYTYPE
	body.SetContentType(&ct)
	body.SetContent(&content)
	msg.SetBody(body)
	var to []models.Recipientable
	for _, a := range m.To {
		addr := a
		ea := models.NewEmailAddress()
		ea.SetAddress(&addr)
		r := models.NewRecipient()
		r.SetEmailAddress(ea)
		to = append(to, r)
	}
	msg.SetToRecipients(to)
	req := users.NewItemSendMailPostRequestBody()
	req.SetMessage(msg)
	save := !m.NoCopy
	req.SetSaveToSentItems(&save)
	err := d.client.Users().ByUserId(sender).SendMail().Post(ctx, req, nil)
	if err == nil {
		return nil
	}
	de := d.fail("send mail as "+sender, err)
	if g, ok := inspect(err); ok && g.status == http.StatusNotFound {
		return errors.Join(provisioning.ErrNoMailbox, de)
	}
	return de
}
