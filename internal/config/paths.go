package config

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/custom-sd/custom-sd/adapter"
)

// maxNameLen is the longest file name the platforms custom-sd runs on
// allow, in bytes.
const maxNameLen = 255

// tempOverhead is what the writer adds to an output's name for its
// temporary file: "." before it, ".tmp-" and up to ten digits after it
// (adapter's tempPattern and os.CreateTemp).
const tempOverhead = 1 + len(".tmp-") + 10

// CheckPaths checks the files cfg writes against the file system and
// against what it reads: every output, with its shard suffixes and
// resolved through symbolic links, must be in an existing directory that
// custom-sd can create files in, be a regular file if it exists, have a
// name short enough for the writer's temporary file beside it, and be
// neither an input — one of inputs (the configuration file, the web
// configuration) or a file the agents' settings name — nor another job's
// output. It creates and removes a probe file in each output directory. An
// error is an *Error naming the job's output.file.
func (c *Config) CheckPaths(inputs ...Input) error {
	for _, name := range slices.Sorted(maps.Keys(c.Consuls)) {
		inputs = append(inputs, c.Consuls[name].Files...)
	}
	in := map[string]string{} // resolved path → what it is
	for _, i := range inputs {
		if _, ok := in[resolved(i.Path)]; i.Path != "" && !ok {
			in[resolved(i.Path)] = i.What
		}
	}
	written := map[string]string{} // resolved output → job
	probed := map[string]bool{}
	for _, spec := range c.Jobs {
		section := fmt.Sprintf("jobs[%s]", spec.Name)
		for _, p := range spec.Paths() {
			if err := checkOutput(p, in, written, spec.Name, probed); err != nil {
				return &Error{Section: section, Key: "output.file", Msg: err.Error()}
			}
		}
	}
	return nil
}

// checkOutput checks one output path; see CheckPaths.
func checkOutput(p string, inputs, written map[string]string, job string, probed map[string]bool) error {
	if n := len(filepath.Base(p)) + tempOverhead; n > maxNameLen {
		return fmt.Errorf("the name %.40s... is too long: with the temporary file's prefix and suffix it has %d bytes, and a file name has at most %d", filepath.Base(p), n, maxNameLen)
	}
	real := resolved(p)
	if what, ok := inputs[real]; ok {
		return fmt.Errorf("%s is %s; writing it would overwrite that input", describe(p, real), what)
	}
	if other, ok := written[real]; ok {
		return fmt.Errorf("%s is written by job %s too", describe(p, real), other)
	}
	written[real] = job
	if err := adapter.CheckOutputPath(real); err != nil {
		return err
	}
	dir := filepath.Dir(real)
	if probed[dir] {
		return nil
	}
	probed[dir] = true
	return probeDir(dir)
}

// probeDir checks that dir is a directory custom-sd can create (and
// remove) its temporary files in.
func probeDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("the directory %s does not exist", dir)
	case err != nil:
		return fmt.Errorf("the directory %s: %w", dir, err)
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	}
	f, err := os.CreateTemp(dir, ".custom-sd-probe.tmp-*")
	if err != nil {
		return fmt.Errorf("cannot create files in %s: %w", dir, errors.Unwrap(err))
	}
	name := f.Name()
	_ = f.Close()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("cannot remove files in %s: %w", dir, errors.Unwrap(err))
	}
	return nil
}

// resolved is p made absolute, with every symbolic link on its way —
// the file's own included — resolved, as far as they exist.
func resolved(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		return r
	}
	// The file does not exist yet: resolve its directory.
	if r, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		return filepath.Join(r, filepath.Base(abs))
	}
	return abs
}

// describe names p, and where it leads when that is elsewhere.
func describe(p, real string) string {
	if abs, err := filepath.Abs(p); err == nil && abs == real {
		return p
	}
	return p + " (" + real + ")"
}
