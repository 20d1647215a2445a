package migrate

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/custom-sd/custom-sd/internal/config"
	"github.com/custom-sd/custom-sd/internal/testprom"
)

func TestConvert(t *testing.T) {
	t.Setenv("CONSUL_HTTP_ADDR", "")
	t.Setenv("CONSUL_HTTP_TOKEN", "")
	tests := []struct {
		name   string
		out    string // relative to the test's directory
		httpSD string
	}{
		{name: "file_sd beside the original", out: "prom"},
		{name: "file_sd in another directory", out: "migrated"},
		{name: "http_sd in another directory", out: "migrated", httpSD: "http://custom-sd:9099/"},
	}
	shop := readTestdata(t, "shop.yml")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			promPath := writeShop(t, dir)
			promDir := filepath.Dir(promPath)
			out := filepath.Join(dir, tc.out)
			res, err := convertFile(t, promPath, out, tc.httpSD)
			require.NoError(t, err)
			writeResult(t, res)
			stdout := summary(res)

			// custom-sd.yml loads, from any working directory, and its
			// relative paths name the Prometheus configuration's files.
			t.Chdir(t.TempDir())
			cfgPath := filepath.Join(out, "custom-sd.yml")
			c, err := config.Load(cfgPath)
			require.NoError(t, err)
			require.NotContains(t, string(res.Config), "s3cret")

			require.Len(t, c.Consuls, 3)
			plain, tls, legacy := c.Consuls["consul.internal"], c.Consuls["consul-tls.internal"], c.Consuls["consul.internal_2"]
			require.NotNil(t, plain)
			require.NotNil(t, tls)
			require.NotNil(t, legacy)
			require.Equal(t, "consul.internal:8500", plain.Config.API.Address)
			require.Equal(t, "http", plain.Config.API.Scheme)
			require.Equal(t, filepath.Join(out, "secrets", "consul.internal.token"), plain.Config.TokenFile)
			require.Equal(t, []SecretFile{{"secrets/consul.internal.token", []byte("s3cret")}}, res.Secrets)
			require.Empty(t, legacy.Config.TokenFile)
			require.Equal(t, "https", tls.Config.API.Scheme)
			require.Equal(t, "/consul", tls.Config.API.PathPrefix)
			require.Equal(t, "prom", tls.Config.API.HttpAuth.Username)
			require.Equal(t, "pw", passwordOf(t, tls), "read from password_file")
			require.Equal(t, filepath.Join(promDir, "certs", "ca.pem"), tls.Config.API.TLSConfig.CAFile)
			require.Equal(t, filepath.Join(promDir, "certs", "client.pem"), tls.Config.API.TLSConfig.CertFile)
			require.Equal(t, filepath.Join(promDir, "certs", "client-key.pem"), tls.Config.API.TLSConfig.KeyFile)
			require.Equal(t, "consul.internal", tls.Config.API.TLSConfig.Address)

			byName := map[string]*config.JobSpec{}
			var names []string
			for _, j := range c.Jobs {
				byName[j.Name] = j
				names = append(names, j.Name)
				require.Equal(t, filepath.Join(out, "sd", j.Name+".json"), j.Path)
			}
			require.Equal(t, []string{"node", "apps-0", "apps-1", "secure_edge", "legacy"}, names)
			require.Equal(t, "consul.internal", byName["node"].Consul)
			require.Equal(t, []string{"node-exporter"}, byName["node"].Job.Selection.Services)
			require.Equal(t, map[string]string{"rack": "a"}, byName["node"].Job.Selection.NodeMeta)
			require.True(t, byName["node"].Job.AllowStale)
			require.Equal(t, ",", byName["node"].Job.TagSeparator)
			apps0 := byName["apps-0"].Job
			require.Equal(t, []string{"prod", "metrics"}, apps0.Selection.Tags)
			require.Equal(t, `ServiceMeta.team == "shop"`, apps0.Selection.Filter)
			require.Equal(t, "Service.Port != 8081", apps0.Selection.HealthFilter)
			require.Equal(t, ";", apps0.TagSeparator)
			require.False(t, apps0.AllowStale)
			require.Equal(t, []string{"dc1"}, apps0.Datacenters)
			require.Equal(t, []string{"dc2"}, byName["apps-1"].Job.Datacenters)
			require.Equal(t, "consul-tls.internal", byName["secure_edge"].Consul)
			require.Equal(t, "consul.internal_2", byName["legacy"].Consul)

			// prometheus.yml is the original with consul_sd_configs
			// replaced, and relative paths naming the same files.
			migrated := res.Prometheus
			var got, want map[string]any
			require.NoError(t, yaml.Unmarshal(migrated, &got))
			require.NoError(t, yaml.Unmarshal(shop, &want))
			for _, p := range shopPaths {
				at := lookupPath(t, want, p)
				rel, err := filepath.Rel(out, filepath.Join(promDir, at.get()))
				require.NoError(t, err)
				require.Equal(t, rel, lookupPath(t, got, p).get(), "%v", p)
				if tc.out != "prom" {
					require.Contains(t, stdout, at.get()+" -> "+rel)
				}
				at.set(rel)
			}
			wantSD := map[string][]any{
				"node":        {"sd/node.json"},
				"apps":        {"sd/apps-0.json", "sd/apps-1.json"},
				"secure/edge": {"sd/secure_edge.json"},
				"legacy":      {"sd/legacy.json"},
			}
			for _, sc := range got["scrape_configs"].([]any) {
				job := sc.(map[string]any)
				files, ok := wantSD[job["job_name"].(string)]
				if !ok {
					continue
				}
				key := "file_sd_configs"
				var added []any
				if tc.httpSD == "" {
					added = []any{map[string]any{"files": files}}
				} else {
					key = "http_sd_configs"
					for _, f := range files {
						name := strings.TrimSuffix(strings.TrimPrefix(f.(string), "sd/"), ".json")
						e := map[string]any{"url": "http://custom-sd:9099/targets/" + name}
						if name == "legacy" {
							e["refresh_interval"] = "1m"
						}
						added = append(added, e)
					}
				}
				entries := job[key].([]any)
				require.GreaterOrEqual(t, len(entries), len(added))
				require.Equal(t, added, entries[len(entries)-len(added):], "the job's own entries first")
				if entries = entries[:len(entries)-len(added)]; len(entries) == 0 {
					delete(job, key)
				} else {
					job[key] = entries
				}
			}
			for _, sc := range want["scrape_configs"].([]any) {
				delete(sc.(map[string]any), "consul_sd_configs")
			}
			require.Equal(t, want, got, "nothing else changed")
			require.Contains(t, string(migrated), "# Prometheus for the shop.", "comments are kept")
			require.Contains(t, string(migrated), "action: keep # only production")
			require.Contains(t, string(migrated), "\n\n  - job_name: legacy\n", "blank lines are kept")

			// The summary names each job and every field left behind.
			for _, want := range []string{
				"node", "apps-0", "apps-1", "secure_edge", "legacy",
				"consul_sd_configs[0].refresh_interval: not needed",
				"consul_sd_configs[0].proxy_url: not supported",
				"HTTP_PROXY/HTTPS_PROXY=http://user:<secret>@proxy.internal:3128",
				"ACL token <secret> in secrets/consul.internal.token",
			} {
				require.Contains(t, stdout, want)
			}
			require.Contains(t, stdout, "\nNext:\n  custom-sd check config "+cfgPath+" ")
			require.NotContains(t, stdout, "s3cret")
			require.NotContains(t, stdout, ":pw@")

			// Prometheus takes the result.
			promtoolOut, err := testprom.Promtool(t, "check", "config", filepath.Join(out, "prometheus.yml"))
			require.NoError(t, err, promtoolOut)
			require.Contains(t, promtoolOut, "SUCCESS: 1 rule files found", "rule_files still names the rules")
		})
	}
}

func TestConvertEditsInPlace(t *testing.T) {
	tests := []struct {
		name, in string
		// want is the whole of prometheus.yml when the text is edited in
		// place; empty when it has to be encoded afresh.
		want string
		// wantTree is prometheus.yml decoded.
		wantTree string
	}{
		{
			name: "block style, lists at the key's indentation, blank lines and comments",
			in: `global:
  scrape_interval: 1m

rule_files: ["rules.yml", 'it''s.yml', /abs/rules.yml]

scrape_configs:
- job_name: web   # the shop
  metrics_path: /metrics

  consul_sd_configs:
  # the one agent
  - server: 'localhost:8500'
    services: ["web"]
    # a comment in the block

  # relabelling
  relabel_configs:
  - source_labels: [__meta_consul_service]
    target_label: service
- job_name: static
  static_configs: [{targets: ['a:1']}]
`,
			want: `global:
  scrape_interval: 1m

rule_files: ["../p/rules.yml", '../p/it''s.yml', /abs/rules.yml]

scrape_configs:
- job_name: web   # the shop
  metrics_path: /metrics

  file_sd_configs: # custom-sd: see custom-sd.yml
    - files:
        - sd/web.json

  # relabelling
  relabel_configs:
  - source_labels: [__meta_consul_service]
    target_label: service
- job_name: static
  static_configs: [{targets: ['a:1']}]
`,
		},
		{
			name: "jobs sharing consul_sd_configs through an anchor",
			in: `scrape_configs:
  - job_name: a
    consul_sd_configs: &sd
      - server: c:8500
  - job_name: b
    consul_sd_configs: *sd
    scheme: https
`,
			want: `scrape_configs:
  - job_name: a
    file_sd_configs: # custom-sd: see custom-sd.yml
      - files:
          - sd/a.json
  - job_name: b
    file_sd_configs: # custom-sd: see custom-sd.yml
      - files:
          - sd/b.json
    scheme: https
`,
		},
		{
			name: "a job in flow style",
			in: `scrape_configs:
  - {job_name: web, consul_sd_configs: [{server: 'localhost:8500'}], metrics_path: /m}
`,
			wantTree: `scrape_configs:
  - {job_name: web, file_sd_configs: [{files: [sd/web.json]}], metrics_path: /m}
`,
		},
		{
			name: "consul_sd_configs first in its job, which has file_sd_configs",
			in: `scrape_configs:
  - consul_sd_configs:
      - server: localhost:8500
    job_name: web
    file_sd_configs:
      - files: [other.json]
`,
			wantTree: `scrape_configs:
  - job_name: web
    file_sd_configs:
      - files: [../p/other.json]
      - files: [sd/web.json]
`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := convertString(t, tc.in, "")
			require.NoError(t, err)
			got, stdout := res.Prometheus, summary(res)
			if tc.want != "" {
				require.Equal(t, tc.want, string(got))
				require.NotContains(t, stdout, "re-encoded")
				return
			}
			var gotTree, wantTree any
			require.NoError(t, yaml.Unmarshal(got, &gotTree))
			require.NoError(t, yaml.Unmarshal([]byte(tc.wantTree), &wantTree))
			require.Equal(t, wantTree, gotTree)
			require.Contains(t, stdout, "prometheus.yml was re-encoded from the YAML tree")
		})
	}
}

func TestConvertNamesAndOneConsul(t *testing.T) {
	res, err := convertString(t, `scrape_configs:
  - job_name: a b
    consul_sd_configs: [{server: "c:8500", services: [a]}]
  - job_name: a_b
    consul_sd_configs: [{server: "c:8500", services: [b]}]
  - job_name: -x
    consul_sd_configs: [{server: "c:8500", tags: [x]}, {server: "c:8500", tags: [y]}]
  - job_name: empty
    consul_sd_configs: []
`, "https://sd.example/base")
	require.NoError(t, err)
	writeResult(t, res)
	f, err := config.Parse(res.Config)
	require.NoError(t, err)
	require.NotNil(t, f.Consul, "one agent: consul, not consuls")
	require.Empty(t, f.Consuls)
	require.Equal(t, "c:8500", f.Consul.Server)
	var names []string
	for _, j := range f.Jobs {
		names = append(names, j.Name)
		require.Empty(t, j.Consul)
	}
	require.Equal(t, []string{"a_b", "a_b_2", "_x-0", "_x-1"}, names)
	require.Equal(t, f, &res.File)
	require.Empty(t, res.Secrets)
	require.Contains(t, string(res.Prometheus), "https://sd.example/base/targets/_x-1")
	require.Contains(t, summary(res), "(none: consul_sd_configs was empty)")
	_, err = config.Load(filepath.Join(res.Report.Out, ConfigFile))
	require.NoError(t, err)
}

func TestConvertBadInput(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"not YAML", "scrape_configs: [\n", "prometheus.yml: not YAML: "},
		{"empty", "", "prometheus.yml: empty file"},
		{"not a mapping", "- a\n", "prometheus.yml: line 1: not a Prometheus configuration"},
		{"no consul_sd_configs", "scrape_configs: [{job_name: a, static_configs: [{targets: ['x:1']}]}]\n",
			"prometheus.yml: no scrape job uses consul_sd_configs"},
		{"only scrape_config_files", "scrape_config_files: [jobs/*.yml]\n",
			"prometheus.yml: no scrape job uses consul_sd_configs (scrape_config_files are not read: migrate each of them too)"},
		{"no job_name", "scrape_configs: [{consul_sd_configs: [{}]}]\n", "scrape_configs[0]: line 1: no job_name"},
		{"bad entry", "scrape_configs: [{job_name: a, consul_sd_configs: [{services: web}]}]\n",
			"prometheus.yml: scrape job \"a\": consul_sd_configs[0]: line 1: cannot unmarshal !!str `web` into []string"},
		{"consul_sd_configs not a list", "scrape_configs: [{job_name: a, consul_sd_configs: {server: x}}]\n",
			`prometheus.yml: scrape job "a": consul_sd_configs: line 1: not a list`},
		{"every consul_sd_configs empty", "scrape_configs: [{job_name: a, consul_sd_configs: []}]\n",
			"prometheus.yml: every consul_sd_configs is empty"},
		{"an anchor in consul_sd_configs used elsewhere", `scrape_configs:
  - job_name: a
    consul_sd_configs: [{server: &srv 'c:8500'}]
    static_configs: [{targets: [*srv]}]
`, "prometheus.yml: the edited configuration does not parse (an anchor inside consul_sd_configs used elsewhere?)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := convertString(t, tc.in, "")
			require.ErrorContains(t, err, tc.want)
			require.NotContains(t, err.Error(), "\n", "one line")
		})
	}
}
