package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/personio-entra/personio-entra/handlers"
)

func TestParseClosedLoopAndNATS(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		ok   bool
	}{
		{"closed loop", []string{"-token", "t", "-senders", "32"}, true},
		{"too many senders", []string{"-token", "t", "-senders", "5000"}, false},
		{"raw JetStream needs no token", []string{"-token", "", "-nats", "nats://127.0.0.1:4222", "-senders", "32"}, true},
		{"raw JetStream needs senders", []string{"-nats", "nats://127.0.0.1:4222"}, false},
		{"raw JetStream only on loopback", []string{"-nats", "nats://192.0.2.1:4222", "-senders", "4"}, false},
		{"raw JetStream wants nats://", []string{"-nats", "http://127.0.0.1:4222", "-senders", "4"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parse(tc.args, io.Discard); (err == nil) != tc.ok {
				t.Errorf("parse(%v) = %v, want ok=%t", tc.args, err, tc.ok)
			}
		})
	}
}

// Closed loop: never more than -senders deliveries in flight, every one
// valid, bounded by -max-requests.
func TestClosedLoopKeepsSendersBusy(t *testing.T) {
	const token = "loadgen-test-token-0123456789"
	var inFlight, most, n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cur := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); cur > m && !most.CompareAndSwap(m, cur); m = most.Load() {
		}
		n.Add(1)
		body, _ := io.ReadAll(r.Body)
		if _, err := handlers.ParseEnvelope(body); err != nil || r.Header.Get("Authorization") != token {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		time.Sleep(2 * time.Millisecond)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	rep := loadClosed(context.Background(), options{url: srv.URL, token: token, company: "4242", duration: 10 * time.Second,
		people: 50, firstID: 100000, maxRequests: 300, senders: 8, timeout: 3 * time.Second})
	if rep.Sent != 300 || rep.Statuses["202"] != 300 || n.Load() != 300 {
		t.Fatalf("sent %d, statuses %v, server saw %d; want 300 accepted", rep.Sent, rep.Statuses, n.Load())
	}
	if m := most.Load(); m > 8 || m < 2 {
		t.Fatalf("at most %d deliveries in flight, want 2 to 8 (8 senders)", m)
	}
}

// Raw mode publishes acknowledged messages into a stream of its own and
// deletes it afterwards.
func TestRawJetStreamPublishes(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS did not start")
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	rep, err := loadJetStream(context.Background(), options{natsURL: ns.ClientURL(), company: "4242", duration: 10 * time.Second,
		people: 50, firstID: 100000, maxRequests: 200, senders: 4, timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sent != 200 || rep.Statuses["ack"] != 200 {
		t.Fatalf("sent %d, statuses %v; want 200 acknowledged", rep.Sent, rep.Statuses)
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.Stream(context.Background(), rawStream); err == nil {
		t.Fatalf("stream %s left behind", rawStream)
	}
}
