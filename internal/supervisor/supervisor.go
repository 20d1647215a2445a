// Package supervisor runs a configuration: one watch per Consul agent and
// one adapter per job. Apply replaces the running configuration by another
// whole or not at all: it first builds every part the new configuration
// needs that is not running yet — watches with their clients, TLS and
// secrets, jobs, adapters with their outputs, their metrics — and only when
// all of them are built does it commit, in one step: the HTTP side sees the
// new set at once, the parts that are gone or changed stop (their files are
// left as they are), and the new parts start. A failure at any step of the
// build leaves the running set exactly as it was. Apply and Stop hold one
// lock, so that a reload and a shutdown never interleave, and nothing
// starts after Stop.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/custom-sd/custom-sd/adapter"
	"github.com/custom-sd/custom-sd/internal/config"
)

// ErrStopped is what Apply returns after Stop.
var ErrStopped = errors.New("custom-sd is stopping")

// Supervisor runs one configuration at a time. Its read side (Jobs,
// Targets, Ready, Gather) serves the HTTP side without waiting for Apply.
type Supervisor struct {
	ctx    context.Context // every part runs under it
	logger log.Logger
	parts  Parts

	mu      sync.Mutex // one Apply or Stop at a time
	stopped bool
	current atomic.Pointer[set]
}

// set is what runs: the watches by agent name, the jobs by job name.
type set struct {
	watches map[string]*watch
	jobs    map[string]*job
	names   []string // the jobs' names, sorted
}

// part is a running (or built, not yet started) watch or adapter.
type part struct {
	metrics *prometheus.Registry // its metrics, labelled with its name
	cancel  context.CancelFunc   // nil until it starts
	done    chan struct{}        // closed when its Run returns
}

type watch struct {
	part
	fingerprint string
	watch       Watch
}

type job struct {
	part
	spec    *config.JobSpec
	adapter Adapter
}

// New returns a Supervisor whose parts run under ctx, built by parts, and
// that runs nothing yet.
func New(ctx context.Context, logger log.Logger, parts Parts) *Supervisor {
	if logger == nil {
		logger = log.NewNopLogger()
	}
	s := &Supervisor{ctx: ctx, logger: logger, parts: parts}
	s.current.Store(&set{watches: map[string]*watch{}, jobs: map[string]*job{}})
	return s
}

// Apply makes cfg the running configuration, whole or not at all. Parts
// whose settings are unchanged go on untouched; the watches kept read their
// files again (see Watch.Refresh).
func (s *Supervisor) Apply(cfg *config.Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return ErrStopped
	}
	old := s.current.Load()
	next, err := s.build(old, cfg)
	if err != nil {
		return err
	}
	s.commit(old, next)
	return nil
}

// build builds what cfg needs and old does not run, and returns the set cfg
// runs. It starts nothing and changes nothing of old.
func (s *Supervisor) build(old *set, cfg *config.Config) (*set, error) {
	next := &set{watches: map[string]*watch{}, jobs: map[string]*job{}}
	for _, spec := range cfg.Jobs {
		if _, ok := next.watches[spec.Consul]; ok {
			continue
		}
		c := cfg.Consuls[spec.Consul]
		if w, ok := old.watches[spec.Consul]; ok && w.fingerprint == c.Fingerprint {
			next.watches[spec.Consul] = w
			continue
		}
		built, err := s.parts.Watch(c, log.With(s.logger, "component", "consul", "consul", c.Name))
		if err != nil {
			return nil, fmt.Errorf("consul %s: %w", c.Name, err)
		}
		reg, err := registry(prometheus.Labels{"consul": c.Name}, built)
		if err != nil {
			return nil, fmt.Errorf("consul %s: %w", c.Name, err)
		}
		next.watches[spec.Consul] = &watch{part: part{metrics: reg}, fingerprint: c.Fingerprint, watch: built}
	}
	for _, spec := range cfg.Jobs {
		next.names = append(next.names, spec.Name)
		if j, ok := old.jobs[spec.Name]; ok && j.spec.Fingerprint == spec.Fingerprint {
			next.jobs[spec.Name] = j
			continue
		}
		j, err := s.buildJob(next.watches[spec.Consul].watch, spec)
		if err != nil {
			return nil, fmt.Errorf("job %s: %w", spec.Name, err)
		}
		next.jobs[spec.Name] = j
	}
	slices.Sort(next.names)
	return next, nil
}

// buildJob builds a job's discoverer on w, its adapter and its metrics.
func (s *Supervisor) buildJob(w Watch, spec *config.JobSpec) (*job, error) {
	d, err := s.parts.Job(w, spec)
	if err != nil {
		return nil, err
	}
	a, err := s.parts.Adapter(spec, d, log.With(s.logger, "job", spec.Name))
	if err != nil {
		return nil, err
	}
	reg, err := registry(prometheus.Labels{"sd_job": spec.Name}, a)
	if err != nil {
		return nil, err
	}
	return &job{part: part{metrics: reg}, spec: spec, adapter: a}, nil
}

// registry returns a registry of its own holding c's metrics with labels:
// a part's metrics never collide with those of the part it replaces, and
// come and go with it.
func registry(labels prometheus.Labels, c prometheus.Collector) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	if err := prometheus.WrapRegistererWith(labels, reg).Register(c); err != nil {
		return nil, fmt.Errorf("register its metrics: %w", err)
	}
	return reg, nil
}

// commit makes next the running set: the HTTP side sees it at once; then
// what old runs and next does not stops, jobs before the watches they read;
// then next's new jobs start, and only then its new watches, so that jobs
// starting together share their first reads. Watches kept read their files
// again.
func (s *Supervisor) commit(old, next *set) {
	s.current.Store(next)
	for _, name := range sortedKeys(old.jobs) {
		if j := old.jobs[name]; next.jobs[name] != j {
			level.Info(s.logger).Log("msg", "Stopping a job; its files are left as they are", "job", name)
			j.stop()
		}
	}
	for _, name := range sortedKeys(old.watches) {
		if w := old.watches[name]; next.watches[name] != w {
			w.stop()
		}
	}
	for _, name := range next.names {
		if j := next.jobs[name]; j.cancel == nil {
			j.start(s.ctx, j.adapter.Run)
		}
	}
	for _, name := range sortedKeys(next.watches) {
		if w := next.watches[name]; w.cancel == nil {
			w.start(s.ctx, w.watch.Run)
		} else {
			w.watch.Refresh()
		}
	}
}

// Stop stops every part and returns once they have all returned. Apply
// does nothing after it.
func (s *Supervisor) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	old := s.current.Load()
	s.current.Store(&set{watches: map[string]*watch{}, jobs: map[string]*job{}})
	for _, name := range sortedKeys(old.jobs) {
		old.jobs[name].stop()
	}
	for _, name := range sortedKeys(old.watches) {
		old.watches[name].stop()
	}
}

func (p *part) start(ctx context.Context, run func(context.Context)) {
	ctx, p.cancel = context.WithCancel(ctx)
	p.done = make(chan struct{})
	go func() {
		defer close(p.done)
		run(ctx)
	}()
}

func (p *part) stop() {
	if p.cancel == nil {
		return
	}
	p.cancel()
	<-p.done
}

// Jobs lists the running jobs' names, sorted.
func (s *Supervisor) Jobs() []string { return s.current.Load().names }

// Targets returns a job's latest complete set, or nil before there is one;
// ok is false for an unknown job.
func (s *Supervisor) Targets(name string) (snap *adapter.Snapshot, ok bool) {
	j, ok := s.current.Load().jobs[name]
	if !ok {
		return nil, false
	}
	return j.adapter.Snapshot(), true
}

// Ready reports whether every job's output holds a complete set.
func (s *Supervisor) Ready() bool {
	cur := s.current.Load()
	if len(cur.jobs) == 0 {
		return false
	}
	for _, j := range cur.jobs {
		if !j.adapter.Ready() {
			return false
		}
	}
	return true
}

// Unreadable lists the services the running jobs go on without because
// they cannot be read, one line each, naming the agent, the service
// (quoted), its datacenter and the error.
func (s *Supervisor) Unreadable() []string {
	cur := s.current.Load()
	var lines []string
	for _, name := range sortedKeys(cur.watches) {
		for _, u := range cur.watches[name].watch.Unreadable() {
			dc := ""
			if u.Datacenter != "" {
				dc = " in datacenter " + u.Datacenter
			}
			lines = append(lines, fmt.Sprintf("consul %s: service %q%s: %s", name, u.Service, dc, u.Err))
		}
	}
	return lines
}

// Gather implements prometheus.Gatherer: the metrics of the running
// watches and jobs.
func (s *Supervisor) Gather() ([]*dto.MetricFamily, error) {
	cur := s.current.Load()
	var gs prometheus.Gatherers
	for _, name := range sortedKeys(cur.watches) {
		gs = append(gs, cur.watches[name].metrics)
	}
	for _, name := range cur.names {
		gs = append(gs, cur.jobs[name].metrics)
	}
	return gs.Gather()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
