package testconsul

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Ports a Consul agent binds cannot be handed over as listeners: the agent
// opens them itself, from its configuration. So each is reserved, across
// processes, for as long as the test that asked for it runs.
//
// The reservation of port p is a Unix socket named for p, held open by the
// process that reserved it: on Linux in the abstract namespace, so that
// nothing is left on disk and the kernel drops the reservation when the
// process exits, however it exits. Binding a name that another socket
// holds fails, in any process, so two processes that reserve here (every
// test process of this module, in every checkout on the machine) never
// hold the same port. Ports come from below the range the system hands out
// for port 0, so no listener on port 0 and no outgoing connection takes
// one either.
//
// A program that does not reserve here (Consul's freeport, a fixed port)
// may still hold or take one of these ports. A port found bound on TCP or
// UDP at 127.0.0.1 is skipped; one taken after that makes the agent fail to
// bind and exit with "address already in use", and start tries again on
// new ports (see start).

// lowestPort is the lowest port handed out.
const lowestPort = 10000

// portSpan is [lowestPort, ephemeral range's first port), read once.
var portSpan = sync.OnceValue(func() int {
	end := 32768 // Linux's default ip_local_port_range starts here
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > lowestPort+1000 {
				end = n
			}
		}
	}
	return end - lowestPort
})

// reservePorts reserves n ports for the rest of the test and returns them.
func reservePorts(t testing.TB, n int) []int {
	t.Helper()
	return reservePortsNamed(t, n, lockName)
}

// reservePortsNamed is reservePorts with the reservations named by name.
func reservePortsNamed(t testing.TB, n int, name func(port int) string) []int {
	t.Helper()
	span := portSpan()
	first := rand.IntN(span)
	var ports []int
	for i := 0; i < span && len(ports) < n; i++ {
		p := lowestPort + (first+i)%span
		lock, err := net.Listen("unix", name(p))
		if err != nil {
			continue // reserved by another test
		}
		if !free(p) {
			_ = lock.Close()
			continue
		}
		t.Cleanup(func() { _ = lock.Close() })
		ports = append(ports, p)
	}
	if len(ports) < n {
		t.Fatalf("reserve %d ports: only %d of %d from %d up are free", n, len(ports), span, lowestPort)
	}
	return ports
}

// lockName names the socket that reserves port p.
func lockName(p int) string {
	if runtime.GOOS == "linux" {
		return fmt.Sprintf("@custom-sd-test-port-%d", p)
	}
	// Elsewhere a socket file; a process that dies leaves it behind, and
	// the port stays reserved until it is removed.
	return filepath.Join(os.TempDir(), fmt.Sprintf("custom-sd-test-port-%d.sock", p))
}

// free reports whether nothing holds port p on 127.0.0.1, TCP or UDP. The
// reservation, not this check, keeps other tests off the port.
func free(p int) bool {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	_ = l.Close()
	c, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}
