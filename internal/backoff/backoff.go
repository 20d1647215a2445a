// Package backoff computes retry delays: exponential, capped, and jittered
// so that many clients failing together do not retry together.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Backoff is the delay policy of one retrying loop. The zero value is not
// usable: set Min and Max.
type Backoff struct {
	// Min is the first delay, Max the largest.
	Min, Max time.Duration
	// NoJitter returns the delays as they are instead of a random delay
	// between half and all of each.
	NoJitter bool

	cur time.Duration
}

// Next returns the delay before the next attempt: Min after a success, then
// twice the previous one up to Max, jittered unless NoJitter.
func (b *Backoff) Next() time.Duration { return b.NextAtLeast(b.Min) }

// NextAtLeast is Next with a higher floor for this attempt, for failures
// that ask for more patience (a 429 is back-pressure).
func (b *Backoff) NextAtLeast(floor time.Duration) time.Duration {
	b.cur = min(max(2*b.cur, b.Min, floor), b.Max)
	if b.NoJitter {
		return b.cur
	}
	return Jitter(b.cur)
}

// Reset starts over from Min after a success.
func (b *Backoff) Reset() { b.cur = 0 }

// Failing reports whether Next has been called since the last Reset.
func (b *Backoff) Failing() bool { return b.cur > 0 }

// Jitter returns a random delay between d/2 and d.
func Jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}
