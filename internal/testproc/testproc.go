// Package testproc holds what tests need to run the programs they test as
// real processes.
package testproc

import (
	"bytes"
	"os/exec"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// Buffer collects a process's output; it is safe to read while the process
// writes.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Start starts cmd with its stdout and stderr in a Buffer, kills it when
// the test ends, and logs its output if the test failed. The returned
// channel is closed once the process has exited.
func Start(t testing.TB, name string, cmd *exec.Cmd) (*Buffer, <-chan struct{}) {
	t.Helper()
	out := &Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start(), "start %s", name)
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
	return out, done
}
