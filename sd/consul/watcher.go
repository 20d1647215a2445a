package consul

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/go-kit/log/level"
	"github.com/hashicorp/consul/api"
)

// watcher owns everything the Discoverer knows of Consul: the datacenters,
// their services, which services have a long poll, doorbell mode. Only its
// own goroutine (run) touches that state; the goroutines it starts (long
// polls, readers, the datacenter list) report to it on channels, each
// message naming its datacenter, and it passes the targets to the job.
type watcher struct {
	d   *Discoverer
	job *job
	ctx context.Context
	wg  sync.WaitGroup // every goroutine the watcher started

	dcs    map[string]*datacenter
	listed bool // the list of datacenters is known (always, without AllDatacenters)

	lists  chan serviceList
	reads  chan read
	rings  chan ring
	dcList chan []string

	sweepTimer *time.Timer
	sweepAt    time.Time
}

// serviceList is a new service list of a datacenter.
type serviceList struct {
	dc    *datacenter
	names map[string][]string
	index uint64
}

// read is one read of a service's instances, by its long poll or a reader.
type read struct {
	dc      *datacenter
	name    string
	gen     uint64
	index   uint64
	entries []*api.ServiceEntry
	err     error // only from readers; long polls retry on their own
	sweep   bool  // read as part of a sweep
	probe   bool  // only the index was read
}

// ring is a doorbell's news in doorbell mode: a new index, and for the
// health doorbell the checks that are not passing.
type ring struct {
	dc       *datacenter
	doorbell string // doorbellNodes, doorbellChecks or startupDone
	index    uint64
	checks   api.HealthChecks
}

func newWatcher(ctx context.Context, d *Discoverer, j *job) *watcher {
	return &watcher{
		d:      d,
		job:    j,
		ctx:    ctx,
		dcs:    map[string]*datacenter{},
		lists:  make(chan serviceList),
		reads:  make(chan read),
		rings:  make(chan ring),
		dcList: make(chan []string),
	}
}

// run watches until the watcher's context is cancelled, then stops
// everything it started and waits for it.
func (w *watcher) run() {
	defer w.wg.Wait()
	defer w.stopAll()
	if w.d.cfg.AllDatacenters {
		w.wg.Go(func() { w.d.followDatacenters(w.ctx, w.dcList) })
	} else {
		w.listed = true
		dcs := w.d.cfg.Datacenters
		if len(dcs) == 0 {
			dcs = []string{""}
		}
		w.setDatacenters(dcs)
	}
	var tokenC <-chan time.Time
	if w.d.cfg.TokenFile != "" {
		t := time.NewTicker(w.d.cfg.TokenCheckInterval)
		defer t.Stop()
		tokenC = t.C
	}
	for {
		var sweepC <-chan time.Time
		if w.sweepTimer != nil {
			sweepC = w.sweepTimer.C
		}
		select {
		case <-w.ctx.Done():
			return
		case l := <-w.lists:
			w.serviceList(l)
		case r := <-w.reads:
			w.read(r)
		case r := <-w.rings:
			w.ring(r)
		case <-sweepC:
			w.sweepTimer, w.sweepAt = nil, time.Time{}
			w.sweepsDue()
		case dcs := <-w.dcList:
			w.listed = true
			w.setDatacenters(dcs)
		case <-tokenC:
			w.checkToken()
		}
		w.setSweepTimer()
	}
}

// serviceList follows a new service list of a datacenter.
func (w *watcher) serviceList(l serviceList) {
	dc := l.dc
	if !w.current(dc) {
		return
	}
	if l.index < dc.catalogIndex {
		level.Warn(dc.logger).Log("msg", "Consul's index went backwards; reading everything again before sending anything", "old", dc.catalogIndex, "new", l.index)
		w.restart(dc)
		return
	}
	w.reconcile(dc, l)
	w.checkComplete(dc)
}

// read takes in one read of a service.
func (w *watcher) read(r read) {
	dc := r.dc
	if !w.current(dc) {
		return
	}
	now := time.Now()
	if r.err != nil {
		if dc.doorbells != nil {
			w.readFailed(dc, r, now)
		}
		return
	}
	s := dc.services[r.name]
	if s != nil && s.gen != r.gen {
		s = nil // the service left the catalog and came back meanwhile
	}
	changed := s != nil && !r.probe && w.update(dc, s, r, now)
	if dc.doorbells != nil {
		w.readDone(dc, s, r, changed, now)
	}
	w.checkComplete(dc)
}

// update stores a read of s and passes it to the job. It reports whether
// the targets changed. A read with an index below the one already stored is
// older news — reads race, and a stale read may come from a server that
// lags — and is dropped; a real reset of Consul's indexes is handled by
// serviceList.
func (w *watcher) update(dc *datacenter, s *service, r read, now time.Time) bool {
	if s.fetched && r.index <= s.index {
		if r.index < s.index {
			level.Debug(dc.logger).Log("msg", "Dropping an older read", "service", s.name, "index", r.index, "have", s.index)
		}
		return false
	}
	s.index = r.index
	s.health = healthStateOf(r.entries, s.health.otherChecks)
	if !w.job.update(dc, s.name, r.entries) && s.fetched {
		level.Debug(dc.logger).Log("msg", "Service changed in Consul but not its targets", "service", s.name, "index", r.index)
		return false
	}
	s.fetched, s.lastChange = true, now
	return true
}

// ring handles a doorbell's news.
func (w *watcher) ring(r ring) {
	dc := r.dc
	if !w.current(dc) || dc.doorbells == nil {
		return
	}
	now := time.Now()
	switch r.doorbell {
	case startupDone:
		w.startupDone(dc)
	case doorbellChecks:
		w.healthChanged(dc, r.checks) // resolved exactly, no sweep needed
	default:
		w.requestSweep(dc, now, r.index)
	}
}

// checkComplete tells the job once every service of dc has been read since
// its list was.
func (w *watcher) checkComplete(dc *datacenter) {
	if dc.complete || !dc.listed {
		return
	}
	for _, s := range dc.services {
		if !s.fetched {
			return
		}
	}
	dc.complete = true
	level.Info(dc.logger).Log("msg", "Read every service once", "services", len(dc.services))
	if dc.doorbells != nil {
		w.endStartup(dc)
	}
	w.job.completed(dc, w.dcs, w.listed)
}

// current reports whether dc is still watched: messages from a datacenter
// that was stopped or restarted are dropped.
func (w *watcher) current(dc *datacenter) bool { return w.dcs[dc.name] == dc }

// setDatacenters starts watching new datacenters and stops watching those
// that are gone, deleting their targets. When the count changes, every
// datacenter restarts with its new share of the budget.
func (w *watcher) setDatacenters(names []string) {
	want := map[string]bool{}
	for _, name := range names {
		want[name] = true
	}
	changed := false
	for name, dc := range w.dcs {
		if want[name] {
			continue
		}
		w.stop(dc)
		delete(w.dcs, name)
		w.job.dropDatacenter(dc)
		changed = true
		level.Info(w.d.logger).Log("msg", "Datacenter is gone; deleting its targets", "datacenter", name)
	}
	for _, name := range names {
		if _, ok := w.dcs[name]; !ok {
			w.dcs[name] = nil // started below
			changed = true
			if w.job.started {
				level.Info(w.d.logger).Log("msg", "Watching a new datacenter", "datacenter", name)
			}
		}
	}
	if !changed {
		return
	}
	w.d.dcCount.Store(int64(len(w.dcs)))
	if share := w.d.streams() / max(len(w.dcs), 1); share < MinConnections {
		level.Warn(w.d.logger).Log("msg", "Many datacenters share a small connection budget; raise the connection budget", "datacenters", len(w.dcs), "requests_per_datacenter", share)
	}
	w.restartAll()
}

// restartAll reads every datacenter again from scratch.
func (w *watcher) restartAll() {
	names := make([]string, 0, len(w.dcs))
	for name := range w.dcs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if dc := w.dcs[name]; dc != nil {
			w.restart(dc)
		} else {
			w.dcs[name] = w.start(name)
		}
	}
}

// restart stops watching dc and starts a new watch of it, which reads
// everything again; its old targets stay until it is complete.
func (w *watcher) restart(dc *datacenter) {
	w.stop(dc)
	w.dcs[dc.name] = w.start(dc.name)
}

// stopAll stops every datacenter's watch.
func (w *watcher) stopAll() {
	for _, dc := range w.dcs {
		if dc != nil {
			w.stop(dc)
		}
	}
	w.stopSweepTimer()
}

// checkToken re-reads the token file. A new token replaces the old one in
// every later request, and every datacenter starts over so that no blocking
// query goes on waiting with the old one.
func (w *watcher) checkToken() {
	tok, err := readToken(w.d.cfg.TokenFile)
	if err != nil {
		level.Warn(w.d.logger).Log("msg", "Cannot read the token file; keeping the current token", "err", err)
		return
	}
	if old := w.d.transport.token.Load(); old != nil && *old == tok {
		return
	}
	w.d.transport.token.Store(&tok)
	level.Info(w.d.logger).Log("msg", "The ACL token changed; watching again with the new one", "token_file", w.d.cfg.TokenFile)
	w.restartAll()
}

// sweepsDue starts the sweeps whose time has come.
func (w *watcher) sweepsDue() {
	now := time.Now()
	for _, dc := range w.dcs {
		if dc != nil && dc.doorbells != nil && dc.doorbells.pacer.fire(now) {
			w.startSweep(dc, now)
		}
	}
}

// setSweepTimer sets the sweep timer to the earliest sweep that waits.
func (w *watcher) setSweepTimer() {
	var next time.Time
	for _, dc := range w.dcs {
		if dc == nil || dc.doorbells == nil {
			continue
		}
		if due := dc.doorbells.pacer.due; !due.IsZero() && (next.IsZero() || due.Before(next)) {
			next = due
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
