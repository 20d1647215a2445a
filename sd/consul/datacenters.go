package consul

import (
	"context"
	"slices"
	"strings"

	"github.com/go-kit/log/level"
	"github.com/hashicorp/consul/api"

	"github.com/custom-sd/custom-sd/internal/backoff"
)

// ServiceOf returns the service name in a group's Source, which is the
// service name itself or "<datacenter>/<service>".
func ServiceOf(source string) string {
	return source[strings.LastIndexByte(source, '/')+1:]
}

// followDatacenters starts following the list of datacenters, for jobs
// that watch all of them, unless it is followed already.
func (w *watcher) followDatacenters() {
	if w.stopDCList != nil {
		return
	}
	ctx, cancel := context.WithCancel(w.ctx)
	w.stopDCList = cancel
	w.wg.Go(func() { w.w.readDatacenters(ctx, w.dcList) })
}

// setDatacenters follows a new list of datacenters: jobs that watch all of
// them get a view of each new one and lose those of the gone ones, whose
// targets are deleted.
func (w *watcher) setDatacenters(dcs []string) {
	first := !w.dcsListed
	w.datacenters, w.dcsListed = dcs, true
	want := map[string]bool{}
	for _, dc := range dcs {
		want[dc] = true
	}
	for j := range w.jobs {
		if !j.cfg.AllDatacenters {
			continue
		}
		have := map[string]bool{}
		for key, v := range j.views {
			have[key.datacenter] = true
			if !want[key.datacenter] {
				level.Info(w.w.logger).Log("msg", "Datacenter is gone; deleting its targets", "datacenter", key.datacenter)
				j.dropView(v)
				w.removeView(v)
			}
		}
		for _, dc := range dcs {
			if !have[dc] {
				if !first {
					level.Info(w.w.logger).Log("msg", "Watching a new datacenter", "datacenter", dc)
				}
				w.addView(j, dc)
			}
		}
	}
	w.fitAll()
	for _, sc := range w.sortedScopes() {
		w.checkComplete(sc)
	}
}

// readDatacenters reads the list of datacenters now and every
// DatacentersInterval, and sends it whenever it changes. A failed read is
// retried with backoff; the last list stays meanwhile.
func (w *Watch) readDatacenters(ctx context.Context, out chan<- []string) {
	var (
		last    []string
		retry   = backoff.Backoff{Min: minBackoff, Max: maxBackoff}
		failing error
	)
	p := poller{what: "datacenters", endpoint: "/v1/catalog/datacenters", logger: w.logger}
	for {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout(0))
		var dcs []string
		_, err := w.client.Raw().Query("/v1/catalog/datacenters", &dcs, (&api.QueryOptions{}).WithContext(rctx))
		cancel()
		if ctx.Err() != nil {
			return
		}
		wait := w.cfg.DatacentersInterval
		switch {
		case err != nil:
			wait = retryDelay(&retry, err)
			logFailure(p, failing, err, wait)
			failing = err
		case len(dcs) == 0:
			level.Warn(w.logger).Log("msg", "Consul listed no datacenters; keeping the last list")
		default:
			failing = nil
			retry.Reset()
			slices.Sort(dcs)
			if !slices.Equal(dcs, last) {
				last = dcs
				select {
				case out <- dcs:
				case <-ctx.Done():
					return
				}
			}
		}
		if !sleep(ctx, wait) {
			return
		}
	}
}
