package deploy

import (
	"bufio"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/custom-sd/custom-sd/internal/testproc"
)

const (
	unitPath    = "systemd/custom-sd.service"
	envPath     = "systemd/custom-sd.env"
	installedAt = "/usr/local/bin/custom-sd"
	// maxExposure is the highest `systemd-analyze security` exposure the
	// unit may have, in tenths (11 is 1.1, what the unit scores with
	// systemd 252). A setting dropped from the hardening raises it.
	maxExposure = "11"
)

// unit is a parsed systemd unit file: section, then key, then every value
// the key was given, in order.
type unit map[string]map[string][]string

func parseUnit(t *testing.T, p string) unit {
	t.Helper()
	f, err := os.Open(p)
	require.NoError(t, err)
	defer f.Close()
	u := unit{}
	section := ""
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
		default:
			require.NotEmpty(t, section, "a key before any section: %s", line)
			require.False(t, strings.HasSuffix(line, `\`), "no continuation lines: %s", line)
			k, v, ok := strings.Cut(line, "=")
			require.True(t, ok, "not key=value: %s", line)
			u[section][k] = append(u[section][k], v)
		}
	}
	require.NoError(t, s.Err())
	return u
}

// one returns the only value of key in section.
func (u unit) one(t *testing.T, section, key string) string {
	t.Helper()
	v := u[section][key]
	require.Len(t, v, 1, "[%s] %s= is set once", section, key)
	return v[0]
}

// readEnvFile reads KEY=value lines, dropping one pair of double quotes
// around the value, as systemd's EnvironmentFile= does for these simple
// lines.
func readEnvFile(t *testing.T, p string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	env := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		require.True(t, ok, "not KEY=value: %s", line)
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		require.NotContains(t, v, `"`, "keep the values simple: %s", line)
		env[k] = v
	}
	return env
}

// systemdAnalyze returns the path of systemd-analyze. The tests fail
// without it, in CI and elsewhere: they never skip.
func systemdAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	require.NoError(t, err, "systemd-analyze checks deploy/systemd/custom-sd.service: install systemd (Debian: apt-get install systemd)")
	return p
}

// buildBinary builds custom-sd into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "custom-sd")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/custom-sd").CombinedOutput()
	require.NoError(t, err, "%s", out)
	return bin
}

// unitWithBinary writes a copy of the unit whose commands run bin instead
// of the installed path, so that systemd-analyze verify finds an
// executable.
func unitWithBinary(t *testing.T, bin string) string {
	t.Helper()
	b, err := os.ReadFile(unitPath)
	require.NoError(t, err)
	require.Contains(t, string(b), "ExecStart="+installedAt+" ")
	p := filepath.Join(t.TempDir(), path.Base(unitPath))
	require.NoError(t, os.WriteFile(p, []byte(strings.ReplaceAll(string(b), installedAt, bin)), 0o644))
	return p
}

// TestSystemdUnitVerifies runs systemd-analyze verify on the unit and
// fails on any warning: verify exits 0 on unknown keys and bad values, it
// only prints them.
func TestSystemdUnitVerifies(t *testing.T) {
	t.Parallel()
	analyze := systemdAnalyze(t)
	p := unitWithBinary(t, buildBinary(t))
	out, err := exec.Command(analyze, "verify", p).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Empty(t, strings.TrimSpace(string(out)), "systemd-analyze verify prints nothing for a clean unit")
}

// TestSystemdUnitExposure keeps the hardening: `systemd-analyze security`
// must rate the unit at maxExposure or better.
func TestSystemdUnitExposure(t *testing.T) {
	t.Parallel()
	analyze := systemdAnalyze(t)
	out, err := exec.Command(analyze, "security", "--offline=true", "--threshold="+maxExposure, unitPath).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for custom-sd.service: ([0-9.]+)`).FindSubmatch(out)
	require.NotNil(t, m, "%s", out)
	t.Logf("systemd-analyze security: exposure %s", m[1])
	require.NoError(t, err, "exposure above %s tenths:\n%s", maxExposure, out)
}

func TestSystemdUnitSettings(t *testing.T) {
	t.Parallel()
	u := parseUnit(t, unitPath)
	for _, tc := range []struct {
		section, key, want string
	}{
		{"Service", "Type", "exec"},
		{"Service", "DynamicUser", "yes"},
		{"Service", "EnvironmentFile", "-/etc/default/custom-sd"},
		{"Service", "ExecReload", "/bin/kill -HUP $MAINPID"},
		{"Service", "KillSignal", "SIGTERM"},
		{"Service", "Restart", "on-failure"},
		{"Service", "RuntimeDirectoryMode", "0755"},
		{"Service", "RuntimeDirectoryPreserve", "restart"},
		{"Service", "CapabilityBoundingSet", ""},
		{"Service", "NoNewPrivileges", "yes"},
		{"Service", "ProtectSystem", "strict"},
		{"Service", "ProtectHome", "yes"},
		{"Service", "PrivateTmp", "yes"},
		{"Service", "PrivateDevices", "yes"},
		{"Service", "ProtectKernelTunables", "yes"},
		{"Service", "ProtectKernelModules", "yes"},
		{"Service", "ProtectKernelLogs", "yes"},
		{"Service", "ProtectControlGroups", "yes"},
		{"Service", "RestrictAddressFamilies", "AF_INET AF_INET6"},
		{"Service", "RestrictNamespaces", "yes"},
		{"Service", "LockPersonality", "yes"},
		{"Service", "MemoryDenyWriteExecute", "yes"},
		{"Install", "WantedBy", "multi-user.target"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			require.Equal(t, tc.want, u.one(t, tc.section, tc.key))
		})
	}
	require.Contains(t, u["Service"]["SystemCallFilter"], "@system-service")

	// The file lands in the runtime directory, which other users (Prometheus)
	// can traverse.
	require.Equal(t, []string{installedAt, "$ARGS"}, strings.Fields(u.one(t, "Service", "ExecStart")))
	args := strings.Fields(readEnvFile(t, envPath)["ARGS"])
	require.Equal(t, "/run/"+u.one(t, "Service", "RuntimeDirectory"), path.Dir(flag(t, args, "--output.file")))

	// The token: the credential's ID names the file CONSUL_HTTP_TOKEN_FILE
	// points at.
	id, _, ok := strings.Cut(u.one(t, "Service", "LoadCredential"), ":")
	require.True(t, ok, "LoadCredential=ID:PATH")
	require.Contains(t, u["Service"]["Environment"], "CONSUL_HTTP_TOKEN_FILE=%d/"+id)
}

// TestSystemdCommandLineStarts runs the unit's command line with the
// example environment file's ARGS, with only the paths and ports moved
// into the test's reach: custom-sd must accept every flag, serve
// /-/healthy, keep running on the unit's ExecReload signal, and stop with
// status 0 on its KillSignal.
func TestSystemdCommandLineStarts(t *testing.T) {
	t.Parallel()
	u := parseUnit(t, unitPath)
	env := readEnvFile(t, envPath)

	var args []string
	for _, a := range strings.Fields(u.one(t, "Service", "ExecStart"))[1:] {
		if a == "$ARGS" {
			args = append(args, strings.Fields(env["ARGS"])...)
			continue
		}
		args = append(args, a)
	}
	dir := t.TempDir()
	moved := map[string]string{
		"--output.file":        filepath.Join(dir, "custom_sd.json"),
		"--web.listen-address": "127.0.0.1:0", // the address comes from the log
		"--consul.server":      "127.0.0.1:1", // nothing answers: custom-sd retries
	}
	for i, a := range args {
		name, _, _ := strings.Cut(a, "=")
		if v, ok := moved[name]; ok {
			args[i] = name + "=" + v
			delete(moved, name)
		}
	}
	require.Empty(t, moved, "the command line sets these flags")

	token := filepath.Join(dir, "consul-token")
	require.NoError(t, os.WriteFile(token, []byte("00000000-0000-0000-0000-000000000000\n"), 0o600))
	cmd := exec.Command(buildBinary(t), args...)
	cmd.Env = append(os.Environ(), "CONSUL_HTTP_TOKEN_FILE="+token)
	log, done := testproc.Start(t, "custom-sd", cmd)
	addr := testproc.ListenAddress(t, log, done)
	healthy := func() bool {
		resp, err := http.Get("http://" + addr + "/-/healthy")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	require.Eventually(t, healthy, time.Minute, 20*time.Millisecond)

	require.Equal(t, "/bin/kill -HUP $MAINPID", u.one(t, "Service", "ExecReload"))
	require.NoError(t, cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool {
		return strings.Contains(log.String(), "Completed loading of configuration") && strings.Contains(log.String(), "source=\"the command line\"")
	}, time.Minute, 20*time.Millisecond, "custom-sd logs the reload")
	select {
	case <-done:
		t.Fatalf("custom-sd exited on SIGHUP:\n%s", log.String())
	default:
	}
	require.True(t, healthy(), "custom-sd still serves after SIGHUP")

	require.Equal(t, "SIGTERM", u.one(t, "Service", "KillSignal"))
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-done:
	case <-time.After(time.Minute): // a hang detector
		t.Fatalf("custom-sd did not stop on SIGTERM:\n%s", log.String())
	}
	require.Equal(t, 0, cmd.ProcessState.ExitCode(), "%s", log.String())
}
