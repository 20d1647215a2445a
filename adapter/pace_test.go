package adapter

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestPacer walks the pacer through series of changes and writes. Times
// are milliseconds after a fixed start.
func TestPacer(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	type step struct {
		at   int    // ms
		op   string // change, write (a hand-out from at to at+took), check
		took int    // write: ms
		size int    // write: bytes
		busy bool   // write: a change came meanwhile
		due  bool   // check: is a hand-out due?
		next int    // check: when (-1: nothing pending)
	}
	const none = -1
	tests := []struct {
		name     string
		interval time.Duration
		steps    []step
	}{
		{"a change after a quiet period goes at once", 500 * time.Millisecond, []step{
			{at: 0, op: "check", due: false, next: none},
			{at: 0, op: "change"},
			{at: 0, op: "check", due: true},
		}},
		{"changes that each wait for the previous write go at once", 500 * time.Millisecond, []step{
			{at: 0, op: "change"}, {at: 0, op: "write", took: 2},
			{at: 5, op: "change"}, {at: 5, op: "check", due: true},
			{at: 5, op: "write", took: 2},
			{at: 9, op: "change"}, {at: 9, op: "check", due: true},
		}},
		{"a burst spaces writes from 100ms, four times more each, up to the interval", 500 * time.Millisecond, []step{
			{at: 0, op: "change"}, {at: 0, op: "write", took: 2, busy: true},
			{at: 2, op: "change"}, {at: 50, op: "check", due: false, next: 102},
			{at: 102, op: "check", due: true}, {at: 102, op: "write", took: 2, busy: true},
			{at: 104, op: "change"}, {at: 400, op: "check", due: false, next: 504},
			{at: 504, op: "write", took: 2, busy: true},
			{at: 506, op: "change"}, {at: 600, op: "check", due: false, next: 1006}, // capped at the interval
			{at: 1006, op: "write", took: 2, busy: false},
			{at: 1100, op: "change"}, {at: 1100, op: "check", due: false, next: 1508}, // within a gap of the last write: still a burst
			{at: 1508, op: "write", took: 2},
			{at: 2100, op: "change"}, {at: 2100, op: "check", due: true}, // quiet for a whole gap: at once
		}},
		{"a large file waits ten times its cost during a burst", 500 * time.Millisecond, []step{
			{at: 0, op: "change"}, {at: 0, op: "write", took: 50, size: 35 << 20, busy: true}, // cost 50ms + 700ms to parse
			{at: 50, op: "change"}, {at: 50, op: "check", due: false, next: 150},
			{at: 150, op: "write", took: 50, size: 35 << 20, busy: true},
			{at: 200, op: "change"}, {at: 200, op: "check", due: false, next: 600},
			{at: 600, op: "write", took: 50, size: 35 << 20, busy: true},
			{at: 650, op: "change"}, {at: 650, op: "check", due: false, next: 650 + 1600},
			{at: 2250, op: "write", took: 50, size: 35 << 20, busy: true},
			{at: 2300, op: "change"}, {at: 2300, op: "check", due: false, next: 2300 + 6400},
			{at: 8700, op: "write", took: 50, size: 35 << 20, busy: true},
			{at: 8750, op: "change"}, {at: 8750, op: "check", due: false, next: 8750 + 7500}, // capped at 10 × 750ms
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &pacer{interval: tc.interval}
			for i, s := range tc.steps {
				now := at(s.at)
				switch s.op {
				case "change":
					p.changed(now)
				case "write":
					require.True(t, p.due(now), "step %d: a write is due", i)
					p.handedOut(now, now.Add(time.Duration(s.took)*time.Millisecond), s.size, s.busy)
				case "check":
					require.Equal(t, s.due, p.due(now), "step %d: due", i)
					switch {
					case s.next == none:
						require.True(t, p.next().IsZero(), "step %d: nothing pending", i)
					case !s.due:
						require.Equal(t, at(s.next), p.next(), "step %d: next", i)
					}
				}
			}
		})
	}
}
