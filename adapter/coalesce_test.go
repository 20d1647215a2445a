package adapter

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCoalescer(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	type step struct {
		at      int  // ms after t0
		change  bool // a change arrives
		wantDue bool // then: is a hand-out due?
		next    int  // and when (-1: not at all)
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"the first change is handed out at once", []step{
			{0, false, false, -1},
			{10, true, true, 0},
		}},
		{"a change within the interval waits for its end", []step{
			{0, true, true, 0},
			{100, true, false, 500},
			{499, false, false, 500},
			{500, false, true, 500},
		}},
		{"a change after a quiet interval goes at once", []step{
			{0, true, true, 0},
			{700, true, true, 500},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &coalescer{interval: 500 * time.Millisecond}
			for i, s := range tc.steps {
				now := at(s.at)
				if s.change {
					c.changed()
				}
				require.Equal(t, s.wantDue, c.due(now), "step %d: due", i)
				if s.next < 0 {
					require.True(t, c.next().IsZero(), "step %d: nothing pending", i)
				} else if !c.last.IsZero() {
					require.Equal(t, at(s.next), c.next(), "step %d: next", i)
				}
				if s.wantDue {
					c.handedOut(now)
					require.True(t, c.next().IsZero(), "step %d: nothing left after the hand-out", i)
				}
			}
		})
	}
}
