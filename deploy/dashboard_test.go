package deploy

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The Grafana dashboard is hand-written JSON; these tests check its shape.
// e2e/dashboard_test.go runs every query against a real Prometheus
// scraping a real custom-sd.

type grafanaDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type grafanaPanel struct {
	ID         int                `json:"id"`
	Type       string             `json:"type"`
	Title      string             `json:"title"`
	Datasource *grafanaDatasource `json:"datasource"`
	GridPos    struct{ H, W, X, Y int }
	Targets    []struct {
		Datasource *grafanaDatasource `json:"datasource"`
		RefID      string             `json:"refId"`
		Expr       string             `json:"expr"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"`
}

type grafanaDashboard struct {
	UID           string         `json:"uid"`
	Title         string         `json:"title"`
	SchemaVersion int            `json:"schemaVersion"`
	Panels        []grafanaPanel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string             `json:"name"`
			Type       string             `json:"type"`
			Query      any                `json:"query"`
			Definition string             `json:"definition"`
			Datasource *grafanaDatasource `json:"datasource"`
			IncludeAll bool               `json:"includeAll"`
			AllValue   string             `json:"allValue"`
		} `json:"list"`
	} `json:"templating"`
}

const dashboardPath = "grafana/custom-sd.json"

// datasourceVar is how every query names its data source: the dashboard's
// variable, never a fixed UID, so it imports into any Grafana.
var datasourceVar = grafanaDatasource{Type: "prometheus", UID: "${datasource}"}

func readDashboard(t *testing.T) grafanaDashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	require.NoError(t, err)
	var d grafanaDashboard
	require.NoError(t, json.Unmarshal(b, &d))
	return d
}

func TestDashboardShape(t *testing.T) {
	t.Parallel()
	d := readDashboard(t)
	require.Equal(t, "custom-sd", d.UID)
	require.Equal(t, "custom-sd", d.Title)
	require.Positive(t, d.SchemaVersion)

	// Variables: the data source, then the scrape job, instance, SD job
	// and Consul agent, each from the one before, with All as .*.
	var names []string
	for i, v := range d.Templating.List {
		names = append(names, v.Name)
		if i == 0 {
			require.Equal(t, "datasource", v.Type)
			require.Equal(t, "prometheus", v.Query)
			continue
		}
		require.Equal(t, "query", v.Type, v.Name)
		require.Equal(t, datasourceVar, *v.Datasource, v.Name)
		require.True(t, v.IncludeAll, v.Name)
		require.Equal(t, ".*", v.AllValue, v.Name)
		require.Regexp(t, `^label_values\(.+, `+v.Name+`\)$`, v.Definition)
		require.Equal(t, v.Definition, v.Query.(map[string]any)["query"], v.Name)
	}
	require.Equal(t, []string{"datasource", "job", "instance", "sd_job", "consul"}, names)

	// Panels: unique ids and titles, laid out without overlap on the
	// 24-column grid, each query on the data source variable.
	var panels []grafanaPanel
	var walk func([]grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			panels = append(panels, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	ids, titles := map[int]bool{}, map[string]bool{}
	type cell struct{ x, y int }
	taken := map[cell]string{}
	var exprs []string
	for _, p := range panels {
		require.False(t, ids[p.ID], "panel id %d twice", p.ID)
		ids[p.ID] = true
		require.NotEmpty(t, p.Title)
		g := p.GridPos
		require.True(t, g.W > 0 && g.H > 0 && g.X >= 0 && g.X+g.W <= 24, "%q at %+v", p.Title, g)
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				require.Empty(t, taken[cell{x, y}], "%q overlaps %q", p.Title, taken[cell{x, y}])
				taken[cell{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			require.Empty(t, p.Targets)
			continue
		}
		require.False(t, titles[p.Title], "panel title %q twice", p.Title)
		titles[p.Title] = true
		require.Contains(t, []string{"timeseries", "stat", "state-timeline"}, p.Type, p.Title)
		require.Equal(t, datasourceVar, *p.Datasource, p.Title)
		require.NotEmpty(t, p.Targets, p.Title)
		var refIDs []string
		for _, tg := range p.Targets {
			require.Equal(t, datasourceVar, *tg.Datasource, p.Title)
			require.NotContains(t, refIDs, tg.RefID, p.Title)
			refIDs = append(refIDs, tg.RefID)
			require.NotEmpty(t, tg.Expr, p.Title)
			exprs = append(exprs, tg.Expr)
			checkPanelQuery(t, p.Title, tg.Expr)
		}
	}

	// The metrics that matter are all shown.
	all := strings.Join(exprs, "\n")
	for _, m := range []string{
		"custom_sd_targets", "custom_sd_target_groups", "custom_sd_ready", "custom_sd_file_bytes",
		"custom_sd_consul_requests_total", "custom_sd_consul_request_duration_seconds_bucket",
		"custom_sd_consul_last_success_timestamp_seconds", "custom_sd_consul_services", "custom_sd_consul_long_polls",
		"custom_sd_consul_sweep_mode", "custom_sd_consul_sweeps_total", "custom_sd_consul_connections",
		"custom_sd_consul_connection_budget", "custom_sd_consul_max_connections",
		"custom_sd_file_writes_total", "custom_sd_file_last_write_success_timestamp_seconds", "custom_sd_last_sync_timestamp_seconds",
		"custom_sd_updates_received_total", "custom_sd_syncs_total", "custom_sd_http_requests_total",
		"custom_sd_removal_guard_holding", "custom_sd_removal_guard_held_targets",
		"custom_sd_config_last_reload_successful", "custom_sd_config_last_reload_success_timestamp_seconds",
		"process_resident_memory_bytes", "process_cpu_seconds_total", "up",
	} {
		require.Regexp(t, `\b`+m+`\{`, all, "no panel shows %s", m)
	}

	// No fixed data source anywhere, in panels, targets or variables.
	b, err := os.ReadFile(dashboardPath)
	require.NoError(t, err)
	for _, m := range regexp.MustCompile(`"uid": "([^"]*)"`).FindAllSubmatch(b, -1) {
		require.Contains(t, []string{"custom-sd", "${datasource}", "-- Grafana --"}, string(m[1]))
	}
	require.True(t, bytes.HasSuffix(b, []byte("}\n")), "ends with a newline")
}

var (
	panelVariable = regexp.MustCompile(`\$\{?(\w+)\}?`)
	// Metrics labelled sd_job (the adapter's) and consul (the watch's).
	sdJobMetric  = regexp.MustCompile(`\bcustom_sd_(ready|targets|target_groups|file_\w+|last_sync\w*|removal_guard\w*|updates_\w+|syncs_total)\{`)
	consulMetric = regexp.MustCompile(`\bcustom_sd_consul_\w+\{`)
)

// checkPanelQuery checks that a query uses only known variables, and
// filters by job and instance, and by sd_job or consul where the metric
// has that label, so that every variable narrows every panel it can.
func checkPanelQuery(t *testing.T, title, expr string) {
	t.Helper()
	for _, m := range panelVariable.FindAllStringSubmatch(expr, -1) {
		require.Contains(t, []string{"job", "instance", "sd_job", "consul", "__rate_interval", "__range"}, m[1], "%s: %s", title, expr)
	}
	selectors := regexp.MustCompile(`\w+\{[^}]*\}`).FindAllString(expr, -1)
	require.NotEmpty(t, selectors, "%s: %s", title, expr)
	for _, s := range selectors {
		require.Contains(t, s, `job=~"$job",instance=~"$instance"`, "%s: %s", title, s)
		if sdJobMetric.MatchString(s) {
			require.Contains(t, s, `sd_job=~"$sd_job"`, "%s: %s", title, s)
		}
		if consulMetric.MatchString(s) {
			require.Contains(t, s, `consul=~"$consul"`, "%s: %s", title, s)
		}
	}
}
