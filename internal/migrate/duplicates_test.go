package migrate

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDuplicateKeys: a key given twice in a mapping is refused with the
// key and its lines, as promtool refuses it, wherever it is; merge keys
// and the keys they merge are not duplicates.
func TestDuplicateKeys(t *testing.T) {
	tests := []struct {
		name, in, wantErr string
	}{
		{
			name: "in a consul_sd_configs entry",
			in: `scrape_configs:
  - job_name: a
    consul_sd_configs:
      - server: c:8500
        services: [a]
        server: d:8500
`,
			wantErr: `prometheus.yml: line 6: key "server" is given twice (first on line 4); Prometheus refuses it too`,
		},
		{
			name:    "in flow style",
			in:      "scrape_configs: [{job_name: a, consul_sd_configs: [{services: [a], services: [b]}]}]\n",
			wantErr: `prometheus.yml: line 1: key "services" is given twice (first on line 1); Prometheus refuses it too`,
		},
		{
			name: "in a nested mapping",
			in: `scrape_configs:
  - job_name: a
    consul_sd_configs:
      - basic_auth: {username: u, username: v}
`,
			wantErr: `prometheus.yml: line 4: key "username" is given twice (first on line 4); Prometheus refuses it too`,
		},
		{
			name: "elsewhere in the configuration",
			in: `global:
  scrape_interval: 1m
  scrape_interval: 2m
scrape_configs: [{job_name: a, consul_sd_configs: [{}]}]
`,
			wantErr: `prometheus.yml: line 3: key "scrape_interval" is given twice (first on line 2); Prometheus refuses it too`,
		},
		{
			name: "the job itself",
			in: `scrape_configs:
  - job_name: a
    consul_sd_configs: [{}]
    job_name: b
`,
			wantErr: `prometheus.yml: line 4: key "job_name" is given twice (first on line 2); Prometheus refuses it too`,
		},
		{
			name: "merge keys are not duplicates",
			in: `scrape_configs:
  - job_name: a
    consul_sd_configs:
      - &base {server: c:8500, services: [a]}
      - {<<: [*base, {tags: [t]}], services: [b]}
`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := convertString(t, tc.in, "")
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tc.wantErr)
		})
	}
}
