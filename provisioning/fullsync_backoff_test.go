package provisioning

import (
	"testing"
	"time"
)

// After a failed complete sync the next complete attempt waits
// min(CompleteEvery, 15 min · 2^(failures-1)); the runs in between are
// incremental.
func TestCompleteSyncBackoff(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	every := 24 * time.Hour
	ok := syncState{LastSync: t0.Add(-time.Hour), LastComplete: t0.Add(-25 * time.Hour)}
	failed := func(n int) syncState {
		s := ok
		s.LastCompleteAttempt, s.CompleteFailures = t0, n
		return s
	}
	tests := []struct {
		name string
		st   syncState
		at   time.Time
		want bool
	}{
		{"never synced", syncState{}, t0, true},
		{"complete older than every", ok, t0, true},
		{"complete fresh", syncState{LastSync: t0, LastComplete: t0.Add(-time.Hour)}, t0.Add(time.Minute), false},
		{"one failure, 14 min later", failed(1), t0.Add(14 * time.Minute), false},
		{"one failure, 15 min later", failed(1), t0.Add(15 * time.Minute), true},
		{"two failures, 20 min later", failed(2), t0.Add(20 * time.Minute), false},
		{"two failures, 30 min later", failed(2), t0.Add(30 * time.Minute), true},
		{"three failures, 59 min later", failed(3), t0.Add(59 * time.Minute), false},
		{"many failures cap at every", failed(40), t0.Add(every - time.Minute), false},
		{"many failures, every later", failed(40), t0.Add(every), true},
		{"failed but never synced", syncState{LastCompleteAttempt: t0, CompleteFailures: 1}, t0.Add(time.Minute), true},
	}
	for _, tc := range tests {
		if got := tc.st.completeDue(tc.at, every); got != tc.want {
			t.Errorf("%s: completeDue = %t, want %t", tc.name, got, tc.want)
		}
	}
}
