package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func runMigrateT(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = runMigrate(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestMigrate: the command writes both files with their modes and the
// directory for custom-sd's output, prints the summary, and warns when
// custom-sd.yml does not load where it was written.
func TestMigrate(t *testing.T) {
	tests := []struct {
		name       string
		prometheus string
		httpSD     string
		wantMode   os.FileMode // custom-sd.yml's
		wantStdout []string
		// wantSecrets are the files in out/secrets and what they hold.
		wantSecrets map[string]string
	}{
		{
			name:       "no secrets",
			prometheus: "scrape_configs: [{job_name: a, consul_sd_configs: [{server: 'c:8500', services: [a]}]}]\n",
			wantMode:   0o644,
			wantStdout: []string{"Migrated ", "custom-sd --config.file=", "sd/a.json"},
		},
		{
			name:        "a token and a password",
			prometheus:  "scrape_configs: [{job_name: a, consul_sd_configs: [{server: 'http://u:pw@c:8500', token: s3cret}]}]\n",
			wantMode:    0o644,
			wantStdout:  []string{"ACL token <secret> in secrets/consul.token", "password <secret> in secrets/consul.password", "with mode 0600"},
			wantSecrets: map[string]string{"consul.token": "s3cret", "consul.password": "pw"},
		},
		{
			name:       "http_sd",
			prometheus: "scrape_configs: [{job_name: a, consul_sd_configs: [{server: 'c:8500'}]}]\n",
			httpSD:     "http://custom-sd:9099/",
			wantMode:   0o644,
			wantStdout: []string{"http://custom-sd:9099/targets/a"},
		},
		{
			name:       "a file custom-sd.yml names is missing here",
			prometheus: "scrape_configs: [{job_name: a, consul_sd_configs: [{tls_config: {ca_file: /nonexistent/ca.pem}}]}]\n",
			wantMode:   0o644,
			wantStdout: []string{"custom-sd.yml does not load here: ", "/nonexistent/ca.pem"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			in := filepath.Join(dir, "prometheus.yml")
			require.NoError(t, os.WriteFile(in, []byte(tc.prometheus), 0o640))
			out := filepath.Join(dir, "out")
			args := []string{in, "--out", out}
			if tc.httpSD != "" {
				args = append(args, "--http-sd", tc.httpSD)
			}
			code, stdout, stderr := runMigrateT(t, args...)
			require.Equal(t, 0, code, stderr)
			require.Empty(t, stderr)
			for _, want := range tc.wantStdout {
				require.Contains(t, stdout, want)
			}
			fi, err := os.Stat(filepath.Join(out, "custom-sd.yml"))
			require.NoError(t, err)
			require.Equal(t, tc.wantMode, fi.Mode().Perm())
			fi, err = os.Stat(filepath.Join(out, "prometheus.yml"))
			require.NoError(t, err)
			require.Equal(t, os.FileMode(0o640), fi.Mode().Perm(), "the original's mode")
			require.DirExists(t, filepath.Join(out, "sd"), "custom-sd does not create it")
			for name, want := range tc.wantSecrets {
				p := filepath.Join(out, "secrets", name)
				got, err := os.ReadFile(p)
				require.NoError(t, err)
				require.Equal(t, want, string(got))
				fi, err := os.Stat(p)
				require.NoError(t, err)
				require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), name)
				require.NotContains(t, stdout, want)
			}
			if tc.wantSecrets != nil {
				fi, err := os.Stat(filepath.Join(out, "secrets"))
				require.NoError(t, err)
				require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
			} else {
				require.NoDirExists(t, filepath.Join(out, "secrets"))
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

// TestMigrateBadInput: a bad command line, an unreadable input, input the
// conversion refuses (internal/migrate's tests have the rest) and an
// output directory that cannot be written each give one line on stderr,
// exit code 2 and no file.
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
		{"out not writable", []string{good, "--out", filepath.Join(aFile, "sub")}, "not a directory"},
		{"bad http-sd URL", []string{good, "--out", dir, "--http-sd", "custom-sd:9099"}, `--http-sd: "custom-sd:9099" is not a URL`},
		{"credentials in the http-sd URL", []string{good, "--out", dir, "--http-sd", "http://u:p@custom-sd:9099"},
			"--http-sd: a user name or password would be written into prometheus.yml"},
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
