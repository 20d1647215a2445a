package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/custom-sd/custom-sd/sd/consul"
)

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

func TestLoadResolves(t *testing.T) {
	t.Setenv("CONSUL_HTTP_ADDR", "")
	t.Setenv("CONSUL_HTTP_TOKEN", "")
	dir := t.TempDir()
	write(t, dir, "token", "secret-token\n")
	path := write(t, dir, "custom-sd.yml", `
consul:
  server: 127.0.0.1:8500
  token_file: token
  max_connections: 32
  wait_time: 2m
  verify_interval: 3m
jobs:
  - name: nodes
    services: [node-exporter]
    node_meta: {rack: a}
    output:
      file: sd/nodes.json
  - name: apps
    tags: [prod]
    filter: 'ServiceMeta.team == "shop"'
    health_filter: 'Service.Port != 8081'
    tag_separator: ";"
    allow_stale: false
    health: passing
    exclude_services: [consul, ".*-sidecar-proxy"]
    datacenter: dc2
    output:
      mode: "0640"
      interval: 1s
      max_removal: 0.25
      removal_hold: 10m
      shards: 3
  - name: one-shard
    output:
      file: /abs/one.json
      shards: 4
      shard: 2
`)
	c, err := Load(path)
	require.NoError(t, err)
	require.Len(t, c.Consuls, 1)
	w := c.Consuls[DefaultConsul].Config
	require.Equal(t, "127.0.0.1:8500", w.API.Address)
	require.Equal(t, filepath.Join(dir, "token"), w.TokenFile, "relative to the file's directory")
	require.Equal(t, 32, w.MaxConnections)
	require.Equal(t, 2*time.Minute, w.WaitTime)
	require.Len(t, c.Warnings, 1)
	require.Equal(t, "consul.verify_interval: is ignored: every change of the catalog is verified within seconds; remove it", c.Warnings[0].Error())
	require.Equal(t, "--consul.verify-interval: is ignored: every change of the catalog is verified within seconds; remove it", c.Warnings[0].Flags())

	require.Len(t, c.Jobs, 3)
	nodes, apps, one := c.Jobs[0], c.Jobs[1], c.Jobs[2]
	require.Equal(t, "nodes", nodes.Name)
	require.Equal(t, DefaultConsul, nodes.Consul)
	require.Equal(t, filepath.Join(dir, "sd", "nodes.json"), nodes.Path)
	require.Equal(t, []string{"node-exporter"}, nodes.Job.Selection.Services)
	require.Equal(t, map[string]string{"rack": "a"}, nodes.Job.Selection.NodeMeta)
	require.True(t, nodes.Job.AllowStale, "as consul_sd's default")
	require.Equal(t, ",", nodes.Job.TagSeparator)
	require.Equal(t, -1, nodes.Shard)

	require.Equal(t, filepath.Join(dir, "apps.json"), apps.Path, "the default file is <name>.json next to the config")
	require.Equal(t, ";", apps.Job.TagSeparator)
	require.False(t, apps.Job.AllowStale)
	require.Equal(t, consul.HealthPassing, apps.Job.Selection.Health)
	require.Equal(t, []string{"dc2"}, apps.Job.Datacenters)
	require.Len(t, apps.Job.Selection.Exclude, 2)
	require.True(t, apps.Job.Selection.Exclude[1].MatchString("web-sidecar-proxy"))
	require.Equal(t, os.FileMode(0o640), apps.Options.FileMode)
	require.Equal(t, time.Second, apps.Options.Interval)
	require.Equal(t, 0.25, apps.Options.MaxRemoval)
	require.Equal(t, 10*time.Minute, apps.Options.RemovalHold)
	require.Equal(t, 3, apps.Options.Shards)

	require.Equal(t, "/abs/one.json", one.Path)
	require.Equal(t, 2, one.Shard)
	require.Equal(t, 4, one.Shards)
	require.LessOrEqual(t, one.Options.Shards, 1, "one shard is one file")
}

func TestLoadSeveralConsuls(t *testing.T) {
	dir := t.TempDir()
	path := write(t, dir, "c.yml", `
consuls:
  east: {server: "127.0.0.1:8500"}
  west: {server: "https://127.0.0.2:8501", tls_config: {insecure_skip_verify: true}}
jobs:
  - {name: a, consul: east}
  - {name: b, consul: west}
`)
	c, err := Load(path)
	require.NoError(t, err)
	require.Equal(t, "east", c.Jobs[0].Consul)
	require.Equal(t, "west", c.Jobs[1].Consul)
	require.True(t, c.Consuls["west"].Config.API.TLSConfig.InsecureSkipVerify)
	require.NotEqual(t, c.Jobs[0].Fingerprint, c.Jobs[1].Fingerprint)
}

func TestFingerprintFollowsChanges(t *testing.T) {
	dir := t.TempDir()
	load := func(content string) *Config {
		c, err := Load(write(t, dir, "c.yml", content))
		require.NoError(t, err)
		return c
	}
	base := load("consul: {server: 127.0.0.1:8500}\njobs: [{name: a}, {name: b, tags: [x]}]\n")
	same := load("consul: {server: 127.0.0.1:8500}\njobs:\n  - name: a\n  - tags: [x]\n    name: b\n")
	require.Equal(t, base.Jobs[0].Fingerprint, same.Jobs[0].Fingerprint)
	require.Equal(t, base.Jobs[1].Fingerprint, same.Jobs[1].Fingerprint)
	changed := load("consul: {server: 127.0.0.1:8500}\njobs: [{name: a}, {name: b, tags: [y]}]\n")
	require.Equal(t, base.Jobs[0].Fingerprint, changed.Jobs[0].Fingerprint)
	require.NotEqual(t, base.Jobs[1].Fingerprint, changed.Jobs[1].Fingerprint)
	otherAgent := load("consul: {server: 127.0.0.2:8500}\njobs: [{name: a}, {name: b, tags: [x]}]\n")
	require.NotEqual(t, base.Jobs[0].Fingerprint, otherAgent.Jobs[0].Fingerprint, "the agent's settings are part of a job")
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "adir"), 0o755))
	write(t, dir, "cert.pem", "x")
	tests := []struct {
		name, content, want string
	}{
		{"not YAML", "jobs: [\n", "not valid YAML"},
		{"unknown top-level key", "jobz: []\n", "jobz: line 1: unknown key; the keys here are consul, consuls, jobs"},
		{"unknown job key", "jobs: [{name: web, servce: [x]}]\n", "jobs[web].servce: line 1: unknown key; the keys here are all_datacenters"},
		{"unknown output key", "jobs:\n- name: web\n  output: {fiel: x.json}\n", "jobs[web].output.fiel: line 3: unknown key"},
		{"unknown consul key", "consul:\n  sever: x\njobs: [{name: a}]\n", "consul.sever: line 2: unknown key"},
		{"unknown TLS key", "consul:\n  tls_config: {ca: x}\njobs: [{name: a}]\n", "consul.tls_config.ca: line 2: unknown key"},
		{"unknown key of a named consul", "consuls:\n  east: {sever: x}\njobs: [{name: a, consul: east}]\n", "consuls.east.sever: line 2: unknown key"},
		{"unknown key in a merged mapping", "jobs: [{name: a, <<: {servce: x}}]\n", "jobs[a].servce: line 1: unknown key"},
		{"an empty job", "jobs:\n-\n- name: a\n", "jobs[0]: line 2: is empty; give its keys or remove it"},
		{"a null job", "jobs: [~]\n", "jobs[0]: line 1: is empty; give its keys or remove it"},
		{"an empty named consul", "consuls:\n  east:\njobs: [{name: a, consul: east}]\n", "consuls.east: line 2: is empty; give its keys or remove it"},
		{"two documents", "jobs: [{name: a}]\n---\njobs: [{name: b}]\n", "configuration: line 2: a second YAML document; the configuration is one document"},
		{"duplicate key", "jobs:\n- name: a\n  services: [x]\n  services: [y]\n", "jobs[a].services: line 4: given twice (first at line 3)"},
		{"duplicate top-level key", "jobs: []\njobs: [{name: a}]\n", "jobs: line 2: given twice (first at line 1)"},
		{"token and token file", "consul: {token: x, token_file: t}\njobs: [{name: a}]\n", "consul.token_file: give either token or token_file, not both"},
		{"mode zero", "jobs: [{name: a, output: {mode: '0'}}]\n", `jobs[a].output.mode: "0" is not a sensible permission: the file's owner cannot read it`},
		{"world-writable mode", "jobs: [{name: a, output: {mode: '0666'}}]\n", `jobs[a].output.mode: "0666" is not a sensible permission: anyone could write targets into it`},
		{"not a mapping", "- jobs\n", "configuration: line 1: the configuration is a mapping of consul (or consuls) and jobs"},
		{"a list for a value", "consul: {server: [a, b]}\njobs: [{name: a}]\n", "consul.server: line 1: takes a single value, not a list"},
		{"not a number", "consul: {max_connections: many}\njobs: [{name: a}]\n", `consul.max_connections: line 1: "many" is not a whole number`},
		{"not a boolean", "jobs: [{name: a, allow_stale: yes}]\n", `jobs[a].allow_stale: line 1: "yes" is not true or false`},
		{"zero interval", "jobs: [{name: a, output: {interval: 0s}}]\n", "jobs[a].output.interval: 0s is not positive"},
		{"zero shards", "jobs: [{name: a, output: {shards: 0}}]\n", "jobs[a].output.shards: 0 is not at least 1"},
		{"zero connections", "consul: {max_connections: 0}\njobs: [{name: a}]\n", "consul.max_connections: 0 is below the minimum of 5"},
		{"a job name too long", "jobs: [{name: " + strings.Repeat("a", 201) + "}]\n", "is 201 bytes long; a job name has at most 200"},
		{"password and password file", "consul: {username: u, password: x, password_file: p}\njobs: [{name: a}]\n", "consul.password_file: give either password or password_file, not both"},
		{"password file without user", "consul: {password_file: p}\njobs: [{name: a}]\n", "consul.password_file: needs username"},
		{"an empty value", "consul: {server: ''}\njobs: [{name: a}]\n", "consul.server: line 1: must not be empty (leave it out for its default)"},
		{"wrong type", "jobs: [{name: web, services: web}]\n", "jobs[web].services: line 1: takes a list, not a single value"},
		{"no jobs", "consul: {}\n", "jobs: at least one job is needed"},
		{"empty file", "", "jobs: at least one job is needed"},
		{"bad job name", "jobs: [{name: 'a/b'}]\n", `jobs[a/b].name: "a/b" is not a job name`},
		{"missing job name", "jobs: [{services: [x]}]\n", `jobs[0].name: "" is not a job name`},
		{"duplicate name", "jobs: [{name: a}, {name: a, output: {file: b.json}}]\n", `jobs[a].name: "a" names another job too`},
		{"same output", "jobs: [{name: a, output: {file: x.json}}, {name: b, output: {file: x.json}}]\n", "jobs[b].output.file: " + filepath.Join(dir, "x.json") + " is written by job a too"},
		{"output is a directory", "jobs: [{name: a, output: {file: adir}}]\n", "jobs[a].output.file: " + filepath.Join(dir, "adir") + " is a directory"},
		{"bad mode", "jobs: [{name: a, output: {mode: rw}}]\n", `jobs[a].output.mode: "rw" is not an octal permission`},
		{"bad duration", "jobs: [{name: a, output: {interval: soon}}]\n", `"soon" is not a duration`},
		{"bad max removal", "jobs: [{name: a, output: {max_removal: 2}}]\n", "jobs[a].output.max_removal: 2 is not a share between 0 and 1"},
		{"shard without shards", "jobs: [{name: a, output: {shard: 0}}]\n", "jobs[a].output.shard: 0 is not -1 or a shard from 0 to 0 (set output.shards)"},
		{"bad health", "jobs: [{name: a, health: critical}]\n", `jobs[a].health: "critical" is not one of any, warning, passing`},
		{"bad filter", "jobs: [{name: a, filter: 'Service.Port <'}]\n", `jobs[a].filter: "Service.Port <" is not a Consul filter expression`},
		{"bad health filter", "jobs: [{name: a, health_filter: 'x =='}]\n", `jobs[a].health_filter: "x ==" is not a Consul filter expression`},
		{"bad exclude", "jobs: [{name: a, exclude_services: ['(']}]\n", `jobs[a].exclude_services: "(": error parsing regexp`},
		{"datacenter and datacenters", "jobs: [{name: a, datacenter: dc1, datacenters: [dc2]}]\n", "jobs[a].datacenter: give datacenter, datacenters or all_datacenters"},
		{"datacenters and all", "jobs: [{name: a, datacenters: [dc2], all_datacenters: true}]\n", "jobs[a].all_datacenters: cannot be combined with datacenters"},
		{"empty tag separator", "jobs: [{name: a, tag_separator: ''}]\n", "jobs[a].tag_separator: line 1: must not be empty"},
		{"consul and consuls", "consul: {}\nconsuls: {a: {}}\njobs: [{name: a}]\n", "consul: give either consul or consuls"},
		{"job without its consul", "consuls: {east: {}}\njobs: [{name: a}]\n", "jobs[a].consul: name one of the consuls"},
		{"unknown consul", "consuls: {east: {}}\njobs: [{name: a, consul: west}]\n", `jobs[a].consul: "west" is not in consuls`},
		{"bad server scheme", "consul: {server: 'ftp://x:1'}\njobs: [{name: a}]\n", `consul.server: scheme "ftp" is not http or https`},
		{"credentials in the server", "consul: {server: 'http://u:p@x:1'}\njobs: [{name: a}]\n", "consul.server: must not carry credentials; use username and password"},
		{"few connections", "consul: {max_connections: 3}\njobs: [{name: a}]\n", "consul.max_connections: 3 is below the minimum of 5"},
		{"wait too long", "consul: {wait_time: 11m}\njobs: [{name: a}]\n", "consul.wait_time: 11m0s is not between 0 and 10m0s"},
		{"missing token file", "consul: {token_file: nope}\njobs: [{name: a}]\n", "consul.token_file: stat " + filepath.Join(dir, "nope")},
		{"certificate without key", "consul: {tls_config: {cert_file: cert.pem}}\njobs: [{name: a}]\n", "consul.tls_config.cert_file: a client certificate needs tls_config.key_file"},
		{"password without user", "consul: {password: x}\njobs: [{name: a}]\n", "consul.username: a password needs a username"},
		{"a named consul's error", "consuls: {east: {scheme: ftp}}\njobs: [{name: a, consul: east}]\n", `consuls.east.scheme: "ftp" is not http or https`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(write(t, dir, "c.yml", tc.content))
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			require.NotContains(t, err.Error(), "\n", "one line")
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yml"))
	require.ErrorIs(t, err, os.ErrNotExist)
}
