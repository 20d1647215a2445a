package consul

import (
	"regexp"
	"slices"
	"sort"
	"testing"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"

	"github.com/custom-sd/custom-sd/internal/testconsul"
)

func TestParseHealth(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want Health
		ok   bool
	}{
		{"any", HealthAny, true},
		{"warning", HealthWarning, true},
		{"passing", HealthPassing, true},
		{"critical", 0, false},
		{"", 0, false},
	} {
		got, err := ParseHealth(tc.in)
		if !tc.ok {
			require.Error(t, err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got)
		require.Equal(t, tc.in, got.String())
	}
}

func TestHealthAdmits(t *testing.T) {
	t.Parallel()
	statuses := []string{api.HealthPassing, api.HealthWarning, api.HealthCritical, api.HealthMaint}
	want := map[Health][]bool{
		HealthAny:     {true, true, true, true},
		HealthWarning: {true, true, false, false},
		HealthPassing: {true, false, false, false},
	}
	for h, admits := range want {
		for i, st := range statuses {
			require.Equal(t, admits[i], h.admits(st), "%s admits %s", h, st)
		}
	}
}

// TestRealConsulSelection registers a small estate and checks which
// instances each selection keeps, in every watching mode.
func TestRealConsulSelection(t *testing.T) {
	t.Parallel()
	srv := testconsul.Start(t)
	rackA := map[string]string{"rack": "a"}
	rackB := map[string]string{"rack": "b"}
	for _, in := range []testconsul.Instance{
		{Node: "node-a", NodeMeta: rackA, Service: "web", ID: "web-1", Port: 8080, Tags: []string{"prod", "v1"}, Meta: map[string]string{"team": "shop"}, Status: api.HealthPassing},
		{Node: "node-b", NodeMeta: rackB, Service: "web", ID: "web-2", Port: 8081, Tags: []string{"prod", "v2"}, Meta: map[string]string{"team": "shop"}, Status: api.HealthWarning},
		{Node: "node-b", NodeMeta: rackB, Service: "web", ID: "web-3", Port: 8082, Tags: []string{"canary"}, Meta: map[string]string{"team": "shop"}, Status: api.HealthCritical},
		{Node: "node-a", NodeMeta: rackA, Service: "db", ID: "db-1", Port: 5432, Tags: []string{"prod"}, Meta: map[string]string{"team": "data"}},
		{Node: "node-b", NodeMeta: rackB, Service: "db-replica", ID: "db-2", Port: 5433, Tags: []string{"prod"}, Meta: map[string]string{"team": "data"}, Status: api.HealthWarning},
		{Node: "node-a", NodeMeta: rackA, Service: "cache", ID: "cache-1", Port: 6379, Meta: map[string]string{"team": "shop"}},
	} {
		srv.Register(t, in)
	}
	exclude := func(exprs ...string) Selection {
		var s Selection
		for _, e := range exprs {
			re, err := AnchoredRegexp(e)
			require.NoError(t, err)
			s.Exclude = append(s.Exclude, re)
		}
		return s
	}

	tests := []struct {
		name string
		sel  Selection
		want map[string][]string // source -> service IDs
	}{
		{"everything", Selection{}, map[string][]string{
			"consul": {"consul"}, "web": {"web-1", "web-2", "web-3"}, "db": {"db-1"}, "db-replica": {"db-2"}, "cache": {"cache-1"},
		}},
		{"services", Selection{Services: []string{"web", "db"}}, map[string][]string{
			"web": {"web-1", "web-2", "web-3"}, "db": {"db-1"},
		}},
		{"exclude, whole names", exclude("consul", "db"), map[string][]string{
			"web": {"web-1", "web-2", "web-3"}, "db-replica": {"db-2"}, "cache": {"cache-1"},
		}},
		{"exclude, a pattern", exclude("db.*|consul"), map[string][]string{
			"web": {"web-1", "web-2", "web-3"}, "cache": {"cache-1"},
		}},
		{"one tag", Selection{Tags: []string{"prod"}}, map[string][]string{
			"web": {"web-1", "web-2"}, "db": {"db-1"}, "db-replica": {"db-2"},
		}},
		{"every tag must be present", Selection{Tags: []string{"prod", "v2"}}, map[string][]string{
			"web": {"web-2"},
		}},
		{"node meta", Selection{NodeMeta: map[string]string{"rack": "b"}}, map[string][]string{
			"web": {"web-2", "web-3"}, "db-replica": {"db-2"},
		}},
		{"catalog filter picks services", Selection{Filter: `ServiceMeta.team == "data"`}, map[string][]string{
			"db": {"db-1"}, "db-replica": {"db-2"},
		}},
		{"health filter picks instances", Selection{HealthFilter: `Service.Tags contains "v2" or Node.Meta.rack == "a"`}, map[string][]string{
			"web": {"web-1", "web-2"}, "db": {"db-1"}, "cache": {"cache-1"},
		}},
		{"health: warning", Selection{Health: HealthWarning}, map[string][]string{
			"consul": {"consul"}, "web": {"web-1", "web-2"}, "db": {"db-1"}, "db-replica": {"db-2"}, "cache": {"cache-1"},
		}},
		{"health: passing", Selection{Health: HealthPassing}, map[string][]string{
			"consul": {"consul"}, "web": {"web-1"}, "db": {"db-1"}, "cache": {"cache-1"},
		}},
		{"combined", Selection{Tags: []string{"prod"}, Health: HealthPassing, Exclude: exclude("consul").Exclude}, map[string][]string{
			"web": {"web-1"}, "db": {"db-1"},
		}},
	}
	for _, mode := range modes {
		for _, tc := range tests {
			t.Run(mode.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				d := realDiscoverer(t, srv.HTTPAddr, func(c *Config) {
					c.MaxConnections = mode.maxConns
					c.Selection = tc.sel
				})
				c, _ := startCollector(t, d)
				testconsul.Eventually(t, func() bool { _, n := c.snapshot(); return n > 0 }, "initial set")
				got, _ := c.snapshot()
				require.Equal(t, tc.want, got)
			})
		}
	}
}

// TestRealConsulHealthSelectionFollowsChecks: with --consul.health=passing,
// an instance leaves when its check fails and comes back when it passes, in
// every mode (in sweep mode through the health doorbell, with a filter that
// hides other instances of the same service).
func TestRealConsulHealthSelectionFollowsChecks(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			srv := testconsul.Start(t)
			for i := range 6 {
				srv.Register(t, testconsul.Instance{Service: "filler-" + string(rune('a'+i)), Port: 9000 + i})
			}
			web1 := testconsul.Instance{Service: "web", ID: "web-1", Port: 8080, Tags: []string{"prod"}, Status: api.HealthPassing}
			hidden := testconsul.Instance{Node: "node-2", Service: "web", ID: "web-hidden", Port: 8081, Status: api.HealthPassing}
			srv.Register(t, web1)
			srv.Register(t, hidden)
			d := realDiscoverer(t, srv.HTTPAddr, func(c *Config) {
				c.MaxConnections = mode.maxConns
				c.Selection = Selection{Tags: []string{"prod"}, Health: HealthPassing}
			})
			c, _ := startCollector(t, d)
			ids := func() []string { got, _ := c.snapshot(); return got["web"] }
			testconsul.Eventually(t, func() bool { return len(ids()) == 1 }, "initial set")
			require.Equal(t, []string{"web-1"}, ids())

			// The hidden instance flaps: nothing to see.
			hidden.Status = api.HealthCritical
			srv.Register(t, hidden)
			web1.Status = api.HealthCritical
			srv.Register(t, web1)
			testconsul.Eventually(t, func() bool { return len(ids()) == 0 }, "web-1 failing leaves")
			web1.Status = api.HealthPassing
			srv.Register(t, web1)
			testconsul.Eventually(t, func() bool { return len(ids()) == 1 }, "web-1 passing again comes back")
			require.Equal(t, []string{"web-1"}, ids())
		})
	}
}

// A health filter evaluated after the read keeps exactly the instances the
// agent keeps when it applies the filter itself.
func TestRealConsulLocalHealthFilterMatchesTheAgent(t *testing.T) {
	t.Parallel()
	srv := testconsul.Start(t)
	for _, in := range []testconsul.Instance{
		{Node: "node-a", NodeMeta: map[string]string{"rack": "a", "zone": "z1"}, Service: "web", ID: "web-1", Port: 8080, Address: "127.0.0.5", Tags: []string{"prod", "v1"}, Meta: map[string]string{"team": "shop", "version": "1.2"}, Status: api.HealthPassing},
		{Node: "node-b", NodeMeta: map[string]string{"rack": "b"}, Service: "web", ID: "web-2", Port: 8081, Tags: []string{"prod", "v2"}, Meta: map[string]string{"team": "shop"}, Status: api.HealthWarning},
		{Node: "node-b", Service: "web", ID: "web-3", Port: 9090, Tags: []string{}, Status: api.HealthCritical},
		{Node: "node-c", Service: "web", ID: "web-4", Port: 8080},
	} {
		srv.Register(t, in)
	}
	all, _, err := srv.Client.Health().Service("web", "", false, nil)
	require.NoError(t, err)
	require.Len(t, all, 4)
	for _, expr := range []string{
		`Service.Port == 8080`,
		`Service.Port != 8080`,
		`Service.Tags contains "prod"`,
		`"v2" in Service.Tags`,
		`Service.Tags is empty`,
		`Service.Meta.team == "shop"`,
		`Service.Meta.version matches "^1\\."`,
		`Service.Meta is not empty`,
		`Node.Meta.rack == "b"`,
		`Node.Meta.zone != "z1"`,
		`Node.Node == "node-b" and Service.ID != "web-3"`,
		`not (Node.Node == "node-a" or Node.Node == "node-c")`,
		`Service.Address == ""`,
		`Node.Address == "127.0.0.1"`,
		`Checks.Status contains "critical"`,
		`Checks is empty`,
		`Checks.ServiceID == "web-2"`,
		`Node.TaggedAddresses.lan == "127.0.0.1"`,
		`Service.Weights.Passing == 1`,
		`Service.Kind == ""`,
	} {
		t.Run(expr, func(t *testing.T) {
			f, err := compileHealthFilter(expr)
			require.NoError(t, err)
			require.NotNil(t, f, "evaluated after the read")
			server, _, err := srv.Client.Health().Service("web", "", false, &api.QueryOptions{Filter: expr})
			require.NoError(t, err, "the agent accepts the filter")
			var want, got []string
			for _, e := range server {
				want = append(want, e.Service.ID)
			}
			for _, e := range all {
				if f.match(e) {
					got = append(got, e.Service.ID)
				}
			}
			sort.Strings(want)
			sort.Strings(got)
			require.Equal(t, want, got)
		})
	}
}

// Several jobs on one Watch see what each sees alone.
func TestRealConsulJobsOnOneWatch(t *testing.T) {
	t.Parallel()
	srv := testconsul.Start(t)
	for _, in := range []testconsul.Instance{
		{Node: "node-a", NodeMeta: map[string]string{"rack": "a"}, Service: "web", ID: "web-1", Port: 8080, Tags: []string{"prod"}, Status: api.HealthPassing},
		{Node: "node-b", NodeMeta: map[string]string{"rack": "b"}, Service: "web", ID: "web-2", Port: 8081, Tags: []string{"canary"}, Status: api.HealthCritical},
		{Node: "node-a", NodeMeta: map[string]string{"rack": "a"}, Service: "db", ID: "db-1", Port: 5432, Meta: map[string]string{"team": "data"}},
	} {
		srv.Register(t, in)
	}
	w, err := NewWatch(WatchConfig{API: api.Config{Address: srv.HTTPAddr}})
	require.NoError(t, err)
	jobs := map[string]JobConfig{
		"all":     {},
		"prod":    {Selection: Selection{Tags: []string{"prod"}}},
		"rack-b":  {Selection: Selection{NodeMeta: map[string]string{"rack": "b"}}},
		"data":    {Selection: Selection{Filter: `ServiceMeta.team == "data"`}},
		"passing": {Selection: Selection{Health: HealthPassing, Exclude: []*regexp.Regexp{regexp.MustCompile("^consul$")}}},
		"port":    {Selection: Selection{HealthFilter: `Service.Port == 8081`}},
	}
	want := map[string]map[string][]string{
		"all":     {"consul": {"consul"}, "web": {"web-1", "web-2"}, "db": {"db-1"}},
		"prod":    {"web": {"web-1"}},
		"rack-b":  {"web": {"web-2"}},
		"data":    {"db": {"db-1"}},
		"passing": {"web": {"web-1"}, "db": {"db-1"}},
		"port":    {"web": {"web-2"}},
	}
	collectors := map[string]*collector{}
	for name, cfg := range jobs {
		j, err := w.Job(cfg)
		require.NoError(t, err)
		collectors[name], _ = collect(t, j)
	}
	runWatch(t, w)
	for name, c := range collectors {
		testconsul.Eventually(t, func() bool { _, n := c.snapshot(); return n > 0 }, "%s: initial set", name)
		got, _ := c.snapshot()
		require.Equal(t, want[name], got, name)
	}
	testconsul.Eventually(t, func() bool { return w.longPolls.Load() == 3 }, "one long poll per service, for six jobs")

	srv.Register(t, testconsul.Instance{Node: "node-b", NodeMeta: map[string]string{"rack": "b"}, Service: "web", ID: "web-3", Port: 8081, Tags: []string{"prod"}})
	// Each job hands its sets out on its own: wait for each job's state.
	for name, web := range map[string][]string{
		"port":    {"web-2", "web-3"},
		"prod":    {"web-1", "web-3"},
		"rack-b":  {"web-2", "web-3"},
		"all":     {"web-1", "web-2", "web-3"},
		"passing": {"web-1", "web-3"},
	} {
		testconsul.Eventually(t, func() bool {
			got, _ := collectors[name].snapshot()
			return slices.Equal(got["web"], web)
		}, "%s: the new instance reaches the job, which selects it", name)
	}
}

func TestInstancesAdmits(t *testing.T) {
	t.Parallel()
	entry := func(tags []string, meta map[string]string, status string) *api.ServiceEntry {
		e := &api.ServiceEntry{Node: &api.Node{Node: "n", Meta: meta}, Service: &api.AgentService{ID: "i", Tags: tags}}
		if status != "" {
			e.Checks = api.HealthChecks{{Status: status}}
		}
		return e
	}
	tests := []struct {
		name string
		sel  Selection
		e    *api.ServiceEntry
		want bool
	}{
		{"no selection", Selection{}, entry(nil, nil, ""), true},
		{"a tag", Selection{Tags: []string{"prod"}}, entry([]string{"prod", "v1"}, nil, ""), true},
		{"a tag in another case, as Consul's filter", Selection{Tags: []string{"prod"}}, entry([]string{"PROD"}, nil, ""), true},
		{"a missing tag", Selection{Tags: []string{"prod", "v2"}}, entry([]string{"prod", "v1"}, nil, ""), false},
		{"node meta", Selection{NodeMeta: map[string]string{"env": "prod"}}, entry(nil, map[string]string{"env": "prod"}, ""), true},
		{"node meta matches whole values", Selection{NodeMeta: map[string]string{"env": "prod"}}, entry(nil, map[string]string{"env": "preprod"}, ""), false},
		{"node meta in another case", Selection{NodeMeta: map[string]string{"env": "prod"}}, entry(nil, map[string]string{"env": "PROD"}, ""), false},
		{"health", Selection{Health: HealthPassing}, entry(nil, nil, api.HealthWarning), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.sel.instances(nil).admits(tc.e))
		})
	}
}
