package consul

import (
	"maps"

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
type healthState struct {
	nodes       map[string]struct{}
	instances   map[instanceKey]struct{}
	nonPassing  map[checkKey]string
	otherChecks map[checkKey]string
}

// healthStateOf extracts the health state of a read, keeping otherChecks.
func healthStateOf(entries []*api.ServiceEntry, otherChecks map[checkKey]string) healthState {
	h := healthState{nodes: map[string]struct{}{}, instances: map[instanceKey]struct{}{}, otherChecks: otherChecks}
	for _, e := range entries {
		if e == nil || e.Node == nil {
			continue
		}
		h.nodes[e.Node.Node] = struct{}{}
		if e.Service != nil {
			h.instances[instanceKey{e.Node.Node, e.Service.ID}] = struct{}{}
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
		if _, ok := h.instances[instanceKey{c.Node, c.ServiceID}]; ok {
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
	for node := range h.nodes {
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
	for node := range h.nodes {
		for k, st := range l.byNode[node] {
			if h.nonPassing[k] != st {
				return false
			}
			n++
		}
	}
	return n == len(h.nonPassing)
}
