package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/custom-sd/custom-sd/internal/faultproxy"
	"github.com/custom-sd/custom-sd/internal/testconsul"
	"github.com/custom-sd/custom-sd/internal/testfs"
)

// TestSIGTERMEndsTheProcessInAnyState: whatever custom-sd is doing — after
// failed reloads, during a reload, with the agent hanging or refusing,
// with its output on a full file system or on one that stopped answering —
// SIGTERM ends it, within its stop bound (4.5 s, logged by the test). A
// clean stop exits 0; one the bound cut short exits 1 and says so. The
// file holds what it held.
func TestSIGTERMEndsTheProcessInAnyState(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// state starts custom-sd and brings it into the state; it returns
		// the daemon and its output file.
		state func(t *testing.T) (*daemon, string)
		code  int
		log   string // a line the stop logs
	}{
		{"after failed reloads", afterFailedReloads, 0, "Stopped"},
		{"during a reload stuck on its output directory", duringAStuckReload, 1, "Did not stop in time; exiting anyway"},
		{"with the agent hanging", func(t *testing.T) (*daemon, string) {
			p := faultproxy.Start(t, testconsul.Start(t).HTTPAddr)
			p.Set("/", faultproxy.Hang)
			out := filepath.Join(t.TempDir(), "custom_sd.json")
			d := startDaemon(t, "--consul.server="+p.Addr, "--output.file="+out)
			testconsul.Eventually(t, func() bool { return p.Count("/v1/") > 0 }, "a query hangs")
			return d, out
		}, 0, "Stopped"},
		{"with the agent refusing connections", func(t *testing.T) (*daemon, string) {
			out := filepath.Join(t.TempDir(), "custom_sd.json")
			d := startDaemon(t, "--consul.server=127.0.0.1:1", "--output.file="+out)
			d.waitLog(t, 1, "Consul query failed")
			return d, out
		}, 0, "Stopped"},
		{"with the agent answering 429", func(t *testing.T) (*daemon, string) {
			p := faultproxy.Start(t, testconsul.Start(t).HTTPAddr)
			p.Set("/", faultproxy.Status429)
			out := filepath.Join(t.TempDir(), "custom_sd.json")
			d := startDaemon(t, "--consul.server="+p.Addr, "--output.file="+out)
			testconsul.Eventually(t, func() bool { return p.Count("/v1/") > 0 }, "refused")
			return d, out
		}, 0, "Stopped"},
		{"with the output on a full file system", func(t *testing.T) (*daemon, string) {
			srv := testconsul.Start(t)
			srv.Register(t, testconsul.Instance{Service: "web", ID: "web-1", Port: 8080})
			out := filepath.Join(testfs.MountFull(t, 256<<10), "custom_sd.json")
			d := startDaemon(t, "--consul.server="+srv.HTTPAddr, "--output.file="+out)
			testconsul.Eventually(t, hasTarget(out, "web-1"))
			testfs.Fill(t, filepath.Dir(out))
			srv.Register(t, testconsul.Instance{Service: "api", ID: "api-1", Port: 9000})
			d.waitLog(t, 1, "Cannot write the output file", "no space left on device")
			return d, out
		}, 0, "Stopped"},
		{"with the output on a file system that stopped answering", func(t *testing.T) (*daemon, string) {
			srv := testconsul.Start(t)
			srv.Register(t, testconsul.Instance{Service: "web", ID: "web-1", Port: 8080})
			stuck := testfs.MountStuck(t)
			out := filepath.Join(stuck.Dir, "custom_sd.json")
			d := startDaemon(t, "--consul.server="+srv.HTTPAddr, "--output.file="+out, "--log.level=debug")
			testconsul.Eventually(t, hasTarget(out, "web-1"))
			stuck.Hang()
			srv.Register(t, testconsul.Instance{Service: "api", ID: "api-1", Port: 9000})
			testconsul.Eventually(t, func() bool { return stuck.Hung() > 0 }, "a write hangs")
			return d, out
		}, 1, "Did not stop in time; exiting anyway"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d, out := tc.state(t)
			before, _ := os.ReadFile(out)
			start := time.Now()
			code := d.terminate(t)
			t.Logf("stopped %s after SIGTERM", time.Since(start))
			require.Equal(t, tc.code, code)
			require.Equal(t, 1, d.countLog(tc.log), "the stop says how it ended")
			after, _ := os.ReadFile(out)
			require.Equal(t, string(before), string(after), "the file is as it was")
		})
	}
}

// afterFailedReloads: three reloads of configurations that do not load or
// do not build, then SIGTERM.
func afterFailedReloads(t *testing.T) (*daemon, string) {
	srv := testconsul.Start(t)
	srv.Register(t, testconsul.Instance{Service: "web", ID: "web-1", Port: 8080})
	dir := t.TempDir()
	cfg := filepath.Join(dir, "custom-sd.yml")
	good := "consul: {server: " + srv.HTTPAddr + "}\njobs: [{name: web, output: {file: web.json}}]\n"
	require.NoError(t, os.WriteFile(cfg, []byte(good), 0o600))
	d := startDaemon(t, "--config.file="+cfg)
	out := filepath.Join(dir, "web.json")
	testconsul.Eventually(t, hasTarget(out, "web-1"))
	for i, broken := range []string{
		"jobs: [{name: web, servce: [x]}]\n",
		"consul: {server: " + srv.HTTPAddr + "}\njobs: [{name: web, output: {file: web.json}}, {name: other, output: {file: missing/other.json}}]\n",
		"consuls: {a: {server: " + srv.HTTPAddr + "}, b: {token_file: nope}}\njobs: [{name: web, consul: a}, {name: x, consul: b}]\n",
	} {
		require.NoError(t, os.WriteFile(cfg, []byte(broken), 0o600))
		require.NoError(t, d.cmd.Process.Signal(syscall.SIGHUP))
		d.waitLog(t, i+1, "Error reloading the configuration")
	}
	return d, out
}

// duringAStuckReload: a job writes to a file system that stopped
// answering; a reload that changes the job waits for it to stop, which it
// cannot while its write hangs; then SIGTERM.
func duringAStuckReload(t *testing.T) (*daemon, string) {
	srv := testconsul.Start(t)
	srv.Register(t, testconsul.Instance{Service: "web", ID: "web-1", Port: 8080})
	stuck := testfs.MountStuck(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "custom-sd.yml")
	job := func(tags string) string {
		return fmt.Sprintf("consul: {server: %s}\njobs: [{name: web, tags: [%s], output: {file: %s}}]\n", srv.HTTPAddr, tags, filepath.Join(stuck.Dir, "web.json"))
	}
	require.NoError(t, os.WriteFile(cfg, []byte(job("")), 0o600))
	d := startDaemon(t, "--config.file="+cfg, "--log.level=debug")
	out := filepath.Join(stuck.Dir, "web.json")
	testconsul.Eventually(t, hasTarget(out, "web-1"))
	stuck.Hang()
	srv.Register(t, testconsul.Instance{Service: "api", ID: "api-1", Port: 9000})
	testconsul.Eventually(t, func() bool { return stuck.Hung() > 0 }, "a write hangs")
	require.NoError(t, os.WriteFile(cfg, []byte(job("prod")), 0o600))
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGHUP))
	return d, out
}
