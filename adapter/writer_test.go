package adapter

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/go-kit/log"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

func newTestWriter(t *testing.T, path string, mode os.FileMode) *writer {
	t.Helper()
	w, err := newWriter(path, mode, log.NewNopLogger())
	require.NoError(t, err)
	return w
}

func oneGroup(addr string) map[Key]*Group {
	return map[Key]*Group{{"p", "s"}: {Source: "s", Targets: []model.LabelSet{{model.AddressLabel: model.LabelValue(addr)}}}}
}

// tempFiles lists the writer's temporary files in dir.
func tempFiles(t *testing.T, dir, base string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "."+base+".tmp-*"))
	require.NoError(t, err)
	return m
}

func TestWriterWritesWithMode(t *testing.T) {
	t.Parallel()
	for _, mode := range []os.FileMode{0o644, 0o600, 0o640} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "out.json")
			w := newTestWriter(t, path, mode)
			wrote, _, err := w.update(oneGroup("a:1"))
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
	_, _, err := w.update(oneGroup("a:1"))
	require.NoError(t, err)
	before, err := os.Stat(path)
	require.NoError(t, err)

	// New group values with the same content: no write.
	wrote, _, err := w.update(oneGroup("a:1"))
	require.NoError(t, err)
	require.False(t, wrote)

	// A new writer finding the same content on disk does not rewrite it.
	w2 := newTestWriter(t, path, 0o644)
	wrote, _, err = w2.update(oneGroup("a:1"))
	require.NoError(t, err)
	require.False(t, wrote)

	after, err := os.Stat(path)
	require.NoError(t, err)
	require.True(t, os.SameFile(before, after), "same inode")
	require.Equal(t, before.ModTime(), after.ModTime())

	wrote, _, err = w2.update(oneGroup("a:2"))
	require.NoError(t, err)
	require.True(t, wrote)
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
			_, _, err := w.update(oneGroup("a:1"))
			require.NoError(t, err)
			old, err := os.ReadFile(path)
			require.NoError(t, err)

			w.ops = tc.ops(osFileOps)
			_, _, err = w.update(oneGroup("a:2"))
			require.Error(t, err)
			require.Empty(t, tempFiles(t, dir, "out.json"), "no temporary file is left")
			got, err := os.ReadFile(path)
			require.NoError(t, err)
			if !tc.newContent {
				require.Equal(t, string(old), string(got), "the old file is kept")
			}

			// Once the fault clears, flush writes the pending content.
			w.ops = osFileOps
			_, err = w.flush()
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
	_, _, err := w.update(oneGroup("a:1"))
	require.ErrorContains(t, err, dir)
	require.NoError(t, os.Mkdir(dir, 0o755))
	wrote, err := w.flush()
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
	_, _, err := w.update(oneGroup("a:1"))
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

func TestNewWriterRemovesStaleTempFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "out.json")
	stale := filepath.Join(dir, ".out.json.tmp-12345")
	other := filepath.Join(dir, ".other.json.tmp-1")
	for _, p := range []string{stale, other} {
		require.NoError(t, os.WriteFile(p, []byte("[{"), 0o600))
	}
	newTestWriter(t, path, 0o644)
	_, err := os.Stat(stale)
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = os.Stat(other)
	require.NoError(t, err, "another output's temporary file is left alone")
}

func TestNewWriterRefusesDirectory(t *testing.T) {
	t.Parallel()
	_, err := newWriter(t.TempDir(), 0o644, log.NewNopLogger())
	require.ErrorContains(t, err, "is a directory")
}
