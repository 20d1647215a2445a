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
	"syscall"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

// writer keeps one file_sd file in step with complete sets of encoded
// groups. It renders a set into a Snapshot, reusing the previous one when no
// group changed, and writes a snapshot only when its bytes differ from what
// the file holds.
type writer struct {
	path   string
	mode   os.FileMode
	logger log.Logger
	ops    fileOps

	shard    int                   // which shard of each encoded group this file holds
	groups   map[Key]renderedGroup // the set last rendered
	keys     []Key                 // keys of groups, sorted
	rendered *Snapshot             // the set last rendered; nil before the first
	seed     maphash.Seed          // for hashing content
	onDisk   *content              // the file's content as last written or found at start; nil if unknown
	baseline int                   // targets in the file found at start; -1 if none or unreadable
}

// renderedGroup is one group of a rendered set: its encoding, shared with
// the encoded group it came from.
type renderedGroup struct {
	chunk   []byte
	targets int
}

// content identifies a file's content without keeping it: its length and
// a 64-bit hash (seeded per process).
type content struct {
	size int
	hash uint64
}

// maxOldOutput is the most of an existing output file newWriter reads: a
// larger file is replaced without comparing.
const maxOldOutput = 1 << 30

// newWriter prepares to write shard of each set to path. It refuses a path
// that is a directory or another file that is not a regular one (a named
// pipe, a device, a socket), and reads the current content, at most
// maxOldOutput of it, so that an unchanged file is not rewritten after a
// restart. It never blocks on opening the file. It changes nothing on
// disk: see cleanUp.
func newWriter(path string, shard int, mode os.FileMode, logger log.Logger) (*writer, error) {
	w := &writer{path: path, shard: shard, mode: mode, logger: logger, ops: osFileOps, groups: map[Key]renderedGroup{}, baseline: -1, seed: maphash.MakeSeed()}
	data, err := readOld(path)
	switch {
	case errors.Is(err, errNotRegular):
		return nil, err
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		level.Warn(logger).Log("msg", "Cannot read the current output file; it will be replaced", "path", path, "err", err)
	case data != nil:
		found := w.contentOf(bytes.NewReader(data).WriteTo)
		w.onDisk = &found
		w.baseline = countTargets(data)
	}
	return w, nil
}

var errNotRegular = errors.New("not a regular file")

// CheckOutputPath reports why the file at path cannot be an output: it is
// a directory, or exists and is not a regular file (a named pipe, a
// device, a socket). A path that does not exist can be one.
func CheckOutputPath(path string) error {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case !fi.Mode().IsRegular():
		return notRegular(path, fi.Mode())
	}
	return nil
}

// readOld reads an existing output file: nil content for one larger than
// maxOldOutput, an error wrapping errNotRegular for one that is not a
// regular file. It opens the file without blocking (a named pipe would
// block an open for reading until a writer came) and checks what it
// opened.
func readOld(path string) ([]byte, error) {
	if err := CheckOutputPath(path); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	switch {
	case err != nil:
		return nil, err
	case !fi.Mode().IsRegular(): // replaced since the Stat above
		return nil, notRegular(path, fi.Mode())
	case fi.Size() > maxOldOutput:
		return nil, nil
	}
	data, err := io.ReadAll(io.LimitReader(f, maxOldOutput+1))
	if err != nil || len(data) > maxOldOutput {
		return nil, err
	}
	return data, nil
}

func notRegular(path string, mode fs.FileMode) error {
	if mode.IsDir() {
		return fmt.Errorf("output file %s is a directory: %w", path, errNotRegular)
	}
	return fmt.Errorf("output file %s exists and is %s, %w", path, kindOf(mode), errNotRegular)
}

// kindOf names a file's type.
func kindOf(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "of type " + m.Type().String()
}

// cleanUp removes temporary files a killed predecessor left next to the
// output; an adapter does it when it starts to run.
func (w *writer) cleanUp() {
	removed, err := removeStaleTemps(w.path)
	for _, r := range removed {
		level.Info(w.logger).Log("msg", "Removed a temporary file left by an earlier run", "path", r)
	}
	if err != nil {
		level.Warn(w.logger).Log("msg", "Cannot clean up temporary files", "err", err)
	}
}

// render diffs a complete set against the set last rendered and returns it
// as a Snapshot: the previous one if no group changed. Unchanged groups are
// recognised by their shared encoding, changed ones by comparing bytes.
func (w *writer) render(set map[Key]*encoded) *Snapshot {
	changed, keysChanged := w.rendered == nil, false
	for k := range w.groups {
		if e, ok := set[k]; !ok || e.chunks[w.shard] == nil {
			delete(w.groups, k)
			changed, keysChanged = true, true
		}
	}
	for k, e := range set {
		chunk := e.chunks[w.shard]
		if chunk == nil {
			continue
		}
		old, ok := w.groups[k]
		if ok && sameBytes(old.chunk, chunk) {
			continue
		}
		w.groups[k] = renderedGroup{chunk: chunk, targets: e.targets[w.shard]}
		if ok && bytes.Equal(old.chunk, chunk) {
			continue // a new encoding of the same entries
		}
		changed = true
		keysChanged = keysChanged || !ok
	}
	if keysChanged {
		w.keys = w.keys[:0]
		for k := range w.groups {
			w.keys = append(w.keys, k)
		}
		slices.SortFunc(w.keys, compareKeys)
	}
	if changed {
		chunks := make([][]byte, len(w.keys))
		targets := 0
		for i, k := range w.keys {
			g := w.groups[k]
			chunks[i] = g.chunk
			targets += g.targets
		}
		w.rendered = newSnapshot(slices.Clone(w.keys), chunks, targets)
	}
	return w.rendered
}

// write replaces the file with snap unless the file already holds the same
// bytes, and reports whether it wrote; renamed, if not nil, is called once
// the new content is in place. After an error the old file is in place.
func (w *writer) write(snap *Snapshot, renamed func()) (bool, error) {
	next := w.contentOf(snap.WriteTo)
	if w.onDisk != nil && *w.onDisk == next {
		return false, nil
	}
	if err := writeAtomic(w.ops, w.path, snap, w.mode, renamed); err != nil {
		return false, err
	}
	w.onDisk = &next
	return true, nil
}

// contentOf hashes what write produces.
func (w *writer) contentOf(write func(io.Writer) (int64, error)) content {
	var h maphash.Hash
	h.SetSeed(w.seed)
	n, _ := write(&h) // a maphash.Hash never fails
	return content{size: int(n), hash: h.Sum64()}
}

// sameBytes reports whether a and b are the same slice of memory.
func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
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
