package adapter

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// chanDiscoverer forwards what the test puts on its channel.
type chanDiscoverer struct{ in chan []*Group }

func newChanDiscoverer() *chanDiscoverer { return &chanDiscoverer{in: make(chan []*Group)} }

func (d *chanDiscoverer) Run(ctx context.Context, up chan<- []*Group) {
	for {
		select {
		case <-ctx.Done():
			return
		case gs := <-d.in:
			select {
			case up <- gs:
			case <-ctx.Done():
				return
			}
		}
	}
}

func group(source string, addrs ...string) *Group {
	g := &Group{Source: source}
	for _, a := range addrs {
		g.Targets = append(g.Targets, model.LabelSet{model.AddressLabel: model.LabelValue(a)})
	}
	return g
}

// received returns what the manager has handed out so far, without waiting.
func received(m *Manager) []map[Key]*Group {
	var out []map[Key]*Group
	for {
		select {
		case s := <-m.SyncCh():
			out = append(out, s)
		default:
			return out
		}
	}
}

func startManager(t *testing.T, interval time.Duration, providers map[string]Discoverer) (*Manager, func()) {
	m := NewManager(nil, interval)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		m.Run(ctx, providers)
		close(done)
	}()
	return m, func() {
		cancel()
		<-done
	}
}

func TestManagerWaitsForEveryProvider(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := newChanDiscoverer(), newChanDiscoverer()
		m, stop := startManager(t, time.Second, map[string]Discoverer{"a": a, "b": b})
		defer stop()

		a.in <- []*Group{group("x", "1:1")}
		synctest.Wait()
		require.Empty(t, received(m), "nothing before b's first set")

		b.in <- []*Group{} // an empty first set counts as complete
		synctest.Wait()
		got := received(m)
		require.Len(t, got, 1)
		require.Equal(t, map[Key]*Group{{"a", "x"}: group("x", "1:1")}, got[0])
	})
}

func TestManagerKeepsLatestPerSourceAndDeletes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newChanDiscoverer()
		m, stop := startManager(t, time.Second, map[string]Discoverer{"p": d})
		defer stop()

		d.in <- []*Group{group("x", "1:1"), group("y", "2:2")}
		synctest.Wait()
		require.Len(t, received(m), 1)

		time.Sleep(time.Second)
		d.in <- []*Group{group("x", "1:2"), {Source: "y"}}
		synctest.Wait()
		got := received(m)
		require.Len(t, got, 1)
		require.Equal(t, map[Key]*Group{{"p", "x"}: group("x", "1:2")}, got[0])
	})
}

func TestManagerLeadingEdgeThenCoalesce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newChanDiscoverer()
		m, stop := startManager(t, 500*time.Millisecond, map[string]Discoverer{"p": d})
		defer stop()

		d.in <- []*Group{group("x", "1:1")}
		synctest.Wait()
		require.Len(t, received(m), 1)

		// After a quiet period, a single change is handed out without any
		// (fake) time passing.
		time.Sleep(10 * time.Second)
		start := time.Now()
		d.in <- []*Group{group("x", "1:2")}
		synctest.Wait()
		require.Len(t, received(m), 1)
		require.Zero(t, time.Since(start), "the leading edge is not delayed")

		// A burst of 1,000 changes over one second gives few hand-outs, and
		// the last one holds the final state.
		time.Sleep(10 * time.Second)
		var handed []map[Key]*Group
		for i := range 1000 {
			d.in <- []*Group{group("x", fmt.Sprintf("burst:%d", i))}
			time.Sleep(time.Millisecond)
			handed = append(handed, received(m)...)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		handed = append(handed, received(m)...)
		require.LessOrEqual(t, len(handed), 4, "one second of changes at a 500ms interval")
		require.Equal(t, group("x", "burst:999"), handed[len(handed)-1][Key{"p", "x"}])

		updates, out := m.Stats()
		require.Greater(t, updates, out)
	})
}

func TestManagerReturnsWhenCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newChanDiscoverer()
		_, stop := startManager(t, time.Second, map[string]Discoverer{"p": d})
		// Nobody reads SyncCh: the hand-out must not block shutdown.
		d.in <- []*Group{group("x", "1:1")}
		synctest.Wait()
		stop()
	})
}
