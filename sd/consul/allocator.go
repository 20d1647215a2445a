package consul

import (
	"slices"
	"strings"
	"time"
)

// Long-poll allocation in doorbell mode. The long polls go to the services
// that changed most recently: a service found changed by a read takes the
// place of the one that has been quiet longest, if that one has been quiet
// for minQuiet, and at most one place changes hands per minHandOver, so that
// aborted connections close on the agent's side before more are opened. The
// service that loses its long poll is read once more by its caller, so that
// a change racing with the hand-over is not lost.
const (
	minQuiet    = time.Minute
	minHandOver = 100 * time.Millisecond
)

// allocator decides which services of a datacenter in doorbell mode keep a
// long poll of their own. It makes the decision, not the long polls: its
// caller starts and stops them as told.
type allocator struct {
	capacity     int                  // long polls the datacenter's share of the budget leaves
	polling      map[string]time.Time // services with a long poll → their last change
	blocked      bool                 // no long polls yet: start-up readers use the connections
	lastHandOver time.Time
}

func newAllocator(capacity int) *allocator {
	return &allocator{capacity: capacity, polling: map[string]time.Time{}}
}

// candidate is a service that could have a long poll.
type candidate struct {
	name       string
	lastChange time.Time
}

// byRecentChange orders candidates from the most recently changed to the
// longest quiet, then by name.
func byRecentChange(a, b candidate) int {
	if c := b.lastChange.Compare(a.lastChange); c != 0 {
		return c
	}
	return strings.Compare(a.name, b.name)
}

// keep takes the current long polls when doorbell mode begins: the most
// recently changed that fit stay, and it returns the others, which lose
// theirs.
func (a *allocator) keep(current []candidate) (lose []string) {
	slices.SortFunc(current, byRecentChange)
	for i, c := range current {
		if i < a.capacity {
			a.polling[c.name] = c.lastChange
		} else {
			lose = append(lose, c.name)
		}
	}
	return lose
}

// changed decides at now whether a service without a long poll, which just
// changed, gets one, and which service loses its long poll for it ("" for
// none).
func (a *allocator) changed(now time.Time, c candidate) (grant bool, evict string) {
	if a.capacity == 0 || a.blocked {
		return false, ""
	}
	if len(a.polling) >= a.capacity {
		oldest := candidate{}
		for name, last := range a.polling {
			h := candidate{name, last}
			if oldest.name == "" || byRecentChange(h, oldest) > 0 {
				oldest = h
			}
		}
		if now.Sub(oldest.lastChange) < minQuiet || now.Sub(a.lastHandOver) < minHandOver {
			return false, ""
		}
		a.lastHandOver = now
		delete(a.polling, oldest.name)
		evict = oldest.name
	}
	a.polling[c.name] = c.lastChange
	return true, evict
}

// touch notes a change of a service that has a long poll.
func (a *allocator) touch(c candidate) {
	if _, ok := a.polling[c.name]; ok {
		a.polling[c.name] = c.lastChange
	}
}

// release notes that a service lost its long poll (it left the catalog).
func (a *allocator) release(name string) { delete(a.polling, name) }

// fill gives the free long polls to the most recently changed of
// candidates and returns them.
func (a *allocator) fill(candidates []candidate) []string {
	free := a.capacity - len(a.polling)
	if free <= 0 || a.blocked {
		return nil
	}
	slices.SortFunc(candidates, byRecentChange)
	var granted []string
	for _, c := range candidates[:min(free, len(candidates))] {
		a.polling[c.name] = c.lastChange
		granted = append(granted, c.name)
	}
	return granted
}
