package consul

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/custom-sd/custom-sd/internal/backoff"
)

// Retry delays after a failed request. A 429 (the agent's per-client
// connection limit or rate limit) starts higher: it is back-pressure.
const (
	minBackoff        = 250 * time.Millisecond
	minBackoffLimited = 2 * time.Second
	maxBackoff        = 30 * time.Second
)

// requestTimeout bounds one request: Consul may hold a blocking query for the
// wait time plus up to wait/16 of jitter, then needs time to answer.
func requestTimeout(wait time.Duration) time.Duration {
	return wait + wait/16 + 10*time.Second
}

// fetchFunc performs one request. A non-zero index makes it a blocking query
// that waits up to wait for the index to move past index.
type fetchFunc[T any] func(ctx context.Context, q *api.QueryOptions) (T, *api.QueryMeta, error)

// poller runs one blocking query over and over.
type poller struct {
	what        string // for logs, e.g. "service web"
	endpoint    string // for logs, e.g. "/v1/health/service/web"
	filter      string // Consul filter expression, if any
	dc          string // datacenter; "" for the agent's own
	namespace   string
	partition   string
	logger      log.Logger
	wait        time.Duration
	minInterval time.Duration // least time between two requests
	allowStale  bool
	resets      prometheus.Counter // counts indexes that went backwards; may be nil
	immediate   chan struct{}      // a slot for each request without an index, held until its result is taken; nil for none
	failed      func(error)        // hears of each failed request, if not nil
}

// take holds a slot of p.immediate for a request without an index (Consul
// answers it at once, however large) until the returned release is called;
// a blocking query needs none. ok is false if ctx ended first.
func (p poller) take(ctx context.Context, index uint64) (release func(), ok bool) {
	if index != 0 || p.immediate == nil {
		return func() {}, true
	}
	select {
	case p.immediate <- struct{}{}:
		return func() { <-p.immediate }, true
	case <-ctx.Done():
		return nil, false
	}
}

// poll runs fetch as a blocking query until ctx is cancelled and calls
// deliver with each result whose index differs from the last one seen (so a
// wait that timed out delivers nothing). known is the index of what the
// caller already has, 0 for nothing.
//
// When the index goes backwards (a Consul restored from a snapshot, or a
// fresh one) the result is delivered and polling goes on from the new index.
// A failed request is retried with jittered exponential backoff, and without
// an index: a Consul that came back with a lower index would otherwise hold
// the retry for the whole wait time before admitting it.
func poll[T any](ctx context.Context, p poller, known uint64, fetch fetchFunc[T], deliver func(T, uint64)) {
	var (
		index   = known // index sent with the next request
		retry   = backoff.Backoff{Min: minBackoff, Max: maxBackoff}
		failing error
	)
	for {
		release, ok := p.take(ctx, index)
		if !ok {
			return
		}
		rctx, cancel := context.WithTimeout(ctx, requestTimeout(p.wait))
		q := (&api.QueryOptions{Datacenter: p.dc, Namespace: p.namespace, Partition: p.partition, WaitIndex: index, WaitTime: p.wait, AllowStale: p.allowStale, Filter: p.filter}).WithContext(rctx)
		res, meta, err := fetch(rctx, q)
		cancel()
		if ctx.Err() != nil {
			release()
			return
		}
		if err != nil {
			release()
			delay := retryDelay(&retry, err)
			logFailure(p, failing, err, delay)
			failing, index = err, 0
			if p.failed != nil {
				p.failed(err)
			}
			if !sleep(ctx, delay) {
				return
			}
			continue
		}
		if failing != nil {
			level.Info(p.logger).Log("msg", "Consul query recovered", "query", p.what)
			failing = nil
			retry.Reset()
		}
		next := meta.LastIndex
		switch {
		case next == known && known != 0:
			// The wait timed out, or a retry found nothing new.
		case next < known:
			level.Info(p.logger).Log("msg", "Consul index went backwards; starting over", "query", p.what, "old", known, "new", next)
			if p.resets != nil {
				p.resets.Inc()
			}
			deliver(res, next)
		default:
			deliver(res, next)
		}
		release()
		// Consul never returns 0, but a 0 would turn blocking queries into a
		// hot loop of immediate answers.
		known = max(next, 1)
		index = known
		if !sleep(ctx, p.minInterval) {
			return
		}
	}
}

// logFailure logs the first failure of a run at warn level and repeats of
// the same error at debug level, so an outage does not flood the log.
func logFailure(p poller, previous, err error, retryIn time.Duration) {
	lvl := level.Warn
	if previous != nil && previous.Error() == err.Error() {
		lvl = level.Debug
	}
	msg := "Consul query failed; keeping the last known targets"
	var se api.StatusError
	if errors.As(err, &se) && se.Code == http.StatusForbidden {
		msg = "Consul denied the query (403): the ACL token lacks read rights for it; keeping the last known targets"
	}
	kv := []any{"msg", msg, "query", p.what}
	if p.endpoint != "" {
		kv = append(kv, "endpoint", p.endpoint)
	}
	lvl(p.logger).Log(append(kv, "retry_in", retryIn, "err", err)...)
}

// retryDelay returns the next delay of retry after err, starting higher for
// a 429.
func retryDelay(retry *backoff.Backoff, err error) time.Duration {
	if isTooManyRequests(err) {
		return retry.NextAtLeast(minBackoffLimited)
	}
	return retry.Next()
}

func isTooManyRequests(err error) bool {
	var se api.StatusError
	return errors.As(err, &se) && se.Code == http.StatusTooManyRequests
}

// sleep waits for d or until ctx is cancelled, and reports whether it slept.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
