package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"

	"github.com/custom-sd/custom-sd/internal/faultproxy"
	"github.com/custom-sd/custom-sd/internal/testconsul"
	"github.com/custom-sd/custom-sd/internal/testproc"
)

// These tests put custom-sd behind faults and watch its file the way
// Prometheus does: a reader parses it over and over and checks that every
// read is a whole, valid file holding every target Consul kept all along.

// reader parses a file_sd file in a loop.
type reader struct {
	path     string
	required []string // service IDs that must be in every read once the file exists
	stop     chan struct{}
	done     chan struct{}

	mu      sync.Mutex
	reads   int
	invalid []string
	missing []string
}

func startReader(t *testing.T, path string, required ...string) *reader {
	r := &reader{path: path, required: required, stop: make(chan struct{}), done: make(chan struct{})}
	go r.loop()
	t.Cleanup(r.halt)
	return r
}

func (r *reader) loop() {
	defer close(r.done)
	for {
		select {
		case <-r.stop:
			return
		default:
		}
		b, err := os.ReadFile(r.path)
		if err == nil {
			var entries []entry
			r.mu.Lock()
			r.reads++
			if err := json.Unmarshal(b, &entries); err != nil {
				r.invalid = append(r.invalid, fmt.Sprintf("%v: %q", err, b))
			} else {
				var ids []string
				for _, e := range entries {
					ids = append(ids, e.Labels["__meta_consul_service_id"])
				}
				for _, id := range r.required {
					if !slices.Contains(ids, id) {
						r.missing = append(r.missing, id)
					}
				}
			}
			r.mu.Unlock()
		}
		time.Sleep(100 * time.Microsecond)
	}
}

func (r *reader) halt() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	<-r.done
}

// check stops the reader and fails the test if any read was invalid or
// lacked a required target.
func (r *reader) check(t *testing.T) {
	t.Helper()
	r.halt()
	r.mu.Lock()
	defer r.mu.Unlock()
	require.Positive(t, r.reads)
	require.Empty(t, r.invalid, "every read is a valid file (%d reads)", r.reads)
	require.Empty(t, r.missing, "no read lacks a target Consul still has (%d reads)", r.reads)
	t.Logf("%d reads of the file, all valid and complete", r.reads)
}

// fileIDs returns the service IDs in the file, or nil.
func fileIDs(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var ids []string
	for _, e := range parseEntries(b) {
		ids = append(ids, e.Labels["__meta_consul_service_id"])
	}
	slices.Sort(ids)
	return ids
}

func has(path, id string) func() bool {
	return func() bool { return slices.Contains(fileIDs(path), id) }
}

// TestOneServiceFailing: one service's queries fail in each way the proxy
// can make them fail; it keeps its last targets, the other services go on
// updating, retries back off, and it catches up once the fault clears.
func TestOneServiceFailing(t *testing.T) {
	t.Parallel()
	for _, fault := range []faultproxy.Fault{faultproxy.Status500, faultproxy.Hang, faultproxy.Reset, faultproxy.Truncate, faultproxy.Malformed} {
		t.Run(fault.String(), func(t *testing.T) {
			t.Parallel()
			srv := testconsul.Start(t)
			srv.Register(t, testconsul.Instance{Service: "web", ID: "web-1", Port: 8080})
			srv.Register(t, testconsul.Instance{Service: "db", ID: "db-1", Port: 5432})
			proxy := faultproxy.Start(t, srv.HTTPAddr)
			out := filepath.Join(t.TempDir(), "custom_sd.json")
			startCustomSD(t, "--consul.server="+proxy.Addr, "--output.file="+out, "--consul.wait-time=1s")
			testconsul.Eventually(t, has(out, "db-1"), "first file")
			r := startReader(t, out, "web-1", "db-1")

			// From the next request on, db's reads fail.
			before := proxy.Count("/v1/health/service/db")
			proxy.Set("/v1/health/service/db", fault)
			testconsul.Eventually(t, func() bool { return proxy.Count("/v1/health/service/db") > before }, "a db read meets the fault")
			faulted := proxy.Count("/v1/health/service/db")
			start := time.Now()
			srv.Register(t, testconsul.Instance{Node: "node-3", Service: "db", ID: "db-3", Port: 5432})
			srv.Register(t, testconsul.Instance{Node: "node-2", Service: "web", ID: "web-2", Port: 8080})
			testconsul.Eventually(t, has(out, "web-2"), "web still updates")
			testconsul.Eventually(t, func() bool { return proxy.Count("/v1/health/service/db") > faulted }, "db is retried")
			elapsed := time.Since(start)
			require.NotContains(t, fileIDs(out), "db-3", "db's failing reads change nothing")
			require.Contains(t, fileIDs(out), "db-1", "db keeps its last targets")
			// Backoff from 250ms doubling: a hot loop would make thousands.
			retries := proxy.Count("/v1/health/service/db") - faulted
			require.LessOrEqual(t, retries, 3+int(elapsed/(100*time.Millisecond)), "no hot loop: %d requests in %s", retries, elapsed)

			proxy.Set("/v1/health/service/db", faultproxy.Pass)
			testconsul.Eventually(t, has(out, "db-3"), "db catches up once the fault clears")
			r.check(t)
		})
	}
}

// TestSlowConsul: every answer comes later than the wait time. custom-sd
// waits; the first file is complete and changes still arrive.
func TestSlowConsul(t *testing.T) {
	t.Parallel()
	srv := testconsul.Start(t)
	srv.Register(t, testconsul.Instance{Service: "web", ID: "web-1", Port: 8080})
	srv.Register(t, testconsul.Instance{Service: "db", ID: "db-1", Port: 5432})
	proxy := faultproxy.Start(t, srv.HTTPAddr)
	proxy.Delay = 1500 * time.Millisecond
	proxy.Set("/v1/", faultproxy.Slow)
	out := filepath.Join(t.TempDir(), "custom_sd.json")
	r := startReader(t, out, "web-1", "db-1", "consul")
	startCustomSD(t, "--consul.server="+proxy.Addr, "--output.file="+out, "--consul.wait-time=1s")
	testconsul.Eventually(t, has(out, "db-1"), "first file")
	srv.Register(t, testconsul.Instance{Node: "node-2", Service: "web", ID: "web-2", Port: 8080})
	testconsul.Eventually(t, has(out, "web-2"), "a change through a slow Consul")
	r.check(t)
}

// TestRateLimitedConsul: every request gets a 429. custom-sd backs off
// (from 2s), writes nothing, and starts once the limit lifts.
func TestRateLimitedConsul(t *testing.T) {
	t.Parallel()
	srv := testconsul.Start(t)
	srv.Register(t, testconsul.Instance{Service: "web", ID: "web-1", Port: 8080})
	proxy := faultproxy.Start(t, srv.HTTPAddr)
	proxy.Set("/v1/", faultproxy.Status429)
	out := filepath.Join(t.TempDir(), "custom_sd.json")
	start := time.Now()
	startCustomSD(t, "--consul.server="+proxy.Addr, "--output.file="+out)
	testconsul.Eventually(t, func() bool { return proxy.Count("/v1/") >= 4 }, "retries")
	elapsed := time.Since(start)
	n := proxy.Count("/v1/")
	// From 2s, jittered down to half: at most one request a second.
	require.LessOrEqual(t, n, 2+int(elapsed/time.Second), "%d requests in %s", n, elapsed)
	_, err := os.Stat(out)
	require.ErrorIs(t, err, os.ErrNotExist)

	proxy.Set("/v1/", faultproxy.Pass)
	testconsul.Eventually(t, has(out, "web-1"), "the file once the limit lifts")
}

// TestKillDuringChurn: custom-sd is killed with SIGKILL while Consul churns
// and a reader parses the file. Every read is valid; the file left behind
// is valid; the next start removes any temporary file and catches up.
func TestKillDuringChurn(t *testing.T) {
	t.Parallel()
	srv := testconsul.Start(t)
	srv.Register(t, testconsul.Instance{Service: "anchor", ID: "anchor-1", Port: 7000})
	dir := t.TempDir()
	out := filepath.Join(dir, "custom_sd.json")
	args := []string{"--consul.server=" + srv.HTTPAddr, "--output.file=" + out, "--output.interval=1ms"}
	cmd := exec.Command(binPath, append(args, "--web.listen-address=127.0.0.1:0")...)
	_, exited := testproc.Start(t, "custom-sd", cmd)
	testconsul.Eventually(t, has(out, "anchor-1"), "first file")
	r := startReader(t, out, "anchor-1")

	churn := func(n int) {
		for i := range n {
			in := testconsul.Instance{Node: fmt.Sprintf("node-%d", i%5), Service: fmt.Sprintf("svc-%d", i%20), ID: fmt.Sprintf("i-%d", i), Port: 8000 + i%100, Status: api.HealthPassing}
			srv.Register(t, in)
			if i%3 == 0 {
				srv.Deregister(t, in.Node, in.ID)
			}
		}
	}
	churn(600)
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	<-exited
	churn(50)
	r.check(t)
	require.NotEmpty(t, fileIDs(out), "the file left by the killed process is valid")

	// The next start cleans up and follows Consul again.
	startCustomSD(t, args...)
	srv.Register(t, testconsul.Instance{Service: "after", ID: "after-1", Port: 7001})
	testconsul.Eventually(t, has(out, "after-1"), "the restarted custom-sd catches up")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		require.False(t, strings.HasPrefix(e.Name(), ".custom_sd.json.tmp-"), "temporary file %s left", e.Name())
	}
}

// TestConsulKilledAndRestarted: Consul is killed with SIGKILL mid-run and
// started again on the same data directory. The file keeps every target
// meanwhile and follows Consul again afterwards.
func TestConsulKilledAndRestarted(t *testing.T) {
	t.Parallel()
	srv := testconsul.Start(t)
	srv.Register(t, testconsul.Instance{Service: "web", ID: "web-1", Port: 8080})
	srv.Register(t, testconsul.Instance{Service: "db", ID: "db-1", Port: 5432})
	out := filepath.Join(t.TempDir(), "custom_sd.json")
	startCustomSD(t, "--consul.server="+srv.HTTPAddr, "--output.file="+out)
	testconsul.Eventually(t, has(out, "db-1"), "first file")
	r := startReader(t, out, "web-1", "db-1")

	srv.Halt(t)
	srv.Restart(t)
	srv.Register(t, testconsul.Instance{Node: "node-2", Service: "web", ID: "web-2", Port: 8081})
	testconsul.Eventually(t, has(out, "web-2"), "a change after the restart")
	r.check(t)
}
