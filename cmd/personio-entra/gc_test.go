package main

import (
	"io"
	"log/slog"
	"runtime/debug"
	"testing"
)

// The receiver collects at GOGC=400 unless GOGC is set, which wins.
func TestReceiverGCPercent(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "GOGC" {
				return v
			}
			return ""
		}
	}
	if got := tuneReceiverGC(env(""), log); got != 400 {
		t.Errorf("without GOGC: %d, want 400", got)
	}
	if got := debug.SetGCPercent(100); got != 400 {
		t.Errorf("runtime GC percent %d after tuning, want 400", got)
	}
	debug.SetGCPercent(150) // as the runtime would have read GOGC=150
	if got := tuneReceiverGC(env("150"), log); got != 150 {
		t.Errorf("with GOGC=150: %d, want 150", got)
	}
	if got := debug.SetGCPercent(100); got != 150 {
		t.Errorf("runtime GC percent %d with GOGC=150 set, want it left alone", got)
	}
}
