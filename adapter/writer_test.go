package adapter

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/go-kit/log"
	"github.com/stretchr/testify/require"
)

func TestWriterWritesWithMode(t *testing.T) {
	t.Parallel()
	for _, mode := range []os.FileMode{0o644, 0o600, 0o640} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "out.json")
			w := newTestWriter(t, path, mode)
			wrote, err := writeSet(t, w, oneGroup("a:1"))
			require.NoError(t, err)
			require.True(t, wrote)
			fi, err := os.Stat(path)
			require.NoError(t, err)
			require.Equal(t, mode, fi.Mode().Perm())
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Equal(t, "[\n  {\"targets\":[\"a:1\"],\"labels\":{}}\n]\n", string(b))
			require.Empty(t, tempFiles(t, filepath.Dir(path), "out.json"))
		})
	}
}

func TestWriterSkipsUnchangedContent(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "out.json")
	w := newTestWriter(t, path, 0o644)
	_, err := writeSet(t, w, oneGroup("a:1"))
	require.NoError(t, err)
	before, err := os.Stat(path)
	require.NoError(t, err)

	// New group values with the same content: no write.
	wrote, err := writeSet(t, w, oneGroup("a:1"))
	require.NoError(t, err)
	require.False(t, wrote)

	// A new writer finding the same content on disk does not rewrite it.
	w2 := newTestWriter(t, path, 0o644)
	wrote, err = writeSet(t, w2, oneGroup("a:1"))
	require.NoError(t, err)
	require.False(t, wrote)

	after, err := os.Stat(path)
	require.NoError(t, err)
	require.True(t, os.SameFile(before, after), "same inode")
	require.Equal(t, before.ModTime(), after.ModTime())

	wrote, err = writeSet(t, w2, oneGroup("a:2"))
	require.NoError(t, err)
	require.True(t, wrote)
}

// render returns the previous snapshot when no group changed, whether the
// set shares its encodings or holds new encodings of the same entries.
func TestWriterRenderReusesUnchangedSnapshots(t *testing.T) {
	t.Parallel()
	w := newTestWriter(t, filepath.Join(t.TempDir(), "out.json"), 0o644)
	set := encodeSet(t, map[Key]*Group{{"p", "a"}: group("a", "127.0.0.1:1"), {"p", "b"}: group("b", "127.0.0.1:2")})
	first := w.render(set)
	require.Equal(t, 2, first.Targets())
	require.Same(t, first, w.render(set), "the same encodings")
	require.Same(t, first, w.render(encodeSet(t, map[Key]*Group{{"p", "a"}: group("a", "127.0.0.1:1"), {"p", "b"}: group("b", "127.0.0.1:2")})), "new encodings, same bytes")

	set[Key{"p", "b"}], _ = encode(group("b", "127.0.0.1:3"), 1)
	changed := w.render(set)
	require.NotSame(t, first, changed)
	require.Contains(t, string(changed.JSON()), "127.0.0.1:3")

	delete(set, Key{"p", "a"})
	removed := w.render(set)
	require.Equal(t, 1, removed.Groups())
	require.Equal(t, "[\n  {\"targets\":[\"127.0.0.1:3\"],\"labels\":{}}\n]\n", string(removed.JSON()))
	require.Equal(t, 2, first.Targets(), "an earlier snapshot is immutable")
}

func TestWriterFailureKeepsOldFile(t *testing.T) {
	t.Parallel()
	boom := errors.New("injected")
	tests := []struct {
		name string
		ops  func(fileOps) fileOps
		// newContent reports whether the new content is in place despite the error.
		newContent bool
	}{
		{"read-only directory", func(o fileOps) fileOps {
			o.create = func(string, string) (*os.File, error) { return nil, syscall.EROFS }
			return o
		}, false},
		{"sync fails", func(o fileOps) fileOps { o.sync = func(*os.File) error { return boom }; return o }, false},
		{"rename fails", func(o fileOps) fileOps { o.rename = func(string, string) error { return boom }; return o }, false},
		{"disk full", func(o fileOps) fileOps { o.sync = func(*os.File) error { return syscall.ENOSPC }; return o }, false},
		{"directory sync fails", func(o fileOps) fileOps { o.syncDir = func(string) error { return boom }; return o }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "out.json")
			w := newTestWriter(t, path, 0o644)
			_, err := writeSet(t, w, oneGroup("a:1"))
			require.NoError(t, err)
			old, err := os.ReadFile(path)
			require.NoError(t, err)

			w.ops = tc.ops(osFileOps)
			snap := w.render(encodeSet(t, oneGroup("a:2")))
			_, err = w.write(snap, nil)
			require.Error(t, err)
			require.Empty(t, tempFiles(t, dir, "out.json"), "no temporary file is left")
			got, err := os.ReadFile(path)
			require.NoError(t, err)
			if !tc.newContent {
				require.Equal(t, string(old), string(got), "the old file is kept")
			}

			// Once the fault clears, writing again puts the new content in place.
			w.ops = osFileOps
			_, err = w.write(snap, nil)
			require.NoError(t, err)
			got, err = os.ReadFile(path)
			require.NoError(t, err)
			require.Contains(t, string(got), `"a:2"`)
		})
	}
}

func TestWriterMissingDirectoryThenCreated(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "later")
	path := filepath.Join(dir, "out.json")
	w := newTestWriter(t, path, 0o644)
	snap := w.render(encodeSet(t, oneGroup("a:1")))
	_, err := w.write(snap, nil)
	require.ErrorContains(t, err, dir)
	require.NoError(t, os.Mkdir(dir, 0o755))
	wrote, err := w.write(snap, nil)
	require.NoError(t, err)
	require.True(t, wrote)
}

func TestWriterBareFileNameUsesItsOwnDirectory(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	w := newTestWriter(t, "out.json", 0o644)
	var tmpDir string
	w.ops.rename = func(oldpath, newpath string) error {
		tmpDir = filepath.Dir(oldpath)
		return os.Rename(oldpath, newpath)
	}
	_, err := writeSet(t, w, oneGroup("a:1"))
	require.NoError(t, err)
	require.Equal(t, ".", tmpDir, "the temporary file is next to the output, not in $TMPDIR")
	_, err = os.Stat(filepath.Join(dir, "out.json"))
	require.NoError(t, err)
}

func TestTempNamesDoNotMatchFileSDGlobs(t *testing.T) {
	t.Parallel()
	f, err := os.CreateTemp(t.TempDir(), tempPattern("/x/custom_sd.json"))
	require.NoError(t, err)
	require.NoError(t, f.Close())
	for _, glob := range []string{"*.json", "*.yml", "*.yaml", "custom_sd.json"} {
		ok, err := filepath.Match(glob, filepath.Base(f.Name()))
		require.NoError(t, err)
		require.False(t, ok, "%s matches %s", glob, f.Name())
	}
}

// TestCleanUpRemovesStaleTempFiles: newWriter changes nothing on disk;
// cleanUp removes the temporary files a killed predecessor left.
func TestCleanUpRemovesStaleTempFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "out.json")
	stale := filepath.Join(dir, ".out.json.tmp-12345")
	other := filepath.Join(dir, ".other.json.tmp-1")
	for _, p := range []string{stale, other} {
		require.NoError(t, os.WriteFile(p, []byte("[{"), 0o600))
	}
	w := newTestWriter(t, path, 0o644)
	_, err := os.Stat(stale)
	require.NoError(t, err, "building a writer changes nothing on disk")
	w.cleanUp()
	_, err = os.Stat(stale)
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = os.Stat(other)
	require.NoError(t, err, "another output's temporary file is left alone")
}

// TestNewWriterRefusesWhatIsNotARegularFile: a directory, a named pipe (an
// open would block), a device (a read would not end) and a socket are
// refused at once, without reading them.
func TestNewWriterRefusesWhatIsNotARegularFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.json")
	require.NoError(t, syscall.Mkfifo(fifo, 0o644))
	device := filepath.Join(dir, "zero.json")
	require.NoError(t, os.Symlink("/dev/zero", device))
	sock := filepath.Join(dir, "sock.json")
	l, err := net.Listen("unix", sock)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	tests := []struct{ name, path, want string }{
		{"a directory", dir, "is a directory"},
		{"a named pipe", fifo, "exists and is a named pipe, not a regular file"},
		{"a device", device, "exists and is a character device, not a regular file"},
		{"a socket", sock, "exists and is a socket, not a regular file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newWriter(tc.path, 0, 0o644, log.NewNopLogger())
			require.ErrorContains(t, err, tc.want)
		})
	}
}
