// Package testproc holds what tests need to run the programs they test as
// real processes.
package testproc

import (
	"bytes"
	"encoding/json"
	"net"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logfmt/logfmt"
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
// channel is closed once the process has exited (cmd.ProcessState is set
// then).
//
// The process is also killed if the test binary dies without cleaning up
// (a test timeout, a crash), so that no agent or daemon outlives the run
// that started it and loads the machine, or holds ports, for the next one.
func Start(t testing.TB, name string, cmd *exec.Cmd) (*Buffer, <-chan struct{}) {
	t.Helper()
	out := &Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	done := make(chan struct{})
	require.NoError(t, startTied(cmd, func() { close(done) }), "start %s", name)
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
	return out, done
}

// ListenAddress waits until the process writing out logs that it listens
// for HTTP, and returns the address it bound (host:port). Start the
// process with a listen address on port 0: the address comes from the
// process, so no port is picked, released and taken later. Both custom-sd
// and Prometheus serve HTTP through prometheus/exporter-toolkit, which logs
// msg="Listening on" with the address, in logfmt or in JSON. It fails the
// test if the process exits first.
func ListenAddress(t testing.TB, out *Buffer, exited <-chan struct{}) string {
	t.Helper()
	var addr string
	require.Eventually(t, func() bool {
		select {
		case <-exited:
			return true // reported below
		default:
		}
		addr = listenAddress(out.String())
		return addr != ""
	}, 60*time.Second, 10*time.Millisecond, "the process logs the address it listens on")
	if addr == "" {
		t.Fatalf("the process exited before it listened:\n%s", out.String())
	}
	return addr
}

// listenAddress returns the address of the first "Listening on" line in
// log, or "".
func listenAddress(log string) string {
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, "Listening on") {
			continue
		}
		fields := map[string]string{}
		if strings.HasPrefix(strings.TrimSpace(line), "{") {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) != nil {
				continue
			}
			for k, v := range rec {
				if s, ok := v.(string); ok {
					fields[k] = s
				}
			}
		} else {
			d := logfmt.NewDecoder(strings.NewReader(line))
			for d.ScanRecord() {
				for d.ScanKeyval() {
					if _, seen := fields[string(d.Key())]; !seen {
						fields[string(d.Key())] = string(d.Value())
					}
				}
			}
			if d.Err() != nil {
				continue
			}
		}
		if fields["msg"] != "Listening on" {
			continue
		}
		if _, _, err := net.SplitHostPort(fields["address"]); err == nil {
			return fields["address"]
		}
	}
	return ""
}

// startTied starts cmd so that it dies with the test binary, waits for it
// in the background and calls exited once it has exited. On Linux the
// process gets SIGKILL when the thread that started it ends (Pdeathsig);
// that thread is the one goroutine below, locked to it and kept until the
// process exits, so the signal comes only when the whole binary dies.
func startTied(cmd *exec.Cmd, exited func()) error {
	tieToParent(cmd)
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
		exited()
	}()
	return <-started
}
