package consul

import (
	"hash/maphash"
	"maps"
	"slices"

	"github.com/hashicorp/consul/api"
)

// The health diff. In doorbell mode one long poll lists every check that is
// not passing; any change of an instance's aggregated health shows as a
// change in that list. Each service's non-passing checks in the list are
// compared with those of its last read, and only the services that differ
// are read again. Comparing with the last read, not with the previous list,
// matters: a read may be newer than the list that triggered it, and a later
// flip back would leave two lists equal.

// checkKey identifies a health check.
type checkKey struct{ node, id string }

// instanceKey identifies a service instance.
type instanceKey struct{ node, serviceID string }

// healthState is what the health diff compares the list with: from a
// service's last read, its instances, their nodes and their non-passing
// checks (node checks included); and from the list, the non-passing checks
// of instances the last read did not return (left out by a filter, or new).
//
// It is kept for every service, so it is kept small: sorted slices, and
// maps only for the checks that are not passing (usually none).
type healthState struct {
	nodes       []string // sorted, each once
	instances   []uint64 // hashes of the instances' keys, sorted
	nonPassing  map[checkKey]string
	otherChecks map[checkKey]string
}

var instanceSeed = maphash.MakeSeed()

// hashInstance hashes an instance's key (64 bits: a collision, which would
// only make the health diff skip a read, is not to be expected among a few
// hundred thousand instances).
func hashInstance(k instanceKey) uint64 {
	var h maphash.Hash
	h.SetSeed(instanceSeed)
	h.WriteString(k.node)
	h.WriteByte(0)
	h.WriteString(k.serviceID)
	return h.Sum64()
}

// hasInstance reports whether the last read returned the instance k.
func (h *healthState) hasInstance(k instanceKey) bool {
	_, ok := slices.BinarySearch(h.instances, hashInstance(k))
	return ok
}

// healthStateOf extracts the health state of a read, keeping otherChecks;
// intern gives each node name one string for all services.
func healthStateOf(entries []*api.ServiceEntry, otherChecks map[checkKey]string, intern func(string) string) healthState {
	h := healthState{otherChecks: otherChecks}
	for _, e := range entries {
		if e == nil || e.Node == nil {
			continue
		}
		node := intern(e.Node.Node)
		h.nodes = append(h.nodes, node)
		if e.Service != nil {
			h.instances = append(h.instances, hashInstance(instanceKey{node, e.Service.ID}))
		}
		for _, c := range e.Checks {
			if c.Status != api.HealthPassing {
				if h.nonPassing == nil {
					h.nonPassing = map[checkKey]string{}
				}
				h.nonPassing[checkKey{c.Node, c.CheckID}] = c.Status
			}
		}
	}
	slices.Sort(h.nodes)
	h.nodes = slices.Clip(slices.Compact(h.nodes))
	slices.Sort(h.instances)
	h.instances = slices.Clip(h.instances)
	return h
}

// nonPassingList is the doorbell's list, indexed for the diff.
type nonPassingList struct {
	byService map[string]api.HealthChecks
	byNode    map[string]map[checkKey]string // node checks: part of every instance on the node
}

func indexNonPassing(checks api.HealthChecks) nonPassingList {
	l := nonPassingList{byService: map[string]api.HealthChecks{}, byNode: map[string]map[checkKey]string{}}
	for _, c := range checks {
		if c.ServiceName != "" {
			l.byService[c.ServiceName] = append(l.byService[c.ServiceName], c)
			continue
		}
		if l.byNode[c.Node] == nil {
			l.byNode[c.Node] = map[checkKey]string{}
		}
		l.byNode[c.Node][checkKey{c.Node, c.CheckID}] = c.Status
	}
	return l
}

// differs reports whether the list disagrees with the health state of the
// service named name, and records the list's checks of instances the last
// read did not return.
func (l nonPassingList) differs(name string, h *healthState) bool {
	if len(l.byService[name]) == 0 && len(h.nonPassing) == 0 && len(h.otherChecks) == 0 && !l.anyNodeCheck(h) {
		return false // all passing, before and now: the common case, without allocating
	}
	known, other := map[checkKey]string{}, map[checkKey]string{}
	for _, c := range l.byService[name] {
		m := other
		if h.hasInstance(instanceKey{c.Node, c.ServiceID}) {
			m = known
		}
		m[checkKey{c.Node, c.CheckID}] = c.Status
	}
	differs := !l.sameChecks(h, known) || !maps.Equal(other, h.otherChecks)
	h.otherChecks = other
	return differs
}

// anyNodeCheck reports whether the list holds a node check of a node of
// the service.
func (l nonPassingList) anyNodeCheck(h *healthState) bool {
	if len(l.byNode) == 0 {
		return false
	}
	for _, node := range h.nodes {
		if len(l.byNode[node]) > 0 {
			return true
		}
	}
	return false
}

// sameChecks reports whether the list's non-passing checks for a service
// (the service checks of the instances it has, and the node checks of their
// nodes) are those of its last read.
func (l nonPassingList) sameChecks(h *healthState, service map[checkKey]string) bool {
	n := len(service)
	for k, st := range service {
		if h.nonPassing[k] != st {
			return false
		}
	}
	for _, node := range h.nodes {
		for k, st := range l.byNode[node] {
			if h.nonPassing[k] != st {
				return false
			}
			n++
		}
	}
	return n == len(h.nonPassing)
}
