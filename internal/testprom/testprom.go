// Package testprom starts a real Prometheus server for end-to-end tests and
// runs promtool.
//
// The binaries are the pinned Prometheus that `make prometheus` builds from
// tools/prometheus into the cache. They are found through CUSTOM_SD_PROMETHEUS
// and CUSTOM_SD_PROMTOOL, then the cache, then PATH (Debian's prometheus
// package works too). A missing binary fails the test: these tests never skip.
package testprom

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/custom-sd/custom-sd/internal/testproc"
)

// Version is the Go module version of the pinned Prometheus (3.16.0). Keep
// it in step with tools/prometheus/go.mod and the Makefile.
const Version = "v0.316.0"

// Binary returns the path of "prometheus" or "promtool", or an error that
// says how to build it.
func Binary(name string) (string, error) {
	env := map[string]string{"prometheus": "CUSTOM_SD_PROMETHEUS", "promtool": "CUSTOM_SD_PROMTOOL"}[name]
	if env == "" {
		return "", fmt.Errorf("unknown binary %q", name)
	}
	if p := os.Getenv(env); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s: %w", env, err)
		}
		return p, nil
	}
	if dir, err := os.UserCacheDir(); err == nil {
		p := filepath.Join(dir, "custom-sd", "prometheus-"+Version, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("no %s binary: run `make prometheus` (builds Prometheus %s into the cache) or set %s", name, Version, env)
}

// Promtool runs promtool with args and returns its combined output and
// error.
func Promtool(t testing.TB, args ...string) (string, error) {
	t.Helper()
	p, err := Binary("promtool")
	require.NoError(t, err)
	out, err := exec.Command(p, args...).CombinedOutput()
	return string(out), err
}

// Server is a running Prometheus.
type Server struct {
	URL string
	log *testproc.Buffer
}

// Start runs Prometheus with the configuration file at config on a loopback
// port of its choosing, keeping its data in a temporary directory, and
// waits until it is ready. It stops when the test ends.
func Start(t testing.TB, config string) *Server {
	t.Helper()
	bin, err := Binary("prometheus")
	require.NoError(t, err)
	s := &Server{}
	var done <-chan struct{}
	s.log, done = testproc.Start(t, "prometheus", exec.Command(bin,
		"--config.file="+config,
		"--storage.tsdb.path="+t.TempDir(),
		"--web.listen-address=127.0.0.1:0",
		"--log.level=info", // for the "Listening on" line
	))
	s.URL = "http://" + testproc.ListenAddress(t, s.log, done)
	require.Eventually(t, func() bool {
		select {
		case <-done:
			return true // reported below
		default:
		}
		resp, err := http.Get(s.URL + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 60*time.Second, 50*time.Millisecond, "prometheus becomes ready")
	select {
	case <-done:
		t.Fatalf("prometheus exited:\n%s", s.log.String())
	default:
	}
	return s
}

// Target is one entry of /api/v1/targets.
type Target struct {
	DiscoveredLabels map[string]string `json:"discoveredLabels"`
	Labels           map[string]string `json:"labels"`
	ScrapePool       string            `json:"scrapePool"`
	ScrapeURL        string            `json:"scrapeUrl"`
	Health           string            `json:"health"`
	LastError        string            `json:"lastError"`
}

// Targets returns Prometheus's active and dropped targets.
func (s *Server) Targets(t testing.TB) (active, dropped []Target) {
	t.Helper()
	resp, err := http.Get(s.URL + "/api/v1/targets")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var body struct {
		Status string `json:"status"`
		Data   struct {
			ActiveTargets  []Target `json:"activeTargets"`
			DroppedTargets []Target `json:"droppedTargets"`
		} `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	require.Equal(t, "success", body.Status)
	return body.Data.ActiveTargets, body.Data.DroppedTargets
}
