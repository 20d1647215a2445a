package churn

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/hashicorp/consul/api"
)

// tagPool is where instances' tags come from: several per instance, so
// that an instance's tags can change while its service's union stays.
var tagPool = []string{"prod", "metrics", "canary", "v1", "v2", "blue", "green"}

// Spec describes a catalog for Populate.
type Spec struct {
	Services  int    // services named svc-000…
	Instances int    // instances of each, each on a node of its own
	PerNode   int    // instances to a node (0: 10)
	Seed      uint64 // for the tags and meta
}

// Populate writes spec's catalog to Consul and returns its model. Every
// instance has two or three tags, meta, a port of its service's and a
// passing check; nodes have loopback addresses and a rack in their meta.
func Populate(ctx context.Context, c *api.Client, spec Spec) (*Model, error) {
	rnd := rand.New(rand.NewPCG(spec.Seed, 0x5eed))
	perNode := spec.PerNode
	if perNode <= 0 {
		perNode = 10
	}
	nodes := max(spec.Instances, spec.Services*spec.Instances/perNode)
	m := newModel()
	var ops api.TxnOps
	for i := range nodes {
		n := m.addNode(&Node{Name: fmt.Sprintf("node-%03d", i), Address: loopback(1, i),
			Meta: map[string]string{"rack": fmt.Sprintf("r%d", i%4)}})
		n.TaggedAddresses = map[string]string{"lan": n.Address}
		ops = append(ops, nodeOp(n))
	}
	for s := range spec.Services {
		tags := pickTags(rnd)
		for i := range spec.Instances {
			in := &Instance{
				Node:    m.nodeNames[(s*spec.Instances+i)%nodes],
				ID:      fmt.Sprintf("svc-%03d-%d", s, i),
				Service: fmt.Sprintf("svc-%03d", s),
				Port:    10000 + s,
				Tags:    tags,
				Meta:    map[string]string{"version": fmt.Sprintf("1.%d.0", rnd.IntN(5)), "team": fmt.Sprintf("t%d", s%3)},
				Status:  api.HealthPassing,
			}
			if rnd.IntN(2) == 0 {
				in.Tags = pickTags(rnd) // instances of a service need not agree
			}
			in.CheckID, in.Check = "check:"+in.ID, "check "+in.ID
			m.addInstance(in)
			ops = append(ops, instanceOps(in)...)
		}
	}
	for len(ops) > 0 {
		n := min(len(ops), 64)
		if err := Apply(ctx, c, ops[:n]); err != nil {
			return nil, fmt.Errorf("populate: %w", err)
		}
		ops = ops[n:]
	}
	return m, nil
}

// pickTags returns two or three distinct tags of the pool.
func pickTags(rnd *rand.Rand) []string {
	perm := rnd.Perm(len(tagPool))
	tags := make([]string, 2+rnd.IntN(2))
	for i := range tags {
		tags[i] = tagPool[perm[i]]
	}
	return tags
}

// loopback returns the k-th address of a loopback block of its own.
func loopback(block, k int) string {
	return fmt.Sprintf("127.%d.%d.%d", block, 1+k/250, 1+k%250)
}

// nodeOp writes n as the model has it.
func nodeOp(n *Node) *api.TxnOp {
	return &api.TxnOp{Node: &api.NodeTxnOp{Verb: api.NodeSet, Node: api.Node{
		ID: n.ID, Node: n.Name, Address: n.Address, Meta: n.Meta, TaggedAddresses: n.TaggedAddresses,
	}}}
}

// nodeCheckOp writes n's node check as the model has it.
func nodeCheckOp(n *Node) *api.TxnOp {
	return &api.TxnOp{Check: &api.CheckTxnOp{Verb: api.CheckSet, Check: api.HealthCheck{
		Node: n.Name, CheckID: nodeCheckID, Name: "churn node check", Status: n.Check,
	}}}
}

// serviceOp writes in's service definition as the model has it.
func serviceOp(in *Instance) *api.TxnOp {
	return &api.TxnOp{Service: &api.ServiceTxnOp{Verb: api.ServiceSet, Node: in.Node, Service: api.AgentService{
		ID: in.ID, Service: in.Service, Address: in.Address, Port: in.Port, Tags: in.Tags, Meta: in.Meta,
	}}}
}

// checkOp writes in's service check as the model has it.
func checkOp(in *Instance) *api.TxnOp {
	return &api.TxnOp{Check: &api.CheckTxnOp{Verb: api.CheckSet, Check: api.HealthCheck{
		Node: in.Node, CheckID: in.CheckID, Name: in.Check, Status: in.Status, ServiceID: in.ID, ServiceName: in.Service,
	}}}
}

// instanceOps writes in and its check.
func instanceOps(in *Instance) api.TxnOps {
	ops := api.TxnOps{serviceOp(in)}
	if in.CheckID != "" {
		ops = append(ops, checkOp(in))
	}
	return ops
}

// deleteOp removes in (and its checks).
func deleteOp(in *Instance) *api.TxnOp {
	return &api.TxnOp{Service: &api.ServiceTxnOp{Verb: api.ServiceDelete, Node: in.Node, Service: api.AgentService{ID: in.ID, Service: in.Service}}}
}
