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

// Job is one job of a Watch: an adapter.Discoverer for the targets its
// configuration selects.
type Job struct {
	w            *Watch
	cfg          JobConfig
	filter       *localFilter // the health filter, when it is evaluated here
	serverFilter string       // the health filter, when the agent applies it
	state        *job
	attached     bool // the watch watches it (guarded by the Watch's mu)
}

// Run implements adapter.Discoverer. It sends groups as it reads them, and
// adapter.Complete once every service the job wants in every datacenter has
// been read; then the groups that change. The Watch must run meanwhile.
// When Run returns, the job is no longer watched; run a job once.
func (j *Job) Run(ctx context.Context, up chan<- []*adapter.Group) {
	j.w.attachJob(j)
	j.state.forward(ctx, up)
	select {
	case j.w.detach <- j.state:
	case <-j.w.stopped:
	}
}

// Staged implements adapter.Staged: a Job sends its initial set in parts.
func (j *Job) Staged() bool { return true }

// job is the watcher's state of one running Job. It turns reads into the
// job's target groups and hands them to the adapter as they come. This is
// the one place that decides what is complete: once every view (the job in
// one scope) has caught up, it sends adapter.Complete, and the adapter
// writes. A view started again from scratch (Consul's index went
// backwards, a new token) keeps its old groups until it has caught up
// again; then the groups it no longer has are deleted.
//
// The watcher calls its methods; the job's Run forwards its mailbox, so that
// the watcher never waits for the adapter.
type job struct {
	cfg       *JobConfig
	instances instances // the instance-level selection
	key       func(dc string) scopeKey
	views     map[scopeKey]*view

	last    map[string]uint64 // source → fingerprint of its latest group
	started bool              // the complete set has been sent

	mailbox mailbox
}

func newJob(j *Job) *job {
	return &job{
		cfg:       &j.cfg,
		instances: j.cfg.Selection.instances(j.filter),
		key: func(dc string) scopeKey {
			return scopeKey{datacenter: dc, namespace: j.cfg.Namespace, partition: j.cfg.Partition, healthFilter: j.serverFilter, stale: j.cfg.AllowStale}
		},
		views:   map[scopeKey]*view{},
		last:    map[string]uint64{},
		mailbox: newMailbox(),
	}
}

// multiDatacenter reports whether the job's sources carry the datacenter.
func (j *job) multiDatacenter() bool { return j.cfg.AllDatacenters || len(j.cfg.Datacenters) > 1 }

// view is a job's part of one scope: the services of the scope it wants,
// and whether it has seen all of them.
type view struct {
	job    *job
	scope  *scope
	prefix string // put before each service name to make a group's Source

	listed bool                // its service list has been read since the view started
	wanted map[string]struct{} // services of the scope the job wants
	unseen map[string]struct{} // wanted and not passed to the job since the view started
	done   bool                // it has caught up once since it started: changes go out at once
}

// caughtUp reports whether every service the view wants has been passed to
// the job.
func (v *view) caughtUp() bool { return v.listed && len(v.unseen) == 0 }

// update takes a read of a service the view wants and reports whether the
// service's targets changed.
func (v *view) update(name string, entries []*api.ServiceEntry) bool {
	delete(v.unseen, name)
	j := v.job
	source := v.prefix + name
	g := toGroup(source, name, j.instances.admitted(entries), j.cfg.TagSeparator)
	fp := fingerprint(g)
	if old, ok := j.last[source]; ok && old == fp {
		return false
	}
	j.last[source] = fp
	j.mailbox.put(g)
	return true
}

// remove deletes the group of a service the view no longer wants.
func (v *view) remove(name string) {
	delete(v.wanted, name)
	delete(v.unseen, name)
	source := v.prefix + name
	if _, ok := v.job.last[source]; !ok {
		return
	}
	delete(v.job.last, source)
	v.job.mailbox.put(&adapter.Group{Source: source})
}

// completed notes that v has caught up since it started: the groups of
// sources it no longer has are deleted, and once every view has caught up
// (and, with AllDatacenters, the list of datacenters has been read) the
// first time, the initial set is complete.
func (j *job) completed(v *view, dcsListed bool) {
	var gone []*adapter.Group
	for src := range j.last {
		if !strings.HasPrefix(src, v.prefix) {
			continue
		}
		if _, ok := v.wanted[strings.TrimPrefix(src, v.prefix)]; !ok {
			delete(j.last, src)
			gone = append(gone, &adapter.Group{Source: src})
		}
	}
	j.mailbox.put(gone...)
	if j.started || j.cfg.AllDatacenters && !dcsListed {
		return
	}
	for _, other := range j.views {
		if !other.done {
			return
		}
	}
	j.started = true
	j.mailbox.complete()
}

// dropView deletes every group of a view that ends (its datacenter is
// gone).
func (j *job) dropView(v *view) {
	delete(j.views, v.scope.key)
	var groups []*adapter.Group
	for src := range j.last {
		if strings.HasPrefix(src, v.prefix) {
			delete(j.last, src)
			groups = append(groups, &adapter.Group{Source: src})
		}
	}
	j.mailbox.put(groups...)
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
// them, and whether the initial set is complete. Putting never blocks.
type mailbox struct {
	mu      sync.Mutex
	groups  map[string]*adapter.Group
	done    bool          // adapter.Complete is due
	settled bool          // adapter.Settled is due
	ready   chan struct{} // 1-buffered: a send is due
}

func newMailbox() mailbox {
	return mailbox{groups: map[string]*adapter.Group{}, ready: make(chan struct{}, 1)}
}

// put adds groups; none is nothing to send.
func (m *mailbox) put(groups ...*adapter.Group) {
	if len(groups) == 0 {
		return
	}
	m.mu.Lock()
	for _, g := range groups {
		m.groups[g.Source] = g
	}
	m.mu.Unlock()
	m.ring()
}

// complete makes adapter.Complete due, after the groups put so far.
func (m *mailbox) complete() {
	m.mu.Lock()
	m.done = true
	m.mu.Unlock()
	m.ring()
}

// settle makes adapter.Settled due, after the groups put so far.
func (m *mailbox) settle() {
	m.mu.Lock()
	m.settled = true
	m.mu.Unlock()
	m.ring()
}

func (m *mailbox) ring() {
	select {
	case m.ready <- struct{}{}:
	default:
	}
}

// take empties the mailbox and returns its groups, sorted by source, then
// adapter.Complete and adapter.Settled when they are due, and whether there
// is anything to send.
func (m *mailbox) take() ([]*adapter.Group, bool) {
	m.mu.Lock()
	groups := make([]*adapter.Group, 0, len(m.groups)+1)
	for _, g := range m.groups {
		groups = append(groups, g)
	}
	clear(m.groups)
	complete, settled := m.done, m.settled
	m.done, m.settled = false, false
	m.mu.Unlock()
	slices.SortFunc(groups, func(a, b *adapter.Group) int { return cmp.Compare(a.Source, b.Source) })
	if complete {
		groups = append(groups, adapter.Complete)
	}
	if settled {
		groups = append(groups, adapter.Settled)
	}
	return groups, len(groups) > 0
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
