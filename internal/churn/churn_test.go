package churn

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"
)

// testModel is a model of services × instances on nodes, as Populate would
// write it, without Consul.
func testModel(services, instances int) *Model {
	m := newModel()
	nodes := max(instances, services*instances/10)
	for i := range nodes {
		m.addNode(&Node{Name: fmt.Sprintf("node-%03d", i), Address: loopback(1, i), Meta: map[string]string{"rack": "r0"}})
	}
	for s := range services {
		for i := range instances {
			m.addInstance(&Instance{Node: m.nodeNames[(s*instances+i)%nodes], ID: fmt.Sprintf("svc-%03d-%d", s, i),
				Service: fmt.Sprintf("svc-%03d", s), Port: 10000 + s, Tags: tagPool[i%3 : i%3+2],
				Meta: map[string]string{"version": "1.0.0"}, CheckID: fmt.Sprintf("check:%d-%d", s, i), Status: api.HealthPassing})
		}
	}
	return m
}

// summaryShape is what Consul's catalog summary shows of a service.
func summaryShape(list []*Instance) string {
	var nodes, tags []string
	for _, in := range list {
		nodes = append(nodes, in.Node)
		tags = append(tags, in.Tags...)
	}
	slices.Sort(nodes)
	tags = slices.Compact(slices.Sorted(slices.Values(tags)))
	return fmt.Sprint(len(list), nodes, tags)
}

func TestGeneratorIsSeededAndKeepsItsPromises(t *testing.T) {
	draw := func(seed uint64) ([]string, map[Kind]int) {
		m := testModel(30, 3)
		g := NewGenerator(m, seed)
		var log []string
		seen := map[Kind]int{}
		for range 2000 {
			before := map[string]string{}
			for name, list := range m.services {
				before[name] = summaryShape(list)
			}
			ch := g.Next()
			seen[ch.Kind]++
			b, err := json.Marshal(ch.Ops)
			require.NoError(t, err)
			log = append(log, ch.Kind.String()+" "+string(b))
			require.NotEmpty(t, ch.Ops, ch.Kind.String())
			require.NotEmpty(t, ch.Services, ch.Kind.String())
			switch ch.Kind {
			case TagsInPlace, Meta, Port, Address:
				s := ch.Services[0]
				require.Equal(t, before[s], summaryShape(m.services[s]), "%s keeps what the summary shows of %s", ch.Kind, s)
			case Register, Deregister, NewTag:
				s := ch.Services[0]
				require.NotEqual(t, before[s], summaryShape(m.services[s]), "%s shows in the summary of %s", ch.Kind, s)
			}
		}
		return log, seen
	}
	first, seen := draw(7)
	again, _ := draw(7)
	other, _ := draw(8)
	require.Equal(t, first, again, "the same seed draws the same changes")
	require.NotEqual(t, first, other, "another seed draws others")
	for k := range kinds {
		require.Positive(t, seen[k], "%s is drawn", k)
	}
}

func TestTargetOf(t *testing.T) {
	node := &api.Node{Node: "n1", Address: "127.0.0.1", Datacenter: "dc1",
		Meta: map[string]string{"rack.id": "7"}, TaggedAddresses: map[string]string{"lan": "127.0.0.1"}}
	tests := []struct {
		name  string
		entry *api.ServiceEntry
		want  Target
	}{
		{"the node's address, meta made into label names, health from the checks", &api.ServiceEntry{
			Node:    node,
			Service: &api.AgentService{ID: "web-1", Service: "web", Port: 80, Tags: []string{"a", "b"}, Meta: map[string]string{"owner-email": "x"}},
			Checks:  api.HealthChecks{{Status: api.HealthPassing}, {Status: api.HealthWarning}},
		}, Target{
			"__address__": "127.0.0.1:80", "__meta_consul_address": "127.0.0.1", "__meta_consul_dc": "dc1",
			"__meta_consul_health": "warning", "__meta_consul_node": "n1", "__meta_consul_service": "web",
			"__meta_consul_service_address": "", "__meta_consul_service_id": "web-1", "__meta_consul_service_port": "80",
			"__meta_consul_tags": ",a,b,", "__meta_consul_metadata_rack_id": "7",
			"__meta_consul_service_metadata_owner_email": "x", "__meta_consul_tagged_address_lan": "127.0.0.1",
		}},
		{"the service's own address, IPv6, no tags", &api.ServiceEntry{
			Node:    &api.Node{Node: "n2", Address: "127.0.0.2", Datacenter: "dc1"},
			Service: &api.AgentService{ID: "db", Service: "db", Address: "::1", Port: 5432},
		}, Target{
			"__address__": "[::1]:5432", "__meta_consul_address": "127.0.0.2", "__meta_consul_dc": "dc1",
			"__meta_consul_health": "passing", "__meta_consul_node": "n2", "__meta_consul_service": "db",
			"__meta_consul_service_address": "::1", "__meta_consul_service_id": "db", "__meta_consul_service_port": "5432",
			"__meta_consul_tags": ",,",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, targetOf(tc.entry, ","))
		})
	}
}

func TestReadFileAndDiff(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sd.json")
	file := `[{"targets":["127.0.0.1:80"],"labels":{"__meta_consul_service":"web","__meta_consul_node":"n1","__meta_consul_service_id":"web-1","__meta_consul_tags":",a,"}},
{"targets":["127.0.0.2:80","127.0.0.3:80"],"labels":{"__meta_consul_service":"web","__meta_consul_node":"n2","__meta_consul_service_id":"web-2"}}]`
	require.NoError(t, os.WriteFile(path, []byte(file), 0o644))
	got, err := ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, []string{"web/n1/web-1", "web/n2/web-2"}, slices.Sorted(maps.Keys(got)))
	require.Equal(t, "127.0.0.1:80", got["web/n1/web-1"]["__address__"])

	web1 := Target{"__address__": "127.0.0.1:80", "__meta_consul_service": "web", "__meta_consul_node": "n1", "__meta_consul_service_id": "web-1", "__meta_consul_tags": ",a,"}
	with := func(t Target, k, v string) Target {
		t = maps.Clone(t)
		if v == "" {
			delete(t, k)
		} else {
			t[k] = v
		}
		return t
	}
	tests := []struct {
		name      string
		want, got Targets
		diff      []string
	}{
		{"equal", Targets{"w": web1}, Targets{"w": web1}, nil},
		{"a label differs", Targets{"w": web1}, Targets{"w": with(web1, "__meta_consul_tags", ",b,")}, []string{`w: __meta_consul_tags is ",b,", want ",a,"`}},
		{"a label is missing", Targets{"w": web1}, Targets{"w": with(web1, "__meta_consul_tags", "")}, []string{`w: no __meta_consul_tags (want ",a,")`}},
		{"a label is extra", Targets{"w": web1}, Targets{"w": with(web1, "x", "1")}, []string{`w: unexpected x="1"`}},
		{"targets missing and unexpected", Targets{"w": web1}, Targets{"v": web1}, []string{"missing w", "unexpected v"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.diff, Diff(tc.want, tc.got))
		})
	}
}
