package adapter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"io/fs"
	"os"
	"slices"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

// writer keeps a file_sd file in step with full sets of groups. It caches
// each group's converted entries and their encoding, so an update re-encodes
// only the groups that changed, and it writes only when the bytes differ from
// what the file already holds.
type writer struct {
	path   string
	mode   os.FileMode
	logger log.Logger
	ops    fileOps

	cache    map[Key]*cachedGroup
	keys     []Key // keys of cache, sorted
	seed     maphash.Seed
	written  *content  // the file's content as last written, or as found at start; nil if unknown
	baseline int       // targets in the file found at start; -1 if none or unreadable
	pending  *Snapshot // content not yet on disk, or nil
	latest   *Snapshot // the cache, rendered
	current  *Snapshot // what the file holds or is about to
}

// content identifies a file's content without keeping it: its length and
// a 64-bit hash (seeded per process), so that unchanged content is not
// rewritten.
type content struct {
	size int
	hash uint64
}

// contentOf hashes what write produces.
func (w *writer) contentOf(write func(io.Writer) (int64, error)) content {
	var h maphash.Hash
	h.SetSeed(w.seed)
	n, _ := write(&h) // a maphash.Hash never fails
	return content{size: int(n), hash: h.Sum64()}
}

// cachedGroup is a group as last converted. Only its encoding is kept: the
// label maps of a converted group take several times the memory of its
// JSON, and the encoding is deterministic, so comparing encodings is as
// exact as comparing entries.
type cachedGroup struct {
	group   *Group
	chunk   []byte // the group's entries encoded, one per line, without the final separator
	targets int
}

// newWriter prepares to write path. It refuses a path that is a directory,
// removes temporary files a killed predecessor left next to it, and reads the
// current content so that an unchanged file is not rewritten after a restart.
func newWriter(path string, mode os.FileMode, logger log.Logger) (*writer, error) {
	w := &writer{path: path, mode: mode, logger: logger, ops: osFileOps, cache: map[Key]*cachedGroup{}, baseline: -1, seed: maphash.MakeSeed()}
	fi, err := os.Stat(path)
	switch {
	case err == nil && fi.IsDir():
		return nil, fmt.Errorf("output file %s is a directory", path)
	case err == nil:
		data, err := os.ReadFile(path)
		if err != nil {
			level.Warn(logger).Log("msg", "Cannot read the current output file; it will be replaced", "path", path, "err", err)
			break
		}
		found := w.contentOf(bytes.NewReader(data).WriteTo)
		w.written = &found
		w.baseline = countTargets(data)
	case !errors.Is(err, fs.ErrNotExist):
		level.Warn(logger).Log("msg", "Cannot stat the output file", "path", path, "err", err)
	}
	removed, err := removeStaleTemps(path)
	for _, r := range removed {
		level.Info(logger).Log("msg", "Removed a temporary file left by an earlier run", "path", r)
	}
	if err != nil {
		level.Warn(logger).Log("msg", "Cannot clean up temporary files", "err", err)
	}
	return w, nil
}

// update applies a full set of groups and writes the file if its content
// changed. It reports whether it wrote, and how many targets were left out
// because Prometheus would reject them. After an error the new content stays
// pending and flush retries it.
func (w *writer) update(set map[Key]*Group) (wrote bool, skipped int, err error) {
	snap, skipped := w.prepare(set)
	wrote, err = w.commit(snap)
	return wrote, skipped, err
}

// prepare converts a full set of groups and returns it rendered: a new
// Snapshot if anything changed, else the previous one. It reports how many
// targets were left out because Prometheus would reject them. Nothing is
// written.
func (w *writer) prepare(set map[Key]*Group) (*Snapshot, int) {
	changed, skipped := w.apply(set)
	if changed || w.latest == nil {
		w.latest = w.snapshot()
	}
	return w.latest, skipped
}

// commit makes snap the file's content and writes it if it differs from
// what is on disk.
func (w *writer) commit(snap *Snapshot) (bool, error) {
	if snap != w.current {
		w.current, w.pending = snap, snap
	}
	return w.flush()
}

// flush writes pending content, if any.
func (w *writer) flush() (bool, error) {
	if w.pending == nil {
		return false, nil
	}
	next := w.contentOf(w.pending.WriteTo)
	if w.written != nil && *w.written == next {
		w.pending = nil
		return false, nil
	}
	if err := writeAtomic(w.ops, w.path, w.pending, w.mode); err != nil {
		return false, err
	}
	w.written, w.pending = &next, nil
	return true, nil
}

// apply diffs set against the cache and reports whether any group changed
// and how many targets of the changed groups were left out.
func (w *writer) apply(set map[Key]*Group) (changed bool, skipped int) {
	keysChanged := false
	for k := range w.cache {
		if _, ok := set[k]; !ok {
			delete(w.cache, k)
			changed, keysChanged = true, true
		}
	}
	for k, g := range set {
		c, ok := w.cache[k]
		if ok && c.group == g {
			continue
		}
		entries, rejected := toFileSD(g)
		for _, err := range rejected {
			level.Warn(w.logger).Log("msg", "Skipping a target Prometheus would reject", "err", err)
		}
		skipped += len(rejected)
		chunk, targets := encodeGroup(entries)
		if ok && bytes.Equal(c.chunk, chunk) {
			c.group = g
			continue
		}
		w.cache[k] = &cachedGroup{group: g, chunk: chunk, targets: targets}
		changed = true
		keysChanged = keysChanged || !ok
	}
	if keysChanged {
		w.keys = w.keys[:0]
		for k := range w.cache {
			w.keys = append(w.keys, k)
		}
		slices.SortFunc(w.keys, compareKeys)
	}
	return changed, skipped
}

// countTargets counts the targets in file_sd content, or returns -1 if it
// does not parse.
func countTargets(data []byte) int {
	var entries []struct {
		Targets []string `json:"targets"`
	}
	if json.Unmarshal(data, &entries) != nil {
		return -1
	}
	n := 0
	for _, e := range entries {
		n += len(e.Targets)
	}
	return n
}

// snapshot captures the cache as a Snapshot and renders it.
func (w *writer) snapshot() *Snapshot {
	chunks := make([][]byte, len(w.keys))
	targets := 0
	for i, k := range w.keys {
		c := w.cache[k]
		chunks[i] = c.chunk
		targets += c.targets
	}
	return newSnapshot(slices.Clone(w.keys), chunks, targets)
}
