package consul

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
)

// fakeConsul answers the few endpoints the discoverer uses, with Consul's
// blocking-query semantics, entirely in memory so tests can run inside a
// synctest bubble. It exists for faults a real agent cannot produce on
// demand; behaviour against a real agent is tested in integration_test.go.
type fakeConsul struct {
	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every change
	raft     uint64        // the last write's index
	index    uint64        // the catalog's (and the nodes') index: the last set
	checks   uint64        // the checks' index: the last setStatus
	services map[string]*fakeService
	fail     map[string]int           // path → status to answer with
	gates    map[string]chan struct{} // path → answers wait until it is closed
	requests map[string]int           // path → requests seen
	deaf     map[string]staleAnswer   // path → what its long polls answer, whatever changes

	noSummary bool // answer 404 for the catalog summary, as an agent without one
	noDump    bool // answer 404 for the node dump
}

// staleAnswer is what a deaf long poll answers: the state when it went
// deaf.
type staleAnswer struct {
	body   any
	index  uint64
	served int // long polls answered so
}

type fakeService struct {
	index   uint64
	entries []*api.ServiceEntry
}

func newFakeConsul() *fakeConsul {
	return &fakeConsul{
		changed:  make(chan struct{}),
		index:    1,
		services: map[string]*fakeService{},
		fail:     map[string]int{},
		gates:    map[string]chan struct{}{},
		requests: map[string]int{},
		deaf:     map[string]staleAnswer{},
	}
}

// fakeWithServices returns a fake with services svc0… each with one instance
// svcN-a, all at index (0: one write each).
func fakeWithServices(n int, index uint64) *fakeConsul {
	f := newFakeConsul()
	for i := range n {
		f.set(fmt.Sprintf("svc%d", i), index, fmt.Sprintf("svc%d-a", i))
	}
	return f
}

// set replaces a service's instances (nil removes the service) and moves the
// index forward, or to index when it is not 0 (to make it go backwards).
func (f *fakeConsul) set(name string, index uint64, instances ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if index == 0 {
		index = f.raft + 1
	}
	f.raft, f.index = index, index
	if instances == nil {
		delete(f.services, name)
	} else {
		s := &fakeService{index: index}
		for _, id := range instances {
			s.entries = append(s.entries, &api.ServiceEntry{
				Node:    &api.Node{Node: "n1", Address: "127.0.0.1", Datacenter: "dc1"},
				Service: &api.AgentService{ID: id, Service: name, Port: 80, ModifyIndex: index},
			})
		}
		f.services[name] = s
	}
	close(f.changed)
	f.changed = make(chan struct{})
}

// setEntries replaces a service's instances with entries and moves the
// index forward.
func (f *fakeConsul) setEntries(name string, entries ...*api.ServiceEntry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.raft++
	f.index = f.raft
	for i, e := range entries {
		svc := *e.Service
		svc.ModifyIndex = f.raft
		entries[i] = &api.ServiceEntry{Node: e.Node, Service: &svc, Checks: e.Checks}
	}
	f.services[name] = &fakeService{index: f.raft, entries: entries}
	close(f.changed)
	f.changed = make(chan struct{})
}

// setStatus sets the health check of every instance of a service and moves
// the index forward.
func (f *fakeConsul) setStatus(name, status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.raft++
	f.checks = f.raft
	svc := f.services[name]
	svc.index = f.raft
	entries := make([]*api.ServiceEntry, len(svc.entries))
	for i, e := range svc.entries {
		entries[i] = &api.ServiceEntry{Node: e.Node, Service: e.Service, Checks: api.HealthChecks{{
			Node: e.Node.Node, CheckID: "check:" + e.Service.ID, Status: status,
			ServiceID: e.Service.ID, ServiceName: name,
		}}}
	}
	svc.entries = entries
	close(f.changed)
	f.changed = make(chan struct{})
}

// gate holds answers on path until the returned function is called; the
// answer then reflects the state at that moment.
func (f *fakeConsul) gate(path string) (release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan struct{})
	f.gates[path] = ch
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.gates, path)
		close(ch)
	}
}

// deafen makes the long polls on path miss every change from now on (an
// agent whose view of the service went stale): they answer, at their wait
// time, with the state at this moment. Reads without an index still answer
// with the current state.
func (f *fakeConsul) deafen(path string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	body, index, _ := f.current(path)
	f.deaf[path] = staleAnswer{body: body, index: index}
}

// deafServed reports how many long polls on path were answered deaf.
func (f *fakeConsul) deafServed(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.deaf[path].served
}

// setFail makes path answer with status (0 to heal).
func (f *fakeConsul) setFail(path string, status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[path] = status
}

func (f *fakeConsul) count(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[path]
}

// current returns the body and index of path; ok is false for unknown paths.
func (f *fakeConsul) current(path string) (body any, index uint64, ok bool) {
	switch {
	case path == "/v1/catalog/services":
		out := map[string][]string{}
		for name, svc := range f.services {
			tags := []string{}
			for _, e := range svc.entries {
				for _, t := range e.Service.Tags {
					if !slices.Contains(tags, t) {
						tags = append(tags, t)
					}
				}
			}
			out[name] = tags
		}
		return out, f.index, true
	case strings.HasPrefix(path, "/v1/health/service/"):
		s := f.services[strings.TrimPrefix(path, "/v1/health/service/")]
		if s == nil {
			return []*api.ServiceEntry{}, f.index, true
		}
		return s.entries, s.index, true
	case path == "/v1/health/state/any": // the doorbell's filter: not passing
		checks := []*api.HealthCheck{}
		for _, svc := range f.services {
			for _, e := range svc.entries {
				for _, c := range e.Checks {
					if c.Status != api.HealthPassing {
						checks = append(checks, c)
					}
				}
			}
		}
		return checks, max(f.checks, 1), true
	case path == "/v1/catalog/nodes":
		nodes := []*api.Node{}
		seen := map[string]bool{}
		for _, svc := range f.services {
			for _, e := range svc.entries {
				if !seen[e.Node.Node] {
					seen[e.Node.Node] = true
					nodes = append(nodes, e.Node)
				}
			}
		}
		return nodes, f.index, true
	case path == dumpPath && !f.noDump:
		byNode := map[string]*dumpNode{}
		dump := []*dumpNode{}
		for _, svc := range f.services {
			for _, e := range svc.entries {
				n := byNode[e.Node.Node]
				if n == nil {
					n = &dumpNode{Node: e.Node.Node}
					byNode[n.Node] = n
					dump = append(dump, n)
				}
				n.Services = append(n.Services, dumpService{ID: e.Service.ID, Service: e.Service.Service, ModifyIndex: e.Service.ModifyIndex})
			}
		}
		return dump, f.raft, true
	case path == summaryPath && !f.noSummary:
		rows := []summaryRow{}
		for name, svc := range f.services {
			row := summaryRow{Name: name, InstanceCount: len(svc.entries)}
			for _, e := range svc.entries {
				row.Nodes = append(row.Nodes, e.Node.Node)
				row.Tags = append(row.Tags, e.Service.Tags...)
			}
			rows = append(rows, row)
		}
		return rows, f.raft, true
	}
	return nil, 0, false
}

func (f *fakeConsul) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	minIndex, _ := strconv.ParseUint(r.URL.Query().Get("index"), 10, 64)
	wait, _ := time.ParseDuration(r.URL.Query().Get("wait"))
	deadline := time.After(wait)

	f.mu.Lock()
	f.requests[path]++
	for {
		if stale, ok := f.deaf[path]; ok && minIndex > 0 {
			stale.served++
			f.deaf[path] = stale
			f.mu.Unlock()
			select {
			case <-r.Context().Done():
			case <-deadline:
				f.reply(w, stale.body, stale.index)
			}
			return
		}
		if code := f.fail[path]; code != 0 {
			f.mu.Unlock()
			http.Error(w, "injected failure", code)
			return
		}
		body, index, ok := f.current(path)
		if !ok {
			f.mu.Unlock()
			http.NotFound(w, r)
			return
		}
		if minIndex == 0 || index > minIndex {
			if g := f.gates[path]; g != nil {
				f.mu.Unlock()
				select {
				case <-g:
				case <-r.Context().Done():
					return
				}
				f.mu.Lock()
				continue
			}
			f.mu.Unlock()
			f.reply(w, body, index)
			return
		}
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-r.Context().Done():
			return
		case <-deadline:
			f.mu.Lock()
			body, index, _ := f.current(path)
			f.mu.Unlock()
			f.reply(w, body, index)
			return
		case <-ch:
		}
		f.mu.Lock()
	}
}

func (f *fakeConsul) reply(w http.ResponseWriter, body any, index uint64) {
	w.Header().Set("X-Consul-Index", strconv.FormatUint(index, 10))
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(body)
}

// inMemory serves requests with a handler, without a network, so that the
// client works inside a synctest bubble.
type inMemory struct{ h http.Handler }

func (m inMemory) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.h.ServeHTTP(rec, req)
	}()
	select {
	case <-done:
		return rec.Result(), nil
	case <-req.Context().Done():
		<-done
		return nil, req.Context().Err()
	}
}

// dumpNode is a node of the fake's node dump.
type dumpNode struct {
	Node     string
	Services []dumpService
}
