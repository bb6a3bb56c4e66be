package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// rawStream is the stream the raw publishes go to; it is created for the
// run and deleted after it, so the product's streams are never touched.
const (
	rawStream  = "LOADGEN_RAW"
	rawSubject = "loadgen.raw."
)

// loopbackNATS refuses anything but nats:// to 127.0.0.0/8, ::1 or localhost.
func loopbackNATS(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("-nats %q: %w", raw, err)
	}
	if u.Scheme != "nats" {
		return fmt.Errorf("-nats %q: want nats://host:port", raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-nats %q: loadgen only targets loopback addresses (127.0.0.1, ::1, localhost)", raw)
	}
	return nil
}

// loadJetStream publishes the deliveries the webhook senders would post
// straight into a file-backed stream, each publish synchronous and
// acknowledged, with a message id (de-duplication, as the receiver
// publishes), closed loop with o.senders senders.
func loadJetStream(ctx context.Context, o options) (report, error) {
	nc, err := nats.Connect(o.natsURL, nats.Name("loadgen"))
	if err != nil {
		return report{}, fmt.Errorf("connect %s: %w", o.natsURL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return report{}, err
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(sctx, jetstream.StreamConfig{Name: rawStream, Subjects: []string{rawSubject + ">"},
		Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute}); err != nil {
		return report{}, fmt.Errorf("create stream %s: %w", rawStream, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := js.DeleteStream(dctx, rawStream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			fmt.Printf("loadgen: delete stream %s: %v\n", rawStream, err)
		}
	}()
	base := time.Now().UTC()
	env := newEnvelopes(o.company)
	rep := closedLoop(ctx, o, func() (func(int) string, func()) {
		return func(i int) string {
			id := strconv.Itoa(o.firstID + i%o.people)
			msg := nats.NewMsg(rawSubject + id)
			msg.Data = env.append(nil, i%len(events), id, base.Add(time.Duration(i)))
			msg.Header.Set("Personio-Entra-Reason", events[i%len(events)])
			pctx, cancel := context.WithTimeout(ctx, o.timeout)
			defer cancel()
			if _, err := js.PublishMsg(pctx, msg, jetstream.WithMsgID(strconv.Itoa(i)+"-"+base.Format(time.RFC3339Nano))); err != nil {
				if errors.Is(err, context.DeadlineExceeded) {
					return "timeout"
				}
				return "error"
			}
			return "ack"
		}, func() {}
	})
	return rep, nil
}
