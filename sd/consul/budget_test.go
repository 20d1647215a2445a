package consul

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBudget(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type step struct {
		at      time.Duration
		op      string // refused, grow
		open    int    // refused: connections open, the refused one included
		changed bool
		now     int           // the budget in force afterwards
		next    time.Duration // when it may grow next; -1 for never
	}
	const never = -1
	tests := []struct {
		name  string
		max   int
		steps []step
	}{
		{"full until refused", 64, []step{
			{at: 0, op: "grow", changed: false, now: 64, next: never},
		}},
		{"a refusal gives back headroom below what the agent granted", 64, []step{
			{at: 0, op: "refused", open: 21, changed: true, now: 12, next: ceilingFor}, // granted 20, less 8
			{at: time.Second, op: "refused", open: 13, changed: true, now: 5, next: time.Second + ceilingFor},
			{at: 2 * time.Second, op: "refused", open: 6, changed: false, now: 5, next: 2*time.Second + ceilingFor}, // never below the minimum
		}},
		{"a refusal above the budget in force changes nothing", 64, []step{
			{at: 0, op: "refused", open: 41, changed: true, now: 32},
			{at: time.Second, op: "refused", open: 50, changed: false, now: 32, next: time.Second + ceilingFor},
		}},
		{"it grows back slowly once refusals stop", 64, []step{
			{at: 0, op: "refused", open: 41, changed: true, now: 32, next: ceilingFor},
			{at: 9 * time.Minute, op: "grow", changed: false, now: 32, next: ceilingFor},
			{at: 10 * time.Minute, op: "grow", changed: true, now: 33, next: 11 * time.Minute},
			{at: 10*time.Minute + 30*time.Second, op: "grow", changed: false, now: 33, next: 11 * time.Minute},
			{at: 11 * time.Minute, op: "grow", changed: true, now: 34, next: 12 * time.Minute},
			{at: 11*time.Minute + time.Second, op: "refused", open: 35, changed: true, now: 26, next: 21*time.Minute + time.Second}, // a refusal on the way up marks a new ceiling
		}},
		{"never above the configured budget", 8, []step{
			{at: 0, op: "refused", open: 8, changed: true, now: 5, next: ceilingFor}, // granted 7, less 4 is 3: the minimum
			{at: 10 * time.Minute, op: "grow", changed: true, now: 6},
			{at: 11 * time.Minute, op: "grow", changed: true, now: 7},
			{at: 12 * time.Minute, op: "grow", changed: true, now: 8, next: never},
			{at: 13 * time.Minute, op: "grow", changed: false, now: 8, next: never},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBudget(tc.max)
			for i, s := range tc.steps {
				now := t0.Add(s.at)
				var changed bool
				switch s.op {
				case "refused":
					changed = b.refused(now, s.open)
				case "grow":
					changed = b.grow(now)
				}
				require.Equal(t, s.changed, changed, "step %d: changed", i)
				require.Equal(t, s.now, b.now, "step %d: budget", i)
				switch {
				case s.next == never:
					require.True(t, b.next().IsZero(), "step %d: full", i)
				case s.next > 0:
					require.Equal(t, t0.Add(s.next), b.next(), "step %d: next", i)
				}
			}
		})
	}
}
