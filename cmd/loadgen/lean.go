package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"time"
)

// A wrk-style HTTP/1.1 client: one keep-alive connection per sender, the
// request written with one write from a reused buffer, the answer read
// with a reused reader. Closed-loop runs use it by default (-client lean)
// so the load generator's own CPU stays small beside the receiver's, as
// wrk's does; -client std uses net/http instead.
//
// It speaks exactly what the measurement needs: POST with a
// Content-Length body; answers with Content-Length or chunked bodies; a
// connection the server closes (or that fails) is redialled for the next
// delivery. http only: an https URL uses net/http.

type leanConn struct {
	addr, host, path, token string
	timeout                 time.Duration

	c   net.Conn
	br  *bufio.Reader
	req []byte
}

func newLeanConn(target, token string, timeout time.Duration) (*leanConn, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("lean client: %s: only http", target)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	path := u.RequestURI()
	return &leanConn{addr: addr, host: u.Host, path: path, token: token, timeout: timeout}, nil
}

// post sends one delivery and returns its status key ("202", "timeout",
// "transport error").
func (l *leanConn) post(body []byte) string {
	status, err := l.roundTrip(body)
	if err != nil {
		l.close()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return "timeout"
		}
		return "transport error"
	}
	return strconv.Itoa(status)
}

func (l *leanConn) close() {
	if l.c != nil {
		_ = l.c.Close()
		l.c = nil
	}
}

func (l *leanConn) roundTrip(body []byte) (int, error) {
	if l.c == nil {
		c, err := net.DialTimeout("tcp", l.addr, l.timeout)
		if err != nil {
			return 0, err
		}
		l.c = c
		if l.br == nil {
			l.br = bufio.NewReaderSize(c, 4096)
		} else {
			l.br.Reset(c)
		}
	}
	if err := l.c.SetDeadline(time.Now().Add(l.timeout)); err != nil {
		return 0, err
	}
	b := l.req[:0]
	b = append(b, "POST "...)
	b = append(b, l.path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, l.host...)
	b = append(b, "\r\nContent-Type: application/json\r\nAuthorization: "...)
	b = append(b, l.token...)
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	b = append(b, body...)
	l.req = b
	if _, err := l.c.Write(b); err != nil {
		return 0, err
	}
	return l.readResponse()
}

// readResponse reads one answer: status line, headers, body.
func (l *leanConn) readResponse() (int, error) {
	line, err := l.line()
	if err != nil {
		return 0, err
	}
	// "HTTP/1.1 202 Accepted"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, fmt.Errorf("malformed status line %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, fmt.Errorf("malformed status line %q", line)
	}
	length, chunked, closing := int64(-1), false, false
	for {
		h, err := l.line()
		if err != nil {
			return 0, err
		}
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return 0, fmt.Errorf("malformed header %q", h)
		}
		value = bytes.TrimSpace(value)
		switch {
		case asciiEqualFold(name, "content-length"):
			if length, err = strconv.ParseInt(string(value), 10, 64); err != nil || length < 0 {
				return 0, fmt.Errorf("malformed Content-Length %q", value)
			}
		case asciiEqualFold(name, "transfer-encoding"):
			chunked = asciiEqualFold(value, "chunked")
		case asciiEqualFold(name, "connection"):
			closing = asciiEqualFold(value, "close")
		}
	}
	switch {
	case chunked:
		err = l.discardChunked()
	case length >= 0:
		_, err = l.br.Discard(int(length))
	default: // body until close
		_, err = io.Copy(io.Discard, l.br)
		closing = true
	}
	if err != nil {
		return 0, err
	}
	if closing {
		l.close()
	}
	return status, nil
}

func (l *leanConn) discardChunked() error {
	for {
		line, err := l.line()
		if err != nil {
			return err
		}
		size, _, _ := bytes.Cut(line, []byte(";"))
		n, err := strconv.ParseInt(string(bytes.TrimSpace(size)), 16, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("malformed chunk size %q", line)
		}
		if n == 0 { // trailers until the blank line
			for {
				t, err := l.line()
				if err != nil {
					return err
				}
				if len(t) == 0 {
					return nil
				}
			}
		}
		if _, err := l.br.Discard(int(n)); err != nil {
			return err
		}
		if crlf, err := l.line(); err != nil || len(crlf) != 0 {
			return fmt.Errorf("chunk not followed by CRLF")
		}
	}
}

// line returns the next line without its CRLF (valid until the next read).
func (l *leanConn) line() ([]byte, error) {
	b, err := l.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, errors.New("header line longer than 4096 bytes")
		}
		return nil, err
	}
	b = b[:len(b)-1]
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b, nil
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
