package consul

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/hashicorp/consul/api"
)

// Watch follows one Consul agent for any number of jobs, within one budget
// of connections. A service wanted by several jobs is read once for all of
// them: jobs that differ only in what can be applied to the answer (tags,
// node meta, health level, exclusions, a health filter that can be
// evaluated here) share every read, and only genuinely different queries
// (another datacenter, namespace or partition, a health filter the agent
// must apply, consistent reads) are watched separately.
//
// Run the Watch, and each Job under an adapter; jobs may come and go while
// the Watch runs.
type Watch struct {
	cfg       WatchConfig
	client    *api.Client
	transport *transport
	logger    log.Logger
	metrics   *metrics

	// immediate holds a slot for each read Consul answers at once (a long
	// poll's first read, or one after a failure): over HTTP/2 nothing else
	// bounds them, and at start 10,000 of them decoded at once would hold
	// the whole catalog several times over.
	immediate chan struct{}

	attach  chan *job     // jobs joining while the watcher runs
	detach  chan *job     // jobs leaving
	recheck chan struct{} // 1-buffered: read the token file now
	stopped chan struct{} // closed when Run returns

	// forget makes the next request or connection read the password and
	// TLS files whatever their state.
	forget []func()

	mu      sync.Mutex
	running bool   // Run has started the watcher
	early   []*job // jobs created before that

	// Counts the watcher keeps for the metrics.
	budgetNow      atomic.Int64  // the connection budget in force (see budget.go)
	probeEvery     time.Duration // how often the agent's limit is probed (probe.go)
	doorbellScopes atomic.Int64  // scopes watched in doorbell mode
	longPolls      atomic.Int64  // services with a long poll of their own
	watched        atomic.Int64  // services watched, in every scope
	unreadable     atomic.Pointer[[]Unreadable]
}

// NewWatch returns a Watch for cfg, or the first invalid field of cfg (see
// WatchConfig.Validate). It reads the token, password and TLS files, and
// starts nothing.
func NewWatch(cfg WatchConfig) (*Watch, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	failed := func(err error) {
		level.Warn(cfg.Logger).Log("msg", "A changed file does not load; going on with the one read before", "err", err)
	}
	t, err := newTransport(cfg.MaxConnections-headroom(cfg.MaxConnections), cfg.API.Address, &cfg.API.TLSConfig, failed)
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
	var forget []func()
	if auth := cfg.API.HttpAuth; auth != nil && auth.Username != "" {
		t.username = auth.Username
		t.password = func() (string, error) { return auth.Password, nil }
		if cfg.PasswordFile != "" {
			password := newLiveFiles(func() (string, error) { return ReadSecretFile(cfg.PasswordFile) }, failed, cfg.PasswordFile)
			if _, err := password.get(); err != nil {
				return nil, fmt.Errorf("read the password file: %w", err)
			}
			t.password = password.get
			forget = append(forget, password.forget)
		}
	}
	conf := cfg.API
	conf.Token, conf.TokenFile, conf.HttpAuth = "", "", nil
	conf.Datacenter, conf.Namespace, conf.Partition = "", "", "" // each query names its own
	c, err := newClient(conf, t)
	if err != nil {
		return nil, err
	}
	w := &Watch{
		cfg: cfg, client: c, transport: t, logger: cfg.Logger, immediate: make(chan struct{}, cfg.MaxConnections),
		attach: make(chan *job), detach: make(chan *job), recheck: make(chan struct{}, 1), stopped: make(chan struct{}),
		forget: forget, probeEvery: probeEvery,
	}
	w.budgetNow.Store(int64(cfg.MaxConnections))
	w.metrics = newMetrics(w, t)
	t.metrics = w.metrics
	return w, nil
}

// Refresh reads the token, password and TLS files again now, whether or
// not they look changed: a reload asks for it, so that a rotation takes
// effect at once. A new token restarts every query, as when the token file
// changes between its periodic reads.
func (w *Watch) Refresh() {
	for _, f := range w.forget {
		f()
	}
	w.transport.forgetTLS()
	select {
	case w.recheck <- struct{}{}:
	default:
	}
}

// Run watches Consul for its jobs until ctx is cancelled, and returns once
// everything it started has stopped.
func (w *Watch) Run(ctx context.Context) {
	defer close(w.stopped)
	level.Info(w.logger).Log("msg", "Watching Consul", "server", w.cfg.API.Address, "max_connections", w.cfg.MaxConnections)
	wr := newWatcher(ctx, w)
	w.mu.Lock()
	w.running = true
	early := w.early
	w.early = nil
	w.mu.Unlock()
	wr.run(early)
}

// Job returns a job of the watch for cfg, or the first invalid field of
// cfg (see JobConfig.Validate). Run it as an adapter.Discoverer: it is
// watched while its Run runs. Jobs created before the Watch runs are all
// read together from its start, so that a service they share is read once;
// creating a job of a running Watch changes nothing until the job runs.
func (w *Watch) Job(cfg JobConfig) (*Job, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults(&w.cfg)
	filter, _ := compileHealthFilter(cfg.Selection.HealthFilter) // validated above
	j := &Job{w: w, cfg: cfg, filter: filter}
	if filter == nil {
		j.serverFilter = cfg.Selection.HealthFilter
	}
	j.state = newJob(j)
	w.mu.Lock()
	if !w.running {
		w.early = append(w.early, j.state)
		j.attached = true
	}
	w.mu.Unlock()
	return j, nil
}

// attachJob makes the watch watch j, unless it already does.
func (w *Watch) attachJob(j *Job) {
	w.mu.Lock()
	attached, running := j.attached, w.running
	if !attached && !running {
		w.early = append(w.early, j.state)
	}
	j.attached = true
	w.mu.Unlock()
	if !attached && running {
		select {
		case w.attach <- j.state:
		case <-w.stopped:
		}
	}
}

// Requests reports how many HTTP requests the watch has sent to Consul.
func (w *Watch) Requests() uint64 { return w.transport.requests.Load() }

// streams is how many requests can be in flight at once within the budget
// in force, less its headroom: one per connection over HTTP/1.1,
// streamsPerConn per connection over HTTP/2.
func (w *Watch) streams() int {
	budget := int(w.budgetNow.Load())
	conns := budget - headroom(budget)
	if w.transport.http2.Load() {
		return conns * streamsPerConn
	}
	return conns
}
