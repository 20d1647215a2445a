package consul

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/go-kit/log/level"
	"github.com/hashicorp/consul/api"

	"github.com/custom-sd/custom-sd/internal/backoff"
)

// Services that cannot be read. Consul registers names its own HTTP API
// cannot serve: a newline or another control character (400), "." or
// ".." (400, 404), a name whose path Go's router cleans into another
// ("a//b", "/x": a redirect to another service's path). Such a service's
// reads fail whatever custom-sd does; it must not hold every job's first
// write back for good, as one unanswered service would under "nothing is
// written before every service was read once".
//
// A service never read whose read fails with an error retrying will not
// cure — a redirect, or a client error other than 401, 403, 407, 408 and
// 429 (credentials can be rotated, and custom-sd follows a rotation) — is
// unreadable at once; one whose reads keep failing with other errors (5xx,
// time-outs, refused connections) is after unreadableAfter and at least
// curableTries failed reads in a row. A 429 never makes a service
// unreadable: it is custom-sd's own load, which its budget sheds. An
// unreadable service no longer holds back its views' completion: the jobs
// write without it. It is named once in the log, counted in
// custom_sd_consul_unreadable_services and listed by Watch.Unreadable;
// it is read again with backoff (by its long poll, or in doorbell mode by
// a retry of its own, never by sweeps or verifications), and joins its
// jobs' files as soon as a read succeeds. A service read once and failing
// since keeps its last targets: stale beats incomplete.
const (
	unreadableAfter = 30 * time.Second
	curableTries    = 3
)

// Unreadable is a service that cannot be read, which its jobs go on
// without.
type Unreadable struct {
	Service    string
	Datacenter string // "" for the agent's own
	Err        string // the last error
}

// Unreadable lists the services that cannot be read, by datacenter and
// name.
func (w *Watch) Unreadable() []Unreadable {
	if l := w.unreadable.Load(); l != nil {
		return *l
	}
	return nil
}

// incurable reports whether a failed read of a service will fail however
// often it is retried: a redirect (to another service's path), or a client
// error other than those that rotated credentials or a less busy agent
// cure.
func incurable(err error) bool {
	var se api.StatusError
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusProxyAuthRequired, http.StatusRequestTimeout, http.StatusTooManyRequests:
		return false
	}
	return se.Code >= 300 && se.Code < 500
}

// readError takes in a failed read of a service of sc.
func (w *watcher) readError(sc *scope, r read, now time.Time) {
	s := sc.services[r.name]
	if s != nil && s.gen != r.gen {
		s = nil
	}
	if s != nil && !s.fetched {
		w.failing(sc, s, r.err, now)
	}
	switch {
	case sc.doorbells == nil || r.poll:
		// A long poll retries on its own.
	case s != nil && s.unreadable != nil:
		w.retryUnreadable(sc, s)
		w.sweepReadDone(sc, r, now)
	default:
		w.readFailed(sc, r, now)
	}
}

// failing notes a failed read of s, never read yet: it becomes unreadable
// when the error is incurable or has lasted unreadableAfter.
func (w *watcher) failing(sc *scope, s *service, err error, now time.Time) {
	if s.failingSince.IsZero() {
		s.failingSince = now
	}
	s.failures++
	if s.unreadable != nil {
		if s.unreadable.Error() != err.Error() {
			s.unreadable = err
			w.publishUnreadable()
		}
		return
	}
	if isTooManyRequests(err) {
		return
	}
	if !incurable(err) && (now.Sub(s.failingSince) < unreadableAfter || s.failures < curableTries) {
		return
	}
	s.unreadable = err
	level.Warn(sc.logger).Log("msg", "Cannot read a service; its jobs go on without it, and it is read again with backoff", "service", s.name, "err", err)
	for _, v := range sc.views {
		delete(v.unseen, s.name)
	}
	w.publishUnreadable()
	w.checkComplete(sc)
}

// readable notes a successful read of s.
func (w *watcher) readable(sc *scope, s *service) {
	s.failingSince, s.failures = time.Time{}, 0
	if s.stopRetry != nil {
		s.stopRetry()
		s.stopRetry = nil
	}
	if s.unreadable == nil {
		return
	}
	s.unreadable = nil
	level.Info(sc.logger).Log("msg", "A service that could not be read is read again; its jobs have it", "service", s.name)
	w.publishUnreadable()
}

// retryUnreadable reads an unreadable service of a scope in doorbell mode
// again, with backoff (longer after a 429), until a read succeeds or the
// service goes; the success is a read like any other. Each read holds a
// slot of the watch's immediate reads, as every read Consul answers at
// once does.
func (w *watcher) retryUnreadable(sc *scope, s *service) {
	if s.stopRetry != nil || s.hasLongPoll() {
		return
	}
	ctx, cancel := context.WithCancel(sc.ctx)
	s.stopRetry = cancel
	name, gen := s.name, s.gen
	w.wg.Go(func() {
		retry := backoff.Backoff{Min: minBackoff, Max: maxBackoff}
		wait := retry.Next()
		for sleep(ctx, wait) {
			release, ok := poller{immediate: w.w.immediate}.take(ctx, 0)
			if !ok {
				return
			}
			entries, index, err := w.readOnce(ctx, sc, name, false)
			release()
			if err != nil {
				wait = retry.Next()
				if isTooManyRequests(err) {
					wait = retry.NextAtLeast(minBackoffLimited)
				}
				continue
			}
			select {
			case w.reads <- read{sc: sc, name: name, gen: gen, index: index, entries: entries}:
			case <-ctx.Done():
			}
			return
		}
	})
}

// publishUnreadable lists the unreadable services of every scope for
// Watch.Unreadable and the metric.
func (w *watcher) publishUnreadable() {
	var list []Unreadable
	for _, sc := range w.scopes {
		for _, s := range sc.services {
			if s.unreadable != nil {
				list = append(list, Unreadable{Service: s.name, Datacenter: sc.key.datacenter, Err: s.unreadable.Error()})
			}
		}
	}
	slices.SortFunc(list, func(a, b Unreadable) int {
		return cmp.Or(cmp.Compare(a.Datacenter, b.Datacenter), cmp.Compare(a.Service, b.Service))
	})
	w.w.unreadable.Store(&list)
}
