package consul

import (
	"cmp"
	"context"
	"hash/maphash"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/common/model"

	"github.com/custom-sd/custom-sd/adapter"
)

// job turns the watcher's reads into the target groups of one selection
// and hands them to the adapter. This is the one place that decides what
// is complete: nothing goes out until every datacenter has been read once,
// then the complete set in one send, then the groups that change. A
// datacenter read again from scratch (Consul's index went backwards, a new
// token) keeps its old groups until it is complete again; then the groups
// it no longer has are deleted.
//
// The watcher calls its methods; its own goroutine (forward) sends what is
// in its mailbox, so that the watcher never waits for the adapter.
type job struct {
	sel    *Selection
	tagSep string

	last    map[string]uint64         // source → fingerprint of its latest group
	pending map[string]*adapter.Group // groups of datacenters not complete yet
	started bool                      // the complete set has been sent

	mailbox mailbox
}

func newJob(sel *Selection, tagSep string) *job {
	return &job{
		sel:     sel,
		tagSep:  tagSep,
		last:    map[string]uint64{},
		pending: map[string]*adapter.Group{},
		mailbox: newMailbox(),
	}
}

// update takes a read of a service of dc and reports whether the
// service's targets changed.
func (j *job) update(dc *datacenter, name string, entries []*api.ServiceEntry) bool {
	source := dc.prefix + name
	g := toGroup(source, name, j.sel.admitted(entries), j.tagSep)
	fp := fingerprint(g)
	if old, ok := j.last[source]; ok && old == fp {
		return false
	}
	j.last[source] = fp
	j.emit(dc, g)
	return true
}

// remove deletes the group of a service that left dc's catalog.
func (j *job) remove(dc *datacenter, name string) {
	source := dc.prefix + name
	if _, ok := j.last[source]; !ok {
		return
	}
	delete(j.last, source)
	j.emit(dc, &adapter.Group{Source: source})
}

// emit sends g on, or keeps it until its datacenter is complete.
func (j *job) emit(dc *datacenter, g *adapter.Group) {
	if j.started && dc.complete {
		j.mailbox.put(g)
		return
	}
	j.pending[g.Source] = g
}

// completed notes that dc has been read completely. The groups of sources
// dc no longer has are deleted. Once every datacenter in dcs is complete
// (and, with listed false, before the list of datacenters has been read,
// never), the first time the complete set goes out; later, the
// datacenter's groups that waited.
func (j *job) completed(dc *datacenter, dcs map[string]*datacenter, listed bool) {
	for src := range j.last {
		if !strings.HasPrefix(src, dc.prefix) {
			continue
		}
		if _, ok := dc.services[strings.TrimPrefix(src, dc.prefix)]; !ok {
			delete(j.last, src)
			j.pending[src] = &adapter.Group{Source: src}
		}
	}
	if !j.started {
		if !listed {
			return
		}
		for _, other := range dcs {
			if !other.complete {
				return
			}
		}
		j.started = true
		groups := make([]*adapter.Group, 0, len(j.pending))
		for _, g := range j.pending {
			if len(g.Targets) > 0 {
				groups = append(groups, g)
			}
		}
		clear(j.pending)
		j.mailbox.putAll(groups)
		return
	}
	var groups []*adapter.Group
	for src, g := range j.pending {
		if strings.HasPrefix(src, dc.prefix) {
			groups = append(groups, g)
			delete(j.pending, src)
		}
	}
	j.mailbox.put(groups...)
}

// dropDatacenter deletes every group of a datacenter that is no longer
// watched.
func (j *job) dropDatacenter(dc *datacenter) {
	var groups []*adapter.Group
	for src := range j.last {
		if strings.HasPrefix(src, dc.prefix) {
			delete(j.last, src)
			delete(j.pending, src)
			groups = append(groups, &adapter.Group{Source: src})
		}
	}
	if j.started {
		j.mailbox.put(groups...)
	}
}

// forward sends what the mailbox holds on up until ctx is cancelled.
func (j *job) forward(ctx context.Context, up chan<- []*adapter.Group) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-j.mailbox.ready:
		}
		groups, due := j.mailbox.take()
		if !due {
			continue
		}
		select {
		case up <- groups:
		case <-ctx.Done():
			return
		}
	}
}

// mailbox holds the latest group per source until the forwarder takes
// them. Putting never blocks.
type mailbox struct {
	mu     sync.Mutex
	groups map[string]*adapter.Group
	due    bool          // a send is due, even of no group
	ready  chan struct{} // 1-buffered: a send is due
}

func newMailbox() mailbox {
	return mailbox{groups: map[string]*adapter.Group{}, ready: make(chan struct{}, 1)}
}

// put adds groups; none is nothing to send.
func (m *mailbox) put(groups ...*adapter.Group) {
	if len(groups) > 0 {
		m.putAll(groups)
	}
}

// putAll adds groups and makes a send due even for none: the complete set
// of an empty catalog is a send too.
func (m *mailbox) putAll(groups []*adapter.Group) {
	m.mu.Lock()
	for _, g := range groups {
		m.groups[g.Source] = g
	}
	m.due = true
	m.mu.Unlock()
	select {
	case m.ready <- struct{}{}:
	default:
	}
}

// take empties the mailbox and returns its groups, sorted by source, and
// whether a send is due.
func (m *mailbox) take() ([]*adapter.Group, bool) {
	m.mu.Lock()
	groups := make([]*adapter.Group, 0, len(m.groups))
	for _, g := range m.groups {
		groups = append(groups, g)
	}
	clear(m.groups)
	due := m.due
	m.due = false
	m.mu.Unlock()
	slices.SortFunc(groups, func(a, b *adapter.Group) int { return cmp.Compare(a.Source, b.Source) })
	return groups, due
}

var fingerprintSeed = maphash.MakeSeed()

// fingerprint hashes a group's labels and targets, so that an unchanged
// group is recognised without keeping it.
func fingerprint(g *adapter.Group) uint64 {
	var h maphash.Hash
	h.SetSeed(fingerprintSeed)
	writeLabels(&h, g.Labels)
	for _, t := range g.Targets {
		h.WriteByte(0xff)
		writeLabels(&h, t)
	}
	return h.Sum64()
}

func writeLabels(h *maphash.Hash, ls model.LabelSet) {
	names := make([]string, 0, len(ls))
	for n := range ls {
		names = append(names, string(n))
	}
	slices.Sort(names)
	for _, n := range names {
		h.WriteString(n)
		h.WriteByte(0)
		h.WriteString(string(ls[model.LabelName(n)]))
		h.WriteByte(0)
	}
}
