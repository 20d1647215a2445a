// Package e2e runs the whole chain the way a user does: a real Consul, the
// custom-sd binary, and a real Prometheus reading its file (file_sd) and its
// HTTP SD endpoint (http_sd) with the relabelling of deploy/prometheus.yml.
package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/custom-sd/custom-sd/internal/testconsul"
	"github.com/custom-sd/custom-sd/internal/testproc"
	"github.com/custom-sd/custom-sd/internal/testprom"
)

// binPath is the custom-sd binary built for these tests.
var binPath string

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

// testMain builds the binary, runs the tests and removes the binary, and
// returns the exit code: os.Exit would skip the deferred removal. A
// missing Consul or Prometheus binary fails each test that needs it.
func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "custom-sd-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binPath = filepath.Join(dir, "custom-sd")
	if out, err := exec.Command("go", "build", "-o", binPath, "../cmd/custom-sd").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build custom-sd: %v\n%s", err, out)
		return 1
	}
	return testconsul.Run(m)
}

// Job names in the test's Prometheus configuration.
const (
	fileJob = "consul-services" // deploy/prometheus.yml's job, unchanged
	httpJob = "consul-services-http"
)

// prometheusConfig returns deploy/prometheus.yml with a 1s scrape interval
// and a second job that reads the same targets through HTTP SD from
// sdURL, with the same relabelling.
func prometheusConfig(t *testing.T, sdURL string) []byte {
	t.Helper()
	b, err := os.ReadFile("../deploy/prometheus.yml")
	require.NoError(t, err)
	var cfg map[string]any
	require.NoError(t, yaml.Unmarshal(b, &cfg))
	cfg["global"] = map[string]any{"scrape_interval": "1s", "scrape_timeout": "1s"}
	jobs := cfg["scrape_configs"].([]any)
	require.Len(t, jobs, 1)
	file := jobs[0].(map[string]any)
	require.Equal(t, fileJob, file["job_name"])
	http := map[string]any{}
	for k, v := range file {
		http[k] = v
	}
	delete(http, "file_sd_configs")
	http["job_name"] = httpJob
	http["http_sd_configs"] = []any{map[string]any{"url": sdURL, "refresh_interval": "1s"}}
	cfg["scrape_configs"] = append(jobs, http)
	out, err := yaml.Marshal(cfg)
	require.NoError(t, err)
	return out
}

// byJob groups active targets by scrape pool and instance.
func byJob(targets []testprom.Target) map[string]map[string]testprom.Target {
	out := map[string]map[string]testprom.Target{}
	for _, tg := range targets {
		if out[tg.ScrapePool] == nil {
			out[tg.ScrapePool] = map[string]testprom.Target{}
		}
		out[tg.ScrapePool][tg.Labels["instance"]] = tg
	}
	return out
}

// startCustomSD starts custom-sd with its HTTP side on a loopback port of
// its choosing and returns that address, read back from its log.
func startCustomSD(t *testing.T, args ...string) string {
	t.Helper()
	out, exited := testproc.Start(t, "custom-sd", exec.Command(binPath, append(args, "--web.listen-address=127.0.0.1:0")...))
	return testproc.ListenAddress(t, out, exited)
}

// downTarget returns the address of a listener that accepts connections
// and closes them at once: a scrape target that is down. It stays open,
// so nothing else can take its port, until the test ends.
func downTarget(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		<-done
	})
	return l.Addr().String()
}

// port returns the port of addr (host:port) as a number.
func port(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	n, err := strconv.Atoi(p)
	require.NoError(t, err)
	return n
}

func TestPrometheusScrapesWhatConsulKnows(t *testing.T) {
	srv := testconsul.Start(t)
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "sd"), 0o755))
	sdAddr := startCustomSD(t, "--consul.server="+srv.HTTPAddr, "--output.file="+filepath.Join(dir, "sd", "custom_sd.json"),
		"--log.level=debug")
	webAddr := downTarget(t)

	// custom-sd registers itself, as a service would; web-1 has a metrics
	// path in its meta; batch-1 is tagged staging, which the relabelling
	// drops, as it drops Consul itself.
	srv.Register(t, testconsul.Instance{Service: "custom-sd", ID: "custom-sd", Port: port(t, sdAddr),
		Meta: map[string]string{"team": "observability"}, Status: api.HealthPassing})
	srv.Register(t, testconsul.Instance{Node: "node-2", Service: "web", ID: "web-1", Address: "127.0.0.1", Port: port(t, webAddr),
		Tags: []string{"prod"}, Meta: map[string]string{"team": "storefront", "metrics_path": "/internal/metrics"}, Status: api.HealthWarning})
	srv.Register(t, testconsul.Instance{Service: "batch", ID: "batch-1", Port: 9100, Tags: []string{"staging"}})

	config := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(config, prometheusConfig(t, "http://"+sdAddr+"/targets"), 0o644))
	out, err := testprom.Promtool(t, "check", "config", config)
	require.NoError(t, err, out)
	prom := testprom.Start(t, config)

	// Both jobs discover custom-sd and web-1 with the relabelled labels;
	// Consul and the staging instance are dropped.
	var jobs map[string]map[string]testprom.Target
	testconsul.Eventually(t, func() bool {
		active, _ := prom.Targets(t)
		jobs = byJob(active)
		return len(jobs[fileJob]) == 2 && len(jobs[httpJob]) == 2
	}, "both jobs see two targets")
	for _, job := range []string{fileJob, httpJob} {
		self, web := jobs[job][sdAddr], jobs[job][webAddr]
		require.Equal(t, map[string]string{
			"instance": sdAddr, "job": job, "service": "custom-sd", "dc": "dc1", "node": "node-1",
			"health": "passing", "team": "observability",
		}, self.Labels, job)
		require.Equal(t, map[string]string{
			"instance": webAddr, "job": job, "service": "web", "dc": "dc1", "node": "node-2",
			"health": "warning", "team": "storefront",
		}, web.Labels, job)
		require.Equal(t, "http://"+webAddr+"/internal/metrics", web.ScrapeURL, "metrics_path from the meta")
		require.Equal(t, "web-1", web.DiscoveredLabels["__meta_consul_service_id"])
		require.Equal(t, ",prod,", web.DiscoveredLabels["__meta_consul_tags"])
		require.Equal(t, "127.0.0.1", web.DiscoveredLabels["__meta_consul_address"])
	}
	_, dropped := prom.Targets(t)
	var droppedServices []string
	for _, d := range dropped {
		droppedServices = append(droppedServices, d.DiscoveredLabels["__meta_consul_service"])
	}
	slices.Sort(droppedServices)
	require.Equal(t, []string{"batch", "batch", "consul", "consul"}, droppedServices, "dropped by relabelling, in both jobs")

	// Prometheus really scrapes custom-sd's /metrics; web-1 is down.
	testconsul.Eventually(t, func() bool {
		active, _ := prom.Targets(t)
		jobs = byJob(active)
		return jobs[fileJob][sdAddr].Health == "up" && jobs[httpJob][sdAddr].Health == "up" &&
			jobs[fileJob][webAddr].Health == "down"
	}, "custom-sd is scraped: health up")

	// A deregistered instance leaves both jobs; a new one arrives.
	srv.Deregister(t, "node-2", "web-1")
	srv.Register(t, testconsul.Instance{Service: "api", ID: "api-1", Port: 9000})
	testconsul.Eventually(t, func() bool {
		active, _ := prom.Targets(t)
		jobs = byJob(active)
		for _, job := range []string{fileJob, httpJob} {
			if _, ok := jobs[job][webAddr]; ok || jobs[job]["127.0.0.1:9000"].Labels["service"] != "api" {
				return false
			}
		}
		return true
	}, "web-1 leaves and api-1 arrives in both jobs")
}
