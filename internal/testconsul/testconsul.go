// Package testconsul starts real Consul agents for tests.
//
// The agent binary is the pinned Consul server that `make consul` builds from
// tools/consul into the cache; Binary finds it (CUSTOM_SD_CONSUL, then the
// cache, then PATH). A missing binary fails each test that needs an agent,
// with the reason: these tests never skip. Tests that need none run without
// it.
//
// Agents get ports that no other test process is handed at the same time,
// and a start waits for as long as a loaded machine needs (agent.go says
// how and why).
package testconsul

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/consul/sdk/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/custom-sd/custom-sd/internal/testproc"
)

// Version is the Consul server version the tests run against. Keep it in
// step with tools/consul/go.mod and the Makefile.
const Version = "v1.20.1"

// Binary returns the path of the consul binary the tests use, or an error
// that says how to build it.
func Binary() (string, error) {
	if p := os.Getenv("CUSTOM_SD_CONSUL"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("CUSTOM_SD_CONSUL: %w", err)
		}
		return p, nil
	}
	if dir, err := os.UserCacheDir(); err == nil {
		p := filepath.Join(dir, "custom-sd", "consul-"+Version, "consul")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("consul"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("no consul binary: run `make consul` (builds Consul %s into the cache) or set CUSTOM_SD_CONSUL", Version)
}

// Main is a TestMain body: it runs the tests, fails if they leaked
// goroutines and exits. It never refuses to run: without a consul binary,
// the tests that start an agent fail and the others pass.
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run runs the tests and then checks for leaked goroutines, and returns
// the exit code, so that a TestMain can clean up before it exits.
func Run(m *testing.M) int {
	code := m.Run()
	if code != 0 {
		return code
	}
	if err := goleak.Find(); err != nil {
		fmt.Fprintf(os.Stderr, "goleak: Errors on successful test run: %v\n", err)
		return 1
	}
	return 0
}

// Server is a running Consul agent: a single-node server, or a client
// agent (StartClient).
//
// The embedded TestServer holds its configuration and addresses, and
// testutil's helpers that work over HTTP (JoinLAN, SetKV, ...). The agent
// is this package's own process, not testutil's: stop it with Halt.
type Server struct {
	*testutil.TestServer
	Client *api.Client

	bin        string
	configFile string
	probe      *api.Client // for the waits: short timeouts, a token that works early
	cmd        *exec.Cmd
	log        *testproc.Buffer
	exited     <-chan struct{}
}

// Start starts an agent on reserved loopback ports (see ports) and waits
// until it is ready: it answers as itself, knows a leader, and its own
// node in the catalog is synced, so that nothing about Consul's own entry
// changes after Start returns. It stops when the test ends. configure may
// adjust the agent's configuration.
//
// With ACLs, set ACL.Tokens.InitialManagement: Server.Client uses it.
func Start(t testing.TB, configure ...func(*testutil.TestServerConfig)) *Server {
	t.Helper()
	return start(t, configure)
}

// Halt stops the agent now, as a crash or an outage would look to clients:
// it is killed. Its ports stay reserved for the test, and Restart starts
// it again on them.
func (s *Server) Halt(t testing.TB) {
	t.Helper()
	_ = s.Stop()
}

// Stop kills the agent and waits until it has exited; it never fails. It
// is Halt for callers of testutil's TestServer.Stop.
func (s *Server) Stop() error {
	// An agent that has exited already makes Kill fail; it is stopped.
	_ = s.cmd.Process.Kill()
	<-s.exited
	return nil
}

// Restart starts a halted agent again with its configuration, data
// directory and ports, and waits until it is ready, as Start does. It
// fails if a port was taken meanwhile: clients know the agent by its
// address.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	select {
	case <-s.exited:
	default:
		t.Fatalf("restart consul: the agent is running; Halt it first")
	}
	s.launch(t)
	require.NoError(t, s.ready(), "restart consul")
}

// WithACLs enables ACLs with a default-deny policy and the given management
// token.
func WithACLs(managementToken string) func(*testutil.TestServerConfig) {
	return func(c *testutil.TestServerConfig) {
		c.ACL.Enabled = true
		c.ACL.DefaultPolicy = "deny"
		c.ACL.Tokens.InitialManagement = managementToken
		c.ACL.Tokens.Agent = managementToken
	}
}

// Instance describes a service instance to register in the catalog.
type Instance struct {
	Node     string            // node name; "" means "node-1"
	NodeMeta map[string]string // node metadata
	Service  string
	ID       string // "" means Service
	Address  string // service address; "" leaves it empty (the node's is used)
	Port     int
	Tags     []string
	Meta     map[string]string
	Status   string // health of the service check; "" registers no check

	// NodeAddress is the node's address; "" means 127.0.0.1.
	NodeAddress string
	// NodeTaggedAddresses are the node's tagged addresses; nil means
	// lan: NodeAddress, an empty map none.
	NodeTaggedAddresses map[string]string
	// Checks are further checks, registered as given (Node defaults to the
	// instance's node): service checks name the ServiceID, node checks
	// leave it empty.
	Checks api.HealthChecks
}

// Register writes the instance to the catalog, as an external service the
// agent does not manage. The node is registered with it: its address, meta
// and tagged addresses are replaced by the instance's, so instances on one
// node should describe it alike.
func (s *Server) Register(t testing.TB, in Instance) {
	t.Helper()
	node := in.Node
	if node == "" {
		node = "node-1"
	}
	id := in.ID
	if id == "" {
		id = in.Service
	}
	addr := in.NodeAddress
	if addr == "" {
		addr = "127.0.0.1"
	}
	tagged := in.NodeTaggedAddresses
	if tagged == nil {
		tagged = map[string]string{"lan": addr}
	}
	reg := &api.CatalogRegistration{
		Node:            node,
		Address:         addr,
		NodeMeta:        in.NodeMeta,
		TaggedAddresses: tagged,
		Service: &api.AgentService{
			ID: id, Service: in.Service, Address: in.Address, Port: in.Port, Tags: in.Tags, Meta: in.Meta,
		},
	}
	if in.Status != "" {
		reg.Checks = api.HealthChecks{{
			Node: node, CheckID: "check:" + id, Name: "check " + id, Status: in.Status, ServiceID: id,
		}}
	}
	for _, c := range in.Checks {
		c := *c
		if c.Node == "" {
			c.Node = node
		}
		reg.Checks = append(reg.Checks, &c)
	}
	_, err := s.Client.Catalog().Register(reg, nil)
	require.NoError(t, err, "register %s/%s", node, id)
}

// Deregister removes one service instance from the catalog.
func (s *Server) Deregister(t testing.TB, node, id string) {
	t.Helper()
	if node == "" {
		node = "node-1"
	}
	_, err := s.Client.Catalog().Deregister(&api.CatalogDeregistration{Node: node, ServiceID: id}, nil)
	require.NoError(t, err, "deregister %s/%s", node, id)
}

// Eventually polls cond every 10ms until it holds or a minute passes. It
// is for waiting on effects that arrive asynchronously; no test asserts on
// timing. The minute only bounds a wait that will never end: an effect
// that takes milliseconds on an idle machine can take seconds on a loaded
// one.
func Eventually(t testing.TB, cond func() bool, msgAndArgs ...any) {
	t.Helper()
	require.Eventually(t, cond, time.Minute, 10*time.Millisecond, msgAndArgs...)
}

// StartFederation starts two single-server datacenters, dc1 and dc2, joined
// over the WAN on loopback, and waits until dc1's agent lists both.
func StartFederation(t testing.TB) (dc1, dc2 *Server) {
	t.Helper()
	dc1 = Start(t, func(c *testutil.TestServerConfig) { c.Datacenter = "dc1" })
	dc2 = Start(t, func(c *testutil.TestServerConfig) { c.Datacenter = "dc2" })
	require.NoError(t, dc2.Client.Agent().Join(dc1.WANAddr, true), "join dc2 to dc1 over the WAN")
	require.NoError(t, dc1.await("dc1 knows dc2", func() bool {
		dcs, err := dc1.Client.Catalog().Datacenters()
		return err == nil && len(dcs) == 2
	}))
	return dc1, dc2
}

// StartClient starts a client agent joined to srv's LAN pool: custom-sd's
// usual production shape, where it reads through a local client agent
// whose blocking health queries the streaming backend serves. The client
// is ready, as Start's agents are, once it knows srv's leader and its own
// node is synced; with ACLs on srv, the client uses srv's management token
// as its agent token and for Client.
func StartClient(t testing.TB, srv *Server, configure ...func(*testutil.TestServerConfig)) *Server {
	t.Helper()
	join := func(c *testutil.TestServerConfig) {
		c.Server, c.Bootstrap = false, false
		c.Datacenter = srv.Config.Datacenter
		c.RetryJoin = []string{srv.LANAddr}
		if srv.Config.ACL.Enabled {
			c.ACL.Enabled = true
			c.ACL.DefaultPolicy = srv.Config.ACL.DefaultPolicy
			c.ACL.Tokens.Agent = srv.Config.ACL.Tokens.InitialManagement
			c.ACL.Tokens.InitialManagement = srv.Config.ACL.Tokens.InitialManagement
		}
	}
	return Start(t, append([]func(*testutil.TestServerConfig){join}, configure...)...)
}
