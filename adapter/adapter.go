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
	// Shards splits the targets by address into this many files, named by
	// ShardPath, so that each of several Prometheus servers reads its own
	// share (see ShardOf). 0 or 1 writes one file.
	Shards int
	// OneShard, with Shards > 1, writes only shard Shard (0 to Shards-1),
	// to the path given to New.
	OneShard bool
	Shard    int
}

// Adapter runs discoverers and keeps a file_sd file in step with them.
type Adapter struct {
	providers map[string]Discoverer
	manager   *Manager
	outputs   []*output
	sharder   *sharder // nil without sharding
	only      int      // with a sharder and a single output: the shard it writes
	logger    log.Logger
	metrics   *metrics
	ready     atomic.Bool
	writes    atomic.Uint64
	targets   atomic.Pointer[Snapshot] // every output's current set, for HTTP SD
}

// output is one file the adapter keeps: the whole set, or one shard of it.
type output struct {
	writer    *writer
	guard     guard
	current   *Snapshot // committed: in the file, or about to be
	holdUntil time.Time // when a held set may be applied; zero when none is held
	synced    bool      // has committed and written a set once
	failing   bool      // the last write failed; a retry is due
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
	if opts.Shards < 0 || opts.OneShard && (opts.Shard < 0 || opts.Shard >= opts.Shards) {
		return nil, fmt.Errorf("shard %d of %d does not exist", opts.Shard, opts.Shards)
	}
	paths := []string{path}
	if opts.Shards > 1 && !opts.OneShard {
		paths = paths[:0]
		for i := range opts.Shards {
			paths = append(paths, ShardPath(path, i))
		}
	}
	m := NewManager(log.With(opts.Logger, "component", "manager"), opts.Interval)
	a := &Adapter{
		providers: providers,
		manager:   m,
		logger:    opts.Logger,
		metrics:   newMetrics(m),
	}
	if opts.Shards > 1 {
		a.sharder = newSharder(opts.Shards)
		if opts.OneShard {
			a.only = opts.Shard
		}
	}
	for _, p := range paths {
		w, err := newWriter(p, opts.FileMode, log.With(opts.Logger, "component", "writer"))
		if err != nil {
			return nil, fmt.Errorf("prepare output: %w", err)
		}
		a.outputs = append(a.outputs, &output{writer: w, guard: guard{maxRemoval: opts.MaxRemoval, hold: opts.RemovalHold}})
	}
	return a, nil
}

// Ready reports whether a complete set has been written (or found already
// on disk, byte for byte), to every output file.
func (a *Adapter) Ready() bool { return a.ready.Load() }

// Writes reports how many times the file has been written.
func (a *Adapter) Writes() uint64 { return a.writes.Load() }

// Targets returns the latest complete set of targets, or nil before every
// discoverer has sent its first set. It does not wait for the file: while a
// write is failing, it is already the set the file will hold. With shards,
// it is every shard's set, one after the other.
func (a *Adapter) Targets() *Snapshot { return a.targets.Load() }

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
		select {
		case <-ctx.Done():
			return nil
		case set := <-a.manager.SyncCh():
			sets := []map[Key]*Group{set}
			if a.sharder != nil {
				sets = a.sharder.split(set)
				if len(a.outputs) == 1 {
					sets = sets[a.only : a.only+1]
				}
			}
			for i, o := range a.outputs {
				snap, skipped := o.writer.prepare(sets[i])
				a.metrics.skipped.Add(float64(skipped))
				a.offer(o, snap)
			}
		case <-hold.c:
			hold.c = nil
			now := time.Now()
			for _, o := range a.outputs {
				if !o.holdUntil.IsZero() && !now.Before(o.holdUntil) {
					a.offer(o, o.writer.latest)
				}
			}
		case <-retry.c:
			retry.c = nil
			for _, o := range a.outputs {
				if o.failing {
					wrote, err := o.writer.flush()
					a.written(o, wrote, err)
				}
			}
		}
		a.publish()

		// Timers: the earliest hold, and a retry while a write fails.
		var next time.Time
		failing := false
		for _, o := range a.outputs {
			if !o.holdUntil.IsZero() && (next.IsZero() || o.holdUntil.Before(next)) {
				next = o.holdUntil
			}
			failing = failing || o.failing
		}
		if next.IsZero() {
			hold.stop()
		} else {
			hold.start(time.Until(next))
		}
		switch {
		case !failing:
			retry.stop()
			retryDelay = minRetryDelay
		case retry.c == nil:
			retry.start(retryDelay)
			retryDelay = min(2*retryDelay, maxRetryDelay)
		}
	}
}

// offer puts the guard between a new complete set and an output, commits
// the set if the guard lets it through and writes it. A held set leaves the
// file, HTTP SD and readiness as they are.
func (a *Adapter) offer(o *output, snap *Snapshot) {
	if snap == o.current {
		// Nothing new; a write that failed is still pending.
		wrote, err := o.writer.flush()
		a.written(o, wrote, err)
		return
	}
	current := o.writer.baseline
	if o.current != nil {
		current = o.current.Targets()
	}
	now := time.Now()
	v := o.guard.judge(current, snap.Targets(), now)
	if !v.apply {
		if v.started {
			a.metrics.guardHolds.Inc()
			level.Error(a.logger).Log("msg", "Holding back an update that would remove most targets; keeping the current ones. Is the ACL token missing read rights, or was Consul emptied?",
				"path", o.writer.path, "current_targets", current, "new_targets", snap.Targets(), "apply_in", v.wait)
		}
		o.holdUntil = now.Add(v.wait)
		a.metrics.guardRemoved.Set(float64(v.removed))
		return
	}
	o.holdUntil = time.Time{}
	if v.released {
		if v.removed > 0 && float64(v.removed) > o.guard.maxRemoval*float64(current) {
			level.Warn(a.logger).Log("msg", "Applying a large removal that has lasted for the hold time", "path", o.writer.path, "removed_targets", v.removed, "new_targets", snap.Targets())
		} else {
			level.Info(a.logger).Log("msg", "The held-back removal went away; the guard is released", "path", o.writer.path, "new_targets", snap.Targets())
		}
	}
	o.current = snap
	wrote, err := o.writer.commit(snap)
	a.written(o, wrote, err)
}

// written records the outcome of writing an output.
func (a *Adapter) written(o *output, wrote bool, err error) {
	if err != nil {
		o.failing = true
		a.metrics.writes.WithLabelValues("failure").Inc()
		level.Error(a.logger).Log("msg", "Cannot write the output file; keeping the previous one", "path", o.writer.path, "err", err)
		return
	}
	o.failing = false
	now := float64(time.Now().UnixNano()) / 1e9
	if wrote {
		a.writes.Add(1)
		a.metrics.writes.WithLabelValues("success").Inc()
		a.metrics.lastWrite.Set(now)
		level.Debug(a.logger).Log("msg", "Wrote the output file", "path", o.writer.path, "bytes", o.writer.written.size)
	}
	a.metrics.lastSync.Set(now)
	if !o.synced {
		o.synced = true
		level.Info(a.logger).Log("msg", "Output file is complete", "path", o.writer.path, "groups", len(o.writer.cache))
	}
}

// publish updates what HTTP SD serves, the metrics and readiness from the
// outputs' committed sets.
func (a *Adapter) publish() {
	snaps := make([]*Snapshot, 0, len(a.outputs))
	holding, ready := false, true
	for _, o := range a.outputs {
		holding = holding || !o.holdUntil.IsZero()
		ready = ready && o.synced && !o.failing
		if o.current != nil {
			snaps = append(snaps, o.current)
		}
	}
	a.metrics.guardHolding.Set(oneIf(holding))
	if !holding {
		a.metrics.guardRemoved.Set(0)
	}
	if len(snaps) == len(a.outputs) {
		snap := snaps[0]
		if len(snaps) > 1 {
			if prev := a.targets.Load(); prev != nil && sameParts(prev, snaps) {
				snap = prev
			} else {
				snap = mergeSnapshots(snaps)
				snap.parts = snaps
			}
		}
		if snap != a.targets.Load() {
			a.targets.Store(snap)
			a.metrics.targets.Set(float64(snap.Targets()))
			a.metrics.groups.Set(float64(snap.Groups()))
			a.metrics.fileBytes.Set(float64(snap.Size()))
		}
	}
	if ready && !a.ready.Load() {
		a.ready.Store(true)
	}
}

// sameParts reports whether a merged snapshot was made from snaps.
func sameParts(merged *Snapshot, snaps []*Snapshot) bool {
	if len(merged.parts) != len(snaps) {
		return false
	}
	for i := range snaps {
		if merged.parts[i] != snaps[i] {
			return false
		}
	}
	return true
}

func oneIf(b bool) float64 {
	if b {
		return 1
	}
	return 0
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
