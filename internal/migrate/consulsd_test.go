package migrate

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/custom-sd/custom-sd/internal/config"
)

// TestConsulFields: each consul_sd_configs field lands in custom-sd's
// agent settings or selection, or gets a note saying why not.
func TestConsulFields(t *testing.T) {
	path := func(p string) string { return "DIR/" + p }
	defaults := config.Consul{Server: "localhost:8500", Scheme: "http"}
	with := func(f func(*config.Consul)) config.Consul {
		c := defaults
		f(&c)
		return c
	}
	tests := []struct {
		name        string
		entry       string
		wantAgent   config.Consul
		wantJob     config.Job
		wantSecrets agentSecrets
		wantNotes   []string // field: start of the reason
	}{
		{name: "defaults are Prometheus's", entry: `{}`, wantAgent: defaults},
		{name: "a scheme in the server", entry: `{server: "https://c:8501"}`, wantAgent: config.Consul{Server: "https://c:8501"}},
		{name: "a scheme in the server and of its own", entry: `{server: "https://c:8501", scheme: https}`,
			wantAgent: config.Consul{Server: "https://c:8501", Scheme: "https"}},
		{name: "path prefix", entry: `{path_prefix: /consul}`, wantAgent: with(func(c *config.Consul) { c.PathPrefix = "/consul" })},
		{name: "username and password", entry: `{username: u, password: p}`,
			wantAgent: with(func(c *config.Consul) { c.Username = "u" }), wantSecrets: agentSecrets{password: "p"}},
		{name: "basic_auth with a password file", entry: `{basic_auth: {username: u, password_file: pw}}`,
			wantAgent: with(func(c *config.Consul) { c.Username, c.PasswordFile = "u", "DIR/pw" })},
		{name: "basic_auth with a user name file", entry: `{basic_auth: {username_file: uf, password: p}}`, wantAgent: defaults,
			wantNotes: []string{"basic_auth.username_file: not supported: custom-sd.yml takes the user name itself; set username to what uf holds"}},
		{name: "basic_auth with a password from a secret manager", entry: `{basic_auth: {username: u, password_ref: r}}`, wantAgent: defaults,
			wantNotes: []string{"basic_auth.password_ref: not supported: custom-sd reads no secret manager"}},
		{name: "a password without a user name", entry: `{basic_auth: {password: p}}`, wantAgent: defaults,
			wantNotes: []string{"basic_auth: not supported: a password without a user name"}},
		{name: "token", entry: `{token: t}`, wantAgent: defaults, wantSecrets: agentSecrets{token: "t"}},
		{name: "authorization Bearer credentials become the token", entry: `{authorization: {credentials: t}}`,
			wantAgent: defaults, wantSecrets: agentSecrets{token: "t"}},
		{name: "authorization credentials_file becomes token_file", entry: `{authorization: {type: Bearer, credentials_file: tf}}`,
			wantAgent: with(func(c *config.Consul) { c.TokenFile = "DIR/tf" })},
		{name: "bearer_token", entry: `{bearer_token: t}`, wantAgent: defaults, wantSecrets: agentSecrets{token: "t"}},
		{name: "bearer_token_file", entry: `{bearer_token_file: tf}`, wantAgent: with(func(c *config.Consul) { c.TokenFile = "DIR/tf" })},
		{name: "token and bearer_token: Consul takes the token", entry: `{token: a, bearer_token: b}`,
			wantAgent: defaults, wantSecrets: agentSecrets{token: "a"},
			wantNotes: []string{"bearer_token: not carried over: Consul takes the token field"}},
		{name: "authorization of another type", entry: `{authorization: {type: Token, credentials: x}}`, wantAgent: defaults,
			wantNotes: []string{`authorization: not supported: type "Token"`}},
		{
			name:  "tls_config",
			entry: `{tls_config: {ca_file: ca, cert_file: c, key_file: k, server_name: s, insecure_skip_verify: true, min_version: TLS13}}`,
			wantAgent: with(func(c *config.Consul) {
				c.TLSConfig = &config.TLSConfig{CAFile: "DIR/ca", CertFile: "DIR/c", KeyFile: "DIR/k", ServerName: "s", InsecureSkipVerify: true}
			}),
			wantNotes: []string{"tls_config.min_version: not supported"},
		},
		{name: "tls_config with PEM blocks", entry: `{tls_config: {ca: CA, cert: CERT, key: KEY}}`, wantAgent: defaults,
			wantSecrets: agentSecrets{ca: "CA", cert: "CERT", key: "KEY"}},
		{name: "tls_config with references", entry: `{tls_config: {ca_ref: a, cert_ref: c, key_ref: k}}`, wantAgent: defaults,
			wantNotes: []string{"tls_config.ca_ref: not supported", "tls_config.cert_ref: not supported", "tls_config.key_ref: not supported"}},
		{name: "user name and password in the server", entry: `{server: "https://u%40x:p%3A@c:8501/"}`,
			wantAgent: config.Consul{Server: "https://c:8501/", Username: "u@x"}, wantSecrets: agentSecrets{password: "p:"}},
		{name: "user name and password in a server without a scheme", entry: `{server: "u:p@c:8500"}`,
			wantAgent: config.Consul{Server: "c:8500", Scheme: "http", Username: "u"}, wantSecrets: agentSecrets{password: "p"}},
		{name: "a user name alone in the server, and a token", entry: `{server: "u@c:8500", token: t}`,
			wantAgent: config.Consul{Server: "c:8500", Scheme: "http", Username: "u"}, wantSecrets: agentSecrets{token: "t"}},
		{
			name: "selection",
			entry: `{services: [a, b], tags: [t], node_meta: {k: v}, filter: f, health_filter: h, datacenter: dc,
			         allow_stale: false, tag_separator: ";", namespace: ns, partition: pt}`,
			wantAgent: defaults,
			wantJob: config.Job{Services: []string{"a", "b"}, Tags: []string{"t"}, NodeMeta: map[string]string{"k": "v"},
				Filter: "f", HealthFilter: "h", Datacenter: "dc", AllowStale: new(false), TagSeparator: new(";"),
				Namespace: "ns", Partition: "pt"},
		},
		{
			name: "HTTP client settings",
			entry: `{refresh_interval: 10s, follow_redirects: false, enable_http2: true, proxy_url: "http://p:3128", no_proxy: x,
			         proxy_connect_header: {a: [b]}, oauth2: {client_id: x, token_url: "http://t"}, http_headers: {a: {values: [b]}}}`,
			wantAgent: defaults,
			wantNotes: []string{
				"refresh_interval: not needed", "follow_redirects: not supported", "enable_http2: not needed",
				"proxy_url: not supported", "no_proxy: not supported", "proxy_connect_header: not supported",
				"oauth2: not supported", "http_headers: not supported",
			},
		},
		{name: "null is the zero value, not the default", entry: `{follow_redirects: ~, enable_http2: null, allow_stale: }`, wantAgent: defaults,
			wantJob:   config.Job{AllowStale: new(false)},
			wantNotes: []string{"follow_redirects: not supported", "enable_http2: not supported"}},
		{name: "proxy_from_environment", entry: `{proxy_from_environment: true}`, wantAgent: defaults,
			wantNotes: []string{"proxy_from_environment: not needed"}},
		{
			name:      "merge keys",
			entry:     "base: &b {server: 'c:1', services: [x]}\nentry: {<<: *b, services: [y]}",
			wantAgent: config.Consul{Server: "c:1", Scheme: "http"},
			wantJob:   config.Job{Services: []string{"y"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := convertConsulSD(entryNode(t, tc.entry), path)
			require.NoError(t, err)
			require.Equal(t, tc.wantAgent, *c.agent)
			require.Equal(t, tc.wantJob, *c.job)
			require.Equal(t, tc.wantSecrets, c.secrets)
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

// entryNode parses a consul_sd_configs entry: the document, or its key
// entry if it has one.
func entryNode(t *testing.T, src string) *yaml.Node {
	t.Helper()
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(src), &doc))
	entry := doc.Content[0]
	if e := lookup(entry, "entry"); e != nil {
		entry = e
	}
	return entry
}
