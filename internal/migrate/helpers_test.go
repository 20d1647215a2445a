package migrate

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/custom-sd/custom-sd/internal/testcerts"
)

// shopPaths are the relative paths of testdata/shop.yml, as where they
// are in the decoded tree.
var shopPaths = [][]any{
	{"rule_files", 0},
	{"scrape_configs", 3, "tls_config", "ca_file"},
	{"scrape_configs", 4, "file_sd_configs", 0, "files", 0},
	{"scrape_configs", 5, "file_sd_configs", 0, "files", 0},
}

// readTestdata returns a file of testdata.
func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

// writeShop writes testdata/shop.yml into dir/prom with the files it
// names, and returns the configuration's path.
func writeShop(t *testing.T, dir string) string {
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
	require.NoError(t, os.WriteFile(path, readTestdata(t, "shop.yml"), 0o640))
	return path
}

// convertFile converts the Prometheus configuration at path for the
// output directory out.
func convertFile(t *testing.T, path, out, httpSD string) (*Result, error) {
	t.Helper()
	src, err := os.ReadFile(path)
	require.NoError(t, err)
	return Convert(src, Options{Input: path, Dir: filepath.Dir(path), Out: out, HTTPSD: httpSD})
}

// convertString converts src as the file p/prometheus.yml of a temporary
// directory, for the output directory out beside p.
func convertString(t *testing.T, src string, httpSD string) (*Result, error) {
	t.Helper()
	dir := t.TempDir()
	return Convert([]byte(src), Options{Input: "prometheus.yml", Dir: filepath.Join(dir, "p"), Out: filepath.Join(dir, "out"), HTTPSD: httpSD})
}

// writeResult writes what the command writes into res.Report.Out.
func writeResult(t *testing.T, res *Result) {
	t.Helper()
	out := res.Report.Out
	require.NoError(t, os.MkdirAll(filepath.Join(out, SDDir), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(out, ConfigFile), res.Config, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(out, PrometheusFile), res.Prometheus, 0o600))
	for _, f := range res.Secrets {
		require.NoError(t, os.MkdirAll(filepath.Join(out, SecretsDir), 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(out, f.Path), f.Data, 0o600))
	}
}

// summary returns res's summary.
func summary(res *Result) string {
	var b bytes.Buffer
	res.Summary(&b)
	return b.String()
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
