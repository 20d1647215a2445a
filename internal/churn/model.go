// Package churn changes a Consul catalog at random, every kind of change
// mixed, and compares a file_sd file with what Consul says, target by
// target and label by label. The end-to-end convergence test and the bench
// share it.
//
// A Model is what the churn knows of the catalog it changes: read from
// Consul (Load) or written by Populate. A Generator, seeded, draws changes
// from the model and keeps the model in step; Apply writes one to Consul
// as a transaction, and Run writes many at a rate. Expected builds the
// targets Prometheus's consul_sd would see from Consul's own answers, with
// no code of sd/consul; ReadFile reads those of a file_sd file; Diff says
// where they differ.
package churn

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/hashicorp/consul/api"
)

// nodeCheckID is the node check the churn flips.
const nodeCheckID = "churn-node"

// Node is a node the churn may change.
type Node struct {
	Name            string
	ID              string
	Address         string
	Meta            map[string]string
	TaggedAddresses map[string]string
	Check           string // the status of the node check the churn sets; "" while it has none
}

// Instance is a service instance the churn may change.
type Instance struct {
	Node    string
	ID      string
	Service string
	Address string
	Port    int
	Tags    []string
	Meta    map[string]string
	CheckID string // its service check; "" without one
	Check   string // that check's name
	Status  string // and status
}

// Model is the part of the catalog the churn changes: every instance but
// those on the agents' own nodes (the nodes of the consul service), which
// the agents keep in sync themselves.
type Model struct {
	nodes     map[string]*Node
	nodeNames []string               // sorted
	services  map[string][]*Instance // by service name
	names     []string               // service names, sorted
}

func newModel() *Model {
	return &Model{nodes: map[string]*Node{}, services: map[string][]*Instance{}}
}

// Services returns how many services the model holds.
func (m *Model) Services() int { return len(m.names) }

// addNode adds n, or returns the node of that name.
func (m *Model) addNode(n *Node) *Node {
	if old := m.nodes[n.Name]; old != nil {
		return old
	}
	m.nodes[n.Name] = n
	i, _ := slices.BinarySearch(m.nodeNames, n.Name)
	m.nodeNames = slices.Insert(m.nodeNames, i, n.Name)
	return n
}

// addInstance adds in to its service.
func (m *Model) addInstance(in *Instance) {
	if _, ok := m.services[in.Service]; !ok {
		i, _ := slices.BinarySearch(m.names, in.Service)
		m.names = slices.Insert(m.names, i, in.Service)
	}
	m.services[in.Service] = append(m.services[in.Service], in)
}

// removeInstance removes in from its service, and the service with its
// last instance.
func (m *Model) removeInstance(in *Instance) {
	list := slices.DeleteFunc(m.services[in.Service], func(x *Instance) bool { return x == in })
	if len(list) > 0 {
		m.services[in.Service] = list
		return
	}
	delete(m.services, in.Service)
	if i, ok := slices.BinarySearch(m.names, in.Service); ok {
		m.names = slices.Delete(m.names, i, i+1)
	}
}

// servicesOn returns the services with an instance on node, sorted.
func (m *Model) servicesOn(node string) []string {
	var out []string
	for _, name := range m.names {
		for _, in := range m.services[name] {
			if in.Node == node {
				out = append(out, name)
				break
			}
		}
	}
	return out
}

// Load reads the model from Consul: every service's instances with their
// checks, conns reads at a time.
func Load(ctx context.Context, c *api.Client, conns int) (*Model, error) {
	names, _, err := c.Catalog().Services((&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	entries, err := readAll(ctx, c, slices.Sorted(maps.Keys(names)), conns)
	if err != nil {
		return nil, err
	}
	agents := map[string]bool{}
	for _, e := range entries["consul"] {
		agents[e.Node.Node] = true
	}
	m := newModel()
	for _, name := range slices.Sorted(maps.Keys(entries)) {
		for _, e := range entries[name] {
			if name == "consul" || agents[e.Node.Node] {
				continue
			}
			m.load(e)
		}
	}
	return m, nil
}

// load adds one instance as Consul gave it.
func (m *Model) load(e *api.ServiceEntry) {
	n := m.addNode(&Node{Name: e.Node.Node, ID: e.Node.ID, Address: e.Node.Address,
		Meta: maps.Clone(e.Node.Meta), TaggedAddresses: maps.Clone(e.Node.TaggedAddresses)})
	s := e.Service
	in := &Instance{Node: n.Name, ID: s.ID, Service: s.Service, Address: s.Address, Port: s.Port,
		Tags: slices.Clone(s.Tags), Meta: maps.Clone(s.Meta)}
	for _, c := range e.Checks {
		switch {
		case c.ServiceID == s.ID && in.CheckID == "":
			in.CheckID, in.Check, in.Status = c.CheckID, c.Name, c.Status
		case c.ServiceID == "" && c.CheckID == nodeCheckID:
			n.Check = c.Status
		}
	}
	m.addInstance(in)
}

// readAll reads the instances of every service in names, conns at a time.
func readAll(ctx context.Context, c *api.Client, names []string, conns int) (map[string][]*api.ServiceEntry, error) {
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		firstErr error
	)
	out := make(map[string][]*api.ServiceEntry, len(names))
	sem := make(chan struct{}, max(conns, 1))
	for _, name := range names {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			entries, _, err := c.Health().Service(name, "", false, (&api.QueryOptions{}).WithContext(ctx))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("read %s: %w", name, err)
				}
				return
			}
			if len(entries) > 0 {
				out[name] = entries
			}
		})
	}
	wg.Wait()
	return out, firstErr
}
