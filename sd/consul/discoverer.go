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
	"fmt"
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
	DefaultTagSeparator        = ","
	DefaultWaitTime            = 5 * time.Minute
	DefaultMaxConnections      = 64
	DefaultMinRequestInterval  = 10 * time.Millisecond
	DefaultDatacentersInterval = time.Minute
	DefaultTokenCheckInterval  = 5 * time.Second
	// MinConnections is the smallest budget that leaves room for the service
	// list, the two other doorbells, one reader and the headroom.
	MinConnections = 5
)

// Doorbell filters. The nodes doorbell wants only the index, which moves
// with every change to the nodes table, so it matches nothing. The health
// doorbell lists the checks that are not passing: any change of an
// instance's aggregated health shows as a change in that list.
const (
	healthDoorbellFilter = `Status != "passing"`
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
	// Selection chooses the services and instances that become targets.
	Selection Selection
	// Datacenters lists the datacenters to watch. Empty means API.Datacenter,
	// or the agent's own when that is empty too. With more than one, or with
	// AllDatacenters, each group's Source is "<datacenter>/<service>";
	// otherwise it is the service name.
	Datacenters []string
	// AllDatacenters watches every datacenter the agent knows, following
	// /v1/catalog/datacenters every DatacentersInterval.
	AllDatacenters bool
	// DatacentersInterval is how often the list of datacenters is read with
	// AllDatacenters; 0 means 1m.
	DatacentersInterval time.Duration
	// TokenFile, if set, holds the ACL token. It is re-read every
	// TokenCheckInterval and a new token takes effect at once: every watch
	// starts over with it. It overrides API.Token and API.TokenFile.
	TokenFile string
	// TokenCheckInterval is how often TokenFile is re-read; 0 means 5s.
	TokenCheckInterval time.Duration
	// Logger receives the discoverer's logs; nil logs nothing.
	Logger log.Logger
}

// Discoverer is an adapter.Discoverer for Consul services.
//
// While the services fit the connection budget, each has its own long poll
// and a change reaches the output in milliseconds. Over HTTPS the agent
// speaks HTTP/2 and up to 200 long polls share one connection, so that
// holds for thousands of services. When they do not fit, the discoverer
// switches to doorbells (see sweep.go): it keeps long polls for the most
// recently changed services, resolves health changes exactly from the list of
// non-passing checks, and re-reads the other services in a parallel sweep
// when the catalog or the nodes change.
type Discoverer struct {
	cfg       Config
	client    *api.Client
	transport *transport
	logger    log.Logger
	sweeping  atomic.Int64 // datacenters watched with doorbells and sweeps
	longPolls atomic.Int64 // services with a long poll of their own
	watched   atomic.Int64 // services watched, in every datacenter
	dcCount   atomic.Int64 // datacenters watched, which share the budget
	metrics   *metrics
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
		return nil, fmt.Errorf("consul: at least %d connections are needed", MinConnections)
	}
	if cfg.MinRequestInterval == 0 {
		cfg.MinRequestInterval = DefaultMinRequestInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = log.NewNopLogger()
	}
	if cfg.DatacentersInterval == 0 {
		cfg.DatacentersInterval = DefaultDatacentersInterval
	}
	if cfg.TokenCheckInterval == 0 {
		cfg.TokenCheckInterval = DefaultTokenCheckInterval
	}
	if len(cfg.Datacenters) == 0 && cfg.API.Datacenter != "" {
		cfg.Datacenters = []string{cfg.API.Datacenter}
	}
	cfg.API.Datacenter = "" // each query names its own
	t, err := newTransport(cfg.MaxConnections-headroom(cfg.MaxConnections), &cfg.API.TLSConfig)
	if err != nil {
		return nil, err
	}
	// The transport adds the token to every request, so that a new one
	// can replace it while requests are in flight.
	token := cfg.API.Token
	if cfg.TokenFile != "" {
		if token, err = readToken(cfg.TokenFile); err != nil {
			return nil, err
		}
	} else if cfg.API.TokenFile != "" {
		if token, err = readToken(cfg.API.TokenFile); err != nil {
			return nil, err
		}
	}
	t.token.Store(&token)
	cfg.API.Token, cfg.API.TokenFile = "", ""
	c, err := newClient(cfg.API, t)
	if err != nil {
		return nil, err
	}
	d := &Discoverer{cfg: cfg, client: c, transport: t, logger: cfg.Logger}
	d.metrics = newMetrics(d, t)
	t.metrics = d.metrics
	return d, nil
}

// sweepMode reports whether some datacenter is watched with doorbells and
// sweeps.
func (d *Discoverer) sweepMode() bool { return d.sweeping.Load() > 0 }

// Requests reports how many HTTP requests the discoverer has sent to Consul.
func (d *Discoverer) Requests() uint64 { return d.transport.requests.Load() }

// streams is how many requests can be in flight at once within the budget,
// less its headroom: one per connection over HTTP/1.1, a hundred per
// connection over HTTP/2.
func (d *Discoverer) streams() int {
	conns := d.cfg.MaxConnections - headroom(d.cfg.MaxConnections)
	if d.transport.http2.Load() {
		return conns * streamsPerConn
	}
	return conns
}

// streams is this datacenter's share of the requests the budget allows in
// flight.
func (r *run) streams() int {
	return max(r.d.streams()/max(int(r.d.dcCount.Load()), 1), 1)
}

func (r *run) poller(what, endpoint, filter string) poller {
	d := r.d
	return poller{
		what:        what,
		endpoint:    endpoint,
		filter:      filter,
		dc:          r.dc,
		logger:      r.logger,
		wait:        d.cfg.WaitTime,
		minInterval: d.cfg.MinRequestInterval,
		allowStale:  d.cfg.AllowStale,
		resets:      d.metrics.resets,
	}
}

func (d *Discoverer) fetchServices(ctx context.Context, q *api.QueryOptions) (map[string][]string, *api.QueryMeta, error) {
	q.NodeMeta = d.cfg.Selection.NodeMeta
	return d.client.Catalog().Services(q)
}

func (d *Discoverer) fetchInstances(name string) fetchFunc[[]*api.ServiceEntry] {
	return func(ctx context.Context, q *api.QueryOptions) ([]*api.ServiceEntry, *api.QueryMeta, error) {
		q.NodeMeta = d.cfg.Selection.NodeMeta
		return d.client.Health().ServiceMultipleTags(name, d.cfg.Selection.Tags, false, q)
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

	// From the last result, for the health doorbell: the nodes of the
	// instances, and the checks of the instances (node checks included)
	// that are not passing, with their status.
	nodes      map[string]struct{}
	instances  map[instanceKey]struct{}
	nonPassing map[checkKey]string
	// The health doorbell's non-passing checks of instances the last read
	// did not return (left out by a filter), as of its last ring.
	otherChecks map[checkKey]string
}

func (s *service) held() bool { return s.cancel != nil }

// result is one read of a service's instances, by its long poll or by a
// reader.
type result struct {
	name    string
	gen     uint64
	index   uint64
	entries []*api.ServiceEntry
	err     error // only from readers; long polls retry on their own
	sweep   bool  // read as part of a sweep
	probe   bool  // only the index was read
}

// catalogUpdate is a new service list.
type catalogUpdate struct {
	names map[string][]string
	index uint64
}

// run is the state of watching one datacenter. Only its own goroutine
// touches it; the goroutines it starts talk to it through channels.
type run struct {
	d      *Discoverer
	ctx    context.Context
	up     chan<- []*adapter.Group
	wg     sync.WaitGroup
	dc     string // "" for the agent's own
	prefix string // put before each service name to make a group's Source
	logger log.Logger

	services     map[string]*service
	nextGen      uint64
	listed       bool   // the service list has been read
	catalogIndex uint64 // the service list's index
	sent         bool   // the complete initial set has been sent
	held         int    // services with a long poll of their own
	counted      int    // services counted in d.watched

	catalogCh chan catalogUpdate
	resultCh  chan result
	ringCh    chan ring

	sw *sweeper // non-nil in sweep mode
}

// runDC watches one datacenter ("" for the agent's own) with its share of
// the connection budget (see run.streams). It returns when ctx is cancelled,
// or with reset true when Consul's index went backwards: Consul lost or
// restored its state, and the datacenter must be read again from scratch
// before anything more is sent. Its first send on up is
// the datacenter's complete set; later sends carry the groups that changed.
// Group sources are prefix + the service name.
func (d *Discoverer) runDC(ctx context.Context, dc, prefix string, up chan<- []*adapter.Group) (reset bool) {
	ctx, cancel := context.WithCancel(ctx)
	logger := d.logger
	if dc != "" {
		logger = log.With(logger, "datacenter", dc)
	}
	r := &run{
		d:         d,
		ctx:       ctx,
		up:        up,
		dc:        dc,
		prefix:    prefix,
		logger:    logger,
		services:  map[string]*service{},
		catalogCh: make(chan catalogUpdate),
		resultCh:  make(chan result),
		ringCh:    make(chan ring),
	}
	defer r.wg.Wait()
	defer cancel()

	r.wg.Go(func() {
		poll(ctx, r.poller("service list", "/v1/catalog/services", d.cfg.Selection.Filter), 0, d.fetchServices, func(names map[string][]string, index uint64) {
			select {
			case r.catalogCh <- catalogUpdate{names, index}:
			case <-ctx.Done():
			}
		})
	})

	for {
		var sweepTimerC <-chan time.Time
		if r.sw != nil && r.sw.timer != nil {
			sweepTimerC = r.sw.timer.C
		}
		select {
		case <-ctx.Done():
			r.stop()
			return false
		case cu := <-r.catalogCh:
			if cu.index < r.catalogIndex {
				level.Warn(r.logger).Log("msg", "Consul's index went backwards; reading everything again before sending anything", "old", r.catalogIndex, "new", cu.index)
				r.stop()
				return true
			}
			r.reconcile(cu)
		case res := <-r.resultCh:
			r.apply(res)
		case rg := <-r.ringCh:
			r.doorbell(rg)
		case <-sweepTimerC:
			r.sw.timer = nil
			r.startSweep()
		}
		r.sendInitial()
	}
}

// stop ends the watch's long polls and sweep mode.
func (r *run) stop() {
	r.leaveSweepMode()
	for _, s := range r.services {
		r.release(s)
	}
	r.d.watched.Add(int64(-r.counted))
	r.counted = 0
}

// reconcile follows a new service list: new services are watched, removed
// ones are deleted from the output, and the watching mode follows the count.
func (r *run) reconcile(cu catalogUpdate) {
	r.catalogIndex = cu.index
	r.listed = true
	for name, tags := range cu.names {
		if !r.d.cfg.Selection.wantService(name, tags) {
			delete(cu.names, name)
		}
	}

	for name, s := range r.services {
		if _, ok := cu.names[name]; ok {
			continue
		}
		r.release(s)
		delete(r.services, name)
		if r.sent && s.group != nil && len(s.group.Targets) > 0 {
			r.send(&adapter.Group{Source: r.prefix + name})
		}
		level.Debug(r.logger).Log("msg", "Service left the catalog", "service", name)
	}
	var added []*service
	for name := range cu.names {
		if _, ok := r.services[name]; ok {
			continue
		}
		r.nextGen++
		s := &service{name: name, gen: r.nextGen}
		r.services[name] = s
		added = append(added, s)
		level.Debug(r.logger).Log("msg", "Service joined the catalog", "service", name)
	}
	r.d.watched.Add(int64(len(r.services) - r.counted))
	r.counted = len(r.services)

	if len(r.services) <= r.streams()-1 {
		r.leaveSweepMode()
		for _, s := range r.services {
			if !s.held() {
				r.hold(s)
			}
		}
		return
	}
	r.enterSweepMode()
	for _, s := range added {
		r.readSoon(s)
	}
	r.requestSweep(cu.index)
}

// hold starts a long poll of its own for s.
func (r *run) hold(s *service) {
	ctx, cancel := context.WithCancel(r.ctx)
	s.cancel = cancel
	r.held++
	r.d.longPolls.Add(1)
	name, gen, index := s.name, s.gen, s.index
	r.wg.Go(func() {
		poll(ctx, r.poller("service "+name, "/v1/health/service/"+name, r.d.cfg.Selection.HealthFilter), index, r.d.fetchInstances(name), func(entries []*api.ServiceEntry, idx uint64) {
			select {
			case r.resultCh <- result{name: name, gen: gen, index: idx, entries: entries}:
			case <-ctx.Done():
			}
		})
	})
}

// release stops the long poll of s, if it has one.
func (r *run) release(s *service) {
	if s.held() {
		s.cancel()
		s.cancel = nil
		r.held--
		r.d.longPolls.Add(-1)
	}
}

// apply takes in one read of a service.
func (r *run) apply(res result) {
	if res.err != nil {
		r.readFailed(res)
		return
	}
	s := r.services[res.name]
	if s != nil && s.gen != res.gen {
		s = nil // the service left the catalog and came back meanwhile
	}
	changed := s != nil && !res.probe && r.update(s, res)
	if r.sw != nil {
		r.readDone(s, res, changed)
	}
}

// update stores a read of s and sends its group if it changed. It reports
// whether the targets changed. A read with an index below the one already
// stored is older news — reads race, and a stale read may come from a server
// that lags — and is dropped; a real reset of Consul's indexes is handled by
// reconcile.
func (r *run) update(s *service, res result) bool {
	if s.fetched && res.index <= s.index {
		if res.index < s.index {
			level.Debug(r.logger).Log("msg", "Dropping an older read", "service", s.name, "index", res.index, "have", s.index)
		}
		return false
	}
	s.index = res.index
	s.nodes, s.instances, s.nonPassing = healthState(res.entries)
	g := toGroup(r.prefix+s.name, s.name, r.d.cfg.Selection.admitted(res.entries), r.d.cfg.TagSeparator)
	if s.fetched && groupsEqual(s.group, g) {
		level.Debug(r.logger).Log("msg", "Service changed in Consul but not its targets", "service", s.name, "index", res.index)
		return false
	}
	s.group, s.fetched, s.lastChange = g, true, time.Now()
	if r.sent {
		r.send(g)
	}
	return true
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
	level.Info(r.logger).Log("msg", "Read every service once", "services", len(groups), "targets", targets)
	r.sent = true
	r.endStartup()
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
