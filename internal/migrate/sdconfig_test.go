package migrate

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPrometheusRefuses: a consul_sd_configs entry that Prometheus 3
// refuses is refused, with Prometheus's message (prometheus/common's for
// the HTTP client settings), naming the scrape job and the entry.
func TestPrometheusRefuses(t *testing.T) {
	tests := []struct {
		name, entry, want string
	}{
		{"basic_auth and bearer_token_file", `{basic_auth: {username: u, password: p}, bearer_token_file: /t}`,
			"at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured"},
		{"bearer_token and bearer_token_file", `{bearer_token: t, bearer_token_file: /t}`,
			"at most one of bearer_token & bearer_token_file must be configured"},
		{"authorization and bearer_token", `{authorization: {credentials: a}, bearer_token: b}`,
			"authorization is not compatible with bearer_token & bearer_token_file"},
		{"authorization of type basic", `{authorization: {type: Basic, credentials: x}}`,
			`authorization type cannot be set to "basic", use "basic_auth" instead`},
		{"authorization and basic_auth", `{authorization: {credentials: a}, basic_auth: {username: u}}`,
			"at most one of basic_auth, oauth2 & authorization must be configured"},
		{"oauth2 without a client ID", `{oauth2: {token_url: "http://t"}}`, "oauth2 client_id must be configured"},
		{"oauth2 and basic_auth", `{oauth2: {client_id: c, token_url: "http://t"}, basic_auth: {username: u}}`,
			"at most one of basic_auth, oauth2 & authorization must be configured"},
		{"a client certificate without its key", `{tls_config: {cert_file: c}}`,
			"exactly one of key or key_file must be configured when a client certificate is configured"},
		{"ca and ca_file", `{tls_config: {ca: PEM, ca_file: ca}}`, "at most one of ca, ca_file & ca_ref must be configured"},
		{"an unknown TLS version", `{tls_config: {min_version: TLS14}}`, "unknown TLS version: TLS14"},
		{"proxy_url and proxy_from_environment", `{proxy_url: "http://p", proxy_from_environment: true}`,
			"if proxy_from_environment is configured, proxy_url must not be configured"},
		{"no_proxy without proxy_url", `{no_proxy: x}`, "if no_proxy is configured, proxy_url must also be configured"},
		{"a reserved header", `{http_headers: {Authorization: {values: [x]}}}`, `setting header "Authorization" is not allowed`},
		{"username and basic_auth", `{username: a, basic_auth: {username: b}}`,
			"at most one of consul SD configuration username and password and basic auth can be configured"},
		{"token and authorization", `{token: a, authorization: {credentials: b}}`,
			"at most one of consul SD token, authorization, or oauth2 can be configured"},
		{"token and oauth2", `{token: a, oauth2: {client_id: c, token_url: "http://t"}}`,
			"at most one of consul SD token, authorization, or oauth2 can be configured"},
		{"an empty server", `{server: " "}`, "consul SD configuration requires a server address"},
		{"a server of null", `{server: }`, "consul SD configuration requires a server address"},
		{"an unknown field", `{colour: blue}`, "line 3: field colour not found in consul_sd_configs"},
		{"an unknown field in basic_auth", `{basic_auth: {usernme: u}}`, "line 3: field usernme not found in consul_sd_configs.basic_auth"},
		{"an unknown field in oauth2's tls_config", `{oauth2: {client_id: c, token_url: "http://t", tls_config: {ca_fil: x}}}`,
			"line 3: field ca_fil not found in consul_sd_configs.oauth2.tls_config"},
		{"a value of the wrong type", `{services: web}`, "line 3: cannot unmarshal !!str `web` into []string"},
		{"a bad refresh_interval", `{refresh_interval: soon}`, `not a valid duration string: "soon"`},
		{"not a mapping", `[a]`, "line 3: not a mapping"},
		{"null", `~`, "line 3: not a mapping"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := convertString(t, "scrape_configs:\n  - job_name: j\n    consul_sd_configs: ["+tc.entry+"]\n", "")
			require.EqualError(t, err, `prometheus.yml: scrape job "j": consul_sd_configs[0]: `+tc.want)
		})
	}
}
