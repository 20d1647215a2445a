package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/custom-sd/custom-sd/internal/config"
	"github.com/custom-sd/custom-sd/internal/testcerts"
	"github.com/custom-sd/custom-sd/internal/testprom"
	"github.com/custom-sd/custom-sd/sd/consul"
)

// migrateFixture is a Prometheus configuration with consul_sd jobs of
// every kind and other jobs around them. Its relative paths are listed in
// migrateFixturePaths.
const migrateFixture = `# Prometheus for the shop.
global:
  scrape_interval: 15s # the default is 1m
  external_labels:
    region: eu

rule_files:
  - rules/*.yml

scrape_configs:
  # Prometheus itself.
  - job_name: prometheus
    static_configs:
      - targets: ["localhost:9090"]

  - job_name: node
    consul_sd_configs:
      - server: consul.internal:8500
        token: s3cret
        services: [node-exporter]
        node_meta:
          rack: a
    relabel_configs:
      - source_labels: [__meta_consul_node]
        target_label: instance

  - job_name: apps
    scrape_interval: 30s
    consul_sd_configs:
      # Production instances of the shop's services.
      - server: consul.internal:8500
        token: s3cret
        tags: [prod, metrics]
        filter: 'ServiceMeta.team == "shop"'
        health_filter: 'Service.Port != 8081'
        tag_separator: ";"
        allow_stale: false
        datacenter: dc1
      - server: consul.internal:8500
        token: s3cret
        datacenter: dc2
        services: [web]
    relabel_configs:
      - source_labels: [__meta_consul_tags]
        regex: .*;prod;.*
        action: keep # only production

  - job_name: secure/edge
    scheme: https
    tls_config:
      ca_file: certs/ca.pem
    consul_sd_configs:
      - server: consul-tls.internal:8501
        scheme: https
        path_prefix: /consul
        basic_auth:
          username: prom
          password_file: secrets/consul-password
        tls_config:
          ca_file: certs/ca.pem
          cert_file: certs/client.pem
          key_file: certs/client-key.pem
          server_name: consul.internal
          insecure_skip_verify: false

  - job_name: legacy
    consul_sd_configs:
      - server: consul.internal:8500
        refresh_interval: 1m
        proxy_url: http://user:pw@proxy.internal:3128
        services: [legacy]
    file_sd_configs:
      - files: [extra/*.json]

  - job_name: files
    file_sd_configs:
      - files:
          - targets/*.json
        refresh_interval: 5m
`

// migrateFixturePaths are the fixture's relative paths, as where they are
// in the decoded tree.
var migrateFixturePaths = [][]any{
	{"rule_files", 0},
	{"scrape_configs", 3, "tls_config", "ca_file"},
	{"scrape_configs", 4, "file_sd_configs", 0, "files", 0},
	{"scrape_configs", 5, "file_sd_configs", 0, "files", 0},
}

// writeMigrateFixture writes the fixture into dir/prom with the files it
// names, and returns the configuration's path.
func writeMigrateFixture(t *testing.T, dir string) string {
	t.Helper()
	prom := filepath.Join(dir, "prom")
	for _, d := range []string{"rules", "certs", "secrets", "extra", "targets"} {
		require.NoError(t, os.MkdirAll(filepath.Join(prom, d), 0o755))
	}
	_, err := testcerts.Write(filepath.Join(prom, "certs"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(prom, "secrets", "consul-password"), []byte("pw\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(prom, "rules", "shop.yml"),
		[]byte("groups:\n  - name: shop\n    rules:\n      - record: job:up:sum\n        expr: sum by (job) (up)\n"), 0o644))
	path := filepath.Join(prom, "prom.yml")
	require.NoError(t, os.WriteFile(path, []byte(migrateFixture), 0o640))
	return path
}

func runMigrateT(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = runMigrate(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestMigrate(t *testing.T) {
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
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			promPath := writeMigrateFixture(t, dir)
			promDir := filepath.Dir(promPath)
			out := filepath.Join(dir, tc.out)
			args := []string{promPath, "--out", out}
			if tc.httpSD != "" {
				args = append(args, "--http-sd", tc.httpSD)
			}
			code, stdout, stderr := runMigrateT(t, args...)
			require.Equal(t, 0, code, stderr)
			require.Empty(t, stderr)

			// custom-sd.yml loads, from any working directory, and its
			// relative paths name the Prometheus configuration's files.
			t.Chdir(t.TempDir())
			cfgPath := filepath.Join(out, "custom-sd.yml")
			c, err := config.Load(cfgPath)
			require.NoError(t, err)
			fi, err := os.Stat(cfgPath)
			require.NoError(t, err)
			require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "it holds a token")

			require.Len(t, c.Consuls, 3)
			plain, tls, legacy := c.Consuls["consul.internal"], c.Consuls["consul-tls.internal"], c.Consuls["consul.internal_2"]
			require.NotNil(t, plain)
			require.NotNil(t, tls)
			require.NotNil(t, legacy)
			require.Equal(t, "consul.internal:8500", plain.Config.API.Address)
			require.Equal(t, "http", plain.Config.API.Scheme)
			require.Equal(t, "s3cret", plain.Config.API.Token)
			require.Empty(t, legacy.Config.API.Token)
			require.Equal(t, "https", tls.Config.API.Scheme)
			require.Equal(t, "/consul", tls.Config.API.PathPrefix)
			require.Equal(t, "prom", tls.Config.API.HttpAuth.Username)
			password, err := consul.ReadSecretFile(tls.Config.PasswordFile)
			require.NoError(t, err)
			require.Equal(t, "pw", password, "in password_file")
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
			require.DirExists(t, filepath.Join(out, "sd"), "custom-sd does not create it")

			// prometheus.yml is the original with consul_sd_configs
			// replaced, and relative paths naming the same files.
			migrated, err := os.ReadFile(filepath.Join(out, "prometheus.yml"))
			require.NoError(t, err)
			fi, err = os.Stat(filepath.Join(out, "prometheus.yml"))
			require.NoError(t, err)
			require.Equal(t, os.FileMode(0o640), fi.Mode().Perm(), "the original's mode")
			var got, want map[string]any
			require.NoError(t, yaml.Unmarshal(migrated, &got))
			require.NoError(t, yaml.Unmarshal([]byte(migrateFixture), &want))
			for _, p := range migrateFixturePaths {
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
				"HTTP_PROXY/HTTPS_PROXY=http://user:xxxxx@proxy.internal:3128",
			} {
				require.Contains(t, stdout, want)
			}
			require.NotContains(t, stdout, "s3cret")
			require.NotContains(t, stdout, ":pw@")
			require.NotContains(t, stdout, "does not load", "custom-sd.yml loads")

			// Prometheus takes the result.
			promtoolOut, err := testprom.Promtool(t, "check", "config", filepath.Join(out, "prometheus.yml"))
			require.NoError(t, err, promtoolOut)
			require.Contains(t, promtoolOut, "SUCCESS: 1 rule files found", "rule_files still names the rules")
		})
	}
}

// treePath is a place in a decoded YAML tree.
type treePath struct {
	parent any
	key    any
}

func (p treePath) get() string {
	switch c := p.parent.(type) {
	case map[string]any:
		return c[p.key.(string)].(string)
	case []any:
		return c[p.key.(int)].(string)
	}
	return ""
}

func (p treePath) set(v string) {
	switch c := p.parent.(type) {
	case map[string]any:
		c[p.key.(string)] = v
	case []any:
		c[p.key.(int)] = v
	}
}

func lookupPath(t *testing.T, tree any, path []any) treePath {
	t.Helper()
	for _, k := range path[:len(path)-1] {
		switch c := tree.(type) {
		case map[string]any:
			tree = c[k.(string)]
		case []any:
			tree = c[k.(int)]
		default:
			t.Fatalf("%v: no %v", path, k)
		}
	}
	return treePath{tree, path[len(path)-1]}
}

func TestMigrateEditsInPlace(t *testing.T) {
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
			dir := t.TempDir()
			require.NoError(t, os.Mkdir(filepath.Join(dir, "p"), 0o755))
			in := filepath.Join(dir, "p", "prometheus.yml")
			require.NoError(t, os.WriteFile(in, []byte(tc.in), 0o644))
			out := filepath.Join(dir, "out")
			code, stdout, stderr := runMigrateT(t, in, "--out", out)
			require.Equal(t, 0, code, stderr)
			got, err := os.ReadFile(filepath.Join(out, "prometheus.yml"))
			require.NoError(t, err)
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

func TestMigrateNamesAndOneConsul(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(in, []byte(`scrape_configs:
  - job_name: a b
    consul_sd_configs: [{server: "c:8500", services: [a]}]
  - job_name: a_b
    consul_sd_configs: [{server: "c:8500", services: [b]}]
  - job_name: -x
    consul_sd_configs: [{server: "c:8500", tags: [x]}, {server: "c:8500", tags: [y]}]
  - job_name: empty
    consul_sd_configs: []
`), 0o644))
	out := filepath.Join(dir, "out")
	code, stdout, stderr := runMigrateT(t, in, "--out", out, "--http-sd", "https://sd.example/base")
	require.Equal(t, 0, code, stderr)
	data, err := os.ReadFile(filepath.Join(out, "custom-sd.yml"))
	require.NoError(t, err)
	f, err := config.Parse(data)
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
	fi, err := os.Stat(filepath.Join(out, "custom-sd.yml"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o644), fi.Mode().Perm(), "no secrets in it")
	prom, err := os.ReadFile(filepath.Join(out, "prometheus.yml"))
	require.NoError(t, err)
	require.Contains(t, string(prom), "https://sd.example/base/targets/_x-1")
	require.Contains(t, stdout, "(none: consul_sd_configs was empty)")
	_, err = config.Load(filepath.Join(out, "custom-sd.yml"))
	require.NoError(t, err)
}

func TestMigrateConsulFields(t *testing.T) {
	path := func(p string) string { return "DIR/" + p }
	tests := []struct {
		name      string
		entry     string
		wantAgent config.Consul
		wantJob   config.Job
		wantNotes []string // field: start of the reason
		wantErr   string
	}{
		{
			name:      "defaults are Prometheus's",
			entry:     `{}`,
			wantAgent: config.Consul{Server: "localhost:8500", Scheme: "http"},
		},
		{
			name:      "a scheme in the server",
			entry:     `{server: "https://c:8501"}`,
			wantAgent: config.Consul{Server: "https://c:8501"},
		},
		{
			name:      "username and password",
			entry:     `{username: u, password: p}`,
			wantAgent: config.Consul{Server: "localhost:8500", Scheme: "http", Username: "u", Password: "p"},
		},
		{
			name:      "basic_auth",
			entry:     `{basic_auth: {username: u, password_file: pw, username_file: uf, password_ref: r}}`,
			wantAgent: config.Consul{Server: "localhost:8500", Scheme: "http", Username: "u", PasswordFile: "DIR/pw"},
			wantNotes: []string{"basic_auth.username_file: not supported", "basic_auth.password_ref: not supported"},
		},
		{
			name:      "authorization Bearer credentials become the token",
			entry:     `{authorization: {credentials: t}}`,
			wantAgent: config.Consul{Server: "localhost:8500", Scheme: "http", Token: "t"},
		},
		{
			name:      "authorization credentials_file becomes token_file",
			entry:     `{authorization: {type: Bearer, credentials_file: tf}}`,
			wantAgent: config.Consul{Server: "localhost:8500", Scheme: "http", TokenFile: "DIR/tf"},
		},
		{
			name:      "bearer_token_file",
			entry:     `{bearer_token_file: tf}`,
			wantAgent: config.Consul{Server: "localhost:8500", Scheme: "http", TokenFile: "DIR/tf"},
		},
		{
			name:      "authorization of another type",
			entry:     `{authorization: {type: Basic, credentials: x}}`,
			wantAgent: config.Consul{Server: "localhost:8500", Scheme: "http"},
			wantNotes: []string{`authorization: not supported: type "Basic"`},
		},
		{
			name:  "tls_config",
			entry: `{tls_config: {ca_file: ca, cert_file: c, key_file: k, server_name: s, insecure_skip_verify: true, ca: PEM, min_version: TLS13, key_ref: r}}`,
			wantAgent: config.Consul{Server: "localhost:8500", Scheme: "http", TLSConfig: &config.TLSConfig{
				CAFile: "DIR/ca", CertFile: "DIR/c", KeyFile: "DIR/k", ServerName: "s", InsecureSkipVerify: true,
			}},
			wantNotes: []string{"tls_config.ca: not supported", "tls_config.min_version: not supported", "tls_config.key_ref: not supported"},
		},
		{
			name: "selection",
			entry: `{services: [a, b], tags: [t], node_meta: {k: v}, filter: f, health_filter: h, datacenter: dc,
			         allow_stale: false, tag_separator: ";", namespace: ns, partition: pt}`,
			wantAgent: config.Consul{Server: "localhost:8500", Scheme: "http"},
			wantJob: config.Job{Services: []string{"a", "b"}, Tags: []string{"t"}, NodeMeta: map[string]string{"k": "v"},
				Filter: "f", HealthFilter: "h", Datacenter: "dc", AllowStale: new(false), TagSeparator: new(";"),
				Namespace: "ns", Partition: "pt"},
		},
		{
			name: "HTTP client settings",
			entry: `{refresh_interval: 10s, follow_redirects: false, enable_http2: true, proxy_url: "http://p:3128", no_proxy: x,
			         proxy_from_environment: true, proxy_connect_header: {a: [b]}, oauth2: {client_id: x}, http_headers: {a: {values: [b]}}, colour: blue}`,
			wantAgent: config.Consul{Server: "localhost:8500", Scheme: "http"},
			wantNotes: []string{
				"refresh_interval: not needed", "follow_redirects: not supported", "enable_http2: not needed",
				"proxy_url: not supported", "no_proxy: not supported", "proxy_from_environment: not needed",
				"proxy_connect_header: not supported", "oauth2: not supported", "http_headers: not supported", "colour: unknown field",
			},
		},
		{
			name:      "merge keys",
			entry:     "base: &b {server: 'c:1', services: [x]}\nentry: {<<: *b, services: [y]}",
			wantAgent: config.Consul{Server: "c:1", Scheme: "http"},
			wantJob:   config.Job{Services: []string{"y"}},
			wantNotes: []string{},
		},
		{name: "two tokens", entry: `{token: a, authorization: {credentials: b}}`, wantErr: "token, authorization: give one of them"},
		{name: "username and basic_auth", entry: `{username: a, basic_auth: {username: b}}`, wantErr: "give either username and password or basic_auth"},
		{name: "empty server", entry: `{server: ""}`, wantErr: "server: must not be empty"},
		{name: "wrong type", entry: `{services: web}`, wantErr: "services: line 1: cannot unmarshal"},
		{name: "not a mapping", entry: `[a]`, wantErr: "not a mapping"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var doc yaml.Node
			require.NoError(t, yaml.Unmarshal([]byte(tc.entry), &doc))
			entry := doc.Content[0]
			if e := lookup(entry, "entry"); e != nil {
				entry = e
			}
			c, err := convertConsulSD(entry, path)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.wantAgent, *c.agent)
			require.Equal(t, tc.wantJob, *c.job)
			var notes []string
			for _, n := range c.notes {
				notes = append(notes, n.field+": "+n.reason)
			}
			require.Len(t, notes, len(tc.wantNotes), "%q", notes)
			for i, want := range tc.wantNotes {
				require.True(t, strings.HasPrefix(notes[i], want), "%q does not start with %q", notes[i], want)
			}
		})
	}
}

func TestMigrateRefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(in, []byte("scrape_configs: [{job_name: a, consul_sd_configs: [{}]}]\n"), 0o644))
	out := filepath.Join(dir, "out")
	code, _, stderr := runMigrateT(t, in, "--out", out)
	require.Equal(t, 0, code, stderr)
	require.NoError(t, os.WriteFile(filepath.Join(out, "prometheus.yml"), []byte("mine"), 0o644))

	code, stdout, stderr := runMigrateT(t, in, "--out", out)
	require.Equal(t, 2, code)
	require.Empty(t, stdout)
	require.Equal(t, "custom-sd: error: "+filepath.Join(out, "custom-sd.yml")+" exists: remove it or use --force\n", stderr)
	mine, err := os.ReadFile(filepath.Join(out, "prometheus.yml"))
	require.NoError(t, err)
	require.Equal(t, "mine", string(mine), "untouched")

	code, _, stderr = runMigrateT(t, in, "--out", out, "--force")
	require.Equal(t, 0, code, stderr)
	mine, err = os.ReadFile(filepath.Join(out, "prometheus.yml"))
	require.NoError(t, err)
	require.Contains(t, string(mine), "file_sd_configs")

	code, _, stderr = runMigrateT(t, in, "--out", dir, "--force")
	require.Equal(t, 2, code)
	require.Equal(t, "custom-sd: error: "+in+" is the input: choose another --out\n", stderr)
	entries, err := os.ReadDir(out)
	require.NoError(t, err)
	for _, e := range entries {
		require.False(t, strings.HasPrefix(e.Name(), "."), "temporary file %s left behind", e.Name())
	}
}

func TestMigrateBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
		return p
	}
	good := write("good.yml", "scrape_configs: [{job_name: a, consul_sd_configs: [{}]}]\n")
	aFile := write("a-file", "")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no arguments", nil, "migrate: required flag(s) '--out' not provided"},
		{"no configuration", []string{"--out", dir}, "required argument 'prometheus-config' not provided"},
		{"unknown flag", []string{good, "--out", dir, "--outt", "x"}, "unknown long flag '--outt'"},
		{"missing file", []string{filepath.Join(dir, "nope.yml"), "--out", dir}, "no such file or directory"},
		{"not YAML", []string{write("bad.yml", "scrape_configs: [\n"), "--out", dir}, "bad.yml: not YAML: "},
		{"empty", []string{write("empty.yml", ""), "--out", dir}, "empty.yml: empty file"},
		{"not a mapping", []string{write("list.yml", "- a\n"), "--out", dir}, "list.yml: line 1: not a Prometheus configuration"},
		{"no consul_sd_configs", []string{write("static.yml", "scrape_configs: [{job_name: a, static_configs: [{targets: ['x:1']}]}]\n"), "--out", dir},
			"static.yml: no scrape job uses consul_sd_configs"},
		{"only scrape_config_files", []string{write("files.yml", "scrape_config_files: [jobs/*.yml]\n"), "--out", dir},
			"files.yml: no scrape job uses consul_sd_configs (scrape_config_files are not read: migrate each of them too)"},
		{"no job_name", []string{write("noname.yml", "scrape_configs: [{consul_sd_configs: [{}]}]\n"), "--out", dir}, "scrape_configs[0]: line 1: no job_name"},
		{"bad entry", []string{write("entry.yml", "scrape_configs: [{job_name: a, consul_sd_configs: [{services: web}]}]\n"), "--out", dir},
			`entry.yml: scrape job "a": consul_sd_configs[0]: services: line 1: cannot unmarshal`},
		{"consul_sd_configs not a list", []string{write("map.yml", "scrape_configs: [{job_name: a, consul_sd_configs: {server: x}}]\n"), "--out", dir},
			`map.yml: scrape job "a": consul_sd_configs: line 1: not a list`},
		{"an anchor in consul_sd_configs used elsewhere", []string{write("anchor.yml", `scrape_configs:
  - job_name: a
    consul_sd_configs: [{server: &srv 'c:8500'}]
    static_configs: [{targets: [*srv]}]
`), "--out", dir}, "anchor.yml: the edited configuration does not parse (an anchor inside consul_sd_configs used elsewhere?)"},
		{"out not writable", []string{good, "--out", filepath.Join(aFile, "sub")}, "not a directory"},
		{"bad http-sd URL", []string{good, "--out", dir, "--http-sd", "custom-sd:9099"}, `--http-sd: "custom-sd:9099" is not a URL`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runMigrateT(t, tc.args...)
			require.Equal(t, 2, code)
			require.Empty(t, stdout)
			require.True(t, strings.HasPrefix(stderr, "custom-sd: error: "), stderr)
			require.Contains(t, stderr, tc.want)
			require.Equal(t, 1, strings.Count(stderr, "\n"), "one line: %q", stderr)
		})
	}
	require.NoFileExists(t, filepath.Join(dir, "custom-sd.yml"))
	require.NoFileExists(t, filepath.Join(dir, "prometheus.yml"))
}

func TestMigrateHelp(t *testing.T) {
	code, stdout, stderr := runMigrateT(t, "--help")
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "--http-sd")
	require.Empty(t, stderr)
}
