package testfs

import (
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestStuckCreationOutlivesSignals: a signal that reaches the thread
// waiting in a stuck creation (Go catches every signal, so any signal the
// kernel gives that thread) interrupts the wait, and the creation is
// retried and waits again: it does not fail, so a test that needs a write
// to hang gets one.
func TestStuckCreationOutlivesSignals(t *testing.T) {
	s := MountStuck(t)
	s.Hang()
	tid := make(chan int, 1)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // the signals below go to this thread; it ends with the goroutine
		tid <- syscall.Gettid()
		f, err := os.Create(filepath.Join(s.Dir, "x"))
		if err == nil {
			_ = f.Close()
		}
		done <- err
	}()
	thread := <-tid
	waitFor(t, done, func() bool { return s.Hung() == 1 })
	for range 5 {
		require.NoError(t, syscall.Tgkill(os.Getpid(), thread, syscall.SIGWINCH))
	}
	waitFor(t, done, func() bool { return s.Interrupted() > 0 && s.Hung() == 1 })
}

// waitFor waits until cond holds, and fails if the creation returned.
func waitFor(t *testing.T, done <-chan error, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case err := <-done:
			t.Fatalf("the creation returned: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
}
