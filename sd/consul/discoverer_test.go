package consul

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/custom-sd/custom-sd/adapter"
	"github.com/custom-sd/custom-sd/internal/testconsul"
)

func TestMain(m *testing.M) { testconsul.Main(m) }

// collector runs a Discoverer and keeps the latest group per Source, as the
// adapter's manager does: the groups sent before adapter.Complete are the
// initial set, which counts as one send, and show only once it is
// complete.
type collector struct {
	mu     sync.Mutex
	groups map[string]*adapter.Group
	sends  int
	// settledLast: the last send held adapter.Settled.
	settledLast bool
	first       []*adapter.Group // the initial set
	pending     []*adapter.Group // sent before adapter.Complete
}

func (c *collector) snapshot() (map[string][]string, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string][]string{}
	for src, g := range c.groups {
		var ids []string
		for _, t := range g.Targets {
			ids = append(ids, string(t[serviceIDLabel]))
		}
		sort.Strings(ids)
		out[src] = ids
	}
	return out, c.sends
}

// settled reports whether the last send held adapter.Settled.
func (c *collector) settled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.settledLast
}

// labels returns the labels of the instance with the given service ID.
func (c *collector) labels(source, id string) map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.groups[source]
	if g == nil {
		return nil
	}
	for _, t := range g.Targets {
		if string(t[serviceIDLabel]) == id {
			out := map[string]string{}
			for n, v := range g.Labels.Merge(t) {
				out[string(n)] = string(v)
			}
			return out
		}
	}
	return nil
}

// startCollector starts d and returns its collector and a stop function
// that waits for Run to return.
func startCollector(t testing.TB, d *Discoverer) (*collector, func()) {
	return collect(t, d)
}

// settle lets a second of fake time pass, enough for every watch to make
// its next request, and waits until every goroutine is blocked again.
func settle() {
	time.Sleep(time.Second)
	synctest.Wait()
}

// fakeDiscoverer returns a Discoverer whose requests go to f in memory.
func fakeDiscoverer(t *testing.T, f *fakeConsul, maxConns int) *Discoverer {
	d, err := New(Config{WatchConfig: WatchConfig{API: api.Config{Address: "consul.invalid:8500"}, MaxConnections: maxConns}})
	require.NoError(t, err)
	d.transport.base = inMemory{f}
	return d
}

// inDoorbellMode reports whether some datacenter is watched in doorbell mode.
func inDoorbellMode(d *Discoverer) bool { return d.doorbellScopes.Load() > 0 }

// modes are the discoverer's ways of watching, chosen by the connection
// budget for the tests' eight to nine services.
var modes = []struct {
	name      string
	maxConns  int
	sweeping  bool
	longPolls int // -1: one per service
}{
	{"one long poll per service", 64, false, -1},
	{"doorbells and sweeps only", 5, true, 0},          // 1 headroom, 3 doorbells and a summary read, 1 reader
	{"long polls for the busiest, sweeps", 9, true, 2}, // 1 headroom, 3 doorbells and a summary read, 2 readers, 2 long polls
}

func TestDiscovererFollowsChanges(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := fakeWithServices(8, 0)
				d := fakeDiscoverer(t, f, mode.maxConns)
				c, stop := startCollector(t, d)
				defer stop()
				settle()

				got, sends := c.snapshot()
				require.Equal(t, 1, sends, "the initial set comes in one send")
				require.Len(t, c.first, 8, "and holds every service")
				require.Len(t, got, 8)
				require.Equal(t, mode.sweeping, inDoorbellMode(d))

				f.set("svc1", 0, "svc1-a", "svc1-b")
				settle()
				got, _ = c.snapshot()
				require.Equal(t, []string{"svc1-a", "svc1-b"}, got["svc1"])

				f.set("svc1", 0, "svc1-b")
				settle()
				got, _ = c.snapshot()
				require.Equal(t, []string{"svc1-b"}, got["svc1"])

				f.set("svc2", 0, nil...)
				settle()
				got, _ = c.snapshot()
				require.NotContains(t, got, "svc2", "a service that left the catalog is deleted")

				f.set("new", 0, "new-a")
				settle()
				got, _ = c.snapshot()
				require.Equal(t, []string{"new-a"}, got["new"])
			})
		})
	}
}

// TestDiscovererWaitsForEveryService: nothing is sent while a service
// has never been read and its reads fail with an error retrying may cure,
// for at most unreadableAfter; then the job goes on without it, and it
// joins once a read succeeds. An error retrying will not cure (a service
// name Consul cannot serve: 400, 404, a redirect) does not hold the job
// back at all; a 429 (custom-sd's own load) holds it back until it ends.
func TestDiscovererWaitsForEveryService(t *testing.T) {
	tests := []struct {
		name string
		code int
		wait time.Duration // how long nothing is sent
	}{
		{"500, which a retry may cure", http.StatusInternalServerError, unreadableAfter},
		{"403, which a new token may cure", http.StatusForbidden, unreadableAfter},
		{"400, which nothing cures", http.StatusBadRequest, 0},
		{"404, which nothing cures", http.StatusNotFound, 0},
		{"a redirect to another service's path", http.StatusMovedPermanently, 0},
	}
	for _, mode := range modes {
		t.Run(mode.name+"/429, which is custom-sd's own load", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := fakeWithServices(8, 0)
				f.setFail("/v1/health/service/svc3", http.StatusTooManyRequests)
				d := fakeDiscoverer(t, f, mode.maxConns)
				c, stop := startCollector(t, d)
				defer stop()

				time.Sleep(10 * time.Minute)
				synctest.Wait()
				_, sends := c.snapshot()
				require.Zero(t, sends, "nothing is sent while the agent refuses for load")
				require.Empty(t, d.Unreadable())

				f.setFail("/v1/health/service/svc3", 0)
				time.Sleep(time.Minute)
				synctest.Wait()
				got, _ := c.snapshot()
				require.Len(t, got, 8, "complete once the refusals end")
			})
		})
		for _, tc := range tests {
			t.Run(mode.name+"/"+tc.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					f := fakeWithServices(8, 0)
					f.setFail("/v1/health/service/svc3", tc.code)
					d := fakeDiscoverer(t, f, mode.maxConns)
					c, stop := startCollector(t, d)
					defer stop()

					if tc.wait > 0 {
						time.Sleep(tc.wait - time.Second)
						synctest.Wait()
						_, sends := c.snapshot()
						require.Zero(t, sends, "nothing is sent while the service may yet be read")
						require.Empty(t, d.Unreadable())
					}
					time.Sleep(time.Minute)
					synctest.Wait()
					got, sends := c.snapshot()
					require.Equal(t, 1, sends, "the job goes on without it")
					require.Len(t, got, 7)
					require.NotContains(t, got, "svc3")
					require.Equal(t, []Unreadable{{Service: "svc3", Err: d.Unreadable()[0].Err}}, d.Unreadable())
					require.Contains(t, d.Unreadable()[0].Err, strconv.Itoa(tc.code))
					retries := f.count("/v1/health/service/svc3")
					time.Sleep(5 * time.Minute)
					synctest.Wait()
					more := f.count("/v1/health/service/svc3") - retries
					require.Positive(t, more, "it is read again")
					require.Less(t, more, 20, "with backoff (at most one read in 30s), not by sweeps")

					f.setFail("/v1/health/service/svc3", 0)
					time.Sleep(time.Minute)
					synctest.Wait()
					got, _ = c.snapshot()
					require.Len(t, got, 8, "it joins once a read succeeds")
					require.Empty(t, d.Unreadable())
				})
			})
		}
	}
}

// TestUnreadableServiceAcrossAModeChange: a service that became unreadable
// while it had a long poll is still read again, and joins once it reads,
// after its scope turned to doorbells and its long poll went.
func TestUnreadableServiceAcrossAModeChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := fakeWithServices(8, 0)
		f.setFail("/v1/health/service/svc3", http.StatusInternalServerError)
		d := fakeDiscoverer(t, f, 64)
		c, stop := startCollector(t, d)
		defer stop()
		time.Sleep(time.Minute)
		synctest.Wait()
		require.Len(t, d.Unreadable(), 1)
		require.False(t, inDoorbellMode(d))

		for i := range 200 {
			f.set(fmt.Sprintf("more%d", i), 0, fmt.Sprintf("more%d-a", i))
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		require.True(t, inDoorbellMode(d), "200 more services than long polls")

		f.setFail("/v1/health/service/svc3", 0)
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		got, _ := c.snapshot()
		require.Contains(t, got, "svc3", "it joins once a read succeeds")
		require.Empty(t, d.Unreadable())
	})
}

func TestDiscovererKeepsLastKnownTargetsOfAFailingService(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := fakeWithServices(8, 0)
				c, stop := startCollector(t, fakeDiscoverer(t, f, mode.maxConns))
				defer stop()
				settle()

				f.setFail("/v1/health/service/svc3", http.StatusInternalServerError)
				f.set("svc3", 0, "svc3-changed") // its read fails, so this is not seen
				f.set("svc0", 0, "svc0-a", "svc0-b")
				time.Sleep(time.Minute)
				synctest.Wait()
				got, _ := c.snapshot()
				require.Equal(t, []string{"svc3-a"}, got["svc3"], "stale beats incomplete")
				require.Equal(t, []string{"svc0-a", "svc0-b"}, got["svc0"], "the others still update")

				// svc3's rewrite keeps its shape and rang with svc0's change:
				// in doorbell mode a retry of the failed read finds it.
				f.setFail("/v1/health/service/svc3", 0)
				time.Sleep(time.Minute)
				synctest.Wait()
				got, _ = c.snapshot()
				require.Equal(t, []string{"svc3-changed"}, got["svc3"])
			})
		})
	}
}

func TestDiscovererBacksOffOnTooManyRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeConsul()
		f.set("svc", 0, "svc-a")
		f.setFail("/v1/catalog/services", http.StatusTooManyRequests)
		d := fakeDiscoverer(t, f, 64)
		c, stop := startCollector(t, d)
		defer stop()

		time.Sleep(time.Minute)
		synctest.Wait()
		// Backoff from 2s doubling to 30s, jittered down to half: at most
		// 1+1+2+4+8+15+15+15 seconds fit in a minute, i.e. 8 requests.
		require.LessOrEqual(t, f.count("/v1/catalog/services"), 8, "no hot loop under 429s")
		require.GreaterOrEqual(t, f.count("/v1/catalog/services"), 3, "but it keeps trying")
		require.EqualValues(t, f.count("/v1/catalog/services"), d.transport.limited.Load())
		require.EqualValues(t, f.count("/v1/catalog/services"),
			testutil.ToFloat64(d.metrics.requests.WithLabelValues("catalog_services", outcomeRateLimited)), "429s are counted as rate_limited")
		_, sends := c.snapshot()
		require.Zero(t, sends)

		f.setFail("/v1/catalog/services", 0)
		time.Sleep(time.Minute)
		synctest.Wait()
		got, _ := c.snapshot()
		require.Equal(t, []string{"svc-a"}, got["svc"])
	})
}

func TestDiscovererHandlesIndexGoingBackwards(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := fakeWithServices(8, 100)
				d := fakeDiscoverer(t, f, mode.maxConns)
				c, stop := startCollector(t, d)
				defer stop()
				settle()
				require.Zero(t, testutil.ToFloat64(d.metrics.resets))

				// A Consul restored from an older snapshot: lower indexes, and
				// svc0 has other instances.
				f.set("svc0", 2, "svc0-restored")
				for i := 1; i < 8; i++ {
					f.set(fmt.Sprintf("svc%d", i), uint64(2+i), fmt.Sprintf("svc%d-a", i))
				}
				time.Sleep(DefaultWaitTime + time.Minute)
				synctest.Wait()
				got, _ := c.snapshot()
				require.Equal(t, []string{"svc0-restored"}, got["svc0"])
				require.Positive(t, testutil.ToFloat64(d.metrics.resets), "the reset is counted")

				// And later changes are still seen.
				f.set("svc1", 0, "svc1-b")
				settle()
				got, _ = c.snapshot()
				require.Equal(t, []string{"svc1-b"}, got["svc1"])
			})
		})
	}
}

func TestDiscovererSpacesRequestsOfAFlappingService(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeConsul()
		f.set("flappy", 0, "a")
		c, stop := startCollector(t, fakeDiscoverer(t, f, 64))
		defer stop()
		settle()
		before := f.count("/v1/health/service/flappy")

		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := range 1000 {
				f.set("flappy", 0, fmt.Sprintf("a%d", i))
				time.Sleep(time.Millisecond)
			}
		}()
		<-done
		synctest.Wait()
		// 1,000 changes in one second; one request per 10ms at most.
		require.LessOrEqual(t, f.count("/v1/health/service/flappy")-before, 101)
		_, sends := c.snapshot()
		require.Greater(t, sends, 10, "changes still flow")
	})
}

// TestUpdateKeepsTheNewestRead: reads of one service race (a long poll and a
// reader, two readers, a lagging server), so an older read arriving last
// must not replace a newer one.
func TestUpdateKeepsTheNewestRead(t *testing.T) {
	t.Parallel()
	entries := func(id string) []*api.ServiceEntry {
		return []*api.ServiceEntry{{
			Node:    &api.Node{Node: "n1", Address: "127.0.0.1"},
			Service: &api.AgentService{ID: id, Service: "web", Port: 80},
		}}
	}
	tests := []struct {
		name    string
		index   uint64
		id      string
		changed bool
		want    string // service ID in the last group sent
	}{
		{"first read", 10, "a", true, "a"},
		{"same index", 10, "b", false, "a"},
		{"older read", 5, "old", false, "a"},
		{"newer read", 11, "c", true, "c"},
		{"newer index, same targets", 12, "c", false, "c"},
	}
	d, err := New(Config{WatchConfig: WatchConfig{API: api.Config{Address: "consul.invalid:8500"}}})
	require.NoError(t, err)
	w := newWatcher(t.Context(), d.Watch)
	j := d.job.state
	j.started = true
	sc := w.newScope(j.key(""))
	w.scopes[sc.key] = sc
	v := &view{job: j, scope: sc, listed: true, done: true, wanted: map[string]struct{}{"web": {}}, unseen: map[string]struct{}{}}
	sc.views[j], j.views[sc.key] = v, v
	s := &service{name: "web", gen: 1, wantedBy: 1}
	sc.services["web"] = s
	sends := 0
	for _, tc := range tests {
		changed := w.update(sc, s, read{sc: sc, name: "web", gen: 1, index: tc.index, entries: entries(tc.id)}, time.Now())
		require.Equal(t, tc.changed, changed, tc.name)
		if groups, due := j.mailbox.take(); due {
			sends++
			require.Len(t, groups, 1, tc.name)
			require.Equal(t, tc.want, string(groups[0].Targets[0][serviceIDLabel]), tc.name)
		}
	}
	require.Equal(t, 2, sends, "only the two changes were sent")
}

// TestHealthDoorbellSeesAFlipBack pins the order that once lost a change:
// the doorbell lists a service as critical, the read it triggers already
// sees the service passing again, and the service turns critical once more
// before the doorbell asks again. Two equal lists in a row; only comparing
// the list with the last read shows that the read is out of date.
func TestHealthDoorbellSeesAFlipBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeConsul()
		for i := range 8 {
			f.set(fmt.Sprintf("svc%d", i), 0, fmt.Sprintf("svc%d-a", i))
			f.setStatus(fmt.Sprintf("svc%d", i), api.HealthPassing)
		}
		d := fakeDiscoverer(t, f, 5) // doorbells and sweeps only
		c, stop := startCollector(t, d)
		defer stop()
		settle()
		require.True(t, inDoorbellMode(d))
		health := func() string { return c.labels("svc3", "svc3-a")[healthLabel] }
		require.Equal(t, "passing", health())

		releaseRead := f.gate("/v1/health/service/svc3")
		f.setStatus("svc3", api.HealthCritical) // the doorbell lists it; the read waits
		synctest.Wait()
		releaseDoorbell := f.gate("/v1/health/state/any")
		f.setStatus("svc3", api.HealthPassing)
		releaseRead() // the read sees "passing"
		synctest.Wait()
		f.setStatus("svc3", api.HealthCritical)
		releaseDoorbell() // the next list equals the first one
		settle()
		require.Equal(t, "critical", health())
	})
}
