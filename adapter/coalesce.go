package adapter

import "time"

// coalescer decides when the manager hands a changed set to the outputs. It
// writes on the leading edge: the first change after a quiet period is
// handed out at once, and further changes within interval of a hand-out are
// handed out together at the end of that interval.
type coalescer struct {
	interval time.Duration
	last     time.Time // the last hand-out; zero before the first
	dirty    bool      // something changed since
}

// changed notes a change.
func (c *coalescer) changed() { c.dirty = true }

// due reports whether a hand-out is due at now.
func (c *coalescer) due(now time.Time) bool {
	return c.dirty && (c.last.IsZero() || !now.Before(c.last.Add(c.interval)))
}

// next returns when a hand-out will be due, or zero if nothing changed.
func (c *coalescer) next() time.Time {
	if !c.dirty {
		return time.Time{}
	}
	return c.last.Add(c.interval) // the zero time plus interval is long past
}

// handedOut notes a hand-out at now.
func (c *coalescer) handedOut(now time.Time) {
	c.last, c.dirty = now, false
}
