package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/custom-sd/custom-sd/internal/faultproxy"
	"github.com/custom-sd/custom-sd/internal/testconsul"
)

// get fetches path from the daemon's HTTP side and returns the status code
// and body.
func (d *daemon) get(t *testing.T, method, path string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, d.url+path, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err, "%s %s", method, path)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, string(b)
}

// status returns a func that reports whether path answers code.
func (d *daemon) status(t *testing.T, path string, code int) func() bool {
	return func() bool {
		resp, err := http.Get(d.url + path)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == code
	}
}

// metric returns the value of the sample of name whose labels include
// labels, or fails the test if there is none.
func (d *daemon) metric(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	code, _, body := d.get(t, http.MethodGet, "/metrics")
	require.Equal(t, http.StatusOK, code)
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(body))
	require.NoError(t, err)
	mf, ok := families[name]
	require.True(t, ok, "metric %s is exposed", name)
samples:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue samples
			}
		}
		return value(m)
	}
	require.Failf(t, "no sample", "%s%v", name, labels)
	return 0
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

func TestHTTPSideFollowsTheFile(t *testing.T) {
	t.Parallel()
	srv := testconsul.Start(t)
	srv.Register(t, testconsul.Instance{Service: "web", ID: "web-1", Port: 8080, Status: api.HealthPassing})
	srv.Register(t, testconsul.Instance{Service: "db", ID: "db-1", Address: "127.0.0.3", Port: 5432})
	out := filepath.Join(t.TempDir(), "custom_sd.json")
	d := startDaemon(t, "--consul.server="+srv.HTTPAddr, "--output.file="+out)
	// Once the log says the file is complete, /-/ready and /targets say so
	// too. Nothing changes in Consul from here until the deregistration
	// below (testconsul.Start waited for Consul's own entry to be final),
	// so the complete set is the one write.
	d.waitLog(t, 1, "Output file is complete")

	for _, method := range []string{http.MethodGet, http.MethodHead} {
		code, _, body := d.get(t, method, "/-/healthy")
		require.Equal(t, http.StatusOK, code, method)
		code, _, _ = d.get(t, method, "/-/ready")
		require.Equal(t, http.StatusOK, code, method)
		if method == http.MethodHead {
			require.Empty(t, body)
		}
	}
	code, _, _ := d.get(t, http.MethodPost, "/-/ready")
	require.Equal(t, http.StatusMethodNotAllowed, code)

	// HTTP SD serves the file's content byte for byte, as JSON.
	file, err := os.ReadFile(out)
	require.NoError(t, err)
	code, hdr, body := d.get(t, http.MethodGet, "/targets")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "application/json", hdr.Get("Content-Type"))
	require.Equal(t, string(file), body)

	code, _, body = d.get(t, http.MethodGet, "/targets?service=db")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `"127.0.0.3:5432"`)
	require.NotContains(t, body, `"__meta_consul_service":"web"`)
	require.Equal(t, 1, strings.Count(body, `"targets"`))

	require.Equal(t, 3.0, d.metric(t, "custom_sd_targets", nil), "consul, web-1, db-1")
	require.Equal(t, 3.0, d.metric(t, "custom_sd_consul_services", nil))
	require.Equal(t, 1.0, d.metric(t, "custom_sd_file_writes_total", map[string]string{"result": "success"}))
	require.Zero(t, d.metric(t, "custom_sd_file_writes_total", map[string]string{"result": "failure"}))
	require.Positive(t, d.metric(t, "custom_sd_file_last_write_success_timestamp_seconds", nil))
	require.Positive(t, d.metric(t, "custom_sd_consul_last_success_timestamp_seconds", nil))
	require.Positive(t, d.metric(t, "custom_sd_consul_requests_total", map[string]string{"endpoint": "health_service", "outcome": "success"}))
	require.Positive(t, d.metric(t, "custom_sd_consul_request_duration_seconds", map[string]string{"endpoint": "catalog_services"}))
	require.Equal(t, 1.0, d.metric(t, "custom_sd_build_info", nil))
	require.Positive(t, d.metric(t, "go_goroutines", nil))
	require.Positive(t, d.metric(t, "process_resident_memory_bytes", nil))
	require.Positive(t, d.metric(t, "custom_sd_http_requests_total", map[string]string{"handler": "targets", "code": "200"}))

	// Every metric of ours is documented in the README.
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	_, _, metrics := d.get(t, http.MethodGet, "/metrics")
	for _, line := range strings.Split(metrics, "\n") {
		if name, ok := strings.CutPrefix(line, "# TYPE custom_sd_"); ok {
			name = "custom_sd_" + strings.Fields(name)[0]
			require.True(t, strings.Contains(string(readme), "`"+name), "README.md does not document %s", name)
		}
	}

	// A change reaches HTTP SD as it reaches the file.
	srv.Deregister(t, "node-1", "db-1")
	testconsul.Eventually(t, func() bool {
		_, _, body := d.get(t, http.MethodGet, "/targets")
		return !strings.Contains(body, "5432")
	})
	testconsul.Eventually(t, func() bool { return d.metric(t, "custom_sd_targets", nil) == 2 })
	require.Equal(t, 0, d.terminate(t))
}

func TestNotReadyUntilConsulAnswers(t *testing.T) {
	t.Parallel()
	proxy := faultproxy.Start(t, "") // no agent behind it yet
	out := filepath.Join(t.TempDir(), "custom_sd.json")
	d := startDaemon(t, "--consul.server="+proxy.Addr, "--output.file="+out)
	d.waitLog(t, 1, "Consul query failed")
	testconsul.Eventually(t, d.status(t, "/-/healthy", http.StatusOK))

	code, _, _ := d.get(t, http.MethodGet, "/-/ready")
	require.Equal(t, http.StatusServiceUnavailable, code)
	code, hdr, body := d.get(t, http.MethodGet, "/targets")
	require.Equal(t, http.StatusServiceUnavailable, code, "never an empty list that would wipe Prometheus's targets")
	require.NotEqual(t, "application/json", hdr.Get("Content-Type"))
	require.NotContains(t, body, "[")
	require.Positive(t, d.metric(t, "custom_sd_consul_requests_total", map[string]string{"endpoint": "catalog_services", "outcome": "error"}))
	require.Zero(t, d.metric(t, "custom_sd_consul_last_success_timestamp_seconds", nil))

	srv := testconsul.Start(t)
	require.NoError(t, proxy.SetTarget(srv.HTTPAddr))
	srv.Register(t, testconsul.Instance{Service: "web", ID: "web-1", Port: 8080})
	testconsul.Eventually(t, d.status(t, "/-/ready", http.StatusOK))
	testconsul.Eventually(t, d.status(t, "/targets", http.StatusOK))
	require.Equal(t, 0, d.terminate(t))
}

func TestListenAddressInUse(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	out := filepath.Join(t.TempDir(), "custom_sd.json")
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"--consul.server=127.0.0.1:1", "--output.file=" + out, "--web.listen-address=" + l.Addr().String()}, &stderr)
	require.Equal(t, 1, code)
	require.Equal(t, 1, strings.Count(stderr.String(), "\n"), "one line: %q", stderr.String())
	require.Contains(t, stderr.String(), "--web.listen-address: listen tcp "+l.Addr().String())
	_, err = os.Stat(out)
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestWebConfigFileEnablesBasicAuth(t *testing.T) {
	t.Parallel()
	srv := testconsul.Start(t)
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	require.NoError(t, err)
	conf := filepath.Join(dir, "web.yml")
	require.NoError(t, os.WriteFile(conf, []byte("basic_auth_users:\n  prometheus: "+string(hash)+"\n"), 0o600))
	out := filepath.Join(dir, "custom_sd.json")
	d := startDaemon(t, "--consul.server="+srv.HTTPAddr, "--output.file="+out, "--web.config.file="+conf)
	d.waitLog(t, 1, "Output file is complete")

	code, _, _ := d.get(t, http.MethodGet, "/targets")
	require.Equal(t, http.StatusUnauthorized, code)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, d.url+"/targets", nil)
	require.NoError(t, err)
	req.SetBasicAuth("prometheus", "s3cret")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, 0, d.terminate(t))
}

func TestWebConfigFileEnablesTLS(t *testing.T) {
	t.Parallel()
	srv := testconsul.Start(t)
	certs := testconsul.NewTLS(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "web.yml")
	require.NoError(t, os.WriteFile(conf, []byte("tls_server_config:\n  cert_file: "+certs.ServerCert+"\n  key_file: "+certs.ServerKey+"\n"), 0o600))
	d := startDaemon(t, "--consul.server="+srv.HTTPAddr, "--output.file="+filepath.Join(dir, "out.json"), "--web.config.file="+conf)
	d.waitLog(t, 1, "Output file is complete")

	caPEM, err := os.ReadFile(certs.CA)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(caPEM))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer client.CloseIdleConnections()
	resp, err := client.Get(strings.Replace(d.url, "http://", "https://", 1) + "/targets")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))

	code, _, _ := d.get(t, http.MethodGet, "/targets")
	require.Equal(t, http.StatusBadRequest, code, "plain HTTP is refused")
	require.Equal(t, 0, d.terminate(t))
}
