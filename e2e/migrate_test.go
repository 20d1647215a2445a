package e2e

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"

	"github.com/custom-sd/custom-sd/internal/testconsul"
	"github.com/custom-sd/custom-sd/internal/testproc"
	"github.com/custom-sd/custom-sd/internal/testprom"
)

// migrateNode is a node of the test's catalog.
type migrateNode struct {
	address string
	meta    map[string]string
	tagged  map[string]string // nil: lan only; empty: none
	checks  api.HealthChecks  // node checks
}

// migrateNodes are odd nodes: meta keys that need sanitising (Consul takes
// any node meta key from a catalog registration, unlike service meta keys,
// which must be [a-zA-Z0-9_-]), an empty meta value, tagged addresses with
// odd keys, an IPv6 address, none at all, and node checks that make all
// of a node's instances critical or in maintenance. No node is on
// 127.0.0.1, the agent's own, so that no two targets share an address.
var migrateNodes = map[string]migrateNode{
	"node-a": {address: "127.0.0.2",
		meta:   map[string]string{"rack.id": "r1", "größe": "xl", "a.b": "1", "env": "prod"},
		tagged: map[string]string{"lan": "127.0.0.2", "wan": "127.0.0.102", "lan.v4": "127.0.0.2"}},
	"node-b": {address: "127.0.0.3",
		meta:   map[string]string{"rack.id": "r2", "env": "staging", "empty": ""},
		tagged: map[string]string{"lan": "127.0.0.3", "wan": "127.0.0.103", "wän-ö": "127.0.0.103"}},
	"node-v6": {address: "::1", tagged: map[string]string{}},
	"node-maint": {address: "127.0.0.4", meta: map[string]string{"env": "prod"},
		checks: api.HealthChecks{{CheckID: api.NodeMaint, Name: "Node Maintenance Mode", Status: api.HealthCritical}}},
	"node-sick": {address: "127.0.0.5", checks: api.HealthChecks{
		// Not serfHealth: the leader removes a node whose serfHealth
		// check fails and that is no member of its cluster.
		{CheckID: "memory", Name: "memory", Status: api.HealthCritical},
		{CheckID: "disk", Name: "disk", Status: api.HealthWarning},
	}},
	"node-pre": {address: "127.0.0.6", meta: map[string]string{"env": "preprod"}},
}

// migrateInstances are the service instances, each on one of
// migrateNodes. Between them: every aggregated health (passing, warning,
// critical from a service check or from the node, maintenance of the
// service or of the node, passing without checks, and none for a check
// whose status is "maintenance" without a maintenance check ID, which
// Consul takes and api.HealthChecks.AggregatedStatus answers "" for),
// service addresses absent, IPv4 and IPv6, a service without tags, tags
// holding the tag separators, a tag in capitals, service meta with a dash
// and with an empty value, and one service ID on two nodes.
var migrateInstances = []testconsul.Instance{
	{Node: "node-a", Service: "web", ID: "web-1", Port: 8080, Tags: []string{"prod"},
		Meta: map[string]string{"team": "x", "owner-email": "ops@example.com"}, Status: api.HealthPassing},
	{Node: "node-b", Service: "web", ID: "web-2", Address: "127.0.0.10", Port: 8081, Tags: []string{"canary"},
		Meta: map[string]string{"team": "x"}, Status: api.HealthWarning},
	{Node: "node-v6", Service: "web", ID: "web-3", Port: 8082, Tags: []string{"prod", "canary"}, Status: api.HealthCritical},
	{Node: "node-sick", Service: "web", ID: "web-4", Address: "127.0.0.14", Port: 8083, Tags: []string{"prod"}, Status: api.HealthPassing},
	{Node: "node-a", Service: "api", ID: "api-1", Address: "::1", Port: 9090, Tags: []string{"prod"},
		Meta: map[string]string{"team": "y", "empty": ""}},
	{Node: "node-maint", Service: "api", ID: "api-2", Address: "127.0.0.11", Port: 9091, Tags: []string{"prod"},
		Meta: map[string]string{"team": "y"}, Status: api.HealthPassing},
	{Node: "node-b", Service: "api", ID: "api-3", Address: "127.0.0.12", Port: 9092, Tags: []string{"prod", "canary"},
		Status: api.HealthPassing, Checks: api.HealthChecks{{CheckID: api.ServiceMaintPrefix + "api-3",
			Name: "Service Maintenance Mode", Status: api.HealthCritical, ServiceID: "api-3", Notes: "deploying"}}},
	{Node: "node-b", Service: "api", ID: "api-4", Address: "127.0.0.15", Port: 9093, Tags: []string{"PROD"}},
	{Node: "node-sick", Service: "db", ID: "db-1", Port: 5432},
	{Node: "node-a", Service: "db", ID: "db-2", Address: "127.0.0.13", Port: 5433, Status: "maintenance"},
	{Node: "node-b", Service: "cache", ID: "cache-1", Port: 6379, Tags: []string{"prod", "a,b", "a;b", "a|b"}},
	{Node: "node-a", Service: "exporter", ID: "metrics", Port: 9100, Status: api.HealthPassing},
	{Node: "node-b", Service: "exporter", ID: "metrics", Port: 9100, Status: api.HealthPassing},
}

// Instances by node/service ID, as the test names targets; consul is the
// agent's own service.
const (
	w1, w2, w3, w4, w5, w6 = "node-a/web-1", "node-b/web-2", "node-v6/web-3", "node-sick/web-4", "node-a/web-5", "node-pre/web-6"
	a1, a2, a3, a4         = "node-a/api-1", "node-maint/api-2", "node-b/api-3", "node-b/api-4"
	d1, d2, c1, ma, mb     = "node-sick/db-1", "node-a/db-2", "node-b/cache-1", "node-a/metrics", "node-b/metrics"
	consulSelf             = "consul"
)

// Every target before and after the changes of the second step.
var (
	allBefore = []string{consulSelf, w1, w2, w3, w4, a1, a2, a3, a4, d1, d2, c1, ma, mb}
	allAfter  = []string{consulSelf, w1, w3, w4, w5, w6, a1, a2, a3, a4, d1, d2, c1, ma, mb}
)

// Each target's __meta_consul_health, before and after the changes; ""
// is no label at all.
var (
	healthBefore = map[string]string{
		consulSelf: "passing", w1: "passing", w2: "warning", w3: "critical", w4: "critical",
		a1: "passing", a2: "maintenance", a3: "maintenance", a4: "passing",
		d1: "critical", d2: "", c1: "passing", ma: "passing", mb: "passing",
	}
	healthAfter = with(healthBefore, map[string]string{w5: "passing", w6: "passing", a1: "critical", a2: "passing"})
)

// migrateJobs is the Prometheus configuration's scrape jobs, each with the
// targets consul_sd shows before and after the changes. The test first
// waits until consul_sd shows exactly these, with the health above, so that
// the comparison is between complete sets.
var migrateJobs = []struct {
	name          string
	sd            string // consul_sd_configs entries, each "{...}" in flow style, %[1]s for the agent
	before, after []string
	// frozen: consul_sd's health reads of this job fail after the first
	// (see node-meta-dotted below), so it keeps showing the first.
	frozen bool
}{
	{name: "services", sd: `{server: "%[1]s", services: [web, api, ghost]}`,
		before: []string{w1, w2, w3, w4, a1, a2, a3, a4}, after: []string{w1, w3, w4, w5, w6, a1, a2, a3, a4}},
	// a4 is tagged PROD: see knownBefore.
	{name: "tags", sd: `{server: "%[1]s", tags: [prod]}`,
		before: []string{w1, w3, w4, a1, a2, a3, a4, c1}, after: []string{w1, w3, w4, w5, a1, a2, a3, a4}},
	{name: "tags-services", sd: `{server: "%[1]s", services: [web], tags: [canary], allow_stale: false}`,
		before: []string{w2, w3}, after: []string{w3}},
	// w6's node has env preprod: see knownAfter.
	{name: "node-meta", sd: `{server: "%[1]s", node_meta: {env: prod}}`,
		before: []string{w1, a1, a2, d2, ma}, after: []string{w1, w5, w6, a1, a2, d2, ma}},
	{name: "node-meta-dotted", sd: `{server: "%[1]s", node_meta: {"rack.id": r1}}`,
		before: []string{w1, a1, d2, ma}, after: []string{w1, a1, d2, ma}, frozen: true},
	// A filter gives the default scope a second service list. When web's
	// first read, wanted through this list, lands before the unfiltered
	// list, the jobs that want web through that list never see it (a
	// reconcile marks it unseen but reads nothing): custom-sd's bug, which
	// this test hits about once in eight runs, and not papered over here.
	{name: "filter", sd: `{server: "%[1]s", filter: 'ServiceMeta.team == "x"'}`,
		before: []string{w1, w2, w3, w4}, after: []string{w1, w3, w4, w5, w6}},
	// custom-sd evaluates these three itself, after a shared read.
	{name: "health-filter", sd: `{server: "%[1]s", health_filter: 'Service.Port != 8081'}`,
		before: without(allBefore, w2), after: allAfter},
	{name: "checks-filter", sd: `{server: "%[1]s", health_filter: 'Checks.Status contains "critical"'}`,
		before: []string{w3, w4, a2, a3, d1}, after: []string{w3, w4, a1, a3, d1}},
	{name: "meta-filter", sd: `{server: "%[1]s", services: [web, api, db], health_filter: 'Node.Meta["rack.id"] == "r1" or Service.Meta["owner-email"] == "ops@example.com"'}`,
		before: []string{w1, a1, d2}, after: []string{w1, w5, a1, d2}},
	// Service.Connect is a field custom-sd does not mirror: the agent
	// evaluates this one.
	{name: "agent-filter", sd: `{server: "%[1]s", health_filter: 'Service.Connect.Native == false and Service.Port != 9091'}`,
		before: without(allBefore, a2), after: without(allAfter, a2)},
	{name: "separator", sd: `{server: "%[1]s", services: [web, cache], tag_separator: ";", datacenter: dc1}`,
		before: []string{w1, w2, w3, w4, c1}, after: []string{w1, w3, w4, w5, w6, c1}},
	{name: "two", sd: `{server: "%[1]s", services: [db]}, {server: "%[1]s", services: [exporter], tag_separator: "|"}`,
		before: []string{d1, d2, ma, mb}, after: []string{d1, d2, ma, mb}},
	{name: "all", sd: `{server: "%[1]s"}`, before: allBefore, after: allAfter},
}

// Known differences between consul_sd and custom-sd, as diffViews words
// them ({custom-sd} is the custom-sd variant). Each is asserted: the test fails
// if one goes away, as it fails on any other difference.
//
// Tags match as Consul's ?tag= matches them, whatever the case (consul_sd
// watches the service api because api-1 carries prod, and Consul then hands
// it api-4, tagged PROD, too; custom-sd applies the tags itself, the same
// way): no difference there.
var (
	knownBefore = []string{}
	knownAfter  = append(slices.Clone(knownBefore),
		// Consul 1.20 answers a blocking health read (index > 0) from its
		// streaming backend, which turns node_meta into the filter
		// `"<value>" in Node.Meta.<key>` (agent/rpcclient/health/view.go):
		//   - "in" is a substring match there, so consul_sd's node_meta
		//     {env: prod} takes web-6, whose node has env preprod (the
		//     first read, index 0, matches exactly; web-6 arrives with the
		//     changes, so that only a streaming read can bring it);
		"job node-meta, target node-pre/web-6: only consul_sd has it",
		//   - a key that is not a bexpr identifier (rack.id) makes every
		//     read after the first fail (`Selector "Node.Meta.rack.id" is
		//     not valid`), so consul_sd keeps its first answer for good.
		// custom-sd applies node_meta itself, exactly, and follows.
		"job node-meta-dotted, target node-a/api-1, label __meta_consul_health: consul_sd \"passing\", {custom-sd} \"critical\"",
		"job node-meta-dotted, target node-a/web-5: only {custom-sd} has it",
	)
)

// with returns a copy of m with the entries of n.
func with(m, n map[string]string) map[string]string {
	out := maps.Clone(m)
	maps.Copy(out, n)
	return out
}

// without returns s without the items in drop.
func without(s []string, drop ...string) []string {
	return slices.DeleteFunc(slices.Clone(s), func(x string) bool { return slices.Contains(drop, x) })
}

// migrateConfig is the consul_sd Prometheus configuration. refresh_interval
// 1s makes consul_sd read again a second after an answer rather than 30s
// later, and migrate --http-sd carries it over to http_sd_configs, where it
// is how often Prometheus asks custom-sd.
func migrateConfig(consul string) string {
	var b strings.Builder
	b.WriteString("global:\n  scrape_interval: 1h\nscrape_configs:\n")
	for _, j := range migrateJobs {
		entries := strings.ReplaceAll(j.sd, "}, {", ", refresh_interval: 1s}, {")
		entries = strings.TrimSuffix(entries, "}") + ", refresh_interval: 1s}"
		fmt.Fprintf(&b, "  - job_name: %s\n    consul_sd_configs: [%s]\n", j.name, fmt.Sprintf(entries, consul))
	}
	return b.String()
}

// TestMigratedConfigShowsTheSameTargets: a Prometheus server with
// consul_sd_configs, one with the configuration `custom-sd migrate` wrote
// from it (file_sd on custom-sd's files), and one with the --http-sd
// variant (http_sd on custom-sd's /targets/<job>) discover the same
// targets with the same labels, job by job, on a catalog full of odd data,
// and again after it changes, but for the known differences above.
func TestMigratedConfigShowsTheSameTargets(t *testing.T) {
	srv := testconsul.Start(t)
	register := func(in testconsul.Instance) {
		n := migrateNodes[in.Node]
		in.NodeAddress, in.NodeMeta, in.NodeTaggedAddresses = n.address, n.meta, n.tagged
		in.Checks = slices.Concat(in.Checks, n.checks)
		srv.Register(t, in)
	}
	for _, in := range migrateInstances {
		register(in)
	}

	dir := t.TempDir()
	promConfig := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(promConfig, []byte(migrateConfig(srv.HTTPAddr)), 0o644))
	out, err := testprom.Promtool(t, "check", "config", promConfig)
	require.NoError(t, err, out)

	fileDir := filepath.Join(dir, "file")
	runMigrate(t, promConfig, "--out", fileDir)
	sdAddr := startCustomSDIn(t, t.TempDir(), "--config.file="+filepath.Join(fileDir, "custom-sd.yml"), "--log.level=debug")
	// The same jobs and names again, read over HTTP SD; this run's
	// custom-sd.yml is not used.
	httpDir := filepath.Join(dir, "http")
	runMigrate(t, promConfig, "--out", httpDir, "--http-sd", "http://"+sdAddr)

	c := &migrateComparison{
		consulSD: testprom.Start(t, promConfig),
		fileSD:   testprom.Start(t, filepath.Join(fileDir, "prometheus.yml")),
		httpSD:   testprom.Start(t, filepath.Join(httpDir, "prometheus.yml")),
		self:     srv.Config.NodeName + "/consul",
	}
	c.wait(t, "before the changes", false, knownBefore)

	// web-2 leaves, web-5 arrives, and web-6 on a node with env preprod,
	// api-1 turns critical, node-maint leaves maintenance, cache-1 loses
	// its prod tag.
	srv.Deregister(t, "node-b", "web-2")
	register(testconsul.Instance{Node: "node-a", Service: "web", ID: "web-5", Port: 8084, Tags: []string{"prod"},
		Meta: map[string]string{"team": "x"}, Status: api.HealthPassing})
	register(testconsul.Instance{Node: "node-pre", Service: "web", ID: "web-6", Port: 8086})
	api1 := instance(t, "node-a", "api-1")
	api1.Checks = api.HealthChecks{{CheckID: "disk:api-1", Name: "disk", Status: api.HealthCritical, ServiceID: "api-1"}}
	register(api1)
	_, err = srv.Client.Catalog().Deregister(&api.CatalogDeregistration{Node: "node-maint", CheckID: api.NodeMaint}, nil)
	require.NoError(t, err)
	cache1 := instance(t, "node-b", "cache-1")
	cache1.Tags = []string{"staging", "a,b"}
	register(cache1)
	c.wait(t, "after the changes", true, knownAfter)
}

// instance returns the instance of migrateInstances on node with the ID.
func instance(t *testing.T, node, id string) testconsul.Instance {
	t.Helper()
	i := slices.IndexFunc(migrateInstances, func(in testconsul.Instance) bool { return in.Node == node && in.ID == id })
	require.GreaterOrEqual(t, i, 0, "%s/%s", node, id)
	return migrateInstances[i]
}

// migrateComparison holds the three Prometheus servers.
type migrateComparison struct {
	consulSD, fileSD, httpSD *testprom.Server
	self                     string // the agent's own consul service, node/ID
}

// wait waits until consul_sd shows what the jobs select (before or after
// the changes), and both custom-sd variants show what consul_sd shows but
// for the known differences, all in one read of the three servers.
//
// Labels that differ by design are left out:
//   - __meta_filepath: file_sd's, the file a target was read from;
//   - __meta_url: http_sd's, the URL it was read from.
//
// The labels Prometheus adds from the scrape config (job, __scheme__,
// __metrics_path__, __scrape_interval__, __scrape_timeout__) are compared
// too: migrate leaves that part of each job as it was.
func (c *migrateComparison) wait(t *testing.T, when string, after bool, known []string) {
	t.Helper()
	variants := []struct {
		name string
		prom *testprom.Server
		drop string
	}{
		{"custom-sd file_sd", c.fileSD, "__meta_filepath"},
		{"custom-sd http_sd", c.httpSD, "__meta_url"},
	}
	waitForNoDiff(t, when, func() string {
		reference := discoveredLabels(t, c.consulSD)
		report := c.expected(reference, after)
		if report != "" {
			return "consul_sd does not show what the jobs select yet:\n" + report
		}
		for _, v := range variants {
			var want []string
			for _, k := range known {
				want = append(want, strings.ReplaceAll(k, "{custom-sd}", v.name))
			}
			got := diffViews(reference, discoveredLabels(t, v.prom, v.drop), v.name)
			if unexpected := without(got, want...); len(unexpected) > 0 {
				report += fmt.Sprintf("%s differs from consul_sd:\n  %s\n", v.name, strings.Join(unexpected, "\n  "))
			}
			if gone := without(want, got...); len(gone) > 0 {
				report += fmt.Sprintf("%s: known differences gone (remove them from the test):\n  %s\n", v.name, strings.Join(gone, "\n  "))
			}
		}
		return report
	})
}

// expected reports how consul_sd's view differs from the jobs' targets
// and their health; "" when it does not.
func (c *migrateComparison) expected(v targetView, after bool) string {
	var report []string
	for _, j := range migrateJobs {
		keys, health := j.before, healthBefore
		if after {
			keys = j.after
			if !j.frozen {
				health = healthAfter
			}
		}
		want := map[string]string{}
		for _, k := range keys {
			h := health[k]
			if k == consulSelf {
				k = c.self
			}
			want[k] = h
		}
		got := map[string]string{}
		for k, ls := range v[j.name] {
			got[k] = ls["__meta_consul_health"]
		}
		if !maps.Equal(want, got) {
			report = append(report, fmt.Sprintf("job %s: want (target: health) %v\n  got %v", j.name, want, got))
		}
	}
	return strings.Join(report, "\n")
}

// runMigrate runs `custom-sd migrate` with args.
func runMigrate(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(binPath, append([]string{"migrate"}, args...)...).CombinedOutput()
	require.NoError(t, err, "custom-sd migrate:\n%s", out)
	t.Logf("custom-sd migrate %s:\n%s", strings.Join(args, " "), out)
}

// startCustomSDIn starts custom-sd in the working directory wd, with its
// HTTP side on a loopback port of its choosing, and returns that address.
func startCustomSDIn(t *testing.T, wd string, args ...string) string {
	t.Helper()
	cmd := exec.Command(binPath, append(args, "--web.listen-address=127.0.0.1:0")...)
	cmd.Dir = wd
	out, exited := testproc.Start(t, "custom-sd", cmd)
	return testproc.ListenAddress(t, out, exited)
}

// targetView is what a Prometheus server discovered: by scrape job, by
// node/service ID, the discovered labels.
type targetView map[string]map[string]map[string]string

// discoveredLabels returns the active targets' discovered labels, without
// the labels named in drop. A second target with the same key is kept
// under the key with " (again)" appended.
func discoveredLabels(t *testing.T, prom *testprom.Server, drop ...string) targetView {
	t.Helper()
	active, _ := prom.Targets(t)
	v := targetView{}
	for _, tg := range active {
		ls := maps.Clone(tg.DiscoveredLabels)
		for _, d := range drop {
			delete(ls, d)
		}
		key := ls["__meta_consul_node"] + "/" + ls["__meta_consul_service_id"]
		if v[tg.ScrapePool] == nil {
			v[tg.ScrapePool] = map[string]map[string]string{}
		}
		for v[tg.ScrapePool][key] != nil {
			key += " (again)"
		}
		v[tg.ScrapePool][key] = ls
	}
	return v
}

// diffViews describes how got differs from want, the consul_sd view,
// target by target and label by label, one line each.
func diffViews(want, got targetView, name string) []string {
	var diff []string
	for _, job := range unionKeys(want, got) {
		for _, k := range unionKeys(want[job], got[job]) {
			w, g := want[job][k], got[job][k]
			switch {
			case g == nil:
				diff = append(diff, fmt.Sprintf("job %s, target %s: only consul_sd has it", job, k))
				continue
			case w == nil:
				diff = append(diff, fmt.Sprintf("job %s, target %s: only %s has it", job, k, name))
				continue
			}
			for _, l := range unionKeys(w, g) {
				wv, wok := w[l]
				gv, gok := g[l]
				if wv != gv || wok != gok {
					diff = append(diff, fmt.Sprintf("job %s, target %s, label %s: consul_sd %s, %s %s", job, k, l, quoted(wv, wok), name, quoted(gv, gok)))
				}
			}
		}
	}
	return diff
}

// unionKeys returns the keys of a and b, sorted.
func unionKeys[V any](a, b map[string]V) []string {
	keys := slices.Collect(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

func quoted(v string, ok bool) string {
	if !ok {
		return "(absent)"
	}
	return fmt.Sprintf("%q", v)
}

// waitForNoDiff waits until diff returns "", and fails with its last
// answer if it does not within a minute (Prometheus updates its targets
// every 5 seconds; the minute is room on a busy machine, not a deadline
// under test).
func waitForNoDiff(t *testing.T, what string, diff func() string) {
	t.Helper()
	var last string
	deadline := time.Now().Add(time.Minute)
	for {
		if last = diff(); last == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still differs after a minute:\n%s", what, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
