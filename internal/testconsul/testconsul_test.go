package testconsul

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/consul/sdk/testutil"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { Main(m) }

// TestStartClient: a client agent joined to a server serves the server's
// catalog, and a blocking health query through it, served by the
// streaming backend, sees a change made on the server.
func TestStartClient(t *testing.T) {
	t.Parallel()
	srv := Start(t)
	client := StartClient(t, srv)
	require.NotEqual(t, srv.HTTPAddr, client.HTTPAddr)
	self, err := client.Client.Agent().Self()
	require.NoError(t, err)
	require.Equal(t, false, self["Config"]["Server"], "the client agent is not a server")

	srv.Register(t, Instance{Service: "web", ID: "web-1", Port: 8080})
	var index uint64
	Eventually(t, func() bool {
		entries, meta, err := client.Client.Health().Service("web", "", false, nil)
		if err != nil || len(entries) != 1 {
			return false
		}
		index = meta.LastIndex
		return true
	}, "the client agent serves the server's catalog")
	srv.Register(t, Instance{Service: "web", ID: "web-2", Port: 8081})
	Eventually(t, func() bool {
		entries, meta, err := client.Client.Health().Service("web", "", false, &api.QueryOptions{WaitIndex: index})
		return err == nil && len(entries) == 2 && meta.QueryBackend == api.QueryBackendStreaming
	}, "a blocking query through the client agent sees the change, from the streaming backend")
}

// TestStartWaitsForTheAgentsOwnEntry: once Start returns, Consul's own
// entry is final: it has the tagged addresses and meta the agent's first
// sync adds, and later writes leave it alone.
func TestStartWaitsForTheAgentsOwnEntry(t *testing.T) {
	t.Parallel()
	srv := Start(t)
	node, _, err := srv.Client.Catalog().Node(srv.Config.NodeName, nil)
	require.NoError(t, err)
	require.NotEmpty(t, node.Node.TaggedAddresses["lan"], "synced: tagged addresses")
	require.Contains(t, node.Node.Meta, "consul-network-segment", "synced: the agent's node meta")
	require.Contains(t, node.Services, "consul")

	// A write elsewhere moves the catalog on; the agent's own entry stays.
	srv.Register(t, Instance{Service: "web", Port: 8080})
	services, meta, err := srv.Client.Catalog().Services(nil)
	require.NoError(t, err)
	require.Contains(t, services, "web")
	require.Greater(t, meta.LastIndex, node.Node.ModifyIndex, "the catalog moved on")
	again, _, err := srv.Client.Catalog().Node(srv.Config.NodeName, nil)
	require.NoError(t, err)
	require.Equal(t, node.Node.ModifyIndex, again.Node.ModifyIndex, "the agent's node was not written again")
	require.Equal(t, node.Services["consul"].ModifyIndex, again.Services["consul"].ModifyIndex)
}

// TestRestart: a halted agent starts again on its ports with its data.
func TestRestart(t *testing.T) {
	t.Parallel()
	srv := Start(t)
	srv.Register(t, Instance{Service: "web", Port: 8080})
	srv.Halt(t)
	_, err := srv.Client.Status().Leader()
	require.Error(t, err, "a halted agent does not answer")
	srv.Restart(t)
	services, _, err := srv.Client.Catalog().Services(nil)
	require.NoError(t, err)
	require.Contains(t, services, "web", "the catalog survived")
}

// TestStartFailsWithTheAgentsLog: an agent that cannot start fails the
// test at once with its own words, not after a timeout.
func TestStartFailsWithTheAgentsLog(t *testing.T) {
	t.Parallel()
	ft := &fakeT{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Start(ft, func(c *testutil.TestServerConfig) { c.Args = append(c.Args, "-hcl", "limits { no_such_limit = 1 }") })
	}()
	<-done
	require.True(t, ft.failed)
	require.Contains(t, ft.msg, "the agent exited")
	require.Contains(t, ft.msg, "no_such_limit", "the agent's log says why")
}

// TestStartTriesOtherPortsWhenOneIsTaken: a port taken by a program that
// does not reserve ports (here a UDP socket on Serf's port, which a TCP
// check would not see) makes the agent exit; Start starts it again on new
// ports.
func TestStartTriesOtherPortsWhenOneIsTaken(t *testing.T) {
	t.Parallel()
	taken, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	attempts := 0
	srv := Start(t, func(c *testutil.TestServerConfig) {
		attempts++
		if attempts == 1 {
			c.Ports.SerfLan = taken.LocalAddr().(*net.UDPAddr).Port
		}
	})
	require.Equal(t, 2, attempts, "a second start, on other ports")
	require.NotEqual(t, taken.LocalAddr().(*net.UDPAddr).Port, srv.Config.Ports.SerfLan)
	leader, err := srv.Client.Status().Leader()
	require.NoError(t, err)
	require.NotEmpty(t, leader)
}

// fakeT records a fatal failure instead of ending the real test.
type fakeT struct {
	testing.TB
	mu     sync.Mutex
	failed bool
	msg    string
}

func (f *fakeT) Helper() {}

func (f *fakeT) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.failed, f.msg = true, fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fakeT) Errorf(format string, args ...any) {
	f.mu.Lock()
	f.failed, f.msg = true, fmt.Sprintf(format, args...)
	f.mu.Unlock()
}

func (f *fakeT) FailNow() { runtime.Goexit() }

// The stress test's processes, and the starts each makes at once: six
// servers, a server with a client agent, and two federated datacenters,
// ten agents a process.
const stressProcesses = 5

var stressStarts = []struct {
	name   string
	agents int
	start  func(t *testing.T)
}{
	{"server-1", 1, func(t *testing.T) { Start(t) }},
	{"server-2", 1, func(t *testing.T) { Start(t) }},
	{"server-3", 1, func(t *testing.T) { Start(t) }},
	{"server-4", 1, func(t *testing.T) { Start(t) }},
	{"server-5", 1, func(t *testing.T) { Start(t) }},
	{"server-acl", 1, func(t *testing.T) { Start(t, WithACLs("3c8e1f6a-2b4d-4e7f-9a1c-5d3b7e9f1a2c")) }},
	{"client", 2, func(t *testing.T) { StartClient(t, Start(t)) }},
	{"federation", 2, func(t *testing.T) { StartFederation(t) }},
}

// stressChild marks the stress test's own processes.
const stressChild = "TESTCONSUL_STRESS_CHILD"

// TestStartsInParallelProcesses starts 50 agents at once across five test
// processes, as `go test ./...` runs packages beside each other and other
// checkouts' tests run beside them on a shared machine: every start
// succeeds. Each process is this test binary running this test with
// stressChild set, which makes its ten agents in parallel.
func TestStartsInParallelProcesses(t *testing.T) {
	if os.Getenv(stressChild) != "" {
		for _, s := range stressStarts {
			t.Run(s.name, func(t *testing.T) {
				t.Parallel()
				s.start(t)
			})
		}
		return
	}
	t.Parallel()
	bin, err := Binary()
	require.NoError(t, err)
	var wg sync.WaitGroup
	outs := make([]string, stressProcesses)
	errs := make([]error, stressProcesses)
	for i := range stressProcesses {
		wg.Go(func() {
			cmd := exec.Command(os.Args[0], "-test.run=^TestStartsInParallelProcesses$", "-test.v",
				"-test.parallel="+strconv.Itoa(len(stressStarts)), "-test.timeout=10m")
			cmd.Env = append(os.Environ(), stressChild+"=1", "CUSTOM_SD_CONSUL="+bin)
			out, err := cmd.CombinedOutput()
			outs[i], errs[i] = string(out), err
		})
	}
	wg.Wait()
	agents, retries := 0, 0
	for i := range stressProcesses {
		require.NoError(t, errs[i], "process %d:\n%s", i, outs[i])
		for _, s := range stressStarts {
			require.Contains(t, outs[i], "--- PASS: TestStartsInParallelProcesses/"+s.name+" ", "process %d", i)
			agents += s.agents
		}
		retries += strings.Count(outs[i], "starting again on other ports")
	}
	require.Equal(t, 50, agents)
	t.Logf("%d agents started in %d processes; %d starts tried other ports after a port was taken", agents, stressProcesses, retries)
}
