package consul

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log/level"
	"github.com/hashicorp/consul/api"
)

// watcher owns everything a Watch knows of Consul: the scopes, their
// services, which services have a long poll, doorbell mode, and the jobs'
// views. Only its own goroutine (run) touches that state; the goroutines it
// starts (long polls, readers, the datacenter list) report to it on
// channels, each message naming its scope, and it passes targets to the
// jobs.
type watcher struct {
	w   *Watch
	ctx context.Context
	wg  sync.WaitGroup // every goroutine the watcher started

	scopes map[scopeKey]*scope
	jobs   map[*job]struct{}

	datacenters []string // the agent's list of datacenters, for jobs that watch all
	dcsListed   bool     // it has been read
	stopDCList  context.CancelFunc

	lists         chan listed
	reads         chan read
	rings         chan ring
	summaries     chan summaryDone
	verifications chan verifyDone
	dcList        chan []string

	sweepTimer *time.Timer
	sweepAt    time.Time

	budget      *budget
	budgetTimer *time.Timer
	probing     atomic.Bool // a probe is out (probe.go)
}

// listed is a new service list of a scope.
type listed struct {
	sc     *scope
	filter string
	names  map[string][]string
	index  uint64
}

// read is one read of a service's instances, by its long poll or a reader.
type read struct {
	sc        *scope
	name      string
	gen       uint64
	index     uint64
	entries   []*api.ServiceEntry
	err       error      // the read failed
	poll      bool       // a long poll's failure; it retries on its own
	sweep     bool       // read as part of a sweep
	probe     bool       // only the index was read
	outOfDate bool       // asked for by a verification that found the last read out of date
	queue     *readQueue // the read queue it came from; nil for a long poll's
}

// ring is a doorbell's news in doorbell mode: a new index, and for the
// health doorbell the checks that are not passing.
type ring struct {
	sc       *scope
	doorbell string // doorbellNodes, doorbellChecks or startupDone
	index    uint64
	checks   api.HealthChecks
	nodes    []*api.Node
}

func newWatcher(ctx context.Context, w *Watch) *watcher {
	return &watcher{
		w:             w,
		ctx:           ctx,
		scopes:        map[scopeKey]*scope{},
		jobs:          map[*job]struct{}{},
		lists:         make(chan listed),
		reads:         make(chan read),
		rings:         make(chan ring),
		summaries:     make(chan summaryDone),
		verifications: make(chan verifyDone),
		dcList:        make(chan []string),
		budget:        newBudget(w.cfg.MaxConnections),
	}
}

// run watches for the jobs created before it and those that come later
// until the watcher's context is cancelled, then stops everything it
// started and waits for it.
func (w *watcher) run(jobs []*job) {
	defer w.wg.Wait()
	defer w.stopAll()
	for _, j := range jobs {
		w.attach(j)
	}
	var tokenC <-chan time.Time
	if w.w.cfg.TokenFile != "" {
		t := time.NewTicker(w.w.cfg.TokenCheckInterval)
		defer t.Stop()
		tokenC = t.C
	}
	probes := time.NewTicker(w.w.probeEvery)
	defer probes.Stop()
	for {
		var sweepC, budgetC <-chan time.Time
		if w.sweepTimer != nil {
			sweepC = w.sweepTimer.C
		}
		if w.budgetTimer != nil {
			budgetC = w.budgetTimer.C
		}
		select {
		case <-w.ctx.Done():
			return
		case j := <-w.w.attach:
			w.attach(j)
		case j := <-w.w.detach:
			w.detach(j)
		case l := <-w.lists:
			w.serviceList(l)
		case r := <-w.reads:
			w.read(r)
		case r := <-w.rings:
			w.ring(r)
		case d := <-w.summaries:
			w.summarized(d)
		case d := <-w.verifications:
			w.verified(d)
		case <-sweepC:
			w.sweepTimer, w.sweepAt = nil, time.Time{}
			w.sweepsDue()
		case dcs := <-w.dcList:
			w.setDatacenters(dcs)
		case <-tokenC:
			w.checkToken()
		case <-w.w.recheck:
			if w.w.cfg.TokenFile != "" {
				w.checkToken()
			}
		case <-w.w.transport.refusals:
			w.refused()
		case <-budgetC:
			w.budgetTimer = nil
			w.grow()
		case <-probes.C:
			w.probe()
		}
		w.setSweepTimer()
		for _, sc := range w.scopes {
			w.checkSettled(sc)
		}
	}
}

// refused gives connections back after the agent refused one (429).
func (w *watcher) refused() {
	open := int(w.w.transport.refusedOpen.Swap(0))
	first := !w.budget.refusing
	if !w.budget.refused(time.Now(), open) {
		return
	}
	if first {
		level.Warn(w.w.logger).Log("msg", "The agent refuses connections (429): giving connections back to its other clients", "budget", w.budget.now, "open", open, "max_connections", w.budget.max)
	} else {
		level.Debug(w.w.logger).Log("msg", "The agent refuses connections (429): fewer connections still", "budget", w.budget.now, "open", open)
	}
	w.applyBudget()
}

// probe asks the agent whether it refuses connections from this host now,
// unless the budget is at its minimum already or a probe is out; a refusal
// comes back as any other (see probe.go).
func (w *watcher) probe() {
	if w.budget.now <= MinConnections || !w.probing.CompareAndSwap(false, true) {
		return
	}
	t := w.w.transport
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer w.probing.Store(false)
		refused, err := t.probe(w.ctx)
		switch {
		case err != nil && !errors.Is(err, errNoTarget):
			level.Debug(w.w.logger).Log("msg", "Could not probe the agent's connection limit", "err", err)
		case refused:
			t.refused(t.conns.Load() + 1) // the probe, closed since
		}
	}()
}

// grow takes one more connection back once the agent has stopped refusing.
func (w *watcher) grow() {
	if w.budget.grow(time.Now()) {
		if w.budget.now == w.budget.max {
			w.budget.refusing = false
			level.Info(w.w.logger).Log("msg", "The agent has stopped refusing connections; the whole budget is in use again", "budget", w.budget.now)
		}
		w.applyBudget()
		return
	}
	w.setBudgetTimer()
}

// applyBudget fits every scope to the budget in force and closes idle
// connections beyond it.
func (w *watcher) applyBudget() {
	w.w.budgetNow.Store(int64(w.budget.now))
	w.w.transport.closeIdle()
	w.fitAll()
	w.setBudgetTimer()
}

func (w *watcher) setBudgetTimer() {
	if w.budgetTimer != nil {
		w.budgetTimer.Stop()
		w.budgetTimer = nil
	}
	if next := w.budget.next(); !next.IsZero() {
		w.budgetTimer = time.NewTimer(time.Until(next))
	}
}

// serviceList follows a new service list of a scope.
func (w *watcher) serviceList(l listed) {
	sc := l.sc
	list := sc.lists[l.filter]
	if !w.current(sc) || list == nil {
		return
	}
	if l.index < list.index {
		level.Warn(sc.logger).Log("msg", "Consul's index went backwards; reading everything again before sending anything", "old", list.index, "new", l.index)
		w.restart(sc)
		return
	}
	list.names, list.index, list.listed = l.names, l.index, true
	w.reconcile(sc, list)
	w.checkComplete(sc)
}

// read takes in one read of a service.
func (w *watcher) read(r read) {
	sc := r.sc
	if r.queue != nil {
		r.queue.taken(r.sweep)
	}
	if !w.current(sc) {
		return
	}
	now := time.Now()
	if r.err != nil {
		w.readError(sc, r, now)
		return
	}
	s := sc.services[r.name]
	if s != nil && s.gen != r.gen {
		s = nil // the service left the catalog and came back meanwhile
	}
	if s != nil && !r.probe {
		w.readable(sc, s)
	}
	changed := s != nil && !r.probe && w.update(sc, s, r, now)
	if sc.doorbells != nil {
		w.readDone(sc, s, r, changed, now)
	}
	w.checkComplete(sc)
}

// update stores a read of s and passes it to the views that want s. It
// reports whether some view's targets changed. A read with an index below
// the one already stored is older news — reads race, and a stale read may
// come from a server that lags — and goes only to views that have not seen
// the service yet. A read a verification asked for because the last read
// looked out of date wins a tie of indexes with a long poll's answer. A
// real reset of Consul's indexes is handled by serviceList.
func (w *watcher) update(sc *scope, s *service, r read, now time.Time) bool {
	if len(r.entries) == 0 && s.fetched && sc.key.healthFilter == "" {
		// Consul lists only services with instances, so a service still
		// listed is not gone: its list's next answer removes it. An empty
		// read of it may come from an agent that replaced the one it was
		// read from, before the list shows the reset (serviceList).
		level.Debug(sc.logger).Log("msg", "Empty read of a listed service; waiting for the service list", "service", s.name, "index", r.index)
		return false
	}
	fresh := !s.fetched || r.index > s.index || (r.outOfDate && r.index == s.index)
	if fresh {
		s.index = r.index
		s.health = healthStateOf(r.entries, s.health.otherChecks, sc.intern)
		s.shape = shapeOfEntries(r.entries)
		s.nodes = nodesOfEntries(r.entries)
		s.writes = writesOfEntries(r.entries)
		if sc.doorbells != nil {
			sc.nodes.read(s.name)
			sc.doorbells.explained(r.index) // a ring at this index is a write this read shows
		}
	} else if r.index < s.index {
		level.Debug(sc.logger).Log("msg", "Dropping an older read", "service", s.name, "index", r.index, "have", s.index)
		return false
	}
	changed := false
	for _, v := range sc.views {
		if _, wants := v.wanted[s.name]; !wants {
			continue
		}
		if _, unseen := v.unseen[s.name]; fresh || unseen {
			changed = v.update(s.name, r.entries) || changed
		}
	}
	if !changed && s.fetched {
		if fresh {
			level.Debug(sc.logger).Log("msg", "Service changed in Consul but not its targets", "service", s.name, "index", r.index)
		}
		return false
	}
	s.fetched, s.lastChange = true, now
	return true
}

// ring handles a doorbell's news.
func (w *watcher) ring(r ring) {
	sc := r.sc
	if !w.current(sc) || sc.doorbells == nil {
		return
	}
	switch r.doorbell {
	case startupDone:
		w.startupDone(sc)
	case doorbellChecks:
		w.healthChanged(sc, r.checks) // resolved exactly, no sweep needed
	case doorbellNodes:
		w.nodesChanged(sc, r.nodes) // likewise
	}
}

// checkComplete tells the jobs whose view of sc caught up for the first
// time since it started.
func (w *watcher) checkComplete(sc *scope) {
	all := true
	for _, v := range sc.views {
		if !v.caughtUp() {
			all = false
			continue
		}
		if !v.done {
			v.done = true
			v.job.completed(v, w.dcsListed)
		}
	}
	if all && sc.doorbells != nil {
		w.endStartup(sc)
	}
}

// current reports whether sc is still watched: messages from a scope that
// was stopped or restarted are dropped.
func (w *watcher) current(sc *scope) bool { return w.scopes[sc.key] == sc }

// attach starts a job: a view of each scope it reads.
func (w *watcher) attach(j *job) {
	w.jobs[j] = struct{}{}
	dcs := j.cfg.Datacenters
	if j.cfg.AllDatacenters {
		w.followDatacenters()
		dcs = w.datacenters
	} else if len(dcs) == 0 {
		dcs = []string{""}
	}
	for _, dc := range dcs {
		w.addView(j, dc)
	}
	w.fitAll()
	for _, v := range j.views {
		w.checkComplete(v.scope)
	}
}

// detach stops a job: its views end, and what no other job reads stops.
func (w *watcher) detach(j *job) {
	for _, v := range j.views {
		w.removeView(v)
	}
	delete(w.jobs, j)
	w.fitAll()
}

// addView starts the view of job j of datacenter dc: it reads the scope's
// service list for its filter; the services it wants that were read before
// it came are read again for it (see reconcile).
func (w *watcher) addView(j *job, dc string) {
	key := j.key(dc)
	sc := w.scopes[key]
	if sc == nil {
		sc = w.newScope(key)
		w.scopes[key] = sc
	}
	v := &view{job: j, scope: sc, wanted: map[string]struct{}{}, unseen: map[string]struct{}{}}
	if j.multiDatacenter() {
		v.prefix = dc + "/"
	}
	sc.views[j] = v
	j.views[key] = v
	w.ensureList(sc, j.cfg.Selection.Filter)
	if l := sc.lists[j.cfg.Selection.Filter]; l.listed {
		w.reconcile(sc, l) // and reads again what was read before the view came
	}
}

// removeView ends a view: its services, lists and scope stop when no other
// view reads them.
func (w *watcher) removeView(v *view) {
	sc := v.scope
	delete(sc.views, v.job)
	delete(v.job.views, sc.key)
	for name := range v.wanted {
		w.unwant(sc, name)
	}
	filter := v.job.cfg.Selection.Filter
	inUse := false
	for other := range sc.views {
		inUse = inUse || other.cfg.Selection.Filter == filter
	}
	if l := sc.lists[filter]; l != nil && !inUse {
		l.stop()
		delete(sc.lists, filter)
	}
	if len(sc.views) == 0 {
		w.stop(sc)
		delete(w.scopes, sc.key)
		w.publishUnreadable()
	}
}

// restart stops watching sc and starts a new watch of its scope, which
// reads everything again; its views' old targets stay until they are
// complete.
func (w *watcher) restart(sc *scope) {
	w.stop(sc)
	fresh := w.newScope(sc.key)
	w.scopes[sc.key] = fresh
	for j, v := range sc.views {
		v.scope, v.listed, v.done = fresh, false, false
		clear(v.wanted)
		clear(v.unseen)
		fresh.views[j] = v
		w.ensureList(fresh, j.cfg.Selection.Filter)
	}
	w.fit(fresh)
	w.publishUnreadable()
}

// restartAll reads every scope again from scratch.
func (w *watcher) restartAll() {
	for _, sc := range w.sortedScopes() {
		w.restart(sc)
	}
}

// fitAll fits every scope to its share of the budget.
func (w *watcher) fitAll() {
	for _, sc := range w.sortedScopes() {
		w.fit(sc)
	}
}

func (w *watcher) sortedScopes() []*scope {
	scopes := make([]*scope, 0, len(w.scopes))
	for _, sc := range w.scopes {
		scopes = append(scopes, sc)
	}
	slices.SortFunc(scopes, func(a, b *scope) int {
		if a.key.String() < b.key.String() {
			return -1
		}
		return 1
	})
	return scopes
}

// streams is one scope's share of the requests the budget allows in
// flight.
func (w *watcher) streams() int {
	return max(w.w.streams()/max(len(w.scopes), 1), 1)
}

// stopAll stops every scope.
func (w *watcher) stopAll() {
	for _, sc := range w.scopes {
		w.stop(sc)
	}
	if w.stopDCList != nil {
		w.stopDCList()
	}
	w.stopSweepTimer()
	if w.budgetTimer != nil {
		w.budgetTimer.Stop()
	}
}

// checkToken re-reads the token file. A new token replaces the old one in
// every later request, and every scope starts over so that no blocking query
// goes on waiting with the old one.
func (w *watcher) checkToken() {
	tok, err := readToken(w.w.cfg.TokenFile)
	if err != nil {
		level.Warn(w.w.logger).Log("msg", "Cannot read the token file; keeping the current token", "err", err)
		return
	}
	if old := w.w.transport.token.Load(); old != nil && *old == tok {
		return
	}
	w.w.transport.token.Store(&tok)
	level.Info(w.w.logger).Log("msg", "The ACL token changed; watching again with the new one", "token_file", w.w.cfg.TokenFile)
	w.restartAll()
}

// sweepsDue starts the sweeps, summary reads and verifications whose time
// has come.
func (w *watcher) sweepsDue() {
	now := time.Now()
	for _, sc := range w.scopes {
		if sc.doorbells == nil {
			continue
		}
		if sc.doorbells.pacer.fire(now) {
			w.startSweep(sc, now)
		}
		if sc.doorbells != nil && !sc.doorbells.summaryOff && sc.doorbells.summary.fire(now) {
			w.startSummary(sc, now)
		}
		if sc.doorbells != nil {
			w.verifyIfDue(sc, now)
		}
	}
}

// setSweepTimer sets the sweep timer to the earliest sweep, summary read or
// verification that waits.
func (w *watcher) setSweepTimer() {
	var next time.Time
	for _, sc := range w.scopes {
		if sc.doorbells == nil {
			continue
		}
		for _, due := range []time.Time{sc.doorbells.pacer.next(), sc.doorbells.summary.next(), sc.doorbells.verifyAt()} {
			if !due.IsZero() && (next.IsZero() || due.Before(next)) {
				next = due
			}
		}
	}
	if next.Equal(w.sweepAt) {
		return
	}
	w.stopSweepTimer()
	if !next.IsZero() {
		w.sweepTimer, w.sweepAt = time.NewTimer(time.Until(next)), next
	}
}

func (w *watcher) stopSweepTimer() {
	if w.sweepTimer != nil {
		w.sweepTimer.Stop()
	}
	w.sweepTimer, w.sweepAt = nil, time.Time{}
}
