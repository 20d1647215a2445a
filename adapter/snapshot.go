package adapter

import (
	"bufio"
	"bytes"
	"io"
)

// Snapshot is one complete set of targets as the adapter last converted it,
// encoded in the JSON format that Prometheus's file_sd_configs and
// http_sd_configs both read. It is immutable and safe to share.
//
// It holds each group's encoding, as cached by the writer, and never the
// whole rendering: at 100,000 targets that is over 30 MB, and a copy of it
// per snapshot would double the writer's memory. WriteTo streams it.
type Snapshot struct {
	keys    []Key    // sorted
	chunks  [][]byte // chunks[i] holds the entries of keys[i], possibly none
	size    int      // length of the rendering
	targets int
	parts   []*Snapshot // for a merge of shards: the shards' snapshots
}

// newSnapshot returns the snapshot of keys and their chunks.
func newSnapshot(keys []Key, chunks [][]byte, targets int) *Snapshot {
	s := &Snapshot{keys: keys, chunks: chunks, targets: targets}
	s.size, _ = s.render(nil, io.Discard)
	return s
}

// JSON returns the whole set: a JSON array with one entry per line, groups
// in key order. It is the output file's content byte for byte. Each call
// renders it anew; WriteTo avoids the copy.
func (s *Snapshot) JSON() []byte {
	var buf bytes.Buffer
	buf.Grow(s.size)
	_, _ = s.render(nil, &buf)
	return buf.Bytes()
}

// WriteTo writes the whole set to w, as JSON returns it.
func (s *Snapshot) WriteTo(w io.Writer) (int64, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	n, err := s.render(nil, bw)
	if err == nil {
		err = bw.Flush()
	}
	return int64(n), err
}

// Size is the length of the whole set's rendering, in bytes.
func (s *Snapshot) Size() int { return s.size }

// Targets reports how many targets the set holds.
func (s *Snapshot) Targets() int { return s.targets }

// Groups reports how many groups the set holds.
func (s *Snapshot) Groups() int { return len(s.keys) }

// Filter renders only the groups that keep accepts, in the same format.
func (s *Snapshot) Filter(keep func(Key) bool) []byte {
	var buf bytes.Buffer
	_, _ = s.render(keep, &buf)
	return buf.Bytes()
}

// render writes the groups that keep accepts (all of them for a nil keep)
// to w as one JSON array, and returns the bytes written.
func (s *Snapshot) render(keep func(Key) bool, w io.Writer) (int, error) {
	n := 0
	write := func(b []byte) error {
		m, err := w.Write(b)
		n += m
		return err
	}
	if err := write([]byte{'['}); err != nil {
		return n, err
	}
	first := true
	for i, chunk := range s.chunks {
		if len(chunk) == 0 || (keep != nil && !keep(s.keys[i])) {
			continue
		}
		sep := []byte(",\n")
		if first {
			sep, first = sep[1:], false
		}
		if err := write(sep); err != nil {
			return n, err
		}
		if err := write(chunk); err != nil {
			return n, err
		}
	}
	end := []byte("\n]\n")
	if first {
		end = end[1:]
	}
	return n, write(end)
}
