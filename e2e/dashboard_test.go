package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/custom-sd/custom-sd/internal/testconsul"
	"github.com/custom-sd/custom-sd/internal/testprom"
)

// The dashboard of deploy/grafana and the alerts of deploy/alerts.yml,
// run against a real Prometheus scraping a real custom-sd with two jobs
// on a real Consul.

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	Title   string `json:"title"`
	Type    string `json:"type"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

// query is one panel target's query.
type query struct{ panel, refID, expr string }

func (q query) String() string { return fmt.Sprintf("%q %s", q.panel, q.refID) }

func dashboardQueries(t *testing.T, d dashboard) []query {
	t.Helper()
	var out []query
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			walk(p.Panels)
			for _, tg := range p.Targets {
				out = append(out, query{p.Title, tg.RefID, tg.Expr})
			}
		}
	}
	walk(d.Panels)
	require.NotEmpty(t, out)
	return out
}

// grafanaVariable matches $name and ${name}.
var grafanaVariable = regexp.MustCompile(`\$\{?(\w+)\}?`)

// substitute replaces the dashboard's variables as Grafana would, with
// vars for the template variables, and windows that hold enough samples of
// a 1s scrape within a short test for the built-in ones. A variable it
// does not know fails the test.
func substitute(t *testing.T, expr string, vars map[string]string) string {
	t.Helper()
	builtin := map[string]string{"__rate_interval": "1m", "__interval": "1s", "__range": "1m"}
	return grafanaVariable.ReplaceAllStringFunc(expr, func(m string) string {
		name := grafanaVariable.FindStringSubmatch(m)[1]
		if v, ok := builtin[name]; ok {
			return v
		}
		v, ok := vars[name]
		require.True(t, ok, "unknown variable %s in %s", m, expr)
		return v
	})
}

// sample is one element of an instant query's vector.
type sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (s sample) value(t *testing.T) float64 {
	t.Helper()
	str, ok := s.Value[1].(string)
	require.True(t, ok, "sample value %v", s.Value)
	v, err := strconv.ParseFloat(str, 64)
	require.NoError(t, err)
	return v
}

// promClient talks to the test's Prometheus without keeping connections,
// so none outlives the test.
var promClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}

// apiGet reads a Prometheus API answer's data into v, or returns its error.
func apiGet(t *testing.T, prom *testprom.Server, path string, params url.Values, v any) error {
	t.Helper()
	resp, err := promClient.Get(prom.URL + path + "?" + params.Encode())
	require.NoError(t, err)
	defer resp.Body.Close()
	var body struct {
		Status    string          `json:"status"`
		Error     string          `json:"error"`
		ErrorType string          `json:"errorType"`
		Data      json.RawMessage `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	if body.Status != "success" {
		return fmt.Errorf("%s: %s", body.ErrorType, body.Error)
	}
	return json.Unmarshal(body.Data, v)
}

// instantQuery runs expr now and returns the vector, or the query's error.
func instantQuery(t *testing.T, prom *testprom.Server, expr string) ([]sample, error) {
	t.Helper()
	var data struct {
		ResultType string   `json:"resultType"`
		Result     []sample `json:"result"`
	}
	if err := apiGet(t, prom, "/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return nil, err
	}
	if data.ResultType != "vector" {
		return nil, fmt.Errorf("result type %s, not vector", data.ResultType)
	}
	return data.Result, nil
}

// hasData says whether a panel query has something to draw: a sample
// that is a number.
func hasData(t *testing.T, samples []sample) bool {
	for _, s := range samples {
		if !math.IsNaN(s.value(t)) {
			return true
		}
	}
	return false
}

// noDataExpected lists the panel queries that may legitimately be empty in
// this test, by panel title and refId, with the reason. custom-sd exports
// every series of its own metrics from the start (counters and gauges at
// 0), so none is: the guard and the failed writes show zeros while
// healthy, and the guard is triggered below.
var noDataExpected = map[string]string{}

// alertRule is one rule of deploy/alerts.yml.
type alertRule struct {
	Alert string `yaml:"alert"`
	Expr  string `yaml:"expr"`
}

func alertRules(t *testing.T) []alertRule {
	t.Helper()
	b, err := os.ReadFile("../deploy/alerts.yml")
	require.NoError(t, err)
	var f struct {
		Groups []struct {
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	require.NoError(t, yaml.Unmarshal(b, &f))
	var out []alertRule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	require.NotEmpty(t, out)
	return out
}

// activeAlerts returns the pending and firing alerts of Prometheus as
// "name{label=value,...}", with the labels that tell them apart, and their
// summaries by the same key. Pending and firing are one state here: the
// expression holds. Which of the two an alert is in depends on how long
// it has held, which a loaded machine decides.
func activeAlerts(t *testing.T, prom *testprom.Server) ([]string, map[string]string) {
	t.Helper()
	var data struct {
		Alerts []struct {
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
			State       string            `json:"state"`
		} `json:"alerts"`
	}
	require.NoError(t, apiGet(t, prom, "/api/v1/alerts", nil, &data))
	var out []string
	summaries := map[string]string{}
	for _, a := range data.Alerts {
		var ls []string
		for _, k := range []string{"sd_job", "consul"} {
			if v, ok := a.Labels[k]; ok {
				ls = append(ls, k+"="+v)
			}
		}
		require.Contains(t, []string{"pending", "firing"}, a.State, "alert %s", a.Labels["alertname"])
		key := fmt.Sprintf("%s{%s}", a.Labels["alertname"], strings.Join(ls, ","))
		out = append(out, key)
		summaries[key] = a.Annotations["summary"]
	}
	slices.Sort(out)
	return out, summaries
}

// rulesNotEvaluated returns the rules Prometheus has not evaluated yet,
// and fails the test on a rule that errs.
func rulesNotEvaluated(t *testing.T, prom *testprom.Server) []string {
	t.Helper()
	var data struct {
		Groups []struct {
			Rules []struct {
				Name           string    `json:"name"`
				Health         string    `json:"health"`
				LastError      string    `json:"lastError"`
				LastEvaluation time.Time `json:"lastEvaluation"`
			} `json:"rules"`
		} `json:"groups"`
	}
	require.NoError(t, apiGet(t, prom, "/api/v1/rules", nil, &data))
	var out []string
	for _, g := range data.Groups {
		for _, r := range g.Rules {
			require.NotEqual(t, "err", r.Health, "rule %s: %s", r.Name, r.LastError)
			if r.Health != "ok" || r.LastEvaluation.IsZero() {
				out = append(out, r.Name+" not evaluated yet")
			}
		}
	}
	require.NotEmpty(t, data.Groups, "Prometheus loaded the rules")
	return out
}

// poll calls check every half second until it reports no problem, and
// fails the test with the last problems after two minutes: a bound on a
// hang, not on how long Prometheus may take under load. Unlike
// require.Eventually, check runs on the test's goroutine, so it may fail
// the test itself.
func poll(t *testing.T, what string, check func() []string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		problems := check()
		if len(problems) == 0 {
			return
		}
		if time.Now().After(deadline) {
			require.Failf(t, what, "%s", strings.Join(problems, "\n"))
		}
		<-tick.C
	}
}

func httpGet(t *testing.T, u string) int {
	t.Helper()
	resp, err := promClient.Get(u)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

func TestDashboardAndAlertsAgainstPrometheus(t *testing.T) {
	b, err := os.ReadFile("../deploy/grafana/custom-sd.json")
	require.NoError(t, err)
	var d dashboard
	require.NoError(t, json.Unmarshal(b, &d))
	queries := dashboardQueries(t, d)
	rules := alertRules(t)

	// Consul with five services; custom-sd with two jobs: "all" without
	// the guard, "web" with a guard that holds for the whole test.
	srv := testconsul.Start(t)
	srv.Register(t, testconsul.Instance{Service: "web", ID: "web-1", Port: 8081})
	for i := 2; i <= 4; i++ { // on a node of their own, to leave in one step
		srv.Register(t, testconsul.Instance{Node: "node-2", Service: "web", ID: fmt.Sprintf("web-%d", i), Port: 8080 + i})
	}
	srv.Register(t, testconsul.Instance{Service: "api", ID: "api-1", Port: 9000})
	dir := t.TempDir()
	config := filepath.Join(dir, "custom-sd.yml")
	writeConfig := func(s string) { require.NoError(t, os.WriteFile(config, []byte(s), 0o644)) }
	writeConfig(fmt.Sprintf(`consul:
  server: %s
jobs:
  - name: all
    output: {max_removal: 1}
  - name: web
    services: [web]
    output: {removal_hold: 1h}
`, srv.HTTPAddr))
	sdAddr := startCustomSD(t, "--config.file="+config, "--web.enable-lifecycle")
	sdURL := "http://" + sdAddr
	testconsul.Eventually(t, func() bool { return httpGet(t, sdURL+"/-/ready") == http.StatusOK }, "custom-sd is ready")

	// Prometheus scrapes custom-sd every second and evaluates the alerts
	// every second.
	alerts, err := filepath.Abs("../deploy/alerts.yml")
	require.NoError(t, err)
	promConfig := filepath.Join(dir, "prometheus.yml")
	out, err := yaml.Marshal(map[string]any{
		"global":     map[string]any{"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
		"rule_files": []string{alerts},
		"scrape_configs": []any{map[string]any{
			"job_name":       "custom-sd",
			"static_configs": []any{map[string]any{"targets": []string{sdAddr}}},
		}},
	})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(promConfig, out, 0o644))
	prom := testprom.Start(t, promConfig)

	// Some activity once Prometheus has scraped the state before it, so
	// that rates see it: a service joins, HTTP SD is read.
	targetsOfAll := func(n float64) func() []string {
		return func() []string {
			samples, err := instantQuery(t, prom, `custom_sd_targets{sd_job="all"}`)
			require.NoError(t, err)
			if len(samples) != 1 || samples[0].value(t) != n {
				return []string{fmt.Sprintf("custom_sd_targets{sd_job=\"all\"}: %v, want %g", samples, n)}
			}
			return nil
		}
	}
	poll(t, "Prometheus scrapes custom-sd", targetsOfAll(6)) // 4 web, 1 api, consul
	srv.Register(t, testconsul.Instance{Service: "api", ID: "api-2", Port: 9001})
	poll(t, "Prometheus sees the new target in custom-sd's metrics", targetsOfAll(7))
	require.Equal(t, http.StatusOK, httpGet(t, sdURL+"/targets/web"))

	// Every variable's values are the ones of this setup.
	vars := map[string]string{"datasource": "unused", "job": ".*", "instance": ".*", "sd_job": ".*", "consul": ".*"}
	wantValues := map[string][]string{"job": {"custom-sd"}, "instance": {sdAddr}, "sd_job": {"all", "web"}, "consul": {"default"}}
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)
	require.Len(t, d.Templating.List, 5)
	for _, v := range d.Templating.List {
		if v.Type == "datasource" {
			continue
		}
		m := labelValues.FindStringSubmatch(v.Definition)
		require.NotNil(t, m, "variable %s: %s", v.Name, v.Definition)
		var series []map[string]string
		require.NoError(t, apiGet(t, prom, "/api/v1/series", url.Values{"match[]": {substitute(t, m[1], vars)}}, &series), v.Name)
		var got []string
		for _, s := range series {
			if !slices.Contains(got, s[m[2]]) {
				got = append(got, s[m[2]])
			}
		}
		slices.Sort(got)
		require.Equal(t, wantValues[v.Name], got, "variable %s", v.Name)
	}

	// Every panel query runs without error and has data: with every
	// variable at All, and with each at a real value (which catches a
	// misspelt label, that .* would match as absent).
	chosen := map[string]string{"datasource": "unused", "job": "custom-sd", "instance": sdAddr, "sd_job": "web", "consul": "default"}
	checkPanels := func(vars map[string]string) {
		t.Helper()
		poll(t, "panel queries without data", func() (missing []string) {
			for _, q := range queries {
				expr := substitute(t, q.expr, vars)
				samples, err := instantQuery(t, prom, expr)
				require.NoError(t, err, "%s: %s", q, expr)
				if _, ok := noDataExpected[q.panel+" "+q.refID]; !ok && !hasData(t, samples) {
					missing = append(missing, fmt.Sprintf("%s: %s", q, expr))
				}
			}
			return missing
		})
	}
	checkPanels(vars)
	checkPanels(chosen)

	// The alert expressions run without error and find nothing; Prometheus
	// evaluates every rule without error and no alert is pending or firing.
	for _, r := range rules {
		samples, err := instantQuery(t, prom, r.Expr)
		require.NoError(t, err, r.Alert)
		require.Empty(t, samples, "%s in a healthy setup", r.Alert)
	}
	poll(t, "every rule evaluated", func() []string { return rulesNotEvaluated(t, prom) })
	active, _ := activeAlerts(t, prom)
	require.Empty(t, active, "no alert in a healthy setup")

	// Trouble: three of the four web instances leave with their node, which
	// the guard of job web holds back (3 of 4 targets is more than half);
	// and a reload with a broken file fails.
	_, err = srv.Client.Catalog().Deregister(&api.CatalogDeregistration{Node: "node-2"}, nil)
	require.NoError(t, err)
	writeConfig("jobs: [{name: web, health: critical}]\n")
	resp, err := promClient.Post(sdURL+"/-/reload", "", nil)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusInternalServerError, resp.StatusCode)

	want := []string{"CustomSDConfigReloadFailed{}", "CustomSDRemovalGuardHolding{sd_job=web}"}
	var summaries map[string]string
	poll(t, "the guard and the failed reload make their alerts pending (or firing)", func() []string {
		if active, summaries = activeAlerts(t, prom); !slices.Equal(want, active) {
			return []string{fmt.Sprintf("active alerts %q, want %q", active, want)}
		}
		return nil
	})
	require.Equal(t, "custom-sd holds back the removal of 3 targets of job web", summaries[want[1]])

	// The panels show it.
	for _, q := range queries {
		var value float64
		switch {
		case strings.HasPrefix(q.panel, "Removal guard"):
			value = 1 // holding
		case strings.HasPrefix(q.panel, "Targets the held"):
			value = 3
		case strings.HasPrefix(q.panel, "Configuration reload"):
			value = 0 // failed
		default:
			continue
		}
		samples, err := instantQuery(t, prom, substitute(t, q.expr, chosen))
		require.NoError(t, err)
		require.Len(t, samples, 1, q)
		require.Equal(t, value, samples[0].value(t), q)
	}
	checkPanels(vars)
}
