package main

import (
	"log/slog"
	"runtime/debug"
	"strings"
)

// receiverGCPercent is the garbage collector target of the receiver-only
// process (`serve`). The receiver keeps almost nothing alive — a few
// megabytes of connections and buffers — and allocates a few kilobytes
// per delivery, so at Go's default (GOGC=100: collect when the heap
// doubles) it collects dozens of times a second under load. At 400 it
// collected a quarter as often for 11 MB more resident memory in the
// measurement in BENCHMARKS.md ("Receiver against raw JetStream
// publishes, with wrk"). Workers keep Go's default: their heap is the complete
// sync's, which is sized with GOMEMLIMIT instead (README, Operations).
const receiverGCPercent = 400

// tuneReceiverGC sets receiverGCPercent unless GOGC is set in the
// environment, which always wins. It returns the percent in effect.
func tuneReceiverGC(getenv func(string) string, log *slog.Logger) int {
	if v := strings.TrimSpace(getenv("GOGC")); v != "" {
		cur := debug.SetGCPercent(100)
		debug.SetGCPercent(cur)
		return cur
	}
	debug.SetGCPercent(receiverGCPercent)
	log.Debug("receiver garbage collector target set", slog.Int("gc_percent", receiverGCPercent))
	return receiverGCPercent
}
