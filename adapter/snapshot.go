package adapter

// Snapshot is one complete set of targets as the adapter last converted it,
// encoded in the JSON format that Prometheus's file_sd_configs and
// http_sd_configs both read. It is immutable and safe to share.
type Snapshot struct {
	keys    []Key    // sorted
	chunks  [][]byte // chunks[i] holds the entries of keys[i], possibly none
	data    []byte   // the whole set, rendered
	targets int
	parts   []*Snapshot // for a merge of shards: the shards' snapshots
}

// JSON returns the whole set: a JSON array with one entry per line, groups
// in key order. It is the output file's content byte for byte. The caller
// must not modify it.
func (s *Snapshot) JSON() []byte { return s.data }

// Targets reports how many targets the set holds.
func (s *Snapshot) Targets() int { return s.targets }

// Groups reports how many groups the set holds.
func (s *Snapshot) Groups() int { return len(s.keys) }

// Filter renders only the groups that keep accepts, in the same format.
func (s *Snapshot) Filter(keep func(Key) bool) []byte {
	return s.render(keep)
}

// render assembles the groups that keep accepts (all of them for a nil keep)
// into one JSON array.
func (s *Snapshot) render(keep func(Key) bool) []byte {
	size := 4
	for i, c := range s.chunks {
		if keep == nil || keep(s.keys[i]) {
			size += len(c) + 2
		}
	}
	buf := make([]byte, 0, size)
	buf = append(buf, '[')
	first := true
	for i, chunk := range s.chunks {
		if len(chunk) == 0 || (keep != nil && !keep(s.keys[i])) {
			continue
		}
		if first {
			buf = append(buf, '\n')
			first = false
		} else {
			buf = append(buf, ",\n"...)
		}
		buf = append(buf, chunk...)
	}
	if !first {
		buf = append(buf, '\n')
	}
	return append(buf, "]\n"...)
}
