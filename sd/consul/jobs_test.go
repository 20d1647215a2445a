package consul

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"

	"github.com/custom-sd/custom-sd/adapter"
)

// These tests run several jobs on one Watch against the in-memory fake.

// fakeWatch returns a Watch whose requests go to f in memory.
func fakeWatch(t *testing.T, f *fakeConsul, maxConns int) *Watch {
	t.Helper()
	w, err := NewWatch(WatchConfig{API: api.Config{Address: "consul.invalid:8500"}, MaxConnections: maxConns})
	require.NoError(t, err)
	w.transport.base = inMemory{f}
	return w
}

// runWatch runs w until the test ends.
func runWatch(t *testing.T, w *Watch) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { w.Run(ctx) })
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

// startJob runs a job of w with cfg and collects what it sends.
func startJob(t *testing.T, w *Watch, cfg JobConfig) (*collector, func()) {
	t.Helper()
	j, err := w.Job(cfg)
	require.NoError(t, err)
	return collect(t, j)
}

// instance returns an entry of service svc with the given tags.
func instance(svc, id string, tags ...string) *api.ServiceEntry {
	return &api.ServiceEntry{
		Node:    &api.Node{Node: "n1", Address: "127.0.0.1", Datacenter: "dc1"},
		Service: &api.AgentService{ID: id, Service: svc, Port: 80, Tags: tags},
	}
}

// tagged returns a fake with services svc0…svc7, each with an instance
// tagged prod and one tagged dev.
func tagged() *fakeConsul {
	f := newFakeConsul()
	for i := range 8 {
		name := fmt.Sprintf("svc%d", i)
		f.setEntries(name, instance(name, name+"-prod", "prod"), instance(name, name+"-dev", "dev"))
	}
	return f
}

// healthReads counts the reads of every service's instances.
func healthReads(f *fakeConsul) int {
	n := 0
	for i := range 8 {
		n += f.count(fmt.Sprintf("/v1/health/service/svc%d", i))
	}
	return n
}

// Jobs that differ in what is applied after the read share every read: a
// service costs Consul what it costs for one job, in every watching mode.
// One job reads each service once at start, and in doorbell mode perhaps
// once more when long polls take over (depending on which finishes first);
// four jobs reading apart would read each service four times.
func TestJobsShareReads(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := tagged()
				w := fakeWatch(t, f, mode.maxConns)
				all, _ := startJob(t, w, JobConfig{})
				prod, _ := startJob(t, w, JobConfig{Selection: Selection{Tags: []string{"prod"}}})
				two, _ := startJob(t, w, JobConfig{Selection: Selection{Services: []string{"svc1", "svc2"}}, TagSeparator: ";"})
				local, _ := startJob(t, w, JobConfig{Selection: Selection{HealthFilter: `"dev" in Service.Tags`}})
				runWatch(t, w) // jobs created before the watch runs are read together
				settle()

				got, sends := all.snapshot()
				require.Len(t, got, 8)
				require.Equal(t, 1, sends)
				require.Equal(t, []string{"svc3-dev", "svc3-prod"}, got["svc3"])
				got, _ = prod.snapshot()
				require.Equal(t, []string{"svc3-prod"}, got["svc3"], "only instances with every tag")
				got, _ = two.snapshot()
				require.Len(t, got, 2)
				require.Equal(t, ";dev;", two.labels("svc1", "svc1-dev")[tagsLabel], "each job's own tag separator")
				got, _ = local.snapshot()
				require.Equal(t, []string{"svc5-dev"}, got["svc5"], "a health filter applied after the read")
				require.GreaterOrEqual(t, healthReads(f), 8)
				require.LessOrEqual(t, healthReads(f), 2*8, "four jobs read each service as one does")

				f.setEntries("svc1", instance("svc1", "svc1-prod", "prod"), instance("svc1", "svc1-new", "prod"))
				settle()
				got, _ = prod.snapshot()
				require.Equal(t, []string{"svc1-new", "svc1-prod"}, got["svc1"])
				got, _ = two.snapshot()
				require.Equal(t, []string{"svc1-new", "svc1-prod"}, got["svc1"])
				got, _ = local.snapshot()
				require.NotContains(t, got, "svc1", "no dev instance left")
			})
		})
	}
}

// A job that starts while others run gets its complete set; the others
// send nothing new, and only the services it shares with them are read
// again, once.
func TestJobStartedLaterLeavesOthersAlone(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := tagged()
				w := fakeWatch(t, f, mode.maxConns)
				runWatch(t, w)
				first, _ := startJob(t, w, JobConfig{Selection: Selection{Services: []string{"svc0", "svc1", "svc2", "svc3"}}})
				settle()
				_, sends := first.snapshot()
				require.Equal(t, 1, sends)
				before := healthReads(f)

				later, _ := startJob(t, w, JobConfig{Selection: Selection{Services: []string{"svc2", "svc3"}, Tags: []string{"dev"}}})
				settle()
				got, laterSends := later.snapshot()
				require.Equal(t, 1, laterSends, "its complete set in one send")
				require.Equal(t, map[string][]string{"svc2": {"svc2-dev"}, "svc3": {"svc3-dev"}}, got)
				_, sends = first.snapshot()
				require.Equal(t, 1, sends, "the running job sent nothing new")
				require.LessOrEqual(t, healthReads(f)-before, 4, "the shared services read again for it, at most twice each")
			})
		})
	}
}

// A job that stops takes with it the reads no other job needs.
func TestJobStoppedStopsItsReads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := tagged()
		w := fakeWatch(t, f, 64)
		a, _ := startJob(t, w, JobConfig{Selection: Selection{Services: []string{"svc0", "svc1"}}})
		_, stopB := startJob(t, w, JobConfig{Selection: Selection{Services: []string{"svc1", "svc2", "svc3"}}})
		runWatch(t, w)
		settle()
		require.EqualValues(t, 4, w.longPolls.Load())
		require.EqualValues(t, 4, w.watched.Load())

		stopB()
		settle()
		require.EqualValues(t, 2, w.longPolls.Load(), "svc2 and svc3 are no longer read")
		require.EqualValues(t, 2, w.watched.Load())
		f.setEntries("svc1", instance("svc1", "svc1-only"))
		settle()
		got, _ := a.snapshot()
		require.Equal(t, []string{"svc1-only"}, got["svc1"], "the other job goes on")
	})
}

// A health filter the agent must apply is a query of its own: the job's
// services are read separately, with the filter.
func TestServerSideHealthFilterIsAScopeOfItsOwn(t *testing.T) {
	local, err := compileHealthFilter(`Service.Port == 80`)
	require.NoError(t, err)
	require.NotNil(t, local, "a filter on mirrored fields is evaluated here")
	server, err := compileHealthFilter(`Service.Connect.Native == true`)
	require.NoError(t, err)
	require.Nil(t, server, "a filter on a field the mirror leaves out goes to the agent")
	_, err = compileHealthFilter(`Service.Port ==`)
	require.Error(t, err)

	synctest.Test(t, func(t *testing.T) {
		f := tagged()
		w := fakeWatch(t, f, 64)
		runWatch(t, w)
		startJob(t, w, JobConfig{})
		startJob(t, w, JobConfig{Selection: Selection{HealthFilter: `Service.Port == 80`}})
		startJob(t, w, JobConfig{Selection: Selection{HealthFilter: `Service.Connect.Native == false`}})
		settle()
		require.EqualValues(t, 16, w.longPolls.Load(), "two scopes of eight services")
	})
}

// collect runs d and returns its collector and a stop function.
func collect(t testing.TB, d adapter.Discoverer) (*collector, func()) {
	c := &collector{groups: map[string]*adapter.Group{}}
	ctx, cancel := context.WithCancel(context.Background())
	up := make(chan []*adapter.Group)
	var wg sync.WaitGroup
	wg.Go(func() { d.Run(ctx, up) })
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case gs := <-up:
				c.receive(gs)
			}
		}
	})
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return c, stop
}

// receive applies one send. adapter.Settled is counted apart: a send of
// it alone is not a send of groups.
func (c *collector) receive(gs []*adapter.Group) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := slices.Index(gs, adapter.Settled)
	c.settledLast = i >= 0
	if i >= 0 {
		gs = slices.Delete(slices.Clone(gs), i, i+1)
		if len(gs) == 0 {
			return
		}
	}
	if c.first == nil {
		for _, g := range gs {
			if g == adapter.Complete {
				c.first = c.pending
				c.apply(c.pending)
				c.sends = 1
				return
			}
			c.pending = append(c.pending, g)
		}
		return
	}
	c.sends++
	c.apply(gs)
}

func (c *collector) apply(gs []*adapter.Group) {
	for _, g := range gs {
		if len(g.Targets) == 0 {
			delete(c.groups, g.Source)
		} else {
			c.groups[g.Source] = g
		}
	}
}

// A job that starts later and reads a service through another service list
// (another catalog filter) than the job that read it first gets it too: the
// service is read again for it.
func TestJobStartedLaterThroughAnotherList(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := tagged()
		w := fakeWatch(t, f, 64)
		first, _ := startJob(t, w, JobConfig{Selection: Selection{Filter: `ServiceMeta.team == "x"`}})
		runWatch(t, w)
		settle()
		_, sends := first.snapshot()
		require.Equal(t, 1, sends)

		later, _ := startJob(t, w, JobConfig{Selection: Selection{Services: []string{"svc2"}}})
		settle()
		got, sends := later.snapshot()
		require.Equal(t, 1, sends, "its complete set")
		require.Equal(t, []string{"svc2-dev", "svc2-prod"}, got["svc2"])
	})
}
