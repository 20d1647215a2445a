package migrate

import (
	"io"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/custom-sd/custom-sd/internal/config"
)

// fuzzSeeds are configurations of the tests: every kind of entry, merge
// keys, anchors, flow style, secrets, long names, bombs.
var fuzzSeeds = []string{
	"scrape_configs: [{job_name: a, consul_sd_configs: [{server: 'c:8500', services: [a]}]}]\n",
	"scrape_configs:\n  - job_name: a\n    consul_sd_configs: &sd\n      - server: c:8500\n  - job_name: b\n    consul_sd_configs: *sd\n    scheme: https\n",
	"scrape_configs:\n  - job_name: a\n    consul_sd_configs:\n      - &base {server: c:8500, services: [a]}\n      - {<<: [*base, {tags: [t]}], services: [b]}\n",
	"scrape_configs:\n- job_name: web   # the shop\n  metrics_path: /metrics\n\n  consul_sd_configs:\n  # the one agent\n  - server: 'localhost:8500'\n    services: [\"web\"]\n\n  relabel_configs:\n  - source_labels: [__meta_consul_service]\n    target_label: service\n",
	"scrape_configs:\n  - consul_sd_configs:\n      - server: localhost:8500\n    job_name: web\n    file_sd_configs:\n      - files: [other.json]\n",
	"scrape_configs: [{job_name: a, consul_sd_configs: [{server: 'http://u:p@c:8500', token: t, tls_config: {ca: CA, cert_file: c, key: K}}]}]\n",
	"scrape_configs: [{job_name: a, consul_sd_configs: [{basic_auth: {username: u, password_file: p}, proxy_url: 'http://u:p@proxy:1', refresh_interval: 1m}]}]\n",
	"scrape_configs: [{job_name: " + strings.Repeat("x", 250) + ", consul_sd_configs: [{}, {}]}]\n",
	"alerting: {alertmanagers: [{consul_sd_configs: [{}]}]}\nscrape_config_files: [a.yml]\nscrape_configs: [{job_name: a, consul_sd_configs: [{services: [a], services: [b]}]}]\n",
	mergeBomb(22),
	laughs(8),
	"a: &a [x, *a]\n",
}

// FuzzConvert: any input is converted or refused with one line, without
// a panic, in time and memory bounded by the alias bound; what is
// converted is a custom-sd.yml that parses with valid job names and a
// Prometheus configuration that is YAML.
func FuzzConvert(f *testing.F) {
	f.Add(string(readTestdata(f, "shop.yml")))
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		res, err := Convert([]byte(src), Options{Input: "p.yml", Dir: "/p", Out: "/nonexistent/out", HTTPSD: "http://sd:9099"})
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error of more than one line: %q", err)
			}
			return
		}
		f, err := config.Parse(res.Config)
		if err != nil {
			t.Fatalf("custom-sd.yml does not parse: %v\n%s", err, res.Config)
		}
		for _, j := range f.Jobs {
			if err := config.ValidJobName(j.Name); err != nil {
				t.Fatal(err)
			}
		}
		var v any
		if err := yaml.Unmarshal(res.Prometheus, &v); err != nil {
			t.Fatalf("prometheus.yml is not YAML: %v\n%s", err, res.Prometheus)
		}
		res.Summary(io.Discard)
	})
}
