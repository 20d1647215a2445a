package adapter

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

// Defaults for Options.
const (
	DefaultFileMode = os.FileMode(0o644)
	DefaultInterval = 500 * time.Millisecond
)

// Retry delays after a failed write.
const (
	minRetryDelay = 500 * time.Millisecond
	maxRetryDelay = 30 * time.Second
)

// Options tune an Adapter. The zero value is usable.
type Options struct {
	// Logger receives the adapter's logs; nil logs nothing.
	Logger log.Logger
	// FileMode is the output file's permission bits; 0 means DefaultFileMode
	// (0644, readable by a Prometheus running as another user).
	FileMode os.FileMode
	// Interval is the coalescing window: the first change after a quiet
	// period is written at once, later changes at most once per Interval.
	// 0 means DefaultInterval.
	Interval time.Duration
	// MaxRemoval is the largest share of the current targets (0 to 1) one
	// update may remove at once. A larger removal is held back, the file and
	// HTTP SD keeping the current set, until it has lasted for RemovalHold.
	// 0 means DefaultMaxRemoval; 1 or more turns the guard off.
	MaxRemoval float64
	// RemovalHold is how long a large removal must last before it is
	// applied; 0 means DefaultRemovalHold.
	RemovalHold time.Duration
}

// Adapter runs discoverers and keeps a file_sd file in step with them.
type Adapter struct {
	providers map[string]Discoverer
	manager   *Manager
	writer    *writer
	logger    log.Logger
	metrics   *metrics
	guard     guard
	ready     atomic.Bool
	writes    atomic.Uint64
	current   atomic.Pointer[Snapshot]
}

// New returns an Adapter that writes the groups of providers, keyed by a name
// of your choice, to the file_sd file at path. It fails if path is a
// directory. It removes temporary files an earlier run left next to path.
func New(path string, providers map[string]Discoverer, opts Options) (*Adapter, error) {
	if len(providers) == 0 {
		return nil, errors.New("no discoverers")
	}
	if opts.Logger == nil {
		opts.Logger = log.NewNopLogger()
	}
	if opts.FileMode == 0 {
		opts.FileMode = DefaultFileMode
	}
	if opts.Interval == 0 {
		opts.Interval = DefaultInterval
	}
	if opts.MaxRemoval == 0 {
		opts.MaxRemoval = DefaultMaxRemoval
	}
	if opts.RemovalHold == 0 {
		opts.RemovalHold = DefaultRemovalHold
	}
	w, err := newWriter(path, opts.FileMode, log.With(opts.Logger, "component", "writer"))
	if err != nil {
		return nil, fmt.Errorf("prepare output: %w", err)
	}
	m := NewManager(log.With(opts.Logger, "component", "manager"), opts.Interval)
	return &Adapter{
		providers: providers,
		manager:   m,
		writer:    w,
		logger:    opts.Logger,
		metrics:   newMetrics(m),
		guard:     guard{maxRemoval: opts.MaxRemoval, hold: opts.RemovalHold},
	}, nil
}

// Ready reports whether a complete set has been written (or found already
// on disk, byte for byte).
func (a *Adapter) Ready() bool { return a.ready.Load() }

// Writes reports how many times the file has been written.
func (a *Adapter) Writes() uint64 { return a.writes.Load() }

// Targets returns the latest complete set of targets, or nil before every
// discoverer has sent its first set. It does not wait for the file: while a
// write is failing, it is already the set the file will hold.
func (a *Adapter) Targets() *Snapshot { return a.current.Load() }

// Run discovers and writes until ctx is cancelled. A failed write is logged
// and retried with backoff; the previous file stays in place meanwhile. An
// update that would remove too many targets at once is held back (see
// Options.MaxRemoval).
func (a *Adapter) Run(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.manager.Run(ctx, a.providers)
	}()
	defer func() { <-done }()

	var (
		retry      = newTimer()
		hold       = newTimer()
		retryDelay = minRetryDelay
	)
	defer retry.stop()
	defer hold.stop()
	for {
		var (
			wrote bool
			err   error
		)
		select {
		case <-ctx.Done():
			return nil
		case set := <-a.manager.SyncCh():
			snap, skipped := a.writer.prepare(set)
			a.metrics.skipped.Add(float64(skipped))
			var ok bool
			if ok, wrote, err = a.offer(snap, hold); !ok {
				continue
			}
		case <-hold.c:
			hold.c = nil
			var ok bool
			if ok, wrote, err = a.offer(a.writer.latest, hold); !ok {
				continue
			}
		case <-retry.c:
			retry.c = nil
			wrote, err = a.writer.flush()
		}
		if err != nil {
			a.metrics.writes.WithLabelValues("failure").Inc()
			level.Error(a.logger).Log("msg", "Cannot write the output file; keeping the previous one", "path", a.writer.path, "retry_in", retryDelay, "err", err)
			if retry.c == nil {
				retry.start(retryDelay)
				retryDelay = min(2*retryDelay, maxRetryDelay)
			}
			continue
		}
		retryDelay = minRetryDelay
		now := float64(time.Now().UnixNano()) / 1e9
		if wrote {
			a.writes.Add(1)
			a.metrics.writes.WithLabelValues("success").Inc()
			a.metrics.lastWrite.Set(now)
			level.Debug(a.logger).Log("msg", "Wrote the output file", "path", a.writer.path, "bytes", len(a.writer.written))
		}
		a.metrics.lastSync.Set(now)
		if !a.ready.Swap(true) {
			level.Info(a.logger).Log("msg", "Output file is complete", "path", a.writer.path, "groups", len(a.writer.cache))
		}
	}
}

// offer puts the guard between a new complete set and the output. It
// reports whether the set was committed, and if so the result of writing
// it; a held set leaves the file, HTTP SD and readiness as they are.
func (a *Adapter) offer(snap *Snapshot, hold *timer) (committed, wrote bool, err error) {
	current := a.writer.baseline
	if cur := a.current.Load(); cur != nil {
		current = cur.Targets()
	}
	if snap == a.current.Load() {
		// Nothing new; a write that failed is still pending.
		wrote, err = a.writer.flush()
		return true, wrote, err
	}
	v := a.guard.judge(current, snap.Targets(), time.Now())
	if !v.apply {
		if v.started {
			a.metrics.guardHolds.Inc()
			level.Error(a.logger).Log("msg", "Holding back an update that would remove most targets; keeping the current ones. Is the ACL token missing read rights, or was Consul emptied?",
				"current_targets", current, "new_targets", snap.Targets(), "apply_in", v.wait)
		}
		a.metrics.guardHolding.Set(1)
		a.metrics.guardRemoved.Set(float64(v.removed))
		hold.start(v.wait)
		return false, false, nil
	}
	if v.released {
		hold.stop()
		a.metrics.guardHolding.Set(0)
		a.metrics.guardRemoved.Set(0)
		if v.removed > 0 && float64(v.removed) > a.guard.maxRemoval*float64(current) {
			level.Warn(a.logger).Log("msg", "Applying a large removal that has lasted for the hold time", "removed_targets", v.removed, "new_targets", snap.Targets())
		} else {
			level.Info(a.logger).Log("msg", "The held-back removal went away; the guard is released", "new_targets", snap.Targets())
		}
	}
	a.current.Store(snap)
	a.metrics.targets.Set(float64(snap.Targets()))
	a.metrics.groups.Set(float64(snap.Groups()))
	a.metrics.fileBytes.Set(float64(len(snap.JSON())))
	wrote, err = a.writer.commit(snap)
	return true, wrote, err
}

// timer is a stoppable one-shot timer whose channel is nil while it is not
// running.
type timer struct {
	t *time.Timer
	c <-chan time.Time
}

func newTimer() *timer { return &timer{} }

func (t *timer) start(d time.Duration) {
	t.stop()
	t.t = time.NewTimer(d)
	t.c = t.t.C
}

func (t *timer) stop() {
	if t.t != nil {
		t.t.Stop()
	}
	t.t, t.c = nil, nil
}
