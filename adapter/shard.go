package adapter

import (
	"context"
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/prometheus/common/model"
)

// ShardOf returns the shard, out of n, of a target address: the value
// Prometheus's relabel action hashmod gives for source_labels
// [__address__] and modulus n (the last 8 bytes of the address's MD5, big
// endian, modulo n). So a Prometheus that keeps only its hashmod share
// reads exactly its shard.
func ShardOf(address string, n int) int {
	sum := md5.Sum([]byte(address))
	return int(binary.BigEndian.Uint64(sum[8:]) % uint64(n))
}

// ShardPath names the file of shard i: the shard number goes before the
// extension, so custom_sd.json becomes custom_sd.0.json, custom_sd.1.json...
func ShardPath(path string, i int) string {
	ext := filepath.Ext(path)
	return fmt.Sprintf("%s.%d%s", strings.TrimSuffix(path, ext), i, ext)
}

// OnlyShard returns a Discoverer that passes on the targets of d whose
// address is in shard i of n (see ShardOf), for an adapter that writes one
// shard to a file of its own.
func OnlyShard(d Discoverer, i, n int) Discoverer {
	return shardFilter{d: d, i: i, n: n}
}

type shardFilter struct {
	d    Discoverer
	i, n int
}

// Staged implements Staged: the filter sends its discoverer's initial set
// as the discoverer does.
func (f shardFilter) Staged() bool { return staged(f.d) }

func (f shardFilter) Run(ctx context.Context, up chan<- []*Group) {
	in := make(chan []*Group)
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.d.Run(ctx, in)
	}()
	defer func() { <-done }()
	for {
		select {
		case <-ctx.Done():
			return
		case groups := <-in:
			out := make([]*Group, len(groups))
			for j, g := range groups {
				out[j] = f.keep(g)
			}
			select {
			case up <- out:
			case <-ctx.Done():
				return
			}
		}
	}
}

// keep returns g with only the targets of the shard.
func (f shardFilter) keep(g *Group) *Group {
	if g == nil || g == Complete || g == Settled {
		return g
	}
	kept := &Group{Source: g.Source, Labels: g.Labels}
	for _, t := range g.Targets {
		addr, ok := t[model.AddressLabel]
		if !ok {
			addr = g.Labels[model.AddressLabel]
		}
		if ShardOf(string(addr), f.n) == f.i {
			kept.Targets = append(kept.Targets, t)
		}
	}
	return kept
}

// mergeSnapshots joins the snapshots of every shard into one set, shard
// after shard, for HTTP SD.
func mergeSnapshots(snaps []*Snapshot) *Snapshot {
	var (
		keys    []Key
		chunks  [][]byte
		targets int
	)
	for _, s := range snaps {
		keys = append(keys, s.keys...)
		chunks = append(chunks, s.chunks...)
		targets += s.targets
	}
	return newSnapshot(keys, chunks, targets)
}
