package main

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/personio-entra/personio-entra/handlers"
	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/queue"
	"github.com/personio-entra/personio-entra/queue/work"
)

// The admin backend types its errors: an outage is a 503, not a 404.
func TestAdminErrorTypes(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		notFound bool
		unavail  bool
	}{
		{"unknown approval", fmt.Errorf("approve: %w", provisioning.ErrNoApproval), true, false},
		{"unknown dead letter", fmt.Errorf("queue: %w", queue.ErrNoDeadLetter), true, false},
		{"NATS down", errors.New("nats: timeout"), false, true},
		{"Personio down", errors.New("read employee: 503 Service Unavailable"), false, true},
		{"invalid request", work.Terminal(errors.New("invalid person id")), false, false},
		{"timed out", context.DeadlineExceeded, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := adminError(tt.err)
			if errors.Is(got, handlers.ErrNotFound) != tt.notFound || errors.Is(got, handlers.ErrUnavailable) != tt.unavail {
				t.Errorf("adminError(%v) = %v: not found %t, unavailable %t", tt.err, got, errors.Is(got, handlers.ErrNotFound), errors.Is(got, handlers.ErrUnavailable))
			}
			if !errors.Is(got, tt.err) {
				t.Errorf("adminError lost the cause: %v", got)
			}
		})
	}
	if adminError(nil) != nil {
		t.Error("adminError(nil) != nil")
	}
}
