package provisioning_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/personio-entra/personio-entra/provisioning/model"
	"github.com/personio-entra/personio-entra/queue/work"
)

// fakeCoverage hands out marks in order and records what was covered;
// onMark runs at each Mark (to change Personio at that point).
type fakeCoverage struct {
	marks   []uint64
	n       int
	onMark  func(n int)
	covered []uint64
}

func (c *fakeCoverage) Mark(context.Context) (uint64, bool) {
	if c.onMark != nil {
		c.onMark(c.n)
	}
	m := c.marks[min(c.n, len(c.marks)-1)]
	c.n++
	return m, true
}

func (c *fakeCoverage) Cover(mark uint64) { c.covered = append(c.covered, mark) }

// Handle tells the queue what its Personio read covers: the mark taken
// before the read once the reconcile succeeded, and, when more work for the
// person was stored while it ran, the later mark only if a second read
// finds Personio unchanged. A failed reconcile covers nothing.
func TestHandleCoversWhatItRead(t *testing.T) {
	tests := []struct {
		name        string
		marks       []uint64
		changeAt    int // Mark call at which Personio changes (-1: never)
		fail        bool
		wantCovered []uint64
	}{
		{name: "nothing arrived during the run", marks: []uint64{5, 5}, changeAt: -1, wantCovered: []uint64{5}},
		{name: "more webhooks arrived, Personio unchanged", marks: []uint64{5, 7}, changeAt: -1, wantCovered: []uint64{5, 7}},
		{name: "more webhooks arrived, Personio changed during the run", marks: []uint64{5, 7}, changeAt: 1, wantCovered: []uint64{5}},
		{name: "the reconcile failed", marks: []uint64{5, 7}, changeAt: -1, fail: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newEngineEnv(t)
			env.src.Set(employee("1", "Ada", "Lovelace"))
			if tc.fail {
				env.dir.Fail("CreateUser", errors.New("graph is down"))
			}
			cov := &fakeCoverage{marks: tc.marks, onMark: func(n int) {
				if n == tc.changeAt {
					env.src.Set(employee("1", "Ada", "Lovelace", func(e *model.Employee) { e.Position = "Engineer" }))
				}
			}}
			ctx := work.WithCoverage(work.WithInfo(context.Background(), work.Info{PersonID: "1", Reason: "employment.updated", Attempt: 1}), cov)
			_, err := env.eng.Handle(ctx, "1")
			if (err != nil) != tc.fail {
				t.Fatalf("Handle: %v", err)
			}
			if !slices.Equal(cov.covered, tc.wantCovered) {
				t.Errorf("covered %v, want %v", cov.covered, tc.wantCovered)
			}
		})
	}
}
