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
// port) is found by the verification that follows: one read of the node
// dump and one read of the service, alone or among other changes. An agent
// without a summary, or without a node dump, gets sweeps.
func TestCatalogChangesInDoorbellMode(t *testing.T) {
	port := func(svc, id string, p int) *api.ServiceEntry {
		e := instance(svc, id)
		e.Service.Port = p
		return e
	}
	rewrite := func(f *fakeConsul) { f.setEntries("svc3", port("svc3", "svc3-a", 81)) }
	// whileSummaryRead makes first, then (once the summary read it caused
	// is under way) then.
	whileSummaryRead := func(first, then func(f *fakeConsul)) func(f *fakeConsul) {
		return func(f *fakeConsul) {
			release := f.gate(summaryPath)
			first(f)
			synctest.Wait()
			then(f)
			synctest.Wait()
			release()
		}
	}
	tests := []struct {
		name      string
		noSummary bool
		noDump    bool
		change    func(f *fakeConsul)
		want      []string // svc3's instances afterwards
		port      string   // svc3-a's port afterwards
		reads     int      // services read, without a sweep
		sweep     bool     // found by a sweep
	}{
		{"a register", false, false, func(f *fakeConsul) { f.set("svc3", 0, "svc3-a", "svc3-b") }, []string{"svc3-a", "svc3-b"}, "80", 1, false},
		{"a deregistration", false, false, func(f *fakeConsul) { f.set("svc3", 0, "svc3-a") }, []string{"svc3-a"}, "80", 1, false},
		{"a rewrite the summary does not show", false, false, rewrite, []string{"svc3-a"}, "81", 1, false},
		{"a rewrite among other changes", false, false, whileSummaryRead(func(f *fakeConsul) { f.set("svc4", 0, "svc4-a", "svc4-b") }, rewrite),
			[]string{"svc3-a"}, "81", 2, false},
		// The fake gives svc3-a a new write index: the verification reads it.
		{"an instance that came and went", false, false, whileSummaryRead(func(f *fakeConsul) { f.set("svc3", 0, "svc3-a", "svc3-b") }, func(f *fakeConsul) { f.set("svc3", 0, "svc3-a") }),
			[]string{"svc3-a"}, "80", 1, false},
		{"no summary", true, false, func(f *fakeConsul) { f.set("svc3", 0, "svc3-a", "svc3-b") }, []string{"svc3-a", "svc3-b"}, "80", 0, true},
		{"no node dump", false, true, rewrite, []string{"svc3-a"}, "81", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const services = 8
				f := fakeWithServices(services, 0)
				f.noSummary, f.noDump = tc.noSummary, tc.noDump
				if tc.name == "a deregistration" {
					f.set("svc3", 0, "svc3-a", "svc3-b")
				}
				d := fakeDiscoverer(t, f, 5) // doorbells and sweeps only
				c, stop := startCollector(t, d)
				defer stop()
				settle()
				require.True(t, inDoorbellMode(d))
				sweeps := testutil.ToFloat64(d.metrics.sweeps)
				verifications := testutil.ToFloat64(d.metrics.verifications)
				before := healthRequests(f, services)

				tc.change(f)
				time.Sleep(time.Minute) // past any sweep's or verification's pacing
				synctest.Wait()
				if tc.sweep {
					require.Greater(t, testutil.ToFloat64(d.metrics.sweeps), sweeps, "a sweep found it")
				} else {
					require.Equal(t, sweeps, testutil.ToFloat64(d.metrics.sweeps), "no sweep")
					require.Greater(t, testutil.ToFloat64(d.metrics.verifications), verifications, "a verification")
					require.Equal(t, tc.reads, healthRequests(f, services)-before, "reads of the changed services only: %v", f.requests)
				}
				got, _ := c.snapshot()
				require.Equal(t, tc.want, got["svc3"])
				require.Equal(t, tc.port, c.labels("svc3", "svc3-a")[servicePortLabel])
				require.True(t, c.settled(), "the job heard that the scope settled, after its last change")
			})
		})
	}
}

// A verification does not start while a summary read runs: the two are
// the agent's costliest reads, and slow each other down several times over.
// The verification that the ring asks for starts once the summary is in.
func TestVerificationWaitsForTheSummary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const services = 8
		f := fakeWithServices(services, 0)
		d := fakeDiscoverer(t, f, 5) // doorbells and sweeps only
		c, stop := startCollector(t, d)
		defer stop()
		settle()
		require.True(t, inDoorbellMode(d))
		dumps, summaries := f.count(dumpPath), f.count(summaryPath)

		release := f.gate(summaryPath)
		e := instance("svc3", "svc3-a")
		e.Service.Port = 81
		f.setEntries("svc3", e)     // a rewrite the summary does not show
		time.Sleep(5 * time.Second) // far past the quiet time (and within the read timeout, 10s)
		synctest.Wait()
		require.Equal(t, summaries+1, f.count(summaryPath), "the ring's summary read, held")
		require.Equal(t, dumps, f.count(dumpPath), "no verification while the summary runs")

		release()
		time.Sleep(time.Minute) // past any verification's pacing
		synctest.Wait()
		require.Greater(t, f.count(dumpPath), dumps, "the verification once the summary is in")
		require.Equal(t, "81", c.labels("svc3", "svc3-a")[servicePortLabel])
		require.True(t, c.settled())
	})
}

// A ring a read explains (a register the summary showed: the read of the
// service answers with the ring's index) is verified as the debt of the
// last verification allows, not as soon as the catalog is quiet; a ring no
// read explains (a rewrite the summary does not show) is verified at once.
// A verification due when the summary ends waits for the summary's reads,
// which may explain its rings.
func TestExplainedRingsWaitForTheDebt(t *testing.T) {
	tests := []struct {
		name   string
		change func(f *fakeConsul)
		soon   bool // verified within seconds
	}{
		{"a register the summary shows", func(f *fakeConsul) { f.set("svc4", 0, "svc4-a", "svc4-b") }, false},
		{"a rewrite the summary does not show", func(f *fakeConsul) {
			e := instance("svc4", "svc4-a")
			e.Service.Port = 81
			f.setEntries("svc4", e)
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const services = 8
				f := fakeWithServices(services, 0)
				d := fakeDiscoverer(t, f, 5) // doorbells and sweeps only
				c, stop := startCollector(t, d)
				defer stop()
				settle()
				require.True(t, inDoorbellMode(d))

				// A verification that takes 2 s leaves 8 s of debt.
				release := f.gate(dumpPath)
				e := instance("svc3", "svc3-a")
				e.Service.Port = 81
				f.setEntries("svc3", e)
				time.Sleep(2 * time.Second)
				release()
				synctest.Wait()
				require.Equal(t, "81", c.labels("svc3", "svc3-a")[servicePortLabel])
				dumps := f.count(dumpPath)

				// The summary takes 1 s: past the quiet time, so the
				// verification is due when it ends, before its read is in.
				releaseSummary := f.gate(summaryPath)
				tc.change(f)
				time.Sleep(time.Second)
				releaseSummary()
				time.Sleep(2 * time.Second)
				synctest.Wait()
				got, _ := c.snapshot()
				if tc.soon {
					require.Greater(t, f.count(dumpPath), dumps, "verified at once")
					require.Equal(t, "81", c.labels("svc4", "svc4-a")[servicePortLabel])
				} else {
					require.Equal(t, dumps, f.count(dumpPath), "no verification yet")
					require.Equal(t, []string{"svc4-a", "svc4-b"}, got["svc4"], "the summary's read")
				}
				require.True(t, c.settled(), "settled without waiting for the debt")
				time.Sleep(10 * time.Second) // past the debt
				synctest.Wait()
				require.Greater(t, f.count(dumpPath), dumps, "verified")
				require.True(t, c.settled())
			})
		})
	}
}

// A ring that a long poll's answer explains needs no summary read. At
// 10,000 services the service list answers later than the long poll of
// the service written; here it is held until the long poll has answered.
func TestALongPollSparesTheSummary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := fakeWithServices(8, 0)
		d := fakeDiscoverer(t, f, 9) // two long polls
		c, stop := startCollector(t, d)
		defer stop()
		settle()
		require.True(t, inDoorbellMode(d))

		// A register the summary finds gives svc3 a long poll (the
		// services that hold them have been quiet long enough).
		time.Sleep(2 * minQuiet)
		f.set("svc3", 0, "svc3-a", "svc3-b")
		time.Sleep(time.Minute)
		synctest.Wait()
		got, _ := c.snapshot()
		require.Equal(t, []string{"svc3-a", "svc3-b"}, got["svc3"])
		summaries, dumps := f.count(summaryPath), f.count(dumpPath)

		release := f.gate("/v1/catalog/services")
		f.set("svc3", 0, "svc3-a")
		time.Sleep(time.Second)
		synctest.Wait()
		got, _ = c.snapshot()
		require.Equal(t, []string{"svc3-a"}, got["svc3"], "the long poll's answer")
		release() // the ring
		time.Sleep(time.Minute)
		synctest.Wait()
		require.Equal(t, summaries, f.count(summaryPath), "no summary read for a ring the long poll explained")
		require.Greater(t, f.count(dumpPath), dumps, "verified when the debt allowed")
		require.True(t, c.settled())
	})
}

// TestVerificationCorrectsAStaleLongPoll: a long poll that misses a change
// (an agent whose view of the service went stale) is corrected by the next
// verification, which reads the service once without it: for a rewrite the
// node dump shows, and for a node change the nodes doorbell shows.
func TestVerificationCorrectsAStaleLongPoll(t *testing.T) {
	const path = "/v1/health/service/svc3"
	on := func(node, meta string, port int) *api.ServiceEntry {
		e := instance("svc3", "svc3-a")
		e.Node = &api.Node{Node: node, Address: "127.0.0.1", Datacenter: "dc1", Meta: map[string]string{"rack": meta}}
		e.Service.Port = port
		return e
	}
	tests := []struct {
		name       string
		change     *api.ServiceEntry
		port, rack string
	}{
		{"a port rewritten in place", on("n3", "r1", 81), "81", "r1"},
		{"node meta", on("n3", "r2", 80), "80", "r2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := fakeWithServices(8, 0)
				f.setEntries("svc3", on("n3", "r1", 80))
				d := fakeDiscoverer(t, f, 9) // two long polls
				c, stop := startCollector(t, d)
				defer stop()
				settle()
				require.True(t, inDoorbellMode(d))

				// A change gives svc3 one of the long polls (once the services
				// that hold them have been quiet long enough), which then goes
				// deaf.
				time.Sleep(2 * minQuiet)
				f.setEntries("svc3", on("n3", "r1", 80), instance("svc3", "svc3-b"))
				time.Sleep(time.Minute)
				synctest.Wait()
				f.deafen(path)
				f.setEntries("svc3", tc.change, instance("svc3", "svc3-b"))
				time.Sleep(time.Minute) // past any verification's pacing
				synctest.Wait()

				require.Positive(t, f.deafServed(path), "svc3 had a long poll, which missed the change")
				labels := c.labels("svc3", "svc3-a")
				require.Equal(t, tc.port, labels[servicePortLabel])
				require.Equal(t, tc.rack, labels[nodeMetaPrefix+"rack"])
			})
		})
	}
}
