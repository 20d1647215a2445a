package churn

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/consul/api"
)

// Target is one scrape target's labels, __address__ among them.
type Target map[string]string

// Targets are targets by Key.
type Targets map[string]Target

// Key names a target by its service, node and service ID.
func Key(t Target) string {
	return t["__meta_consul_service"] + "/" + t["__meta_consul_node"] + "/" + t["__meta_consul_service_id"]
}

// Expected reads every service's instances from Consul, conns at a time,
// and returns the targets Prometheus's consul_sd_configs would give them,
// tags joined with sep.
func Expected(ctx context.Context, c *api.Client, sep string, conns int) (Targets, error) {
	names, _, err := c.Catalog().Services((&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	entries, err := readAll(ctx, c, slices.Sorted(maps.Keys(names)), conns)
	if err != nil {
		return nil, err
	}
	out := Targets{}
	for _, list := range entries {
		for _, e := range list {
			t := targetOf(e, sep)
			out[Key(t)] = t
		}
	}
	return out, nil
}

// targetOf returns the labels consul_sd gives an instance: the address to
// scrape (the service's address, or else its node's, with its port), the
// node's and the service's fields, both sets of meta and the node's tagged
// addresses, with keys made into label names.
func targetOf(e *api.ServiceEntry, sep string) Target {
	n, s := e.Node, e.Service
	host := s.Address
	if host == "" {
		host = n.Address
	}
	t := Target{
		"__address__":                   net.JoinHostPort(host, strconv.Itoa(s.Port)),
		"__meta_consul_address":         n.Address,
		"__meta_consul_dc":              n.Datacenter,
		"__meta_consul_health":          e.Checks.AggregatedStatus(),
		"__meta_consul_node":            n.Node,
		"__meta_consul_service":         s.Service,
		"__meta_consul_service_address": s.Address,
		"__meta_consul_service_id":      s.ID,
		"__meta_consul_service_port":    strconv.Itoa(s.Port),
		"__meta_consul_tags":            sep + strings.Join(s.Tags, sep) + sep,
	}
	if s.Namespace != "" {
		t["__meta_consul_namespace"] = s.Namespace
	}
	if s.Partition != "" {
		t["__meta_consul_partition"] = s.Partition
	}
	for prefix, m := range map[string]map[string]string{
		"__meta_consul_metadata_":         n.Meta,
		"__meta_consul_service_metadata_": s.Meta,
		"__meta_consul_tagged_address_":   n.TaggedAddresses,
	} {
		for k, v := range m {
			t[prefix+labelName(k)] = v
		}
	}
	return t
}

// labelName replaces each character a label name may not hold with an
// underscore.
func labelName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, s)
}

// ReadFile reads the targets of a file_sd file.
func ReadFile(path string) (Targets, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var groups []struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	if err := json.Unmarshal(b, &groups); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := Targets{}
	for _, g := range groups {
		for _, addr := range g.Targets {
			t := maps.Clone(g.Labels)
			if t == nil {
				t = Target{}
			}
			t["__address__"] = addr
			out[Key(t)] = t
		}
	}
	return out, nil
}

// Diff lists, sorted, where got differs from want: targets missing or
// unexpected, and each label whose value differs or is missing on one side.
func Diff(want, got Targets) []string {
	var out []string
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			out = append(out, "missing "+k)
			continue
		}
		for _, l := range slices.Sorted(maps.Keys(w)) {
			if gv, ok := g[l]; !ok {
				out = append(out, fmt.Sprintf("%s: no %s (want %q)", k, l, w[l]))
			} else if gv != w[l] {
				out = append(out, fmt.Sprintf("%s: %s is %q, want %q", k, l, gv, w[l]))
			}
		}
		for _, l := range slices.Sorted(maps.Keys(g)) {
			if _, ok := w[l]; !ok {
				out = append(out, fmt.Sprintf("%s: unexpected %s=%q", k, l, g[l]))
			}
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			out = append(out, "unexpected "+k)
		}
	}
	slices.Sort(out)
	return out
}
