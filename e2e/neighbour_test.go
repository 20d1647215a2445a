package e2e

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/custom-sd/custom-sd/internal/testconsul"
)

// Four custom-sd processes with default flags on one agent with default
// limits, each with more services than its long-poll budget: together they
// would take more connections than the agent grants one host (200). Those
// the agent refuses give connections back; all four write complete files,
// and afterwards another client on the host is served. Which process the
// agent refuses is chance: if it refuses one that holds few connections,
// the others may keep nearly all the host's share between them, and
// another client is refused until their probes hear the agent refuse
// (once a minute, see sd/consul/probe.go).
func TestFourProcessesShareTheAgent(t *testing.T) {
	srv := testconsul.Start(t)
	const services = 100
	for i := range services {
		srv.Register(t, testconsul.Instance{Service: fmt.Sprintf("svc-%03d", i), ID: fmt.Sprintf("svc-%03d", i), Port: 20000 + i})
	}
	dir := t.TempDir()
	var outs, webs []string
	for i := range 4 {
		out := filepath.Join(dir, fmt.Sprintf("p%d.json", i))
		outs = append(outs, out)
		webs = append(webs, startCustomSD(t, "--consul.server="+srv.HTTPAddr, "--output.file="+out))
	}
	for _, out := range outs {
		testconsul.Eventually(t, func() bool { return len(fileIDs(out)) == services+1 }, "%s is complete", out)
	}

	// The processes hold fewer connections than the agent grants a host,
	// and some gave connections back. Refusals come as the long polls
	// open, which goes on after the files are complete: wait for the
	// state, not for a moment.
	var open, budgets float64
	testconsul.Eventually(t, func() bool {
		open, budgets = 0, 0
		for _, web := range webs {
			m := scrapeMetrics(t, "http://"+web+"/metrics")
			open += m["custom_sd_consul_connections"]
			budgets += m["custom_sd_consul_connection_budget"]
		}
		return open < 200 && budgets < 4*64
	}, "fewer than 200 connections open, and a budget below 64 somewhere")
	t.Logf("%v connections open, budgets %v in all", open, budgets)

	// Then another client of the agent, on a connection of its own, is
	// served: once the processes have given connections back (while they
	// still open long polls, the agent may refuse it for a moment), at the
	// latest after the next probes.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	status := 0
	require.Eventually(t, func() bool {
		resp, err := client.Get("http://" + srv.HTTPAddr + "/v1/status/leader")
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		status = resp.StatusCode
		return status == http.StatusOK
	}, 3*time.Minute, 10*time.Millisecond, "the agent serves its other clients")
	require.Equal(t, http.StatusOK, status)
}

// scrapeMetrics returns the value of every sample without labels beyond
// the consul one, by metric name.
func scrapeMetrics(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	out := map[string]float64{}
	for name, mf := range families {
		for _, m := range mf.GetMetric() {
			if g := m.GetGauge(); g != nil {
				out[name] += g.GetValue()
			}
		}
	}
	return out
}
