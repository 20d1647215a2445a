package consul

import (
	"testing"
	"unicode/utf8"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// FuzzInstanceLabels builds an instance from arbitrary Consul data and
// checks that every label name it gets is one Prometheus accepts (meta and
// tagged-address keys are sanitised), that values pass through unchanged,
// and that the address is host:port of the service (or node) address.
//
//	go test -run '^$' -fuzz FuzzInstanceLabels -fuzztime 10m ./sd/consul
func FuzzInstanceLabels(f *testing.F) {
	f.Add("web", "web-1", "node-1", "127.0.0.1", "", 8080, "prod", "team", "sre", "owner-email", "a@b", "lan", "10.0.0.1")
	f.Add("ünï", "", "", "", "::1", 0, ",", "", "", "1x", "\xff", "wan.ipv4", "")
	f.Add("a b", "id\"", "n\n", "h", "s", -1, "t\\", "__", "v", "€", "x", "-", "y")
	f.Fuzz(func(t *testing.T, service, id, node, nodeAddr, svcAddr string, port int, tag, metaKey, metaValue, nodeMetaKey, nodeMetaValue, taggedKey, taggedValue string) {
		e := &api.ServiceEntry{
			Node: &api.Node{Node: node, Address: nodeAddr, Datacenter: "dc1",
				Meta:            map[string]string{nodeMetaKey: nodeMetaValue},
				TaggedAddresses: map[string]string{taggedKey: taggedValue}},
			Service: &api.AgentService{ID: id, Service: service, Address: svcAddr, Port: port, Tags: []string{tag},
				Meta: map[string]string{metaKey: metaValue}},
		}
		g := toGroup(service, service, []*api.ServiceEntry{e}, DefaultTagSeparator)
		require.Len(t, g.Targets, 1)
		ls := g.Labels.Merge(g.Targets[0])
		for n := range ls {
			require.True(t, model.LegacyValidation.IsValidLabelName(string(n)), "label name %q", n)
		}
		require.Equal(t, model.LabelValue(service), ls[serviceLabel])
		require.Equal(t, model.LabelValue(id), ls[serviceIDLabel])
		require.Equal(t, model.LabelValue(metaValue), ls[model.LabelName(serviceMetaPrefix+SanitizeLabelName(metaKey))])
		host := svcAddr
		if host == "" {
			host = nodeAddr
		}
		addr := string(ls[model.AddressLabel])
		require.NotEmpty(t, addr)
		if utf8.ValidString(host) {
			require.Contains(t, addr, host)
		}
	})
}
