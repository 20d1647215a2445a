package consul

import (
	"fmt"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-bexpr"
)

// A health filter (consul_sd's health_filter) picks instances on the
// agent's side. Jobs that differ only in their health filters share one read
// of each service when their filters can be evaluated here, after the read;
// a filter that cannot be needs a read of its own.
//
// It is evaluated here exactly as the agent does: with the agent's own
// version of go-bexpr (v0.1.2, as Consul 1.20) on a value with the fields,
// names and types of the agent's structs.CheckServiceNode. A selector of a
// field this mirror leaves out (Service.Proxy, Service.Connect, a check's
// Interval, Timeout or Definition, which the API client does not decode)
// fails to compile against it, and the filter goes to the agent instead.

// filterNode mirrors the fields of Consul's structs.CheckServiceNode that a
// health filter can select.
type filterNode struct {
	Node    *filterNodeInfo
	Service *filterService
	Checks  []*filterCheck
}

// filterNodeInfo mirrors structs.Node.
type filterNodeInfo struct {
	ID              string
	Node            string
	Address         string
	Datacenter      string
	Partition       string
	PeerName        string
	TaggedAddresses map[string]string
	Meta            map[string]string
}

// filterService mirrors structs.NodeService, without Proxy and Connect.
type filterService struct {
	Kind              string
	ID                string
	Service           string
	Tags              []string
	Address           string
	TaggedAddresses   map[string]filterServiceAddress
	Meta              map[string]string
	Port              int
	SocketPath        string
	Weights           *filterWeights
	EnableTagOverride bool
	PeerName          string
}

type filterServiceAddress struct {
	Address string
	Port    int
}

type filterWeights struct {
	Passing int
	Warning int
}

// filterCheck mirrors structs.HealthCheck, without Interval, Timeout and
// Definition.
type filterCheck struct {
	Node        string
	CheckID     string
	Name        string
	Status      string
	Notes       string
	Output      string
	ServiceID   string
	ServiceName string
	ServiceTags []string
	Type        string
	ExposedPort int
	PeerName    string
}

// localFilter is a health filter evaluated after the read.
type localFilter struct{ eval *bexpr.Evaluator }

// compileHealthFilter returns a local evaluator for expr, or nil if the
// agent must evaluate it. It fails only for an expression that does not
// parse.
func compileHealthFilter(expr string) (*localFilter, error) {
	if expr == "" {
		return nil, nil
	}
	eval, err := bexpr.CreateEvaluatorForType(expr, nil, (*filterNode)(nil))
	if err == nil {
		return &localFilter{eval}, nil
	}
	if _, perr := bexpr.CreateEvaluator(expr, nil); perr != nil {
		return nil, fmt.Errorf("%q is not a Consul filter expression: %w", expr, perr)
	}
	return nil, nil // it parses, but selects a field the mirror leaves out
}

// match reports whether the instance passes the filter. An evaluation error
// (a type the mirror cannot compare) keeps the instance out, as the agent
// answers such a query with an error rather than with the instance.
func (f *localFilter) match(e *api.ServiceEntry) bool {
	ok, err := f.eval.Evaluate(toFilterNode(e))
	return err == nil && ok
}

func toFilterNode(e *api.ServiceEntry) *filterNode {
	n := &filterNode{}
	if e.Node != nil {
		n.Node = &filterNodeInfo{
			ID: e.Node.ID, Node: e.Node.Node, Address: e.Node.Address, Datacenter: e.Node.Datacenter,
			Partition: e.Node.Partition, PeerName: e.Node.PeerName, TaggedAddresses: e.Node.TaggedAddresses, Meta: e.Node.Meta,
		}
	}
	if s := e.Service; s != nil {
		n.Service = &filterService{
			Kind: string(s.Kind), ID: s.ID, Service: s.Service, Tags: s.Tags, Address: s.Address, Meta: s.Meta,
			Port: s.Port, SocketPath: s.SocketPath, EnableTagOverride: s.EnableTagOverride, PeerName: s.PeerName,
			Weights: &filterWeights{Passing: s.Weights.Passing, Warning: s.Weights.Warning},
		}
		if len(s.TaggedAddresses) > 0 {
			n.Service.TaggedAddresses = make(map[string]filterServiceAddress, len(s.TaggedAddresses))
			for k, a := range s.TaggedAddresses {
				n.Service.TaggedAddresses[k] = filterServiceAddress{Address: a.Address, Port: a.Port}
			}
		}
	}
	for _, c := range e.Checks {
		n.Checks = append(n.Checks, &filterCheck{
			Node: c.Node, CheckID: c.CheckID, Name: c.Name, Status: c.Status, Notes: c.Notes, Output: c.Output,
			ServiceID: c.ServiceID, ServiceName: c.ServiceName, ServiceTags: c.ServiceTags, Type: c.Type,
			ExposedPort: c.ExposedPort, PeerName: c.PeerName,
		})
	}
	return n
}
