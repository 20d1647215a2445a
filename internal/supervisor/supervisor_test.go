package supervisor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/custom-sd/custom-sd/adapter"
	"github.com/custom-sd/custom-sd/internal/config"
	"github.com/custom-sd/custom-sd/sd/consul"
)

// fakes builds parts that run a goroutine each and note which run, and
// fails the build step numbered failAt (counting from 0; -1 never).
type fakes struct {
	mu      sync.Mutex
	failAt  int
	steps   int
	running map[string]int // part → runs under way
	started []string       // parts started, in order
}

func newFakes() *fakes { return &fakes{failAt: -1, running: map[string]int{}} }

// step counts a build step and fails the one asked for.
func (f *fakes) step(what string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.steps
	f.steps++
	if n == f.failAt {
		return fmt.Errorf("injected failure building %s", what)
	}
	return nil
}

func (f *fakes) run(ctx context.Context, what string) {
	f.mu.Lock()
	f.running[what]++
	f.started = append(f.started, what)
	f.mu.Unlock()
	<-ctx.Done()
	f.mu.Lock()
	f.running[what]--
	if f.running[what] == 0 {
		delete(f.running, what)
	}
	f.mu.Unlock()
}

// runningNow lists the parts running, sorted.
func (f *fakes) runningNow() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var parts []string
	for p := range f.running {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	return parts
}

type fakeWatch struct {
	f    *fakes
	name string
	up   prometheus.Gauge
}

func (w *fakeWatch) Describe(ch chan<- *prometheus.Desc) { w.up.Describe(ch) }
func (w *fakeWatch) Collect(ch chan<- prometheus.Metric) { w.up.Collect(ch) }
func (w *fakeWatch) Run(ctx context.Context)             { w.f.run(ctx, w.name) }
func (w *fakeWatch) Refresh()                            {}
func (w *fakeWatch) Unreadable() []consul.Unreadable     { return nil }

type fakeAdapter struct {
	fakeWatch
	snap *adapter.Snapshot
}

func (a *fakeAdapter) Ready() bool                 { return true }
func (a *fakeAdapter) Snapshot() *adapter.Snapshot { return a.snap }

type fakeDiscoverer struct{}

func (fakeDiscoverer) Run(context.Context, chan<- []*adapter.Group) {}

func (f *fakes) Watch(c *config.Watch, _ log.Logger) (Watch, error) {
	if err := f.step("the watch of " + c.Name); err != nil {
		return nil, err
	}
	return &fakeWatch{f: f, name: "watch " + c.Name + " " + c.Fingerprint, up: prometheus.NewGauge(prometheus.GaugeOpts{Name: "fake_watch"})}, nil
}

func (f *fakes) Job(_ Watch, spec *config.JobSpec) (adapter.Discoverer, error) {
	if err := f.step("the discoverer of " + spec.Name); err != nil {
		return nil, err
	}
	return fakeDiscoverer{}, nil
}

func (f *fakes) Adapter(spec *config.JobSpec, _ adapter.Discoverer, _ log.Logger) (Adapter, error) {
	if err := f.step("the adapter of " + spec.Name); err != nil {
		return nil, err
	}
	return &fakeAdapter{fakeWatch: fakeWatch{f: f, name: "job " + spec.Name + " " + spec.Fingerprint, up: prometheus.NewGauge(prometheus.GaugeOpts{Name: "fake_job"})}, snap: &adapter.Snapshot{}}, nil
}

// configOf makes a configuration: agents by name and fingerprint, jobs by
// name, agent and fingerprint.
func configOf(agents map[string]string, jobs ...[3]string) *config.Config {
	c := &config.Config{Consuls: map[string]*config.Watch{}}
	for name, fp := range agents {
		c.Consuls[name] = &config.Watch{Name: name, Fingerprint: fp}
	}
	for _, j := range jobs {
		c.Jobs = append(c.Jobs, &config.JobSpec{Name: j[0], Consul: j[1], Fingerprint: c.Consuls[j[1]].Fingerprint + "/" + j[2]})
	}
	return c
}

// state is what the running set looks like from outside: the parts
// running, the jobs served and their snapshots.
type state struct {
	running []string
	jobs    []string
	snaps   map[string]*adapter.Snapshot
}

func stateOf(s *Supervisor, f *fakes) state {
	st := state{running: f.runningNow(), jobs: s.Jobs(), snaps: map[string]*adapter.Snapshot{}}
	for _, j := range st.jobs {
		st.snaps[j], _ = s.Targets(j)
	}
	return st
}

// waitRunning waits until the fakes run exactly want.
func waitRunning(t *testing.T, f *fakes, want ...string) {
	t.Helper()
	slices.Sort(want)
	require.Eventually(t, func() bool { return slices.Equal(f.runningNow(), want) }, testWait, tick, "running %v", want)
}

// testWait bounds a wait for a state: a hang detector, not a timing
// assertion.
const (
	testWait = 20 * time.Second
	tick     = 5 * time.Millisecond
)

var (
	running = configOf(map[string]string{"east": "e1", "west": "w1"},
		[3]string{"kept", "east", "1"}, [3]string{"changed", "east", "1"}, [3]string{"removed", "west", "1"}, [3]string{"moved", "west", "1"})
	// next keeps east and kept, changes west (so moved changes with it),
	// changes changed, removes removed and adds added and a new agent's job.
	next = configOf(map[string]string{"east": "e1", "west": "w2", "north": "n1"},
		[3]string{"kept", "east", "1"}, [3]string{"changed", "east", "2"}, [3]string{"moved", "west", "1"},
		[3]string{"added", "east", "1"}, [3]string{"far", "north", "1"})
	runningParts = []string{"watch east e1", "watch west w1", "job kept e1/1", "job changed e1/1", "job removed w1/1", "job moved w1/1"}
	nextParts    = []string{"watch east e1", "watch west w2", "watch north n1", "job kept e1/1", "job changed e1/2", "job moved w2/1", "job added e1/1", "job far n1/1"}
)

// TestApplyIsAllOrNothing injects a failure at every step of building the
// next configuration: each is reported, and leaves the running set exactly
// as it was — the same parts running, the same jobs served with the same
// snapshots. Without a failure, the next set runs whole.
func TestApplyIsAllOrNothing(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	count := newFakes()
	countSup := New(context.Background(), nil, count)
	require.NoError(t, countSup.Apply(running))
	count.steps = 0
	require.NoError(t, countSup.Apply(next))
	steps := count.steps
	countSup.Stop()
	require.Equal(t, 2+2*4, steps, "two new watches, and a discoverer and an adapter for each of four new jobs")

	for failAt := range steps {
		t.Run(fmt.Sprintf("step %d", failAt), func(t *testing.T) {
			f := newFakes()
			s := New(context.Background(), nil, f)
			require.NoError(t, s.Apply(running))
			waitRunning(t, f, runningParts...)
			before := stateOf(s, f)
			metricsBefore, err := s.Gather()
			require.NoError(t, err)

			f.steps, f.failAt = 0, failAt
			err = s.Apply(next)
			require.ErrorContains(t, err, "injected failure building")
			require.Equal(t, before, stateOf(s, f), "nothing changed")
			metricsAfter, err := s.Gather()
			require.NoError(t, err)
			require.Equal(t, metricsBefore, metricsAfter)

			f.failAt = -1
			require.NoError(t, s.Apply(next), "the same configuration applies once it builds")
			waitRunning(t, f, nextParts...)
			require.Equal(t, []string{"added", "changed", "far", "kept", "moved"}, s.Jobs())
			s.Stop()
			waitRunning(t, f)
		})
	}
}

// TestApplyKeepsWhatIsUnchanged: parts whose settings are unchanged go on
// untouched (not restarted); new jobs start before the new watches they
// read, so that they share their first reads.
func TestApplyKeepsWhatIsUnchanged(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	f := newFakes()
	s := New(context.Background(), nil, f)
	require.NoError(t, s.Apply(running))
	waitRunning(t, f, runningParts...)
	kept, _ := s.Targets("kept")
	f.mu.Lock()
	f.started = nil
	f.mu.Unlock()

	require.NoError(t, s.Apply(next))
	waitRunning(t, f, nextParts...)
	stillKept, _ := s.Targets("kept")
	require.Same(t, kept, stillKept, "the kept job's adapter is the same")
	f.mu.Lock()
	started := slices.Clone(f.started)
	f.mu.Unlock()
	require.NotContains(t, started, "job kept e1/1", "not restarted")
	require.NotContains(t, started, "watch east e1", "not restarted")
	require.ElementsMatch(t, []string{"job changed e1/2", "job moved w2/1", "job added e1/1", "job far n1/1", "watch west w2", "watch north n1"}, started)
	s.Stop()
	waitRunning(t, f)
}

// TestMetricsFollowTheRunningSet: /metrics shows the running parts'
// metrics, labelled with their names, and no others.
func TestMetricsFollowTheRunningSet(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	f := newFakes()
	s := New(context.Background(), nil, f)
	require.NoError(t, s.Apply(running))
	labels := func() []string {
		mfs, err := s.Gather()
		require.NoError(t, err)
		var out []string
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					out = append(out, mf.GetName()+" "+l.GetName()+"="+l.GetValue())
				}
			}
		}
		return out
	}
	require.ElementsMatch(t, []string{"fake_watch consul=east", "fake_watch consul=west",
		"fake_job sd_job=changed", "fake_job sd_job=kept", "fake_job sd_job=moved", "fake_job sd_job=removed"}, labels())
	require.NoError(t, s.Apply(next))
	require.ElementsMatch(t, []string{"fake_watch consul=east", "fake_watch consul=north", "fake_watch consul=west",
		"fake_job sd_job=added", "fake_job sd_job=changed", "fake_job sd_job=far", "fake_job sd_job=kept", "fake_job sd_job=moved"}, labels())
	s.Stop()
	require.Empty(t, labels())
}

// TestNothingStartsAfterStop: Apply and Stop hold one lock; whichever
// comes second, nothing runs once Stop has returned.
func TestNothingStartsAfterStop(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for range 50 {
		f := newFakes()
		s := New(context.Background(), nil, f)
		require.NoError(t, s.Apply(running))
		var wg sync.WaitGroup
		var applyErr error
		wg.Go(func() { applyErr = s.Apply(next) })
		s.Stop()
		require.Empty(t, f.runningNow(), "nothing runs after Stop")
		wg.Wait()
		require.Empty(t, f.runningNow(), "nothing runs after Stop")
		require.False(t, s.Ready())
		require.Empty(t, s.Jobs())
		if applyErr != nil {
			require.True(t, errors.Is(applyErr, ErrStopped))
		}
	}
	f := newFakes()
	s := New(context.Background(), nil, f)
	s.Stop()
	require.ErrorIs(t, s.Apply(running), ErrStopped)
	require.Empty(t, f.runningNow())
}
