package consul

import (
	"slices"
	"testing"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"
)

func TestNodeDiff(t *testing.T) {
	node := func(name, rack string) *api.Node {
		return &api.Node{Node: name, Address: "127.0.0.1", Datacenter: "dc1", Meta: map[string]string{"rack": rack}}
	}
	type step struct {
		read map[string][]*api.Node // services read, with the nodes their read shows
		list []*api.Node            // then a list of the doorbell
		want []string               // services to read again
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"the first list is compared with every service", []step{
			{read: map[string][]*api.Node{"a": {node("n1", "r1")}, "b": {node("n2", "r1")}},
				list: []*api.Node{node("n1", "r1"), node("n2", "r2")}, want: []string{"b"}},
		}},
		{"two services read on either side of a node's change", []step{
			{read: map[string][]*api.Node{"a": {node("n1", "r1")}}, list: []*api.Node{node("n1", "r1")}},
			// The node changes; b is read after, a is not.
			{read: map[string][]*api.Node{"b": {node("n1", "r2")}}, list: []*api.Node{node("n1", "r2")}, want: []string{"a"}},
		}},
		{"a change that came and went between two lists, seen by one read", []step{
			{read: map[string][]*api.Node{"a": {node("n1", "r1")}, "b": {node("n1", "r1")}}, list: []*api.Node{node("n1", "r1")}},
			{read: map[string][]*api.Node{"b": {node("n1", "r2")}}, list: []*api.Node{node("n1", "r1")}, want: []string{"b"}},
		}},
		{"a list without changes compares only the services read since the last", []step{
			{read: map[string][]*api.Node{"a": {node("n1", "r1")}}, list: []*api.Node{node("n1", "r1")}},
			{list: []*api.Node{node("n1", "r1")}},
		}},
		{"a node that left the list", []step{
			{read: map[string][]*api.Node{"a": {node("n1", "r1"), node("n2", "r1")}, "b": {node("n2", "r1")}},
				list: []*api.Node{node("n1", "r1"), node("n2", "r1")}},
			{list: []*api.Node{node("n2", "r1")}, want: []string{"a"}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var d nodeDiff
			services := map[string]*service{}
			for i, s := range tc.steps {
				for name, nodes := range s.read {
					var entries []*api.ServiceEntry
					for _, n := range nodes {
						entries = append(entries, &api.ServiceEntry{Node: n, Service: &api.AgentService{ID: name, Service: name}})
					}
					services[name] = &service{name: name, fetched: true,
						health: healthStateOf(entries, nil, func(s string) string { return s }), nodes: nodesOfEntries(entries)}
					d.read(name)
				}
				var got []string
				for _, s := range d.list(s.list, services) {
					got = append(got, s.name)
				}
				slices.Sort(got)
				require.Equal(t, s.want, got, "step %d", i)
			}
		})
	}
}
