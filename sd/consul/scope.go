package consul

import (
	"context"
	"fmt"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/hashicorp/consul/api"
)

// scopeKey names what one read of a service's instances asks the agent:
// jobs whose keys are equal share every read.
type scopeKey struct {
	datacenter   string // "" for the agent's own
	namespace    string
	partition    string
	healthFilter string // a health filter the agent applies; "" when none must
	stale        bool   // any server may answer
}

func (k scopeKey) String() string {
	s := k.datacenter
	if s == "" {
		s = "(the agent's)"
	}
	if k.namespace != "" || k.partition != "" {
		s += fmt.Sprintf(" namespace=%q partition=%q", k.namespace, k.partition)
	}
	if k.healthFilter != "" {
		s += fmt.Sprintf(" health_filter=%q", k.healthFilter)
	}
	if !k.stale {
		s += " consistent"
	}
	return s
}

// scope is what the watcher knows of one scope: its service lists, the
// services its jobs want, their long polls, doorbell mode. A restart
// replaces it with a new one: messages carry the scope they are about, and
// those of a replaced one are dropped.
type scope struct {
	key    scopeKey
	logger log.Logger
	ctx    context.Context // ends when the scope is stopped
	cancel context.CancelFunc

	lists     map[string]*serviceList // by catalog filter
	services  map[string]*service     // every service some view wants
	views     map[*job]*view
	nextGen   uint64
	longPolls int               // services with a long poll of their own
	counted   int               // services counted in the Watch's watched count
	nodes     nodeDiff          // for the nodes doorbell
	names     map[string]string // node names, interned

	doorbells *doorbells // non-nil in doorbell mode
}

// serviceList is one of a scope's service lists (one per catalog filter)
// as last read.
type serviceList struct {
	filter string
	names  map[string][]string
	index  uint64
	listed bool
	stop   context.CancelFunc
}

// service is what the watcher knows of one service.
type service struct {
	name       string
	gen        uint64 // distinguishes this appearance of the name from earlier ones
	index      uint64 // X-Consul-Index of the last read
	fetched    bool   // read at least once
	lastChange time.Time
	shape      shape              // of the last read, for the catalog summary
	nodes      uint64             // the fingerprints of the last read's nodes, summed, for the nodes doorbell
	writes     uint64             // the write hashes of the last read's instances, summed, for verifications
	wantedBy   int                // views that want it
	stopPoll   context.CancelFunc // ends the service's own long poll; nil without one
	health     healthState        // of the last read, for the health doorbell

	// unreadable, when not nil, is why the service cannot be read: its
	// views go on without it (unreadable.go).
	unreadable   error
	failingSince time.Time          // when its reads began to fail, before it was ever read
	failures     int                // failed reads since then
	stopRetry    context.CancelFunc // ends its retries in doorbell mode; nil without them
}

func (s *service) hasLongPoll() bool { return s.stopPoll != nil }

// candidate returns s as a candidate for a long poll.
func (s *service) candidate() candidate { return candidate{s.name, s.lastChange} }

// caughtUp reports whether every view of sc has seen every service it
// wants.
func (sc *scope) caughtUp() bool {
	for _, v := range sc.views {
		if !v.caughtUp() {
			return false
		}
	}
	return true
}

// intern returns one string for each node name, shared by every service.
func (sc *scope) intern(name string) string {
	if s, ok := sc.names[name]; ok {
		return s
	}
	sc.names[name] = name
	return name
}

// newScope starts watching key.
func (w *watcher) newScope(key scopeKey) *scope {
	ctx, cancel := context.WithCancel(w.ctx)
	logger := w.w.logger
	if key.datacenter != "" {
		logger = log.With(logger, "datacenter", key.datacenter)
	}
	if key != (scopeKey{datacenter: key.datacenter, stale: key.stale}) {
		logger = log.With(logger, "scope", key.String())
	}
	return &scope{
		key: key, logger: logger, ctx: ctx, cancel: cancel,
		lists: map[string]*serviceList{}, services: map[string]*service{}, views: map[*job]*view{}, names: map[string]string{},
	}
}

// stop ends every watch of sc.
func (w *watcher) stop(sc *scope) {
	w.leaveDoorbellMode(sc)
	for _, s := range sc.services {
		w.stopLongPoll(sc, s)
	}
	sc.cancel()
	w.w.watched.Add(int64(-sc.counted))
	sc.counted = 0
}

// ensureList starts reading the service list of sc for filter, unless it
// is read already.
func (w *watcher) ensureList(sc *scope, filter string) {
	if _, ok := sc.lists[filter]; ok {
		return
	}
	ctx, cancel := context.WithCancel(sc.ctx)
	sc.lists[filter] = &serviceList{filter: filter, stop: cancel}
	p := w.poller(sc, "service list", "/v1/catalog/services", filter)
	fetch := func(ctx context.Context, q *api.QueryOptions) (map[string][]string, *api.QueryMeta, error) {
		return w.w.client.Catalog().Services(q)
	}
	w.wg.Go(func() {
		poll(ctx, p, 0, fetch, func(names map[string][]string, index uint64) {
			select {
			case w.lists <- listed{sc, filter, names, index}:
			case <-ctx.Done():
			}
		})
	})
}

// reconcile follows a new service list: each view that reads it wants the
// services it selects; services no view wants any more are deleted, new
// ones are watched.
func (w *watcher) reconcile(sc *scope, l *serviceList) {
	var added, again []*service
	removed := false
	for _, v := range sc.views {
		if v.job.cfg.Selection.Filter != l.filter {
			continue
		}
		v.listed = true
		for name := range v.wanted {
			tags, ok := l.names[name]
			if !ok || !v.job.cfg.Selection.wantService(name, tags) {
				v.remove(name)
				removed = w.unwant(sc, name) || removed
			}
		}
		for name, tags := range l.names {
			if _, ok := v.wanted[name]; ok || !v.job.cfg.Selection.wantService(name, tags) {
				continue
			}
			v.wanted[name] = struct{}{}
			v.unseen[name] = struct{}{}
			s := w.want(sc, name)
			if s.unreadable != nil {
				delete(v.unseen, name) // its jobs go on without it
			}
			switch {
			case s.wantedBy == 1:
				added = append(added, s)
			case s.fetched:
				again = append(again, s) // read before this view wanted it
			}
		}
	}
	defer func() {
		for _, s := range again {
			w.refresh(sc, s)
		}
	}()
	if entered := w.fit(sc); !entered && sc.doorbells != nil {
		for _, s := range added {
			w.readSoon(sc, s)
		}
		w.requestSummary(sc, time.Now(), l.index)
	}
}

// want counts a view that wants the service name of sc, and returns it.
func (w *watcher) want(sc *scope, name string) *service {
	s := sc.services[name]
	if s == nil {
		sc.nextGen++
		s = &service{name: name, gen: sc.nextGen}
		sc.services[name] = s
		sc.counted++
		w.w.watched.Add(1)
		level.Debug(sc.logger).Log("msg", "Service joined the catalog", "service", name)
	}
	s.wantedBy++
	return s
}

// unwant uncounts a view that wanted the service name; a service no view
// wants is no longer watched. It reports whether the service went.
func (w *watcher) unwant(sc *scope, name string) bool {
	s := sc.services[name]
	if s == nil {
		return false
	}
	if s.wantedBy--; s.wantedBy > 0 {
		return false
	}
	w.stopLongPoll(sc, s)
	if s.stopRetry != nil {
		s.stopRetry()
	}
	if sc.doorbells != nil {
		sc.doorbells.alloc.release(name)
	}
	delete(sc.services, name)
	if s.unreadable != nil {
		w.publishUnreadable()
	}
	sc.counted--
	w.w.watched.Add(-1)
	level.Debug(sc.logger).Log("msg", "Service left the catalog", "service", name)
	return true
}

// fit chooses sc's watching mode for its share of the budget: a long poll
// for every service when they fit, doorbell mode when they do not. It
// reports whether it entered doorbell mode (or entered it again, for a new
// share), having queued reads of the services not read yet and asked for a
// sweep.
func (w *watcher) fit(sc *scope) (entered bool) {
	share := w.streams()
	if len(sc.services) <= share-1 {
		w.leaveDoorbellMode(sc)
		for _, s := range sc.services {
			if !s.hasLongPoll() {
				w.startLongPoll(sc, s, s.index)
			}
		}
		return false
	}
	if sc.doorbells != nil && sc.doorbells.share == share {
		return false
	}
	w.leaveDoorbellMode(sc)
	w.enterDoorbellMode(sc, share)
	// What the mode it left had under way is read anew: services not read
	// yet, and a sweep for what changed meanwhile.
	var index uint64
	for _, s := range sc.services {
		if !s.fetched {
			w.readSoon(sc, s)
		}
	}
	for _, l := range sc.lists {
		index = max(index, l.index)
	}
	if index > 0 {
		w.requestSweep(sc, time.Now(), index)
	}
	return true
}

// poller returns the settings of one blocking query of sc.
func (w *watcher) poller(sc *scope, what, endpoint, filter string) poller {
	return poller{
		what:        what,
		endpoint:    endpoint,
		filter:      filter,
		dc:          sc.key.datacenter,
		namespace:   sc.key.namespace,
		partition:   sc.key.partition,
		logger:      sc.logger,
		wait:        w.w.cfg.WaitTime,
		minInterval: w.w.cfg.MinRequestInterval,
		allowStale:  sc.key.stale,
		resets:      w.w.metrics.resets,
		immediate:   w.w.immediate,
	}
}

// startLongPoll starts a long poll of its own for s, from index (0 asks
// for the current state at once).
func (w *watcher) startLongPoll(sc *scope, s *service, index uint64) {
	if s.stopRetry != nil {
		s.stopRetry() // the long poll retries
		s.stopRetry = nil
	}
	ctx, cancel := context.WithCancel(sc.ctx)
	s.stopPoll = cancel
	sc.longPolls++
	w.w.longPolls.Add(1)
	name, gen := s.name, s.gen
	p := w.poller(sc, "service "+name, "/v1/health/service/"+name, sc.key.healthFilter)
	fetch := func(ctx context.Context, q *api.QueryOptions) ([]*api.ServiceEntry, *api.QueryMeta, error) {
		return w.w.client.Health().Service(name, "", false, q)
	}
	p.failed = func(err error) {
		select {
		case w.reads <- read{sc: sc, name: name, gen: gen, err: err, poll: true}:
		case <-ctx.Done():
		}
	}
	w.wg.Go(func() {
		poll(ctx, p, index, fetch, func(entries []*api.ServiceEntry, idx uint64) {
			select {
			case w.reads <- read{sc: sc, name: name, gen: gen, index: idx, entries: entries}:
			case <-ctx.Done():
			}
		})
	})
}

// stopLongPoll ends the long poll of s, if it has one.
func (w *watcher) stopLongPoll(sc *scope, s *service) {
	if s.hasLongPoll() {
		s.stopPoll()
		s.stopPoll = nil
		sc.longPolls--
		w.w.longPolls.Add(-1)
	}
}

// refresh reads s again at once, for a view that joined after it was read.
func (w *watcher) refresh(sc *scope, s *service) {
	if s.hasLongPoll() {
		w.stopLongPoll(sc, s)
		w.startLongPoll(sc, s, 0)
		return
	}
	w.readSoon(sc, s)
}
