package supervisor

import (
	"context"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/custom-sd/custom-sd/adapter"
	"github.com/custom-sd/custom-sd/internal/config"
	"github.com/custom-sd/custom-sd/sd/consul"
)

// Parts builds what a configuration runs. Building starts nothing and
// changes nothing that runs: a part is started only once every part of a
// configuration has been built. Tests replace Parts to fail at any step.
type Parts interface {
	// Watch builds the watch of an agent: its client, TLS and secrets.
	Watch(c *config.Watch, logger log.Logger) (Watch, error)
	// Job builds a job's discoverer on its agent's watch.
	Job(w Watch, spec *config.JobSpec) (adapter.Discoverer, error)
	// Adapter builds a job's adapter: its outputs, reading their files.
	Adapter(spec *config.JobSpec, d adapter.Discoverer, logger log.Logger) (Adapter, error)
}

// Watch is a running agent's watch, as the supervisor uses it.
type Watch interface {
	prometheus.Collector
	Run(ctx context.Context)
	// Refresh reads the watch's token, password and TLS files again now.
	Refresh()
	// Unreadable lists the services its jobs go on without.
	Unreadable() []consul.Unreadable
}

// Adapter is a job's adapter, as the supervisor uses it.
type Adapter interface {
	prometheus.Collector
	Run(ctx context.Context)
	Ready() bool
	Snapshot() *adapter.Snapshot
}

// Real builds the real parts: consul.Watch, consul.Job and adapter.Adapter.
type Real struct{}

// Watch implements Parts.
func (Real) Watch(c *config.Watch, logger log.Logger) (Watch, error) {
	wc := c.Config
	wc.Logger = logger
	return consul.NewWatch(wc)
}

// Job implements Parts.
func (Real) Job(w Watch, spec *config.JobSpec) (adapter.Discoverer, error) {
	d, err := w.(*consul.Watch).Job(spec.Job)
	if err != nil {
		return nil, err
	}
	if spec.Shard >= 0 {
		return adapter.OnlyShard(d, spec.Shard, spec.Shards), nil
	}
	return d, nil
}

// Adapter implements Parts.
func (Real) Adapter(spec *config.JobSpec, d adapter.Discoverer, logger log.Logger) (Adapter, error) {
	opts := spec.Options
	opts.Logger = logger
	return adapter.New(spec.Path, map[string]adapter.Discoverer{"consul": d}, opts)
}
