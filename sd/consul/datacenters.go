package consul

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log/level"
	"github.com/hashicorp/consul/api"

	"github.com/custom-sd/custom-sd/adapter"
)

// The coordinator runs one watch per datacenter and merges what they send.
//
// It sends nothing until every datacenter it started with has sent its
// complete set, then their union at once. A datacenter that fails later
// keeps its last targets while the others go on. A watch can be restarted
// (a new ACL token, a new share of the connection budget when datacenters
// come or go): the new watch reads everything again, and when its first
// complete set arrives, the groups the old one had sent and the new one
// lacks are deleted; until then the old targets stay.

// ServiceOf returns the service name in a group's Source, which is the
// service name itself or "<datacenter>/<service>".
func ServiceOf(source string) string {
	return source[strings.LastIndexByte(source, '/')+1:]
}

// dcMsg is a send of one datacenter's watch, or with reset its request to
// be started over.
type dcMsg struct {
	dc     string
	gen    uint64
	groups []*adapter.Group
	reset  bool
}

// dcState is what the coordinator knows of one datacenter.
type dcState struct {
	gen      uint64
	cancel   context.CancelFunc
	done     chan struct{}
	complete bool                // the current watch has sent its complete set
	sources  map[string]struct{} // sources sent with targets
}

type coordinator struct {
	d      *Discoverer
	ctx    context.Context
	up     chan<- []*adapter.Group
	msgs   chan dcMsg
	dcs    map[string]*dcState
	gen    uint64
	multi  bool // sources carry the datacenter
	sent   bool // the complete initial set has been sent
	held   []*adapter.Group
	listed bool // with AllDatacenters: the list has been read once
}

// Run implements adapter.Discoverer.
func (d *Discoverer) Run(ctx context.Context, up chan<- []*adapter.Group) {
	c := &coordinator{
		d:     d,
		ctx:   ctx,
		up:    up,
		msgs:  make(chan dcMsg),
		dcs:   map[string]*dcState{},
		multi: d.cfg.AllDatacenters || len(d.cfg.Datacenters) > 1,
	}
	defer c.stopAll()
	level.Info(d.logger).Log("msg", "Watching Consul", "server", d.cfg.API.Address, "datacenters", c.describe(), "max_connections", d.cfg.MaxConnections)

	var listCh chan []string
	if d.cfg.AllDatacenters {
		listCh = make(chan []string)
		done := make(chan struct{})
		defer func() { <-done }()
		go func() {
			defer close(done)
			d.followDatacenters(ctx, listCh)
		}()
	} else {
		dcs := d.cfg.Datacenters
		if len(dcs) == 0 {
			dcs = []string{""}
		}
		c.setDatacenters(dcs)
	}

	var tokenC <-chan time.Time
	if d.cfg.TokenFile != "" {
		t := time.NewTicker(d.cfg.TokenCheckInterval)
		defer t.Stop()
		tokenC = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-c.msgs:
			c.receive(m)
		case dcs := <-listCh:
			c.listed = true
			c.setDatacenters(dcs)
		case <-tokenC:
			c.checkToken()
		}
		c.sendInitial()
	}
}

func (c *coordinator) describe() string {
	switch {
	case c.d.cfg.AllDatacenters:
		return "all"
	case len(c.d.cfg.Datacenters) == 0:
		return "the agent's own"
	}
	return strings.Join(c.d.cfg.Datacenters, ",")
}

// setDatacenters starts watching new datacenters and stops watching those
// that are gone, deleting their targets. When the count changes, every
// watch restarts with its new share of the budget.
func (c *coordinator) setDatacenters(dcs []string) {
	want := map[string]bool{}
	for _, dc := range dcs {
		want[dc] = true
	}
	changed := false
	for dc, st := range c.dcs {
		if want[dc] {
			continue
		}
		c.stop(st)
		delete(c.dcs, dc)
		changed = true
		level.Info(c.d.logger).Log("msg", "Datacenter is gone; deleting its targets", "datacenter", dc, "groups", len(st.sources))
		var deleted []*adapter.Group
		for src := range st.sources {
			deleted = append(deleted, &adapter.Group{Source: src})
		}
		c.forward(deleted)
	}
	for _, dc := range dcs {
		if _, ok := c.dcs[dc]; !ok {
			c.dcs[dc] = &dcState{sources: map[string]struct{}{}}
			changed = true
			if c.listed && c.sent {
				level.Info(c.d.logger).Log("msg", "Watching a new datacenter", "datacenter", dc)
			}
		}
	}
	if changed {
		c.d.dcCount.Store(int64(len(c.dcs)))
		if share := c.d.streams() / max(len(c.dcs), 1); share < MinConnections {
			level.Warn(c.d.logger).Log("msg", "Many datacenters share a small connection budget; raise --consul.max-connections", "datacenters", len(c.dcs), "requests_per_datacenter", share)
		}
		c.restartAll()
	}
}

// restartAll (re)starts every datacenter's watch.
func (c *coordinator) restartAll() {
	for _, st := range c.dcs {
		c.stop(st)
	}
	for dc := range c.dcs {
		c.start(dc)
	}
}

// start starts a new watch of dc, whose complete set will replace what the
// datacenter had.
func (c *coordinator) start(dc string) {
	st := c.dcs[dc]
	c.gen++
	st.gen, st.complete = c.gen, false
	ctx, cancel := context.WithCancel(c.ctx)
	st.cancel, st.done = cancel, make(chan struct{})
	prefix := ""
	if c.multi {
		prefix = dc + "/"
	}
	gen := st.gen
	deliver := func(m dcMsg) bool {
		select {
		case c.msgs <- m:
			return true
		case <-ctx.Done():
			return false
		}
	}
	up := make(chan []*adapter.Group)
	var wg sync.WaitGroup
	wg.Go(func() {
		if c.d.runDC(ctx, dc, prefix, up) {
			deliver(dcMsg{dc: dc, gen: gen, reset: true})
		}
	})
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case groups := <-up:
				if !deliver(dcMsg{dc: dc, gen: gen, groups: groups}) {
					return
				}
			}
		}
	})
	go func(done chan struct{}) {
		wg.Wait()
		close(done)
	}(st.done)
}

// stop stops a datacenter's watch and waits for it.
func (c *coordinator) stop(st *dcState) {
	if st.cancel != nil {
		st.cancel()
		<-st.done
		st.cancel = nil
	}
}

func (c *coordinator) stopAll() {
	for _, st := range c.dcs {
		c.stop(st)
	}
}

// receive takes in a send of one datacenter's watch.
func (c *coordinator) receive(m dcMsg) {
	st := c.dcs[m.dc]
	if st == nil || st.gen != m.gen {
		return // from a watch that was stopped
	}
	if m.reset {
		c.stop(st)
		c.start(m.dc)
		return
	}
	groups := m.groups
	if !st.complete {
		// The watch's complete set: whatever the datacenter had before and
		// this set lacks is gone.
		st.complete = true
		present := map[string]struct{}{}
		for _, g := range groups {
			present[g.Source] = struct{}{}
		}
		for src := range st.sources {
			if _, ok := present[src]; !ok {
				groups = append(groups, &adapter.Group{Source: src})
			}
		}
	}
	for _, g := range groups {
		if len(g.Targets) > 0 {
			st.sources[g.Source] = struct{}{}
		} else {
			delete(st.sources, g.Source)
		}
	}
	c.forward(groups)
}

// forward sends groups on, or holds them until the initial set is complete.
func (c *coordinator) forward(groups []*adapter.Group) {
	if len(groups) == 0 {
		return
	}
	if !c.sent {
		c.held = append(c.held, groups...)
		return
	}
	c.send(groups)
}

// sendInitial sends everything held once every datacenter has sent its
// complete set.
func (c *coordinator) sendInitial() {
	if c.sent || (c.d.cfg.AllDatacenters && !c.listed) {
		return
	}
	for _, st := range c.dcs {
		if !st.complete {
			return
		}
	}
	// Later groups of a source replace earlier ones.
	latest := map[string]*adapter.Group{}
	for _, g := range c.held {
		latest[g.Source] = g
	}
	groups := make([]*adapter.Group, 0, len(latest))
	for _, g := range latest {
		groups = append(groups, g)
	}
	slices.SortFunc(groups, func(a, b *adapter.Group) int { return cmp.Compare(a.Source, b.Source) })
	c.sent, c.held = true, nil
	if len(c.dcs) > 1 {
		level.Info(c.d.logger).Log("msg", "Read every datacenter once", "datacenters", len(c.dcs), "groups", len(groups))
	}
	c.send(groups)
}

func (c *coordinator) send(groups []*adapter.Group) {
	select {
	case c.up <- groups:
	case <-c.ctx.Done():
	}
}

// checkToken re-reads the token file. A new token replaces the old one in
// every later request, and every watch starts over so that no blocking
// query goes on waiting with the old one.
func (c *coordinator) checkToken() {
	tok, err := readToken(c.d.cfg.TokenFile)
	if err != nil {
		level.Warn(c.d.logger).Log("msg", "Cannot read the token file; keeping the current token", "err", err)
		return
	}
	if old := c.d.transport.token.Load(); old != nil && *old == tok {
		return
	}
	c.d.transport.token.Store(&tok)
	level.Info(c.d.logger).Log("msg", "The ACL token changed; watching again with the new one", "token_file", c.d.cfg.TokenFile)
	c.restartAll()
}

// followDatacenters reads the list of datacenters now and every
// DatacentersInterval, and sends it whenever it changes. A failed read is
// retried with backoff; the last list stays meanwhile.
func (d *Discoverer) followDatacenters(ctx context.Context, out chan<- []string) {
	var (
		last    []string
		backoff time.Duration
		failing error
	)
	for {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout(0))
		var dcs []string
		_, err := d.client.Raw().Query("/v1/catalog/datacenters", &dcs, (&api.QueryOptions{}).WithContext(rctx))
		cancel()
		if ctx.Err() != nil {
			return
		}
		wait := d.cfg.DatacentersInterval
		switch {
		case err != nil:
			backoff = nextBackoff(backoff, err)
			logFailure(poller{what: "datacenters", endpoint: "/v1/catalog/datacenters", logger: d.logger}, failing, err, backoff)
			failing, wait = err, jitter(backoff)
		case len(dcs) == 0:
			level.Warn(d.logger).Log("msg", "Consul listed no datacenters; keeping the last list")
		default:
			failing, backoff = nil, 0
			slices.Sort(dcs)
			if !slices.Equal(dcs, last) {
				last = dcs
				select {
				case out <- dcs:
				case <-ctx.Done():
					return
				}
			}
		}
		if !sleep(ctx, wait) {
			return
		}
	}
}
