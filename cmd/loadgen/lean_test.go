package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/handlers"
)

// The appended bodies are the bytes json.Marshal gives for the envelope
// as a map, and valid deliveries for the receiver's parser.
func TestEnvelopesMatchJSONMarshal(t *testing.T) {
	at := time.Date(2026, 11, 27, 9, 30, 12, 123456789, time.UTC)
	for _, company := range []string{"4242", `odd "company" <&>`} {
		env := newEnvelopes(company)
		for ev, name := range events {
			payload := map[string]any{"person": map[string]string{"id": "100007"}}
			if strings.HasPrefix(name, "employment.") {
				payload["employment"] = map[string]string{"id": "e100007-0"}
			}
			want, _ := json.Marshal(map[string]any{"company_id": company, "event_name": name,
				"occurred_at": at.Format(time.RFC3339Nano), "payload": payload, "meta": map[string]any{}})
			got := env.append([]byte("junk"), ev, "100007", at)[len("junk"):]
			if string(got) != string(want) {
				t.Errorf("%s/%s:\n got %s\nwant %s", company, name, got, want)
			}
			if _, err := handlers.ParseEnvelope(got); err != nil {
				t.Errorf("%s/%s: the receiver refuses the body: %v", company, name, err)
			}
		}
	}
}

// The lean client reads Content-Length, chunked and close-delimited
// answers, reuses its connection, and redials after the server closed it.
func TestLeanClientAnswers(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.Header.Get("Authorization") != "tok" ||
			r.Header.Get("Content-Type") != "application/json" || string(body) != `{"n":1}` {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		switch r.URL.Query().Get("mode") {
		case "chunked":
			w.WriteHeader(http.StatusAccepted)
			for range 3 {
				fmt.Fprint(w, strings.Repeat("x", 100))
				w.(http.Flusher).Flush()
			}
		case "close":
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, "bye")
		default:
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprint(w, `{"status":"accepted"}`)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	var one *leanConn
	for i, tc := range []struct {
		mode, want string
		conns      int64
	}{
		{"", "202", 1},
		{"", "202", 1},
		{"chunked", "202", 1},
		{"", "202", 1},
		{"close", "503", 1},
		{"", "202", 2}, // redialled after the close
	} {
		// One connection object throughout: the mode travels in the path.
		if one == nil {
			var err error
			if one, err = newLeanConn(srv.URL+"/hook", "tok", 2*time.Second); err != nil {
				t.Fatal(err)
			}
		}
		one.path = "/hook?mode=" + tc.mode
		if got := one.post([]byte(`{"n":1}`)); got != tc.want {
			t.Errorf("request %d (%q): status %s, want %s", i, tc.mode, got, tc.want)
		}
		if got := conns.Load(); got != tc.conns {
			t.Errorf("request %d (%q): %d connections, want %d", i, tc.mode, got, tc.conns)
		}
	}
	one.close()
}

// A server that answers garbage or not at all gives a transport error or
// a timeout, not a hang.
func TestLeanClientBadServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for i := 0; ; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn, i int) {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					l, err := r.ReadString('\n')
					if err != nil || l == "\r\n" {
						break
					}
				}
				if i == 0 {
					fmt.Fprint(c, "SPDY/9 what\r\n\r\n")
					return
				}
				time.Sleep(2 * time.Second) // never answers in time
			}(c, i)
		}
	}()
	lc, err := newLeanConn("http://"+ln.Addr().String()+"/x", "tok", 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if got := lc.post([]byte("{}")); got != "transport error" {
		t.Errorf("garbage answer: %s, want transport error", got)
	}
	if got := lc.post([]byte("{}")); got != "timeout" {
		t.Errorf("no answer: %s, want timeout", got)
	}
}

// Closed loop through the lean client against the real receiver handler.
func TestClosedLoopLeanClient(t *testing.T) {
	const token = "loadgen-test-token-0123456789"
	var bad atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if _, err := handlers.ParseEnvelope(body); err != nil || r.Header.Get("Authorization") != token {
			bad.Add(1)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	rep := loadClosed(context.Background(), options{url: srv.URL, token: token, company: "4242", duration: 10 * time.Second,
		people: 10, firstID: 100000, maxRequests: 300, senders: 4, timeout: 2 * time.Second, client: clientLean})
	if rep.Sent != 300 || rep.Statuses["202"] != 300 || bad.Load() != 0 {
		t.Errorf("sent %d, statuses %v, refused %d; want 300 accepted", rep.Sent, rep.Statuses, bad.Load())
	}
}
