package migrate

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/custom-sd/custom-sd/internal/config"
)

func TestConsulFields(t *testing.T) {
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
