package adapter

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/go-kit/log"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

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

// startAdapter runs a until the test ends; stop cancels it and waits.
func startAdapter(t *testing.T, a *Adapter) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { a.Run(ctx) })
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

func newTestWriter(t testing.TB, path string, mode os.FileMode) *writer {
	t.Helper()
	w, err := newWriter(path, 0, mode, log.NewNopLogger())
	require.NoError(t, err)
	return w
}

// encodeSet encodes groups as the manager does, in one shard.
func encodeSet(t testing.TB, set map[Key]*Group) map[Key]*encoded {
	t.Helper()
	out := make(map[Key]*encoded, len(set))
	for k, g := range set {
		enc, _ := encode(g, 1)
		out[k] = enc
	}
	return out
}

// writeSet renders set and writes it as the output does.
func writeSet(t testing.TB, w *writer, set map[Key]*Group) (bool, error) {
	t.Helper()
	return w.write(w.render(encodeSet(t, set)), nil)
}

func oneGroup(addr string) map[Key]*Group {
	return map[Key]*Group{{"p", "s"}: {Source: "s", Targets: []model.LabelSet{{model.AddressLabel: model.LabelValue(addr)}}}}
}

// tempFiles lists the writer's temporary files in dir.
func tempFiles(t *testing.T, dir, base string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "."+base+".tmp-*"))
	require.NoError(t, err)
	return m
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}
