package migrate

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/custom-sd/custom-sd/internal/config"
)

// TestLongJobNames: a scrape job whose name, sanitised, is longer than a
// job name may be gets a shortened one, a readable prefix and a hash of
// the whole, unique and the same on every run; the summary says which;
// custom-sd.yml loads.
func TestLongJobNames(t *testing.T) {
	long := strings.Repeat("very-long-scrape-job-name.", 12) // 312 bytes
	src := fmt.Sprintf(`scrape_configs:
  - job_name: %[1]s
    consul_sd_configs: [{services: [a]}]
  - job_name: %[1]sb
    consul_sd_configs: [{services: [b]}]
  - job_name: %[1]s/c
    consul_sd_configs: [{services: [c]}]
  - job_name: %[1]s c
    consul_sd_configs: [{services: [d]}]
  - job_name: %[1]s
    consul_sd_configs: [{services: [e]}, {services: [f]}]
  - job_name: short
    consul_sd_configs: [{services: [g]}]
`, long)
	res, err := convertString(t, src, "")
	require.NoError(t, err)
	var names []string
	for _, j := range res.File.Jobs {
		require.NoError(t, config.ValidJobName(j.Name))
		require.True(t, strings.HasPrefix(j.Name, long[:150]) || j.Name == "short", j.Name)
		require.Equal(t, "sd/"+j.Name+".json", j.Output.File)
		names = append(names, j.Name)
	}
	require.Len(t, names, 7)
	require.Equal(t, "short", names[6])
	seen := map[string]bool{}
	for _, n := range names {
		require.False(t, seen[n], "%s twice", n)
		seen[n] = true
	}
	require.Len(t, res.Report.Renamed, 6)
	require.Equal(t, Rename{Scrape: long + "/c", Entry: 0, From: long + "_c", To: names[2]}, res.Report.Renamed[2])
	require.Equal(t, Rename{Scrape: long, Entry: 1, From: long + "-1", To: names[5]}, res.Report.Renamed[5])
	sum := summary(res)
	require.Contains(t, sum, "Shortened to fit a job name's 200 bytes")
	require.Contains(t, sum, "... (314 bytes) -> "+names[2])

	again, err := convertString(t, src, "")
	require.NoError(t, err)
	require.Equal(t, res.File.Jobs, again.File.Jobs, "the same names on every run")

	writeResult(t, res)
	_, err = config.Load(filepath.Join(res.Report.Out, ConfigFile))
	require.NoError(t, err)
}

func TestFitName(t *testing.T) {
	tests := []struct {
		name, in string
		wantLen  int
	}{
		{"short", "a", 1},
		{"at the limit", strings.Repeat("a", config.MaxJobNameLen), config.MaxJobNameLen},
		{"one over", strings.Repeat("a", config.MaxJobNameLen+1), config.MaxJobNameLen},
		{"far over", strings.Repeat("a", 10000), config.MaxJobNameLen},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := fitName(tc.in)
			require.Len(t, got, tc.wantLen)
			if len(tc.in) <= config.MaxJobNameLen {
				require.Equal(t, tc.in, got)
			}
		})
	}
	require.NotEqual(t, fitName(strings.Repeat("a", 300)), fitName(strings.Repeat("a", 301)))
}
