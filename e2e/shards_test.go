package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/custom-sd/custom-sd/internal/testconsul"
	"github.com/custom-sd/custom-sd/internal/testprom"
)

// TestShardsMatchPrometheusHashmod: with --output.shards=3, the three files
// hold exactly the targets that Prometheus's own hashmod relabelling gives
// to each of three shards, and together they hold every target.
func TestShardsMatchPrometheusHashmod(t *testing.T) {
	srv := testconsul.Start(t)
	for i := range 24 {
		srv.Register(t, testconsul.Instance{Service: fmt.Sprintf("svc-%d", i%6), ID: fmt.Sprintf("i-%d", i), Address: "127.0.0.1", Port: 20000 + i})
	}
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "sd"), 0o755))
	out := filepath.Join(dir, "sd", "custom_sd.json")
	startCustomSD(t, "--consul.server="+srv.HTTPAddr, "--output.file="+out, "--output.shards=3", "--consul.exclude-service=consul")

	// Prometheus: job shard-i reads every shard file and keeps its hashmod
	// share, as a fleet of three Prometheus servers sharing one glob would.
	config := "global:\n  scrape_interval: 1h\nscrape_configs:\n"
	for i := range 3 {
		config += fmt.Sprintf(`  - job_name: shard-%d
    file_sd_configs:
      - files: ["sd/custom_sd.*.json"]
    relabel_configs:
      - source_labels: [__address__]
        modulus: 3
        target_label: __tmp_shard
        action: hashmod
      - source_labels: [__tmp_shard]
        regex: "%d"
        action: keep
`, i, i)
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(config), 0o644))
	out2, err := testprom.Promtool(t, "check", "config", cfgPath)
	require.NoError(t, err, out2)
	prom := testprom.Start(t, cfgPath)

	fileTargets := func(i int) []string {
		b, err := os.ReadFile(filepath.Join(dir, "sd", fmt.Sprintf("custom_sd.%d.json", i)))
		if err != nil {
			return nil
		}
		var ts []string
		for _, e := range parseEntries(b) {
			ts = append(ts, e.Targets...)
		}
		slices.Sort(ts)
		return ts
	}
	var byJob map[string][]string
	testconsul.Eventually(t, func() bool {
		active, _ := prom.Targets(t)
		byJob = map[string][]string{}
		for _, tg := range active {
			byJob[tg.ScrapePool] = append(byJob[tg.ScrapePool], tg.Labels["instance"])
		}
		n := 0
		for _, ts := range byJob {
			n += len(ts)
		}
		return n == 24
	}, "Prometheus sees all 24 targets across the three jobs")

	var union []string
	for i := range 3 {
		got := byJob[fmt.Sprintf("shard-%d", i)]
		slices.Sort(got)
		require.NotEmpty(t, got, "shard %d", i)
		require.Equal(t, fileTargets(i), got, "shard file %d holds exactly hashmod's share %d", i, i)
		union = append(union, got...)
	}
	require.Len(t, union, 24)
}

type entry struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// parseEntries parses file_sd content, or returns nil.
func parseEntries(b []byte) []entry {
	var es []entry
	if json.Unmarshal(b, &es) != nil {
		return nil
	}
	return es
}
