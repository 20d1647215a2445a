package adapter

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"

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

func TestEncodeSplitsByShard(t *testing.T) {
	t.Parallel()
	web := group("web", "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4", "127.0.0.1:5")
	enc, skipped := encode(web, 3)
	require.Empty(t, skipped)
	require.Len(t, enc.chunks, 3)
	var all []string
	total := 0
	for i, chunk := range enc.chunks {
		var entries []fileSDEntry
		require.NoError(t, json.Unmarshal(append(append([]byte("["), chunk...), ']'), &entries))
		n := 0
		for _, e := range entries {
			for _, addr := range e.Targets {
				require.Equal(t, i, ShardOf(addr, 3), "%s is in the shard hashmod gives it", addr)
				all = append(all, addr)
				n++
			}
		}
		require.Equal(t, n, enc.targets[i])
		total += n
	}
	slices.Sort(all)
	require.Equal(t, []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4", "127.0.0.1:5"}, all, "the union is the whole group")
	require.Equal(t, 5, total)
}

func TestAdapterWritesShards(t *testing.T) {
	var addrs []string
	for i := range 20 {
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", 9000+i))
	}
	t.Run("every shard", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out.json")
			d := newChanDiscoverer()
			a, err := New(path, map[string]Discoverer{"p": d}, Options{Shards: 3})
			require.NoError(t, err)
			startAdapter(t, a)
			d.in <- []*Group{group("web", addrs...)}
			synctest.Wait()
			require.True(t, a.Ready())

			var all []string
			for i := range 3 {
				b := readFile(t, ShardPath(path, i))
				for _, addr := range addrs {
					if ShardOf(addr, 3) == i {
						require.Contains(t, b, `"`+addr+`"`)
						all = append(all, addr)
					} else {
						require.NotContains(t, b, `"`+addr+`"`)
					}
				}
			}
			require.Len(t, all, len(addrs))
			require.Equal(t, len(addrs), a.Snapshot().Targets(), "the snapshot holds every shard")
			_, err = os.Stat(path)
			require.ErrorIs(t, err, os.ErrNotExist, "no unsharded file")
		})
	})
	t.Run("one shard, to the path as given", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			one := filepath.Join(t.TempDir(), "one.json")
			d := newChanDiscoverer()
			a, err := New(one, map[string]Discoverer{"p": OnlyShard(d, 2, 3)}, Options{})
			require.NoError(t, err)
			startAdapter(t, a)
			d.in <- []*Group{group("web", addrs...)}
			synctest.Wait()
			require.True(t, a.Ready())
			b := readFile(t, one)
			for _, addr := range addrs {
				require.Equal(t, ShardOf(addr, 3) == 2, strings.Contains(b, `"`+addr+`"`), addr)
			}
		})
	})
}
