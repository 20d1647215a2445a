// Package testfs mounts the file systems tests need to put custom-sd's
// output on: one that is full, and one that stops answering, as a network
// file system whose server went away does. Mounting needs root (CI and
// the project's machines run as root); a test that cannot mount fails with
// the reason.
package testfs

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/stretchr/testify/require"
)

// MountFull mounts a tmpfs of size bytes at a new directory and unmounts it
// when the test ends. Fill fills what is left of it.
func MountFull(t testing.TB, size int) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput()
	require.NoError(t, err, "mount a tmpfs (needs root): %s", out)
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

// Fill writes a file into dir until its file system has no room left.
func Fill(t testing.TB, dir string) {
	t.Helper()
	f, err := os.Create(dir + "/filler")
	require.NoError(t, err)
	defer f.Close()
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			require.ErrorIs(t, err, syscall.ENOSPC)
			return
		}
	}
}

// Stuck is a FUSE file system that passes everything to a directory of its
// own until Hang; from then on, creating a file waits until the test ends.
// A signal that reaches the waiting thread interrupts the creation with
// EINTR, which the creating process retries (Go's os package does) or, if
// the signal is fatal, never sees: so the process cannot stop its wait, but
// it can die in it.
type Stuck struct {
	Dir  string // where it is mounted
	mu   sync.Mutex
	hang chan struct{} // closed by Hang
	end  chan struct{} // closed when the test ends
	hung int           // creations waiting now
	intr int           // creations a signal interrupted
}

// MountStuck mounts a Stuck file system at a new directory, and unmounts it
// when the test ends.
func MountStuck(t testing.TB) *Stuck {
	t.Helper()
	backing := t.TempDir()
	var st syscall.Stat_t
	require.NoError(t, syscall.Stat(backing, &st))
	s := &Stuck{Dir: t.TempDir(), hang: make(chan struct{}), end: make(chan struct{})}
	root := &fs.LoopbackRoot{Path: backing, Dev: uint64(st.Dev)}
	node := &stuckNode{LoopbackNode: fs.LoopbackNode{RootData: root}, s: s}
	root.RootNode = node
	server, err := fs.Mount(s.Dir, node, &fs.Options{MountOptions: fuse.MountOptions{DirectMount: true, FsName: "stuck", Name: "testfs"}})
	require.NoError(t, err, "mount a FUSE file system (needs root and /dev/fuse)")
	t.Cleanup(func() {
		close(s.end)
		if err := server.Unmount(); err != nil {
			_ = exec.Command("umount", "-l", s.Dir).Run()
		}
	})
	return s
}

// Hang makes every later file creation wait.
func (s *Stuck) Hang() {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.hang:
	default:
		close(s.hang)
	}
}

// Hung reports how many file creations wait now.
func (s *Stuck) Hung() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hung
}

// Interrupted reports how many waiting creations a signal interrupted.
func (s *Stuck) Interrupted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.intr
}

func (s *Stuck) waiting(d int) {
	s.mu.Lock()
	s.hung += d
	s.mu.Unlock()
}

// stuckNode is the root directory of a Stuck file system.
type stuckNode struct {
	fs.LoopbackNode
	s *Stuck
}

var _ fs.NodeCreater = (*stuckNode)(nil)

// Create implements fs.NodeCreater.
func (n *stuckNode) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	select {
	case <-n.s.hang:
		n.s.waiting(1)
		defer n.s.waiting(-1)
		select {
		case <-ctx.Done(): // the kernel's interrupt: a signal reached the thread
			n.s.mu.Lock()
			n.s.intr++
			n.s.mu.Unlock()
			return nil, nil, 0, syscall.EINTR
		case <-n.s.end:
			return nil, nil, 0, syscall.EIO
		}
	default:
		return n.LoopbackNode.Create(ctx, name, flags, mode, out)
	}
}
