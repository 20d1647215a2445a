package consul

import (
	"errors"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"
)

// TestVerifyPacer walks the verify pacer through quiet and busy catalogs.
// Times are seconds after a fixed start; due is when the next verification
// is due after the step (none: none is owed).
func TestVerifyPacer(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(math.Round(s * float64(time.Second)))) }
	boom := errors.New("boom")
	limited := api.StatusError{Code: http.StatusTooManyRequests}

	type step struct {
		at    float64
		op    string // ring, explain (a read answered with index), start, finish, cover, check
		index uint64 // ring, explain, finish, cover
		err   error  // finish
		due   float64
	}
	const none = -1
	// churn rings every 0.1 s from from to to, from index.
	churn := func(from, to float64, index uint64) []step {
		var steps []step
		for k := 0; from+float64(k)/10 <= to+1e-9; k++ {
			steps = append(steps, step{at: from + float64(k)/10, op: "ring", index: index, due: -2}) // -2: not checked
			index++
		}
		return steps
	}
	cat := func(parts ...[]step) []step {
		var out []step
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"nothing rang, nothing is due", []step{
			{at: 0, op: "cover", index: 5, due: none},
		}},
		{"a lone ring is verified once the catalog is quiet", []step{
			{at: 0, op: "ring", index: 10, due: 0.25},
			{at: 0.25, op: "start", due: none},
			{at: 0.5, op: "finish", index: 10, due: none},
		}},
		{"the first verification of a busy period does not wait for it to end", []step{
			{at: 0, op: "ring", index: 10, due: 0.25},
			{at: 0.1, op: "ring", index: 11, due: 0.25},
			{at: 0.2, op: "ring", index: 12, due: 0.25},
		}},
		{"a ring the verification saw needs none; one after it does", []step{
			{at: 0, op: "ring", index: 10, due: 0.25},
			{at: 0.25, op: "start", due: none},
			{at: 0.3, op: "ring", index: 11, due: 0.55}, // the running one may see it, but is abandoned once the catalog is quiet
			{at: 0.4, op: "ring", index: 12, due: 0.65},
			{at: 0.45, op: "finish", index: 11, due: 0.65}, // took 0.2: debt 0.8 less its credit 0.8; rings 0.3 and 0.4 within 0.25
		}},
		{"a verification that saw every ring owes nothing", []step{
			{at: 0, op: "ring", index: 10, due: 0.25},
			{at: 0.25, op: "start", due: none},
			{at: 0.3, op: "ring", index: 11, due: 0.55},
			{at: 0.45, op: "finish", index: 11, due: none},
		}},
		{"sustained churn: a verification whenever the debt is paid, a fifth of the time", cat(
			churn(0, 0.2, 10),
			[]step{{at: 0.25, op: "start", due: none}},
			churn(0.3, 1.2, 20),
			// Took 1 s: debt 4 s, paid at 5.25. Quiet at 2.1 if no ring came.
			[]step{{at: 1.25, op: "finish", index: 22, due: 2.1}},
			churn(1.3, 5.2, 40),
			[]step{{at: 5.2, op: "check", due: 5.25}, {at: 5.25, op: "start", due: none}},
		)},
		{"a pause shorter than a verification is not the end; the end is verified without the debt", cat(
			[]step{{at: 0, op: "ring", index: 10, due: 0.25}, {at: 0.25, op: "start", due: none}},
			churn(0.3, 1.2, 20),
			[]step{{at: 1.25, op: "finish", index: 10, due: 2.1}}, // debt 4 s, paid at 5.25
			churn(1.3, 2.9, 40),
			// Two rings (2.8 and 2.9) within a verification's time (1 s):
			// quiet at 3.8 if none follows, long before the debt is paid.
			[]step{{at: 2.9, op: "check", due: 3.8}},
		)},
		{"quiet catalogs close together wait at most half a verification's time after the last", []step{
			{at: 0, op: "ring", index: 10, due: 0.25},
			{at: 0.25, op: "start", due: none},
			{at: 1.25, op: "finish", index: 10, due: none}, // debt 4 s
			{at: 2, op: "ring", index: 11, due: 2.25},      // one verification's debt is allowed: 3.25 s left
			{at: 2.25, op: "start", due: none},
			{at: 3.25, op: "finish", index: 11, due: none}, // debt 4-2+4 = 6 s
			{at: 3.5, op: "ring", index: 12, due: 3.75},    // down to 4 s at 5.25, but 0.5 s after the last ended is the most
			{at: 3.75, op: "start", due: none},
			{at: 4.75, op: "finish", index: 12, due: none}, // debt 6-0.5-1+4 = 8.5 s
			{at: 5, op: "ring", index: 13, due: 5.25},      // again 0.5 s after the last ended: verifying two thirds of the time
			{at: 5.25, op: "start", due: none},
			{at: 7.25, op: "finish", index: 13, due: none}, // took 2 s: debt 8.5-0.5-2+8 = 14 s
			{at: 7.5, op: "ring", index: 14, due: 8.25},    // waits half as long as the last took
		}},
		{"a quiet catalog long after the last verification does not wait", []step{
			{at: 0, op: "ring", index: 10, due: 0.25},
			{at: 0.25, op: "start", due: none},
			{at: 1.25, op: "finish", index: 10, due: none}, // debt 4 s, paid at 5.25
			{at: 6, op: "ring", index: 11, due: 6.25},
		}},
		{"the end of churn during a verification abandons it for a new one, once", cat(
			[]step{{at: 0, op: "ring", index: 10, due: 0.25}, {at: 0.25, op: "start", due: none}},
			[]step{{at: 1.25, op: "finish", index: 10, due: none}}, // took 1 s: debt 4 s
			churn(2, 5.2, 20), // the debt is paid at 5.25
			[]step{{at: 5.25, op: "start", due: none}},
			churn(5.3, 6, 200),
			// Quiet at 6.9 (no ring for 0.25 s, none two within the last
			// verification's 1 s): the running one, begun before the last
			// ring, is abandoned for a new one.
			[]step{{at: 6, op: "check", due: 6.9}, {at: 6.9, op: "start", due: none}},
			[]step{{at: 7, op: "ring", index: 300, due: none}}, // restarted once: it runs to its end
			// Debt: 4 × 1.65 s for the abandoned one, less 2.1 s drained,
			// plus 4 × 2.1 s: 12.9 s. The share of the last verification
			// with the attempt it replaced, 4 × 3.75 s, is credit: the next
			// starts at once, the catalog being quiet since 7.25.
			[]step{{at: 9, op: "finish", index: 299, due: 7.25}},
			// The next took 2 s with nothing replaced: debt 18.9 s, and a
			// quiet catalog waits at most half of those 2 s after it ended.
			[]step{{at: 9, op: "start", due: none}, {at: 11, op: "finish", index: 300, due: none}},
			[]step{{at: 11.5, op: "ring", index: 301, due: 12}},
		)},
		{"the window that tells churn from its end is at most a second", []step{
			{at: 0, op: "ring", index: 10, due: 0.25},
			{at: 0.25, op: "start", due: none},
			{at: 5.25, op: "finish", index: 10, due: none}, // took 5 s: debt 20 s
			{at: 30, op: "ring", index: 11, due: 30.25},
			{at: 30.25, op: "start", due: none},
			{at: 30.5, op: "ring", index: 12, due: 31}, // the window is 1 s, not 5 s
			{at: 30.6, op: "ring", index: 13, due: 31.5},
		}},
		{"an explained ring waits for the debt, not for the quiet", []step{
			{at: 0, op: "ring", index: 10, due: 0.25},
			{at: 0.25, op: "start", due: none},
			{at: 1.25, op: "finish", index: 10, due: none}, // took 1 s: debt 4 s, paid at 5.25
			{at: 2, op: "ring", index: 11, due: 2.25},
			{at: 2.1, op: "explain", index: 11, due: 5.25},
		}},
		{"a read before its ring explains it", []step{
			{at: 0, op: "ring", index: 10, due: 0.25},
			{at: 0.25, op: "start", due: none},
			{at: 1.25, op: "finish", index: 10, due: none},
			{at: 1.9, op: "explain", index: 11, due: none},
			{at: 2, op: "ring", index: 11, due: 5.25},
			{at: 2.5, op: "ring", index: 12, due: 3}, // another read's index is no explanation
		}},
		{"one ring left unexplained keeps the quiet verification", []step{
			{at: 0, op: "ring", index: 10, due: 0.25},
			{at: 0.25, op: "start", due: none},
			{at: 1.25, op: "finish", index: 10, due: none},
			{at: 2, op: "ring", index: 11, due: 2.25},
			{at: 2.05, op: "ring", index: 12, due: 3}, // two rings within the last verification's time
			{at: 2.1, op: "explain", index: 12, due: 3},
			{at: 2.2, op: "explain", index: 11, due: 5.25},
		}},
		{"a running verification is not abandoned for explained rings", []step{
			{at: 0, op: "ring", index: 10, due: 0.25},
			{at: 0.25, op: "start", due: none},
			{at: 0.3, op: "ring", index: 11, due: 0.55},
			{at: 0.35, op: "explain", index: 11, due: none},
			{at: 0.45, op: "finish", index: 10, due: 1.25}, // took 0.2 s: debt 0.8 s; the explained ring waits until it is paid
		}},
		{"a sweep covers the rings before it", []step{
			{at: 0, op: "ring", index: 10, due: 0.25},
			{at: 0.1, op: "cover", index: 10, due: none},
			{at: 0.2, op: "ring", index: 9, due: none},
		}},
		{"a failed verification is retried after a backoff", []step{
			{at: 0, op: "ring", index: 10, due: 0.25},
			{at: 0.25, op: "start", due: none},
			{at: 0.25, op: "finish", err: boom, due: 0.5}, // the first backoff, not jittered here
			{at: 0.5, op: "start", due: none},
			{at: 0.5, op: "finish", err: boom, due: 1},
			{at: 1, op: "start", due: none},
			{at: 1, op: "finish", index: 10, due: none},
		}},
		{"a 429 backs off longer", []step{
			{at: 0, op: "ring", index: 10, due: 0.25},
			{at: 0.25, op: "start", due: none},
			{at: 0.25, op: "finish", err: limited, due: 2.25},
		}},
	}
	// fires reports whether a verification is due at now.
	fires := func(p *verifyPacer, now time.Time) bool {
		due := p.due()
		return !due.IsZero() && !now.Before(due)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newVerifyPacer()
			p.retry.NoJitter = true
			for i, s := range tc.steps {
				now := at(s.at)
				switch s.op {
				case "ring":
					p.ring(now, s.index)
				case "start":
					require.True(t, fires(&p, now), "step %d: a verification is due at %v", i, s.at)
					p.start(now)
				case "finish":
					p.finish(now, s.index, s.err)
				case "cover":
					p.cover(s.index)
				case "explain":
					p.explain(s.index)
				}
				switch {
				case s.due == -2:
				case s.due == none:
					require.True(t, p.due().IsZero(), "step %d (%s at %v): nothing due, got %v", i, s.op, s.at, p.due().Sub(t0))
				default:
					require.Equal(t, at(s.due), p.due(), "step %d (%s at %v): due", i, s.op, s.at)
					require.False(t, fires(&p, at(s.due).Add(-time.Millisecond)), "step %d: not due before", i)
				}
			}
		})
	}
}
