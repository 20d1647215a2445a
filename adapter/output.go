package adapter

import (
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/custom-sd/custom-sd/internal/backoff"
)

// Retry delays after a failed write.
const (
	minRetryDelay = 500 * time.Millisecond
	maxRetryDelay = 30 * time.Second
)

// output is one file the adapter keeps: the whole set, or one shard of it.
// It owns the way from a complete set to the file: render, guard, write,
// retry. What it has committed is what the file holds or is about to hold.
type output struct {
	writer  *writer
	guard   guard
	logger  log.Logger
	metrics *metrics

	committed *Snapshot       // passed the guard: in the file, or to be written
	heldBack  *Snapshot       // the latest set while the guard holds it back
	heldUntil time.Time       // when heldBack may be applied; zero when nothing is held
	retry     backoff.Backoff // after a failed write
	retryAt   time.Time       // when to write committed again; zero while the file is current
	synced    bool            // the file has held a committed set once

	// news is what the output has to tell about its last steps, as log
	// lines and metrics. The adapter tells it (tell) once it has published
	// the snapshot and readiness those steps led to, so that nothing is
	// announced before /targets serves it and /-/ready counts it.
	news []func()
}

func newOutput(w *writer, g guard, logger log.Logger, m *metrics) *output {
	return &output{
		writer:  w,
		guard:   g,
		logger:  logger,
		metrics: m,
		retry:   backoff.Backoff{Min: minRetryDelay, Max: maxRetryDelay},
	}
}

// offer takes a new complete set at now: rendered, judged by the guard, and
// written if the guard lets it through. A held set leaves the file and the
// committed snapshot as they are.
// renamed, if not nil, is called once new content is in place.
func (o *output) offer(now time.Time, set map[Key]*encoded, renamed func()) {
	o.consider(now, o.writer.render(set), renamed)
}

// consider puts the guard between a rendered set and the file.
func (o *output) consider(now time.Time, snap *Snapshot, renamed func()) {
	if snap == o.committed {
		o.heldBack, o.heldUntil = nil, time.Time{}
		return // nothing new; a failed write is retried by tick
	}
	current := o.writer.baseline
	if o.committed != nil {
		current = o.committed.Targets()
	}
	v := o.guard.judge(current, snap.Targets(), now)
	if !v.apply {
		o.heldBack, o.heldUntil = snap, now.Add(v.wait)
		o.note(func() {
			o.metrics.guardRemoved.Set(float64(v.removed))
			if v.started {
				o.metrics.guardHolds.Inc()
				level.Error(o.logger).Log("msg", "Holding back an update that would remove most targets; keeping the current ones. Is the ACL token missing read rights, or was Consul emptied?",
					"path", o.writer.path, "current_targets", current, "new_targets", snap.Targets(), "apply_in", v.wait)
			}
		})
		return
	}
	if v.released {
		if v.removed > 0 && float64(v.removed) > o.guard.maxRemoval*float64(current) {
			o.note(func() {
				level.Warn(o.logger).Log("msg", "Applying a large removal that has lasted for the hold time", "path", o.writer.path, "removed_targets", v.removed, "new_targets", snap.Targets())
			})
		} else {
			o.note(func() {
				level.Info(o.logger).Log("msg", "The held-back removal went away; the guard is released", "path", o.writer.path, "new_targets", snap.Targets())
			})
		}
	}
	o.heldBack, o.heldUntil = nil, time.Time{}
	o.committed = snap
	o.write(now, renamed)
}

// tick does what is due at now: apply a held-back set whose hold is over,
// retry a failed write.
func (o *output) tick(now time.Time) {
	if o.heldBack != nil && !now.Before(o.heldUntil) {
		o.consider(now, o.heldBack, nil)
	}
	if !o.retryAt.IsZero() && !now.Before(o.retryAt) {
		o.write(now, nil)
	}
}

// next returns when tick has something to do, or zero.
func (o *output) next() time.Time {
	switch {
	case o.heldUntil.IsZero():
		return o.retryAt
	case o.retryAt.IsZero() || o.heldUntil.Before(o.retryAt):
		return o.heldUntil
	}
	return o.retryAt
}

// holding reports whether the guard holds a set back.
func (o *output) holding() bool { return o.heldBack != nil }

// current reports whether the file holds the committed set.
func (o *output) current() bool { return o.synced && o.retryAt.IsZero() }

// write puts the committed set in the file, or schedules a retry.
func (o *output) write(now time.Time, renamed func()) {
	wrote, err := o.writer.write(o.committed, renamed)
	if err != nil {
		o.retryAt = now.Add(o.retry.Next())
		o.note(func() {
			o.metrics.writes.WithLabelValues("failure").Inc()
			level.Error(o.logger).Log("msg", "Cannot write the output file; keeping the previous one", "path", o.writer.path, "err", err)
		})
		return
	}
	o.retry.Reset()
	o.retryAt = time.Time{}
	o.synced = true
	stamp, size := float64(now.UnixNano())/1e9, o.committed.Size()
	o.note(func() {
		if wrote {
			o.metrics.writes.WithLabelValues("success").Inc()
			o.metrics.lastWrite.Set(stamp)
			level.Debug(o.logger).Log("msg", "Wrote the output file", "path", o.writer.path, "bytes", size)
		}
		o.metrics.lastSync.Set(stamp)
	})
}

// note keeps f, a log line or metric about a step just taken, for tell.
func (o *output) note(f func()) { o.news = append(o.news, f) }

// tell logs and counts what the output noted since the last call, in the
// order it happened. The adapter calls it after publishing.
func (o *output) tell() {
	for _, f := range o.news {
		f()
	}
	clear(o.news)
	o.news = o.news[:0]
}
