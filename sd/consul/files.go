package consul

import (
	"os"
	"slices"
	"sync"
	"syscall"
	"time"
)

// liveFiles is something read from files — a password, a client
// certificate and its key, a CA bundle — that is read again whenever one of
// the files changes, so that a rotated secret takes effect at its next use
// without a reload. Each use stats the files (cheap next to a request or a
// TLS handshake); only a change reads them. A change that does not load (a
// file half-written by a rotation) keeps the value read before, and is read
// again at every use until it loads.
type liveFiles[T any] struct {
	paths []string
	load  func() (T, error)
	// failed, if not nil, is told of a change that does not load, once per
	// state of the files.
	failed func(error)

	mu       sync.Mutex
	stamps   []fileStamp // of the files the value was read from
	value    T
	loaded   bool
	failedAt []fileStamp // the files' state when a load last failed
}

// fileStamp tells whether a file changed: a rotation that replaces it
// (a Kubernetes secret swaps a symlink) changes its inode, one that rewrites
// it its size or modification time.
type fileStamp struct {
	dev, ino uint64
	size     int64
	mtime    time.Time
	err      bool
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{err: true}
	}
	s := fileStamp{size: fi.Size(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.dev, s.ino = uint64(st.Dev), st.Ino
	}
	return s
}

func newLiveFiles[T any](load func() (T, error), failed func(error), paths ...string) *liveFiles[T] {
	return &liveFiles[T]{paths: paths, load: load, failed: failed}
}

// get returns the value of the files as they are now, or as they were when
// they last loaded if they do not load now.
func (l *liveFiles[T]) get() (T, error) {
	stamps := make([]fileStamp, len(l.paths))
	for i, p := range l.paths {
		stamps[i] = stampOf(p)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.loaded && slices.Equal(stamps, l.stamps) {
		return l.value, nil
	}
	v, err := l.load()
	if err != nil {
		if l.failed != nil && !slices.Equal(stamps, l.failedAt) {
			l.failed(err)
		}
		l.failedAt = stamps
		if l.loaded {
			return l.value, nil
		}
		return v, err
	}
	l.value, l.loaded, l.stamps, l.failedAt = v, true, stamps, nil
	return v, nil
}

// forget makes the next use read the files whatever their state.
func (l *liveFiles[T]) forget() {
	l.mu.Lock()
	l.stamps = nil
	l.mu.Unlock()
}
