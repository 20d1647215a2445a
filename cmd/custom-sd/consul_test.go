package main

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"

	"github.com/custom-sd/custom-sd/internal/testconsul"
)

// ids returns the service IDs in the output file, sorted, or nil if the
// file cannot be read.
func ids(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if _, rest, ok := strings.Cut(line, `"__meta_consul_service_id":"`); ok {
			id, _, _ := strings.Cut(rest, `"`)
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

func TestSelectionFlags(t *testing.T) {
	t.Parallel()
	srv := testconsul.Start(t)
	for _, in := range []testconsul.Instance{
		{Node: "node-a", NodeMeta: map[string]string{"rack": "a"}, Service: "web", ID: "web-1", Port: 8080, Tags: []string{"prod"}, Meta: map[string]string{"team": "shop"}, Status: api.HealthPassing},
		{Node: "node-a", NodeMeta: map[string]string{"rack": "a"}, Service: "web", ID: "web-2", Port: 8081, Tags: []string{"prod"}, Meta: map[string]string{"team": "shop"}, Status: api.HealthWarning},
		{Node: "node-a", NodeMeta: map[string]string{"rack": "a"}, Service: "web", ID: "web-3", Port: 8082, Tags: []string{"prod"}, Meta: map[string]string{"team": "shop"}, Status: api.HealthCritical},
		{Node: "node-a", NodeMeta: map[string]string{"rack": "a"}, Service: "web", ID: "web-4", Port: 8083, Tags: []string{"prod"}, Meta: map[string]string{"team": "shop"}},
		{Node: "node-b", NodeMeta: map[string]string{"rack": "b"}, Service: "web", ID: "web-5", Port: 8084, Tags: []string{"prod"}, Meta: map[string]string{"team": "shop"}},
		{Node: "node-a", NodeMeta: map[string]string{"rack": "a"}, Service: "web", ID: "web-6", Port: 8085, Meta: map[string]string{"team": "shop"}},
		{Node: "node-a", NodeMeta: map[string]string{"rack": "a"}, Service: "db", ID: "db-1", Port: 5432, Tags: []string{"prod"}, Meta: map[string]string{"team": "shop"}},
		{Node: "node-a", NodeMeta: map[string]string{"rack": "a"}, Service: "api", ID: "api-1", Port: 9000, Tags: []string{"prod"}, Meta: map[string]string{"team": "platform"}},
	} {
		srv.Register(t, in)
	}
	tests := []struct {
		name  string
		flags []string
		want  []string
	}{
		{"everything", nil, []string{"api-1", "consul", "db-1", "web-1", "web-2", "web-3", "web-4", "web-5", "web-6"}},
		{"services", []string{"--consul.service=db", "--consul.service=api"}, []string{"api-1", "db-1"}},
		{"all together", []string{
			"--consul.tag=prod",
			"--consul.node-meta=rack=a",
			"--consul.health=warning",
			"--consul.exclude-service=d.*",
			`--consul.filter=ServiceMeta.team == "shop"`,
			`--consul.health-filter=Service.Port != 8083`,
		}, []string{"web-1", "web-2"}},
		{"health passing", []string{"--consul.health=passing", "--consul.exclude-service=consul", "--consul.service=web"}, []string{"web-1", "web-4", "web-5", "web-6"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(t.TempDir(), "custom_sd.json")
			d := startDaemon(t, append([]string{"--consul.server=" + srv.HTTPAddr, "--output.file=" + out}, tc.flags...)...)
			d.waitLog(t, 1, "Output file is complete")
			require.Equal(t, tc.want, ids(out))
			require.Equal(t, 0, d.terminate(t))
		})
	}
}

func TestSeveralDatacentersInOneFile(t *testing.T) {
	t.Parallel()
	dc1, dc2 := testconsul.StartFederation(t)
	dc1.Register(t, testconsul.Instance{Service: "web", ID: "web-1", Port: 8080})
	dc2.Register(t, testconsul.Instance{Service: "web", ID: "web-2", Port: 8080})

	for _, flags := range [][]string{
		{"--consul.datacenter=dc1", "--consul.datacenter=dc2"},
		{"--consul.all-datacenters"},
	} {
		out := filepath.Join(t.TempDir(), "custom_sd.json")
		d := startDaemon(t, append([]string{"--consul.server=" + dc1.HTTPAddr, "--output.file=" + out, "--consul.exclude-service=consul"}, flags...)...)
		d.waitLog(t, 1, "Output file is complete")
		got := readTargets(t, out)
		require.Equal(t, "dc1", got["web-1"].Labels["__meta_consul_dc"], flags)
		require.Equal(t, "dc2", got["web-2"].Labels["__meta_consul_dc"], flags)
		// HTTP SD's ?service= matches the service in every datacenter.
		code, _, body := d.get(t, http.MethodGet, "/targets?service=web")
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, 2, strings.Count(body, `"targets"`), body)
		require.Equal(t, 0, d.terminate(t))
	}
}

// aclToken creates a token with read rights on every service and node,
// under a policy with the given name.
func aclToken(t *testing.T, srv *testconsul.Server, name string) *api.ACLToken {
	t.Helper()
	policy := &api.ACLPolicy{Name: name, Rules: `service_prefix "" { policy = "read" }
node_prefix "" { policy = "read" }`}
	policy, _, err := srv.Client.ACL().PolicyCreate(policy, nil)
	require.NoError(t, err)
	tok, _, err := srv.Client.ACL().TokenCreate(&api.ACLToken{Policies: []*api.ACLTokenPolicyLink{{ID: policy.ID}}}, nil)
	require.NoError(t, err)
	return tok
}

// TestTokenFileRotation: a read-only token from a file works; when it is
// revoked, the 403s are logged with the endpoint and the file keeps its
// targets; a new token written to the file is picked up without a restart.
// No token ever shows in the log, /metrics or /targets.
func TestTokenFileRotation(t *testing.T) {
	t.Parallel()
	const management = "5c1e0f3a-7d2b-4e8a-9f6c-2b1d0e3f4a5c"
	srv := testconsul.Start(t, testconsul.WithACLs(management))
	srv.Register(t, testconsul.Instance{Service: "web", ID: "web-1", Port: 8080})
	first, second := aclToken(t, srv, "read-first"), aclToken(t, srv, "read-second")

	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(first.SecretID+"\n"), 0o600))
	out := filepath.Join(dir, "custom_sd.json")
	d := startDaemon(t, "--consul.server="+srv.HTTPAddr, "--output.file="+out, "--consul.token-file="+tokenFile)
	d.waitLog(t, 1, "Output file is complete")
	before := ids(out)
	require.Contains(t, before, "web-1")

	// Revoked: 403s, logged with the endpoint; the file keeps its targets.
	_, err := srv.Client.ACL().TokenDelete(first.AccessorID, nil)
	require.NoError(t, err)
	srv.Register(t, testconsul.Instance{Service: "api", ID: "api-1", Port: 9000})
	d.waitLog(t, 1, "Consul denied the query (403)", "endpoint=/v1/")
	require.Equal(t, before, ids(out), "a denied query never empties the file")

	// Rotated: the new token is read from the file and everything is seen.
	require.NoError(t, os.WriteFile(tokenFile, []byte(second.SecretID+"\n"), 0o600))
	testconsul.Eventually(t, func() bool { return strings.Contains(strings.Join(ids(out), ","), "api-1") }, "api-1 with the new token")
	d.waitLog(t, 1, "The ACL token changed")

	_, _, metrics := d.get(t, http.MethodGet, "/metrics")
	_, _, targets := d.get(t, http.MethodGet, "/targets")
	for _, secret := range []string{first.SecretID, second.SecretID, management} {
		require.NotContains(t, d.stderr.String(), secret)
		require.NotContains(t, metrics, secret)
		require.NotContains(t, targets, secret)
	}
	require.Equal(t, 0, d.terminate(t))
}

func TestConsulOverVerifiedTLS(t *testing.T) {
	t.Parallel()
	files := testconsul.NewTLS(t)
	srv := testconsul.Start(t, testconsul.WithHTTPS(files), testconsul.WithVerifiedClients())
	srv.Register(t, testconsul.Instance{Service: "web", ID: "web-1", Port: 8080})
	server := "--consul.server=https://" + srv.HTTPSAddr

	// Flags, then the consul CLI's environment variables.
	for name, run := range map[string]func(out string) *daemon{
		"flags": func(out string) *daemon {
			return startDaemon(t, server, "--output.file="+out, "--consul.tls.ca-file="+files.CA,
				"--consul.tls.cert-file="+files.ClientCert, "--consul.tls.key-file="+files.ClientKey)
		},
		"environment": func(out string) *daemon {
			return startDaemonEnv(t, []string{"CONSUL_CACERT=" + files.CA, "CONSUL_CLIENT_CERT=" + files.ClientCert, "CONSUL_CLIENT_KEY=" + files.ClientKey},
				server, "--output.file="+out)
		},
	} {
		out := filepath.Join(t.TempDir(), "custom_sd.json")
		d := run(out)
		testconsul.Eventually(t, hasTarget(out, "web-1"), name)
		require.Equal(t, 0, d.terminate(t), name)
	}

	// Without a client certificate the agent refuses; nothing is written.
	out := filepath.Join(t.TempDir(), "custom_sd.json")
	d := startDaemon(t, server, "--output.file="+out, "--consul.tls.ca-file="+files.CA)
	d.waitLog(t, 1, "Consul query failed", "certificate")
	require.Equal(t, 0, d.terminate(t))
	_, err := os.Stat(out)
	require.ErrorIs(t, err, os.ErrNotExist)
}

// TestConsulBehindAProxy: basic auth and a path prefix, as with Consul
// behind a reverse proxy (a small one in the test, in front of a real
// agent). The password never shows in the log.
func TestConsulBehindAProxy(t *testing.T) {
	t.Parallel()
	const password = "pa55-w0rd-never-logged"
	srv := testconsul.Start(t)
	srv.Register(t, testconsul.Instance{Service: "web", ID: "web-1", Port: 8080})
	target, err := url.Parse("http://" + srv.HTTPAddr)
	require.NoError(t, err)
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if !ok || user != "prom" || pass != password {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		path, found := strings.CutPrefix(r.URL.Path, "/consul")
		if !found {
			http.NotFound(w, r)
			return
		}
		r.URL.Path = path
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)

	dir := t.TempDir()
	passFile := filepath.Join(dir, "password")
	require.NoError(t, os.WriteFile(passFile, []byte(password+"\n"), 0o600))
	out := filepath.Join(dir, "custom_sd.json")
	d := startDaemon(t, "--consul.server="+proxy.URL, "--consul.path-prefix=/consul",
		"--consul.username=prom", "--consul.password-file="+passFile, "--output.file="+out, "--log.level=debug")
	testconsul.Eventually(t, hasTarget(out, "web-1"))
	require.Equal(t, 0, d.terminate(t))
	require.NotContains(t, d.stderr.String(), password)

	// A wrong password: 401s, logged without the password.
	require.NoError(t, os.WriteFile(passFile, []byte("wrong-"+password+"\n"), 0o600))
	out2 := filepath.Join(dir, "denied.json")
	d = startDaemon(t, "--consul.server="+proxy.URL, "--consul.path-prefix=/consul",
		"--consul.username=prom", "--consul.password-file="+passFile, "--output.file="+out2)
	d.waitLog(t, 1, "Consul query failed", "401")
	require.Equal(t, 0, d.terminate(t))
	require.NotContains(t, d.stderr.String(), password)
}

// TestNamespaceOnConsulCE: Consul CE refuses namespaces; the refusal is
// logged as Consul words it, and nothing is written.
func TestNamespaceOnConsulCE(t *testing.T) {
	t.Parallel()
	srv := testconsul.Start(t)
	for _, flag := range []string{"--consul.namespace=team-a", "--consul.partition=p1"} {
		out := filepath.Join(t.TempDir(), "custom_sd.json")
		d := startDaemon(t, "--consul.server="+srv.HTTPAddr, "--output.file="+out, flag)
		d.waitLog(t, 1, "Consul query failed", "Consul Enterprise feature")
		require.Equal(t, 0, d.terminate(t))
		_, err := os.Stat(out)
		require.ErrorIs(t, err, os.ErrNotExist, flag)
	}
}
