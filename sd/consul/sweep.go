package consul

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log/level"
	"github.com/hashicorp/consul/api"
)

// Sweep mode: the services do not fit the connection budget, so not every
// one can have a long poll of its own.
//
// Three doorbells stand in for the rest, each a long poll whose index moves
// with every change to one of Consul's tables: the service list (services),
// the nodes (filtered to return nothing) and the checks that are not
// passing. A health change is resolved exactly: each service's non-passing
// checks in the list are compared with those of its last read, and only the
// services that differ are read. (Comparing with the last read, not with
// the previous list, matters: a read may be newer than the list that
// triggered it, and a later flip back would leave two lists equal.)
// A change in the services or nodes tables does not say which service
// it touched, so it starts a sweep: every service without a long poll is
// probed, a few at a time, with a query filtered to return no rows, whose
// index is still the service's own; only services whose index moved are
// read in full. A sweep started after a doorbell's index was seen covers
// every write up to that index, so later rings at or below it start nothing.
// Over time probing takes at most a fifth of the time: each sweep adds four
// times its duration to a debt that drains in real time (scaled by the share
// of probes in it: first reads of services are owed in any mode), and a
// sweep waits while the debt is above a second.
//
// The long polls go to the services that changed most recently: a service
// found changed by a read takes the place of the one that has been quiet
// longest, if that one has been quiet for a minute. The service that loses
// its long poll is read once more, so that a change racing with the
// hand-over is not lost.

// ring is a doorbell's news: a new index, and for the health doorbell the
// checks that are not passing.
type ring struct {
	doorbell string // "nodes", "checks", or startupDone
	index    uint64
	checks   api.HealthChecks
}

type checkKey struct{ node, id string }

const (
	// startupDone is the ring of the start-up readers' last exit.
	startupDone = "startup readers done"
	// probeFilter matches no instance: a probe returns only the index.
	probeFilter = `Service.ID == "custom-sd.probe.invalid"`
	// sweepAllowance is how much sweep debt still lets a sweep start at once.
	sweepAllowance = time.Second
	// sweepDebtFactor makes sweeping take at most 1/(1+factor) of the time.
	sweepDebtFactor = 4
	// minQuiet is how long a service must have been quiet before another
	// service may take its long poll.
	minQuiet = time.Minute
	// minHandOver is the least time between two hand-overs of a long poll,
	// so that aborted connections close on the agent's side before more
	// are opened.
	minHandOver = 100 * time.Millisecond
)

// sweeper is the state of sweep mode.
type sweeper struct {
	cancel  context.CancelFunc
	queue   *readQueue
	heldCap int // services that keep a long poll of their own

	covered uint64 // rings up to this index are covered by a sweep
	pending uint64 // the highest ring index seen

	sweeping    bool
	outstanding int  // reads of the running sweep not yet done
	size        int  // reads in the running sweep
	probes      int  // of which probes (the rest are first reads)
	again       bool // something rang during the running sweep
	timer       *time.Timer
	debt        time.Duration // see the comment at the top
	debtAt      time.Time
	started     time.Time
	failed      int
	err         error
	retryAt     time.Time // no sweep before this, after failures
	retry       time.Duration
	handedOver  time.Time // the last hand-over of a long poll

	// Until every service has been read once, the connections the long
	// polls will take are used by start-up readers, so that the first reads
	// (at start, all of them) go as fast as the budget allows.
	stopStartup func() // tells the start-up readers to stop; nil once called
	startingUp  bool   // start-up readers may still be running: no long polls yet
}

// wait returns how long the next sweep must wait.
func (sw *sweeper) wait() time.Duration {
	now := time.Now()
	sw.debt = max(sw.debt-now.Sub(sw.debtAt), 0)
	sw.debtAt = now
	return max(sw.debt-sweepAllowance, sw.retryAt.Sub(now), 0)
}

// enterSweepMode starts the doorbells and the readers.
func (r *run) enterSweepMode() {
	if r.sw != nil {
		return
	}
	slots := r.streams()
	readers := min(max(slots/4, 1), 16)
	ctx, cancel := context.WithCancel(r.ctx)
	sw := &sweeper{cancel: cancel, queue: newReadQueue(), heldCap: max(slots-3-readers, 0)}
	r.sw = sw
	r.d.sweeping.Add(1)
	level.Info(r.logger).Log("msg", "More services than connections: long polls for the busiest, doorbells and sweeps for the rest",
		"services", len(r.services), "long_polls", sw.heldCap, "readers", readers, "max_connections", r.d.cfg.MaxConnections)

	// Keep the most recently changed long polls that fit; read the others
	// once more in case a change raced with the hand-over.
	var held []*service
	for _, s := range r.services {
		if s.held() {
			held = append(held, s)
		}
	}
	slices.SortFunc(held, byRecentChange)
	for _, s := range held[min(len(held), sw.heldCap):] {
		r.release(s)
		r.readSoon(s)
	}

	ringer := func(name string) func(api.HealthChecks, uint64) {
		return func(checks api.HealthChecks, index uint64) {
			select {
			case r.ringCh <- ring{doorbell: name, index: index, checks: checks}:
			case <-ctx.Done():
			}
		}
	}
	r.wg.Go(func() {
		poll(ctx, r.poller("non-passing checks", "/v1/health/state/any", healthDoorbellFilter), 0, r.d.fetchChecks, ringer("checks"))
	})
	r.wg.Go(func() {
		ring := ringer("nodes")
		poll(ctx, r.poller("nodes", "/v1/catalog/nodes", nodesDoorbellFilter), 0, r.d.fetchNodes, func(_ []*api.Node, index uint64) { ring(nil, index) })
	})
	for range readers {
		r.wg.Go(func() { r.readLoop(ctx, ctx, sw.queue) })
	}
	if extra := sw.heldCap - r.held; extra > 0 && r.held == 0 && !r.sent {
		startCtx, stop := context.WithCancel(ctx)
		sw.stopStartup, sw.startingUp = stop, true
		var startup sync.WaitGroup
		for range extra {
			startup.Go(func() { r.readLoop(ctx, startCtx, sw.queue) })
		}
		r.wg.Go(func() {
			startup.Wait()
			select {
			case r.ringCh <- ring{doorbell: startupDone}:
			case <-ctx.Done():
			}
		})
	}
}

// leaveSweepMode stops the doorbells and the readers.
func (r *run) leaveSweepMode() {
	if r.sw == nil {
		return
	}
	r.sw.cancel()
	if r.sw.timer != nil {
		r.sw.timer.Stop()
	}
	r.sw = nil
	r.d.sweeping.Add(-1)
	if r.ctx.Err() == nil {
		level.Info(r.logger).Log("msg", "Watching every service with its own long poll", "services", len(r.services))
	}
}

// readLoop reads the services it is given, one at a time, until popCtx or
// ctx is done. A read it has begun ends only with ctx.
func (r *run) readLoop(ctx, popCtx context.Context, q *readQueue) {
	for {
		j, ok := q.pop(popCtx)
		if !ok {
			return
		}
		entries, index, err := r.readOnce(ctx, j.name, j.probe)
		if ctx.Err() != nil {
			return
		}
		select {
		case r.resultCh <- result{name: j.name, gen: j.gen, index: index, entries: entries, err: err, sweep: j.sweep, probe: j.probe}:
		case <-ctx.Done():
			return
		}
	}
}

// readOnce reads a service's instances without blocking; a probe reads only
// its index. These reads go to the leader even with AllowStale: a doorbell
// rang because of a write, and a lagging server might answer with the state
// from before it, which nothing would ever correct.
func (r *run) readOnce(ctx context.Context, name string, probe bool) ([]*api.ServiceEntry, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout(0))
	defer cancel()
	sel := &r.d.cfg.Selection
	q := (&api.QueryOptions{Datacenter: r.dc, NodeMeta: sel.NodeMeta, Filter: sel.HealthFilter}).WithContext(ctx)
	if probe {
		q.Filter = probeFilter
	}
	entries, meta, err := r.d.client.Health().ServiceMultipleTags(name, sel.Tags, false, q)
	if err != nil {
		return nil, 0, err
	}
	return entries, meta.LastIndex, nil
}

// endStartup stops the start-up readers, once every service has been read;
// the long polls start when the last has stopped.
func (r *run) endStartup() {
	if r.sw != nil && r.sw.stopStartup != nil {
		r.sw.stopStartup()
		r.sw.stopStartup = nil
	}
}

// readSoon queues a read of s ahead of any sweep.
func (r *run) readSoon(s *service) {
	if r.sw != nil && !s.held() {
		r.sw.queue.push(readJob{name: s.name, gen: s.gen})
	}
}

// doorbell handles a ring of the nodes or health doorbell.
func (r *run) doorbell(rg ring) {
	if r.sw == nil {
		return
	}
	if rg.doorbell == startupDone {
		r.sw.startingUp = false
		r.fillHeld()
		return
	}
	if rg.doorbell == "checks" {
		r.healthChanged(rg.checks)
		return // resolved exactly, no sweep needed
	}
	r.requestSweep(rg.index)
}

// healthChanged reads every service without a long poll whose non-passing
// checks in the list differ from those of its last read. Checks of
// instances the last read did not return (a filter left them out, or they
// are new) are compared with the previous list instead.
func (r *run) healthChanged(checks api.HealthChecks) {
	byService := map[string]api.HealthChecks{}
	byNode := map[string]map[checkKey]string{}
	for _, c := range checks {
		if c.ServiceName != "" {
			byService[c.ServiceName] = append(byService[c.ServiceName], c)
			continue
		}
		// A node check: part of every instance on the node.
		if byNode[c.Node] == nil {
			byNode[c.Node] = map[checkKey]string{}
		}
		byNode[c.Node][checkKey{c.Node, c.CheckID}] = c.Status
	}
	for _, s := range r.services {
		if s.held() || !s.fetched {
			continue // its long poll, or the sweep that reads it first, will see it
		}
		known, other := map[checkKey]string{}, map[checkKey]string{}
		for _, c := range byService[s.name] {
			m := other
			if _, ok := s.instances[instanceKey{c.Node, c.ServiceID}]; ok {
				m = known
			}
			m[checkKey{c.Node, c.CheckID}] = c.Status
		}
		if !sameChecks(s, known, byNode) || !maps.Equal(other, s.otherChecks) {
			r.readSoon(s)
		}
		s.otherChecks = other
	}
}

// sameChecks reports whether the doorbell's non-passing checks for s (the
// service checks of the instances it has, and the node checks of their
// nodes) are those of its last read.
func sameChecks(s *service, service map[checkKey]string, byNode map[string]map[checkKey]string) bool {
	n := len(service)
	for k, st := range service {
		if s.nonPassing[k] != st {
			return false
		}
	}
	for node := range s.nodes {
		for k, st := range byNode[node] {
			if s.nonPassing[k] != st {
				return false
			}
			n++
		}
	}
	return n == len(s.nonPassing)
}

// instanceKey identifies a service instance.
type instanceKey struct{ node, serviceID string }

// healthState extracts what the health doorbell is compared with: the
// nodes and instances read, and their non-passing checks.
func healthState(entries []*api.ServiceEntry) (nodes map[string]struct{}, instances map[instanceKey]struct{}, nonPassing map[checkKey]string) {
	nodes, instances = map[string]struct{}{}, map[instanceKey]struct{}{}
	for _, e := range entries {
		if e == nil || e.Node == nil {
			continue
		}
		nodes[e.Node.Node] = struct{}{}
		if e.Service != nil {
			instances[instanceKey{e.Node.Node, e.Service.ID}] = struct{}{}
		}
		for _, c := range e.Checks {
			if c.Status != api.HealthPassing {
				if nonPassing == nil {
					nonPassing = map[checkKey]string{}
				}
				nonPassing[checkKey{c.Node, c.CheckID}] = c.Status
			}
		}
	}
	return nodes, instances, nonPassing
}

// requestSweep notes a ring at index and starts a sweep now, or as soon as
// spacing allows, unless a sweep that started later already covers it.
func (r *run) requestSweep(index uint64) {
	sw := r.sw
	if sw == nil {
		return
	}
	if index != 0 && index <= sw.covered {
		return
	}
	sw.pending = max(sw.pending, index)
	switch {
	case sw.sweeping:
		sw.again = true
	case sw.timer != nil:
		// A sweep is scheduled; it will cover this ring.
	default:
		if wait := sw.wait(); wait > 0 {
			sw.timer = time.NewTimer(wait)
		} else {
			r.startSweep()
		}
	}
}

// startSweep probes every service without a long poll, the most recently
// changed first; those never read are read in full.
func (r *run) startSweep() {
	sw := r.sw
	if sw == nil || sw.sweeping {
		return
	}
	quiet := make([]*service, 0, len(r.services)-r.held)
	for _, s := range r.services {
		// A service with a read queued needs no probe: at start, that is
		// every service.
		if !s.held() && !sw.queue.waiting(s.name) {
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
		return byRecentChange(a, b)
	})
	sw.covered = max(sw.covered, sw.pending)
	sw.sweeping, sw.again, sw.failed, sw.err = true, false, 0, nil
	sw.started = time.Now()
	sw.outstanding, sw.size, sw.probes = len(quiet), len(quiet), 0
	r.d.metrics.sweeps.Inc()
	for _, s := range quiet {
		sw.queue.push(readJob{name: s.name, gen: s.gen, sweep: true, probe: s.fetched})
		if s.fetched {
			sw.probes++
		}
	}
	if sw.outstanding == 0 {
		r.sweepDone()
	}
}

// readDone accounts for a successful read in sweep mode: a probe whose
// index moved is followed by a full read, and a quiet service that changed
// gets a long poll.
func (r *run) readDone(s *service, res result, changed bool) {
	sw := r.sw
	if s != nil && res.probe && res.index != s.index {
		r.readSoon(s)
	}
	if changed && !s.held() {
		r.promote(s)
	}
	if res.sweep && sw.sweeping {
		sw.outstanding--
		if sw.outstanding == 0 {
			r.sweepDone()
		}
	}
}

// readFailed accounts for a failed read: the service keeps its last known
// targets and a sweep retries it after a backoff.
func (r *run) readFailed(res result) {
	sw := r.sw
	if sw == nil {
		return
	}
	sw.failed++
	sw.err = res.err
	if res.sweep && sw.sweeping {
		sw.outstanding--
		if sw.outstanding == 0 {
			r.sweepDone()
		}
		return
	}
	if !sw.sweeping {
		r.scheduleRetry()
	}
}

// sweepDone schedules what follows a sweep.
func (r *run) sweepDone() {
	sw := r.sw
	sw.sweeping = false
	took := time.Since(sw.started)
	sw.wait() // settle the debt up to now
	// Only probing runs up debt: first reads are owed whatever the mode
	// (at start, all of a 10,000-service catalog), and charging them would
	// hold the first sweep back by four times the start-up.
	sw.debt += time.Duration(float64(sweepDebtFactor*took) * float64(sw.probes) / float64(max(sw.size, 1)))
	level.Debug(r.logger).Log("msg", "Sweep done", "took", took, "failed", sw.failed, "long_polls", r.held)
	if sw.failed > 0 {
		r.scheduleRetry()
		return
	}
	sw.retry = 0
	r.fillHeld()
	if sw.again {
		r.requestSweep(0)
	}
}

// scheduleRetry sweeps again after a backoff, so that services whose read
// failed are read again.
func (r *run) scheduleRetry() {
	sw := r.sw
	sw.retry = nextBackoff(sw.retry, sw.err)
	level.Warn(r.logger).Log("msg", "Some services could not be read; keeping their last known targets", "failed", sw.failed, "retry_in", sw.retry, "err", sw.err)
	sw.failed = 0
	sw.retryAt = time.Now().Add(jitter(sw.retry))
	if sw.timer != nil {
		sw.timer.Stop()
		sw.timer = nil
	}
	r.requestSweep(0)
}

// promote gives s a long poll, taking it from the service that has been
// quiet longest if all are taken and that one has been quiet for minQuiet.
func (r *run) promote(s *service) {
	sw := r.sw
	if sw.heldCap == 0 || !s.fetched || sw.startingUp {
		return
	}
	if r.held >= sw.heldCap {
		var oldest *service
		for _, h := range r.services {
			if h.held() && (oldest == nil || byRecentChange(h, oldest) > 0) {
				oldest = h
			}
		}
		if oldest == nil || time.Since(oldest.lastChange) < minQuiet || time.Since(sw.handedOver) < minHandOver {
			return
		}
		sw.handedOver = time.Now()
		r.release(oldest)
		r.readSoon(oldest)
	}
	r.hold(s)
}

// fillHeld gives free long polls to the most recently changed services.
func (r *run) fillHeld() {
	sw := r.sw
	free := sw.heldCap - r.held
	if free <= 0 || sw.startingUp {
		return
	}
	var quiet []*service
	for _, s := range r.services {
		if !s.held() && s.fetched {
			quiet = append(quiet, s)
		}
	}
	slices.SortFunc(quiet, byRecentChange)
	for _, s := range quiet[:min(free, len(quiet))] {
		r.hold(s)
	}
}

// byRecentChange orders services from the most recently changed to the
// longest quiet, then by name.
func byRecentChange(a, b *service) int {
	if c := b.lastChange.Compare(a.lastChange); c != 0 {
		return c
	}
	return strings.Compare(a.name, b.name)
}

// readJob asks a reader to read one service.
type readJob struct {
	name  string
	gen   uint64
	sweep bool // part of a sweep
	probe bool // read only the index
}

// readQueue hands read jobs to readers, urgent reads before sweep reads.
type readQueue struct {
	mu     sync.Mutex
	urgent []readJob
	queued map[string]struct{} // names in urgent
	sweep  []readJob
	wake   chan struct{}
}

func newReadQueue() *readQueue {
	return &readQueue{queued: map[string]struct{}{}, wake: make(chan struct{}, 1)}
}

func (q *readQueue) push(j readJob) {
	q.mu.Lock()
	if j.sweep {
		q.sweep = append(q.sweep, j)
	} else if _, dup := q.queued[j.name]; !dup {
		q.queued[j.name] = struct{}{}
		q.urgent = append(q.urgent, j)
	}
	q.mu.Unlock()
	q.signal()
}

// waiting reports whether a read of name waits in the urgent queue.
func (q *readQueue) waiting(name string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	_, ok := q.queued[name]
	return ok
}

func (q *readQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// pop waits for a job; it reports false once ctx is cancelled.
func (q *readQueue) pop(ctx context.Context) (readJob, bool) {
	for {
		q.mu.Lock()
		var j readJob
		ok := true
		switch {
		case len(q.urgent) > 0:
			j, q.urgent = q.urgent[0], q.urgent[1:]
			delete(q.queued, j.name)
		case len(q.sweep) > 0:
			j, q.sweep = q.sweep[0], q.sweep[1:]
		default:
			ok = false
		}
		more := len(q.urgent)+len(q.sweep) > 0
		q.mu.Unlock()
		if ok {
			if more {
				q.signal() // wake another reader for the rest
			}
			return j, true
		}
		select {
		case <-q.wake:
		case <-ctx.Done():
			return readJob{}, false
		}
	}
}
