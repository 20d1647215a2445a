package adapter

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

// Adapter runs discoverers and keeps a file_sd file in step with them.
type Adapter struct {
	providers map[string]Discoverer
	only      string // the discoverer's name, when there is one
	manager   *manager
	outputs   []*output
	logger    log.Logger
	metrics   *metrics
	ready     atomic.Bool
	snapshot  atomic.Pointer[Snapshot] // every output's committed set, for serving
}

// New returns an Adapter that writes the groups of providers, keyed by a name
// of your choice, to the file_sd file at path (or, with Options.Shards, to
// one file per shard named by ShardPath). It fails if a path exists and is
// not a regular file. It reads the files but changes nothing on disk and
// starts nothing: Run removes temporary files an earlier run left next to
// the files, then writes.
func New(path string, providers map[string]Discoverer, opts Options) (*Adapter, error) {
	if len(providers) == 0 {
		return nil, errNoDiscoverers
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(providers))
	stagedBy := map[string]bool{}
	for name, d := range providers {
		names = append(names, name)
		stagedBy[name] = staged(d)
	}
	slices.Sort(names)
	m := newManager(stagedBy, opts.Shards, opts.Interval)
	a := &Adapter{providers: providers, manager: m, logger: opts.Logger}
	a.metrics = newMetrics(m, a.Ready)
	if len(names) == 1 {
		a.only = names[0]
	}
	paths := []string{path}
	if opts.Shards > 1 {
		paths = paths[:0]
		for i := range opts.Shards {
			paths = append(paths, ShardPath(path, i))
		}
	}
	wlog := log.With(opts.Logger, "component", "writer")
	for i, p := range paths {
		w, err := newWriter(p, i, opts.FileMode, wlog)
		if err != nil {
			return nil, fmt.Errorf("prepare output: %w", err)
		}
		g := guard{maxRemoval: opts.MaxRemoval, hold: opts.RemovalHold}
		a.outputs = append(a.outputs, newOutput(w, g, opts.Logger, a.metrics))
	}
	return a, nil
}

// Ready reports whether a complete set has been written (or found already
// on disk, byte for byte) to every output file. Once it is true, Snapshot
// is not nil.
func (a *Adapter) Ready() bool { return a.ready.Load() }

// Snapshot returns the latest complete set that passed the mass-removal
// guard, for serving over HTTP, or nil before there is one. It does not wait
// for the file: while a write is failing, it is already the set the file
// will hold. With shards, it is every shard's set, one after the other.
//
// Snapshot and Ready change before anything announces the change: the
// adapter's log lines ("Output file is complete", a write, the guard) and
// its metrics follow them, so a reader who saw a line or a metric finds
// its set served and counted.
func (a *Adapter) Snapshot() *Snapshot { return a.snapshot.Load() }

// update is one send of a discoverer.
type update struct {
	provider string
	groups   []*Group
}

// Run discovers and writes until ctx is cancelled, and returns once every
// discoverer has returned. A failed write is logged and retried with
// backoff; the previous file stays in place meanwhile. An update that would
// remove too many targets at once is held back (see Options.MaxRemoval).
func (a *Adapter) Run(ctx context.Context) {
	for _, o := range a.outputs {
		o.writer.cleanUp()
	}
	only, updates, wait := a.start(ctx)
	defer wait()
	var wake timer
	defer wake.stop()
	for {
		select {
		case <-ctx.Done():
			return
		case groups := <-only:
			a.receive(update{a.only, groups})
		case u := <-updates:
			a.receive(u)
		case <-wake.c:
			wake.fired()
		}
		now := time.Now()
		if a.manager.due(now) {
			a.handOut(now, func() bool { return len(only) > 0 || len(updates) > 0 })
		}
		for _, o := range a.outputs {
			o.tick(now)
		}
		a.announce(a.publish())
		wake.at(a.next())
	}
}

// start runs the discoverers. A single discoverer's sends arrive on only;
// several discoverers' sends are merged into updates. Either holds one
// send, so that a send waiting during a write can be seen. wait waits for
// every goroutine start started.
func (a *Adapter) start(ctx context.Context) (only <-chan []*Group, updates <-chan update, wait func()) {
	var wg sync.WaitGroup
	if len(a.providers) == 1 {
		ch := make(chan []*Group, 1)
		for _, d := range a.providers {
			wg.Go(func() { d.Run(ctx, ch) })
		}
		return ch, nil, wg.Wait
	}
	merged := make(chan update, 1)
	for name, d := range a.providers {
		ch := make(chan []*Group)
		wg.Go(func() { d.Run(ctx, ch) })
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case groups := <-ch:
					select {
					case merged <- update{name, groups}:
					case <-ctx.Done():
						return
					}
				}
			}
		})
	}
	return nil, merged, wg.Wait
}

// receive takes in one send of a discoverer.
func (a *Adapter) receive(u update) {
	skipped := a.manager.receive(time.Now(), u.provider, u.groups)
	for _, err := range skipped {
		level.Warn(a.logger).Log("msg", "Skipping a target Prometheus would reject", "err", err)
	}
	a.metrics.skipped.Add(float64(len(skipped)))
}

// handOut gives the complete set to every output. waiting reports whether
// a discoverer's send waits; it is asked when the first new content is in
// place (or at the end, when nothing was written), so that a change made in
// reaction to the new file does not count as one that came meanwhile.
func (a *Adapter) handOut(now time.Time, waiting func() bool) {
	meanwhile, asked := false, false
	renamed := func() {
		if !asked {
			meanwhile, asked = waiting(), true
		}
	}
	size := 0
	for _, o := range a.outputs {
		o.offer(now, a.manager.groups, renamed)
		if o.committed != nil {
			size += o.committed.Size()
		}
	}
	if !asked {
		meanwhile = waiting()
	}
	a.manager.handedOut(now, time.Now(), size, meanwhile)
}

// next returns when the loop has something to do without news from a
// discoverer, or zero.
func (a *Adapter) next() time.Time {
	next := a.manager.next()
	for _, o := range a.outputs {
		if t := o.next(); !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	return next
}

// publish updates the snapshot for serving, the set's metrics and
// readiness from the outputs' committed sets, and reports whether the
// adapter has just become ready.
func (a *Adapter) publish() (becameReady bool) {
	snaps := make([]*Snapshot, 0, len(a.outputs))
	holding, ready := false, true
	for _, o := range a.outputs {
		holding = holding || o.holding()
		ready = ready && o.current()
		if o.committed != nil {
			snaps = append(snaps, o.committed)
		}
	}
	a.metrics.guardHolding.Set(oneIf(holding))
	if !holding {
		a.metrics.guardRemoved.Set(0)
	}
	if len(snaps) == len(a.outputs) {
		snap := snaps[0]
		if len(snaps) > 1 {
			if prev := a.snapshot.Load(); prev != nil && slices.Equal(prev.parts, snaps) {
				snap = prev
			} else {
				snap = mergeSnapshots(snaps)
				snap.parts = snaps
			}
		}
		if snap != a.snapshot.Load() {
			a.snapshot.Store(snap)
			a.metrics.targets.Set(float64(snap.Targets()))
			a.metrics.groups.Set(float64(snap.Groups()))
			a.metrics.fileBytes.Set(float64(snap.Size()))
		}
	}
	if ready && !a.ready.Load() {
		a.ready.Store(true)
		return true
	}
	return false
}

// announce logs and counts what the outputs did, once publish has made it
// visible: a line or a metric that says a set is written or complete comes
// after Snapshot serves it and Ready counts it. When the adapter has just
// become ready, each file's "Output file is complete" line comes last.
func (a *Adapter) announce(becameReady bool) {
	for _, o := range a.outputs {
		o.tell()
	}
	if !becameReady {
		return
	}
	for _, o := range a.outputs {
		level.Info(a.logger).Log("msg", "Output file is complete", "path", o.writer.path, "groups", o.committed.Groups())
	}
}

// timer is a one-shot timer whose channel is nil while it is not set.
type timer struct {
	t  *time.Timer
	c  <-chan time.Time
	on time.Time
}

// at sets the timer to fire at t, or stops it for a zero t.
func (t *timer) at(when time.Time) {
	if when.Equal(t.on) && t.c != nil {
		return
	}
	t.stop()
	if when.IsZero() {
		return
	}
	t.t = time.NewTimer(time.Until(when))
	t.c, t.on = t.t.C, when
}

// fired notes that the timer's channel delivered.
func (t *timer) fired() { t.t, t.c, t.on = nil, nil, time.Time{} }

func (t *timer) stop() {
	if t.t != nil {
		t.t.Stop()
	}
	t.t, t.c, t.on = nil, nil, time.Time{}
}
