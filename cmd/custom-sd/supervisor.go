package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/custom-sd/custom-sd/adapter"
	"github.com/custom-sd/custom-sd/internal/config"
	"github.com/custom-sd/custom-sd/sd/consul"
)

// supervisor runs the configuration's watches (one per Consul agent) and
// jobs (an adapter each), and applies a new configuration: unchanged jobs
// and watches go on untouched, changed and new ones start, removed ones
// stop (their files are left as they are).
type supervisor struct {
	logger log.Logger
	reg    prometheus.Registerer
	ctx    context.Context // what everything runs under

	mu      sync.Mutex // guards jobs for the HTTP side
	watches map[string]*runningWatch
	jobs    map[string]*runningJob
}

type runningWatch struct {
	fingerprint string
	watch       *consul.Watch
	stop        func() // cancels and waits
}

type runningJob struct {
	spec    *config.JobSpec
	adapter *adapter.Adapter
	stop    func()
}

// newSupervisor returns a supervisor whose jobs and watches run under ctx.
func newSupervisor(ctx context.Context, logger log.Logger, reg prometheus.Registerer) *supervisor {
	return &supervisor{ctx: ctx, logger: logger, reg: reg, watches: map[string]*runningWatch{}, jobs: map[string]*runningJob{}}
}

// stop stops every job and watch.
func (s *supervisor) stop() {
	s.mu.Lock()
	jobs, watches := s.jobs, s.watches
	s.jobs, s.watches = map[string]*runningJob{}, map[string]*runningWatch{}
	s.mu.Unlock()
	for _, j := range jobs {
		j.stop()
	}
	for _, w := range watches {
		w.stop()
	}
}

// apply makes the running jobs and watches those of cfg. Jobs whose
// fingerprint is unchanged go on untouched.
func (s *supervisor) apply(cfg *config.Config) error {
	want := map[string]*config.JobSpec{}
	for _, spec := range cfg.Jobs {
		want[spec.Name] = spec
	}
	// Stop what is gone or changed: jobs first, then the watches they read.
	for name, j := range s.jobs {
		if spec, ok := want[name]; ok && spec.Fingerprint == j.spec.Fingerprint {
			continue
		}
		level.Info(s.logger).Log("msg", "Stopping a job; its files are left as they are", "job", name)
		j.stop()
		s.mu.Lock()
		delete(s.jobs, name)
		s.mu.Unlock()
	}
	for name, w := range s.watches {
		if c, ok := cfg.Consuls[name]; ok && c.Fingerprint == w.fingerprint {
			continue
		}
		w.stop()
		delete(s.watches, name)
	}
	// Start the new watches only once their jobs exist, so that jobs
	// starting together share their first reads.
	var fresh []string
	for name, c := range cfg.Consuls {
		if _, ok := s.watches[name]; ok || !used(cfg, name) {
			continue
		}
		w, err := s.newWatch(c)
		if err != nil {
			return err
		}
		s.watches[name] = w
		fresh = append(fresh, name)
	}
	var errs []error
	for _, spec := range cfg.Jobs {
		if _, ok := s.jobs[spec.Name]; ok {
			continue
		}
		j, err := s.newJob(spec)
		if err != nil {
			errs = append(errs, fmt.Errorf("job %s: %w", spec.Name, err))
			continue
		}
		s.mu.Lock()
		s.jobs[spec.Name] = j
		s.mu.Unlock()
	}
	for _, name := range fresh {
		s.startWatch(name)
	}
	return errors.Join(errs...)
}

// used reports whether a job of cfg reads the agent name.
func used(cfg *config.Config, name string) bool {
	return slices.ContainsFunc(cfg.Jobs, func(j *config.JobSpec) bool { return j.Consul == name })
}

// newWatch creates (does not start) the watch of an agent and registers
// its metrics, labelled by the agent's name.
func (s *supervisor) newWatch(c *config.Watch) (*runningWatch, error) {
	wc := c.Config
	wc.Logger = log.With(s.logger, "component", "consul", "consul", c.Name)
	w, err := consul.NewWatch(wc)
	if err != nil {
		return nil, err
	}
	reg := prometheus.WrapRegistererWith(prometheus.Labels{"consul": c.Name}, s.reg)
	if err := reg.Register(w); err != nil {
		return nil, fmt.Errorf("register the metrics of consul %s: %w", c.Name, err)
	}
	rw := &runningWatch{fingerprint: c.Fingerprint, watch: w}
	rw.stop = func() { reg.Unregister(w) }
	return rw, nil
}

// startWatch runs a watch created by newWatch.
func (s *supervisor) startWatch(name string) {
	rw := s.watches[name]
	ctx, cancel := context.WithCancel(s.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		rw.watch.Run(ctx)
	}()
	unregister := rw.stop
	rw.stop = func() {
		cancel()
		<-done
		unregister()
	}
}

// newJob starts a job: its discoverer on its watch, and its adapter, with
// metrics labelled by its name.
func (s *supervisor) newJob(spec *config.JobSpec) (*runningJob, error) {
	rw := s.watches[spec.Consul]
	d, err := rw.watch.Job(spec.Job)
	if err != nil {
		return nil, err
	}
	var disc adapter.Discoverer = d
	if spec.Shard >= 0 {
		disc = adapter.OnlyShard(d, spec.Shard, spec.Shards)
	}
	opts := spec.Options
	opts.Logger = log.With(s.logger, "job", spec.Name)
	ctx, cancel := context.WithCancel(s.ctx)
	// A job is watched until its Run returns: one that cannot start is run
	// with a cancelled context, which ends it.
	abandon := func() { cancel(); go d.Run(ctx, nil) }
	a, err := adapter.New(spec.Path, map[string]adapter.Discoverer{"consul": disc}, opts)
	if err != nil {
		abandon()
		return nil, err
	}
	reg := prometheus.WrapRegistererWith(prometheus.Labels{"sd_job": spec.Name}, s.reg)
	if err := reg.Register(a); err != nil {
		abandon()
		return nil, fmt.Errorf("register its metrics: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.Run(ctx)
	}()
	return &runningJob{spec: spec, adapter: a, stop: func() {
		cancel()
		<-done
		reg.Unregister(a)
	}}, nil
}

// jobNames lists the running jobs, sorted.
func (s *supervisor) jobNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.jobs))
	for name := range s.jobs {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// targets returns a job's snapshot; ok is false for an unknown job.
func (s *supervisor) targets(job string) (*adapter.Snapshot, bool) {
	s.mu.Lock()
	j, ok := s.jobs[job]
	s.mu.Unlock()
	if !ok {
		return nil, false
	}
	return j.adapter.Snapshot(), true
}

// ready reports whether every job's output holds a complete set.
func (s *supervisor) ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.jobs) == 0 {
		return false
	}
	for _, j := range s.jobs {
		if !j.adapter.Ready() {
			return false
		}
	}
	return true
}
