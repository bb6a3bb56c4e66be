package main

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"
)

// The admin API shares the webhook listener, whose timeouts suit webhooks;
// an admin call that takes longer still gets its answer.
func TestAdminOutlastsListenerTimeouts(t *testing.T) {
	saved := listenerTimeouts
	listenerTimeouts.read, listenerTimeouts.write = 400*time.Millisecond, 400*time.Millisecond
	t.Cleanup(func() { listenerTimeouts = saved })
	s := newTestStack(t, stackOptions{latency: 100 * time.Millisecond})

	start := time.Now()
	status, body, err := adminRequest(t, s, http.MethodGet, "/plan")
	took := time.Since(start)
	if err != nil {
		t.Fatalf("GET /admin/plan (took %s, listener write timeout %s): %v", took, listenerTimeouts.write, err)
	}
	if took <= listenerTimeouts.write {
		t.Fatalf("the plan took %s, not longer than the listener timeout %s: the test proves nothing", took, listenerTimeouts.write)
	}
	var plans []json.RawMessage
	if status != http.StatusOK || json.Unmarshal(body, &plans) != nil {
		t.Fatalf("GET /admin/plan: status %d body %.300s", status, body)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatal("answer cut off")
	}
}
