package adapter

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

func TestShardPath(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		path string
		i    int
		want string
	}{
		{"custom_sd.json", 0, "custom_sd.0.json"},
		{"/etc/prometheus/sd/consul.json", 3, "/etc/prometheus/sd/consul.3.json"},
		{"targets", 1, "targets.1"},
	} {
		require.Equal(t, tc.want, ShardPath(tc.path, tc.i))
	}
}

func TestShardOfIsStableAndSpreads(t *testing.T) {
	t.Parallel()
	counts := make([]int, 4)
	for i := range 4000 {
		addr := fmt.Sprintf("10.0.%d.%d:9100", i/250, i%250)
		s := ShardOf(addr, 4)
		require.Equal(t, s, ShardOf(addr, 4), "stable")
		counts[s]++
	}
	for i, c := range counts {
		require.InDelta(t, 1000, c, 150, "shard %d gets about a quarter", i)
	}
}

func TestSharderSplitsAndKeepsSplits(t *testing.T) {
	t.Parallel()
	s := newSharder(3)
	web := group("web", "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4", "127.0.0.1:5")
	db := group("db", "127.0.0.2:1")
	set := map[Key]*Group{{"p", "web"}: web, {"p", "db"}: db}
	parts := s.split(set)
	var all []string
	for i, part := range parts {
		for _, g := range part {
			for _, tg := range g.Targets {
				addr := string(tg[model.AddressLabel])
				require.Equal(t, i, ShardOf(addr, 3), "%s is in the shard hashmod gives it", addr)
				all = append(all, addr)
			}
		}
	}
	slices.Sort(all)
	require.Equal(t, []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4", "127.0.0.1:5", "127.0.0.2:1"}, all, "the union is the whole set")

	// An unchanged group keeps its parts, so writers see the same pointers.
	again := s.split(map[Key]*Group{{"p", "web"}: web})
	for i := range parts {
		require.Same(t, parts[i][Key{"p", "web"}], again[i][Key{"p", "web"}])
		require.NotContains(t, again[i], Key{"p", "db"})
	}
}

func TestAdapterWritesShards(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "out.json")
	var addrs []string
	for i := range 20 {
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", 9000+i))
	}
	d := newChanDiscoverer()
	a, err := New(path, map[string]Discoverer{"p": d}, Options{Interval: time.Millisecond, Shards: 3})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	d.in <- []*Group{group("web", addrs...)}
	require.Eventually(t, a.Ready, 10*time.Second, time.Millisecond)

	var all []string
	for i := range 3 {
		b, err := os.ReadFile(ShardPath(path, i))
		require.NoError(t, err)
		for _, addr := range addrs {
			if ShardOf(addr, 3) == i {
				require.Contains(t, string(b), `"`+addr+`"`)
				all = append(all, addr)
			} else {
				require.NotContains(t, string(b), `"`+addr+`"`)
			}
		}
	}
	require.Len(t, all, len(addrs))
	require.Equal(t, len(addrs), a.Targets().Targets(), "HTTP SD serves every shard")
	_, err = os.Stat(path)
	require.ErrorIs(t, err, os.ErrNotExist, "no unsharded file")
	cancel()
	require.NoError(t, <-done)

	// One shard only, to the path as given.
	one := filepath.Join(dir, "one.json")
	d = newChanDiscoverer()
	a, err = New(one, map[string]Discoverer{"p": d}, Options{Interval: time.Millisecond, Shards: 3, OneShard: true, Shard: 2})
	require.NoError(t, err)
	ctx, cancel = context.WithCancel(t.Context())
	go func() { done <- a.Run(ctx) }()
	d.in <- []*Group{group("web", addrs...)}
	require.Eventually(t, a.Ready, 10*time.Second, time.Millisecond)
	b, err := os.ReadFile(one)
	require.NoError(t, err)
	for _, addr := range addrs {
		require.Equal(t, ShardOf(addr, 3) == 2, strings.Contains(string(b), `"`+addr+`"`), addr)
	}
	cancel()
	require.NoError(t, <-done)

	_, err = New(one, map[string]Discoverer{"p": d}, Options{Shards: 3, OneShard: true, Shard: 3})
	require.ErrorContains(t, err, "shard 3 of 3 does not exist")
}
