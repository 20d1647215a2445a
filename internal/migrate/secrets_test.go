package migrate

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/custom-sd/custom-sd/internal/config"
	"github.com/custom-sd/custom-sd/internal/testcerts"
	"github.com/custom-sd/custom-sd/sd/consul"
)

// TestSecretsNeverShown: a credential in any form is neither in
// custom-sd.yml, nor in the summary, nor in a name; one custom-sd can use
// is in a file of Secrets, which custom-sd.yml names, and reaches Consul
// from there.
func TestSecretsNeverShown(t *testing.T) {
	const secret = "Sup3r-S3cret"
	certs, err := testcerts.Write(t.TempDir())
	require.NoError(t, err)
	cert, key := readQuoted(t, certs.ClientCert), readQuoted(t, certs.ClientKey)
	tests := []struct {
		name  string
		entry string
		// want checks the agent custom-sd resolves; nil: the secret is
		// not carried over.
		want func(t *testing.T, w *config.Watch)
	}{
		{"password in the server URL", `{server: "http://admin:` + secret + `@consul.internal:8500"}`, func(t *testing.T, w *config.Watch) {
			require.Equal(t, "http://consul.internal:8500", w.Config.API.Address)
			require.Equal(t, "admin", w.Config.API.HttpAuth.Username)
			require.Equal(t, secret, passwordOf(t, w))
		}},
		{"password in a server without a scheme", `{server: "admin:` + secret + `@consul.internal:8500"}`, func(t *testing.T, w *config.Watch) {
			require.Equal(t, "consul.internal:8500", w.Config.API.Address)
			require.Equal(t, secret, passwordOf(t, w))
		}},
		{"token", `{server: consul.internal:8500, token: ` + secret + `}`, wantToken(secret)},
		{"bearer_token", `{server: consul.internal:8500, bearer_token: ` + secret + `}`, wantToken(secret)},
		{"authorization credentials", `{server: consul.internal:8500, authorization: {credentials: ` + secret + `}}`, wantToken(secret)},
		{"password", `{server: consul.internal:8500, username: u, password: ` + secret + `}`, wantPassword(secret)},
		{"basic_auth password", `{server: consul.internal:8500, basic_auth: {username: u, password: ` + secret + `}}`, wantPassword(secret)},
		{"TLS client key", `{server: consul.internal:8500, tls_config: {cert: ` + cert + `, key: ` + key + `}}`, func(t *testing.T, w *config.Watch) {
			b, err := os.ReadFile(w.Config.API.TLSConfig.KeyFile)
			require.NoError(t, err)
			require.Contains(t, string(b), "PRIVATE KEY")
		}},
		{"OAuth2 client secret", `{server: consul.internal:8500, oauth2: {client_id: c, client_secret: ` + secret + `, token_url: "https://t"}}`, nil},
		{"proxy password", `{server: consul.internal:8500, proxy_url: "http://p:` + secret + `@proxy:3128"}`, nil},
		{"header secret", `{server: consul.internal:8500, http_headers: {X-Auth: {secrets: [` + secret + `]}}}`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := convertString(t, `scrape_configs:
  - job_name: a
    consul_sd_configs: [`+tc.entry+`]
  - job_name: b
    consul_sd_configs: [{server: "other:8500"}]
`, "")
			require.NoError(t, err)
			sum := summary(res)
			secret := secret
			if strings.Contains(tc.entry, "tls_config") {
				secret = strings.Split(unquote(t, key), "\n")[1] // a line of the key
			}
			for what, text := range map[string]string{
				"custom-sd.yml": string(res.Config), "prometheus.yml": string(res.Prometheus), "the summary": sum,
				"the agents' names": strings.Join(keys(res.File.Consuls), " "), "the jobs' names": res.File.Jobs[0].Name + " " + res.File.Jobs[1].Name,
			} {
				require.NotContains(t, text, secret, what)
			}
			writeResult(t, res)
			c, err := config.Load(filepath.Join(res.Report.Out, ConfigFile))
			require.NoError(t, err)
			w := c.Consuls[c.Jobs[0].Consul]
			if tc.want == nil {
				require.Empty(t, res.Secrets)
				require.NotEmpty(t, res.Report.NotCarried)
				return
			}
			require.Len(t, res.Secrets, 1+strings.Count(tc.entry, "cert:"))
			require.Contains(t, sum, "<secret> in "+res.Secrets[len(res.Secrets)-1].Path)
			require.Contains(t, sum, "into "+filepath.Join(res.Report.Out, "secrets")+" with mode 0600")
			tc.want(t, w)
		})
	}
}

// readQuoted returns a file's text as a double-quoted YAML string.
func readQuoted(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return strconv.Quote(string(b))
}

func unquote(t *testing.T, s string) string {
	t.Helper()
	u, err := strconv.Unquote(s)
	require.NoError(t, err)
	return u
}

func wantToken(token string) func(t *testing.T, w *config.Watch) {
	return func(t *testing.T, w *config.Watch) {
		t.Helper()
		require.Empty(t, w.Config.API.Token, "not inline")
		b, err := os.ReadFile(w.Config.TokenFile)
		require.NoError(t, err)
		require.Equal(t, token, string(b))
	}
}

// passwordOf is the password custom-sd uses for an agent: read from its
// password file, where migrate puts it.
func passwordOf(t *testing.T, w *config.Watch) string {
	t.Helper()
	if w.Config.PasswordFile == "" {
		return w.Config.API.HttpAuth.Password
	}
	p, err := consul.ReadSecretFile(w.Config.PasswordFile)
	require.NoError(t, err)
	return p
}

func wantPassword(password string) func(t *testing.T, w *config.Watch) {
	return func(t *testing.T, w *config.Watch) {
		t.Helper()
		require.Equal(t, "u", w.Config.API.HttpAuth.Username)
		require.Equal(t, password, passwordOf(t, w), "read from password_file")
	}
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// TestSecretsNotInErrors: an error about an entry leaves its secrets
// out, even where the message it comes from quotes them.
func TestSecretsNotInErrors(t *testing.T) {
	tests := []struct {
		name, entry, want string
	}{
		{"a proxy URL that does not parse", `{proxy_url: "http://u:Sup3r-S3cret@proxy:port"}`, `"http://<secret>@proxy:port"`},
		{"a server URL with a bad escape", `{server: "http://u:Sup3r%zz@c:8500"}`, "server: the user name and password in it are not URL-escaped properly"},
		{"a secret in a bad entry", `{token: Sup3r-S3cret, authorization: {credentials: Sup3r-S3cret}}`, "at most one of consul SD token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := convertString(t, "scrape_configs: [{job_name: a, consul_sd_configs: ["+tc.entry+"]}]\n", "")
			require.ErrorContains(t, err, tc.want)
			require.NotContains(t, err.Error(), "Sup3r")
		})
	}
}
