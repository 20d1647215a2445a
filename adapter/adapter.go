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
}

// Adapter runs discoverers and keeps a file_sd file in step with them.
type Adapter struct {
	providers map[string]Discoverer
	manager   *Manager
	writer    *writer
	logger    log.Logger
	metrics   *metrics
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
// and retried with backoff; the previous file stays in place meanwhile.
func (a *Adapter) Run(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.manager.Run(ctx, a.providers)
	}()
	defer func() { <-done }()

	var (
		retry      *time.Timer
		retryC     <-chan time.Time
		retryDelay = minRetryDelay
	)
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		var (
			wrote bool
			err   error
		)
		select {
		case <-ctx.Done():
			return nil
		case set := <-a.manager.SyncCh():
			var skipped int
			wrote, skipped, err = a.writer.update(set)
			a.metrics.skipped.Add(float64(skipped))
			if snap := a.writer.current; snap != a.current.Load() {
				a.current.Store(snap)
				a.metrics.targets.Set(float64(snap.Targets()))
				a.metrics.groups.Set(float64(snap.Groups()))
				a.metrics.fileBytes.Set(float64(len(snap.JSON())))
			}
		case <-retryC:
			retryC = nil
			wrote, err = a.writer.flush()
		}
		if err != nil {
			a.metrics.writes.WithLabelValues("failure").Inc()
			level.Error(a.logger).Log("msg", "Cannot write the output file; keeping the previous one", "path", a.writer.path, "retry_in", retryDelay, "err", err)
			if retryC == nil {
				retry = time.NewTimer(retryDelay)
				retryC = retry.C
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
