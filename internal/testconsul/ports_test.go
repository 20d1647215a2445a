package testconsul

import (
	"fmt"
	"net"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReservePorts: reserved ports are distinct, below the ephemeral
// range, free when handed out, and nobody else can reserve them until the
// test that reserved them ends. (The reservation is a socket name, which
// the kernel gives to one socket on the machine, whichever the process;
// TestStartsInParallelProcesses runs it across processes.) The names here
// carry this process's ID, so that no other test process can take a port
// between its release and the check that it was released. A child this
// process forks (an agent another test starts) holds a copy of the
// reserving socket until it execs, so the check waits for the name to be
// free.
func TestReservePorts(t *testing.T) {
	t.Parallel()
	name := func(p int) string { return fmt.Sprintf("%s-test-%d", lockName(p), os.Getpid()) }
	var ports []int
	t.Run("reserve", func(t *testing.T) {
		ports = reservePortsNamed(t, 20, name)
		seen := map[int]bool{}
		for _, p := range ports {
			require.False(t, seen[p], "port %d handed out twice", p)
			seen[p] = true
			require.GreaterOrEqual(t, p, lowestPort)
			require.Less(t, p, lowestPort+portSpan())
			_, err := net.Listen("unix", name(p))
			require.Error(t, err, "port %d can be reserved again while reserved", p)
		}
		for _, p := range reservePortsNamed(t, 20, name) {
			require.False(t, seen[p], "port %d handed out twice", p)
		}
	})
	for _, p := range ports {
		Eventually(t, func() bool {
			l, err := net.Listen("unix", name(p))
			return err == nil && l.Close() == nil
		}, "port %d is free to reserve once its test ended", p)
	}
}
