package consul

import (
	"fmt"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/require"
)

// At start in doorbell mode every service is read once, not once by the read
// queued when it joined and again by the sweep that follows (409 requests
// here before); and the start-up readers hand their connections to the
// long polls afterwards.
func TestDoorbellModeReadsEachServiceOnceAtStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const services = 200
		f := fakeWithServices(services, 0)
		d := fakeDiscoverer(t, f, 16)
		c, stop := startCollector(t, d)
		defer stop()
		settle()

		got, sends := c.snapshot()
		require.Len(t, got, services)
		require.Positive(t, sends)
		require.EqualValues(t, 1, d.doorbellScopes.Load(), "doorbell mode")
		longPolls := d.longPolls.Load()
		require.Positive(t, longPolls, "long polls after the start-up readers stopped")
		reads := 0
		for i := range services {
			reads += f.count(fmt.Sprintf("/v1/health/service/svc%d", i))
		}
		// One read each and the first request of each long poll, plus a
		// probe of each service whose read was in flight (not queued) when
		// the first sweep began: at most one per reader.
		require.GreaterOrEqual(t, int64(reads), services+longPolls)
		require.LessOrEqual(t, int64(reads), services+longPolls+int64(d.streams()))
	})
}
