package adapter

import (
	"sync/atomic"
	"time"
)

// manager keeps the latest group per Key, encoded, and decides when the
// outputs get the complete set: not before every discoverer has sent its
// first set, then as the pacer allows. It is a value owned by the adapter's
// loop; it starts no goroutine.
type manager struct {
	shards  int
	groups  map[Key]*encoded
	waiting map[string]bool // discoverers that have not sent their complete set: true if they send it in parts
	pace    pacer

	updates  atomic.Uint64 // sends received from discoverers (read by metrics)
	handOuts atomic.Uint64 // complete sets handed to the outputs (read by metrics)
	early    atomic.Uint64 // of those, the ones let out within a pacing gap because the discoverer settled
}

// newManager returns a manager for providers, which maps each discoverer's
// name to whether it sends its initial set in parts (see Staged).
func newManager(providers map[string]bool, shards int, interval time.Duration) *manager {
	m := &manager{
		shards:  shards,
		groups:  map[Key]*encoded{},
		waiting: map[string]bool{},
		pace:    pacer{interval: interval},
	}
	for name, staged := range providers {
		m.waiting[name] = staged
	}
	return m
}

// receive applies one send of a discoverer: each group replaces the one
// with the same Source, and a group without targets deletes it. It returns
// the targets left out because Prometheus would reject them.
func (m *manager) receive(now time.Time, provider string, groups []*Group) (skipped []error) {
	m.updates.Add(1)
	if staged, ok := m.waiting[provider]; ok && !staged {
		delete(m.waiting, provider) // its first send is its complete set
	}
	settled, changed := false, false
	for _, g := range groups {
		if g == Complete {
			delete(m.waiting, provider)
			continue
		}
		if g == Settled {
			settled = true
			continue
		}
		changed = true
		if g == nil {
			continue
		}
		k := Key{Provider: provider, Source: g.Source}
		if len(g.Targets) == 0 {
			delete(m.groups, k)
			continue
		}
		enc, rejected := encode(g, m.shards)
		skipped = append(skipped, rejected...)
		m.groups[k] = enc
	}
	if settled && !changed {
		m.pace.settle() // the word alone: nothing to write for it
		return skipped
	}
	m.pace.changed(now, settled)
	return skipped
}

// due reports whether the outputs should get the complete set at now.
func (m *manager) due(now time.Time) bool {
	return len(m.waiting) == 0 && m.pace.due(now)
}

// next returns when a hand-out will be due, or zero if none is pending.
func (m *manager) next() time.Time {
	if len(m.waiting) > 0 {
		return time.Time{}
	}
	return m.pace.next()
}

// handedOut notes that the outputs got the set: see pacer.handedOut.
func (m *manager) handedOut(start, end time.Time, size int, changesMeanwhile bool) {
	m.handOuts.Add(1)
	if m.pace.handedOut(start, end, size, changesMeanwhile) {
		m.early.Add(1)
	}
}
