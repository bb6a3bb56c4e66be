package entratest

import (
	"net/http"
	"slices"
	"strings"
	"time"
)

// SentMail is one message the simulator accepted through sendMail: what
// Exchange Online would deliver.
type SentMail struct {
	ID              string    `json:"id"`
	From            string    `json:"from"` // the sender as addressed: id or UPN
	FromAddress     string    `json:"fromAddress"`
	To              []string  `json:"to"`
	Subject         string    `json:"subject"`
	ContentType     string    `json:"contentType"`
	Body            string    `json:"body"`
	SaveToSentItems bool      `json:"saveToSentItems"`
	Time            time.Time `json:"time"`
}

// Outbox returns every message sent so far, oldest first.
func (s *Server) Outbox() []SentMail {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SentMail, len(s.outbox))
	for i, m := range s.outbox {
		m.To = slices.Clone(m.To)
		out[i] = m
	}
	return out
}

// SetMailbox gives a user an Exchange Online mailbox with the address (its
// mail property), or takes it away with "".
func (s *Server) SetMailbox(userID, address string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.users[userID]
	if !ok {
		return false
	}
	if address == "" {
		delete(o.props, "mail")
	} else {
		o.props["mail"] = address
	}
	s.seq++
	o.seq = s.seq
	return true
}

// sendMail follows https://learn.microsoft.com/en-us/graph/api/user-sendmail:
// Mail.Send is needed, the sender must have a mailbox (a user without one
// answers 404 MailboxNotEnabledForRESTAPI), at least one recipient, and the
// answer is 202 without a body.
func (s *Server) sendMail(c *reqCtx, key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !c.hasRole(PermMailSend) {
		c.graphError(http.StatusForbidden, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
		return http.StatusForbidden
	}
	o, st := s.userOr404(c, key)
	if o == nil {
		return st
	}
	from, _ := o.props["mail"].(string)
	if from == "" {
		c.graphError(http.StatusNotFound, "MailboxNotEnabledForRESTAPI", "The mailbox is either inactive, soft-deleted, or is hosted on-premise.")
		return http.StatusNotFound
	}
	// Action parameters are matched without regard to case: the docs write
	// "message", the Go SDK sends "Message".
	msg, _ := fold(c.body, "message").(map[string]any)
	if msg == nil {
		c.graphError(http.StatusBadRequest, "ErrorInvalidRequest", "The message is missing.")
		return http.StatusBadRequest
	}
	m := SentMail{ID: newID(), From: key, FromAddress: from, Time: time.Now().UTC(), SaveToSentItems: true}
	if v, ok := fold(c.body, "saveToSentItems").(bool); ok {
		m.SaveToSentItems = v
	}
	m.Subject, _ = msg["subject"].(string)
	if b, ok := msg["body"].(map[string]any); ok {
		m.ContentType, _ = b["contentType"].(string)
		m.Body, _ = b["content"].(string)
	}
	rcpts, _ := msg["toRecipients"].([]any)
	for _, r := range rcpts {
		rm, _ := r.(map[string]any)
		ea, _ := rm["emailAddress"].(map[string]any)
		if a, _ := ea["address"].(string); strings.Contains(a, "@") {
			m.To = append(m.To, a)
		}
	}
	if len(m.To) == 0 {
		c.graphError(http.StatusBadRequest, "ErrorInvalidRecipients", "At least one recipient is not valid., Recipient is missing an address.")
		return http.StatusBadRequest
	}
	s.outbox = append(s.outbox, m)
	c.w.WriteHeader(http.StatusAccepted)
	return http.StatusAccepted
}

// fold returns the value of key in m, the key matched without regard to case.
func fold(m map[string]any, key string) any {
	if v, ok := m[key]; ok {
		return v
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return nil
}
