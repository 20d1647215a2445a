package adapter

import "time"

// guard holds back updates that would remove a large share of the targets
// at once. An empty catalog is what Consul answers to a token without read
// rights under a default-deny ACL policy, and what a Consul rebuilt from an
// empty snapshot holds; written as is, it would make Prometheus drop every
// target. A genuine scale-down is applied once it has lasted for hold.
type guard struct {
	maxRemoval float64 // >= 1 disables the guard
	hold       time.Duration
	since      time.Time // when the current hold began; zero when not holding
}

// verdict is the guard's answer for one update.
type verdict struct {
	apply    bool
	removed  int           // targets the update removes
	started  bool          // a hold began with this update
	released bool          // a hold ended with this update
	wait     time.Duration // with !apply: when to ask again
}

// judge decides on an update from current to next targets at now.
// current < 0 means nothing is known yet: anything goes.
func (g *guard) judge(current, next int, now time.Time) verdict {
	v := verdict{removed: max(current-next, 0)}
	holding := !g.since.IsZero()
	if g.maxRemoval >= 1 || current <= 0 || float64(v.removed) <= g.maxRemoval*float64(current) {
		g.since = time.Time{}
		v.apply, v.released = true, holding
		return v
	}
	if !holding {
		g.since, v.started = now, true
	}
	held := now.Sub(g.since)
	if held >= g.hold {
		g.since = time.Time{}
		v.apply, v.released = true, true
		return v
	}
	v.wait = g.hold - held
	return v
}
