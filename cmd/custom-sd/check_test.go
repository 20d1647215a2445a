package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCheckConfig: `custom-sd check config FILE` validates a configuration
// as a start would — its files read, its output directories written to —
// without contacting Consul, prints what it would run with no secret in
// it, and exits 0 (valid), 1 (invalid) or 2 (bad usage).
func TestCheckConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "sd"), 0o755))
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		return p
	}
	write("token", "tok3n-never-shown\n")
	write("password", "pa55-never-shown\n")
	valid := write("valid.yml", `
consuls:
  east: {server: "127.0.0.1:1", token_file: token}
  west: {server: "https://127.0.0.2:8501", username: prom, password_file: password, tls_config: {insecure_skip_verify: true}}
jobs:
  - {name: web, consul: east, services: [web], tags: [prod], output: {file: sd/web.json}}
  - {name: all, consul: west, exclude_services: [consul], output: {file: sd/all.json, shards: 2}}
`)
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string // lines the output holds
		stderr string
	}{
		{"a valid configuration", []string{"config", valid}, 0, []string{
			"SUCCESS: " + valid + " is a valid custom-sd configuration",
			"http://127.0.0.1:1      token from " + filepath.Join(dir, "token"),
			"https://127.0.0.2:8501  user prom, password from " + filepath.Join(dir, "password") + "; TLS not verified",
			"services web; tags prod    " + filepath.Join(dir, "sd", "web.json"),
			"every service; not consul  " + filepath.Join(dir, "sd", "all.0.json") + ", " + filepath.Join(dir, "sd", "all.1.json"),
		}, ""},
		{"an unknown key", []string{"config", write("typo.yml", "jobs: [{name: a, servces: [x]}]\n")}, 1, []string{"FAILED: jobs[a].servces: line 1: unknown key"}, ""},
		{"a missing token file", []string{"config", write("notoken.yml", "consul: {token_file: nope}\njobs: [{name: a}]\n")}, 1,
			[]string{"FAILED: consul.token_file: stat " + filepath.Join(dir, "nope")}, ""},
		{"a CA file that is not PEM", []string{"config", write("badca.yml", "consul: {server: 'https://127.0.0.1:1', tls_config: {ca_file: token}}\njobs: [{name: a}]\n")}, 1,
			[]string{"FAILED: consul.tls_config: Error loading CA File"}, ""},
		{"a missing output directory", []string{"config", write("nodir.yml", "jobs: [{name: a, output: {file: missing/a.json}}]\n")}, 1,
			[]string{"FAILED: jobs[a].output.file: the directory " + filepath.Join(dir, "missing") + " does not exist"}, ""},
		{"its own output", []string{"config", write("self.yml", "jobs: [{name: a, output: {file: self.yml}}]\n")}, 1,
			[]string{"self.yml is the configuration file; writing it would overwrite that input"}, ""},
		{"a missing file", []string{"config", filepath.Join(dir, "nope.yml")}, 1, []string{"FAILED: open " + filepath.Join(dir, "nope.yml")}, ""},
		{"no file", []string{"config"}, 2, nil, "required argument 'file' not provided"},
		{"no subcommand", nil, 2, nil, "expected command config"},
		{"an unknown subcommand", []string{"flags"}, 2, nil, "expected command but got \"flags\""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := runCheck(tc.args, &stdout, &stderr)
			require.Equal(t, tc.code, code, "stdout: %s\nstderr: %s", stdout.String(), stderr.String())
			for _, line := range tc.stdout {
				require.Contains(t, stdout.String(), line)
			}
			require.Contains(t, stderr.String(), tc.stderr)
			for _, secret := range []string{"tok3n", "pa55"} {
				require.NotContains(t, stdout.String()+stderr.String(), secret)
			}
			if tc.code == 2 {
				require.Equal(t, 1, strings.Count(stderr.String(), "\n"), "one line: %q", stderr.String())
			}
		})
	}
	entries, err := os.ReadDir(filepath.Join(dir, "sd"))
	require.NoError(t, err)
	require.Empty(t, entries, "check writes nothing")
}
