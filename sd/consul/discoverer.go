package consul

import (
	"context"
	"sync"

	"github.com/custom-sd/custom-sd/adapter"
)

// Discoverer is an adapter.Discoverer for Consul services: one job with a
// Watch of its own.
//
// While the services fit the connection budget, each has its own long poll
// and a change reaches the output in milliseconds. Over HTTPS the agent
// speaks HTTP/2 and up to 200 long polls share one connection, so that
// holds for thousands of services. When they do not fit, a scope is watched
// in doorbell mode (see doorbells.go).
type Discoverer struct {
	*Watch
	job *Job
}

// New returns a Discoverer for cfg, or the first invalid field of cfg (see
// Config.Validate).
func New(cfg Config) (*Discoverer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	w, err := NewWatch(cfg.WatchConfig)
	if err != nil {
		return nil, err
	}
	j, err := w.Job(cfg.JobConfig)
	if err != nil {
		return nil, err
	}
	return &Discoverer{Watch: w, job: j}, nil
}

// Run implements adapter.Discoverer. It sends nothing until every service of
// every datacenter has been read once, then the complete set, then the
// groups that change.
func (d *Discoverer) Run(ctx context.Context, up chan<- []*adapter.Group) {
	var wg sync.WaitGroup
	wg.Go(func() { d.Watch.Run(ctx) })
	d.job.Run(ctx, up)
	wg.Wait()
}
