package consul

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus/testutil"
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

// healthRequests counts the requests for every service's instances.
func healthRequests(f *fakeConsul, services int) int {
	n := 0
	for i := range services {
		n += f.count(fmt.Sprintf("/v1/health/service/svc%d", i))
	}
	return n
}

// In doorbell mode a register or deregistration on a service without a
// long poll is found through the catalog summary: one summary read and one
// read of the service, no sweep. A rewrite the summary does not show (a
// port) is found by a sweep; and an agent without a summary gets sweeps.
func TestCatalogChangesInDoorbellMode(t *testing.T) {
	port := func(svc, id string, p int) *api.ServiceEntry {
		e := instance(svc, id)
		e.Service.Port = p
		return e
	}
	tests := []struct {
		name      string
		noSummary bool
		change    func(f *fakeConsul)
		want      []string // svc3's instances afterwards
		sweep     bool     // found by a sweep
	}{
		{"a register", false, func(f *fakeConsul) { f.set("svc3", 0, "svc3-a", "svc3-b") }, []string{"svc3-a", "svc3-b"}, false},
		{"a deregistration", false, func(f *fakeConsul) { f.set("svc3", 0, "svc3-a") }, []string{"svc3-a"}, false},
		{"a rewrite the summary does not show", false, func(f *fakeConsul) { f.setEntries("svc3", port("svc3", "svc3-a", 81)) }, []string{"svc3-a"}, true},
		{"no summary", true, func(f *fakeConsul) { f.set("svc3", 0, "svc3-a", "svc3-b") }, []string{"svc3-a", "svc3-b"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const services = 8
				f := fakeWithServices(services, 0)
				f.noSummary = tc.noSummary
				if tc.name == "a deregistration" {
					f.set("svc3", 0, "svc3-a", "svc3-b")
				}
				d := fakeDiscoverer(t, f, 5) // doorbells and sweeps only
				c, stop := startCollector(t, d)
				defer stop()
				settle()
				require.True(t, inDoorbellMode(d))
				sweeps := testutil.ToFloat64(d.metrics.sweeps)
				before := healthRequests(f, services)

				tc.change(f)
				time.Sleep(time.Minute) // past any sweep's pacing
				synctest.Wait()
				got, _ := c.snapshot()
				require.Equal(t, tc.want, got["svc3"])
				if tc.name == "a rewrite the summary does not show" {
					require.Equal(t, "81", c.labels("svc3", "svc3-a")[servicePortLabel])
				}
				if tc.sweep {
					require.Greater(t, testutil.ToFloat64(d.metrics.sweeps), sweeps, "a sweep found it")
					return
				}
				require.Equal(t, sweeps, testutil.ToFloat64(d.metrics.sweeps), "no sweep")
				require.Equal(t, 1, healthRequests(f, services)-before, "one read: the changed service")
			})
		})
	}
}
