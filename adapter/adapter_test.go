package adapter

import (
	"context"
	"os"
	"path/filepath"
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
