package consul

import (
	"context"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/hashicorp/consul/api"
)

// datacenter is what the watcher knows of one datacenter. A restart
// replaces it with a new one: messages carry the datacenter they are about,
// and those of a replaced one are dropped.
type datacenter struct {
	name   string // "" for the agent's own
	prefix string // put before each service name to make a group's Source
	logger log.Logger
	ctx    context.Context // ends when the datacenter is stopped
	cancel context.CancelFunc

	services     map[string]*service
	nextGen      uint64
	listed       bool   // the service list has been read
	catalogIndex uint64 // the service list's index
	complete     bool   // every service has been read since the list was
	longPolls    int    // services with a long poll of their own
	counted      int    // services counted in the Discoverer's watched count

	doorbells *doorbells // non-nil in doorbell mode
}

// service is what the watcher knows of one service.
type service struct {
	name       string
	gen        uint64 // distinguishes this appearance of the name from earlier ones
	index      uint64 // X-Consul-Index of the last read
	fetched    bool   // read at least once
	lastChange time.Time
	stopPoll   context.CancelFunc // ends the service's own long poll; nil without one
	health     healthState        // of the last read, for the health doorbell
}

func (s *service) hasLongPoll() bool { return s.stopPoll != nil }

// candidate returns s as a candidate for a long poll.
func (s *service) candidate() candidate { return candidate{s.name, s.lastChange} }

// start starts watching the datacenter name: its service list first.
func (w *watcher) start(name string) *datacenter {
	ctx, cancel := context.WithCancel(w.ctx)
	logger := w.d.logger
	if name != "" {
		logger = log.With(logger, "datacenter", name)
	}
	dc := &datacenter{name: name, logger: logger, ctx: ctx, cancel: cancel, services: map[string]*service{}}
	if w.d.multiDatacenter() {
		dc.prefix = name + "/"
	}
	sel := &w.d.cfg.Selection
	p := w.poller(dc, "service list", "/v1/catalog/services", sel.Filter)
	fetch := func(ctx context.Context, q *api.QueryOptions) (map[string][]string, *api.QueryMeta, error) {
		q.NodeMeta = sel.NodeMeta
		return w.d.client.Catalog().Services(q)
	}
	w.wg.Go(func() {
		poll(ctx, p, 0, fetch, func(names map[string][]string, index uint64) {
			select {
			case w.lists <- serviceList{dc, names, index}:
			case <-ctx.Done():
			}
		})
	})
	return dc
}

// stop ends every watch of dc.
func (w *watcher) stop(dc *datacenter) {
	w.leaveDoorbellMode(dc)
	for _, s := range dc.services {
		w.stopLongPoll(dc, s)
	}
	dc.cancel()
	w.d.watched.Add(int64(-dc.counted))
	dc.counted = 0
}

// streams is dc's share of the requests the budget allows in flight.
func (w *watcher) streams() int {
	return max(w.d.streams()/max(len(w.dcs), 1), 1)
}

// reconcile follows a new service list: new services are watched, removed
// ones are deleted from the output, and the watching mode follows the count.
func (w *watcher) reconcile(dc *datacenter, l serviceList) {
	dc.catalogIndex, dc.listed = l.index, true
	sel := &w.d.cfg.Selection
	for name, tags := range l.names {
		if !sel.wantService(name, tags) {
			delete(l.names, name)
		}
	}
	for name, s := range dc.services {
		if _, ok := l.names[name]; ok {
			continue
		}
		w.stopLongPoll(dc, s)
		if dc.doorbells != nil {
			dc.doorbells.alloc.release(name)
		}
		delete(dc.services, name)
		w.job.remove(dc, name)
		level.Debug(dc.logger).Log("msg", "Service left the catalog", "service", name)
	}
	var added []*service
	for name := range l.names {
		if _, ok := dc.services[name]; ok {
			continue
		}
		dc.nextGen++
		s := &service{name: name, gen: dc.nextGen}
		dc.services[name] = s
		added = append(added, s)
		level.Debug(dc.logger).Log("msg", "Service joined the catalog", "service", name)
	}
	w.d.watched.Add(int64(len(dc.services) - dc.counted))
	dc.counted = len(dc.services)

	if len(dc.services) <= w.streams()-1 {
		w.leaveDoorbellMode(dc)
		for _, s := range dc.services {
			if !s.hasLongPoll() {
				w.startLongPoll(dc, s)
			}
		}
		return
	}
	now := time.Now()
	w.enterDoorbellMode(dc)
	for _, s := range added {
		w.readSoon(dc, s)
	}
	w.requestSweep(dc, now, l.index)
}

// poller returns the settings of one blocking query of dc.
func (w *watcher) poller(dc *datacenter, what, endpoint, filter string) poller {
	return poller{
		what:        what,
		endpoint:    endpoint,
		filter:      filter,
		dc:          dc.name,
		logger:      dc.logger,
		wait:        w.d.cfg.WaitTime,
		minInterval: w.d.cfg.MinRequestInterval,
		allowStale:  w.d.cfg.AllowStale,
		resets:      w.d.metrics.resets,
	}
}

// startLongPoll starts a long poll of its own for s.
func (w *watcher) startLongPoll(dc *datacenter, s *service) {
	ctx, cancel := context.WithCancel(dc.ctx)
	s.stopPoll = cancel
	dc.longPolls++
	w.d.longPolls.Add(1)
	name, gen, index := s.name, s.gen, s.index
	sel := &w.d.cfg.Selection
	p := w.poller(dc, "service "+name, "/v1/health/service/"+name, sel.HealthFilter)
	fetch := func(ctx context.Context, q *api.QueryOptions) ([]*api.ServiceEntry, *api.QueryMeta, error) {
		q.NodeMeta = sel.NodeMeta
		return w.d.client.Health().ServiceMultipleTags(name, sel.Tags, false, q)
	}
	w.wg.Go(func() {
		poll(ctx, p, index, fetch, func(entries []*api.ServiceEntry, idx uint64) {
			select {
			case w.reads <- read{dc: dc, name: name, gen: gen, index: idx, entries: entries}:
			case <-ctx.Done():
			}
		})
	})
}

// stopLongPoll ends the long poll of s, if it has one.
func (w *watcher) stopLongPoll(dc *datacenter, s *service) {
	if s.hasLongPoll() {
		s.stopPoll()
		s.stopPoll = nil
		dc.longPolls--
		w.d.longPolls.Add(-1)
	}
}
