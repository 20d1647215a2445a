package consul

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite golden files")

func entry(mod func(*api.ServiceEntry)) *api.ServiceEntry {
	e := &api.ServiceEntry{
		Node: &api.Node{
			Node: "node-1", Address: "10.0.0.1", Datacenter: "dc1",
			TaggedAddresses: map[string]string{"lan": "10.0.0.1", "wan": "198.51.100.1"},
			Meta:            map[string]string{"rack": "r1"},
		},
		Service: &api.AgentService{
			ID: "web-1", Service: "web", Port: 8080, Tags: []string{"a", "b"},
			Meta: map[string]string{"version": "1.2"},
		},
	}
	if mod != nil {
		mod(e)
	}
	return e
}

func check(id, status string) *api.HealthCheck {
	return &api.HealthCheck{CheckID: id, Status: status}
}

func TestInstanceLabels(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		e    *api.ServiceEntry
		sep  string
		want model.LabelSet // only these labels are checked
		not  []model.LabelName
	}{
		{
			name: "node address when the service has none",
			e:    entry(nil),
			want: model.LabelSet{"__address__": "10.0.0.1:8080", "__meta_consul_service_address": "", "__meta_consul_address": "10.0.0.1"},
		},
		{
			name: "service address wins",
			e:    entry(func(e *api.ServiceEntry) { e.Service.Address = "127.0.0.5" }),
			want: model.LabelSet{"__address__": "127.0.0.5:8080", "__meta_consul_service_address": "127.0.0.5"},
		},
		{
			name: "IPv6 is bracketed",
			e:    entry(func(e *api.ServiceEntry) { e.Service.Address = "::1" }),
			want: model.LabelSet{"__address__": "[::1]:8080"},
		},
		{
			name: "tags joined with the separator, also at both ends",
			e:    entry(nil), sep: ";",
			want: model.LabelSet{"__meta_consul_tags": ";a;b;"},
		},
		{
			name: "no tags give the separator twice, as consul_sd",
			e:    entry(func(e *api.ServiceEntry) { e.Service.Tags = nil }),
			want: model.LabelSet{"__meta_consul_tags": ",,"},
		},
		{
			name: "no tags with another separator",
			e:    entry(func(e *api.ServiceEntry) { e.Service.Tags = []string{} }), sep: ";",
			want: model.LabelSet{"__meta_consul_tags": ";;"},
		},
		{
			name: "meta, node meta and tagged addresses",
			e:    entry(nil),
			want: model.LabelSet{
				"__meta_consul_metadata_rack": "r1", "__meta_consul_service_metadata_version": "1.2",
				"__meta_consul_tagged_address_lan": "10.0.0.1", "__meta_consul_tagged_address_wan": "198.51.100.1",
				"__meta_consul_node": "node-1", "__meta_consul_dc": "dc1", "__meta_consul_service_id": "web-1",
				"__meta_consul_service_port": "8080",
			},
		},
		{
			name: "meta keys are sanitised; on a clash the key that sorts first wins",
			e: entry(func(e *api.ServiceEntry) {
				e.Service.Meta = map[string]string{"a.b": "dot", "a-b": "dash", "a_b": "underscore", "ü": "umlaut"}
			}),
			want: model.LabelSet{"__meta_consul_service_metadata_a_b": "dash", "__meta_consul_service_metadata__": "umlaut"},
		},
		{
			name: "namespace and partition only when Consul returns them",
			e:    entry(nil),
			not:  []model.LabelName{"__meta_consul_namespace", "__meta_consul_partition"},
		},
		{
			name: "namespace and partition",
			e:    entry(func(e *api.ServiceEntry) { e.Service.Namespace, e.Service.Partition = "ns1", "part1" }),
			want: model.LabelSet{"__meta_consul_namespace": "ns1", "__meta_consul_partition": "part1"},
		},
		{
			name: "no checks count as passing",
			e:    entry(nil),
			want: model.LabelSet{"__meta_consul_health": "passing"},
		},
		{
			name: "warning",
			e:    entry(func(e *api.ServiceEntry) { e.Checks = api.HealthChecks{check("a", "passing"), check("b", "warning")} }),
			want: model.LabelSet{"__meta_consul_health": "warning"},
		},
		{
			name: "critical beats warning",
			e:    entry(func(e *api.ServiceEntry) { e.Checks = api.HealthChecks{check("a", "critical"), check("b", "warning")} }),
			want: model.LabelSet{"__meta_consul_health": "critical"},
		},
		{
			name: "maintenance beats critical",
			e: entry(func(e *api.ServiceEntry) {
				e.Checks = api.HealthChecks{check("a", "critical"), check(api.NodeMaint, "critical")}
			}),
			want: model.LabelSet{"__meta_consul_health": "maintenance"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sep := tc.sep
			if sep == "" {
				sep = ","
			}
			got := instanceLabels(tc.e, sep)
			for n, v := range tc.want {
				require.Contains(t, got, n)
				require.Equal(t, v, got[n], n)
			}
			for _, n := range tc.not {
				require.NotContains(t, got, n)
			}
			require.NoError(t, got.Validate(), "valid label names and values")
		})
	}
}

func TestSanitizeLabelName(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"plain_Name9", "plain_Name9"},
		{"with-dash.and/slash", "with_dash_and_slash"},
		{"ünï", "_n_"},
		{"a b", "a_b"},
		{"", ""},
		{"\xff", "_"},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, SanitizeLabelName(tc.in), "%q", tc.in)
	}
}

// TestToGroupGolden pins the complete label set of a few instances.
func TestToGroupGolden(t *testing.T) {
	t.Parallel()
	entries := []*api.ServiceEntry{
		entry(func(e *api.ServiceEntry) {
			e.Checks = api.HealthChecks{check("serfHealth", "passing"), check("service:web-1", "warning")}
		}),
		entry(func(e *api.ServiceEntry) {
			e.Node.Node, e.Node.Address = "node-2", "::1"
			e.Service.ID, e.Service.Tags, e.Service.Meta = "web-2", nil, map[string]string{"team-name": "sre"}
		}),
		nil, // tolerated
	}
	g := toGroup("web", "web", entries, ",")
	require.Equal(t, "web", g.Source)
	var got []map[string]string
	for _, tg := range g.Targets {
		m := map[string]string{}
		for n, v := range g.Labels.Merge(tg) {
			m[string(n)] = string(v)
		}
		got = append(got, m)
	}
	b, err := json.MarshalIndent(got, "", "  ")
	require.NoError(t, err)
	golden := filepath.Join("testdata", "group.golden.json")
	if *update {
		require.NoError(t, os.WriteFile(golden, b, 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err)
	require.JSONEq(t, string(want), string(b))
}
