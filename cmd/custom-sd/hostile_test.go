package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/custom-sd/custom-sd/internal/testconsul"
)

// hostileNames are service names Consul registers; some of them its HTTP
// API cannot serve.
var hostileNames = []string{
	"evil\nname", "tab\tname", "nul\x00name", "../../etc/passwd", "..", ".", "a//b", "/lead",
	"a/b", "trail/", "a b", "a%b", "a%2Fb", "a?b", "a#b", `q"uote`, `back\slash`, "a+b;c=d@e",
	"ünïcödé", "bad\xffutf8", strings.Repeat("long", 1000),
}

// servable reports whether Consul's own HTTP API serves the service name:
// a read of its path, escaped as a URL path must be, answers with its
// instance and no redirect.
func servable(t *testing.T, srv *testconsul.Server, name string) bool {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get("http://" + srv.HTTPAddr + "/v1/health/service/" + url.PathEscape(name))
	require.NoError(t, err)
	defer resp.Body.Close()
	var entries []*api.ServiceEntry
	return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&entries) == nil &&
		len(entries) == 1 && entries[0].Service.Service == name
}

// TestHostileCatalog: a fresh start on a catalog holding services whose
// names Consul cannot serve, and tags and meta of every odd kind, writes a
// complete file of every service Consul can serve, with their labels as
// Consul gives them and valid for Prometheus; it is ready; and it names
// each service it cannot read in its log, its metric and /-/ready. Another
// job's file is complete and valid throughout.
func TestHostileCatalog(t *testing.T) {
	t.Parallel()
	srv := testconsul.Start(t)
	for i, name := range hostileNames {
		srv.Register(t, testconsul.Instance{Service: name, ID: fmt.Sprintf("hostile-%d", i), Port: 20000 + i})
	}
	odd := []string{"line\nbreak", `quo"te`, "nul\x00", "bad\xffutf8", "../x", "%2F", "?q=1", "#h", "a/b", strings.Repeat("t", 10000)}
	// Consul takes meta values of up to 512 bytes.
	metaValue := func(v string) string { return v[:min(len(v), 512)] }
	meta := map[string]string{}
	for i, v := range odd {
		meta[fmt.Sprintf("k%d", i)] = metaValue(v)
	}
	srv.Register(t, testconsul.Instance{Service: "web", ID: "web-odd", Port: 8080, Tags: odd, Meta: meta})
	many := make([]string, 10000)
	for i := range many {
		many[i] = fmt.Sprintf("tag-%d", i)
	}
	srv.Register(t, testconsul.Instance{Node: "node-2", Service: "web", ID: "web-many", Port: 8081, Tags: many})

	var readable, unreadable []string
	for _, name := range hostileNames {
		// Consul stores invalid UTF-8 as U+FFFD.
		name = strings.ToValidUTF8(name, "\uFFFD")
		if servable(t, srv, name) {
			readable = append(readable, name)
		} else {
			unreadable = append(unreadable, name)
		}
	}
	require.NotEmpty(t, unreadable, "Consul cannot serve some of the names")
	require.NotEmpty(t, readable)

	dir := t.TempDir()
	cfg := filepath.Join(dir, "custom-sd.yml")
	require.NoError(t, os.WriteFile(cfg, []byte("consul: {server: "+srv.HTTPAddr+"}\njobs:\n"+
		"  - {name: all, exclude_services: [consul], output: {file: all.json}}\n"+
		"  - {name: web, services: [web], output: {file: web.json}}\n"), 0o600))
	d := startDaemon(t, "--config.file="+cfg)
	testconsul.Eventually(t, d.status(t, "/-/ready", http.StatusOK), "ready without the services that cannot be read")

	all := readServices(t, filepath.Join(dir, "all.json"))
	for _, name := range readable {
		require.Contains(t, all, name, "a service Consul serves is in the file")
	}
	for _, name := range unreadable {
		require.NotContains(t, all, name)
	}
	web := readServices(t, filepath.Join(dir, "web.json"))
	require.Len(t, web["web"], 2)
	var oddLabels model.LabelSet
	for _, ls := range web["web"] {
		if ls["__meta_consul_service_id"] == "web-odd" {
			oddLabels = ls
		}
	}
	require.NotNil(t, oddLabels)
	for i, v := range odd {
		v = strings.ToValidUTF8(v, "\uFFFD")
		require.Contains(t, string(oddLabels["__meta_consul_tags"]), ","+v+",", "the tag as Consul gives it")
		require.Equal(t, metaValue(v), string(oddLabels[model.LabelName(fmt.Sprintf("__meta_consul_service_metadata_k%d", i))]))
	}

	require.Equal(t, float64(len(unreadable)), d.metric(t, "custom_sd_consul_unreadable_services", map[string]string{"consul": "default"}))
	_, _, ready := d.get(t, http.MethodGet, "/-/ready")
	for _, name := range unreadable {
		require.Contains(t, ready, fmt.Sprintf("service %q", name), "/-/ready names it")
	}
	require.Equal(t, len(unreadable), d.countLog("Cannot read a service; its jobs go on without it"), "the log names each once")
	require.Equal(t, 0, d.terminate(t))
}

// readServices parses a file_sd file as Prometheus would, checking every
// label, and returns the targets' labels by service.
func readServices(t *testing.T, path string) map[string][]model.LabelSet {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.True(t, utf8.Valid(b))
	var groups []struct {
		Targets []string       `json:"targets"`
		Labels  model.LabelSet `json:"labels"`
	}
	require.NoError(t, json.Unmarshal(b, &groups))
	out := map[string][]model.LabelSet{}
	for _, g := range groups {
		require.NoError(t, g.Labels.Validate(), "labels Prometheus accepts")
		for _, target := range g.Targets {
			require.True(t, model.LabelValue(target).IsValid())
		}
		name := string(g.Labels["__meta_consul_service"])
		out[name] = append(out[name], g.Labels)
	}
	return out
}
