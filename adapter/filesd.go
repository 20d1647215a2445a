package adapter

import (
	"bytes"
	"fmt"
	"slices"
	"sort"
	"unicode/utf8"

	"github.com/prometheus/common/model"
)

// customSD is one entry of a file_sd file: targets sharing one label set.
type customSD struct {
	Targets []string
	Labels  model.LabelSet
	labels  []byte // Labels encoded as a JSON object, names sorted
}

// encoded is a group converted to file_sd entries and encoded, split into
// shards. It is immutable: writers and snapshots share its chunks.
type encoded struct {
	chunks  [][]byte // per shard: the entries, one per line, without a final separator; nil if none
	targets []int    // per shard
}

// encode converts g into file_sd entries and encodes them, split into
// shards by target address (all in shard 0 when shards is 1). Targets that
// Prometheus would reject are left out and reported in skipped.
func encode(g *Group, shards int) (enc *encoded, skipped []error) {
	parts := [][]model.LabelSet{g.Targets}
	if shards > 1 {
		parts = make([][]model.LabelSet, shards)
		for _, t := range g.Targets {
			addr, ok := t[model.AddressLabel]
			if !ok {
				addr = g.Labels[model.AddressLabel]
			}
			i := ShardOf(string(addr), shards)
			parts[i] = append(parts[i], t)
		}
	}
	enc = &encoded{chunks: make([][]byte, len(parts)), targets: make([]int, len(parts))}
	for i, targets := range parts {
		entries, rejected := toFileSD(g.Source, g.Labels, targets)
		skipped = append(skipped, rejected...)
		if len(entries) > 0 {
			enc.chunks[i], enc.targets[i] = encodeGroup(entries)
		}
	}
	return enc, skipped
}

// toFileSD converts targets of a group into file_sd entries. Targets whose
// merged label sets are equal share one entry; each entry's targets are
// sorted, and entries are ordered by their first target, then by labels.
// Targets that Prometheus would reject (no address, an invalid label name or
// value) are left out and reported in skipped.
func toFileSD(source string, labels model.LabelSet, targets []model.LabelSet) (entries []*customSD, skipped []error) {
	byLabels := map[string]*customSD{}
	for _, t := range targets {
		merged := make(model.LabelSet, len(labels)+len(t))
		for n, v := range labels {
			merged[n] = v
		}
		for n, v := range t {
			merged[n] = v
		}
		addr := string(merged[model.AddressLabel])
		delete(merged, model.AddressLabel)
		if err := validTarget(addr, merged); err != nil {
			skipped = append(skipped, fmt.Errorf("source %q: %w", source, err))
			continue
		}
		enc := appendLabels(nil, merged)
		e, ok := byLabels[string(enc)]
		if !ok {
			e = &customSD{Labels: merged, labels: enc}
			byLabels[string(enc)] = e
			entries = append(entries, e)
		}
		e.Targets = append(e.Targets, addr)
	}
	for _, e := range entries {
		slices.Sort(e.Targets)
		e.Targets = slices.Compact(e.Targets)
	}
	sort.Slice(entries, func(i, j int) bool {
		if c := slices.Compare(entries[i].Targets, entries[j].Targets); c != 0 {
			return c < 0
		}
		return bytes.Compare(entries[i].labels, entries[j].labels) < 0
	})
	return entries, skipped
}

// validTarget reports why Prometheus's file_sd loader would refuse a target.
// Label names are checked against the classic pattern [a-zA-Z_][a-zA-Z0-9_]*
// so the file loads in Prometheus 2 as well as 3.
func validTarget(addr string, labels model.LabelSet) error {
	if addr == "" {
		return fmt.Errorf("target has no %s label", model.AddressLabel)
	}
	if !utf8.ValidString(addr) {
		return fmt.Errorf("target address %q is not valid UTF-8", addr)
	}
	for n, v := range labels {
		if !validLabelName(string(n)) {
			return fmt.Errorf("target %s: invalid label name %q", addr, n)
		}
		if !utf8.ValidString(string(v)) {
			return fmt.Errorf("target %s: label %s has a value that is not valid UTF-8", addr, n)
		}
	}
	return nil
}

func validLabelName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' && i > 0 {
			continue
		}
		return false
	}
	return true
}

// encodeGroup encodes a converted group's entries, one per line, and counts
// their targets. The result is sized exactly, as it is kept in the cache.
func encodeGroup(entries []*customSD) (chunk []byte, targets int) {
	size := 0
	for _, e := range entries {
		size += 2 + len(`{"targets":[],"labels":}`) + len(e.labels) + 2
		for _, t := range e.Targets {
			size += len(t) + 3
		}
	}
	chunk = make([]byte, 0, size)
	for i, e := range entries {
		if i > 0 {
			chunk = append(chunk, ",\n"...)
		}
		chunk = append(chunk, "  "...)
		chunk = appendEntry(chunk, e)
		targets += len(e.Targets)
	}
	return chunk, targets
}

// appendEntry appends one entry as a single-line JSON object.
func appendEntry(buf []byte, e *customSD) []byte {
	buf = append(buf, `{"targets":[`...)
	for i, t := range e.Targets {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendString(buf, t)
	}
	buf = append(buf, `],"labels":`...)
	buf = append(buf, e.labels...)
	return append(buf, '}')
}

// appendLabels appends a label set as a JSON object with sorted names.
func appendLabels(buf []byte, ls model.LabelSet) []byte {
	names := make([]string, 0, len(ls))
	for n := range ls {
		names = append(names, string(n))
	}
	slices.Sort(names)
	buf = append(buf, '{')
	for i, n := range names {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendString(buf, n)
		buf = append(buf, ':')
		buf = appendString(buf, string(ls[model.LabelName(n)]))
	}
	return append(buf, '}')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Callers pass valid UTF-8.
func appendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		buf = append(buf, s[start:i]...)
		switch c {
		case '"', '\\':
			buf = append(buf, '\\', c)
		case '\n':
			buf = append(buf, '\\', 'n')
		case '\r':
			buf = append(buf, '\\', 'r')
		case '\t':
			buf = append(buf, '\\', 't')
		default:
			buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}
