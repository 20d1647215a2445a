package migrate

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCustomSDRefuses: an entry Prometheus takes but whose conversion
// custom-sd would refuse is an error naming the entry and the field, so
// custom-sd.yml always loads where its files exist.
func TestCustomSDRefuses(t *testing.T) {
	tests := []struct {
		name, entry, want string
	}{
		{"an empty tag_separator", `{tag_separator: ""}`, "jobs[a].tag_separator: must not be empty"},
		{"a unix socket", `{server: "unix:///run/consul.sock"}`, "consul.server: unix socket addresses are not supported"},
		{"a scheme custom-sd does not speak", `{scheme: ftp}`, `consul.scheme: "ftp" is not http or https`},
		{"a path prefix without /", `{path_prefix: consul}`, `consul.path_prefix: "consul" does not start with /`},
		{"a filter Consul's grammar rejects", `{filter: "Service =="}`, "jobs[a].filter: "},
		{"a service name that cannot be part of a URL", `{services: ["a/b"]}`, `jobs[a].services: "a/b" is not a service name`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := convertString(t, "scrape_configs: [{job_name: a, consul_sd_configs: ["+tc.entry+"]}]\n", "")
			require.ErrorContains(t, err, `prometheus.yml: scrape job "a": consul_sd_configs[0]: custom-sd would refuse it: `+tc.want)
		})
	}
}
