package consul

import (
	"testing"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"

	"github.com/custom-sd/custom-sd/internal/testconsul"
)

// TestRealConsulSeveralDatacenters watches two federated datacenters
// through dc1's agent: named, and as "every datacenter". When dc2 fails, its
// targets stay and dc1 goes on updating.
func TestRealConsulSeveralDatacenters(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		mod  func(*Config)
	}{
		{"named", func(c *Config) { c.Datacenters = []string{"dc1", "dc2"} }},
		{"all", func(c *Config) { c.AllDatacenters = true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dc1, dc2 := testconsul.StartFederation(t)
			dc1.Register(t, testconsul.Instance{Service: "web", ID: "web-1", Port: 8080})
			dc2.Register(t, testconsul.Instance{Service: "web", ID: "web-2", Port: 8080})
			dc2.Register(t, testconsul.Instance{Service: "db", ID: "db-2", Port: 5432})

			d := realDiscoverer(t, dc1.HTTPAddr, tc.mod)
			c, _ := startCollector(t, d)
			testconsul.Eventually(t, func() bool { _, n := c.snapshot(); return n > 0 }, "initial set")
			got, _ := c.snapshot()
			require.Equal(t, map[string][]string{
				"dc1/consul": {"consul"}, "dc1/web": {"web-1"},
				"dc2/consul": {"consul"}, "dc2/web": {"web-2"}, "dc2/db": {"db-2"},
			}, got, "both datacenters in one complete first send")
			require.Equal(t, "dc2", c.labels("dc2/web", "web-2")["__meta_consul_dc"])
			require.Equal(t, "dc1", c.labels("dc1/web", "web-1")["__meta_consul_dc"])

			// Changes in either datacenter arrive.
			dc2.Register(t, testconsul.Instance{Node: "node-2", Service: "web", ID: "web-3", Port: 8081})
			testconsul.Eventually(t, func() bool { got, _ := c.snapshot(); return len(got["dc2/web"]) == 2 }, "dc2 change")

			// dc2 fails: its last targets stay, dc1 still updates.
			dc2.Halt(t)
			testconsul.Eventually(t, func() bool {
				_, _, err := dc1.Client.Health().Service("web", "", false, &api.QueryOptions{Datacenter: "dc2"})
				return err != nil
			}, "dc2 is unreachable through dc1")
			dc1.Register(t, testconsul.Instance{Service: "api", ID: "api-1", Port: 9000})
			testconsul.Eventually(t, func() bool { got, _ := c.snapshot(); return len(got["dc1/api"]) == 1 }, "dc1 change while dc2 is down")
			got, _ = c.snapshot()
			require.Equal(t, []string{"web-2", "web-3"}, got["dc2/web"], "dc2 keeps its last targets")
			require.Equal(t, []string{"db-2"}, got["dc2/db"])
		})
	}
}

func TestServiceOf(t *testing.T) {
	t.Parallel()
	for source, want := range map[string]string{
		"web":        "web",
		"dc1/web":    "web",
		"dc-2/db.v1": "db.v1",
	} {
		require.Equal(t, want, ServiceOf(source), source)
	}
}
