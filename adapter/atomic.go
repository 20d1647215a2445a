package adapter

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// fileOps holds the file system calls whose failure the tests inject.
type fileOps struct {
	create  func(dir, pattern string) (*os.File, error)
	sync    func(*os.File) error
	rename  func(oldpath, newpath string) error
	syncDir func(dir string) error
}

var osFileOps = fileOps{
	create:  os.CreateTemp,
	sync:    (*os.File).Sync,
	rename:  os.Rename,
	syncDir: syncDir,
}

// tempPattern is the name of temporary files next to the output: hidden, and
// ending in neither .json nor .yml, so no file_sd glob can match one.
func tempPattern(path string) string {
	return "." + filepath.Base(path) + ".tmp-*"
}

// writeAtomic replaces path with data so that a reader sees either the old or
// the new content, never a mix: it writes a temporary file in the same
// directory, syncs, closes and chmods it, renames it over path, calls
// renamed (if not nil) and syncs the directory. The temporary file is
// removed on any failure.
func writeAtomic(ops fileOps, path string, data io.WriterTo, mode os.FileMode, renamed func()) (err error) {
	dir := filepath.Dir(path)
	f, err := ops.create(dir, tempPattern(path))
	if err != nil {
		return fmt.Errorf("create temporary file in %s: %w", dir, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close() // may already be closed; the write error is what matters
			if rmErr := os.Remove(tmp); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
				err = errors.Join(err, fmt.Errorf("remove %s: %w", tmp, rmErr))
			}
		}
	}()
	if _, err = data.WriteTo(f); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err = ops.sync(f); err != nil {
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err = os.Chmod(tmp, mode); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if err = ops.rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp, path, err)
	}
	if renamed != nil {
		renamed()
	}
	// The new content is in place; a failed directory sync only means the
	// rename might not survive a power cut, so report it without undoing.
	if err := ops.syncDir(dir); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		_ = d.Close()
		return err
	}
	return d.Close()
}

// removeStaleTemps deletes temporary files that an earlier process left
// behind when it was killed mid-write, and returns their paths.
func removeStaleTemps(path string) ([]string, error) {
	dir := filepath.Dir(path)
	des, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil // nothing to clean; writing will report the missing directory
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	prefix := strings.TrimSuffix(tempPattern(path), "*")
	var removed []string
	var errs []error
	for _, de := range des {
		if de.IsDir() || !strings.HasPrefix(de.Name(), prefix) {
			continue
		}
		p := filepath.Join(dir, de.Name())
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove stale %s: %w", p, err))
			continue
		}
		removed = append(removed, p)
	}
	return removed, errors.Join(errs...)
}
