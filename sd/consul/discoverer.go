// Package consul discovers Prometheus targets in Consul's catalog.
//
// A Discoverer watches the service list and every service's healthy and
// unhealthy instances with blocking queries, within a fixed budget of
// connections to the agent, and sends one target group per service with the
// labels Prometheus's consul_sd_configs would give each instance.
package consul

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/hashicorp/consul/api"

	"github.com/custom-sd/custom-sd/adapter"
)

// Defaults for Config.
const (
	DefaultTagSeparator       = ","
	DefaultWaitTime           = 5 * time.Minute
	DefaultMaxConnections     = 64
	DefaultMinRequestInterval = 10 * time.Millisecond
	// MinConnections is the smallest budget that leaves room for the service
	// list, the two doorbells and one sweeper.
	MinConnections = 4
)

// Filters that no check and no node match: the doorbells want only the
// index, which moves with every change to the table, not the rows.
const (
	healthDoorbellFilter = `CheckID == "custom-sd.doorbell.invalid"`
	nodesDoorbellFilter  = `Node == "custom-sd.doorbell.invalid"`
)

// Config configures a Discoverer.
type Config struct {
	// API addresses the agent: Address (host:port, or a URL with scheme),
	// Token, TLSConfig and Datacenter are used; HttpClient and Transport are
	// replaced by the Discoverer's own.
	API api.Config
	// TagSeparator joins tags in __meta_consul_tags; "" means ",".
	TagSeparator string
	// WaitTime is how long Consul may hold a blocking query; 0 means 5m.
	WaitTime time.Duration
	// MaxConnections caps the connections to the agent; 0 means 64. Keep it
	// well below the agent's limits.http_max_conns_per_client (200).
	MaxConnections int
	// MinRequestInterval is the least time between two requests of one
	// watch; 0 means 10ms.
	MinRequestInterval time.Duration
	// AllowStale lets any server answer reads, not only the leader.
	AllowStale bool
	// Logger receives the discoverer's logs; nil logs nothing.
	Logger log.Logger
}

// Discoverer is an adapter.Discoverer for Consul services.
//
// While there are fewer services than connections, each service has its own
// long poll and a change reaches the output in milliseconds. With more
// services than connections over HTTP/1.1, the discoverer holds three long
// polls — the service list, all health checks and all nodes, filtered to
// return nothing — whose indexes move with any change, and on each move
// re-reads the services in a parallel sweep, spaced so that sweeping takes at
// most a tenth of the time. Over HTTPS the agent speaks HTTP/2 and every
// service gets its own long poll again, a hundred to a connection.
type Discoverer struct {
	cfg       Config
	client    *api.Client
	transport *transport
	logger    log.Logger
	sweeping  atomic.Bool // watching with doorbells and sweeps
}

// New returns a Discoverer for cfg.
func New(cfg Config) (*Discoverer, error) {
	if cfg.TagSeparator == "" {
		cfg.TagSeparator = DefaultTagSeparator
	}
	if cfg.WaitTime == 0 {
		cfg.WaitTime = DefaultWaitTime
	}
	if cfg.MaxConnections == 0 {
		cfg.MaxConnections = DefaultMaxConnections
	}
	if cfg.MaxConnections < MinConnections {
		return nil, errors.New("consul: at least 4 connections are needed")
	}
	if cfg.MinRequestInterval == 0 {
		cfg.MinRequestInterval = DefaultMinRequestInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = log.NewNopLogger()
	}
	t, err := newTransport(cfg.MaxConnections, &cfg.API.TLSConfig)
	if err != nil {
		return nil, err
	}
	c, err := newClient(cfg.API, t)
	if err != nil {
		return nil, err
	}
	return &Discoverer{cfg: cfg, client: c, transport: t, logger: cfg.Logger}, nil
}

// Requests reports how many HTTP requests the discoverer has sent to Consul.
func (d *Discoverer) Requests() uint64 { return d.transport.requests.Load() }

// pollCapacity is how many long polls fit the connection budget besides the
// service list's.
func (d *Discoverer) pollCapacity() int {
	if d.transport.http2.Load() {
		return d.cfg.MaxConnections*streamsPerConn - 1
	}
	return d.cfg.MaxConnections - 1
}

// sweepWorkers is how many services a sweep reads at once: the budget minus
// the service list and the two doorbells.
func (d *Discoverer) sweepWorkers() int { return d.cfg.MaxConnections - 3 }

func (d *Discoverer) poller(what, filter string) poller {
	return poller{
		what:        what,
		filter:      filter,
		logger:      d.logger,
		wait:        d.cfg.WaitTime,
		minInterval: d.cfg.MinRequestInterval,
		allowStale:  d.cfg.AllowStale,
	}
}

func (d *Discoverer) fetchServices(ctx context.Context, q *api.QueryOptions) (map[string][]string, *api.QueryMeta, error) {
	return d.client.Catalog().Services(q)
}

func (d *Discoverer) fetchInstances(name string) fetchFunc[[]*api.ServiceEntry] {
	return func(ctx context.Context, q *api.QueryOptions) ([]*api.ServiceEntry, *api.QueryMeta, error) {
		return d.client.Health().Service(name, "", false, q)
	}
}

func (d *Discoverer) fetchChecks(ctx context.Context, q *api.QueryOptions) (api.HealthChecks, *api.QueryMeta, error) {
	return d.client.Health().State(api.HealthAny, q)
}

func (d *Discoverer) fetchNodes(ctx context.Context, q *api.QueryOptions) ([]*api.Node, *api.QueryMeta, error) {
	return d.client.Catalog().Nodes(q)
}

// service is what the discoverer knows of one service.
type service struct {
	name       string
	gen        uint64 // distinguishes this appearance of the name from earlier ones
	index      uint64 // X-Consul-Index of the last result
	group      *adapter.Group
	fetched    bool
	lastChange time.Time
	cancel     context.CancelFunc // stops the service's own long poll, if it has one
}

// result is one successful read of a service's instances.
type result struct {
	name    string
	gen     uint64
	index   uint64
	entries []*api.ServiceEntry
}

// catalogUpdate is a new service list.
type catalogUpdate struct {
	names map[string][]string
	index uint64
}

// sweepOutcome ends a sweep.
type sweepOutcome struct {
	failed   int   // services that could not be read
	err      error // one of their errors
	duration time.Duration
}

// run is the state of one Run call. Only the Run goroutine touches it; the
// goroutines it starts talk to it through channels.
type run struct {
	d   *Discoverer
	ctx context.Context
	up  chan<- []*adapter.Group
	wg  sync.WaitGroup

	services     map[string]*service
	nextGen      uint64
	listed       bool   // the service list has been read
	catalogIndex uint64 // the service list's index
	sent         bool   // the complete initial set has been sent

	catalogCh chan catalogUpdate
	resultCh  chan result
	ringCh    chan struct{}
	sweepCh   chan sweepOutcome

	sweepMode      bool
	stopDoorbells  context.CancelFunc
	sweeping       bool
	sweepAgain     bool
	sweepTimer     *time.Timer
	nextSweep      time.Time
	sweepRetry     time.Duration
	lastSweepStart time.Time
}

// Run implements adapter.Discoverer.
func (d *Discoverer) Run(ctx context.Context, up chan<- []*adapter.Group) {
	ctx, cancel := context.WithCancel(ctx)
	r := &run{
		d:         d,
		ctx:       ctx,
		up:        up,
		services:  map[string]*service{},
		catalogCh: make(chan catalogUpdate),
		resultCh:  make(chan result),
		ringCh:    make(chan struct{}, 1),
		sweepCh:   make(chan sweepOutcome),
	}
	defer r.wg.Wait()
	defer cancel()

	level.Info(d.logger).Log("msg", "Watching Consul", "server", d.cfg.API.Address, "datacenter", d.cfg.API.Datacenter, "max_connections", d.cfg.MaxConnections)
	r.wg.Go(func() {
		poll(ctx, d.poller("service list", ""), 0, d.fetchServices, func(names map[string][]string, index uint64) {
			select {
			case r.catalogCh <- catalogUpdate{names, index}:
			case <-ctx.Done():
			}
		})
	})

	for {
		var sweepTimerC <-chan time.Time
		if r.sweepTimer != nil {
			sweepTimerC = r.sweepTimer.C
		}
		select {
		case <-ctx.Done():
			if r.sweepTimer != nil {
				r.sweepTimer.Stop()
			}
			return
		case cu := <-r.catalogCh:
			r.reconcile(cu)
			if r.sweepMode {
				r.ring()
			}
		case res := <-r.resultCh:
			r.apply(res)
		case <-r.ringCh:
			r.requestSweep()
		case out := <-r.sweepCh:
			r.sweepDone(out)
		case <-sweepTimerC:
			r.sweepTimer = nil
			r.startSweep()
		}
		r.sendInitial()
	}
}

// reconcile follows a new service list: new services are watched, removed
// ones are deleted from the output, and the watching mode follows the count.
// When the list's index went backwards, Consul lost or restored its state:
// every service's own long poll waits for an index that may now be far off,
// so each starts over with a fresh read.
func (r *run) reconcile(cu catalogUpdate) {
	names := cu.names
	if cu.index < r.catalogIndex {
		level.Warn(r.d.logger).Log("msg", "Consul's index went backwards; re-reading every service", "old", r.catalogIndex, "new", cu.index)
		for _, s := range r.services {
			if s.cancel != nil {
				s.cancel()
				s.cancel = nil
			}
			s.index = 0
		}
	}
	r.catalogIndex = cu.index
	r.listed = true
	for name, s := range r.services {
		if _, ok := names[name]; ok {
			continue
		}
		if s.cancel != nil {
			s.cancel()
		}
		delete(r.services, name)
		if r.sent && s.group != nil && len(s.group.Targets) > 0 {
			r.send(&adapter.Group{Source: name})
		}
		level.Debug(r.d.logger).Log("msg", "Service left the catalog", "service", name)
	}
	for name := range names {
		if _, ok := r.services[name]; ok {
			continue
		}
		r.nextGen++
		r.services[name] = &service{name: name, gen: r.nextGen}
		level.Debug(r.d.logger).Log("msg", "Service joined the catalog", "service", name)
	}

	sweep := len(r.services) > r.d.pollCapacity()
	if sweep != r.sweepMode {
		r.sweepMode = sweep
		r.d.sweeping.Store(sweep)
		if sweep {
			level.Info(r.d.logger).Log("msg", "More services than connections: watching with doorbells and sweeps", "services", len(r.services), "max_connections", r.d.cfg.MaxConnections)
		} else {
			level.Info(r.d.logger).Log("msg", "Watching every service with its own long poll", "services", len(r.services))
		}
	}
	if r.sweepMode {
		for _, s := range r.services {
			if s.cancel != nil {
				s.cancel()
				s.cancel = nil
			}
		}
		r.startDoorbells()
		return
	}
	r.stopDoorbellsIfRunning()
	for _, s := range r.services {
		if s.cancel == nil {
			r.hold(s)
		}
	}
}

// hold starts a long poll of its own for s.
func (r *run) hold(s *service) {
	ctx, cancel := context.WithCancel(r.ctx)
	s.cancel = cancel
	name, gen, index := s.name, s.gen, s.index
	r.wg.Go(func() {
		poll(ctx, r.d.poller("service "+name, ""), index, r.d.fetchInstances(name), func(entries []*api.ServiceEntry, idx uint64) {
			select {
			case r.resultCh <- result{name: name, gen: gen, index: idx, entries: entries}:
			case <-ctx.Done():
			}
		})
	})
}

// startDoorbells starts the long polls whose index moves with any check or
// node change. The service list's poll is the third doorbell.
func (r *run) startDoorbells() {
	if r.stopDoorbells != nil {
		return
	}
	ctx, cancel := context.WithCancel(r.ctx)
	r.stopDoorbells = cancel
	r.wg.Go(func() {
		poll(ctx, r.d.poller("health checks", healthDoorbellFilter), 0, r.d.fetchChecks, func(api.HealthChecks, uint64) { r.ring() })
	})
	r.wg.Go(func() {
		poll(ctx, r.d.poller("nodes", nodesDoorbellFilter), 0, r.d.fetchNodes, func([]*api.Node, uint64) { r.ring() })
	})
}

func (r *run) stopDoorbellsIfRunning() {
	if r.stopDoorbells != nil {
		r.stopDoorbells()
		r.stopDoorbells = nil
	}
}

// ring notes that something in Consul changed.
func (r *run) ring() {
	select {
	case r.ringCh <- struct{}{}:
	default:
	}
}

// requestSweep starts a sweep now, or as soon as spacing allows.
func (r *run) requestSweep() {
	switch {
	case !r.sweepMode:
	case r.sweeping:
		r.sweepAgain = true
	case r.sweepTimer != nil:
		// A sweep is scheduled; it will see this change.
	case time.Now().Before(r.nextSweep):
		r.sweepTimer = time.NewTimer(time.Until(r.nextSweep))
	default:
		r.startSweep()
	}
}

// startSweep reads every service once, services never read first and then
// the most recently changed, so the likeliest changes arrive soonest.
func (r *run) startSweep() {
	if !r.sweepMode || r.sweeping {
		return
	}
	todo := make([]*service, 0, len(r.services))
	for _, s := range r.services {
		todo = append(todo, s)
	}
	slices.SortFunc(todo, func(a, b *service) int {
		if a.fetched != b.fetched {
			if !a.fetched {
				return -1
			}
			return 1
		}
		return b.lastChange.Compare(a.lastChange)
	})
	type job struct {
		name string
		gen  uint64
	}
	jobs := make([]job, len(todo))
	for i, s := range todo {
		jobs[i] = job{s.name, s.gen}
	}
	r.sweeping, r.sweepAgain = true, false
	r.lastSweepStart = time.Now()
	ctx, d := r.ctx, r.d
	r.wg.Go(func() {
		start := time.Now()
		next := make(chan job)
		var failed sync.Map
		var workers sync.WaitGroup
		for range min(d.sweepWorkers(), len(jobs)) {
			workers.Go(func() {
				for j := range next {
					entries, idx, err := d.readOnce(ctx, j.name)
					if err != nil {
						failed.Store(j.name, err)
						continue
					}
					select {
					case r.resultCh <- result{name: j.name, gen: j.gen, index: idx, entries: entries}:
					case <-ctx.Done():
					}
				}
			})
		}
	feed:
		for _, j := range jobs {
			select {
			case next <- j:
			case <-ctx.Done():
				break feed
			}
		}
		close(next)
		workers.Wait()
		out := sweepOutcome{duration: time.Since(start)}
		failed.Range(func(_, err any) bool {
			out.failed++
			out.err = err.(error)
			return true
		})
		select {
		case r.sweepCh <- out:
		case <-ctx.Done():
		}
	})
}

// readOnce reads a service's instances without blocking.
func (d *Discoverer) readOnce(ctx context.Context, name string) ([]*api.ServiceEntry, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout(0))
	defer cancel()
	q := (&api.QueryOptions{AllowStale: d.cfg.AllowStale}).WithContext(ctx)
	entries, meta, err := d.client.Health().Service(name, "", false, q)
	if err != nil {
		return nil, 0, err
	}
	return entries, meta.LastIndex, nil
}

// sweepDone schedules the next sweep: after a backoff when reads failed,
// otherwise only if something changed meanwhile, spaced so that sweeping
// takes at most a tenth of the time.
func (r *run) sweepDone(out sweepOutcome) {
	r.sweeping = false
	r.nextSweep = r.lastSweepStart.Add(max(10*out.duration, r.d.cfg.MinRequestInterval))
	if out.failed > 0 {
		r.sweepRetry = nextBackoff(r.sweepRetry, out.err)
		level.Warn(r.d.logger).Log("msg", "Some services could not be read; keeping their last known targets", "failed", out.failed, "retry_in", r.sweepRetry, "err", out.err)
		r.nextSweep = time.Now().Add(jitter(r.sweepRetry))
		r.sweepAgain = true
	} else {
		r.sweepRetry = 0
	}
	if r.sweepAgain {
		r.requestSweep()
	}
}

// apply takes in one read of a service.
func (r *run) apply(res result) {
	s := r.services[res.name]
	if s == nil || s.gen != res.gen {
		return // the service left the catalog meanwhile
	}
	if s.fetched && res.index == s.index {
		return
	}
	s.index = res.index
	g := toGroup(s.name, s.name, res.entries, r.d.cfg.TagSeparator)
	if s.fetched && groupsEqual(s.group, g) {
		level.Debug(r.d.logger).Log("msg", "Service changed in Consul but not its targets", "service", s.name, "index", res.index)
		return
	}
	s.group, s.fetched, s.lastChange = g, true, time.Now()
	if r.sent {
		r.send(g)
	}
}

// sendInitial sends the complete set once the service list and every
// service in it have been read.
func (r *run) sendInitial() {
	if r.sent || !r.listed {
		return
	}
	groups := make([]*adapter.Group, 0, len(r.services))
	targets := 0
	for _, s := range r.services {
		if !s.fetched {
			return
		}
		groups = append(groups, s.group)
		targets += len(s.group.Targets)
	}
	slices.SortFunc(groups, func(a, b *adapter.Group) int { return cmp.Compare(a.Source, b.Source) })
	level.Info(r.d.logger).Log("msg", "Read every service once", "services", len(groups), "targets", targets)
	r.sent = true
	r.send(groups...)
}

func (r *run) send(groups ...*adapter.Group) {
	select {
	case r.up <- groups:
	case <-r.ctx.Done():
	}
}

// groupsEqual compares two groups target by target.
func groupsEqual(a, b *adapter.Group) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.Source != b.Source || !a.Labels.Equal(b.Labels) || len(a.Targets) != len(b.Targets) {
		return false
	}
	for i := range a.Targets {
		if !a.Targets[i].Equal(b.Targets[i]) {
			return false
		}
	}
	return true
}
