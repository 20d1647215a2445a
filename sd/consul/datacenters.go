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

// followDatacenters reads the list of datacenters now and every
// DatacentersInterval, and sends it whenever it changes. A failed read is
// retried with backoff; the last list stays meanwhile.
func (d *Discoverer) followDatacenters(ctx context.Context, out chan<- []string) {
	var (
		last    []string
		retry   = backoff.Backoff{Min: minBackoff, Max: maxBackoff}
		failing error
	)
	p := poller{what: "datacenters", endpoint: "/v1/catalog/datacenters", logger: d.logger}
	for {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout(0))
		var dcs []string
		_, err := d.client.Raw().Query("/v1/catalog/datacenters", &dcs, (&api.QueryOptions{}).WithContext(rctx))
		cancel()
		if ctx.Err() != nil {
			return
		}
		wait := d.cfg.DatacentersInterval
		switch {
		case err != nil:
			wait = retryDelay(&retry, err)
			logFailure(p, failing, err, wait)
			failing = err
		case len(dcs) == 0:
			level.Warn(d.logger).Log("msg", "Consul listed no datacenters; keeping the last list")
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
