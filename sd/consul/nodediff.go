package consul

import (
	"hash/maphash"
	"maps"
	"slices"

	"github.com/hashicorp/consul/api"
)

// The node diff. In doorbell mode one long poll lists every node; a change
// of a node's address, meta or tagged addresses shows as a change in that
// list. Each service's nodes in the list are compared with those of its
// last read, and only the services that differ are read again. Comparing
// with each service's own last read matters: two services on one node may
// have been read on either side of the node's change.
//
// Comparing every service at every list would cost the catalog's size each
// time the list comes (it comes after every write to the catalog, nodes or
// not), so only two kinds of service are compared: those read since the
// last list, and those on a node the list shows changed. A service of
// neither kind agreed with the last list, and its nodes did not change.

var nodeSeed = maphash.MakeSeed()

// nodeFingerprint hashes a node's name and what it gives its instances'
// labels: its address, datacenter, meta and tagged addresses.
func nodeFingerprint(n *api.Node) uint64 {
	var h maphash.Hash
	h.SetSeed(nodeSeed)
	h.WriteString(n.Node)
	h.WriteByte(0)
	h.WriteString(n.Address)
	h.WriteByte(0)
	h.WriteString(n.Datacenter)
	for _, m := range []map[string]string{n.Meta, n.TaggedAddresses} {
		h.WriteByte(1)
		for _, k := range slices.Sorted(maps.Keys(m)) {
			h.WriteString(k)
			h.WriteByte(0)
			h.WriteString(m[k])
			h.WriteByte(0)
		}
	}
	return h.Sum64()
}

// nodesOfEntries sums the fingerprints of a read's nodes, each node once.
func nodesOfEntries(entries []*api.ServiceEntry) uint64 {
	var sum uint64
	seen := make(map[string]bool, len(entries))
	for _, e := range entries {
		if e == nil || e.Node == nil || seen[e.Node.Node] {
			continue
		}
		seen[e.Node.Node] = true
		sum += nodeFingerprint(e.Node)
	}
	return sum
}

// nodeDiff is a scope's side of the node diff.
type nodeDiff struct {
	listed  map[string]uint64   // node → fingerprint in the last list; nil before the first
	recheck map[string]struct{} // services read since the last list
}

// read notes a read of the service name.
func (d *nodeDiff) read(name string) {
	if d.recheck == nil {
		d.recheck = map[string]struct{}{}
	}
	d.recheck[name] = struct{}{}
}

// reset forgets the last list: the next is compared with every service.
func (d *nodeDiff) reset() { d.listed, d.recheck = nil, nil }

// list takes in a new list and returns the services whose nodes in it
// differ from those of their last read.
func (d *nodeDiff) list(nodes []*api.Node, services map[string]*service) []*service {
	first := d.listed == nil
	listed := make(map[string]uint64, len(nodes))
	changed := map[string]bool{}
	for _, n := range nodes {
		fp := nodeFingerprint(n)
		listed[n.Node] = fp
		if old, ok := d.listed[n.Node]; ok && old != fp {
			changed[n.Node] = true
		}
	}
	for node := range d.listed {
		if _, ok := listed[node]; !ok {
			changed[node] = true
		}
	}
	d.listed = listed
	candidates := make([]*service, 0, len(d.recheck))
	if first || len(changed) > 0 {
		for _, s := range services {
			if _, again := d.recheck[s.name]; first || again || s.onAny(changed) {
				candidates = append(candidates, s)
			}
		}
	} else {
		for name := range d.recheck {
			if s := services[name]; s != nil {
				candidates = append(candidates, s)
			}
		}
	}
	clear(d.recheck)
	var out []*service
	for _, s := range candidates {
		if !d.agrees(s) {
			out = append(out, s)
		}
	}
	return out
}

// agrees reports whether the nodes of the last read of s are those of the
// last list (true before the first list).
func (d *nodeDiff) agrees(s *service) bool {
	if d.listed == nil {
		return true
	}
	var sum uint64
	for _, node := range s.health.nodes {
		sum += d.listed[node]
	}
	return sum == s.nodes
}

// onAny reports whether the last read of s showed it on one of nodes.
func (s *service) onAny(nodes map[string]bool) bool {
	for _, node := range s.health.nodes {
		if nodes[node] {
			return true
		}
	}
	return false
}
