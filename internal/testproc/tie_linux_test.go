package testproc

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestProcessDiesWithTheTestBinary: a test binary that exits without its
// cleanups (as on a test timeout) takes the processes it started with it.
// The test runs itself as that binary: the child starts `sleep`, prints
// its pid and exits at once.
func TestProcessDiesWithTheTestBinary(t *testing.T) {
	t.Parallel()
	if os.Getenv("TESTPROC_ORPHAN_CHILD") == "1" {
		cmd := exec.Command("sleep", "600")
		require.NoError(t, startTied(cmd, func() {}))
		os.Stdout.WriteString(strconv.Itoa(cmd.Process.Pid) + "\n")
		os.Exit(0) // no cleanup runs
	}
	child := exec.Command(os.Args[0], "-test.run=^TestProcessDiesWithTheTestBinary$")
	child.Env = append(os.Environ(), "TESTPROC_ORPHAN_CHILD=1")
	out, err := child.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, child.Start())
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	require.NoError(t, child.Wait())
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return !alive(pid) }, time.Minute, 10*time.Millisecond,
		"sleep (pid %d) outlived the binary that started it", pid)
}

// alive reports whether pid runs: it exists and is not a zombie waiting
// for its new parent to reap it.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && fields[0] != "Z"
}
