package consul

import "time"

// The connection budget in force. The agent limits the connections one
// client address may hold (limits.http_max_conns_per_client, 200 by
// default) and answers 429 past the limit, to every client on the host: a
// budget sized as if custom-sd were alone on the host starves its
// neighbours. So when the agent refuses (429), the watch gives connections
// back: it shrinks its budget to what the agent granted it, less headroom
// for the other clients, and keeps to that ceiling for a while. Once
// refusals have stopped for ceilingFor, it grows back by one connection per
// growEvery, up to the configured budget; a refusal on the way down again
// marks the new ceiling.
const (
	growEvery  = time.Minute
	ceilingFor = 10 * time.Minute
)

// budget decides how many connections the watch may hold. Its methods take
// the time; the watcher asks it and fits its scopes to the answer.
type budget struct {
	max       int       // configured
	now       int       // in force
	refusedAt time.Time // the last refusal; zero before any
	grewAt    time.Time // the last growth
	refusing  bool      // refusals were seen since the budget last grew (for logging once)
}

func newBudget(max int) *budget { return &budget{max: max, now: max} }

// giveBack is the headroom left to other clients below what the agent
// granted.
func (b *budget) giveBack() int { return max(4, b.max/8) }

// refused notes at now that the agent refused a connection while the watch
// held open connections (the refused one among them), and reports whether
// the budget shrank.
func (b *budget) refused(now time.Time, open int) bool {
	b.refusedAt, b.refusing = now, true
	granted := open - 1
	next := max(MinConnections, granted-b.giveBack())
	if next >= b.now {
		return false
	}
	b.now = next
	return true
}

// grow reports at now whether the budget grew by one: refusals have stopped
// for ceilingFor, and the last growth was growEvery ago.
func (b *budget) grow(now time.Time) bool {
	if b.now >= b.max || now.Sub(b.refusedAt) < ceilingFor || now.Sub(b.grewAt) < growEvery {
		return false
	}
	b.now++
	b.grewAt = now
	return true
}

// next returns when grow may next say yes, or zero when the budget is full.
func (b *budget) next() time.Time {
	if b.now >= b.max {
		return time.Time{}
	}
	return maxTime(b.refusedAt.Add(ceilingFor), b.grewAt.Add(growEvery))
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
