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
		at    int    // ms
		op    string // change, settled (a change with the discoverer's word), settle (the word alone), write (a hand-out from at to at+took), check
		took  int    // write: ms
		size  int    // write: bytes
		busy  bool   // write: a change came meanwhile
		early bool   // write: it goes out within the gap, for the discoverer's word
		due   bool   // check: is a hand-out due?
		next  int    // check: when (-1: nothing pending)
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
		{"a burst spaces writes from 250ms, four times more each, up to the interval", 500 * time.Millisecond, []step{
			{at: 0, op: "change"}, {at: 0, op: "write", took: 2, busy: true},
			{at: 2, op: "change"}, {at: 50, op: "check", due: false, next: 252},
			{at: 252, op: "check", due: true}, {at: 252, op: "write", took: 2, busy: true},
			{at: 256, op: "change"}, {at: 400, op: "check", due: false, next: 754}, // capped at the interval
			{at: 754, op: "write", took: 2, busy: true},
			{at: 758, op: "change"}, {at: 780, op: "change"}, {at: 800, op: "check", due: false, next: 1256},
			{at: 1000, op: "change"}, {at: 1200, op: "change"}, // each within half a gap of the one before
			{at: 1256, op: "write", took: 2, busy: false},
			{at: 1300, op: "change"}, {at: 1300, op: "check", due: false, next: 1758}, // within half a gap of the last change: still a burst
			{at: 1310, op: "change"}, {at: 1758, op: "write", took: 2},
			{at: 2300, op: "change"}, {at: 2300, op: "check", due: true}, // quiet for half a gap: at once
		}},
		{"a paced write that carried one change ends the burst", 500 * time.Millisecond, []step{
			{at: 0, op: "change"}, {at: 0, op: "write", took: 2, busy: true},
			{at: 5, op: "change"}, {at: 5, op: "check", due: false, next: 252},
			{at: 252, op: "write", took: 2},
			{at: 258, op: "change"}, {at: 258, op: "check", due: true}, // changes that each follow the previous write: at once again
		}},
		{"a burst goes on with changes that come between writes, not during them", 500 * time.Millisecond, []step{
			{at: 0, op: "change"}, {at: 0, op: "write", took: 2, busy: true},
			{at: 100, op: "change"}, {at: 150, op: "change"}, {at: 150, op: "check", due: false, next: 252},
			{at: 252, op: "write", took: 2},
			{at: 300, op: "change"}, {at: 350, op: "change"}, {at: 350, op: "check", due: false, next: 754}, // grown to the interval
			{at: 754, op: "write", took: 2},
			{at: 900, op: "change"}, {at: 900, op: "check", due: false, next: 1256},
		}},
		{"a large file waits ten times its cost during a burst", 500 * time.Millisecond, []step{
			{at: 0, op: "change"}, {at: 0, op: "write", took: 50, size: 35 << 20, busy: true}, // cost 50ms + 700ms to parse
			{at: 50, op: "change"}, {at: 50, op: "check", due: false, next: 300},
			{at: 300, op: "write", took: 50, size: 35 << 20, busy: true},
			{at: 400, op: "change"}, {at: 400, op: "check", due: false, next: 1350},
			{at: 1350, op: "write", took: 50, size: 35 << 20, busy: true},
			{at: 1450, op: "change"}, {at: 1450, op: "check", due: false, next: 5400},
			{at: 5400, op: "write", took: 50, size: 35 << 20, busy: true},
			{at: 5500, op: "change"}, {at: 5500, op: "check", due: false, next: 5450 + 7500}, // capped at 10 × 750ms
		}},
		{"a change after half a gap without changes or writes ends a burst: it goes at once, with what was pending", 500 * time.Millisecond, []step{
			{at: 0, op: "change"}, {at: 0, op: "write", took: 50, size: 35 << 20, busy: true},
			{at: 50, op: "change"}, {at: 300, op: "write", took: 50, size: 35 << 20, busy: true},
			{at: 400, op: "change"}, {at: 1350, op: "write", took: 50, size: 35 << 20, busy: true}, // the gap is now 4s
			{at: 1450, op: "change"}, {at: 1450, op: "check", due: false, next: 5400},
			{at: 3450, op: "change"}, {at: 3450, op: "check", due: true}, // 2s after the last change: half the gap
		}},
		{"a change within half a gap of the last change keeps the burst", 500 * time.Millisecond, []step{
			{at: 0, op: "change"}, {at: 0, op: "write", took: 50, size: 35 << 20, busy: true},
			{at: 50, op: "change"}, {at: 300, op: "write", took: 50, size: 35 << 20, busy: true},
			{at: 400, op: "change"}, {at: 1350, op: "write", took: 50, size: 35 << 20, busy: true},
			{at: 1450, op: "change"}, {at: 3449, op: "change"}, {at: 3449, op: "check", due: false, next: 5400},
		}},
		{"a change within half a gap of the last write keeps the burst", 500 * time.Millisecond, []step{
			{at: 0, op: "change"}, {at: 0, op: "write", took: 2, busy: true},
			{at: 100, op: "change"}, {at: 252, op: "write", took: 2, busy: true}, // the gap is now 500ms
			{at: 500, op: "change"}, {at: 500, op: "check", due: false, next: 754}, // 400ms after the last change, 246ms after the write
		}},
		{"a settled discoverer's change goes at once within a burst, once per gap", 500 * time.Millisecond, []step{
			{at: 0, op: "change"}, {at: 0, op: "write", took: 50, size: 35 << 20, busy: true},
			{at: 50, op: "change"}, {at: 300, op: "write", took: 50, size: 35 << 20, busy: true},
			{at: 400, op: "change"}, {at: 1350, op: "write", took: 50, size: 35 << 20, busy: true}, // the gap is now 4s
			{at: 1450, op: "change"}, {at: 1450, op: "check", due: false, next: 5400},
			{at: 1500, op: "settled"}, {at: 1500, op: "check", due: true},
			{at: 1500, op: "write", took: 50, size: 35 << 20, early: true},             // carried two changes: the gap grows to its cap, 7.5s
			{at: 1600, op: "settled"}, {at: 1600, op: "check", due: false, next: 9000}, // a gap after the early one
			{at: 1700, op: "change"}, {at: 1700, op: "check", due: false, next: 9000},
			{at: 9000, op: "write", took: 50, size: 35 << 20, early: true}, // the word at 1600: a gap after the early one, before a gap after the last
			{at: 9100, op: "change"}, {at: 9100, op: "check", due: false, next: 9050 + 7500}, // the word went with the write
		}},
		{"the word alone lets pending changes out, once per gap, and is no change itself", 500 * time.Millisecond, []step{
			{at: 0, op: "change"}, {at: 0, op: "write", took: 50, size: 35 << 20, busy: true},
			{at: 50, op: "change"}, {at: 300, op: "write", took: 50, size: 35 << 20, busy: true},
			{at: 400, op: "change"}, {at: 1350, op: "write", took: 50, size: 35 << 20, busy: true}, // the gap is now 4s
			{at: 1450, op: "change"}, {at: 1500, op: "settle"}, {at: 1500, op: "check", due: true},
			{at: 1500, op: "write", took: 50, size: 35 << 20, busy: true, early: true}, // the gap grows to its cap, 7.5s
			{at: 1600, op: "settle"}, {at: 1600, op: "check", due: false, next: none}, // nothing pending
			{at: 1700, op: "change"}, {at: 1700, op: "settle"}, {at: 1700, op: "check", due: false, next: 9000}, // a gap after the early one
		}},
		{"a settled discoverer's change after a quiet period goes at once, as any", 500 * time.Millisecond, []step{
			{at: 0, op: "settled"}, {at: 0, op: "check", due: true},
			{at: 0, op: "write", took: 2},
			{at: 10, op: "settled"}, {at: 10, op: "check", due: true},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &pacer{interval: tc.interval}
			for i, s := range tc.steps {
				now := at(s.at)
				switch s.op {
				case "change", "settled":
					p.changed(now, s.op == "settled")
				case "settle":
					p.settle()
				case "write":
					require.True(t, p.due(now), "step %d: a write is due", i)
					early := p.handedOut(now, now.Add(time.Duration(s.took)*time.Millisecond), s.size, s.busy)
					require.Equal(t, s.early, early, "step %d: early", i)
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
