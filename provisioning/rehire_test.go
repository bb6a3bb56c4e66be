package provisioning

import (
	"github.com/personio-entra/personio-entra/queue/work"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/rules"
)

func TestCheckRehire(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	e := &Engine{cfg: Config{RehireWithin: 180 * 24 * time.Hour}}
	active := rules.Desired{PersonID: "1", AccountEnabled: true}
	disabled := func(left string) *User {
		u := &User{ID: "u1", UserPrincipalName: "a@example.com", Attributes: map[string]string{}}
		if left != "" {
			u.Attributes[leaveDateProperty] = left
		}
		return u
	}
	tests := []struct {
		name string
		u    *User
		d    rules.Desired
		stop bool
	}{
		{"no account", nil, active, false},
		{"enabled account", &User{AccountEnabled: true}, active, false},
		{"left 30 days ago", disabled("2026-10-28T00:00:00Z"), active, false},
		{"left a year ago", disabled("2025-11-01T00:00:00Z"), active, true},
		{"no recorded leave date", disabled(""), active, false},
		{"still a leaver", disabled("2025-11-01T00:00:00Z"), rules.Desired{PersonID: "1"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := e.checkRehire(tt.u, tt.d, now)
			if (err != nil) != tt.stop {
				t.Fatalf("err = %v, want stop=%v", err, tt.stop)
			}
			if err != nil && !work.IsTerminal(err) {
				t.Errorf("a rehire outside the window must not be retried: %v", err)
			}
		})
	}
	e.cfg.RehireWithin = 0
	if err := e.checkRehire(disabled("2020-01-01T00:00:00Z"), active, now); err != nil {
		t.Errorf("window 0 must always reactivate: %v", err)
	}
}
