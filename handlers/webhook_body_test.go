package handlers

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A body shorter than its Content-Length is refused, even when the part
// that arrived is a complete delivery: it is not what the sender meant to
// send. Nothing is queued.
func TestWebhookBodyShorterThanAnnounced(t *testing.T) {
	e := newEnv(t, WebhookConfig{Tokens: []string{tokenOld}, CompanyID: company})
	body := delivery("person.updated", `{"person":{"id":"5005"}}`)
	c, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		WebhookPath, tokenOld, len(body)+10, body)
	_ = c.(*net.TCPConn).CloseWrite()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("status %d, want 400", resp.StatusCode)
	}
	if got := e.streamMsgs(t); len(got) != 0 {
		t.Errorf("queued %v", got)
	}
}

// Bodies of any length up to the limit arrive whole, with and without a
// Content-Length (chunked).
func TestWebhookBodyLengths(t *testing.T) {
	e := newEnv(t, WebhookConfig{Tokens: []string{tokenOld}, CompanyID: company, MaxBodyBytes: 4096})
	pad := func(n int, chunked bool) string {
		return delivery("person.updated", fmt.Sprintf(`{"person":{"id":"5005","chunked":%t,"pad":%q}}`, chunked, strings.Repeat("x", n)))
	}
	for _, n := range []int{0, 1000, 3900, 4100} {
		for _, chunked := range []bool{false, true} {
			body := pad(n, chunked)
			req, _ := http.NewRequest(http.MethodPost, e.srv.URL+WebhookPath, strings.NewReader(body))
			if chunked {
				req.ContentLength = -1
				req.Body = io.NopCloser(struct{ io.Reader }{strings.NewReader(body)})
			}
			req.Header.Set("Authorization", tokenOld)
			req.Header.Set("Content-Type", "application/json")
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			want := http.StatusAccepted
			if len(body) > 4096 {
				want = http.StatusRequestEntityTooLarge
			}
			if resp.StatusCode != want {
				t.Errorf("%d bytes, chunked %t: status %d, want %d", len(body), chunked, resp.StatusCode, want)
			}
		}
	}
}
