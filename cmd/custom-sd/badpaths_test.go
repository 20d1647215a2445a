package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/custom-sd/custom-sd/internal/testconsul"
)

// hostilePaths makes, in dir, the inputs and odd files the hostile-path
// cases point outputs at, and returns the configuration head (the agent's
// section) that reads the inputs.
func hostilePaths(t *testing.T, dir, server string) string {
	t.Helper()
	for name, content := range map[string]string{
		"token": "t0ken\n", "password": "pa55\n", "ca.pem": "-", "web.yml": "", "other.json": "[]\n",
	} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600))
	}
	for _, d := range []string{"sd", "adir"} {
		require.NoError(t, os.Mkdir(filepath.Join(dir, d), 0o755))
	}
	require.NoError(t, os.Symlink(filepath.Join(dir, "sd"), filepath.Join(dir, "link")))
	require.NoError(t, syscall.Mkfifo(filepath.Join(dir, "fifo.json"), 0o644))
	require.NoError(t, os.Symlink("/dev/zero", filepath.Join(dir, "zero.json")))
	l, err := net.Listen("unix", filepath.Join(dir, "sock.json"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return "consul: {server: " + server + ", token_file: token}\n"
}

// hostileOutputs are outputs that must be refused: (name, job lines, the
// refusal).
var hostileOutputs = []struct{ name, jobs, want string }{
	{"the configuration file", "  - {name: a, output: {file: custom-sd.yml}}\n", "jobs[a].output.file: @/custom-sd.yml is the configuration file; writing it would overwrite that input"},
	{"the token file", "  - {name: a, output: {file: token}}\n", "jobs[a].output.file: @/token is the token file of consul default"},
	{"the web configuration", "  - {name: a, output: {file: web.yml}}\n", "jobs[a].output.file: @/web.yml is the web configuration file"},
	{"another job's file through a symlinked directory", "  - {name: a, output: {file: sd/a.json}}\n  - {name: b, output: {file: link/a.json}}\n", "jobs[b].output.file: @/link/a.json (@/sd/a.json) is written by job a too"},
	{"a directory", "  - {name: a, output: {file: adir}}\n", "jobs[a].output.file: @/adir is a directory"},
	{"a named pipe", "  - {name: a, output: {file: fifo.json}}\n", "exists and is a named pipe, not a regular file"},
	{"a device", "  - {name: a, output: {file: zero.json}}\n", "output file /dev/zero exists and is a character device, not a regular file"},
	{"a socket", "  - {name: a, output: {file: sock.json}}\n", "exists and is a socket, not a regular file"},
	{"a missing directory", "  - {name: a, output: {file: nope/a.json}}\n", "jobs[a].output.file: the directory @/nope does not exist"},
	{"a directory that refuses files", "  - {name: a, output: {file: /proc/self/a.json}}\n", "jobs[a].output.file: cannot create files in /proc/"},
	{"a job name too long", "  - {name: " + strings.Repeat("j", 300) + "}\n", "is 300 bytes long; a job name has at most 200"},
	{"a file name too long", "  - {name: a, output: {file: " + strings.Repeat("f", 250) + ".json}}\n", "is too long: with the temporary file's prefix and suffix it has 271 bytes"},
}

// TestHostileOutputsAtStart: each hostile output stops custom-sd at start
// with one line naming the job's output.file, exit status 2, before any
// file is touched; a named pipe does not block it.
func TestHostileOutputsAtStart(t *testing.T) {
	t.Parallel()
	for _, tc := range hostileOutputs {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			head := hostilePaths(t, dir, "127.0.0.1:1")
			cfg := filepath.Join(dir, "custom-sd.yml")
			require.NoError(t, os.WriteFile(cfg, []byte(head+"jobs:\n"+tc.jobs), 0o600))
			before := snapshotDir(t, dir)
			var stderr bytes.Buffer
			code := run(context.Background(), []string{"--config.file=" + cfg, "--web.listen-address=127.0.0.1:0", "--web.config.file=" + filepath.Join(dir, "web.yml")}, &stderr)
			require.Equal(t, 2, code, stderr.String())
			require.Equal(t, 1, strings.Count(stderr.String(), "\n"), "one line: %q", stderr.String())
			require.Contains(t, stderr.String(), strings.ReplaceAll(tc.want, "@", dir))
			require.Equal(t, before, snapshotDir(t, dir), "nothing was touched")
		})
	}
	// The flags' job is checked by the same code.
	dir := t.TempDir()
	hostilePaths(t, dir, "127.0.0.1:1")
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"--consul.server=127.0.0.1:1", "--consul.token-file=" + filepath.Join(dir, "token"),
		"--output.file=" + filepath.Join(dir, "token"), "--web.listen-address=127.0.0.1:0"}, &stderr)
	require.Equal(t, 2, code)
	require.Contains(t, stderr.String(), "--output.file: "+filepath.Join(dir, "token")+" is the token file of consul default")
}

// TestHostileOutputsOnReload: each hostile output is a failed reload; the
// running job goes on and its file is untouched.
func TestHostileOutputsOnReload(t *testing.T) {
	t.Parallel()
	srv := testconsul.Start(t)
	srv.Register(t, testconsul.Instance{Service: "web", ID: "web-1", Port: 8080})
	dir := t.TempDir()
	head := hostilePaths(t, dir, srv.HTTPAddr)
	cfg := filepath.Join(dir, "custom-sd.yml")
	good := head + "jobs:\n  - {name: good, services: [web], output: {file: sd/good.json}}\n"
	require.NoError(t, os.WriteFile(cfg, []byte(good), 0o600))
	d := startDaemon(t, "--config.file="+cfg, "--web.enable-lifecycle", "--web.config.file="+filepath.Join(dir, "web.yml"))
	goodFile := filepath.Join(dir, "sd", "good.json")
	testconsul.Eventually(t, hasTarget(goodFile, "web-1"))
	testconsul.Eventually(t, d.status(t, "/targets/good", http.StatusOK))
	state := stateOf(t, goodFile)
	for _, tc := range hostileOutputs {
		require.NoError(t, os.WriteFile(cfg, []byte(good+tc.jobs), 0o600), tc.name)
		code, _, body := d.get(t, http.MethodPost, "/-/reload")
		require.Equal(t, http.StatusInternalServerError, code, tc.name)
		require.Contains(t, body, strings.ReplaceAll(tc.want, "@", dir), tc.name)
		state.same(t, goodFile)
		code, _, _ = d.get(t, http.MethodGet, "/targets/good")
		require.Equal(t, http.StatusOK, code, "the running job is served")
		code, _, _ = d.get(t, http.MethodGet, "/targets/a")
		require.Equal(t, http.StatusNotFound, code, "no job of the refused configuration runs")
	}
	require.Equal(t, 0.0, d.metric(t, "custom_sd_config_last_reload_successful", nil))
	require.Equal(t, 0, d.terminate(t))
}

// snapshotDir lists a directory's files with their modes and times (not
// its directories, whose times the output directory's probe moves).
func snapshotDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		fi, err := e.Info()
		require.NoError(t, err)
		out[e.Name()] = fi.Mode().String() + " " + fi.ModTime().String()
	}
	return out
}
