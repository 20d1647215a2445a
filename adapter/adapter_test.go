package adapter

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestNewRejectsBadInput(t *testing.T) {
	t.Parallel()
	_, err := New(filepath.Join(t.TempDir(), "x.json"), nil, Options{})
	require.ErrorContains(t, err, "no discoverers")
	_, err = New(t.TempDir(), map[string]Discoverer{"p": newChanDiscoverer()}, Options{})
	require.ErrorContains(t, err, "is a directory")
}

func TestAdapterWritesOnlyCompleteSetsAndRetriesFailedWrites(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "not-yet")
	path := filepath.Join(dir, "out.json")
	a1, a2 := newChanDiscoverer(), newChanDiscoverer()
	a, err := New(path, map[string]Discoverer{"a": a1, "b": a2}, Options{Interval: time.Millisecond})
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()

	a1.in <- []*Group{group("x", "127.0.0.1:1")}
	require.False(t, a.Ready(), "b has not sent its first set")
	require.Nil(t, a.Targets(), "no complete set yet")

	// The output directory is missing: the write fails and is retried. The
	// complete set is already there for HTTP SD.
	a2.in <- []*Group{group("y", "127.0.0.1:2")}
	failures := a.metrics.writes.WithLabelValues("failure")
	require.Eventually(t, func() bool { return testutil.ToFloat64(failures) >= 2 }, 20*time.Second, 10*time.Millisecond, "failed writes are counted and retried")
	require.False(t, a.Ready())
	require.NotNil(t, a.Targets())
	require.Equal(t, 2, a.Targets().Targets())
	require.Equal(t, 2.0, testutil.ToFloat64(a.metrics.targets))
	require.Zero(t, testutil.ToFloat64(a.metrics.lastWrite))
	require.NoError(t, os.Mkdir(dir, 0o755))
	require.Eventually(t, a.Ready, 20*time.Second, 10*time.Millisecond)
	require.Equal(t, 1.0, testutil.ToFloat64(a.metrics.writes.WithLabelValues("success")))
	require.Positive(t, testutil.ToFloat64(a.metrics.lastWrite))

	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Contains(t, string(b), "127.0.0.1:1")
	require.Contains(t, string(b), "127.0.0.1:2")
	require.EqualValues(t, 1, a.Writes())

	cancel()
	require.NoError(t, <-done)
}

func TestAdapterHoldsBackAMassRemoval(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "out.json")
	d := newChanDiscoverer()
	a, err := New(path, map[string]Discoverer{"p": d}, Options{Interval: time.Millisecond, RemovalHold: time.Hour})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()

	d.in <- []*Group{group("web", "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4"), group("db", "127.0.0.1:9")}
	require.Eventually(t, a.Ready, 10*time.Second, time.Millisecond)
	good, err := os.ReadFile(path)
	require.NoError(t, err)
	kept := a.Targets()

	// Four of five targets go: held back, in the file and in HTTP SD.
	d.in <- []*Group{{Source: "web"}}
	require.Eventually(t, func() bool { return testutil.ToFloat64(a.metrics.guardHolding) == 1 }, 10*time.Second, time.Millisecond)
	require.Equal(t, 4.0, testutil.ToFloat64(a.metrics.guardRemoved))
	require.Equal(t, 1.0, testutil.ToFloat64(a.metrics.guardHolds))
	now, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, string(good), string(now))
	require.Same(t, kept, a.Targets())

	// One comes back: three of five still gone, still held.
	d.in <- []*Group{group("web", "127.0.0.1:1")}
	require.Eventually(t, func() bool { return testutil.ToFloat64(a.metrics.guardRemoved) == 3 }, 10*time.Second, time.Millisecond)
	require.Same(t, kept, a.Targets())

	// Two more come back, one new: two of five gone is within the share;
	// the guard lets go.
	d.in <- []*Group{group("web", "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:5")}
	require.Eventually(t, func() bool { return testutil.ToFloat64(a.metrics.guardHolding) == 0 }, 10*time.Second, time.Millisecond)
	require.Equal(t, 4, a.Targets().Targets())
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(path)
		return err == nil && strings.Contains(string(b), "127.0.0.1:5")
	}, 10*time.Second, time.Millisecond, "the file follows")

	cancel()
	require.NoError(t, <-done)
}

func TestAdapterGuardsAFileFromAnEarlierRun(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "out.json")
	old := `[{"targets":["127.0.0.1:1","127.0.0.1:2"],"labels":{}}]` + "\n"
	require.NoError(t, os.WriteFile(path, []byte(old), 0o644))
	d := newChanDiscoverer()
	a, err := New(path, map[string]Discoverer{"p": d}, Options{Interval: time.Millisecond, RemovalHold: 50 * time.Millisecond})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()

	// An empty first set is held against the file on disk, then applied
	// once it has lasted for the hold time, with no new update needed.
	d.in <- []*Group{}
	require.Eventually(t, func() bool { return testutil.ToFloat64(a.metrics.guardHolds) == 1 }, 10*time.Second, time.Millisecond)
	require.Eventually(t, a.Ready, 10*time.Second, time.Millisecond)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "[]\n", string(b))

	cancel()
	require.NoError(t, <-done)
}
