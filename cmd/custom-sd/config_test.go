package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"

	"github.com/custom-sd/custom-sd/internal/testconsul"
)

// fileState is what shows whether a file was rewritten.
type fileState struct {
	fi      os.FileInfo
	content string
}

func stateOf(t *testing.T, path string) fileState {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return fileState{fi, string(b)}
}

func (s fileState) same(t *testing.T, path string) {
	t.Helper()
	now := stateOf(t, path)
	require.True(t, os.SameFile(s.fi, now.fi), "%s: same inode", path)
	require.Equal(t, s.fi.ModTime(), now.fi.ModTime(), "%s: not rewritten", path)
	require.Equal(t, s.content, now.content)
}

// registerShop registers a small catalog with tags and meta.
func registerShop(t *testing.T, srv *testconsul.Server) {
	t.Helper()
	for _, in := range []testconsul.Instance{
		{Service: "web", ID: "web-1", Port: 8080, Tags: []string{"prod"}, Status: api.HealthPassing},
		{Node: "node-2", Service: "web", ID: "web-2", Port: 8081, Tags: []string{"canary"}, Status: api.HealthCritical},
		{Service: "db", ID: "db-1", Address: "127.0.0.3", Port: 5432, Tags: []string{"prod"}},
		{Service: "cache", ID: "cache-1", Port: 6379},
	} {
		srv.Register(t, in)
	}
}

// One process serves several jobs from a configuration file, each with its
// file, its HTTP SD endpoint and its metrics, reading every service once.
func TestConfigFileServesEveryJob(t *testing.T) {
	t.Parallel()
	srv := testconsul.Start(t)
	registerShop(t, srv)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "custom-sd.yml")
	require.NoError(t, os.WriteFile(cfg, []byte(`
consul:
  server: `+srv.HTTPAddr+`
jobs:
  - name: all
    exclude_services: [consul]
    output: {file: sd/all.json}
  - name: prod
    tags: [prod]
    tag_separator: ";"
    output: {file: sd/prod.json}
  - name: healthy-web
    services: [web]
    health: passing
    output: {file: sd/web.json}
`), 0o600))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "sd"), 0o755))
	// Relative paths resolve against the configuration file, not the working
	// directory.
	d := startDaemonIn(t, t.TempDir(), "--config.file="+cfg)
	testconsul.Eventually(t, d.status(t, "/-/ready", http.StatusOK), "ready once every job has its file")

	all := readTargets(t, filepath.Join(dir, "sd", "all.json"))
	require.Len(t, all, 4)
	prod := readTargets(t, filepath.Join(dir, "sd", "prod.json"))
	require.Len(t, prod, 2)
	require.Equal(t, ";prod;", prod["web-1"].Labels["__meta_consul_tags"])
	web := readTargets(t, filepath.Join(dir, "sd", "web.json"))
	require.Len(t, web, 1)
	require.Contains(t, web, "web-1")

	code, _, body := d.get(t, http.MethodGet, "/targets/prod")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "127.0.0.3:5432")
	code, _, body = d.get(t, http.MethodGet, "/targets/prod?service=web")
	require.Equal(t, http.StatusOK, code)
	require.NotContains(t, body, "5432")
	code, _, body = d.get(t, http.MethodGet, "/targets")
	require.Equal(t, http.StatusNotFound, code)
	require.Contains(t, body, "all, healthy-web, prod")
	require.Equal(t, 2.0, d.metric(t, "custom_sd_targets", map[string]string{"sd_job": "prod"}))
	require.Equal(t, 1.0, d.metric(t, "custom_sd_ready", map[string]string{"sd_job": "healthy-web"}))
	testconsul.Eventually(t, func() bool {
		return d.metric(t, "custom_sd_consul_services", map[string]string{"consul": "default"}) == 3 &&
			d.metric(t, "custom_sd_consul_long_polls", map[string]string{"consul": "default"}) == 3
	}, "web, db and cache, each watched once with one long poll (no job wants consul)")

	srv.Register(t, testconsul.Instance{Node: "node-3", Service: "web", ID: "web-3", Port: 8082, Tags: []string{"prod"}, Status: api.HealthPassing})
	testconsul.Eventually(t, hasTarget(filepath.Join(dir, "sd", "web.json"), "web-3"), "a change reaches every job that selects it")
	testconsul.Eventually(t, hasTarget(filepath.Join(dir, "sd", "prod.json"), "web-3"))
	testconsul.Eventually(t, hasTarget(filepath.Join(dir, "sd", "all.json"), "web-3"))
	require.Equal(t, 0, d.terminate(t))
}

// A reload keeps unchanged jobs as they are, starts new and changed ones,
// stops removed ones (leaving their files), and a configuration that does
// not load changes nothing.
func TestReload(t *testing.T) {
	t.Parallel()
	srv := testconsul.Start(t)
	registerShop(t, srv)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "custom-sd.yml")
	head := "consul: {server: " + srv.HTTPAddr + "}\njobs:\n"
	write := func(jobs string) { require.NoError(t, os.WriteFile(cfg, []byte(head+jobs), 0o600)) }
	path := func(job string) string { return filepath.Join(dir, job+".json") }
	write("  - {name: kept, services: [web]}\n  - {name: changed, tags: [prod]}\n  - {name: removed, services: [db]}\n")
	d := startDaemon(t, "--config.file="+cfg, "--web.enable-lifecycle")
	testconsul.Eventually(t, d.status(t, "/-/ready", http.StatusOK))
	kept, removed := stateOf(t, path("kept")), stateOf(t, path("removed"))
	require.Len(t, readTargets(t, path("changed")), 2)

	// SIGHUP: kept is untouched, changed follows its new selection, removed
	// stops but its file stays, added starts.
	write("  - {name: kept, services: [web]}\n  - {name: changed, tags: [canary]}\n  - {name: added, services: [cache]}\n")
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGHUP))
	d.waitLog(t, 1, "Completed loading of configuration")
	testconsul.Eventually(t, func() bool { _, err := os.Stat(path("added")); return err == nil }, "the new job writes its file")
	testconsul.Eventually(t, func() bool { return len(readTargets(t, path("changed"))) == 1 }, "the changed job follows its new selection")
	require.Contains(t, readTargets(t, path("changed")), "web-2")
	require.Contains(t, readTargets(t, path("added")), "cache-1")
	kept.same(t, path("kept"))
	removed.same(t, path("removed"))
	code, _, _ := d.get(t, http.MethodGet, "/targets/removed")
	require.Equal(t, http.StatusNotFound, code)
	testconsul.Eventually(t, d.status(t, "/targets/added", http.StatusOK))
	require.Equal(t, 1.0, d.metric(t, "custom_sd_config_last_reload_successful", nil))

	// A broken configuration: one line in the log, the running jobs go on.
	before := d.metric(t, "custom_sd_config_last_reload_success_timestamp_seconds", nil)
	write("  - {name: kept, services: [web], health: critical}\n")
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGHUP))
	d.waitLog(t, 1, "Error reloading the configuration; keeping the running configuration", `jobs[kept].health: \"critical\" is not one of any, warning, passing`)
	require.Equal(t, 0.0, d.metric(t, "custom_sd_config_last_reload_successful", nil))
	require.Equal(t, before, d.metric(t, "custom_sd_config_last_reload_success_timestamp_seconds", nil))
	testconsul.Eventually(t, d.status(t, "/targets/added", http.StatusOK), "still served")
	kept.same(t, path("kept"))

	// POST /-/reload, with --web.enable-lifecycle: an error is the answer.
	code, _, body := d.get(t, http.MethodPost, "/-/reload")
	require.Equal(t, http.StatusInternalServerError, code)
	require.Contains(t, body, "jobs[kept].health")
	write("  - {name: kept, services: [web]}\n")
	code, _, _ = d.get(t, http.MethodPost, "/-/reload")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, 1.0, d.metric(t, "custom_sd_config_last_reload_successful", nil))
	code, _, _ = d.get(t, http.MethodGet, "/targets/added")
	require.Equal(t, http.StatusNotFound, code, "added was removed")
	kept.same(t, path("kept"))
	require.Equal(t, 0, d.terminate(t))
}

// Without --web.enable-lifecycle, /-/reload answers 403, as Prometheus's.
func TestReloadNeedsTheLifecycleFlag(t *testing.T) {
	t.Parallel()
	srv := testconsul.Start(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yml")
	require.NoError(t, os.WriteFile(cfg, []byte("consul: {server: "+srv.HTTPAddr+"}\njobs: [{name: a}]\n"), 0o600))
	d := startDaemon(t, "--config.file="+cfg)
	code, _, body := d.get(t, http.MethodPost, "/-/reload")
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, body, "Lifecycle API is not enabled")
	require.Equal(t, 0, d.terminate(t))
}

// A configuration file that does not load, or flags that would describe a
// job beside it, stop custom-sd at start with one line and exit status 2.
func TestBadConfigFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yml")
	require.NoError(t, os.WriteFile(good, []byte("consul: {server: 127.0.0.1:1}\njobs: [{name: a}]\n"), 0o600))
	bad := filepath.Join(dir, "bad.yml")
	require.NoError(t, os.WriteFile(bad, []byte("jobs:\n  - name: web\n    output: {mode: rw}\n"), 0o600))
	unknown := filepath.Join(dir, "unknown.yml")
	require.NoError(t, os.WriteFile(unknown, []byte("jobs:\n  - name: web\n    servces: [x]\n"), 0o600))
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"a bad value", []string{"--config.file=" + bad}, `--config.file: ` + bad + `: jobs[web].output.mode: "rw" is not an octal permission`},
		{"an unknown field", []string{"--config.file=" + unknown}, "--config.file: " + unknown + ": jobs[web].servces: line 3: unknown key; the keys here are all_datacenters"},
		{"a missing file", []string{"--config.file=" + filepath.Join(dir, "nope.yml")}, "--config.file: " + filepath.Join(dir, "nope.yml") + ": open"},
		{"a job flag beside it", []string{"--config.file=" + good, "--consul.service=web"}, "--consul.service: cannot be combined with --config.file; set it in the configuration file"},
		{"an output flag beside it", []string{"--config.file=" + good, "--output.file=x.json"}, "--output.file: cannot be combined with --config.file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stderr bytes.Buffer
			code := run(context.Background(), append(tc.args, "--web.listen-address=127.0.0.1:0"), &stderr)
			require.Equal(t, 2, code)
			require.Equal(t, 1, strings.Count(stderr.String(), "\n"), "one line: %q", stderr.String())
			require.Contains(t, stderr.String(), tc.want)
		})
	}
}
