package consul

import (
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/common/model"

	"github.com/custom-sd/custom-sd/adapter"
)

// Label names, the same as Prometheus's consul_sd_configs sets.
const (
	metaPrefix          = model.MetaLabelPrefix + "consul_"
	addressLabel        = metaPrefix + "address"
	datacenterLabel     = metaPrefix + "dc"
	healthLabel         = metaPrefix + "health"
	namespaceLabel      = metaPrefix + "namespace"
	nodeLabel           = metaPrefix + "node"
	partitionLabel      = metaPrefix + "partition"
	serviceLabel        = metaPrefix + "service"
	serviceAddressLabel = metaPrefix + "service_address"
	serviceIDLabel      = metaPrefix + "service_id"
	servicePortLabel    = metaPrefix + "service_port"
	tagsLabel           = metaPrefix + "tags"
	nodeMetaPrefix      = metaPrefix + "metadata_"
	serviceMetaPrefix   = metaPrefix + "service_metadata_"
	taggedAddressPrefix = metaPrefix + "tagged_address_"
)

// toGroup converts the instances of one service into a target group: one
// target per instance, carrying every label consul_sd would give it.
func toGroup(source, service string, entries []*api.ServiceEntry, tagSeparator string) *adapter.Group {
	g := &adapter.Group{
		Source:  source,
		Labels:  model.LabelSet{serviceLabel: model.LabelValue(service)},
		Targets: make([]model.LabelSet, 0, len(entries)),
	}
	for _, e := range entries {
		if e == nil || e.Node == nil || e.Service == nil {
			continue
		}
		g.Targets = append(g.Targets, instanceLabels(e, tagSeparator))
	}
	return g
}

// instanceLabels returns the labels of one service instance.
func instanceLabels(e *api.ServiceEntry, tagSeparator string) model.LabelSet {
	n, s := e.Node, e.Service
	host := s.Address
	if host == "" {
		host = n.Address
	}
	ls := model.LabelSet{
		model.AddressLabel:  model.LabelValue(net.JoinHostPort(host, strconv.Itoa(s.Port))),
		addressLabel:        model.LabelValue(n.Address),
		datacenterLabel:     model.LabelValue(n.Datacenter),
		healthLabel:         model.LabelValue(e.Checks.AggregatedStatus()),
		nodeLabel:           model.LabelValue(n.Node),
		serviceAddressLabel: model.LabelValue(s.Address),
		serviceIDLabel:      model.LabelValue(s.ID),
		servicePortLabel:    model.LabelValue(strconv.Itoa(s.Port)),
		tagsLabel:           model.LabelValue(joinTags(s.Tags, tagSeparator)),
	}
	if s.Namespace != "" {
		ls[namespaceLabel] = model.LabelValue(s.Namespace)
	}
	if s.Partition != "" {
		ls[partitionLabel] = model.LabelValue(s.Partition)
	}
	addPrefixed(ls, nodeMetaPrefix, n.Meta)
	addPrefixed(ls, serviceMetaPrefix, s.Meta)
	addPrefixed(ls, taggedAddressPrefix, n.TaggedAddresses)
	return ls
}

// joinTags joins tags with sep and puts sep at both ends too, as consul_sd
// does, so that a relabel regex like ".*,prod,.*" matches whole tags. No
// tags give the separator twice (",,"), as consul_sd gives them.
func joinTags(tags []string, sep string) string {
	return sep + strings.Join(tags, sep) + sep
}

// addPrefixed adds prefix+SanitizeLabelName(key) for every key of m. When
// several keys sanitise to the same name, the key that sorts first (byte
// order) wins, so the output never depends on map iteration order.
func addPrefixed(ls model.LabelSet, prefix string, m map[string]string) {
	if len(m) == 0 {
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		name := model.LabelName(prefix + SanitizeLabelName(k))
		if _, taken := ls[name]; taken {
			continue
		}
		ls[name] = model.LabelValue(m[k])
	}
}

// SanitizeLabelName replaces every character outside [a-zA-Z0-9_] with an
// underscore, byte for byte as Prometheus's strutil.SanitizeLabelName does
// (a multi-byte character becomes one underscore).
func SanitizeLabelName(name string) string {
	var b strings.Builder
	b.Grow(len(name))
	for _, r := range name {
		if r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}
