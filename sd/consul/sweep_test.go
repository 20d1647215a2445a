package consul

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-kit/log"
	"github.com/stretchr/testify/require"
)

// Sweep debt holds probing to a fifth of the time; first reads of services
// (all of them at start) are owed in any mode and must not hold back the
// first sweep that follows. The clock is synctest's, so the sweep takes
// exactly one second.
func TestSweepDebtCountsProbesOnly(t *testing.T) {
	tests := []struct {
		name         string
		size, probes int
		want         time.Duration
	}{
		{"first reads only, as at start", 10000, 0, 0},
		{"probes only", 10000, 10000, sweepDebtFactor * time.Second},
		{"half probes, half first reads", 100, 50, sweepDebtFactor * time.Second / 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := &run{logger: log.NewNopLogger(), services: map[string]*service{}}
				r.sw = &sweeper{sweeping: true, started: time.Now(), size: tc.size, probes: tc.probes}
				time.Sleep(time.Second)
				r.sweepDone()
				require.Equal(t, tc.want, r.sw.debt)
				require.Equal(t, max(tc.want-sweepAllowance, 0), r.sw.wait(), "the next sweep's wait")
			})
		})
	}
}

// At start in sweep mode every service is read once, not once by the read
// queued when it joined and again by the sweep that follows (409 requests
// here before); and the start-up readers hand their connections to the
// long polls afterwards.
func TestSweepModeReadsEachServiceOnceAtStart(t *testing.T) {
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
		require.EqualValues(t, 1, d.sweeping.Load(), "sweep mode")
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
