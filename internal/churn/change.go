package churn

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"

	"github.com/hashicorp/consul/api"
)

// Kind is a kind of catalog change.
type Kind int

// The kinds of change. Those marked hidden keep what Consul's catalog
// summary shows of the service (its instance count, nodes and union of
// tags): only a read of the service itself sees them.
const (
	Register    Kind = iota // an instance of a service comes
	Deregister              // an instance goes; its service keeps others
	Health                  // an instance's check changes status
	TagsInPlace             // an instance's tags are rewritten; its service's union of tags stays (hidden)
	NewTag                  // an instance gains a tag no instance of its service had
	Meta                    // an instance's service meta is rewritten (hidden)
	Port                    // an instance's port is rewritten (hidden)
	Address                 // an instance's service address is set or cleared (hidden)
	NodeMeta                // a node's meta is rewritten: every instance on it
	NodeCheck               // a node check changes status: every instance on it
	ServiceUp               // a new service appears with one to three instances
	ServiceDown             // a service vanishes with every instance
	kinds
)

var kindNames = [kinds]string{"register", "deregister", "health", "tags in place", "new tag", "meta", "port",
	"address", "node meta", "node check", "service up", "service down"}

func (k Kind) String() string {
	if k < 0 || k >= kinds {
		return fmt.Sprintf("Kind(%d)", int(k))
	}
	return kindNames[k]
}

// Change is one transaction of the churn.
type Change struct {
	Kind     Kind
	Ops      api.TxnOps
	Services []string // the services whose targets it changes
}

// Node reports whether the change is to a node, and so changes the targets
// of every service on it, not a service it writes.
func (k Kind) Node() bool { return k == NodeMeta || k == NodeCheck }

// statuses are the check states a flip moves between.
var statuses = []string{api.HealthPassing, api.HealthWarning, api.HealthCritical}

// Generator draws changes of every kind at random from a model, and keeps
// the model in step with them: each change assumes the ones before it
// were applied.
type Generator struct {
	m   *Model
	rnd *rand.Rand
	n   int // changes drawn, for fresh names and values
}

// NewGenerator returns a generator of changes to m, seeded with seed.
func NewGenerator(m *Model, seed uint64) *Generator {
	return &Generator{m: m, rnd: rand.New(rand.NewPCG(seed, 0xc4a2))}
}

// Next draws a change of a random kind, uniformly, among the kinds the
// model allows.
func (g *Generator) Next() Change {
	for {
		k := Kind(g.rnd.IntN(int(kinds)))
		if ch, ok := g.make(k); ok {
			g.n++
			ch.Kind = k
			return ch
		}
	}
}

// make draws a change of kind k, and reports false if the model allows
// none (and is then unchanged).
func (g *Generator) make(k Kind) (Change, bool) {
	switch k {
	case Register:
		return g.register()
	case Deregister:
		return g.deregister()
	case Health:
		in := g.instance()
		if in == nil || in.CheckID == "" {
			return Change{}, false
		}
		in.Status = g.other(statuses, in.Status)
		return Change{Ops: api.TxnOps{checkOp(in)}, Services: []string{in.Service}}, true
	case TagsInPlace:
		return g.tagsInPlace()
	case NewTag:
		return g.rewrite(func(in *Instance) bool {
			in.Tags = append(slices.Clone(in.Tags), fmt.Sprintf("churn-%d", g.n))
			return true
		})
	case Meta:
		return g.rewrite(func(in *Instance) bool {
			in.Meta = maps.Clone(in.Meta)
			if in.Meta == nil {
				in.Meta = map[string]string{}
			}
			in.Meta["version"] = fmt.Sprintf("1.2.%d", g.n)
			if g.rnd.IntN(3) == 0 {
				if _, ok := in.Meta["churn"]; ok {
					delete(in.Meta, "churn")
				} else {
					in.Meta["churn"] = "yes"
				}
			}
			return true
		})
	case Port:
		return g.rewrite(func(in *Instance) bool {
			in.Port = 20000 + (in.Port+1+g.rnd.IntN(9999))%10000
			return true
		})
	case Address:
		return g.rewrite(func(in *Instance) bool {
			if in.Address != "" {
				in.Address = ""
			} else {
				in.Address = loopback(2, g.rnd.IntN(10000))
			}
			return true
		})
	case NodeMeta:
		n := g.instanceNode()
		if n == nil {
			return Change{}, false
		}
		n.Meta = maps.Clone(n.Meta)
		if n.Meta == nil {
			n.Meta = map[string]string{}
		}
		n.Meta["rack"] = g.other([]string{"r0", "r1", "r2", "r3", "r4", "r5"}, n.Meta["rack"])
		return Change{Ops: api.TxnOps{nodeOp(n)}, Services: g.m.servicesOn(n.Name)}, true
	case NodeCheck:
		n := g.instanceNode()
		if n == nil {
			return Change{}, false
		}
		n.Check = g.other(statuses, n.Check)
		return Change{Ops: api.TxnOps{nodeCheckOp(n)}, Services: g.m.servicesOn(n.Name)}, true
	case ServiceUp:
		return g.serviceUp()
	case ServiceDown:
		if len(g.m.names) < 10 {
			return Change{}, false // keep a catalog to change
		}
		name := g.m.names[g.rnd.IntN(len(g.m.names))]
		var ops api.TxnOps
		for _, in := range slices.Clone(g.m.services[name]) {
			ops = append(ops, deleteOp(in))
			g.m.removeInstance(in)
		}
		return Change{Ops: ops, Services: []string{name}}, true
	}
	return Change{}, false
}

// instance returns a random instance, or nil.
func (g *Generator) instance() *Instance {
	if len(g.m.names) == 0 {
		return nil
	}
	list := g.m.services[g.m.names[g.rnd.IntN(len(g.m.names))]]
	return list[g.rnd.IntN(len(list))]
}

// node returns a random node, or nil.
func (g *Generator) node() *Node {
	if len(g.m.nodeNames) == 0 {
		return nil
	}
	return g.m.nodes[g.m.nodeNames[g.rnd.IntN(len(g.m.nodeNames))]]
}

// instanceNode returns the node of a random instance, or nil.
func (g *Generator) instanceNode() *Node {
	if in := g.instance(); in != nil {
		return g.m.nodes[in.Node]
	}
	return nil
}

// other returns a value of values other than cur.
func (g *Generator) other(values []string, cur string) string {
	for {
		if v := values[g.rnd.IntN(len(values))]; v != cur {
			return v
		}
	}
}

// rewrite rewrites a random instance's service definition in place with f.
func (g *Generator) rewrite(f func(*Instance) bool) (Change, bool) {
	in := g.instance()
	if in == nil || !f(in) {
		return Change{}, false
	}
	return Change{Ops: api.TxnOps{serviceOp(in)}, Services: []string{in.Service}}, true
}

// tagsInPlace rewrites a random instance's tags so that its service's union
// of tags stays as it was: it drops a tag another instance carries, takes
// one of another instance's, or puts its own in another order.
func (g *Generator) tagsInPlace() (Change, bool) {
	return g.rewrite(func(in *Instance) bool {
		union := map[string]int{}
		for _, o := range g.m.services[in.Service] {
			for _, t := range o.Tags {
				union[t]++
			}
		}
		var options []func()
		for i, t := range in.Tags {
			if union[t] > 1 {
				options = append(options, func() { in.Tags = slices.Delete(slices.Clone(in.Tags), i, i+1) })
			}
		}
		for _, t := range slices.Sorted(maps.Keys(union)) {
			if !slices.Contains(in.Tags, t) {
				options = append(options, func() { in.Tags = append(slices.Clone(in.Tags), t) })
			}
		}
		if len(in.Tags) > 1 {
			options = append(options, func() { in.Tags = append(slices.Clone(in.Tags[1:]), in.Tags[0]) })
		}
		if len(options) == 0 {
			return false
		}
		options[g.rnd.IntN(len(options))]()
		return true
	})
}

// register adds an instance to a random service, on a node that has none
// of it, like its siblings.
func (g *Generator) register() (Change, bool) {
	sib := g.instance()
	if sib == nil {
		return Change{}, false
	}
	n := g.node()
	for _, o := range g.m.services[sib.Service] {
		if o.Node == n.Name {
			return Change{}, false
		}
	}
	in := &Instance{Node: n.Name, ID: fmt.Sprintf("%s-c%d", sib.Service, g.n), Service: sib.Service,
		Address: sib.Address, Port: sib.Port, Tags: slices.Clone(sib.Tags), Meta: maps.Clone(sib.Meta),
		Status: g.other(statuses, "")}
	in.CheckID, in.Check = "churn:"+in.ID, "churn check "+in.ID
	g.m.addInstance(in)
	return Change{Ops: instanceOps(in), Services: []string{in.Service}}, true
}

// deregister removes a random instance of a service that keeps others.
func (g *Generator) deregister() (Change, bool) {
	in := g.instance()
	if in == nil || len(g.m.services[in.Service]) < 2 {
		return Change{}, false
	}
	g.m.removeInstance(in)
	return Change{Ops: api.TxnOps{deleteOp(in)}, Services: []string{in.Service}}, true
}

// serviceUp adds a new service with one to three instances on distinct
// nodes.
func (g *Generator) serviceUp() (Change, bool) {
	if len(g.m.nodeNames) == 0 {
		return Change{}, false
	}
	name := fmt.Sprintf("churn-svc-%d", g.n)
	tags := pickTags(g.rnd)
	var ops api.TxnOps
	for i, k := range g.rnd.Perm(len(g.m.nodeNames))[:min(1+g.rnd.IntN(3), len(g.m.nodeNames))] {
		in := &Instance{Node: g.m.nodeNames[k], ID: fmt.Sprintf("%s-%d", name, i), Service: name,
			Port: 30000 + g.n%10000, Tags: tags, Meta: map[string]string{"version": "0.1.0"}, Status: api.HealthPassing}
		in.CheckID, in.Check = "churn:"+in.ID, "churn check "+in.ID
		g.m.addInstance(in)
		ops = append(ops, instanceOps(in)...)
	}
	return Change{Ops: ops, Services: []string{name}}, true
}
