package consul

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"
)

// TestSweepPacer walks the pacer through rings, sweeps and failures. Times
// are seconds after a fixed start.
func TestSweepPacer(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	boom := errors.New("boom")
	limited := api.StatusError{Code: http.StatusTooManyRequests}

	type step struct {
		at     float64
		op     string // ring, start, finish, fail, fire
		index  uint64 // ring
		size   int    // start
		probes int    // start
		err    error  // fail
		want   bool   // sweep now?
		due    float64
	}
	const none = -1
	tests := []struct {
		name  string
		steps []step
	}{
		{"a first ring sweeps at once", []step{
			{at: 0, op: "ring", index: 10, want: true, due: none},
		}},
		{"a ring covered by a sweep that started after it starts nothing", []step{
			{at: 0, op: "ring", index: 10, want: true, due: none},
			{at: 0, op: "start", size: 10, probes: 0},
			{at: 0.1, op: "ring", index: 9, want: false, due: none},
			{at: 0.1, op: "ring", index: 10, want: false, due: none},
		}},
		{"a ring during a sweep asks for one more after it", []step{
			{at: 0, op: "ring", index: 10, want: true, due: none},
			{at: 0, op: "start", size: 100, probes: 0},
			{at: 0.1, op: "ring", index: 11, want: false, due: none},
			{at: 0.2, op: "ring", index: 12, want: false, due: none},
			{at: 0.2, op: "finish", want: true, due: none}, // first reads only: no debt
		}},
		{"probing runs up debt: four times the sweep, less the allowance", []step{
			{at: 0, op: "ring", index: 10, want: true, due: none},
			{at: 0, op: "start", size: 100, probes: 100},
			{at: 1, op: "ring", index: 11, want: false, due: none},
			{at: 1, op: "finish", want: false, due: 4}, // debt 4 s, allowance 1 s: due at 1+3
			{at: 2, op: "ring", index: 12, want: false, due: 4},
			{at: 3.9, op: "fire", want: false, due: 4},
			{at: 4, op: "fire", want: true, due: none},
		}},
		{"debt is scaled by the share of probes", []step{
			{at: 0, op: "ring", index: 10, want: true, due: none},
			{at: 0, op: "start", size: 100, probes: 50},
			{at: 2, op: "ring", index: 11, want: false, due: none},
			{at: 2, op: "finish", want: false, due: 5}, // debt 4 s: due at 2+3
		}},
		{"debt drains in real time", []step{
			{at: 0, op: "ring", index: 10, want: true, due: none},
			{at: 0, op: "start", size: 10, probes: 10},
			{at: 1, op: "finish", want: false, due: none}, // debt 4 s, nothing asked
			{at: 4, op: "ring", index: 11, want: true, due: none},
		}},
		{"failed reads retry with backoff", []step{
			{at: 0, op: "ring", index: 10, want: true, due: none},
			{at: 0, op: "start", size: 10, probes: 0},
			{at: 0.1, op: "fail", err: boom, want: false, due: none},
			{at: 0.1, op: "finish", want: false, due: 0.1 + 0.25}, // the first backoff, not jittered in this test
			{at: 0.35, op: "fire", want: true, due: none},
			{at: 0.35, op: "start", size: 1, probes: 0},
			{at: 0.4, op: "fail", err: boom, want: false, due: none},
			{at: 0.4, op: "finish", want: false, due: 0.4 + 0.5},
			{at: 0.9, op: "fire", want: true, due: none},
			{at: 0.9, op: "start", size: 1, probes: 0},
			{at: 1, op: "finish", want: false, due: none}, // success resets the backoff
			{at: 1, op: "fail", err: boom, want: false, due: 1.25},
		}},
		{"a 429 backs off longer", []step{
			{at: 0, op: "fail", err: limited, want: false, due: 2},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newSweepPacer()
			p.retry.NoJitter = true
			for i, s := range tc.steps {
				now := at(s.at)
				var got bool
				switch s.op {
				case "ring":
					got = p.request(now, s.index)
				case "start":
					p.start(now, s.size, s.probes)
					continue
				case "finish":
					got = p.finish(now)
				case "fail":
					got = p.readFailed(now, s.err)
				case "fire":
					got = p.fire(now)
				}
				require.Equal(t, s.want, got, "step %d (%s at %v): sweep now", i, s.op, s.at)
				if s.due == none {
					require.True(t, p.due.IsZero(), "step %d: no sweep waits, got %v", i, p.due.Sub(t0))
				} else {
					require.Equal(t, at(s.due), p.due, "step %d: due", i)
				}
			}
		})
	}
}
