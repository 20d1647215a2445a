package consul

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestAllocator(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	c := func(name string, changed time.Duration) candidate { return candidate{name, at(changed)} }

	type step struct {
		now     time.Duration
		op      string // keep, changed, fill, touch, release, unblock
		cands   []candidate
		grant   bool
		evict   string
		names   []string // keep: losers; fill: granted
		polling []string // afterwards, sorted
	}
	tests := []struct {
		name     string
		capacity int
		blocked  bool
		steps    []step
	}{
		{"doorbell mode keeps the most recently changed long polls", 2, false, []step{
			{op: "keep", cands: []candidate{c("a", 0), c("b", 3*time.Second), c("c", time.Second)}, names: []string{"a"}, polling: []string{"b", "c"}},
		}},
		{"a changed service takes a free long poll", 2, false, []step{
			{op: "changed", cands: []candidate{c("a", 0)}, grant: true, polling: []string{"a"}},
		}},
		{"the longest quiet holder hands over after a minute", 2, false, []step{
			{op: "fill", cands: []candidate{c("a", 0), c("b", time.Second)}, names: []string{"b", "a"}, polling: []string{"a", "b"}},
			{now: 30 * time.Second, op: "changed", cands: []candidate{c("x", 30*time.Second)}, grant: false, polling: []string{"a", "b"}},
			{now: 61 * time.Second, op: "changed", cands: []candidate{c("x", 61*time.Second)}, grant: true, evict: "a", polling: []string{"b", "x"}},
			// b has been quiet for a minute too, but hand-overs are spaced.
			{now: 61*time.Second + 50*time.Millisecond, op: "changed", cands: []candidate{c("y", 61*time.Second)}, grant: false, polling: []string{"b", "x"}},
			{now: 61*time.Second + 100*time.Millisecond, op: "changed", cands: []candidate{c("y", 61*time.Second)}, grant: true, evict: "b", polling: []string{"x", "y"}},
		}},
		{"a long poll's change keeps it", 1, false, []step{
			{op: "fill", cands: []candidate{c("a", 0)}, names: []string{"a"}, polling: []string{"a"}},
			{now: 50 * time.Second, op: "touch", cands: []candidate{c("a", 50*time.Second)}, polling: []string{"a"}},
			{now: 70 * time.Second, op: "changed", cands: []candidate{c("x", 70*time.Second)}, grant: false, polling: []string{"a"}},
		}},
		{"no long polls while start-up readers run", 2, true, []step{
			{op: "changed", cands: []candidate{c("a", 0)}, grant: false},
			{op: "fill", cands: []candidate{c("a", 0)}, names: nil},
			{op: "unblock"},
			{op: "fill", cands: []candidate{c("a", 0), c("b", time.Second), c("c", 2*time.Second)}, names: []string{"c", "b"}, polling: []string{"b", "c"}},
			{op: "release", cands: []candidate{c("c", 0)}, polling: []string{"b"}},
		}},
		{"no capacity, no long polls", 0, false, []step{
			{op: "changed", cands: []candidate{c("a", 0)}, grant: false},
			{op: "fill", cands: []candidate{c("a", 0)}, names: nil},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newAllocator(tc.capacity)
			a.blocked = tc.blocked
			for i, s := range tc.steps {
				now := at(s.now)
				switch s.op {
				case "keep":
					require.Equal(t, s.names, a.keep(s.cands), "step %d", i)
				case "changed":
					grant, evict := a.changed(now, s.cands[0])
					require.Equal(t, s.grant, grant, "step %d: grant", i)
					require.Equal(t, s.evict, evict, "step %d: evict", i)
				case "fill":
					require.Equal(t, s.names, a.fill(s.cands), "step %d", i)
				case "touch":
					a.touch(s.cands[0])
				case "release":
					a.release(s.cands[0].name)
				case "unblock":
					a.blocked = false
				}
				var polling []string
				for name := range a.polling {
					polling = append(polling, name)
				}
				slices.Sort(polling)
				require.Equal(t, s.polling, polling, "step %d: polling", i)
			}
		})
	}
}
