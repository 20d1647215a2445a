package testconsul

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/consul/sdk/testutil"
	"github.com/stretchr/testify/require"

	"github.com/custom-sd/custom-sd/internal/testproc"
)

// Starting an agent.
//
// testutil.NewTestServerConfigT gives a new agent two seconds to answer
// /v1/status/leader, then interrupts it and reports "api unavailable". On a
// loaded two-core machine, with -race test binaries beside it, a Consul
// agent often needs longer than that just to open its HTTP port: the
// agent's own log then ends with "Caught: signal=interrupt" a moment after
// its first lines, and it exits with status 1 (or dies of the signal, if
// it came before Consul's handler was installed). Nothing about ports is
// wrong then. So the agent is started here, by hand, and each step of its
// start is waited for as long as it takes, up to readyTimeout, while its
// process is watched: an agent that exits fails at once, with its log.

const (
	// readyTimeout bounds each wait for a starting agent's next state: its
	// API answering as itself, a leader, a working management token, its
	// own catalog entry synced. It only bounds a hang; a healthy start
	// under load takes seconds.
	readyTimeout = 3 * time.Minute
	// startAttempts is how many sets of ports a start tries (see ports).
	startAttempts = 5
)

// ports reserves the agent's five ports (HTTP, HTTPS, Serf LAN, Serf WAN,
// server RPC) for the rest of the test (see ports.go). DNS and both gRPC
// ports are off: no test uses them, and each is one more port that could
// be taken.
func ports(t testing.TB) *testutil.TestPortConfig {
	p := reservePorts(t, 5)
	return &testutil.TestPortConfig{
		HTTP: p[0], HTTPS: p[1], SerfLan: p[2], SerfWan: p[3], Server: p[4],
		DNS: -1, GRPC: -1, GRPCTLS: -1,
	}
}

// errPortTaken is returned by Server.ready when the agent could not bind a
// port.
var errPortTaken = errors.New("a port is taken")

// newConfig returns a single-node server's configuration on new ports, with
// Connect and peering off.
func newConfig(t testing.TB) *testutil.TestServerConfig {
	id := nodeID(t)
	return &testutil.TestServerConfig{
		NodeName:          "node-" + id,
		NodeID:            id,
		DisableCheckpoint: true,
		Performance:       &testutil.TestPerformanceConfig{RaftMultiplier: 1},
		Bootstrap:         true,
		Server:            true,
		LogLevel:          "warn",
		Bind:              "127.0.0.1",
		Addresses:         &testutil.TestAddressConfig{},
		Ports:             ports(t),
		DataDir:           filepath.Join(t.TempDir(), "data"),
		SkipLeaveOnInt:    true,
	}
}

// nodeID returns a random UUID.
func nodeID(t testing.TB) string {
	var b [16]byte
	_, err := rand.Read(b[:])
	require.NoError(t, err)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// start starts an agent with newConfig's configuration as the configure
// funcs adjust it, and waits until it is ready (see Server.ready). After a
// port was taken, it starts again on new ports, up to startAttempts times.
func start(t testing.TB, configure []func(*testutil.TestServerConfig)) *Server {
	t.Helper()
	bin, err := Binary()
	require.NoError(t, err, "start consul")
	for attempt := 1; ; attempt++ {
		cfg := newConfig(t)
		for _, f := range configure {
			f(cfg)
		}
		s := &Server{bin: bin}
		s.configure(t, cfg)
		s.launch(t)
		err := s.ready()
		if err == nil {
			return s
		}
		if !errors.Is(err, errPortTaken) || attempt == startAttempts {
			t.Fatalf("start consul (attempt %d): %v", attempt, err)
		}
		t.Logf("start consul: %v; starting again on other ports", err)
	}
}

// configure writes cfg to a file and sets the addresses and clients that
// follow from it.
func (s *Server) configure(t testing.TB, cfg *testutil.TestServerConfig) {
	t.Helper()
	if cfg.ACL.Enabled && cfg.ACL.Tokens.AgentRecovery == "" {
		// The agent recovery token reads the agent's own endpoints before
		// any server has set up ACLs: it tells that the API is this agent's.
		cfg.ACL.Tokens.AgentRecovery = nodeID(t)
	}
	b, err := json.Marshal(cfg)
	require.NoError(t, err)
	s.configFile = filepath.Join(t.TempDir(), "config.json")
	require.NoError(t, os.WriteFile(s.configFile, b, 0o600))

	addr := func(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }
	s.TestServer = &testutil.TestServer{
		Config:     cfg,
		HTTPAddr:   addr(cfg.Ports.HTTP),
		HTTPSAddr:  addr(cfg.Ports.HTTPS),
		LANAddr:    addr(cfg.Ports.SerfLan),
		WANAddr:    addr(cfg.Ports.SerfWan),
		ServerAddr: addr(cfg.Ports.Server),
		HTTPClient: &http.Client{Timeout: time.Minute},
	}
	// With ACLs on, the tests' own client acts with the management token.
	s.Client, err = api.NewClient(&api.Config{Address: s.HTTPAddr, Token: cfg.ACL.Tokens.InitialManagement})
	require.NoError(t, err)
	token := cfg.ACL.Tokens.AgentRecovery
	if token == "" {
		token = cfg.ACL.Tokens.InitialManagement
	}
	// Every wait's request ends in time, even at an agent that hangs.
	s.probe, err = api.NewClient(&api.Config{Address: s.HTTPAddr, Token: token, HttpClient: &http.Client{Timeout: 10 * time.Second}})
	require.NoError(t, err)
}

// launch starts the agent's process; it is killed when the test ends.
func (s *Server) launch(t testing.TB) {
	t.Helper()
	args := append([]string{"agent", "-config-file", s.configFile}, s.Config.Args...)
	s.cmd = exec.Command(s.bin, args...)
	s.log, s.exited = testproc.Start(t, "consul "+s.Config.NodeName, s.cmd)
}

// ready waits until the agent has started: its HTTP API answers as this
// agent (and not another that holds the port), it knows a leader, the
// management token works (with ACLs), and its own node is in the catalog
// as the agent describes it. The leader registers a new agent's node
// without its tagged addresses and part of its meta; the agent's first
// sync adds them a moment later. A test that starts reading before that
// sync would see Consul's own entry change once, at a time nobody
// chose.
func (s *Server) ready() error {
	if err := s.await("the agent's API answers as this agent", func() bool {
		self, err := s.probe.Agent().Self()
		return err == nil && self["Config"]["NodeID"] == s.Config.NodeID
	}); err != nil {
		return err
	}
	if err := s.await("a leader", func() bool {
		leader, err := s.probe.Status().Leader()
		return err == nil && leader != ""
	}); err != nil {
		return err
	}
	if s.Config.ACL.Enabled && s.Config.ACL.Tokens.InitialManagement != "" {
		// A leader may lose leadership before it has stored the
		// management token; the next one stores it.
		if err := s.await("the management token works", func() bool {
			_, _, err := s.Client.ACL().TokenReadSelf(nil)
			return err == nil
		}); err != nil {
			return err
		}
	}
	return s.await("the agent's own node is synced to the catalog", s.synced)
}

// synced reports whether the catalog holds the agent's node as the agent
// describes itself: with its tagged addresses, its node meta and, on a
// server, the consul service.
func (s *Server) synced() bool {
	self, err := s.Client.Agent().Self()
	if err != nil {
		return false
	}
	node, _, err := s.Client.Catalog().Node(s.Config.NodeName, nil)
	if err != nil || node == nil || node.Node == nil || node.Node.TaggedAddresses["lan"] == "" {
		return false
	}
	for k, v := range self["Meta"] {
		if have, ok := node.Node.Meta[k]; !ok || have != v {
			return false
		}
	}
	_, consul := node.Services["consul"]
	return consul || !s.Config.Server
}

// await polls cond until it holds. It fails if the agent exits first,
// with errPortTaken if it could not bind a port, or if readyTimeout
// passes.
func (s *Server) await(what string, cond func() bool) error {
	deadline := time.Now().Add(readyTimeout)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		if cond() {
			return nil
		}
		select {
		case <-s.exited:
			log := s.log.String()
			if line := portTaken(log); line != "" {
				return fmt.Errorf("%w: %s", errPortTaken, line)
			}
			return fmt.Errorf("the agent exited (%v) before %s:\n%s", s.cmd.ProcessState, what, log)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %s after %s:\n%s", what, readyTimeout, s.log.String())
		}
	}
}

// portTaken returns the line of an agent's log that says it could not
// bind a port, or "".
func portTaken(log string) string {
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "address already in use") {
			return strings.TrimSpace(line)
		}
	}
	return ""
}
