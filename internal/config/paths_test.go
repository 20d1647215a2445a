package config

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCheckPaths: an output is refused when it is an input, another job's
// output (through a symbolic link too), a directory or an existing file
// that is not a regular one, when its directory is missing or refuses new
// files, or when its name leaves no room for the temporary file's.
func TestCheckPaths(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "token", "t")
	require.NoError(t, os.Mkdir(filepath.Join(dir, "sd"), 0o755))
	require.NoError(t, os.Symlink(filepath.Join(dir, "sd"), filepath.Join(dir, "link")))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "adir"), 0o755))
	require.NoError(t, syscall.Mkfifo(filepath.Join(dir, "fifo.json"), 0o644))
	sock, err := net.Listen("unix", filepath.Join(dir, "sock.json"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = sock.Close() })
	require.NoError(t, os.Symlink("/dev/null", filepath.Join(dir, "null.json")))
	head := "consul: {server: 127.0.0.1:1, token_file: token}\njobs:\n"

	tests := []struct {
		name, jobs string
		inputs     []Input
		want       string // "" for none
	}{
		{"fine", "  - {name: a, output: {file: sd/a.json}}\n  - {name: b, output: {file: sd/b.json, shards: 2}}\n", nil, ""},
		{"the configuration file", "  - {name: a, output: {file: c.yml}}\n", []Input{{filepath.Join(dir, "c.yml"), "the configuration file"}}, "jobs[a].output.file: " + filepath.Join(dir, "c.yml") + " is the configuration file; writing it would overwrite that input"},
		{"the token file", "  - {name: a, output: {file: token}}\n", nil, "token is the token file of consul default; writing it would overwrite that input"},
		{"the web configuration", "  - {name: a, output: {file: web.yml}}\n", []Input{{filepath.Join(dir, "web.yml"), "the web configuration file"}}, "web.yml is the web configuration file"},
		{"another job's file through a link", "  - {name: a, output: {file: sd/a.json}}\n  - {name: b, output: {file: link/a.json}}\n", nil,
			"jobs[b].output.file: " + filepath.Join(dir, "link", "a.json") + " (" + filepath.Join(dir, "sd", "a.json") + ") is written by job a too"},
		{"another job's shard", "  - {name: a, output: {file: sd/a.json, shards: 2}}\n  - {name: b, output: {file: sd/a.1.json}}\n", nil, "is written by job a too"},
		{"a directory", "  - {name: a, output: {file: adir}}\n", nil, "is a directory"},
		{"a named pipe", "  - {name: a, output: {file: fifo.json}}\n", nil, "exists and is a named pipe, not a regular file"},
		{"a socket", "  - {name: a, output: {file: sock.json}}\n", nil, "exists and is a socket, not a regular file"},
		{"a device through a link", "  - {name: a, output: {file: null.json}}\n", nil, "output file /dev/null exists and is a character device, not a regular file"},
		{"a missing directory", "  - {name: a, output: {file: nope/a.json}}\n", nil, "the directory " + filepath.Join(dir, "nope") + " does not exist"},
		{"a directory that refuses files", "  - {name: a, output: {file: /proc/self/a.json}}\n", nil, "cannot create files in /proc/"},
		{"a name too long", "  - {name: a, output: {file: " + strings.Repeat("n", 240) + ".json}}\n", nil, "is too long: with the temporary file's prefix and suffix it has 261 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(write(t, dir, "c.yml", head+tc.jobs))
			if err == nil {
				err = c.CheckPaths(tc.inputs...)
			}
			if tc.want == "" {
				require.NoError(t, err)
				entries, err := os.ReadDir(filepath.Join(dir, "sd"))
				require.NoError(t, err)
				require.Empty(t, entries, "the probe files are removed")
				return
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			require.NotContains(t, err.Error(), "\n")
		})
	}
}
