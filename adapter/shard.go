package adapter

import (
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

// sharder splits full sets of groups into shards by target address. It
// keeps each group's split until the group changes, so the writers' caches
// (which compare groups by identity) keep working.
type sharder struct {
	n     int
	cache map[Key]*split
}

type split struct {
	src   *Group
	parts []*Group // one per shard; nil where the group has no target
}

func newSharder(n int) *sharder { return &sharder{n: n, cache: map[Key]*split{}} }

// split returns one set per shard.
func (s *sharder) split(set map[Key]*Group) []map[Key]*Group {
	out := make([]map[Key]*Group, s.n)
	for i := range out {
		out[i] = map[Key]*Group{}
	}
	for k := range s.cache {
		if _, ok := set[k]; !ok {
			delete(s.cache, k)
		}
	}
	for k, g := range set {
		sp := s.cache[k]
		if sp == nil || sp.src != g {
			sp = &split{src: g, parts: make([]*Group, s.n)}
			for _, t := range g.Targets {
				addr, ok := t[model.AddressLabel]
				if !ok {
					addr = g.Labels[model.AddressLabel]
				}
				i := ShardOf(string(addr), s.n)
				if sp.parts[i] == nil {
					sp.parts[i] = &Group{Source: g.Source, Labels: g.Labels}
				}
				sp.parts[i].Targets = append(sp.parts[i].Targets, t)
			}
			s.cache[k] = sp
		}
		for i, p := range sp.parts {
			if p != nil {
				out[i][k] = p
			}
		}
	}
	return out
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
