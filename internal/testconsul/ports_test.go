package testconsul

import (
	"net"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReservePorts: reserved ports are distinct, below the ephemeral
// range, free when handed out, and nobody else can reserve them until the
// test that reserved them ends. (The reservation is a socket name, which
// the kernel gives to one socket on the machine, whichever the process;
// TestStartsInParallelProcesses runs it across processes.)
func TestReservePorts(t *testing.T) {
	t.Parallel()
	var ports []int
	t.Run("reserve", func(t *testing.T) {
		ports = reservePorts(t, 20)
		seen := map[int]bool{}
		for _, p := range ports {
			require.False(t, seen[p], "port %d handed out twice", p)
			seen[p] = true
			require.GreaterOrEqual(t, p, lowestPort)
			require.Less(t, p, lowestPort+portSpan())
			_, err := net.Listen("unix", lockName(p))
			require.Error(t, err, "port %d can be reserved again while reserved", p)
		}
		for _, p := range reservePorts(t, 20) {
			require.False(t, seen[p], "port %d handed out twice", p)
		}
	})
	for _, p := range ports {
		l, err := net.Listen("unix", lockName(p))
		require.NoError(t, err, "port %d is free to reserve once its test ended", p)
		require.NoError(t, l.Close())
	}
}
