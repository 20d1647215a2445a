package adapter

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

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

	// The output directory is missing: the write fails and is retried.
	a2.in <- []*Group{group("y", "127.0.0.1:2")}
	require.Never(t, a.Ready, 200*time.Millisecond, 10*time.Millisecond)
	require.NoError(t, os.Mkdir(dir, 0o755))
	require.Eventually(t, a.Ready, 20*time.Second, 10*time.Millisecond)

	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Contains(t, string(b), "127.0.0.1:1")
	require.Contains(t, string(b), "127.0.0.1:2")
	require.EqualValues(t, 1, a.Writes())

	cancel()
	require.NoError(t, <-done)
}
