package consul

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/hashicorp/consul/api"

	"github.com/custom-sd/custom-sd/adapter"
)

// Discoverer is an adapter.Discoverer for Consul services.
//
// While the services fit the connection budget, each has its own long poll
// and a change reaches the output in milliseconds. Over HTTPS the agent
// speaks HTTP/2 and up to 200 long polls share one connection, so that
// holds for thousands of services. When they do not fit, the datacenter is
// watched in doorbell mode (see doorbells.go).
type Discoverer struct {
	cfg       Config
	client    *api.Client
	transport *transport
	logger    log.Logger
	metrics   *metrics

	// Counts the watcher keeps for the metrics.
	doorbellDCs atomic.Int64 // datacenters watched in doorbell mode
	longPolls   atomic.Int64 // services with a long poll of their own
	watched     atomic.Int64 // services watched, in every datacenter
	dcCount     atomic.Int64 // datacenters watched, which share the budget
}

// New returns a Discoverer for cfg, or the first invalid field of cfg (see
// Config.Validate).
func New(cfg Config) (*Discoverer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	t, err := newTransport(cfg.MaxConnections-headroom(cfg.MaxConnections), &cfg.API.TLSConfig)
	if err != nil {
		return nil, err
	}
	// The transport adds the token to every request, so that a new one
	// can replace it while requests are in flight.
	token := cfg.API.Token
	switch {
	case cfg.TokenFile != "":
		token, err = readToken(cfg.TokenFile)
	case cfg.API.TokenFile != "":
		token, err = readToken(cfg.API.TokenFile)
	}
	if err != nil {
		return nil, err
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

// Run implements adapter.Discoverer. It sends nothing until every service of
// every datacenter has been read once, then the complete set, then the
// groups that change.
func (d *Discoverer) Run(ctx context.Context, up chan<- []*adapter.Group) {
	level.Info(d.logger).Log("msg", "Watching Consul", "server", d.cfg.API.Address, "datacenters", d.describeDatacenters(), "max_connections", d.cfg.MaxConnections)
	j := newJob(&d.cfg.Selection, d.cfg.TagSeparator)
	w := newWatcher(ctx, d, j)
	var wg sync.WaitGroup
	wg.Go(w.run)
	j.forward(ctx, up)
	wg.Wait()
}

// Requests reports how many HTTP requests the discoverer has sent to Consul.
func (d *Discoverer) Requests() uint64 { return d.transport.requests.Load() }

// streams is how many requests can be in flight at once within the budget,
// less its headroom: one per connection over HTTP/1.1, streamsPerConn per
// connection over HTTP/2.
func (d *Discoverer) streams() int {
	conns := d.cfg.MaxConnections - headroom(d.cfg.MaxConnections)
	if d.transport.http2.Load() {
		return conns * streamsPerConn
	}
	return conns
}

// multiDatacenter reports whether group sources carry the datacenter.
func (d *Discoverer) multiDatacenter() bool {
	return d.cfg.AllDatacenters || len(d.cfg.Datacenters) > 1
}

func (d *Discoverer) describeDatacenters() string {
	switch {
	case d.cfg.AllDatacenters:
		return "all"
	case len(d.cfg.Datacenters) == 0:
		return "the agent's own"
	}
	s := d.cfg.Datacenters[0]
	for _, dc := range d.cfg.Datacenters[1:] {
		s += "," + dc
	}
	return s
}
