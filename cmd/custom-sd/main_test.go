package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"

	"github.com/custom-sd/custom-sd/internal/faultproxy"
	"github.com/custom-sd/custom-sd/internal/testconsul"
	"github.com/custom-sd/custom-sd/internal/testproc"
)

// binPath is the custom-sd binary built for these tests.
var binPath string

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

// testMain builds the binary, runs the tests and removes the binary, and
// returns the exit code: os.Exit would skip the deferred removal.
// CUSTOM_SD_TEST_BINARY runs the tests against another build instead (an
// earlier commit's, to see a test fail there).
func testMain(m *testing.M) int {
	if p := os.Getenv("CUSTOM_SD_TEST_BINARY"); p != "" {
		binPath = p
		return testconsul.Run(m)
	}
	dir, err := os.MkdirTemp("", "custom-sd-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binPath = filepath.Join(dir, "custom-sd")
	out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build custom-sd: %v\n%s", err, out)
		return 1
	}
	return testconsul.Run(m)
}

// daemon is a running custom-sd process.
type daemon struct {
	cmd    *exec.Cmd
	stderr *testproc.Buffer // its output: the log
	done   <-chan struct{}  // closed once it has exited
	url    string           // base URL of its HTTP side
}

func startDaemon(t *testing.T, args ...string) *daemon {
	t.Helper()
	return startDaemonEnv(t, nil, args...)
}

// startDaemonEnv starts custom-sd with extra environment variables; the
// CONSUL_* variables of the test's own environment are left out. Its HTTP
// side listens on a loopback port of its choosing, read back from its log
// (an info line: run it at --log.level=info or debug).
func startDaemonEnv(t *testing.T, env []string, args ...string) *daemon {
	t.Helper()
	return startDaemonWith(t, func(cmd *exec.Cmd) { cmd.Env = append(cmd.Env, env...) }, args...)
}

// startDaemonIn starts custom-sd in the working directory dir.
func startDaemonIn(t *testing.T, dir string, args ...string) *daemon {
	t.Helper()
	return startDaemonWith(t, func(cmd *exec.Cmd) { cmd.Dir = dir }, args...)
}

// startDaemonWith starts custom-sd with its command adjusted by setup. It
// is killed when the test ends, and its log shown if the test failed.
func startDaemonWith(t *testing.T, setup func(*exec.Cmd), args ...string) *daemon {
	t.Helper()
	args = append(args, "--web.listen-address=127.0.0.1:0")
	d := &daemon{cmd: exec.Command(binPath, args...)}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONSUL_") {
			d.cmd.Env = append(d.cmd.Env, kv)
		}
	}
	setup(d.cmd)
	d.stderr, d.done = testproc.Start(t, "custom-sd", d.cmd)
	d.url = "http://" + testproc.ListenAddress(t, d.stderr, d.done)
	return d
}

// waitLog waits until the log holds n lines containing every one of parts.
func (d *daemon) waitLog(t *testing.T, n int, parts ...string) {
	t.Helper()
	testconsul.Eventually(t, func() bool { return d.countLog(parts...) >= n }, "log lines with %q", parts)
}

func (d *daemon) countLog(parts ...string) int {
	n := 0
lines:
	for _, l := range strings.Split(d.stderr.String(), "\n") {
		for _, p := range parts {
			if !strings.Contains(l, p) {
				continue lines
			}
		}
		n++
	}
	return n
}

// terminate sends SIGTERM and returns the exit code.
func (d *daemon) terminate(t *testing.T) int {
	t.Helper()
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-d.done:
	case <-time.After(time.Minute): // a hang detector, not a timing assertion
		t.Fatal("custom-sd did not exit after SIGTERM")
	}
	return d.cmd.ProcessState.ExitCode()
}

type fileSDEntry struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// readTargets parses the output file and returns its entries by service ID.
func readTargets(t *testing.T, path string) map[string]fileSDEntry {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var entries []fileSDEntry
	require.NoError(t, json.Unmarshal(b, &entries), "the file is valid file_sd JSON:\n%s", b)
	out := map[string]fileSDEntry{}
	for _, e := range entries {
		out[e.Labels["__meta_consul_service_id"]] = e
	}
	return out
}

func hasTarget(path, id string) func() bool {
	return func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		var entries []fileSDEntry
		if json.Unmarshal(b, &entries) != nil {
			return false
		}
		for _, e := range entries {
			if e.Labels["__meta_consul_service_id"] == id {
				return true
			}
		}
		return false
	}
}

func TestEndToEnd(t *testing.T) {
	t.Parallel()
	srv := testconsul.Start(t)
	web1 := testconsul.Instance{Service: "web", ID: "web-1", Port: 8080, Tags: []string{"prod"}, Status: api.HealthPassing}
	srv.Register(t, web1)
	srv.Register(t, testconsul.Instance{Node: "node-2", Service: "web", ID: "web-2", Port: 8080})
	srv.Register(t, testconsul.Instance{Service: "db", ID: "db-1", Address: "127.0.0.3", Port: 5432})

	dir := t.TempDir()
	out := filepath.Join(dir, "custom_sd.json")
	d := startDaemon(t, "--consul.server="+srv.HTTPAddr, "--output.file="+out, "--log.level=debug")
	d.waitLog(t, 1, "Output file is complete")

	got := readTargets(t, out)
	require.Len(t, got, 4, "consul, web-1, web-2, db-1")
	require.Equal(t, []string{"127.0.0.1:8080"}, got["web-1"].Targets)
	require.Equal(t, ",prod,", got["web-1"].Labels["__meta_consul_tags"])
	require.Equal(t, []string{"127.0.0.3:5432"}, got["db-1"].Targets)
	fi, err := os.Stat(out)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o644), fi.Mode().Perm())

	// Register and deregister reach the file.
	srv.Register(t, testconsul.Instance{Node: "node-3", Service: "web", ID: "web-3", Port: 8081})
	testconsul.Eventually(t, hasTarget(out, "web-3"))
	srv.Deregister(t, "node-2", "web-2")
	testconsul.Eventually(t, func() bool { return !hasTarget(out, "web-2")() })

	// A change in Consul that changes no target (a check's output) does not
	// rewrite the file.
	before, err := os.Stat(out)
	require.NoError(t, err)
	_, err = srv.Client.Catalog().Register(&api.CatalogRegistration{
		Node: "node-1", Address: "127.0.0.1", TaggedAddresses: map[string]string{"lan": "127.0.0.1"},
		Service: &api.AgentService{ID: "web-1", Service: "web", Port: 8080, Tags: []string{"prod"}},
		Checks:  api.HealthChecks{{Node: "node-1", CheckID: "check:web-1", Name: "check web-1", Status: api.HealthPassing, ServiceID: "web-1", Output: "new output"}},
	}, nil)
	require.NoError(t, err)
	d.waitLog(t, 1, "changed in Consul but not its targets", "service=web")
	after, err := os.Stat(out)
	require.NoError(t, err)
	require.True(t, os.SameFile(before, after), "same inode")
	require.Equal(t, before.ModTime(), after.ModTime(), "not rewritten")

	// Consul goes away: the last good file stays byte for byte. Everything
	// Consul said is in the file already: the last change was seen there,
	// and the check's output was read and changed no target. So the file
	// read now is what it must hold after the queries fail.
	good, err := os.ReadFile(out)
	require.NoError(t, err)
	listFailed := []string{"Consul query failed", `query="service list"`}
	failures := d.countLog(listFailed...)
	srv.Halt(t)
	d.waitLog(t, failures+3, listFailed...)
	now, err := os.ReadFile(out)
	require.NoError(t, err)
	require.Equal(t, string(good), string(now))
	require.Len(t, readTargets(t, out), 4, "every target is still there: consul, web-1, web-3, db-1")

	// SIGTERM: a clean exit and no temporary file left behind.
	require.Equal(t, 0, d.terminate(t))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "only the output file")
}

func TestConsulUnreachableAtStart(t *testing.T) {
	t.Parallel()
	proxy := faultproxy.Start(t, "") // no agent behind it yet
	out := filepath.Join(t.TempDir(), "custom_sd.json")
	d := startDaemon(t, "--consul.server="+proxy.Addr, "--output.file="+out)
	d.waitLog(t, 1, "Consul query failed")
	_, err := os.Stat(out)
	require.ErrorIs(t, err, os.ErrNotExist, "no file while Consul is unreachable")

	srv := testconsul.Start(t)
	require.NoError(t, proxy.SetTarget(srv.HTTPAddr))
	srv.Register(t, testconsul.Instance{Service: "web", ID: "web-1", Port: 8080})
	testconsul.Eventually(t, hasTarget(out, "web-1"))
	require.Equal(t, 0, d.terminate(t))
}

func TestRestartDoesNotRewriteAnUnchangedFile(t *testing.T) {
	t.Parallel()
	srv := testconsul.Start(t)
	srv.Register(t, testconsul.Instance{Service: "web", ID: "web-1", Port: 8080})
	out := filepath.Join(t.TempDir(), "custom_sd.json")
	args := []string{"--consul.server=" + srv.HTTPAddr, "--output.file=" + out}

	first := startDaemon(t, args...)
	first.waitLog(t, 1, "Output file is complete")
	require.Equal(t, 0, first.terminate(t))

	// testconsul.Start returned once Consul's own entry was final, so the
	// next run finds the content it would write already there, and must
	// not write.
	before := stateOf(t, out)
	next := startDaemon(t, args...)
	next.waitLog(t, 1, "Output file is complete")
	require.Zero(t, next.metric(t, "custom_sd_file_writes_total", map[string]string{"result": "success"}), "no write")
	require.Equal(t, 0, next.terminate(t))
	before.same(t, out)
}

func TestBadFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing.json")
	require.NoError(t, os.WriteFile(existing, []byte("[]\n"), 0o644))
	unreadable := filepath.Join(dir, "token")
	require.NoError(t, os.Mkdir(unreadable, 0o755)) // reading a directory fails
	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	emptyToken := filepath.Join(dir, "empty-token")
	require.NoError(t, os.WriteFile(emptyToken, nil, 0o600))
	badWebConfig := filepath.Join(dir, "web.yml")
	require.NoError(t, os.WriteFile(badWebConfig, []byte("tls_server_config: [\n"), 0o600))

	tests := []struct {
		name string
		args []string
		want string // the flag and problem named in the one line
	}{
		{"unknown flag", []string{"--nope"}, "unknown long flag '--nope'"},
		{"bad duration", []string{"--consul.wait-time=soon"}, `--consul.wait-time: "soon" is not a duration`},
		{"wait time too long", []string{"--consul.wait-time=11m"}, "--consul.wait-time: 11m0s is not between 0 and 10m"},
		{"mode not octal", []string{"--output.mode=rw-r--r--"}, `--output.mode: "rw-r--r--" is not an octal permission`},
		{"mode too large", []string{"--output.mode=7777"}, `--output.mode: "7777" is not an octal permission`},
		{"mode unreadable", []string{"--output.mode=0"}, `--output.mode: "0" is not a sensible permission`},
		{"empty output file", []string{"--output.file="}, "--output.file: must not be empty"},
		{"output is a directory", []string{"--output.file=" + dir}, "--output.file: " + dir + " is a directory"},
		{"a directory as the token file", []string{"--consul.token-file=" + unreadable}, "--consul.token-file: " + unreadable + " is not a regular file"},
		{"a named pipe as the token file", []string{"--consul.token-file=" + fifo}, "--consul.token-file: " + fifo + " is not a regular file"},
		{"a device as the token file", []string{"--consul.token-file=/dev/zero"}, "--consul.token-file: /dev/zero is not a regular file"},
		{"empty token file", []string{"--consul.token-file=" + emptyToken}, "--consul.token-file: " + emptyToken + " is empty"},
		{"zero interval", []string{"--output.interval=0s"}, "--output.interval: 0s is not positive"},
		{"too few connections", []string{"--consul.max-connections=4"}, "--consul.max-connections: 4 is below the minimum of 5"},
		{"connections not a number", []string{"--consul.max-connections=many"}, `--consul.max-connections: "many" is not a whole number`},
		{"unknown log level", []string{"--log.level=loud"}, `--log.level: "loud" is not one of debug, info, warn, error`},
		{"unknown log format", []string{"--log.format=xml"}, `--log.format: "xml" is not one of logfmt, json`},
		{"empty tag separator", []string{"--consul.tag-separator="}, "--consul.tag-separator: must not be empty"},
		{"bad consul scheme", []string{"--consul.server=ftp://127.0.0.1:1"}, "--consul.server"},
		{"boolean with a value", []string{"--consul.allow-stale=false"}, "use --flag or --no-flag"},
		{"listen address without port", []string{"--web.listen-address=localhost"}, "--web.listen-address: address localhost: missing port in address"},
		{"malformed web config", []string{"--web.config.file=" + badWebConfig}, "--web.config.file: " + badWebConfig},
		{"removal share above 1", []string{"--output.max-removal=1.5"}, "--output.max-removal: 1.5 is not a share between 0 and 1"},
		{"removal share as a percentage", []string{"--output.max-removal=50%"}, `--output.max-removal: "50%" is not a number`},
		{"no shards", []string{"--output.shards=0"}, "--output.shards: 0 is not at least 1"},
		{"shard out of range", []string{"--output.shards=4", "--output.shard=4"}, "--output.shard: 4 is not -1 or a shard from 0 to 3"},
		{"shard without shards", []string{"--output.shard=0"}, "--output.shard: 0 is not -1 or a shard from 0 to 0"},
		{"zero removal hold", []string{"--output.removal-hold=0s"}, "--output.removal-hold: 0s is not positive"},
		{"unknown health", []string{"--consul.health=critical"}, `--consul.health: "critical" is not one of any, warning, passing`},
		{"node meta without =", []string{"--consul.node-meta=rack"}, `--consul.node-meta: "rack" is not key=value`},
		{"bad exclude regexp", []string{"--consul.exclude-service=(db"}, `--consul.exclude-service: "(db": error parsing regexp`},
		{"malformed filter", []string{"--consul.filter=Service.Port < 3"}, `--consul.filter: "Service.Port < 3" is not a Consul filter expression`},
		{"malformed health filter", []string{"--consul.health-filter=Service.ID =="}, `--consul.health-filter: "Service.ID ==" is not a Consul filter expression`},
		{"all and named datacenters", []string{"--consul.all-datacenters", "--consul.datacenter=dc1"}, "--consul.all-datacenters: cannot be combined with --consul.datacenter"},
		{"bad datacenter", []string{"--consul.datacenter=dc/1"}, `--consul.datacenter: "dc/1" is not a datacenter name`},
		{"bad scheme", []string{"--consul.scheme=ftp"}, `--consul.scheme: "ftp" is not http or https`},
		{"relative path prefix", []string{"--consul.path-prefix=consul"}, `--consul.path-prefix: "consul" does not start with /`},
		{"password without user", []string{"--consul.password-file=" + emptyToken}, "--consul.password-file: needs --consul.username"},
		{"empty password file", []string{"--consul.username=prom", "--consul.password-file=" + emptyToken}, "--consul.password-file: " + emptyToken + " is empty"},
		{"missing CA file", []string{"--consul.tls.ca-file=" + filepath.Join(dir, "nope.pem")}, "--consul.tls.ca-file: stat " + filepath.Join(dir, "nope.pem")},
		{"certificate without key", []string{"--consul.tls.cert-file=" + existing}, "--consul.tls.cert-file: a client certificate needs --consul.tls.key-file, and the other way round"},
		{"credentials in the address", []string{"--consul.server=https://prom:secret@127.0.0.1:8501"}, "--consul.server: must not carry credentials"},
		{"missing web config", []string{"--web.config.file=" + filepath.Join(dir, "nope.yml")}, "--web.config.file: " + filepath.Join(dir, "nope.yml")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stderr bytes.Buffer
			args := tc.args
			for _, def := range []string{"--output.file=" + existing, "--consul.server=127.0.0.1:1"} {
				flag, _, _ := strings.Cut(def, "=")
				if !strings.HasPrefix(strings.Join(tc.args, " "), flag) {
					args = append(args, def)
				}
			}
			code := run(context.Background(), args, &stderr)
			require.Equal(t, 2, code)
			msg := stderr.String()
			require.Equal(t, 1, strings.Count(msg, "\n"), "one line: %q", msg)
			require.Contains(t, msg, tc.want)
			b, err := os.ReadFile(existing)
			require.NoError(t, err)
			require.Equal(t, "[]\n", string(b), "the output file is untouched")
		})
	}
}

func TestACLTokenIsUsedAndNeverShown(t *testing.T) {
	t.Parallel()
	const management = "8f3a9c1e-5b7d-4e2f-9a6c-1d0b3e5f7a92"
	const unknown = "0c6d2b8e-3f1a-4c5d-8e7f-9a0b1c2d3e4f"
	srv := testconsul.Start(t, testconsul.WithACLs(management))
	srv.Register(t, testconsul.Instance{Service: "web", ID: "web-1", Port: 8080})
	dir := t.TempDir()
	tokenFile := func(name, token string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(token+"\n"), 0o600))
		return p
	}

	// An unknown token: Consul answers 403, logged without the token, and
	// no file is written.
	out := filepath.Join(dir, "denied.json")
	d := startDaemon(t, "--consul.server="+srv.HTTPAddr, "--output.file="+out, "--log.level=debug",
		"--consul.token-file="+tokenFile("unknown", unknown))
	d.waitLog(t, 2, "Consul denied the query (403)", "endpoint=/v1/catalog/services")
	require.Equal(t, 0, d.terminate(t))
	require.NotContains(t, d.stderr.String(), unknown)
	_, err := os.Stat(out)
	require.ErrorIs(t, err, os.ErrNotExist)

	// The right token, from a file and from CONSUL_HTTP_TOKEN.
	for name, run := range map[string]func(out string) *daemon{
		"file": func(out string) *daemon {
			return startDaemon(t, "--consul.server="+srv.HTTPAddr, "--output.file="+out, "--log.level=debug",
				"--consul.token-file="+tokenFile("management", management))
		},
		"env": func(out string) *daemon {
			return startDaemonEnv(t, []string{"CONSUL_HTTP_TOKEN=" + management},
				"--consul.server="+srv.HTTPAddr, "--output.file="+out, "--log.level=debug")
		},
	} {
		out := filepath.Join(dir, name+".json")
		d := run(out)
		testconsul.Eventually(t, hasTarget(out, "web-1"), name)
		require.Equal(t, 0, d.terminate(t))
		require.NotContains(t, d.stderr.String(), management, name)
	}
}
