package consul

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-bexpr"

	"github.com/custom-sd/custom-sd/adapter"
)

// Health is the least aggregated health an instance needs to become a
// target.
type Health int

// Health levels, from the most lenient.
const (
	// HealthAny keeps every instance; __meta_consul_health says how it is,
	// as with consul_sd.
	HealthAny Health = iota
	// HealthWarning keeps passing and warning instances and drops critical
	// ones and those in maintenance.
	HealthWarning
	// HealthPassing keeps only passing instances (an instance without checks
	// is passing).
	HealthPassing
)

var healthNames = []string{"any", "warning", "passing"}

func (h Health) String() string {
	if int(h) < len(healthNames) {
		return healthNames[h]
	}
	return fmt.Sprintf("Health(%d)", int(h))
}

// ParseHealth parses "any", "warning" or "passing".
func ParseHealth(s string) (Health, error) {
	if i := slices.Index(healthNames, s); i >= 0 {
		return Health(i), nil
	}
	return 0, fmt.Errorf("%q is not one of any, warning, passing", s)
}

// admits reports whether an instance with the given aggregated status
// (api.HealthPassing, HealthWarning, HealthCritical or HealthMaint) is kept.
func (h Health) admits(status string) bool {
	switch h {
	case HealthPassing:
		return status == api.HealthPassing
	case HealthWarning:
		return status == api.HealthPassing || status == api.HealthWarning
	default:
		return true
	}
}

// Selection chooses which services and instances become targets. The zero
// value selects every instance of every service. The fields mirror
// Prometheus's consul_sd_configs where it has one.
type Selection struct {
	// Services lists the services to watch; empty means all (consul_sd:
	// services).
	Services []string
	// Exclude drops services whose whole name matches any of these.
	Exclude []*regexp.Regexp
	// Tags must all be present on an instance (consul_sd: tags). A service
	// is watched only if its instances carry them all between them.
	Tags []string
	// NodeMeta must all be present on an instance's node (consul_sd:
	// node_meta).
	NodeMeta map[string]string
	// Filter is a Consul filter expression on the catalog's service list
	// (consul_sd: filter).
	Filter string
	// HealthFilter is a Consul filter expression on each service's
	// instances, as the health API sees them (consul_sd: health_filter).
	// It is evaluated after the read when it can be (see healthfilter.go),
	// so that jobs with different filters share their reads.
	HealthFilter string
	// Health is the least aggregated health an instance needs.
	Health Health
}

// Validate reports the first invalid field as an *adapter.FieldError: a
// service name that cannot be part of a URL path, a filter expression that
// does not parse (Consul's own grammar), an unknown health level.
func (s *Selection) Validate() error {
	for _, svc := range s.Services {
		if svc == "" || strings.ContainsAny(svc, "/?&#") {
			return &adapter.FieldError{Field: "Services", Err: fmt.Errorf("%q is not a service name", svc)}
		}
	}
	for k := range s.NodeMeta {
		if k == "" {
			return &adapter.FieldError{Field: "NodeMeta", Err: fmt.Errorf("an empty key")}
		}
	}
	if s.Filter != "" {
		if _, err := bexpr.CreateEvaluator(s.Filter, nil); err != nil {
			return &adapter.FieldError{Field: "Filter", Err: fmt.Errorf("%q is not a Consul filter expression: %w", s.Filter, err)}
		}
	}
	if _, err := compileHealthFilter(s.HealthFilter); err != nil {
		return &adapter.FieldError{Field: "HealthFilter", Err: err}
	}
	if s.Health < HealthAny || s.Health > HealthPassing {
		return &adapter.FieldError{Field: "Health", Err: fmt.Errorf("%d is not a health level", int(s.Health))}
	}
	return nil
}

// wantService reports whether a service from the catalog's list, with the
// union of its instances' tags, is watched.
func (s *Selection) wantService(name string, tags []string) bool {
	if len(s.Services) > 0 && !slices.Contains(s.Services, name) {
		return false
	}
	for _, re := range s.Exclude {
		if re.MatchString(name) {
			return false
		}
	}
	for _, t := range s.Tags {
		if !slices.Contains(tags, t) {
			return false
		}
	}
	return true
}

// instances is the instance-level part of a selection, applied after a
// read that all jobs of a scope share: tags, node meta, a health filter
// that can be evaluated here, and the health level.
type instances struct {
	tags     []string
	nodeMeta map[string]string
	filter   *localFilter // nil: none, or the agent applies it
	health   Health
}

func (s *Selection) instances(filter *localFilter) instances {
	return instances{tags: s.Tags, nodeMeta: s.NodeMeta, filter: filter, health: s.Health}
}

// admitted returns the entries the selection keeps. It returns entries
// itself when it keeps all of them.
func (m instances) admitted(entries []*api.ServiceEntry) []*api.ServiceEntry {
	if len(m.tags) == 0 && len(m.nodeMeta) == 0 && m.filter == nil && m.health == HealthAny {
		return entries
	}
	out := make([]*api.ServiceEntry, 0, len(entries))
	for _, e := range entries {
		if e != nil && m.admits(e) {
			out = append(out, e)
		}
	}
	return out
}

func (m instances) admits(e *api.ServiceEntry) bool {
	if e.Node == nil || e.Service == nil {
		return false
	}
	for _, t := range m.tags {
		// As the agent's ?tag= filter, which consul_sd relies on: whatever
		// the case.
		if !slices.ContainsFunc(e.Service.Tags, func(have string) bool { return strings.EqualFold(have, t) }) {
			return false
		}
	}
	for k, v := range m.nodeMeta {
		if have, ok := e.Node.Meta[k]; !ok || have != v {
			return false
		}
	}
	if !m.health.admits(e.Checks.AggregatedStatus()) {
		return false
	}
	return m.filter == nil || m.filter.match(e)
}

// AnchoredRegexp compiles expr so that it must match a whole name, as
// Prometheus's relabelling regexes do.
func AnchoredRegexp(expr string) (*regexp.Regexp, error) {
	return regexp.Compile("^(?:" + expr + ")$")
}
