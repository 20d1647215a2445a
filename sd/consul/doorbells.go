package consul

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/go-kit/log/level"
	"github.com/hashicorp/consul/api"
)

// Doorbell mode: a datacenter has more services than its share of the
// connection budget holds long polls for.
//
// Three doorbells stand in for the services without a long poll, each a
// long poll whose index moves with every change to one of Consul's tables:
// the service list (services), the nodes and the checks that are not
// passing.
//
//   - A health change is resolved exactly by the health diff
//     (healthdiff.go): only the services whose non-passing checks differ
//     from their last read are read.
//   - A node change is resolved exactly too (nodediff.go): the nodes
//     doorbell returns every node, and the services on a node whose
//     address, meta or tagged addresses differ from their last read are
//     read.
//   - A change in the services table does not say which service it touched:
//     the catalog summary (summary.go) finds the services whose instance
//     count, nodes or tags changed, at once; a verification (verify.go)
//     follows within seconds and finds what the summary cannot show (a
//     port, an address, meta rewritten in place) and writes whose ring
//     another hid: one read of Consul's node dump, compared with every
//     service's last read.
//   - Without a summary or a node dump, a change asks for a sweep: every
//     service without a long poll is probed, a few at a time, with a query
//     filtered to return no rows, whose index is still the service's own;
//     only services whose index moved are read in full.
//
// The sweep pacer (sweeppacer.go) decides when sweeps and summary reads
// run, the verify pacer (verifypacer.go) when verifications run, the
// allocator (allocator.go) which services keep a long poll, and the read
// queue (readqueue.go) in which order the readers read.

// Doorbells, and the start-up readers' last ring.
const (
	doorbellChecks = "checks"
	doorbellNodes  = "nodes"
	startupDone    = "start-up readers done"
)

// The health doorbell lists the checks that are not passing.
const healthDoorbellFilter = `Status != "passing"`

// doorbells is the state of a scope in doorbell mode.
type doorbells struct {
	share  int                // the scope's share of the budget it was set up for
	ctx    context.Context    // of the doorbells and the readers
	cancel context.CancelFunc // stops them
	queue  *readQueue
	pacer  sweepPacer
	alloc  *allocator

	// The running sweep.
	outstanding int // its reads not yet done

	retrying bool // failed reads are being retried (logged once until a sweep succeeds)

	// The catalog summary (summary.go).
	summary      sweepPacer
	summaryOff   bool      // no summary: rings of the service list start sweeps
	summaryIndex uint64    // the ring index the summary under way covers
	summaryEnd   time.Time // when the last summary read ended (a verification waits a little for its reads)
	rings        []uint64  // indexes of rings no summary has started for yet
	lastRing     uint64    // the highest ring index

	// Verification (verify.go).
	verify     verifyPacer
	verifyRun  uint64             // the number of the last verification started
	stopVerify context.CancelFunc // abandons the running verification; nil when none runs
	dumpOff    bool               // no node dump: verifications are sweeps

	unsettled bool // the service list rang since the jobs were last told the scope settled (settled.go)

	// Until every service has been read once, the connections the long
	// polls will take are used by start-up readers, so that the first reads
	// (at start, all of them) go as fast as the budget allows; the
	// allocator is blocked until the last of them has stopped.
	stopStartup func() // tells the start-up readers to stop; nil once called
}

// enterDoorbellMode starts the doorbells and the readers of sc.
func (w *watcher) enterDoorbellMode(sc *scope, slots int) {
	if sc.doorbells != nil {
		return
	}
	readers := min(max(slots/4, 1), 16)
	ctx, cancel := context.WithCancel(sc.ctx)
	// The service list, the two other doorbells and a summary read take a
	// connection each.
	db := &doorbells{
		share: slots, ctx: ctx, cancel: cancel, queue: newReadQueue(), pacer: newSweepPacer(), alloc: newAllocator(max(slots-4-readers, 0)),
		summary: newSweepPacer(), verify: newVerifyPacer(),
	}
	db.summary.factor, db.summary.allowance = summaryDebtFactor, summaryAllowance
	db.pacer.factor = rewriteDebtFactor
	if sc.key.healthFilter != "" {
		db.noSummary()
	}
	sc.doorbells = db
	sc.nodes.reset() // the first list is compared with every service
	w.w.doorbellScopes.Add(1)
	level.Info(sc.logger).Log("msg", "More services than connections: long polls for the busiest, doorbells and sweeps for the rest",
		"services", len(sc.services), "long_polls", db.alloc.capacity, "readers", readers, "max_connections", w.w.cfg.MaxConnections)

	// Keep the most recently changed long polls that fit; read the others
	// once more in case a change raced with the hand-over.
	var polling []candidate
	for _, s := range sc.services {
		if s.hasLongPoll() {
			polling = append(polling, s.candidate())
		}
	}
	for _, name := range db.alloc.keep(polling) {
		s := sc.services[name]
		w.stopLongPoll(sc, s)
		w.readSoon(sc, s)
	}
	w.startDoorbells(sc)
	w.startReaders(sc, readers)
}

// startDoorbells starts the long polls on the non-passing checks and the
// nodes of sc; the service list's own poller rings too.
func (w *watcher) startDoorbells(sc *scope) {
	ctx := sc.doorbells.ctx
	ringer := func(doorbell string) func(api.HealthChecks, uint64) {
		return func(checks api.HealthChecks, index uint64) {
			select {
			case w.rings <- ring{sc: sc, doorbell: doorbell, index: index, checks: checks}:
			case <-ctx.Done():
			}
		}
	}
	checks := func(ctx context.Context, q *api.QueryOptions) (api.HealthChecks, *api.QueryMeta, error) {
		return w.w.client.Health().State(api.HealthAny, q)
	}
	nodes := func(ctx context.Context, q *api.QueryOptions) ([]*api.Node, *api.QueryMeta, error) {
		return w.w.client.Catalog().Nodes(q)
	}
	w.wg.Go(func() {
		poll(ctx, w.poller(sc, "non-passing checks", "/v1/health/state/any", healthDoorbellFilter), 0, checks, ringer(doorbellChecks))
	})
	w.wg.Go(func() {
		poll(ctx, w.poller(sc, "nodes", "/v1/catalog/nodes", ""), 0, nodes, func(list []*api.Node, index uint64) {
			select {
			case w.rings <- ring{sc: sc, doorbell: doorbellNodes, index: index, nodes: list}:
			case <-ctx.Done():
			}
		})
	})
}

// startReaders starts the readers of sc's read queue and, while no service
// of sc has been read yet, as many more start-up readers as the long polls
// would use: they stop once everything was read, and the long polls get
// their connections.
func (w *watcher) startReaders(sc *scope, readers int) {
	db := sc.doorbells
	ctx := db.ctx
	for range readers {
		w.wg.Go(func() { w.readLoop(ctx, ctx, sc, db.queue) })
	}
	if extra := db.alloc.capacity - sc.longPolls; extra > 0 && sc.longPolls == 0 && !sc.caughtUp() {
		startCtx, stop := context.WithCancel(ctx)
		db.stopStartup, db.alloc.blocked = stop, true
		var startup sync.WaitGroup
		for range extra {
			startup.Go(func() { w.readLoop(ctx, startCtx, sc, db.queue) })
		}
		w.wg.Go(func() {
			startup.Wait()
			select {
			case w.rings <- ring{sc: sc, doorbell: startupDone}:
			case <-ctx.Done():
			}
		})
	}
}

// leaveDoorbellMode stops the doorbells and the readers of sc.
func (w *watcher) leaveDoorbellMode(sc *scope) {
	if sc.doorbells == nil {
		return
	}
	sc.doorbells.cancel()
	sc.doorbells = nil
	w.w.doorbellScopes.Add(-1)
	if sc.ctx.Err() == nil {
		level.Info(sc.logger).Log("msg", "Watching every service with its own long poll", "services", len(sc.services))
	}
}

// endStartup stops the start-up readers once every service has been read;
// the long polls start when the last has stopped.
func (w *watcher) endStartup(sc *scope) {
	if db := sc.doorbells; db.stopStartup != nil {
		db.stopStartup()
		db.stopStartup = nil
	}
}

// startupDone gives the long polls their connections once the start-up
// readers have stopped.
func (w *watcher) startupDone(sc *scope) {
	sc.doorbells.alloc.blocked = false
	w.fillLongPolls(sc)
}

// readSoon queues a read of s ahead of any sweep (one already waiting
// serves; a long poll needs none).
func (w *watcher) readSoon(sc *scope, s *service) {
	if sc.doorbells == nil || s.hasLongPoll() {
		return
	}
	if s.unreadable != nil {
		w.retryUnreadable(sc, s) // an unreadable service is retried on its own
		return
	}
	sc.doorbells.queue.push(readJob{name: s.name, gen: s.gen})
}

// nodesChanged reads every service without a long poll whose nodes'
// addresses, meta or tagged addresses in the nodes doorbell's list differ
// from those of its last read (nodediff.go).
func (w *watcher) nodesChanged(sc *scope, nodes []*api.Node) {
	for _, s := range sc.nodes.list(nodes, sc.services) {
		if s.fetched && !s.hasLongPoll() {
			w.readSoon(sc, s)
		}
	}
}

// healthChanged reads every service without a long poll whose non-passing
// checks in the doorbell's list differ from those of its last read.
func (w *watcher) healthChanged(sc *scope, checks api.HealthChecks) {
	list := indexNonPassing(checks)
	for _, s := range sc.services {
		if s.hasLongPoll() || !s.fetched {
			continue // its long poll, or the read that reads it first, will see it
		}
		if list.differs(s.name, &s.health) {
			w.readSoon(sc, s)
		}
	}
}

// requestSweep notes a ring at index and starts a sweep if the pacer says
// so.
func (w *watcher) requestSweep(sc *scope, now time.Time, index uint64) {
	if sc.doorbells.pacer.request(now, index) {
		w.startSweep(sc, now)
	}
}

// startSweep probes every service without a long poll, the most recently
// changed first; those never read are read in full.
func (w *watcher) startSweep(sc *scope, now time.Time) {
	db := sc.doorbells
	if db.pacer.running {
		return
	}
	quiet := make([]*service, 0, len(sc.services)-sc.longPolls)
	for _, s := range sc.services {
		// A service with a read queued needs no probe: at start, that is
		// every service.
		if !s.hasLongPoll() && !db.queue.waiting(s.name) && s.unreadable == nil {
			quiet = append(quiet, s)
		}
	}
	slices.SortFunc(quiet, func(a, b *service) int {
		if a.fetched != b.fetched {
			if !a.fetched {
				return -1
			}
			return 1
		}
		return byRecentChange(a.candidate(), b.candidate())
	})
	probes := 0
	for _, s := range quiet {
		db.queue.push(readJob{name: s.name, gen: s.gen, sweep: true, probe: s.fetched})
		if s.fetched {
			probes++
		}
	}
	db.pacer.start(now, len(quiet), probes)
	db.verify.cover(db.lastRing) // every service is read after every ring so far
	db.outstanding = len(quiet)
	w.w.metrics.sweeps.Inc()
	if db.outstanding == 0 {
		w.sweepFinished(sc, now)
	}
}

// readDone accounts for a successful read in doorbell mode: a probe whose
// index moved is followed by a full read, and a quiet service that changed
// gets a long poll.
func (w *watcher) readDone(sc *scope, s *service, r read, changed bool, now time.Time) {
	db := sc.doorbells
	if s != nil && r.probe && r.index != s.index {
		w.readSoon(sc, s)
	}
	if changed {
		if s.hasLongPoll() {
			db.alloc.touch(s.candidate())
		} else {
			w.promote(sc, s, now)
		}
	}
	w.sweepReadDone(sc, r, now)
}

// readFailed accounts for a failed read: the service keeps its last known
// targets and a sweep retries it after a backoff.
func (w *watcher) readFailed(sc *scope, r read, now time.Time) {
	db := sc.doorbells
	if db.pacer.readFailed(now, r.err) {
		w.startSweep(sc, now)
	} else if !db.pacer.running {
		w.logRetry(sc, now)
	}
	w.sweepReadDone(sc, r, now)
}

// sweepReadDone counts a read of the running sweep.
func (w *watcher) sweepReadDone(sc *scope, r read, now time.Time) {
	db := sc.doorbells
	if !r.sweep || !db.pacer.running {
		return
	}
	db.outstanding--
	if db.outstanding == 0 {
		w.sweepFinished(sc, now)
	}
}

// sweepFinished schedules what follows a sweep.
func (w *watcher) sweepFinished(sc *scope, now time.Time) {
	db := sc.doorbells
	failed := db.pacer.failed
	level.Debug(sc.logger).Log("msg", "Sweep done", "took", now.Sub(db.pacer.started), "failed", failed, "long_polls", sc.longPolls)
	again := db.pacer.finish(now)
	if failed > 0 {
		w.logRetry(sc, now)
	} else {
		db.retrying = false
		w.fillLongPolls(sc)
	}
	if again {
		w.startSweep(sc, now)
	}
}

// logRetry says that failed reads will be retried: at warn level the first
// time until a sweep succeeds, then at debug level, so that an outage does
// not flood the log.
func (w *watcher) logRetry(sc *scope, now time.Time) {
	db := sc.doorbells
	lvl := level.Warn
	if db.retrying {
		lvl = level.Debug
	}
	db.retrying = true
	lvl(sc.logger).Log("msg", "Some services could not be read; keeping their last known targets", "retry_in", db.pacer.retryAt.Sub(now), "err", db.pacer.err)
}

// promote gives s a long poll if the allocator grants one, taking it from
// the service it names.
func (w *watcher) promote(sc *scope, s *service, now time.Time) {
	grant, evict := sc.doorbells.alloc.changed(now, s.candidate())
	if !grant {
		return
	}
	if e := sc.services[evict]; e != nil {
		w.stopLongPoll(sc, e)
		w.readSoon(sc, e)
	}
	w.startLongPoll(sc, s, s.index)
}

// fillLongPolls gives free long polls to the most recently changed
// services.
func (w *watcher) fillLongPolls(sc *scope) {
	var quiet []candidate
	for _, s := range sc.services {
		if !s.hasLongPoll() && s.fetched {
			quiet = append(quiet, s.candidate())
		}
	}
	for _, name := range sc.doorbells.alloc.fill(quiet) {
		w.startLongPoll(sc, sc.services[name], sc.services[name].index)
	}
}
